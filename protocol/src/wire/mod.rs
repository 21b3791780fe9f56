//! The n2n-rs wire protocol, version 1. `docs/PROTOCOL.md` has the byte tables.
//!
//! Every datagram starts with one byte: the protocol version in the high nibble and the
//! header form in the low nibble. Three forms exist:
//!
//! - [`Form::Plain`]: unauthenticated control before a session exists (hello, register);
//! - [`Form::Sealed`]: AEAD-sealed control between an edge and its supernode;
//! - [`Form::Data`]: the 16-byte data fast path between edges (relayable by the supernode).

pub mod codec;
pub mod data;
pub mod handshake;
pub mod messages;
pub mod peer;
pub mod plain;
pub mod sealed;

#[cfg(test)]
mod golden_tests;

/// The protocol version this implementation speaks.
pub const VERSION: u8 = 2;

/// Bytes of an AEAD authentication tag.
pub const TAG_LEN: usize = 16;

/// The longest community name, in bytes.
pub const MAX_COMMUNITY_LEN: usize = 64;

/// The longest edge description, in bytes.
pub const MAX_DESC_LEN: usize = 64;

/// The most candidates an edge may advertise.
pub const MAX_CANDIDATES: usize = 8;

/// The largest datagram a supernode or edge builds for control messages, so that control
/// traffic never fragments on a 1500-byte underlay (IPv6 + UDP headers included).
pub const MAX_CONTROL_DATAGRAM: usize = 1400;

/// The header form, the low nibble of byte 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Unauthenticated control messages.
    Plain,
    /// AEAD-sealed edge <-> supernode control.
    Sealed,
    /// Data fast path.
    Data,
}

impl Form {
    /// The first byte of a datagram of this form.
    pub const fn first_byte(self) -> u8 {
        (VERSION << 4)
            | match self {
                Form::Plain => 0,
                Form::Sealed => 1,
                Form::Data => 2,
            }
    }
}

/// Why bytes failed to decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer ended before the message did.
    #[error("truncated")]
    Truncated,
    /// The message had bytes left after its last field.
    #[error("trailing bytes")]
    TrailingBytes,
    /// A protocol version other than [`VERSION`].
    #[error("unsupported protocol version {0}")]
    BadVersion(u8),
    /// A header form or message type we do not know.
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    /// A field holds a value that is not allowed.
    #[error("invalid field: {0}")]
    Invalid(&'static str),
}

impl WireError {
    /// The drop counter this error is accounted under.
    pub fn drop_reason(self) -> crate::stats::DropReason {
        use crate::stats::DropReason;
        match self {
            WireError::BadVersion(_) => DropReason::BadVersion,
            WireError::UnknownType(_) => DropReason::UnknownType,
            _ => DropReason::Malformed,
        }
    }
}

/// Reads the form of a datagram from its first byte, rejecting other versions.
pub fn classify(bytes: &[u8]) -> Result<Form, WireError> {
    let b = *bytes.first().ok_or(WireError::Truncated)?;
    if b >> 4 != VERSION {
        return Err(WireError::BadVersion(b >> 4));
    }
    match b & 0x0f {
        0 => Ok(Form::Plain),
        1 => Ok(Form::Sealed),
        2 => Ok(Form::Data),
        _ => Err(WireError::UnknownType(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_checks_version_and_form() {
        assert_eq!(classify(&[0x20]), Ok(Form::Plain));
        assert_eq!(classify(&[0x21, 0]), Ok(Form::Sealed));
        assert_eq!(classify(&[0x22]), Ok(Form::Data));
        assert_eq!(classify(&[0x12]), Err(WireError::BadVersion(1)));
        assert_eq!(classify(&[0x05]), Err(WireError::BadVersion(0)));
        assert_eq!(classify(&[0x2f]), Err(WireError::UnknownType(0x2f)));
        assert_eq!(classify(&[]), Err(WireError::Truncated));
    }
}
