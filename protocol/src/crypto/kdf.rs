//! Key derivation: community keys from a passphrase (Argon2id with a per-community salt), and
//! HKDF-SHA256 for everything derived from Diffie-Hellman results.
//!
//! From one passphrase three independent keys come out:
//! - `auth`: tags the announcements edges make (keys bound to id, MAC, IP, name, candidates) (peers verify them, so the
//!   supernode cannot substitute keys),
//! - `data`: mixed into every pairwise data key,
//! - `admission`: the seed of the community's Ed25519 admission key. Its public half, the
//!   *verifier*, names the community on a supernode; edges prove membership by signing their
//!   registration with it. Knowing the verifier (or the seed) gives neither of the other two
//!   (HKDF outputs are independent); the verifier does allow offline guessing of the
//!   passphrase, at the Argon2id cost of every guess.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac as _};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;

use super::signing::Signer;
use crate::types::Mac;

/// Argon2id cost parameters for the passphrase KDF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
}

impl Default for KdfParams {
    /// OWASP's Argon2id recommendation: 19 MiB, 2 iterations.
    fn default() -> Self {
        Self {
            m_cost_kib: 19 * 1024,
            t_cost: 2,
        }
    }
}

impl KdfParams {
    /// Cheap parameters for simulations and tests only.
    pub const FAST_INSECURE: KdfParams = KdfParams {
        m_cost_kib: 8,
        t_cost: 1,
    };
}

/// The keys of one community, as derived from its passphrase.
#[derive(Clone, PartialEq, Eq)]
pub struct CommunityKeys {
    /// Authenticates announced data-plane public keys.
    pub auth: [u8; 32],
    /// Salt of every pairwise data key.
    pub data: [u8; 32],
    /// Seed of the admission signing key (proves membership to a supernode).
    pub admission: [u8; 32],
    /// False when derived without a passphrase (open community: encrypted, not authenticated).
    pub has_secret: bool,
    /// The admission key's public half (see [`CommunityKeys::verifier`]), kept.
    verifier: Option<[u8; 32]>,
}

impl std::fmt::Debug for CommunityKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CommunityKeys {{ has_secret: {} }}", self.has_secret)
    }
}

fn hkdf_expand(prk_salt: &[u8], ikm: &[u8], info: &[&[u8]]) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(prk_salt), ikm);
    let info: Vec<u8> = info.concat();
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
    let _ = hk.expand(&info, &mut out);
    out
}

/// The public, deterministic salt of a community's passphrase KDF.
pub fn community_salt(community: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"n2n-rs/1 community salt\0");
    h.update(community.as_bytes());
    h.finalize().into()
}

impl CommunityKeys {
    /// The community's admission key (None for an open community: anyone could derive it).
    pub fn admission_signer(&self) -> Option<Signer> {
        self.has_secret.then(|| Signer::from_seed(&self.admission))
    }

    /// The public verifier that names a closed community (None when open).
    pub fn verifier(&self) -> Option<[u8; 32]> {
        self.verifier
    }

    /// Derives the keys of `community` from `passphrase` (None or empty: open community).
    pub fn derive(community: &str, passphrase: Option<&str>, params: KdfParams) -> Self {
        let salt = community_salt(community);
        let (master, has_secret) = match passphrase.filter(|p| !p.is_empty()) {
            Some(p) => {
                let mut master = [0u8; 32];
                let argon = argon2::Params::new(
                    params.m_cost_kib.max(8),
                    params.t_cost.max(1),
                    1,
                    Some(32),
                )
                .map(|prm| {
                    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, prm)
                });
                match argon {
                    Ok(a)
                        if a.hash_password_into(p.as_bytes(), &salt, &mut master)
                            .is_ok() => {}
                    // Only reachable with absurd parameters; fall back to HKDF rather than no key.
                    _ => master = hkdf_expand(&salt, p.as_bytes(), &[b"fallback"]),
                }
                (master, true)
            }
            None => (hkdf_expand(&salt, community.as_bytes(), &[b"open"]), false),
        };
        let admission = hkdf_expand(&salt, &master, &[b"n2n-rs/2 admission"]);
        Self {
            auth: hkdf_expand(&salt, &master, &[b"n2n-rs/1 key-auth"]),
            data: hkdf_expand(&salt, &master, &[b"n2n-rs/1 data"]),
            admission,
            has_secret,
            verifier: has_secret.then(|| Signer::from_seed(&admission).public()),
        }
    }
}

pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let Ok(mut m) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return [0; 32]; // HMAC accepts keys of any length
    };
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Constant-time equality of two byte strings.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The two directional keys of an edge-supernode session: (edge to supernode, supernode to edge).
pub fn session_keys(
    shared: &[u8; 32],
    edge_pub: &[u8; 32],
    sn_pub: &[u8; 32],
) -> ([u8; 32], [u8; 32]) {
    let salt = b"n2n-rs/1 edge-supernode session";
    (
        hkdf_expand(salt, shared, &[b"e2s", edge_pub, sn_pub]),
        hkdf_expand(salt, shared, &[b"s2e", edge_pub, sn_pub]),
    )
}

/// The stateless cookie binding a registration to the address that asked for it.
pub fn cookie(secret: &[u8; 32], addr: SocketAddr, bucket: u64) -> [u8; 16] {
    let full = hmac(
        secret,
        &[
            b"n2n-rs/1 cookie",
            addr.to_string().as_bytes(),
            &bucket.to_be_bytes(),
        ],
    );
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// The stable MAC of an edge: a function of its persisted machine id and the community, so
/// the same machine keeps its address (and lease) in each community it joins.
pub fn edge_mac(machine_id: &[u8; 16], community: &str) -> Mac {
    let h = hmac(machine_id, &[b"n2n-rs/1 edge mac", community.as_bytes()]);
    let mut b = [0u8; 6];
    b.copy_from_slice(&h[..6]);
    Mac::local_unicast(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_keys_are_salted_independent_and_stable() {
        let p = KdfParams::FAST_INSECURE;
        let a = CommunityKeys::derive("acme", Some("s3cret"), p);
        assert!(a.has_secret);
        assert_eq!(a, CommunityKeys::derive("acme", Some("s3cret"), p));
        // Same passphrase, other community: the salt differs.
        let b = CommunityKeys::derive("other", Some("s3cret"), p);
        assert_ne!(a.data, b.data);
        assert_ne!(
            a.data,
            CommunityKeys::derive("acme", Some("s3creT"), p).data
        );
        assert_ne!(a.auth, a.data);
        assert_ne!(a.admission, a.data);
        let v = a.verifier().expect("closed");
        assert_ne!(v, a.admission, "the verifier is public, the seed is not");
        assert_ne!(Some(v), b.verifier());
        let open = CommunityKeys::derive("acme", None, p);
        assert!(!open.has_secret);
        assert_eq!(open.verifier(), None);
        assert_eq!(open, CommunityKeys::derive("acme", Some(""), p));
        assert_ne!(open.data, a.data);
    }

    #[test]
    fn tags_proofs_and_cookies_bind_their_inputs() {
        let k = [9u8; 32];
        let a1: SocketAddr = "1.2.3.4:5".parse().unwrap();
        let a2: SocketAddr = "1.2.3.4:6".parse().unwrap();
        assert_ne!(cookie(&k, a1, 1), cookie(&k, a2, 1));
        assert_ne!(cookie(&k, a1, 1), cookie(&k, a1, 2));
        let mac = edge_mac(&[1; 16], "acme");
        assert_eq!(mac, edge_mac(&[1; 16], "acme"));
        assert_ne!(mac, edge_mac(&[1; 16], "acme2"));
        assert_ne!(mac, edge_mac(&[2; 16], "acme"));
        assert!(
            !mac.is_group() && mac.0[0] & 2 != 0,
            "locally administered unicast"
        );
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"ab", b"abc"));
    }
}
