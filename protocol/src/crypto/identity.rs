//! The supernode's persistent RSA identity: it signs the supernode's session key once per key,
//! never in response to unauthenticated input (RUSTSEC-2023-0071), and edges pin its
//! fingerprint.

use rsa::pkcs1::{DecodeRsaPublicKey, EncodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::{Pkcs1v15Sign, PrivateKey as RsaPrivateKey, PublicKey as RsaPublicKey};
use sha2::{Digest, Sha256};

use crate::rng::CoreRng;

/// Bits of a newly generated identity key.
pub const IDENTITY_BITS: usize = 2048;

/// The SHA-256 of an identity's PKCS#1 DER public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER public key.
    pub fn of(public_der: &[u8]) -> Self {
        Self(Sha256::digest(public_der).into())
    }
}

impl std::fmt::Display for Fingerprint {
    /// `SHA256:` followed by lowercase hex.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SHA256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let hex = s.trim().strip_prefix("SHA256:").unwrap_or(s.trim());
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(format!(
                "{s:?} is not a fingerprint (want SHA256: and 64 hex digits)"
            ));
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("zz"), 16)
                .map_err(|_| format!("{s:?}: not hex"))?;
        }
        Ok(Self(out))
    }
}

/// Errors loading or creating an identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Key generation failed.
    #[error("RSA key generation failed: {0}")]
    Generate(String),
    /// The stored key could not be read.
    #[error("invalid identity key: {0}")]
    Decode(String),
}

/// A supernode identity key pair.
#[derive(Clone)]
pub struct Identity {
    key: RsaPrivateKey,
    public_der: Vec<u8>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.fingerprint())
    }
}

impl Identity {
    /// Generates a new identity.
    pub fn generate(rng: &mut CoreRng, bits: usize) -> Result<Self, IdentityError> {
        let key = RsaPrivateKey::new(rng.inner(), bits)
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        Self::from_key(key)
    }

    fn from_key(key: RsaPrivateKey) -> Result<Self, IdentityError> {
        let public_der = key
            .to_public_key()
            .to_pkcs1_der()
            .map_err(|e| IdentityError::Decode(e.to_string()))?
            .as_bytes()
            .to_vec();
        Ok(Self { key, public_der })
    }

    /// Loads an identity from PKCS#8 PEM.
    pub fn from_pem(pem: &str) -> Result<Self, IdentityError> {
        let key =
            RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| IdentityError::Decode(e.to_string()))?;
        Self::from_key(key)
    }

    /// Serialises the private key as PKCS#8 PEM.
    pub fn to_pem(&self) -> Result<String, IdentityError> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map(|z| z.to_string())
            .map_err(|e| IdentityError::Decode(e.to_string()))
    }

    /// The public key as PKCS#1 DER (what goes on the wire).
    pub fn public_der(&self) -> &[u8] {
        &self.public_der
    }

    /// The fingerprint edges pin.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.public_der)
    }

    /// Signs `msg` with RSA PKCS#1 v1.5 over SHA-256.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let digest = Sha256::digest(msg);
        self.key
            .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
            .unwrap_or_default()
    }
}

/// Verifies a signature made by [`Identity::sign`] with the DER public key `public_der`.
pub fn verify(public_der: &[u8], msg: &[u8], signature: &[u8]) -> bool {
    let Ok(public) = RsaPublicKey::from_pkcs1_der(public_der) else {
        return false;
    };
    let digest = Sha256::digest(msg);
    public
        .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_pem_roundtrip_and_fingerprint() {
        let id = Identity::generate(&mut CoreRng::seeded(1), 1024).unwrap();
        let sig = id.sign(b"message");
        assert!(verify(id.public_der(), b"message", &sig));
        assert!(!verify(id.public_der(), b"messagf", &sig));
        assert!(!verify(b"garbage", b"message", &sig));
        let again = Identity::from_pem(&id.to_pem().unwrap()).unwrap();
        assert_eq!(again.fingerprint(), id.fingerprint());
        let fp: Fingerprint = id.fingerprint().to_string().parse().unwrap();
        assert_eq!(fp, id.fingerprint());
        assert!("SHA256:zz".parse::<Fingerprint>().is_err());
        assert!(
            Identity::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_err()
        );
    }
}
