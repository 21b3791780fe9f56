//! Sealed control from registered edges: heartbeats, punch coordination, peer sync, goodbye;
//! and distribution of peer information.

use super::{RemoveReason, Supernode};
use n2n_common::stats::DropReason;
use n2n_common::types::EdgeId;
use n2n_common::wire::messages::PeerInfo;
use n2n_common::wire::plain::PlainMessage;
use n2n_common::wire::sealed::{HEADER_LEN, SealedHeader, SealedMessage};
use n2n_common::wire::{MAX_CONTROL_DATAGRAM, TAG_LEN};
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
        let moved = rec.endpoint != from;
        rec.endpoint = from;
        let id = rec.id;
        let mut changed = moved;
        match msg {
            SealedMessage::Heartbeat { candidates, key } => {
                changed |= rec.candidates != candidates || rec.key != key;
                rec.candidates = candidates;
                rec.key = key;
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
            SealedMessage::PeerSyncRequest => self.send_peer_list(id),
            _ => return Err(DropReason::Unexpected),
        }
        if changed && let Some(rec) = self.edges.get(&id) {
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
        let (info_a, info_b) = (ra.peer_info(), rb.peer_info());
        self.seal_to(a, &SealedMessage::Punch { peer: info_b });
        self.seal_to(b, &SealedMessage::Punch { peer: info_a });
        self.stats.punches += 1;
        Ok(())
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
