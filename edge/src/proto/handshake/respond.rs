//! Answering an initiation, finishing our own, and installing the session either gives.

use super::*;

impl Edge {
    pub(super) fn answer_initiation(
        &mut self,
        now: Instant,
        me: EdgeId,
        id: EdgeId,
        packet: &[u8],
        noise: &[u8],
    ) -> Result<(), DropReason> {
        let prologue = prologue(&self.config.community, id, me);
        let psk = self.config.keys.data;
        // The static key the initiator used is the one whose mac1 the packet carries (our
        // current one, or the one before if it has not learned the new): one read, not two.
        let signed = packet
            .get(..packet.len().saturating_sub(MAC1_LEN))
            .unwrap_or_default();
        let mac1 = packet.get(signed.len()..).unwrap_or_default();
        let my_static = std::iter::once(&self.key)
            .chain(self.prev_key.as_ref())
            .find(|k| {
                let key = handshake::mac1_key(&psk, &k.public);
                kdf::ct_eq(&handshake::mac1(&key, signed), mac1)
            })
            .map(|k| k.secret.to_bytes())
            .ok_or(DropReason::Auth)?;
        let seed = self.rng.bytes::<32>();
        let clock = self.handshake_clock(now);
        let p = self.peers.get_mut(&id).ok_or(DropReason::UnknownSession)?;
        if p.handshake.is_some() && me < id {
            // Both started at once: ours wins, theirs is answered by our initiation.
            return Err(DropReason::Unexpected);
        }
        let params = Params {
            my_static: &my_static,
            peer_static: &p.info.key.public,
            psk: &psk,
            prologue: &prologue,
            seed,
        };
        let (responder, payload) = Responder::read(&params, noise).map_err(|_| DropReason::Auth)?;
        let init = InitiationPayload::parse(&payload).map_err(|e| e.drop_reason())?;
        if p.last_timestamp.is_some_and(|t| init.timestamp <= t) {
            return Err(DropReason::Replay);
        }

        p.last_timestamp = Some(init.timestamp);
        // Our clock goes back in the reply: initiations we sent before it (a retry still on
        // its way, one refused by the tie-break) are stale for the peer from then on.
        let reply = InitiationPayload {
            session: init.session,
            timestamp: clock,
        }
        .emit();
        let (noise, keys) = responder.reply(&reply).map_err(|_| DropReason::Auth)?;
        // Their initiation replaces ours (they have the lower id, or ours was not sent).
        p.handshake = None;
        p.handshake_retry = Duration::ZERO;
        p.next_handshake = now + RETRY_MAX;
        let peer_static = p.info.key.public;
        self.install_session(now, id, init.session, &keys, false);
        self.send_handshake(now, id, Kind::Reply, &noise, &peer_static);
        Ok(())
    }

    pub(super) fn finish_handshake(
        &mut self,
        now: Instant,
        _me: EdgeId,
        id: EdgeId,
        noise: &[u8],
    ) -> Result<(), DropReason> {
        let p = self.peers.get_mut(&id).ok_or(DropReason::UnknownSession)?;
        let pending = p.handshake.as_mut().ok_or(DropReason::Unexpected)?;
        let session = pending.session;
        // A stale or forged reply fails here and leaves the handshake in flight.
        let (payload, keys) = pending.state.finish(noise).map_err(|_| DropReason::Auth)?;
        p.handshake = None;
        let reply = hs_wire::parse_reply(&payload).map_err(|e| e.drop_reason())?;
        if reply.session != session {
            return Err(DropReason::Unexpected);
        }
        // Every initiation the peer made before this reply is stale now.
        if p.last_timestamp.is_none_or(|t| t < reply.timestamp) {
            p.last_timestamp = Some(reply.timestamp);
        }
        p.handshake_retry = Duration::ZERO;
        p.next_handshake = now + RETRY_MAX;
        self.install_session(now, id, session, &keys, true);
        self.stats.handshakes_completed += 1;
        // Confirms the session to the responder at once, whatever the path.
        let to = self.forwarding(now).peers.get(&id).map(|f| f.dst);
        if let Some(to) = to {
            self.send_peer_message(now, id, &PeerMessage::Keepalive, to);
        }
        let direct = self.peers.get(&id).is_some_and(|p| p.is_direct());
        if !direct {
            self.start_punch(now, id);
        }
        Ok(())
    }

    /// Adds a finished session, replacing the one in its slot and the oldest beyond
    /// [`MAX_KEYS`].
    pub(super) fn install_session(
        &mut self,
        now: Instant,
        id: EdgeId,
        session: u32,
        keys: &SessionKeys,
        initiator: bool,
    ) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        p.keys.retain(|k| k.slot_flags() != slot_flags(session));
        p.keys
            .push(Arc::new(PairKey::new(session, keys, initiator, now)));
        while p.keys.len() > MAX_KEYS {
            // The oldest goes, unless it is the session in use (the newest confirmed).
            let in_use = p.keys.iter().rposition(|k| k.is_confirmed());
            let victim = usize::from(in_use == Some(0));
            p.keys.remove(victim);
        }
        p.next_session = p.next_session.max(session.wrapping_add(1));
        self.fwd_dirty = true;
    }
}
