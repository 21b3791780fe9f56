//! The data fast-path header: 16 bytes, authenticated as AEAD associated data.
//!
//! ```text
//!  0        1        2                 5                 8                               16
//! +--------+--------+-----------------+-----------------+-------------------------------+
//! | 0x12   | flags  | dst edge id u24 | src edge id u24 | counter u64 (nonce, replay)   |
//! +--------+--------+-----------------+-----------------+-------------------------------+
//! | ciphertext of the (optionally zstd-compressed) frame or peer message | tag (16)     |
//! ```
//!
//! With the `HANDSHAKE` flag the counter is 0 and the payload is a pair handshake message
//! ([`super::handshake`]) instead.

use super::{Form, WireError};
use crate::types::EdgeId;

/// Length of the data header.
pub const HEADER_LEN: usize = 16;

/// Per-packet overhead on top of the Ethernet frame: header plus AEAD tag.
pub const OVERHEAD: usize = HEADER_LEN + super::TAG_LEN;

/// The default TAP MTU: a full-size frame (with room for a VLAN tag) fits a 1500-byte
/// underlay over IPv6 as well as IPv4.
pub const DEFAULT_MTU: usize = 1400;

/// Ethernet header plus one 802.1Q tag.
pub const ETHERNET_OVERHEAD: usize = 14 + 4;

mod field {
    use std::ops::Range;
    pub const FLAGS: usize = 1;
    pub const DST: Range<usize> = 2..5;
    pub const SRC: Range<usize> = 5..8;
    pub const COUNTER: Range<usize> = 8..16;
}

/// Data header flag bits.
pub mod flags {
    /// The plaintext is zstd-compressed.
    pub const COMPRESSED: u8 = 0x01;
    /// The plaintext is a peer control message (probe), not an Ethernet frame.
    pub const PEER_CONTROL: u8 = 0x02;
    /// Two bits: the pair session (its number modulo 4) that sealed the packet.
    pub const SLOT: u8 = 0x0c;
    /// How far [`SLOT`] is shifted.
    pub const SLOT_SHIFT: u8 = 2;
    /// The payload is a pair handshake message ([`super::super::handshake`]), not sealed data.
    pub const HANDSHAKE: u8 = 0x10;
    /// Every defined bit; packets with other bits set are rejected.
    pub const ALL: u8 = COMPRESSED | PEER_CONTROL | SLOT | HANDSHAKE;
}

/// A zero-copy view of a data packet.
#[derive(Debug, Clone, Copy)]
pub struct DataPacket<T: AsRef<[u8]>> {
    buffer: T,
}

// Every accessor below indexes within HEADER_LEN + TAG_LEN bytes, which `new_checked`
// guarantees; the type cannot be built any other way.
#[allow(clippy::indexing_slicing)]
impl<T: AsRef<[u8]>> DataPacket<T> {
    /// Wraps a buffer after checking it holds a well-formed header and room for a tag.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN + super::TAG_LEN {
            return Err(WireError::Truncated);
        }
        if super::classify(b)? != Form::Data {
            return Err(WireError::Invalid("not a data packet"));
        }
        if b[field::FLAGS] & !flags::ALL != 0 {
            return Err(WireError::Invalid("unknown data flags"));
        }
        let p = Self { buffer };
        if p.dst() == 0 || p.src() == 0 {
            return Err(WireError::Invalid("edge id 0"));
        }
        Ok(p)
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn u24(&self, r: std::ops::Range<usize>) -> u32 {
        let s = &self.b()[r];
        u32::from_be_bytes([0, s[0], s[1], s[2]])
    }

    /// The flag bits.
    pub fn flags(&self) -> u8 {
        self.b()[field::FLAGS]
    }

    /// The destination edge id.
    pub fn dst(&self) -> EdgeId {
        self.u24(field::DST)
    }

    /// The source edge id.
    pub fn src(&self) -> EdgeId {
        self.u24(field::SRC)
    }

    /// The per-key packet counter.
    pub fn counter(&self) -> u64 {
        let mut c = [0u8; 8];
        c.copy_from_slice(&self.b()[field::COUNTER]);
        u64::from_be_bytes(c)
    }

    /// The header bytes (the AEAD associated data).
    pub fn header(&self) -> &[u8] {
        &self.b()[..HEADER_LEN]
    }

    /// The ciphertext including the tag.
    pub fn sealed_payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..]
    }
}

/// The parsed data header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader {
    /// Flag bits ([`flags`]).
    pub flags: u8,
    /// Destination edge id (24 bits).
    pub dst: EdgeId,
    /// Source edge id (24 bits).
    pub src: EdgeId,
    /// Per-key counter.
    pub counter: u64,
}

impl DataHeader {
    /// Parses the header of a checked packet.
    pub fn parse<T: AsRef<[u8]>>(p: &DataPacket<T>) -> Self {
        Self {
            flags: p.flags(),
            dst: p.dst(),
            src: p.src(),
            counter: p.counter(),
        }
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `out`.
    #[allow(clippy::indexing_slicing)] // fixed ranges inside a fixed-size array
    pub fn emit(&self, out: &mut [u8; HEADER_LEN]) {
        out[0] = Form::Data.first_byte();
        out[field::FLAGS] = self.flags;
        out[field::DST].copy_from_slice(&self.dst.to_be_bytes()[1..]);
        out[field::SRC].copy_from_slice(&self.src.to_be_bytes()[1..]);
        out[field::COUNTER].copy_from_slice(&self.counter.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_header_bytes() {
        let h = DataHeader {
            flags: 0x05,
            dst: 0x0a0b0c,
            src: 0x000102,
            counter: 0x1122334455667788,
        };
        let mut out = [0u8; HEADER_LEN];
        h.emit(&mut out);
        assert_eq!(
            out,
            [
                0x22, 0x05, 0x0a, 0x0b, 0x0c, 0x00, 0x01, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
                0x77, 0x88
            ]
        );
        let mut pkt = out.to_vec();
        pkt.extend_from_slice(&[0u8; 16]);
        let p = DataPacket::new_checked(&pkt[..]).unwrap();
        assert_eq!(DataHeader::parse(&p), h);
        assert_eq!(p.sealed_payload().len(), 16);
    }

    #[test]
    fn full_size_frame_fits_a_1500_byte_underlay() {
        assert_eq!(OVERHEAD, 32);
        let udp_payload = DEFAULT_MTU + ETHERNET_OVERHEAD + OVERHEAD;
        assert!(udp_payload + 20 + 8 <= 1500, "IPv4: {}", udp_payload + 28);
        assert!(udp_payload + 40 + 8 <= 1500, "IPv6: {}", udp_payload + 48);
    }

    #[test]
    fn rejects_short_unknown_flags_and_zero_ids() {
        let mut pkt = vec![0x22, 0, 0, 0, 1, 0, 0, 2];
        pkt.resize(32, 0);
        assert!(DataPacket::new_checked(&pkt[..]).is_ok());
        assert_eq!(
            DataPacket::new_checked(&pkt[..31]).unwrap_err(),
            WireError::Truncated
        );
        pkt[1] = 0x80;
        assert!(DataPacket::new_checked(&pkt[..]).is_err());
        pkt[1] = 0;
        pkt[4] = 0;
        assert!(DataPacket::new_checked(&pkt[..]).is_err());
    }
}
