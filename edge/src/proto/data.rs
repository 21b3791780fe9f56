//! The core's data path, on the forwarding snapshot the workers use: frames from the TAP out
//! to peers, data packets in, MAC learning and roaming.

use super::forward::Forwarding;
use super::receive::{MAX_MACS_PER_PEER, Note, RxAction};
use super::{Edge, Path};
use n2n_protocol::stats::DropReason;
use n2n_protocol::types::{EdgeId, Mac, Transmit};
use n2n_protocol::wire::data::flags;
use n2n_protocol::wire::peer::PeerMessage;
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
        f.supernodes = self.config.supernodes.clone();
        f.compress = self.config.compress;
        let psk = &self.config.keys.data;
        f.mac1_keys = std::iter::once(&self.key)
            .chain(self.prev_key.as_ref())
            .map(|k| n2n_protocol::crypto::handshake::mac1_key(psk, &k.public))
            .collect();
        for (mac, (id, _)) in &self.macs {
            f.by_mac.insert(*mac, *id);
        }
        // Members' own MACs win over anything learned (id 0 is us: no peer has it).
        f.owners.insert(self.config.mac, 0);
        for (id, p) in &self.peers {
            f.owners.insert(p.info.mac, *id);
            f.by_mac.insert(p.info.mac, *id);
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
                    next: p.next_key(now).cloned(),
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

    /// Runs one datagram through the receive path the packet workers run
    /// ([`Forwarding::receive`]) and acts on the outcome as the control task does.
    pub(super) fn receive_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), DropReason> {
        let fwd = self.forwarding(now);
        let mut buf = bytes.to_vec();
        let mut rx = std::mem::take(&mut self.rx);
        let mut notes = Vec::new();
        let result = match fwd.receive(&mut rx, now, from, &mut buf, |n| notes.push(n)) {
            RxAction::Deliver(frame) => {
                self.frames.push_back(frame.to_vec());
                Ok(())
            }
            RxAction::PeerControl { peer, msg } => {
                self.handle_peer_control(now, peer, from, msg);
                Ok(())
            }
            RxAction::Supernode => {
                self.handle_control(now, from, bytes);
                Ok(())
            }
            RxAction::Handshake { peer } => {
                self.handle_handshake(now, peer, from, bytes);
                Ok(())
            }
            RxAction::UnknownPeer => {
                self.handle_unknown_peer(now);
                Err(DropReason::UnknownSession)
            }
            RxAction::Drop(reason) => Err(reason),
        };
        self.rx = rx;
        for n in notes {
            self.handle_note(now, n);
        }
        result
    }

    /// Acts on what the receive path learned from an authenticated frame.
    pub fn handle_note(&mut self, now: Instant, note: Note) {
        match note {
            Note::Seen { peer, from } => self.note_data(now, peer, from, true),
            Note::Learn { mac, peer } => self.learn_mac(now, mac, peer),
        }
    }

    /// An authenticated peer control message from `peer` arrived from `from`.
    pub fn handle_peer_control(
        &mut self,
        now: Instant,
        peer: EdgeId,
        from: SocketAddr,
        msg: PeerMessage,
    ) {
        self.note_data(now, peer, from, false);
        self.handle_peer_message(now, peer, from, msg);
    }

    /// A data packet came from an edge id we have no key for: ask the supernode for the peer
    /// list (at most every five seconds).
    pub fn handle_unknown_peer(&mut self, now: Instant) {
        self.request_sync(now);
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

    /// Learns that `mac` lives behind `peer` (a host it bridges). A member's own MAC (or
    /// ours) is never learned behind another, and a peer over [`MAX_MACS_PER_PEER`] learned
    /// MACs is refused and counted.
    pub fn learn_mac(&mut self, now: Instant, mac: Mac, peer: EdgeId) {
        if mac.is_group()
            || !self.peers.contains_key(&peer)
            || mac == self.config.mac
            || self.peers.values().any(|p| p.info.mac == mac)
        {
            return;
        }
        let known = self.macs.get(&mac).is_some_and(|(p, _)| *p == peer);
        if !known && self.macs.values().filter(|(p, _)| *p == peer).count() >= MAX_MACS_PER_PEER {
            self.data_counters
                .macs_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
    pub(super) fn request_sync(&mut self, now: Instant) {
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
                &n2n_protocol::wire::sealed::SealedMessage::PeerSyncRequest,
            );
        }
    }
}
