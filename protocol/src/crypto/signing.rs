//! Ed25519 signatures (the `ed25519-dalek` crate): an edge's long-term identity key, and a
//! community's admission key, whose public half (the *verifier*) names a closed community.
//!
//! Every signature covers a domain label first, so a signature made for one purpose never
//! verifies for another.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

/// Length of a signature.
pub const SIGNATURE_LEN: usize = 64;

/// A signing key from a 32-byte seed.
#[derive(Clone)]
pub struct Signer(SigningKey);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(")?;
        self.public()
            .iter()
            .try_for_each(|b| write!(f, "{b:02x}"))?;
        f.write_str(")")
    }
}

impl PartialEq for Signer {
    fn eq(&self, other: &Self) -> bool {
        self.public() == other.public()
    }
}

impl Eq for Signer {}

impl Signer {
    /// The key whose secret seed is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The public key (a verifier, or an identity).
    pub fn public(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// Signs `label ‖ parts…`.
    pub fn sign(&self, label: &[u8], parts: &[&[u8]]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(&message(label, parts)).to_bytes()
    }
}

/// True if `signature` is `public`'s signature over `label ‖ parts…` (strict verification:
/// no small-order keys, no malleable signatures).
pub fn verify(
    public: &[u8; 32],
    label: &[u8],
    parts: &[&[u8]],
    signature: &[u8; SIGNATURE_LEN],
) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public) else {
        return false;
    };
    key.verify_strict(&message(label, parts), &Signature::from_bytes(signature))
        .is_ok()
}

fn message(label: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = Vec::with_capacity(label.len() + parts.iter().map(|p| p.len()).sum::<usize>());
    m.extend_from_slice(label);
    for p in parts {
        m.extend_from_slice(p);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_key_label_and_message() {
        let a = Signer::from_seed(&[1; 32]);
        let b = Signer::from_seed(&[2; 32]);
        let sig = a.sign(b"label", &[b"hello", b"world"]);
        assert!(verify(&a.public(), b"label", &[b"hello", b"world"], &sig));
        assert!(verify(&a.public(), b"label", &[b"helloworld"], &sig));
        assert!(!verify(&b.public(), b"label", &[b"hello", b"world"], &sig));
        assert!(!verify(&a.public(), b"other", &[b"hello", b"world"], &sig));
        assert!(!verify(&a.public(), b"label", &[b"hello", b"worle"], &sig));
        let mut bad = sig;
        bad[5] ^= 1;
        assert!(!verify(&a.public(), b"label", &[b"hello", b"world"], &bad));
        assert!(!verify(&[0; 32], b"label", &[b"x"], &[0; 64]));
    }
}
