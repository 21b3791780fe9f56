//! Peers and their paths: learning peers from the supernode, hole punching over every
//! candidate, keepalives, path re-validation and relay fallback.

use super::{Edge, Event, Path, Peer};
use n2n_protocol::stats::DropReason;
use n2n_protocol::types::{CandidateKind, EdgeId};
use n2n_protocol::wire::messages::PeerInfo;
use n2n_protocol::wire::peer::PeerMessage;
use n2n_protocol::wire::sealed::SealedMessage;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// True if `a` and `b` share the first `prefix` bits.
pub(super) fn same_subnet(a: std::net::Ipv4Addr, b: std::net::Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    u32::from(a) & mask == u32::from(b) & mask
}

/// True if `b` is a host address (not the network or broadcast address) of `a`'s subnet.
pub(super) fn host_in_subnet(a: std::net::Ipv4Addr, b: std::net::Ipv4Addr, prefix: u8) -> bool {
    let host_bits = !(u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0));
    let host = u32::from(b) & host_bits;
    same_subnet(a, b, prefix) && host != 0 && host != host_bits
}

/// Probes unanswered for this long are forgotten.
const PROBE_TTL: Duration = Duration::from_secs(5);
/// Keep probing this long after the first success, to find a better candidate.
const PUNCH_LINGER: Duration = Duration::from_secs(1);

impl Edge {
    /// Adds or updates a peer from supernode information; `punch` starts probing at once
    /// (a coordinated punch: the peer is probing us now too).
    pub(super) fn upsert_peer(&mut self, now: Instant, info: PeerInfo, punch: bool) {
        if Some(info.id) == self.my_id {
            return;
        }
        // The supernode relays announcements but can neither forge one nor rebind one to
        // another id, MAC, IP, name or candidate list.
        let (community, verifier) = (&self.config.community, self.config.keys.verifier());
        if !info
            .key
            .valid_for(&self.config.keys.auth, &info.binding(community, verifier))
        {
            self.stats.drops.count(DropReason::Auth);
            return;
        }
        if !self
            .my_ip
            .is_some_and(|(ip, prefix)| host_in_subnet(ip, info.ip, prefix))
            || info.ip == self.my_ip.map_or(info.ip, |(ip, _)| ip)
        {
            // Outside our community's subnet (or ours): never routed into the TAP or named
            // in the hosts file.
            self.stats.drops.count(DropReason::Unexpected);
            return;
        }
        if let Err(why) = self
            .pins
            .admit(now, info.key.identity, info.id, info.mac, info.ip)
        {
            self.stats.drops.count(DropReason::Auth);
            self.events.push_back(Event::PeerRefused { reason: why });
            return;
        }
        let id = info.id;
        if self
            .peers
            .get(&id)
            .is_some_and(|p| p.old_statics.contains(&info.key.public))
        {
            // A key it announced before: a replayed or reordered announcement.
            self.stats.drops.count(DropReason::Replay);
            return;
        }
        let older = |seen: (u32, u32)| info.key.freshness() < seen;
        if self
            .peers
            .get(&id)
            .map(|p| p.info.key.freshness())
            .or_else(|| self.departed.get(&id).map(|d| d.freshest))
            .is_some_and(older)
        {
            // Older than what it announced before (a replay by the supernode, or a reordered
            // update): it would pass for a restart and shut out the current key.
            self.stats.drops.count(DropReason::Replay);
            return;
        }
        let (is_new, key_changed, addr_changed) = match self.peers.get_mut(&id) {
            Some(p) => {
                p.unlisted = false;
                let key_changed = p.info.key != info.key;
                if p.info.key.public != info.key.public {
                    // A new static key: its initiation clock is new, and a handshake in
                    // flight to the old key can never finish. A later epoch of the same boot
                    // is a rotation (sessions live on); a later boot is a restart: the peer
                    // lost every session we share, and numbers them from 0 again.
                    if p.old_statics.len() >= 8 {
                        p.old_statics.pop_front();
                    }
                    p.old_statics.push_back(p.info.key.public);
                    p.last_timestamp = None;
                    p.handshake = None;
                    p.handshake_retry = Duration::ZERO;
                    p.next_handshake = now;
                    // (Same boot second and no later epoch: a restart within one second.)
                    if info.key.boot != p.info.key.boot || info.key.epoch <= p.info.key.epoch {
                        p.keys.clear();
                    }
                }
                let addr_changed =
                    p.info.observed != info.observed || p.info.candidates != info.candidates;
                p.info = info;
                if addr_changed {
                    p.refresh_candidates();
                }
                (false, key_changed, addr_changed)
            }
            None => {
                let gone = self.departed.remove(&id);
                let mut p = Peer::new(info, now);
                if let Some(budget) = self.departed_budgets.remove(&id) {
                    p.punch_budget = budget;
                }
                // Back with the same static key: initiations it made before it left are still
                // replays (its clock did not restart).
                if let Some((key, t)) = gone.and_then(|d| d.last_timestamp)
                    && key == p.info.key.public
                {
                    p.last_timestamp = Some(t);
                }
                self.peers.insert(id, p);
                (true, true, true)
            }
        };
        let first = self.my_id.is_some_and(|me| me < id);
        if let Some(p) = self.peers.get_mut(&id)
            && key_changed
            && p.keys.is_empty()
            && p.handshake.is_none()
        {
            // The lower id starts; the other waits a moment for it (one handshake, not two).
            if first {
                self.initiate_handshake(now, id);
            } else {
                p.next_handshake = now + super::handshake::RETRY_FIRST;
            }
        }
        if is_new {
            self.events.push_back(Event::PeerAdded { id });
        }
        // New peers, changed addresses and coordinated punches all (re)validate the path.
        if punch || is_new || addr_changed {
            self.start_punch(now, id);
        }
    }

    /// Applies a complete peer list: peers it lacks are gone, unless they still talk to us
    /// directly (a restarted supernode lists peers only as they re-register).
    pub(super) fn reconcile_full_list(&mut self, now: Instant, listed: &[EdgeId]) {
        let timeout = self.config.path_timeout;
        let mut gone = Vec::new();
        for (id, p) in self.peers.iter_mut().filter(|(id, _)| !listed.contains(id)) {
            let alive = p.is_direct()
                && p.last_rx
                    .is_some_and(|t| now.saturating_duration_since(t) < timeout);
            if alive {
                p.unlisted = true;
            } else {
                gone.push(*id);
            }
        }
        for id in gone {
            self.remove_peer(now, id);
        }
    }

    pub(super) fn remove_peer(&mut self, now: Instant, id: EdgeId) {
        let Some(p) = self.peers.remove(&id) else {
            return;
        };
        self.macs.retain(|_, (p, _)| *p != id);
        self.pins.departed(now, p.info.key.identity);
        self.events.push_back(Event::PeerRemoved { id });
        self.departed
            .retain(|_, d| now.saturating_duration_since(d.left) < super::DEPARTED_FOR);
        if self.departed.len() >= super::MAX_DEPARTED
            && let Some(oldest) = self
                .departed
                .iter()
                .min_by_key(|(_, d)| d.left)
                .map(|(k, _)| *k)
        {
            self.departed.remove(&oldest);
        }
        let last_timestamp = p.last_timestamp.map(|t| (p.info.key.public, t));
        let freshest = p.info.key.freshness();
        // Leaving and coming back must not refill its probe budget.
        self.departed_budgets.insert(id, p.punch_budget);
        let info = p.info;
        self.departed.insert(
            id,
            super::Departed {
                mac: info.mac,
                ip: info.ip,
                desc: info.desc,
                left: now,
                last_timestamp,
                freshest,
            },
        );
        let departed = &self.departed;
        self.departed_budgets
            .retain(|k, _| departed.contains_key(k));
    }

    /// Starts (or extends) a probing burst to every candidate of a peer.
    pub(super) fn start_punch(&mut self, now: Instant, id: EdgeId) {
        let duration = self.config.punch_duration;
        if let Some(p) = self.peers.get_mut(&id) {
            p.punch_until = Some(now + duration);
            p.next_probe = now;
        }
        self.probe_round(now, id);
        let at = now + self.config.probe_interval;
        self.timers.set_earliest(super::Timer::Maintenance, at);
    }

    /// Our public address changed: every peer must re-validate, with the supernode's help.
    pub(super) fn repunch_all(&mut self, now: Instant) {
        let ids: Vec<EdgeId> = self.peers.keys().copied().collect();
        for id in ids {
            self.request_punch(now, id);
        }
    }

    fn request_punch(&mut self, now: Instant, id: EdgeId) {
        if let (super::Phase::Up, Some(me)) = (&self.phase, self.my_id) {
            self.seal_to_sn(me, &SealedMessage::PunchRequest { peer: id });
        }
        self.start_punch(now, id);
    }

    fn probe_round(&mut self, now: Instant, id: EdgeId) {
        let sn = self.supernode();
        let interval = self.config.probe_interval;
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        // A peer chooses its own candidates (and how often they change): rounds of probes to
        // them come out of a budget, so no member can make us probe without end.
        if !p.punch_budget.take(super::peer::PROBE_ROUNDS_PER_PEER, now) {
            p.next_probe = now + interval;
            self.stats.drops.count(DropReason::RateLimited);
            return;
        }
        let targets: Vec<SocketAddr> = p
            .candidates
            .keys()
            .copied()
            .filter(|a| Some(*a) != sn)
            .collect();
        for to in targets {
            self.send_probe(now, id, to);
        }
        if let Some(p) = self.peers.get_mut(&id) {
            p.next_probe = now + self.config.probe_interval;
        }
    }

    fn send_probe(&mut self, now: Instant, id: EdgeId, to: SocketAddr) {
        let probe_id = self.rng.next_u64();
        if let Some(p) = self.peers.get_mut(&id) {
            p.probes.insert(probe_id, (to, now));
        }
        self.send_peer_message(
            now,
            id,
            &PeerMessage::Probe {
                probe_id,
                sent_to: to,
            },
            to,
        );
    }

    /// Periodic work: probe rounds, keepalives, path timeouts, punch retries.
    pub(super) fn maintain_paths(&mut self, now: Instant) {
        let ids: Vec<EdgeId> = self.peers.keys().copied().collect();
        for id in ids {
            let Some(p) = self.peers.get_mut(&id) else {
                continue;
            };
            p.probes
                .retain(|_, (_, at)| now.saturating_duration_since(*at) < PROBE_TTL);
            let punching = p.punching(now);
            if punching {
                if now >= p.next_probe {
                    self.probe_round(now, id);
                }
                continue;
            }
            if let Some(until) = p.punch_until.take()
                && !p.is_direct()
            {
                // The attempt failed: stay relayed and try again later, backing off.
                let base = self.config.repunch_after;
                p.punch_backoff = if p.punch_backoff.is_zero() {
                    base
                } else {
                    (p.punch_backoff * 2).min(base * 16)
                };
                p.next_punch_request = until + p.punch_backoff;
                continue;
            }
            match p.path {
                Path::Direct { addr, .. } => {
                    let silent = p.last_ack.is_none_or(|t| {
                        now.saturating_duration_since(t) > self.config.path_timeout
                    });
                    if silent && p.unlisted {
                        self.remove_peer(now, id);
                    } else if silent {
                        p.path = Path::Relayed;
                        p.rtt = None;
                        p.punch_backoff = Duration::ZERO;
                        self.events.push_back(Event::PathChanged {
                            id,
                            path: Path::Relayed,
                        });
                        self.request_punch(now, id);
                    } else if now >= p.next_probe {
                        p.next_probe = now + self.config.keepalive;
                        self.send_probe(now, id, addr);
                    }
                }
                Path::Relayed => {
                    if now >= p.next_punch_request {
                        self.request_punch(now, id);
                    }
                }
            }
        }
    }

    /// Handles an authenticated peer control message that arrived from `from`.
    pub(super) fn handle_peer_message(
        &mut self,
        now: Instant,
        id: EdgeId,
        from: SocketAddr,
        msg: PeerMessage,
    ) {
        self.fwd_dirty = true;
        if msg == PeerMessage::Keepalive {
            return; // its work (confirming the session) is done
        }
        if Some(from) == self.supernode() {
            // Probes are never relayed; one that claims to be is meaningless.
            self.stats.drops.count(DropReason::Unexpected);
            return;
        }
        match msg {
            PeerMessage::Probe { probe_id, .. } => {
                self.send_peer_message(
                    now,
                    id,
                    &PeerMessage::ProbeAck {
                        probe_id,
                        seen_from: from,
                    },
                    from,
                );
                let Some(p) = self.peers.get_mut(&id) else {
                    return;
                };
                let new = p.add_candidate(from, CandidateKind::PeerReflexive);
                // The peer reaches us from an address we did not know (a symmetric NAT's new
                // port): probe it back so our side of the path opens too.
                if new && !p.is_direct() && !p.punching(now) {
                    self.start_punch(now, id);
                } else if new && !p.is_direct() {
                    self.send_probe(now, id, from);
                }
            }
            PeerMessage::ProbeAck { probe_id, .. } => {
                let Some(p) = self.peers.get_mut(&id) else {
                    return;
                };
                let Some((target, sent_at)) = p.probes.remove(&probe_id) else {
                    self.stats.drops.count(DropReason::Unexpected);
                    return;
                };
                let sample = now.saturating_duration_since(sent_at);
                p.rtt = Some(match p.rtt {
                    Some(r) => (r * 7 + sample) / 8,
                    None => sample,
                });
                let kind = p
                    .candidates
                    .get(&target)
                    .copied()
                    .unwrap_or(CandidateKind::PeerReflexive);
                let better = match p.path {
                    Path::Relayed => true,
                    Path::Direct { addr, kind: cur } => addr == from || kind < cur,
                };
                if better {
                    let was = p.path;
                    p.path = Path::Direct { addr: from, kind };
                    p.last_ack = Some(now);
                    p.punch_backoff = Duration::ZERO;
                    if p.punching(now) {
                        p.punch_until = p.punch_until.map(|u| u.min(now + PUNCH_LINGER));
                    }
                    if was != p.path {
                        let path = p.path;
                        self.events.push_back(Event::PathChanged { id, path });
                    }
                }
            }
            PeerMessage::Keepalive => {}
        }
    }
}
