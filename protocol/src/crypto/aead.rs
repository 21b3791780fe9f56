//! AES-256-GCM with the packet header as associated data and counter-based nonces.
//!
//! Nonce = `prefix (4 bytes) || counter (8 bytes, big-endian)`. The prefix separates the
//! senders sharing one key (the sender's edge id on the data path, a direction constant on the
//! edge-supernode session), and the counter never repeats for a (key, prefix) pair.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

use super::super::wire::TAG_LEN;

/// A symmetric AEAD key ready for use.
#[derive(Clone)]
pub struct SessionKey {
    cipher: Aes256Gcm,
    #[cfg(feature = "nonce-audit")]
    audit_id: [u8; 8],
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

/// Authentication failed (wrong key, tampered bytes, or too short).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("authentication failed")]
pub struct AuthError;

fn nonce(prefix: u32, counter: u64) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&prefix.to_be_bytes());
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n.into()
}

impl SessionKey {
    /// Builds a key from 32 secret bytes.
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.into()),
            #[cfg(feature = "nonce-audit")]
            audit_id: audit::key_id(key),
        }
    }

    /// Encrypts `buf` in place and appends the tag.
    pub fn seal(&self, prefix: u32, counter: u64, aad: &[u8], buf: &mut Vec<u8>) {
        let start = buf.len();
        buf.extend_from_slice(&[0u8; TAG_LEN]);
        let body_end = start;
        let (body, tag_out) = buf.split_at_mut(body_end);
        self.seal_detached(prefix, counter, aad, body, tag_out);
    }

    /// Encrypts `body` in place and writes the tag into `tag_out` (16 bytes).
    pub fn seal_detached(
        &self,
        prefix: u32,
        counter: u64,
        aad: &[u8],
        body: &mut [u8],
        tag_out: &mut [u8],
    ) {
        #[cfg(feature = "nonce-audit")]
        audit::record(self.audit_id, prefix, counter);
        // Encryption only fails for inputs beyond GCM's 64 GiB limit, which a datagram never is.
        if let Ok(tag) =
            self.cipher
                .encrypt_inout_detached(&nonce(prefix, counter), aad, body.into())
        {
            tag_out.copy_from_slice(&tag);
        }
    }

    /// Decrypts `sealed` (ciphertext followed by tag) in place and returns the plaintext.
    pub fn open<'b>(
        &self,
        prefix: u32,
        counter: u64,
        aad: &[u8],
        sealed: &'b mut [u8],
    ) -> Result<&'b mut [u8], AuthError> {
        let body_len = sealed.len().checked_sub(TAG_LEN).ok_or(AuthError)?;
        let (body, tag) = sealed.split_at_mut(body_len);
        let tag = Tag::<aes_gcm::aead::consts::U16>::try_from(&tag[..]).map_err(|_| AuthError)?;
        self.cipher
            .decrypt_inout_detached(&nonce(prefix, counter), aad, body.into(), &tag)
            .map_err(|_| AuthError)?;
        Ok(body)
    }
}

/// Test support: records every (key, nonce) sealed with while switched on, so a test can
/// assert that none repeats. Compiled only with the `nonce-audit` feature; off by default.
#[cfg(feature = "nonce-audit")]
pub mod audit {
    use sha2::{Digest, Sha256};
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    static ON: AtomicBool = AtomicBool::new(false);
    static LOG: Mutex<Option<Log>> = Mutex::new(None);

    /// What was recorded.
    #[derive(Debug, Default, Clone)]
    pub struct Log {
        seen: HashSet<([u8; 8], u32, u64)>,
        /// Seals recorded.
        pub seals: u64,
        /// (key id, nonce prefix, counter) sealed with more than once.
        pub repeats: Vec<([u8; 8], u32, u64)>,
    }

    pub(super) fn key_id(key: &[u8; 32]) -> [u8; 8] {
        let h = Sha256::digest([&b"n2n-rs nonce audit"[..], key].concat());
        let mut id = [0u8; 8];
        id.iter_mut().zip(h.iter()).for_each(|(d, s)| *d = *s);
        id
    }

    pub(super) fn record(id: [u8; 8], prefix: u32, counter: u64) {
        if !ON.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(mut g) = LOG.lock()
            && let Some(log) = g.as_mut()
        {
            log.seals += 1;
            if !log.seen.insert((id, prefix, counter)) {
                log.repeats.push((id, prefix, counter));
            }
        }
    }

    /// Starts recording (forgetting anything recorded before).
    pub fn start() {
        if let Ok(mut g) = LOG.lock() {
            *g = Some(Log::default());
        }
        ON.store(true, Ordering::SeqCst);
    }

    /// Stops recording and returns the log.
    pub fn stop() -> Log {
        ON.store(false, Ordering::SeqCst);
        LOG.lock()
            .ok()
            .and_then(|mut g| g.take())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_tamper_detection() {
        let k = SessionKey::new(&[7u8; 32]);
        let mut buf = b"hello frame".to_vec();
        k.seal(9, 42, b"hdr", &mut buf);
        assert_eq!(buf.len(), 11 + TAG_LEN);
        let mut copy = buf.clone();
        assert_eq!(k.open(9, 42, b"hdr", &mut copy).unwrap(), b"hello frame");
        for (prefix, counter, aad) in [(8, 42, &b"hdr"[..]), (9, 43, b"hdr"), (9, 42, b"hdX")] {
            let mut copy = buf.clone();
            assert!(k.open(prefix, counter, aad, &mut copy).is_err());
        }
        let mut flipped = buf.clone();
        flipped[0] ^= 1;
        assert!(k.open(9, 42, b"hdr", &mut flipped).is_err());
        assert!(
            SessionKey::new(&[8u8; 32])
                .open(9, 42, b"hdr", &mut buf.clone())
                .is_err()
        );
        assert!(k.open(9, 42, b"hdr", &mut [0u8; 5]).is_err());
    }

    #[test]
    fn known_answer_vector() {
        // Locks the nonce layout and cipher: any change to either breaks interop.
        // GCM specification test case 14: zero key, zero IV, one zero block.
        let k = SessionKey::new(&[0u8; 32]);
        let mut buf = vec![0u8; 16];
        k.seal(0, 0, &[], &mut buf);
        let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
        );
    }
}
