//! Pair sessions: a Noise handshake with each peer ([`n2n_protocol::crypto::handshake`]) gives
//! the keys of one session; sessions are rekeyed on time and count, retried while
//! unanswered, and dropped when too old. No session key is ever derived twice, so a counter
//! never restarts under a key it has used (a peer that leaves and returns, a restarted
//! supernode or a replayed announcement only ever lead to a new handshake).
//!
//! Both sides may start a handshake; when both do at once, the lower edge id's wins. The
//! responder sends with a new session only once the initiator's first packet under it
//! arrives (unless it has no other), as WireGuard does.

mod initiate;
mod respond;

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
