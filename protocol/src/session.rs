//! The sealed control channel between an edge and its supernode: two directional AEAD keys,
//! a send counter and a replay window.

use crate::crypto::aead::SessionKey;
use crate::crypto::replay::SmallReplayWindow;
use crate::stats::DropReason;
use crate::types::EdgeId;
use crate::wire::sealed::{SealedHeader, SealedMessage};

/// Nonce prefix of edge-to-supernode messages.
const EDGE_TO_SN: u32 = 0x6532_7300;
/// Nonce prefix of supernode-to-edge messages.
const SN_TO_EDGE: u32 = 0x7332_6500;

/// Nonce prefix of the sealed body of a REGISTER (its key is used once per registration).
pub const REGISTER_PREFIX: u32 = 0x7265_6700;

/// Which end of the session we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The edge end.
    Edge,
    /// The supernode end.
    Supernode,
}

/// One end of an edge-supernode session. Keys are kept raw and expanded per message: control
/// traffic is a few messages per minute, and a supernode holds one session per edge (an
/// expanded AES-GCM key is over 1 KiB; this whole struct is under 200 bytes). Never Clone
/// outside fuzzing: a copy would seal under the same counters.
#[cfg_attr(fuzzing, derive(Clone))]
pub struct ControlSession {
    tx: [u8; 32],
    rx: [u8; 32],
    tx_prefix: u32,
    rx_prefix: u32,
    tx_counter: u64,
    replay: SmallReplayWindow,
}

impl std::fmt::Debug for ControlSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ControlSession {{ tx_counter: {} }}", self.tx_counter)
    }
}

impl ControlSession {
    /// Builds a session from the keys of [`crate::crypto::kdf::session_keys`].
    pub fn new(role: Role, edge_to_sn: &[u8; 32], sn_to_edge: &[u8; 32]) -> Self {
        let (e2s, s2e) = (*edge_to_sn, *sn_to_edge);
        match role {
            Role::Edge => Self {
                tx: e2s,
                rx: s2e,
                tx_prefix: EDGE_TO_SN,
                rx_prefix: SN_TO_EDGE,
                tx_counter: 0,
                replay: SmallReplayWindow::default(),
            },
            Role::Supernode => Self {
                tx: s2e,
                rx: e2s,
                tx_prefix: SN_TO_EDGE,
                rx_prefix: EDGE_TO_SN,
                tx_counter: 0,
                replay: SmallReplayWindow::default(),
            },
        }
    }

    /// Seals `msg` into a datagram for the session of `edge_id`.
    pub fn seal(&mut self, edge_id: EdgeId, msg: &SealedMessage) -> Vec<u8> {
        let header = SealedHeader {
            kind: msg.kind(),
            edge_id,
            counter: self.tx_counter,
        };
        self.tx_counter += 1;
        let hdr = header.emit();
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&hdr);
        let mut body = Vec::with_capacity(112);
        msg.emit(&mut body);
        SessionKey::new(&self.tx).seal(self.tx_prefix, header.counter, &hdr, &mut body);
        out.extend_from_slice(&body);
        out
    }

    /// Opens a sealed datagram whose header was parsed as `header`; checks authenticity, then
    /// replay, then parses the body.
    pub fn open(
        &mut self,
        header: &SealedHeader,
        datagram: &[u8],
    ) -> Result<SealedMessage, DropReason> {
        let hdr_len = crate::wire::sealed::HEADER_LEN;
        let aad = datagram.get(..hdr_len).ok_or(DropReason::Malformed)?;
        let mut sealed = datagram
            .get(hdr_len..)
            .ok_or(DropReason::Malformed)?
            .to_vec();
        if !self.replay.check(header.counter) {
            return Err(DropReason::Replay);
        }
        let body = SessionKey::new(&self.rx)
            .open(self.rx_prefix, header.counter, aad, &mut sealed)
            .map_err(|_| DropReason::Auth)?;
        let msg = SealedMessage::parse(header.kind, body).map_err(|e| e.drop_reason())?;
        self.replay.accept(header.counter);
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::sealed::SealedHeader;

    #[test]
    fn sessions_interoperate_reject_replays_and_stay_small() {
        let (e2s, s2e) = ([1u8; 32], [2u8; 32]);
        let mut edge = ControlSession::new(Role::Edge, &e2s, &s2e);
        let mut sn = ControlSession::new(Role::Supernode, &e2s, &s2e);
        let d = edge.seal(7, &SealedMessage::PunchRequest { peer: 9 });
        let (h, _) = SealedHeader::parse(&d).unwrap();
        assert_eq!(sn.open(&h, &d), Ok(SealedMessage::PunchRequest { peer: 9 }));
        assert_eq!(sn.open(&h, &d), Err(DropReason::Replay));
        // A message sealed by the supernode does not open as one from the edge (direction keys).
        let own = edge.seal(7, &SealedMessage::PeerSyncRequest);
        let (h1, _) = SealedHeader::parse(&own).unwrap();
        assert_eq!(
            edge.open(&h1, &own),
            Err(DropReason::Auth),
            "reflected back at its sender"
        );
        let back = sn.seal(7, &SealedMessage::PeerSyncRequest);
        let (h2, _) = SealedHeader::parse(&back).unwrap();
        assert_eq!(edge.open(&h2, &back), Ok(SealedMessage::PeerSyncRequest));
        assert!(std::mem::size_of::<ControlSession>() <= 200);
    }
}
