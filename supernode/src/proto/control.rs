//! Sealed control from registered edges: heartbeats, punch coordination, peer sync, goodbye;
//! and distribution of peer information.

use super::{RemoveReason, Supernode};
use n2n_protocol::crypto::kdf;
use n2n_protocol::stats::DropReason;
use n2n_protocol::types::EdgeId;
use n2n_protocol::wire::messages::PeerInfo;
use n2n_protocol::wire::plain::PlainMessage;
use n2n_protocol::wire::sealed::{HEADER_LEN, SealedHeader, SealedMessage};
use n2n_protocol::wire::{MAX_CONTROL_DATAGRAM, TAG_LEN};
use std::net::SocketAddr;
use std::time::Instant;

impl Supernode {
    pub(super) fn handle_sealed(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), DropReason> {
        let (hdr, _) = SealedHeader::parse(bytes).map_err(|e| e.drop_reason())?;
        let Some(rec) = self.edges.get_mut(&hdr.edge_id) else {
            let rate = self.config.limits.unknown_session_replies;
            if hdr.edge_id != 0 && self.unknown_replies.take(rate, now) {
                self.send(
                    from,
                    PlainMessage::UnknownSession {
                        edge_id: hdr.edge_id,
                    }
                    .emit(),
                );
            }
            return Err(DropReason::UnknownSession);
        };
        let msg = rec.session.open(&hdr, bytes)?;
        rec.last_seen = now;
        let id = rec.id;
        let mut changed = false;
        if rec.endpoint != from {
            // Authenticated, but maybe a fresh message an on-path attacker withheld and sent
            // from elsewhere: the endpoint moves only once the new address proves it receives.
            if let SealedMessage::PathResponse { nonce } = &msg
                && rec
                    .challenge
                    .is_some_and(|(addr, n, _)| addr == from && kdf::ct_eq(&n, nonce))
            {
                rec.endpoint = from;
                rec.challenge = None;
                changed = true;
            } else if rec.challenge.is_none_or(|(_, _, at)| {
                now.saturating_duration_since(at) >= super::CHALLENGE_EVERY
            }) {
                // One challenge a second per edge, whatever address asks.
                let nonce = self.rng.bytes();
                rec.challenge = Some((from, nonce, now));
                let dgram = rec
                    .session
                    .seal(id, &SealedMessage::PathChallenge { nonce });
                self.send(from, dgram);
            }
        }
        let Some(rec) = self.edges.get_mut(&id) else {
            return Ok(());
        };
        match msg {
            SealedMessage::Heartbeat { candidates, key } => {
                if rec.candidates != candidates || rec.key != key {
                    // What peers will be told must be what the edge signed.
                    if rec.announcement_ok(&key, &candidates) {
                        rec.candidates = candidates;
                        rec.key = key;
                        rec.bound = true;
                        changed = true;
                    } else {
                        self.stats.drops.count(DropReason::Auth);
                    }
                }
                let ack = rec
                    .session
                    .seal(id, &SealedMessage::HeartbeatAck { observed: from });
                self.send(from, ack);
            }
            SealedMessage::Unregister => {
                self.remove_edge(id, RemoveReason::Unregistered);
                return Ok(());
            }
            SealedMessage::PunchRequest { peer } => {
                let rate = self.config.limits.punches_per_edge;
                if !rec.punch_bucket.take(rate, now) {
                    self.stats.limit_hits.punches += 1;
                    return Err(DropReason::RateLimited);
                }
                self.coordinate_punch(id, peer)?;
            }
            SealedMessage::PeerSyncRequest => {
                if !rec.sync_bucket.take(super::PEER_SYNCS_PER_EDGE, now) {
                    self.stats.limit_hits.peer_syncs += 1;
                    return Err(DropReason::RateLimited);
                }
                self.send_peer_list(id);
            }
            SealedMessage::PathResponse { .. } => {}
            _ => return Err(DropReason::Unexpected),
        }
        if changed && let Some(rec) = self.edges.get(&id).filter(|r| r.bound) {
            let (community, info) = (rec.community.clone(), rec.peer_info());
            self.broadcast(
                &community,
                Some(id),
                &SealedMessage::PeerUpdate { peers: vec![info] },
            );
        }
        Ok(())
    }

    /// Tells both edges to probe each other now, each with the other's freshest candidates.
    fn coordinate_punch(&mut self, a: EdgeId, b: EdgeId) -> Result<(), DropReason> {
        let (Some(ra), Some(rb)) = (self.edges.get(&a), self.edges.get(&b)) else {
            return Err(DropReason::NoRoute);
        };
        if ra.community != rb.community || a == b {
            return Err(DropReason::WrongCommunity);
        }
        if !(ra.bound && rb.bound) {
            return Err(DropReason::NoRoute);
        }
        let (info_a, info_b) = (ra.peer_info(), rb.peer_info());
        self.seal_to(a, &SealedMessage::Punch { peer: info_b });
        self.seal_to(b, &SealedMessage::Punch { peer: info_a });
        self.stats.punches += 1;
        Ok(())
    }

    /// Seals `msg` to edge `id` on its session: anything a supernode (or a hostile operator)
    /// can say to an edge. The simulator's hostile supernode speaks through this; what the
    /// edges accept from it is the protocol's business.
    pub fn say(&mut self, id: EdgeId, msg: &SealedMessage) {
        self.seal_to(id, msg);
    }

    /// Seals `msg` on edge `id`'s session and queues it to its endpoint.
    pub(super) fn seal_to(&mut self, id: EdgeId, msg: &SealedMessage) {
        if let Some(rec) = self.edges.get_mut(&id) {
            let dgram = rec.session.seal(id, msg);
            let dst = rec.endpoint;
            self.send(dst, dgram);
        }
    }

    /// Sends `msg` to every member of `community` except `except`.
    pub(super) fn broadcast(
        &mut self,
        community: &str,
        except: Option<EdgeId>,
        msg: &SealedMessage,
    ) {
        let members: Vec<EdgeId> = match self.communities.get(community) {
            Some(c) => c
                .members
                .iter()
                .copied()
                .filter(|m| Some(*m) != except)
                .collect(),
            None => return,
        };
        for m in members {
            self.seal_to(m, msg);
        }
    }

    /// Sends edge `id` the full list of its community's other members, in datagram-sized chunks.
    pub(super) fn send_peer_list(&mut self, id: EdgeId) {
        let Some(rec) = self.edges.get(&id) else {
            return;
        };
        let peers: Vec<PeerInfo> = self
            .communities
            .get(&rec.community)
            .map(|c| {
                c.members
                    .iter()
                    .filter(|m| **m != id)
                    .filter_map(|m| self.edges.get(m))
                    .filter(|e| e.bound)
                    .map(|e| e.peer_info())
                    .collect()
            })
            .unwrap_or_default();
        let budget = MAX_CONTROL_DATAGRAM - HEADER_LEN - TAG_LEN - 2;
        let mut chunks: Vec<Vec<PeerInfo>> = vec![Vec::new()];
        let mut used = 0;
        for p in peers {
            let len = p.encoded_len();
            let full = chunks
                .last()
                .is_some_and(|c| c.len() == 255 || used + len > budget);
            if full {
                chunks.push(Vec::new());
                used = 0;
            }
            used += len;
            if let Some(c) = chunks.last_mut() {
                c.push(p);
            }
        }
        let n = chunks.len();
        for (i, peers) in chunks.into_iter().enumerate() {
            self.seal_to(
                id,
                &SealedMessage::PeerList {
                    first: i == 0,
                    last: i + 1 == n,
                    peers,
                },
            );
        }
    }
}
