//! The core's data path, on the forwarding snapshot the workers use: frames from the TAP out
//! to peers, data packets in, MAC learning and roaming.

use super::forward::Forwarding;
use super::{Edge, Path};
use n2n_common::stats::DropReason;
use n2n_common::types::{EdgeId, Mac, Transmit};
use n2n_common::wire::data::flags;
use n2n_common::wire::peer::PeerMessage;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Edge {
    /// The current forwarding snapshot (rebuilt if anything it holds changed).
    pub fn forwarding(&mut self, now: Instant) -> Arc<Forwarding> {
        if self.fwd_dirty
            || self
                .fwd_built_at
                .is_none_or(|t| t + Duration::from_millis(500) <= now)
        {
            self.rebuild_forwarding(now);
        }
        self.fwd.clone()
    }

    fn rebuild_forwarding(&mut self, now: Instant) {
        let sn = self.supernode();
        let mut f = Forwarding::empty(self.data_counters.clone());
        f.my_id = self.my_id;
        f.supernode = sn;
        f.compress = self.config.compress;
        for (mac, (id, _)) in &self.macs {
            f.by_mac.insert(*mac, *id);
        }
        for (id, p) in &self.peers {
            let (dst, relayed) = match (p.path, sn) {
                (Path::Direct { addr, .. }, _) => (addr, false),
                (Path::Relayed, Some(sn)) => (sn, true),
                (Path::Relayed, None) => continue,
            };
            f.peers.insert(
                *id,
                super::forward::PeerFwd {
                    id: *id,
                    dst,
                    relayed,
                    send: p.send_key(now).cloned(),
                    keys: p.keys.clone(),
                    counters: p.counters.clone(),
                },
            );
        }
        self.fwd = Arc::new(f);
        self.fwd_dirty = false;
        self.fwd_built_at = Some(now);
    }

    pub(super) fn send_frame(&mut self, now: Instant, frame: &[u8]) -> Result<(), DropReason> {
        let fwd = self.forwarding(now);
        let transmits = &mut self.transmits;
        fwd.encapsulate(frame, &mut self.out, &mut self.scratch, |dst, d| {
            transmits.push_back(Transmit {
                dst,
                payload: d.to_vec(),
            });
        })?;
        Ok(())
    }

    /// Seals a peer control message for peer `id` and sends it to `to`.
    pub(super) fn send_peer_message(
        &mut self,
        now: Instant,
        id: EdgeId,
        msg: &PeerMessage,
        to: SocketAddr,
    ) {
        let fwd = self.forwarding(now);
        let Some(peer) = fwd.peers.get(&id) else {
            return;
        };
        let mut body = Vec::with_capacity(32);
        msg.emit(&mut body);
        if let Some(dst) = fwd.seal(
            peer,
            flags::PEER_CONTROL,
            &body,
            Some(to),
            &mut self.out,
            &mut self.scratch,
        ) {
            let payload = self.out.clone();
            self.send(dst, payload);
        }
    }

    pub(super) fn handle_data(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), DropReason> {
        let fwd = self.forwarding(now);
        let mut buf = bytes.to_vec();
        let mut scratch = std::mem::take(&mut self.scratch);
        let opened = fwd
            .decapsulate(&mut buf, &mut scratch)
            .map(|o| (o.peer, o.flags, o.plain.to_vec()));
        self.scratch = scratch;
        let (peer, hdr_flags, plain) = match opened {
            Ok(v) => v,
            Err(DropReason::UnknownSession) => {
                self.request_sync(now);
                return Err(DropReason::UnknownSession);
            }
            Err(e) => return Err(e),
        };
        self.note_data(now, peer, from, hdr_flags & flags::PEER_CONTROL == 0);
        if hdr_flags & flags::PEER_CONTROL != 0 {
            let msg = PeerMessage::parse(&plain).map_err(|e| e.drop_reason())?;
            self.handle_peer_message(now, peer, from, msg);
            return Ok(());
        }
        if let Some(src) = Mac::src_of(&plain) {
            self.learn_mac(now, src, peer);
        }
        self.frames.push_back(plain);
        Ok(())
    }

    /// An authenticated packet from `peer` arrived from `from` (the workers report these too).
    /// A frame straight from a new address moves a direct path there (the peer's NAT rebound).
    pub fn note_data(&mut self, now: Instant, peer: EdgeId, from: SocketAddr, is_frame: bool) {
        let via_sn = Some(from) == self.supernode();
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.last_rx = Some(now);
        if via_sn {
            return;
        }
        p.last_direct_rx = Some((from, now));
        if let Path::Direct { addr, kind } = p.path
            && is_frame
            && addr != from
        {
            p.path = Path::Direct { addr: from, kind };
            self.fwd_dirty = true;
        }
    }

    /// Learns that `mac` lives behind `peer` (the workers report new ones too).
    pub fn learn_mac(&mut self, now: Instant, mac: Mac, peer: EdgeId) {
        if mac.is_group() || !self.peers.contains_key(&peer) {
            return;
        }
        if self
            .macs
            .insert(mac, (peer, now))
            .is_none_or(|(old, _)| old != peer)
        {
            self.fwd_dirty = true;
        }
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
