//! The initiator's side: when to start a handshake (rekey on time and count, retry while
//! unanswered) and where it goes.

use super::*;

impl Edge {
    /// Starts, retries and rekeys handshakes, and drops sessions past their life.
    pub(in crate::proto) fn maintain_sessions(&mut self, now: Instant) {
        let ids: Vec<EdgeId> = self.peers.keys().copied().collect();
        for id in ids {
            let Some(p) = self.peers.get_mut(&id) else {
                continue;
            };
            let before = p.keys.len();
            p.keys.retain(|k| k.alive(now));
            if p.keys.len() != before {
                self.fwd_dirty = true;
            }
            if now < p.next_handshake {
                continue;
            }
            // Rekey from the newest confirmed session; a responder session the initiator
            // never confirmed (its reply lost, or a replayed initiation) is given a while,
            // then we start our own.
            let confirmed = p.keys.iter().rev().find(|k| k.is_confirmed());
            let due = match (&p.handshake, confirmed) {
                (Some(_), _) => true, // unanswered: retry
                (None, Some(k)) => {
                    let age = now.saturating_duration_since(k.created);
                    let rekey_at = if k.initiator {
                        REKEY_AFTER
                    } else {
                        REKEY_AFTER + RESPONDER_REKEY_DELAY
                    };
                    age >= rekey_at || k.sent() >= REKEY_AFTER_MESSAGES
                }
                (None, None) => p
                    .keys
                    .last()
                    .is_none_or(|k| now.saturating_duration_since(k.created) >= UNCONFIRMED_WAIT),
            };
            if due {
                self.initiate_handshake(now, id);
            }
        }
    }

    /// Sends a (new) initiation to `id` unless we cannot address it yet.
    pub(in crate::proto) fn initiate_handshake(&mut self, now: Instant, id: EdgeId) {
        // Not only while registered: direct paths outlive a lost supernode, so must their keys.
        let Some(me) = self.my_id else {
            return;
        };
        let timestamp = self.handshake_clock(now);
        let seed = self.rng.bytes::<32>();
        let my_static = self.key.secret.to_bytes();
        let psk = self.config.keys.data;
        let prologue = prologue(&self.config.community, me, id);
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let session = match &p.handshake {
            Some(pending) => pending.session,
            None => {
                let s = p.next_session;
                p.next_session = s.wrapping_add(1);
                s
            }
        };
        let params = Params {
            my_static: &my_static,
            peer_static: &p.info.key.public,
            psk: &psk,
            prologue: &prologue,
            seed,
        };
        let payload = InitiationPayload { session, timestamp }.emit();
        let Ok((state, noise)) = Initiator::start(&params, &payload) else {
            return;
        };
        p.handshake = Some(Pending {
            session,
            state,
            sent_at: now,
        });
        p.handshake_retry = if p.handshake_retry.is_zero() {
            RETRY_FIRST
        } else {
            (p.handshake_retry * 2).min(RETRY_MAX)
        };
        p.next_handshake = now + p.handshake_retry;
        let peer_static = p.info.key.public;
        self.send_handshake(now, id, Kind::Initiation, &noise, &peer_static);
        self.stats.handshakes_sent += 1;
    }

    pub(super) fn send_handshake(
        &mut self,
        now: Instant,
        id: EdgeId,
        kind: Kind,
        noise: &[u8],
        peer_static: &[u8; 32],
    ) {
        let Some(me) = self.my_id else {
            return;
        };
        let Some(to) = self.handshake_destination(now, id) else {
            return;
        };
        let cookie = self
            .peers
            .get(&id)
            .and_then(|p| p.cookie)
            .filter(|(_, at)| now.saturating_duration_since(*at) < COOKIE_USE_FOR)
            .map(|(c, _)| c);
        let out = self.handshake_datagram(me, id, kind, noise, cookie.as_ref(), peer_static);
        self.send(to, out);
    }

    /// Where a handshake to `id` goes: its direct address, else the supernode.
    pub(super) fn handshake_destination(&self, _now: Instant, id: EdgeId) -> Option<SocketAddr> {
        match self.peers.get(&id)?.path {
            crate::proto::Path::Direct { addr, .. } => Some(addr),
            crate::proto::Path::Relayed => self.supernode(),
        }
    }
}
