//! Pair sessions: a Noise handshake with each peer ([`n2n_protocol::crypto::handshake`]) gives
//! the keys of one session; sessions are rekeyed on time and count, retried while
//! unanswered, and dropped when too old. No session key is ever derived twice, so a counter
//! never restarts under a key it has used (a peer that leaves and returns, a restarted
//! supernode or a replayed announcement only ever lead to a new handshake).
//!
//! Both sides may start a handshake; when both do at once, the lower edge id's wins. The
//! responder sends with a new session only once the initiator's first packet under it
//! arrives (unless it has no other), as WireGuard does.

use super::peer::{Pending, REKEY_AFTER, REKEY_AFTER_MESSAGES, slot_flags};
use super::{Edge, MAX_KEYS, PairKey};
use n2n_protocol::crypto::handshake::{self, Initiator, MAC1_LEN, Params, Responder, SessionKeys};
use n2n_protocol::crypto::kdf;
use n2n_protocol::stats::DropReason;
use n2n_protocol::types::EdgeId;
use n2n_protocol::wire::data::{DataHeader, DataPacket, HEADER_LEN, flags};
use n2n_protocol::wire::handshake::{self as hs_wire, HandshakeBody, InitiationPayload, Kind};
use n2n_protocol::wire::peer::PeerMessage;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The first retry of an unanswered handshake; it doubles up to [`RETRY_MAX`].
pub(super) const RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between retries (WireGuard's REKEY_TIMEOUT).
const RETRY_MAX: Duration = Duration::from_secs(5);
/// The responder of a session rekeys this much later than its initiator would, so the two
/// rarely start at once.
const RESPONDER_REKEY_DELAY: Duration = Duration::from_secs(15);
/// Handshake messages taken from one peer per second; more are dropped (rate_limited).
const HANDSHAKES_PER_SECOND: u32 = 8;
/// How long a responder session may stay unconfirmed, with nothing else to send on, before
/// we start a handshake ourselves.
const UNCONFIRMED_WAIT: Duration = Duration::from_secs(10);
/// How many recent handshake `mac1`s are remembered per peer: a replayed datagram is dropped
/// before it costs anything or uses the peer's budget.
const SEEN_MAC1S: usize = 16;
/// A cookie is made for a 2-minute bucket; the current and the previous bucket are accepted.
const COOKIE_BUCKET: Duration = Duration::from_secs(120);
/// How long we use a cookie a peer gave us.
const COOKIE_USE_FOR: Duration = Duration::from_secs(120);
/// Source addresses with their own `mac2` budget, per peer.
const COOKIE_ADDRESSES: usize = 4;

impl Edge {
    /// A handshake message from edge `peer` whose `mac1` the receive path checked; `packet`
    /// is the datagram as received.
    pub fn handle_handshake(
        &mut self,
        now: Instant,
        peer: EdgeId,
        from: SocketAddr,
        packet: &[u8],
    ) {
        if let Err(reason) = self.run_handshake(now, peer, from, packet) {
            self.stats.drops.count(reason);
        }
    }

    /// Starts, retries and rekeys handshakes, and drops sessions past their life.
    pub(super) fn maintain_sessions(&mut self, now: Instant) {
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
    pub(super) fn initiate_handshake(&mut self, now: Instant, id: EdgeId) {
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

    fn run_handshake(
        &mut self,
        now: Instant,
        id: EdgeId,
        from: SocketAddr,
        packet: &[u8],
    ) -> Result<(), DropReason> {
        let me = self.my_id.ok_or(DropReason::Unexpected)?;
        let Some(p) = self.peers.get_mut(&id) else {
            self.request_sync(now);
            return Err(DropReason::UnknownSession);
        };
        let mac1 = packet
            .get(packet.len().saturating_sub(MAC1_LEN)..)
            .and_then(|m| <[u8; MAC1_LEN]>::try_from(m).ok())
            .ok_or(DropReason::Malformed)?;
        if p.seen_mac1s.contains(&mac1) {
            return Err(DropReason::Replay);
        }
        if p.seen_mac1s.len() >= SEEN_MAC1S {
            p.seen_mac1s.pop_front();
        }
        p.seen_mac1s.push_back(mac1);
        let pkt = DataPacket::new_checked(packet).map_err(|e| e.drop_reason())?;
        let body = HandshakeBody::parse(pkt.sealed_payload()).map_err(|e| e.drop_reason())?;
        if body.kind == Kind::Cookie {
            // Only a member can make its mac1; a wrong cookie only costs us its budget.
            let cookie = <[u8; handshake::COOKIE_LEN]>::try_from(body.noise)
                .map_err(|_| DropReason::Malformed)?;
            p.cookie = Some((cookie, now));
            return Ok(());
        }
        // A member (who alone can make a fresh valid mac1) still cannot make us do unbounded
        // Diffie-Hellman: past the peer's budget we are under load, and take only messages
        // whose mac2 proves they come from an address that received our cookie.
        if !spend(&mut p.handshake_budget, now) {
            let bucket = self.cookie_bucket(now);
            let signed = packet
                .get(..packet.len().saturating_sub(2 * MAC1_LEN))
                .unwrap_or_default();
            let mac2_ok = body.mac2.is_some_and(|mac2| {
                [bucket, bucket.wrapping_sub(1)].iter().any(|b| {
                    let cookie = handshake::cookie(&self.cookie_secret, &from, *b);
                    kdf::ct_eq(&handshake::mac2(&cookie, signed), mac2)
                })
            });
            if !mac2_ok {
                self.send_cookie(now, id, from);
                return Err(DropReason::RateLimited);
            }
            let p = self.peers.get_mut(&id).ok_or(DropReason::UnknownSession)?;
            if !p.cookie_budgets.iter().any(|(a, _)| *a == from) {
                if p.cookie_budgets.len() >= COOKIE_ADDRESSES {
                    p.cookie_budgets.remove(0);
                }
                p.cookie_budgets.push((from, (now, 0)));
            }
            let budget = p.cookie_budgets.iter_mut().find(|(a, _)| *a == from);
            if !budget.is_some_and(|(_, b)| spend(b, now)) {
                return Err(DropReason::RateLimited);
            }
        }
        match body.kind {
            Kind::Initiation => self.answer_initiation(now, me, id, packet, body.noise),
            Kind::Reply => self.finish_handshake(now, me, id, body.noise),
            Kind::Cookie => Ok(()),
        }
    }

    /// The cookie bucket of `now`.
    fn cookie_bucket(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_secs() / COOKIE_BUCKET.as_secs()
    }

    /// Asks peer `id` (at `to`, where its handshake came from) for a `mac2`: a cookie for
    /// that address, in a datagram smaller than the one that triggered it (so, as in
    /// WireGuard, one per message: a shared limit would let a flood use it up).
    fn send_cookie(&mut self, now: Instant, id: EdgeId, to: SocketAddr) {
        let (Some(me), Some(p)) = (self.my_id, self.peers.get(&id)) else {
            return;
        };
        let peer_static = p.info.key.public;
        let cookie = handshake::cookie(&self.cookie_secret, &to, self.cookie_bucket(now));
        let out = self.handshake_datagram(me, id, Kind::Cookie, &cookie, None, &peer_static);
        self.send(to, out);
    }

    /// A handshake datagram to `id`: header, kind, `body`, a `mac2` with `cookie` if given,
    /// and the `mac1` for the peer's static key.
    fn handshake_datagram(
        &self,
        me: EdgeId,
        id: EdgeId,
        kind: Kind,
        body: &[u8],
        cookie: Option<&[u8; handshake::COOKIE_LEN]>,
        peer_static: &[u8; 32],
    ) -> Vec<u8> {
        let mut header = [0u8; HEADER_LEN];
        DataHeader {
            flags: flags::HANDSHAKE,
            dst: id,
            src: me,
            counter: 0,
        }
        .emit(&mut header);
        let mut out = header.to_vec();
        let kind_byte = HandshakeBody::kind_byte(kind);
        out.push(if cookie.is_some() {
            kind_byte | hs_wire::MAC2_FLAG
        } else {
            kind_byte
        });
        out.extend_from_slice(body);
        if let Some(cookie) = cookie {
            let mac2 = handshake::mac2(cookie, &out);
            out.extend_from_slice(&mac2);
        }
        let key = handshake::mac1_key(&self.config.keys.data, peer_static);
        let mac1 = handshake::mac1(&key, &out);
        out.extend_from_slice(&mac1);
        out
    }

    fn answer_initiation(
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

    fn finish_handshake(
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
    fn install_session(
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

    fn send_handshake(
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
    fn handshake_destination(&self, _now: Instant, id: EdgeId) -> Option<SocketAddr> {
        match self.peers.get(&id)?.path {
            super::Path::Direct { addr, .. } => Some(addr),
            super::Path::Relayed => self.supernode(),
        }
    }

    /// Strictly grows within this process; peers compare it only for our current static key,
    /// which a restart replaces.
    fn handshake_clock(&self, now: Instant) -> u64 {
        let t = now.saturating_duration_since(self.started).as_nanos();
        u64::try_from(t).unwrap_or(u64::MAX).saturating_add(1)
    }
}

/// Takes one from a per-second budget of [`HANDSHAKES_PER_SECOND`]; false when it is spent.
fn spend(budget: &mut (Instant, u32), now: Instant) -> bool {
    let (since, n) = budget;
    if now.saturating_duration_since(*since) >= Duration::from_secs(1) {
        (*since, *n) = (now, 0);
    }
    *n += 1;
    *n <= HANDSHAKES_PER_SECOND
}

/// Binds the handshake to the community and both ids (so a supernode cannot attach it to
/// another pair).
fn prologue(community: &str, initiator: EdgeId, responder: EdgeId) -> Vec<u8> {
    let mut p = b"n2n-rs/2 pair\0".to_vec();
    p.extend_from_slice(community.as_bytes());
    p.push(0);
    p.extend_from_slice(&initiator.to_be_bytes());
    p.extend_from_slice(&responder.to_be_bytes());
    p
}
