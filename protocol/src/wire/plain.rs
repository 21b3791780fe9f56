//! Plain (unauthenticated) control messages: the hello exchange and registration.
//!
//! ```text
//! 0       1       2
//! +-------+-------+---------------------------
//! | 0x10  | type  | body (per type, see below)
//! +-------+-------+---------------------------
//! ```

use super::codec::{Reader, Writer};
use super::{Form, WireError};
use crate::types::EdgeId;

/// A HELLO is padded to this length so that the signed reply is never larger than the
/// request (no amplification).
pub const HELLO_LEN: usize = 800;

/// Length of the part of a REGISTER that is authenticated as associated data.
pub const REGISTER_AAD_LEN: usize = 2 + 8 + 32 + 16;

/// Plain message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlainType {
    /// Edge asks for the supernode's signed session key.
    Hello,
    /// Supernode's signed key and address cookie.
    HelloReply,
    /// Edge registers (body sealed to the supernode's session key).
    Register,
    /// Supernode does not know the session an edge used (a hint, never trusted).
    UnknownSession,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for PlainType {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::Hello,
            2 => Self::HelloReply,
            3 => Self::Register,
            4 => Self::UnknownSession,
            v => Self::Unknown(v),
        }
    }
}

impl From<PlainType> for u8 {
    fn from(t: PlainType) -> u8 {
        match t {
            PlainType::Hello => 1,
            PlainType::HelloReply => 2,
            PlainType::Register => 3,
            PlainType::UnknownSession => 4,
            PlainType::Unknown(v) => v,
        }
    }
}

/// A parsed plain control message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlainMessage {
    /// `nonce(16)`, then zero padding to [`HELLO_LEN`].
    Hello {
        /// Echoed in the reply.
        nonce: [u8; 16],
    },
    /// `nonce(16) sn_key(32) sn_epoch(8) cookie(16) identity(u16 len + DER) signature(u16 len)`.
    HelloReply {
        /// The hello's nonce.
        nonce: [u8; 16],
        /// The supernode's X25519 session public key.
        sn_key: [u8; 32],
        /// Identifies this supernode run's key; a new value means the supernode restarted.
        sn_epoch: u64,
        /// Binds the following REGISTER to the source address of the hello.
        cookie: [u8; 16],
        /// The supernode's RSA identity public key (PKCS#1 DER).
        identity: Vec<u8>,
        /// RSA PKCS#1 v1.5 SHA-256 signature over the session key and epoch.
        signature: Vec<u8>,
    },
    /// `sn_epoch(8) edge_key(32) cookie(16) sealed RegisterBody + tag`.
    Register {
        /// The supernode key epoch the edge is answering.
        sn_epoch: u64,
        /// The edge's ephemeral X25519 key for this registration.
        edge_key: [u8; 32],
        /// The cookie from the hello reply.
        cookie: [u8; 16],
        /// AEAD ciphertext of a [`super::messages::RegisterBody`] with its tag.
        sealed: Vec<u8>,
    },
    /// `edge_id(4)`.
    UnknownSession {
        /// The edge id the supernode did not recognise.
        edge_id: EdgeId,
    },
}

impl PlainMessage {
    /// Parses a plain datagram (including its first byte).
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        if super::classify(b)? != Form::Plain {
            return Err(WireError::Invalid("not a plain message"));
        }
        r.u8()?;
        let msg = match PlainType::from(r.u8()?) {
            PlainType::Hello => {
                if b.len() < HELLO_LEN {
                    return Err(WireError::Invalid("hello not padded"));
                }
                let nonce = r.array()?;
                return Ok(Self::Hello { nonce });
            }
            PlainType::HelloReply => Self::HelloReply {
                nonce: r.array()?,
                sn_key: r.array()?,
                sn_epoch: r.u64()?,
                cookie: r.array()?,
                identity: r.bytes16(1024)?.to_vec(),
                signature: r.bytes16(1024)?.to_vec(),
            },
            PlainType::Register => {
                let sn_epoch = r.u64()?;
                let edge_key = r.array()?;
                let cookie = r.array()?;
                let sealed = r.rest().to_vec();
                if sealed.len() < super::TAG_LEN {
                    return Err(WireError::Truncated);
                }
                return Ok(Self::Register {
                    sn_epoch,
                    edge_key,
                    cookie,
                    sealed,
                });
            }
            PlainType::UnknownSession => Self::UnknownSession { edge_id: r.u32()? },
            PlainType::Unknown(v) => return Err(WireError::UnknownType(v)),
        };
        r.finish()?;
        Ok(msg)
    }

    /// Encodes the message as a datagram.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let mut w = Writer::new(&mut out);
        w.u8(Form::Plain.first_byte());
        match self {
            Self::Hello { nonce } => {
                w.u8(PlainType::Hello.into());
                w.put(nonce);
                out.resize(HELLO_LEN, 0);
            }
            Self::HelloReply {
                nonce,
                sn_key,
                sn_epoch,
                cookie,
                identity,
                signature,
            } => {
                w.u8(PlainType::HelloReply.into());
                w.put(nonce);
                w.put(sn_key);
                w.u64(*sn_epoch);
                w.put(cookie);
                w.bytes16(identity);
                w.bytes16(signature);
            }
            Self::Register {
                sn_epoch,
                edge_key,
                cookie,
                sealed,
            } => {
                w.u8(PlainType::Register.into());
                w.u64(*sn_epoch);
                w.put(edge_key);
                w.put(cookie);
                w.put(sealed);
            }
            Self::UnknownSession { edge_id } => {
                w.u8(PlainType::UnknownSession.into());
                w.u32(*edge_id);
            }
        }
        out
    }
}

/// The bytes a supernode signs for its session key.
pub fn signed_key_material(sn_key: &[u8; 32], sn_epoch: u64) -> Vec<u8> {
    let mut m = b"n2n-rs/1 supernode session key".to_vec();
    m.extend_from_slice(sn_key);
    m.extend_from_slice(&sn_epoch.to_be_bytes());
    m
}
