//! Our data-plane key pair (X25519, announced to peers) and its rotation, and the
//! announcement that binds it to our id, address and candidates.

use super::{Edge, Timer};
use n2n_protocol::rng::CoreRng;
use n2n_protocol::wire::messages::{Binding, KeyAnnounce};
use std::net::Ipv4Addr;
use std::time::Instant;
use x25519_dalek::{PublicKey, StaticSecret};

/// Our data-plane key pair.
pub(super) struct KeyPair {
    pub(super) secret: StaticSecret,
    pub(super) public: [u8; 32],
    pub(super) epoch: u32,
}

impl Edge {
    pub(super) fn new_keypair(rng: &mut CoreRng, epoch: u32) -> KeyPair {
        let secret = StaticSecret::from(rng.bytes::<32>());
        let public = PublicKey::from(&secret).to_bytes();
        KeyPair {
            secret,
            public,
            epoch,
        }
    }

    /// Our announcement, bound to our id and address once we have them.
    pub(super) fn announce(&self) -> KeyAnnounce {
        let binding = Binding {
            community: &self.config.community,
            verifier: self.config.keys.verifier(),
            id: self.my_id.unwrap_or(0),
            mac: self.config.mac,
            ip: self.my_ip.map_or(Ipv4Addr::UNSPECIFIED, |(ip, _)| ip),
            desc: &self.config.desc,
            candidates: &self.config.candidates,
        };
        KeyAnnounce::new(
            &self.config.identity,
            &self.config.keys.auth,
            self.key.public,
            (self.config.boot, self.key.epoch),
            &binding,
        )
    }

    pub(super) fn rotate_key(&mut self, now: Instant) {
        // Sessions do not depend on the static key (each handshake has fresh ephemerals);
        // the previous one still answers initiations from peers that have not seen the new.
        let next = Self::new_keypair(&mut self.rng, self.key.epoch.wrapping_add(1));
        self.prev_key = Some(std::mem::replace(&mut self.key, next));
        self.fwd_dirty = true;
        self.send_heartbeat(now);
        if let Some(every) = self.config.key_rotation {
            self.timers.set(Timer::KeyRotation, now + every);
        }
    }
}
