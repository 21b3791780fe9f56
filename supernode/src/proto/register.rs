//! The hello exchange and registration: admission (which community: `admission.rs`),
//! leases, the ack and the peer list.

use super::{EdgeRecord, Event, Lease, Supernode, site_key, source_key};
use n2n_protocol::crypto::aead::SessionKey;
use n2n_protocol::crypto::kdf;
use n2n_protocol::ratelimit::TokenBucket;
use n2n_protocol::session::{ControlSession, REGISTER_PREFIX, Role};
use n2n_protocol::stats::DropReason;
use n2n_protocol::types::{EdgeId, MAX_EDGE_ID};
use n2n_protocol::wire::messages::RegisterBody;
use n2n_protocol::wire::plain::{PlainMessage, REGISTER_AAD_LEN};
use n2n_protocol::wire::sealed::{NakCode, SealedMessage};
use std::net::SocketAddr;
use std::time::Instant;
use x25519_dalek::PublicKey;

impl Supernode {
    pub(super) fn handle_plain(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), DropReason> {
        match PlainMessage::parse(bytes).map_err(|e| e.drop_reason())? {
            PlainMessage::Hello { nonce } => {
                if !self.handshakes.allow(&source_key(from.ip()), now) {
                    self.stats.limit_hits.handshakes += 1;
                    return Err(DropReason::RateLimited);
                }
                let cookie = self.cookie_for(from, now);
                let reply = self.hello_reply(nonce, cookie);
                // Never an amplifier: an identity too large for the hello is refused at
                // start (see hello_reply_len); this holds even if one gets here.
                if reply.len() > bytes.len() {
                    return Err(DropReason::RateLimited);
                }
                self.send(from, reply);
                Ok(())
            }
            PlainMessage::Register {
                sn_epoch,
                edge_key,
                cookie,
                sealed,
            } => {
                if sn_epoch != self.epoch {
                    return Err(DropReason::Unexpected);
                }
                if !self.cookie_valid(from, now, &cookie) {
                    return Err(DropReason::Auth);
                }
                if !self.handshakes.allow(&source_key(from.ip()), now) {
                    self.stats.limit_hits.handshakes += 1;
                    return Err(DropReason::RateLimited);
                }
                let aad = bytes.get(..REGISTER_AAD_LEN).ok_or(DropReason::Malformed)?;
                self.handle_register(now, from, aad, edge_key, sealed)
            }
            PlainMessage::HelloReply { .. } | PlainMessage::UnknownSession { .. } => {
                Err(DropReason::Unexpected)
            }
        }
    }

    /// The next edge id no lease and no online edge holds, searching on from the last one
    /// given and wrapping around (ids of reclaimed leases and removed communities come back,
    /// after every other free id: a peer may still remember a recent one).
    fn free_edge_id(&self) -> Option<EdgeId> {
        let leases = self.communities.values().flat_map(|c| c.leases.values());
        let used: std::collections::HashSet<EdgeId> = leases
            .map(|l| l.edge_id)
            .chain(self.edges.keys().copied())
            .collect();
        // Among used + 1 consecutive ids one is free (if any is).
        let mut id = self.next_edge_id;
        for _ in 0..=used.len() {
            if !(1..=MAX_EDGE_ID).contains(&id) {
                id = 1;
            }
            if !used.contains(&id) {
                return Some(id);
            }
            id += 1;
        }
        None
    }

    fn hello_reply(&self, nonce: [u8; 16], cookie: [u8; 16]) -> Vec<u8> {
        PlainMessage::HelloReply {
            nonce,
            sn_key: self.public,
            sn_epoch: self.epoch,
            cookie,
            identity: self.identity.public_der().to_vec(),
            signature: self.signature.clone(),
        }
        .emit()
    }

    /// Bytes of this supernode's hello reply. Above [`n2n_protocol::wire::plain::HELLO_LEN`]
    /// it would answer a spoofed hello with more than it got (an identity key over 2048
    /// bits): the daemon refuses to start so.
    pub fn hello_reply_len(&self) -> usize {
        self.hello_reply([0; 16], [0; 16]).len()
    }

    fn handle_register(
        &mut self,
        now: Instant,
        from: SocketAddr,
        aad: &[u8],
        edge_key: [u8; 32],
        mut sealed: Vec<u8>,
    ) -> Result<(), DropReason> {
        let shared = self.secret.diffie_hellman(&PublicKey::from(edge_key));
        let (e2s, s2e) = kdf::session_keys(shared.as_bytes(), &edge_key, &self.public);
        let plain = SessionKey::new(&e2s)
            .open(REGISTER_PREFIX, 0, aad, &mut sealed)
            .map_err(|_| DropReason::Auth)?;
        let body = RegisterBody::parse(plain).map_err(|e| e.drop_reason())?;
        if let Some((id, _)) = self.used_register_keys.get(&edge_key).copied() {
            // Never a second session under one key: its counter would start again at 0.
            return self.answer_resent_register(from, id, edge_key);
        }
        let result = self.admit(now, from, edge_key, body, &e2s, &s2e);
        // Refused keys are remembered too (their NAK used the key's counter 0).
        let id = *result.as_ref().unwrap_or(&0);
        self.used_register_keys.insert(edge_key, (id, now));
        result.map(|_| ())
    }

    /// A REGISTER whose key already made a session: the edge's retransmission (its ack was
    /// lost) is answered from that session with fresh counters; anything else is a replay.
    fn answer_resent_register(
        &mut self,
        from: SocketAddr,
        id: EdgeId,
        edge_key: [u8; 32],
    ) -> Result<(), DropReason> {
        let ack = self
            .edges
            .get(&id)
            .filter(|r| r.edge_key == edge_key && r.endpoint == from)
            .and_then(|r| {
                let prefix = self.communities.get(&r.community)?.prefix;
                Some(self.register_ack(id, r.ip, prefix, from))
            })
            .ok_or(DropReason::Replay)?;
        let rec = self.edges.get_mut(&id).ok_or(DropReason::Replay)?;
        let datagram = rec.session.seal(id, &ack);
        self.send(from, datagram);
        self.send_peer_list(id);
        Ok(())
    }

    /// The ack of a registration of `edge_id` at `ip`/`prefix`, seen from `observed`.
    fn register_ack(
        &self,
        edge_id: EdgeId,
        ip: std::net::Ipv4Addr,
        prefix: u8,
        observed: SocketAddr,
    ) -> SealedMessage {
        SealedMessage::RegisterAck {
            edge_id,
            ip,
            prefix,
            observed,
            heartbeat_secs: self.config.heartbeat.as_secs().clamp(1, 3600) as u16,
        }
    }

    /// Admits a newly authenticated REGISTER: community, lease, id, session, ack, peer list.
    fn admit(
        &mut self,
        now: Instant,
        from: SocketAddr,
        edge_key: [u8; 32],
        body: RegisterBody,
        e2s: &[u8; 32],
        s2e: &[u8; 32],
    ) -> Result<EdgeId, DropReason> {
        let mut session = ControlSession::new(Role::Supernode, e2s, s2e);
        let requested = body.community.clone();
        if !body.signatures_valid(&self.public, &edge_key) {
            // Not a wrong passphrase (that names another verifier): a forged or broken body.
            return Err(DropReason::Auth);
        }
        let name = match self.admission(&body) {
            Ok(name) => name,
            Err((code, reason)) => {
                return self.refuse(from, &mut session, &requested, code, reason);
            }
        };
        let policy = self.config.communities.get(&requested).cloned();
        let open = body.verifier.is_none();
        let new_open = policy.is_none() && !self.communities.contains_key(&name);
        if new_open && !self.new_communities.allow(&site_key(from.ip()), now) {
            self.stats.limit_hits.new_communities += 1;
            let reason =
                "too many new communities from this address; join an existing one or try later"
                    .to_string();
            return self.refuse(from, &mut session, &name, NakCode::RateLimited, reason);
        }
        if !self.ensure_community(&name, body.verifier) {
            let reason = "no free subnet left for a new community".to_string();
            return self.refuse(from, &mut session, &name, NakCode::NoAddress, reason);
        }
        if !self.communities.contains_key(&name) {
            return Err(DropReason::Unexpected);
        }
        let place = match self.place(now, &name, &body) {
            Ok(p) => p,
            Err((code, reason)) => {
                if code == NakCode::CommunityFull {
                    self.stats.limit_hits.community_full += 1;
                }
                return self.refuse(from, &mut session, &name, code, reason);
            }
        };
        let Placement {
            ip,
            reclaimed,
            edge_id,
            new_id,
            prefix: subnet_prefix,
        } = place;
        if new_id {
            self.next_edge_id = edge_id.wrapping_add(1);
        }
        let lease = Lease {
            community: name.clone(),
            mac: body.mac,
            ip,
            edge_id,
            desc: body.desc.clone(),
            identity: Some(body.identity),
            last_seen_unix: self.unix_time(now),
        };
        if let Some(c) = self.communities.get_mut(&name) {
            c.grant(lease.clone());
            c.members.insert(edge_id);
        }
        if let Some(mac) = reclaimed {
            self.events.push_back(Event::LeaseReclaimed {
                community: name.clone(),
                mac,
            });
        }
        self.events.push_back(Event::LeaseGranted(lease));

        let limits = &self.config.limits;
        let ack = session.seal(
            edge_id,
            &self.register_ack(edge_id, ip, subnet_prefix, from),
        );
        let mut record = EdgeRecord {
            id: edge_id,
            community: name.clone(),
            mac: body.mac,
            ip,
            desc: body.desc,
            endpoint: from,
            candidates: body.candidates,
            key: body.key,
            identity: body.identity,
            verifier: body.verifier,
            bound: false,
            last_seen: now,
            registered_at: now,
            relayed_packets: 0,
            relayed_bytes: 0,
            session,
            edge_key,
            relay_bucket: TokenBucket::new(limits.relay_per_edge, now),
            punch_bucket: TokenBucket::new(limits.punches_per_edge, now),
            sync_bucket: TokenBucket::new(super::PEER_SYNCS_PER_EDGE, now),
            challenge: None,
        };
        // Peers learn of it once its announcement is bound to the id and address it gets
        // now: at once if it registers again with them, else with its first heartbeat (sent
        // as soon as the ack arrives).
        record.bound = record.announcement_ok(&record.key, &record.candidates);
        let info = record.bound.then(|| record.peer_info());
        self.edges.insert(edge_id, record);
        self.send(from, ack);
        self.send_peer_list(edge_id);
        if let Some(info) = info {
            self.broadcast(
                &name,
                Some(edge_id),
                &SealedMessage::PeerUpdate { peers: vec![info] },
            );
        }
        self.stats.registrations += 1;
        self.events.push_back(Event::EdgeRegistered {
            id: edge_id,
            community: name,
            ip,
            endpoint: from,
            open,
        });
        Ok(edge_id)
    }

    /// Where `body` goes in community `name` (its address and edge id), or why it cannot
    /// join: its MAC leased to another identity, the community full, no address or id left.
    fn place(
        &self,
        now: Instant,
        name: &str,
        body: &RegisterBody,
    ) -> Result<Placement, (NakCode, String)> {
        let c = self
            .communities
            .get(name)
            .ok_or((NakCode::NoAddress, "no such community".to_string()))?;
        if let Some(l) = c.leases.get(&body.mac)
            && l.identity.is_some_and(|owner| owner != body.identity)
        {
            let reason = format!(
                "MAC {} is leased to another member's identity key in community {name:?} (if this machine lost its identity key, the operator can run 'supernode release-lease')",
                body.mac
            );
            return Err((NakCode::AdmissionRefused, reason));
        }
        let existing = c.leases.get(&body.mac).map(|l| l.edge_id);
        let already_member = existing.is_some_and(|id| c.members.contains(&id));
        let cap = c
            .policy
            .max_edges
            .unwrap_or(self.config.limits.max_edges_per_community);
        if !already_member && c.members.len() >= cap {
            let reason = format!("community {name:?} is full ({cap} edges)");
            return Err((NakCode::CommunityFull, reason));
        }
        // A full pool takes back an offline edge's lease only once it is a lease lifetime
        // old: a member that fills the subnet with identities of its own cannot win the
        // address of a member that is merely away.
        let now_unix = self.unix_time(now);
        let reclaim_after = self.config.lease_reclaim_after.as_secs();
        let reclaimable = |l: &Lease| {
            !self.edges.contains_key(&l.edge_id)
                && l.last_seen_unix.saturating_add(reclaim_after) <= now_unix
        };
        let (ip, reclaimed) = c
            .choose_ip(body.mac, body.requested_ip, reclaimable)
            .map_err(|_| {
                (
                    NakCode::NoAddress,
                    format!("no free address in community {name:?}"),
                )
            })?;
        let edge_id = existing.or_else(|| self.free_edge_id()).ok_or((
            NakCode::NoAddress,
            "supernode ran out of edge ids".to_string(),
        ))?;
        Ok(Placement {
            ip,
            reclaimed,
            edge_id,
            new_id: existing.is_none(),
            prefix: c.prefix,
        })
    }

    fn refuse(
        &mut self,
        from: SocketAddr,
        session: &mut ControlSession,
        community: &str,
        code: NakCode,
        reason: String,
    ) -> Result<EdgeId, DropReason> {
        let nak = session.seal(
            0,
            &SealedMessage::RegisterNak {
                code,
                reason: reason.clone(),
            },
        );
        self.send(from, nak);
        self.events.push_back(Event::RegistrationRefused {
            community: community.to_string(),
            from,
            reason,
        });
        Err(DropReason::AdmissionRefused)
    }
}

/// Where an admitted edge goes.
struct Placement {
    /// Its address.
    ip: std::net::Ipv4Addr,
    /// The MAC whose (long offline) lease it takes over, if any.
    reclaimed: Option<n2n_protocol::types::Mac>,
    /// Its edge id (its lease's, or the next free one).
    edge_id: EdgeId,
    /// True when the id is a new one (not its lease's).
    new_id: bool,
    /// The community's prefix length.
    prefix: u8,
}
