//! The data path in the core: frames from the TAP out to peers (direct or relayed, flooded
//! for broadcast, multicast and unknown unicast) and data packets in, with MAC learning.

use super::{Edge, Path};
use n2n_common::crypto::pipeline::{OpenError, Pipeline};
use n2n_common::stats::DropReason;
use n2n_common::types::{EdgeId, Mac};
use n2n_common::wire::data::{DataHeader, DataPacket, flags};
use n2n_common::wire::peer::PeerMessage;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The shortest Ethernet frame we forward (a header).
const MIN_FRAME: usize = 14;

impl Edge {
    pub(super) fn send_frame(&mut self, now: Instant, frame: &[u8]) -> Result<(), DropReason> {
        if frame.len() < MIN_FRAME {
            return Err(DropReason::Malformed);
        }
        if self.my_id.is_none() {
            return Err(DropReason::NoRoute);
        }
        let dst = Mac::dst_of(frame).ok_or(DropReason::Malformed)?;
        let unicast_peer = if dst.is_group() {
            None
        } else {
            self.macs.get(&dst).map(|(id, _)| *id)
        };
        let targets: Vec<EdgeId> = match unicast_peer {
            Some(id) => vec![id],
            None => self.peers.keys().copied().collect(),
        };
        if targets.is_empty() {
            return Err(DropReason::NoRoute);
        }
        for id in targets {
            self.send_sealed_to_peer(now, id, 0, frame, None);
        }
        Ok(())
    }

    /// Seals `payload` for peer `id` and sends it to `to`, or along the peer's path.
    pub(super) fn send_sealed_to_peer(
        &mut self,
        now: Instant,
        id: EdgeId,
        extra_flags: u8,
        payload: &[u8],
        to: Option<SocketAddr>,
    ) {
        let (Some(me), Some(sn)) = (self.my_id, self.supernode()) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(key) = peer.send_key(now).cloned() else {
            return;
        };
        let dst = to.unwrap_or(match peer.path {
            Path::Direct { addr, .. } => addr,
            Path::Relayed => sn,
        });
        let header = DataHeader {
            flags: extra_flags | key.phase_flags(),
            dst: id,
            src: me,
            counter: key.next_counter(),
        };
        let pipeline = Pipeline {
            compress: self.config.compress && extra_flags & flags::PEER_CONTROL == 0,
        };
        pipeline.seal(&key.key, header, payload, &mut self.out, &mut self.scratch);
        if extra_flags & flags::PEER_CONTROL == 0 {
            peer.tx.0 += 1;
            peer.tx.1 += payload.len() as u64;
            self.stats.tx_frames += 1;
            if dst == sn {
                peer.tx_relayed += 1;
                self.stats.tx_relayed += 1;
            }
        }
        let datagram = self.out.clone();
        self.send(dst, datagram);
    }

    pub(super) fn handle_data(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), DropReason> {
        let pkt = DataPacket::new_checked(bytes).map_err(|e| e.drop_reason())?;
        let hdr = DataHeader::parse(&pkt);
        if Some(hdr.dst) != self.my_id {
            return Err(DropReason::Misdirected);
        }
        let Some(peer) = self.peers.get(&hdr.src) else {
            self.request_sync(now);
            return Err(DropReason::UnknownSession);
        };
        let key = peer.recv_key(hdr.flags).cloned().ok_or(DropReason::Auth)?;
        if !key.replay_check(hdr.counter) {
            return Err(DropReason::Replay);
        }
        let mut buf = bytes.to_vec();
        let mut scratch = std::mem::take(&mut self.scratch);
        let plain = match Pipeline::open(&key.key, &hdr, &mut buf, &mut scratch) {
            Ok(p) => p.to_vec(),
            Err(OpenError::Auth) => {
                self.scratch = scratch;
                return Err(DropReason::Auth);
            }
            Err(OpenError::Decompress) => {
                self.scratch = scratch;
                return Err(DropReason::Malformed);
            }
        };
        self.scratch = scratch;
        if !key.replay_accept(hdr.counter) {
            return Err(DropReason::Replay);
        }
        let via_sn = Some(from) == self.supernode();
        let Some(peer) = self.peers.get_mut(&hdr.src) else {
            return Err(DropReason::UnknownSession);
        };
        peer.last_rx = Some(now);
        if !via_sn {
            peer.last_direct_rx = Some((from, now));
        }
        if hdr.flags & flags::PEER_CONTROL != 0 {
            let msg = PeerMessage::parse(&plain).map_err(|e| e.drop_reason())?;
            self.handle_peer_message(now, hdr.src, from, msg);
            return Ok(());
        }
        if plain.len() < MIN_FRAME {
            return Err(DropReason::Malformed);
        }
        // Roaming: an authenticated, fresh frame straight from the peer's new address moves
        // our direct path there (its NAT rebound; the old mapping is dead).
        if let Path::Direct { addr, kind } = peer.path
            && !via_sn
            && addr != from
        {
            peer.path = Path::Direct { addr: from, kind };
        }
        peer.rx.0 += 1;
        peer.rx.1 += plain.len() as u64;
        self.stats.rx_frames += 1;
        if let Some(src) = Mac::src_of(&plain)
            && !src.is_group()
        {
            self.macs.insert(src, (hdr.src, now));
        }
        self.frames.push_back(plain);
        Ok(())
    }

    /// Asks the supernode for the full peer list (we got data from an id we do not know).
    fn request_sync(&mut self, now: Instant) {
        if self
            .last_sync_request
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(5))
        {
            return;
        }
        self.last_sync_request = Some(now);
        if let (super::Phase::Up, Some(me)) = (&self.phase, self.my_id) {
            self.seal_to_sn(
                me,
                &n2n_common::wire::sealed::SealedMessage::PeerSyncRequest,
            );
        }
    }
}
