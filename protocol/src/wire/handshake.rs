//! Pair handshake messages, carried after a data header with the `HANDSHAKE` flag (so the
//! supernode relays them like data, by destination id).
//!
//! ```text
//! kind (1: initiation, 2: reply, 3: cookie; | 0x80: mac2 present) | Noise message or cookie
//!     | [mac2 (16)] | mac1 (16)
//! ```
//!
//! `mac1` covers the data header and everything before it; `mac2` (a responder under load
//! asked for it with a cookie bound to our address) covers what comes before it. The Noise
//! payloads:
//! initiation `session u32 | timestamp u64`, reply `session u32 | timestamp u64` (the
//! responder's own clock: initiations it made before replying are stale from then on).

use super::WireError;
use super::codec::{Reader, Writer};
use crate::crypto::handshake::{COOKIE_LEN, MAC1_LEN};

/// Which handshake message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The first message, from the initiator.
    Initiation,
    /// The responder's reply.
    Reply,
    /// A responder under load asks for `mac2` with this cookie.
    Cookie,
}

/// Set in the kind byte when a `mac2` precedes the `mac1`.
pub const MAC2_FLAG: u8 = 0x80;

/// A handshake message inside a data packet (after the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeBody<'a> {
    /// Which message.
    pub kind: Kind,
    /// The Noise message (the cookie in a [`Kind::Cookie`]).
    pub noise: &'a [u8],
    /// The `mac2` over the header and everything before it, if present.
    pub mac2: Option<&'a [u8]>,
    /// The `mac1` over the header and everything before it.
    pub mac1: &'a [u8],
}

/// The longest Noise message accepted (both of ours are far shorter).
pub const MAX_NOISE_LEN: usize = 256;

impl<'a> HandshakeBody<'a> {
    /// Parses the payload of a data packet flagged `HANDSHAKE`.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let (&byte, rest) = body.split_first().ok_or(WireError::Truncated)?;
        let kind = match byte & !MAC2_FLAG {
            1 => Kind::Initiation,
            2 => Kind::Reply,
            3 => Kind::Cookie,
            v => return Err(WireError::UnknownType(v)),
        };
        let macs = if byte & MAC2_FLAG != 0 { 2 } else { 1 };
        let split = rest
            .len()
            .checked_sub(macs * MAC1_LEN)
            .ok_or(WireError::Truncated)?;
        let (noise, macs) = rest.split_at(split);
        let (mac2, mac1) = macs.split_at(macs.len() - MAC1_LEN);
        let valid = match kind {
            Kind::Cookie => noise.len() == COOKIE_LEN && mac2.is_empty(),
            _ => !noise.is_empty() && noise.len() <= MAX_NOISE_LEN,
        };
        if !valid {
            return Err(WireError::Invalid("handshake length"));
        }
        Ok(Self {
            kind,
            noise,
            mac2: (!mac2.is_empty()).then_some(mac2),
            mac1,
        })
    }

    /// The first byte of a body of `kind`.
    pub fn kind_byte(kind: Kind) -> u8 {
        match kind {
            Kind::Initiation => 1,
            Kind::Reply => 2,
            Kind::Cookie => 3,
        }
    }
}

/// The initiation's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitiationPayload {
    /// The session number the initiator proposes (its slot is the number modulo 4).
    pub session: u32,
    /// Strictly grows for one static key: a replayed initiation is refused.
    pub timestamp: u64,
}

impl InitiationPayload {
    /// Encodes it.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12);
        let mut w = Writer::new(&mut out);
        w.u32(self.session);
        w.u64(self.timestamp);
        out
    }

    /// Decodes it.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let p = Self {
            session: r.u32()?,
            timestamp: r.u64()?,
        };
        r.finish()?;
        Ok(p)
    }
}

/// The reply's payload: the session number it accepts, and the responder's clock.
pub fn parse_reply(b: &[u8]) -> Result<InitiationPayload, WireError> {
    InitiationPayload::parse(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kinds_and_splits_mac1() {
        let mut b = vec![1u8, 7, 7, 7];
        b.extend_from_slice(&[9u8; MAC1_LEN]);
        let h = HandshakeBody::parse(&b).unwrap();
        assert_eq!(h.kind, Kind::Initiation);
        assert_eq!(h.noise, &[7, 7, 7]);
        assert_eq!(h.mac1, &[9u8; MAC1_LEN]);
        assert_eq!(h.mac2, None);
        b[0] = 4;
        assert!(HandshakeBody::parse(&b).is_err());
        // With a mac2 before the mac1.
        let mut m = vec![1 | MAC2_FLAG, 7, 7];
        m.extend_from_slice(&[8u8; MAC1_LEN]);
        m.extend_from_slice(&[9u8; MAC1_LEN]);
        let h = HandshakeBody::parse(&m).unwrap();
        assert_eq!(
            (h.noise, h.mac2, h.mac1),
            (
                &[7u8, 7][..],
                Some(&[8u8; MAC1_LEN][..]),
                &[9u8; MAC1_LEN][..]
            )
        );
        assert!(
            HandshakeBody::parse(&m[..2 * MAC1_LEN + 1]).is_err(),
            "no noise left"
        );
        // A cookie: exactly its length, never a mac2.
        let mut c = vec![3u8];
        c.extend_from_slice(&[5u8; COOKIE_LEN]);
        c.extend_from_slice(&[9u8; MAC1_LEN]);
        assert_eq!(HandshakeBody::parse(&c).unwrap().kind, Kind::Cookie);
        c.insert(1, 0);
        assert!(HandshakeBody::parse(&c).is_err());
        assert!(HandshakeBody::parse(&[2u8; MAC1_LEN + 1]).is_err());
        assert!(HandshakeBody::parse(&[]).is_err());
        let p = InitiationPayload {
            session: 5,
            timestamp: 1 << 40,
        };
        assert_eq!(InitiationPayload::parse(&p.emit()).unwrap(), p);
        assert!(InitiationPayload::parse(&p.emit()[..11]).is_err());
        assert_eq!(parse_reply(&p.emit()).unwrap(), p);
    }
}
