//! Registration with a supernode: hello, signed key check, sealed register, heartbeats,
//! supernode loss and restart detection, and the sealed messages the supernode sends.

use super::{Edge, Event, Phase, SnSession, Timer};
use n2n_protocol::crypto::aead::SessionKey;
use n2n_protocol::crypto::identity::{self, Fingerprint};
use n2n_protocol::crypto::kdf;
use n2n_protocol::session::{ControlSession, REGISTER_PREFIX, Role};
use n2n_protocol::stats::DropReason;
use n2n_protocol::types::EdgeId;
use n2n_protocol::wire::messages::RegisterBody;
use n2n_protocol::wire::plain::{self, PlainMessage, REGISTER_AAD_LEN};
use n2n_protocol::wire::sealed::{SealedHeader, SealedMessage, SealedType};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use x25519_dalek::{PublicKey, StaticSecret};

/// Heartbeats that may go unanswered before the supernode counts as lost.
const MISSED_HEARTBEATS: u32 = 3;
/// Register retransmissions before starting over with a hello.
const REGISTER_ATTEMPTS: u32 = 4;
/// Wait before trying again after a refusal.
const REFUSED_RETRY: Duration = Duration::from_secs(30);

/// True if `ip/prefix` is a host address of a /16 or smaller subnet inside a private range
/// (or the shared 100.64/10 range).
fn overlay_address_ok(ip: std::net::Ipv4Addr, prefix: u8) -> bool {
    let private: [(u32, u8); 4] = [
        (0x0a00_0000, 8),
        (0xac10_0000, 12),
        (0xc0a8_0000, 16),
        (0x6440_0000, 10),
    ];
    let within = private
        .iter()
        .any(|&(net, len)| len <= prefix && super::paths::same_subnet(ip, net.into(), len));
    // At least a /16: a shorter prefix would route most of a private range (where the
    // user's own networks live) into the TAP.
    (16..=30).contains(&prefix) && within && super::paths::host_in_subnet(ip, ip, prefix)
}

fn backoff(attempts: u32) -> Duration {
    Duration::from_millis(500u64 << attempts.min(4)).min(Duration::from_secs(8))
}

impl Edge {
    pub(super) fn start_hello(&mut self, now: Instant, attempts: u32) {
        let nonce = self.rng.bytes();
        self.phase = Phase::Hello { nonce, attempts };
        if let Some(sn) = self.supernode() {
            let hello = PlainMessage::Hello { nonce }.emit();
            if attempts >= 2 {
                // Unanswered twice: maybe a protocol v1 supernode, which drops v2. Its answer to a
                // v1 hello (same bytes, version 1) lets us say so instead of retrying blindly.
                let mut v1 = hello.clone();
                if let Some(b) = v1.first_mut() {
                    *b = (1 << 4) | (*b & 0x0f);
                }
                self.send(sn, v1);
            }
            self.send(sn, hello);
        }
        self.timers.set(Timer::Hello, now + backoff(attempts));
    }

    pub(super) fn on_hello_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Hello { attempts, .. } => {
                // Rotate through the configured supernodes.
                if attempts % 2 == 1 && !self.config.supernodes.is_empty() {
                    self.sn_index = (self.sn_index + 1) % self.config.supernodes.len();
                }
                self.start_hello(now, attempts + 1);
            }
            Phase::Refused => self.start_hello(now, 0),
            _ => {}
        }
    }

    pub(super) fn on_register_timeout(&mut self, now: Instant) {
        let Phase::Register {
            attempts, datagram, ..
        } = &mut self.phase
        else {
            return;
        };
        if *attempts >= REGISTER_ATTEMPTS {
            self.start_hello(now, 0);
            return;
        }
        *attempts += 1;
        let (d, a) = (datagram.clone(), *attempts);
        if let Some(sn) = self.supernode() {
            self.send(sn, d);
        }
        self.timers.set(Timer::Register, now + backoff(a));
    }

    pub(super) fn on_heartbeat_timer(&mut self, now: Instant) {
        let Some(sn) = &self.sn else { return };
        if !matches!(self.phase, Phase::Up) {
            return;
        }
        if now.saturating_duration_since(sn.last_ack) > sn.heartbeat * MISSED_HEARTBEATS {
            self.events.push_back(Event::SupernodeLost);
            self.start_hello(now, 0);
            return;
        }
        let every = sn.heartbeat;
        self.send_heartbeat(now);
        self.timers.set(Timer::Heartbeat, now + every);
    }

    pub(super) fn send_heartbeat(&mut self, _now: Instant) {
        let (Phase::Up, Some(id)) = (&self.phase, self.my_id) else {
            return;
        };
        let msg = SealedMessage::Heartbeat {
            candidates: self.config.candidates.clone(),
            key: self.announce(),
        };
        self.seal_to_sn(id, &msg);
    }

    /// Seals `msg` to the supernode on our session: anything this member's edge can say.
    /// The simulator's hostile member speaks through this; the supernode must hold anyway.
    pub fn tell_supernode(&mut self, msg: &SealedMessage) {
        if let Some(id) = self.my_id {
            self.seal_to_sn(id, msg);
        }
    }

    pub(super) fn seal_to_sn(&mut self, id: EdgeId, msg: &SealedMessage) {
        let (Some(sn), Some(addr)) = (
            self.sn.as_mut(),
            self.config.supernodes.get(self.sn_index).copied(),
        ) else {
            return;
        };
        let d = sn.session.seal(id, msg);
        self.send(addr, d);
    }

    pub(super) fn handle_plain(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), DropReason> {
        if Some(from) != self.supernode() {
            return Err(DropReason::NotFromSupernode);
        }
        match PlainMessage::parse(bytes).map_err(|e| e.drop_reason())? {
            PlainMessage::HelloReply {
                nonce,
                sn_key,
                sn_epoch,
                cookie,
                identity: der,
                signature,
            } => {
                let expected = match (&self.phase, &self.check_nonce) {
                    (Phase::Hello { nonce: n, .. }, _) => *n == nonce,
                    (Phase::Up, Some((n, _))) => *n == nonce,
                    _ => false,
                };
                if !expected {
                    return Err(DropReason::Unexpected);
                }
                if !identity::verify(
                    &der,
                    &plain::signed_key_material(&sn_key, sn_epoch),
                    &signature,
                ) {
                    self.events.push_back(Event::SupernodeRejected {
                        reason: "bad signature on session key".into(),
                    });
                    return Err(DropReason::Auth);
                }
                let fp = Fingerprint::of(&der);
                if let Some(pin) = self.config.pinned
                    && pin != fp
                {
                    self.events.push_back(Event::SupernodeRejected {
                        reason: format!("supernode identity {fp} does not match the pinned {pin}"),
                    });
                    return Err(DropReason::Auth);
                }
                if self.config.pinned.is_none() {
                    match self.config.seen.get(&from) {
                        Some(first) if *first != fp => {
                            self.events.push_back(Event::SupernodeRejected {
                                reason: format!(
                                    "supernode {from} proved identity {fp}, not {first} it had at first contact"
                                ),
                            });
                            return Err(DropReason::Auth);
                        }
                        Some(_) => {}
                        None => {
                            self.config.seen.insert(from, fp);
                            self.events.push_back(Event::SupernodeFirstSeen {
                                supernode: from,
                                fingerprint: fp,
                            });
                        }
                    }
                }
                if matches!(self.phase, Phase::Up) {
                    // A restart check: same key epoch means nothing happened.
                    self.check_nonce = None;
                    if self.sn.as_ref().is_some_and(|s| s.sn_epoch == sn_epoch) {
                        return Ok(());
                    }
                }
                self.events
                    .push_back(Event::SupernodeIdentity { fingerprint: fp });
                self.send_register(now, sn_key, sn_epoch, cookie);
                Ok(())
            }
            PlainMessage::UnknownSession { edge_id } => {
                // Unauthenticated: only ever makes us check, with a signed hello, whether the
                // supernode really restarted.
                if !matches!(self.phase, Phase::Up) || Some(edge_id) != self.my_id {
                    return Err(DropReason::Unexpected);
                }
                if self.check_nonce.is_some_and(|(_, at)| {
                    now.saturating_duration_since(at) < Duration::from_secs(2)
                }) {
                    return Err(DropReason::RateLimited);
                }
                let nonce = self.rng.bytes();
                self.check_nonce = Some((nonce, now));
                self.send(from, PlainMessage::Hello { nonce }.emit());
                Ok(())
            }
            PlainMessage::Hello { .. } | PlainMessage::Register { .. } => {
                Err(DropReason::Unexpected)
            }
        }
    }

    fn send_register(&mut self, now: Instant, sn_key: [u8; 32], sn_epoch: u64, cookie: [u8; 16]) {
        let secret = StaticSecret::from(self.rng.bytes::<32>());
        let edge_key = PublicKey::from(&secret).to_bytes();
        let shared = secret.diffie_hellman(&PublicKey::from(sn_key));
        let (e2s, s2e) = kdf::session_keys(shared.as_bytes(), &edge_key, &sn_key);
        let mut body = RegisterBody {
            community: self.config.community.clone(),
            verifier: None,
            mac: self.config.mac,
            desc: self.config.desc.clone(),
            requested_ip: self.config.requested_ip.or(self.my_ip.map(|(ip, _)| ip)),
            identity: [0; 32],
            candidates: self.config.candidates.clone(),
            key: self.announce(),
            identity_sig: [0; 64],
            admission_sig: None,
        };
        let admission = self.config.keys.admission_signer();
        body.sign(
            &self.config.identity,
            admission.as_ref(),
            &sn_key,
            &edge_key,
        );
        let mut datagram = PlainMessage::Register {
            sn_epoch,
            edge_key,
            cookie,
            sealed: Vec::new(),
        }
        .emit();
        let mut sealed = Vec::with_capacity(256);
        body.emit(&mut sealed);
        let aad = datagram
            .get(..REGISTER_AAD_LEN)
            .unwrap_or_default()
            .to_vec();
        SessionKey::new(&e2s).seal(REGISTER_PREFIX, 0, &aad, &mut sealed);
        datagram.extend_from_slice(&sealed);
        if let Some(sn) = self.supernode() {
            self.send(sn, datagram.clone());
        }
        let session = Box::new(ControlSession::new(Role::Edge, &e2s, &s2e));
        self.phase = Phase::Register {
            attempts: 0,
            datagram,
            session,
            sn_epoch,
        };
        self.timers.cancel(Timer::Hello);
        self.timers.set(Timer::Register, now + backoff(0));
    }

    pub(super) fn handle_sealed(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), DropReason> {
        if Some(from) != self.supernode() {
            return Err(DropReason::NotFromSupernode);
        }
        let (hdr, _) = SealedHeader::parse(bytes).map_err(|e| e.drop_reason())?;
        let registering = matches!(hdr.kind, SealedType::RegisterAck | SealedType::RegisterNak);
        let msg = match (&mut self.phase, registering) {
            (Phase::Register { session, .. }, true) => session.open(&hdr, bytes)?,
            (_, false) => self
                .sn
                .as_mut()
                .ok_or(DropReason::Unexpected)?
                .session
                .open(&hdr, bytes)?,
            _ => return Err(DropReason::Unexpected),
        };
        if !registering && Some(hdr.edge_id) != self.my_id {
            return Err(DropReason::Misdirected);
        }
        // Authenticated: what follows may change peers, keys or our id, and the snapshot the
        // handlers seal probes with must show it at once.
        self.fwd_dirty = true;
        match msg {
            SealedMessage::RegisterAck {
                edge_id,
                ip,
                prefix,
                observed,
                heartbeat_secs,
            } => {
                if hdr.edge_id != edge_id {
                    return Err(DropReason::Malformed);
                }
                if !overlay_address_ok(ip, prefix) {
                    // It would route a public range into the TAP (and name it in the hosts
                    // file): refused, whatever the supernode says.
                    self.phase = Phase::Refused;
                    self.timers.cancel(Timer::Register);
                    self.timers.set(Timer::Hello, now + REFUSED_RETRY);
                    self.events.push_back(Event::RegistrationRefused {
                        reason: format!(
                            "the supernode assigned {ip}/{prefix}, not a host address of a /16 or smaller subnet in a private range (10/8, 172.16/12, 192.168/16, 100.64/10); refused"
                        ),
                    });
                    return Err(DropReason::Unexpected);
                }
                let Phase::Register {
                    session, sn_epoch, ..
                } = std::mem::replace(&mut self.phase, Phase::Up)
                else {
                    return Err(DropReason::Unexpected);
                };
                let heartbeat = Duration::from_secs(u64::from(heartbeat_secs.max(1)))
                    .min(self.config.max_heartbeat);
                self.sn = Some(SnSession {
                    session: *session,
                    sn_epoch,
                    last_ack: now,
                    heartbeat,
                });
                self.my_id = Some(edge_id);
                self.my_ip = Some((ip, prefix));
                self.observed = Some(observed);
                self.check_nonce = None;
                self.stats.registrations += 1;
                self.timers.cancel(Timer::Register);
                self.timers.set(Timer::Heartbeat, now + heartbeat);
                // Our announcement bound to the id and address just assigned: peers learn of
                // us only with it.
                self.send_heartbeat(now);
                self.events.push_back(Event::Registered {
                    edge_id,
                    ip,
                    prefix,
                    supernode: from,
                });
            }
            SealedMessage::RegisterNak { reason, .. } => {
                self.phase = Phase::Refused;
                self.timers.cancel(Timer::Register);
                self.timers.set(Timer::Hello, now + REFUSED_RETRY);
                // Supernode-chosen text: shown and logged, so never with control characters.
                let reason = n2n_protocol::text::printable(&reason);
                self.events.push_back(Event::RegistrationRefused { reason });
            }
            SealedMessage::HeartbeatAck { observed } => {
                if let Some(sn) = self.sn.as_mut() {
                    sn.last_ack = now;
                }
                if self.observed != Some(observed) {
                    // Our NAT mapping moved: peers must learn the new address, so re-punch.
                    self.observed = Some(observed);
                    self.repunch_all(now);
                }
            }
            SealedMessage::PeerList { first, last, peers } => {
                if first {
                    self.sync_seen = Some(Vec::new());
                }
                for p in peers {
                    if let Some(seen) = self.sync_seen.as_mut() {
                        seen.push(p.id);
                    }
                    self.upsert_peer(now, p, false);
                }
                if last && let Some(seen) = self.sync_seen.take() {
                    self.reconcile_full_list(now, &seen);
                }
            }
            SealedMessage::PeerUpdate { peers } => {
                for p in peers {
                    self.upsert_peer(now, p, false);
                }
            }
            SealedMessage::PeerRemove { ids } => {
                for id in ids {
                    self.remove_peer(now, id);
                }
            }
            SealedMessage::Punch { peer } => self.upsert_peer(now, peer, true),
            SealedMessage::PathChallenge { nonce } => {
                // It came to the address we now send from: proving that moves our endpoint.
                if let Some(id) = self.my_id {
                    self.seal_to_sn(id, &SealedMessage::PathResponse { nonce });
                }
            }
            _ => return Err(DropReason::Unexpected),
        }
        Ok(())
    }
}
