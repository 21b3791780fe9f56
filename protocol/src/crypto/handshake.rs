//! The pair handshake: Noise `KKpsk2` (the `snow` crate) between two edges that already know
//! each other's announced static keys, with the community data key as the pre-shared key.
//!
//! Both sides contribute a fresh ephemeral key, so every handshake yields session keys never
//! derived before: a send counter can never restart under a key it has used. The keys are
//! taken out of the handshake (`split`) for our own AES-GCM data path, which keeps its header
//! as associated data and its explicit counters.
//!
//! Every handshake message also carries `mac1`, an HMAC keyed with the receiver's static
//! public key and the community data key, checked before any Diffie-Hellman: a stranger's
//! flood costs a receiver one HMAC per packet.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::{Builder, HandshakeState};

/// The Noise protocol name.
pub const PATTERN: &str = "Noise_KKpsk2_25519_ChaChaPoly_BLAKE2s";

/// Bytes of a first message carrying a `payload_len`-byte payload.
pub const fn initiation_len(payload_len: usize) -> usize {
    32 + payload_len + 16
}

/// Bytes of a reply carrying a `payload_len`-byte payload.
pub const fn reply_len(payload_len: usize) -> usize {
    32 + payload_len + 16
}

/// Bytes of `mac1`.
pub const MAC1_LEN: usize = 16;

/// A handshake message did not authenticate or was malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("handshake failed")]
pub struct HandshakeError;

impl From<snow::Error> for HandshakeError {
    fn from(_: snow::Error) -> Self {
        HandshakeError
    }
}

/// The two keys of a finished handshake, seen from one side.
pub struct SessionKeys {
    /// Seals what this side sends.
    pub send: [u8; 32],
    /// Opens what the other side sends.
    pub recv: [u8; 32],
}

/// What both sides put into a handshake.
pub struct Params<'a> {
    /// Our static private key.
    pub my_static: &'a [u8; 32],
    /// The peer's static public key (from its authenticated announcement).
    pub peer_static: &'a [u8; 32],
    /// The pre-shared key (the community data key).
    pub psk: &'a [u8; 32],
    /// Bound into the transcript: both sides must pass the same bytes (ids, community).
    pub prologue: &'a [u8],
    /// Seeds the ephemeral key (the core's RNG, so simulations replay exactly).
    pub seed: [u8; 32],
}

/// The initiator between its first message and the reply.
pub struct Initiator(HandshakeState);

/// The responder after reading a first message, before replying.
pub struct Responder(HandshakeState);

impl Initiator {
    /// Starts a handshake: the state to finish it with and the first message.
    pub fn start(p: &Params<'_>, payload: &[u8]) -> Result<(Self, Vec<u8>), HandshakeError> {
        let mut hs = builder(p)?.build_initiator()?;
        let mut msg = vec![0u8; initiation_len(payload.len())];
        let n = hs.write_message(payload, &mut msg)?;
        msg.truncate(n);
        Ok((Self(hs), msg))
    }

    /// Reads the reply: its payload and the session keys. A reply that fails leaves the
    /// state as it was (a forged or stale reply cannot end the handshake).
    pub fn finish(&mut self, reply: &[u8]) -> Result<(Vec<u8>, SessionKeys), HandshakeError> {
        let mut payload = vec![0u8; reply.len()];
        let n = self.0.read_message(reply, &mut payload)?;
        payload.truncate(n);
        Ok((payload, split(&mut self.0, true)?))
    }
}

impl Responder {
    /// Reads a first message: the state to reply with and the initiator's payload.
    pub fn read(p: &Params<'_>, msg: &[u8]) -> Result<(Self, Vec<u8>), HandshakeError> {
        let mut hs = builder(p)?.build_responder()?;
        let mut payload = vec![0u8; msg.len()];
        let n = hs.read_message(msg, &mut payload)?;
        payload.truncate(n);
        Ok((Self(hs), payload))
    }

    /// Writes the reply and returns it with the session keys.
    pub fn reply(mut self, payload: &[u8]) -> Result<(Vec<u8>, SessionKeys), HandshakeError> {
        let mut msg = vec![0u8; reply_len(payload.len())];
        let n = self.0.write_message(payload, &mut msg)?;
        msg.truncate(n);
        Ok((msg, split(&mut self.0, false)?))
    }
}

/// The key of the `mac1` a receiver with static public key `receiver` checks.
pub fn mac1_key(psk: &[u8; 32], receiver: &[u8; 32]) -> [u8; 32] {
    super::kdf::hmac(psk, &[b"n2n-rs/2 mac1", receiver])
}

/// The `mac1` over `bytes` (everything before it in the datagram).
pub fn mac1(key: &[u8; 32], bytes: &[u8]) -> [u8; MAC1_LEN] {
    let full = super::kdf::hmac(key, &[bytes]);
    let mut out = [0u8; MAC1_LEN];
    out.iter_mut().zip(full).for_each(|(d, s)| *d = s);
    out
}

/// Length of a cookie (a responder under load asks for `mac2` with it).
pub const COOKIE_LEN: usize = 16;

/// The cookie for `addr` in time bucket `bucket`: only who receives at `addr` learns it.
pub fn cookie(secret: &[u8; 32], addr: &std::net::SocketAddr, bucket: u64) -> [u8; COOKIE_LEN] {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    };
    let full = super::kdf::hmac(
        secret,
        &[
            b"n2n-rs/2 cookie",
            &ip,
            &addr.port().to_be_bytes(),
            &bucket.to_be_bytes(),
        ],
    );
    let mut out = [0u8; COOKIE_LEN];
    out.iter_mut().zip(full).for_each(|(d, s)| *d = s);
    out
}

/// The `mac2` over `bytes` (everything before it in the datagram) with a cookie.
pub fn mac2(cookie: &[u8; COOKIE_LEN], bytes: &[u8]) -> [u8; MAC1_LEN] {
    let full = super::kdf::hmac(cookie, &[b"n2n-rs/2 mac2", bytes]);
    let mut out = [0u8; MAC1_LEN];
    out.iter_mut().zip(full).for_each(|(d, s)| *d = s);
    out
}

/// The public key of a static private key.
pub fn public_key(private: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*private)).to_bytes()
}

/// The session keys of a finished handshake, seen from the initiator or the responder.
fn split(hs: &mut HandshakeState, initiator: bool) -> Result<SessionKeys, HandshakeError> {
    if !hs.is_handshake_finished() {
        return Err(HandshakeError);
    }
    let (i2r, r2i) = hs.dangerously_get_raw_split();
    Ok(if initiator {
        SessionKeys {
            send: i2r,
            recv: r2i,
        }
    } else {
        SessionKeys {
            send: r2i,
            recv: i2r,
        }
    })
}

fn builder<'a>(p: &'a Params<'a>) -> Result<Builder<'a>, HandshakeError> {
    let params = PATTERN.parse().map_err(|_| HandshakeError)?;
    Ok(
        Builder::with_resolver(params, Box::new(SeededResolver(p.seed)))
            .local_private_key(p.my_static)?
            .remote_public_key(p.peer_static)?
            .psk(2, p.psk)?
            .prologue(p.prologue)?,
    )
}

/// snow's default primitives with our seeded RNG for the ephemeral key.
struct SeededResolver([u8; 32]);

struct SeededRng(ChaCha20Rng);

impl Random for SeededRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRng(ChaCha20Rng::from_seed(self.0))))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statics() -> ([u8; 32], [u8; 32]) {
        ([1u8; 32], [2u8; 32])
    }

    fn params<'a>(me: &'a [u8; 32], peer: &'a [u8; 32], psk: &'a [u8; 32], seed: u8) -> Params<'a> {
        Params {
            my_static: me,
            peer_static: peer,
            psk,
            prologue: b"ids",
            seed: [seed; 32],
        }
    }

    #[test]
    fn both_sides_agree_and_every_handshake_gives_new_keys() {
        let (a, b) = statics();
        let (pa, pb) = (public_key(&a), public_key(&b));
        let psk = [9u8; 32];
        let mut seen = Vec::new();
        for round in 0..3u8 {
            let (mut init, m1) = Initiator::start(&params(&a, &pb, &psk, round), b"hi").unwrap();
            assert_eq!(m1.len(), initiation_len(2));
            let (resp, got) = Responder::read(&params(&b, &pa, &psk, 100 + round), &m1).unwrap();
            assert_eq!(got, b"hi");
            let (m2, rk) = resp.reply(b"ok").unwrap();
            assert_eq!(m2.len(), reply_len(2));
            let (got, ik) = init.finish(&m2).unwrap();
            assert_eq!(got, b"ok");
            assert_eq!(ik.send, rk.recv);
            assert_eq!(ik.recv, rk.send);
            assert_ne!(ik.send, ik.recv);
            assert!(!seen.contains(&ik.send) && !seen.contains(&ik.recv));
            seen.extend([ik.send, ik.recv]);
        }
    }

    #[test]
    fn a_wrong_psk_static_or_prologue_fails() {
        let (a, b) = statics();
        let (pa, pb) = (public_key(&a), public_key(&b));
        let psk = [9u8; 32];
        // psk2 is mixed in at the reply: a responder with another psk cannot finish.
        let (mut init, m1) = Initiator::start(&params(&a, &pb, &psk, 1), b"").unwrap();
        let (resp, _) = Responder::read(&params(&b, &pa, &[8u8; 32], 2), &m1).unwrap();
        let (m2, _) = resp.reply(b"").unwrap();
        assert!(init.finish(&m2).is_err());
        let stranger = public_key(&[3u8; 32]);
        assert!(Responder::read(&params(&b, &stranger, &psk, 2), &m1).is_err());
        let mut p = params(&b, &pa, &psk, 2);
        p.prologue = b"other ids";
        assert!(Responder::read(&p, &m1).is_err());
        let (mut init, m1) = Initiator::start(&params(&a, &pb, &psk, 1), b"").unwrap();
        let (resp, _) = Responder::read(&params(&b, &pa, &psk, 2), &m1).unwrap();
        let (m2, rk) = resp.reply(b"").unwrap();
        let mut forged = m2.clone();
        forged[40] ^= 1;
        assert!(init.finish(&forged).is_err());
        // ...and leaves the handshake able to finish with the genuine reply.
        let (_, ik) = init.finish(&m2).unwrap();
        assert_eq!(ik.send, rk.recv);
        assert!(Responder::read(&params(&b, &pa, &psk, 2), &m1[..20]).is_err());
    }

    #[test]
    fn mac1_depends_on_receiver_and_psk() {
        let k = mac1_key(&[1; 32], &[2; 32]);
        assert_ne!(k, mac1_key(&[1; 32], &[3; 32]));
        assert_ne!(k, mac1_key(&[4; 32], &[2; 32]));
        assert_ne!(mac1(&k, b"a"), mac1(&k, b"b"));
    }
}
