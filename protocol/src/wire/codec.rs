//! Bounds-checked big-endian cursor types for message bodies. No method can panic.

use super::WireError;
use crate::types::{Candidate, CandidateKind, Mac};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Reads fields from a byte slice, failing with [`WireError::Truncated`] past its end.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Fails unless every byte was consumed.
    pub fn finish(self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes)
        }
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let b = self.take(N)?;
        b.try_into().map_err(|_| WireError::Truncated)
    }

    /// Reads a u8.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    /// Reads a big-endian u16.
    pub fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian u32.
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian u64.
    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads a MAC address.
    pub fn mac(&mut self) -> Result<Mac, WireError> {
        Ok(Mac(self.array()?))
    }

    /// Reads an IPv4 address.
    pub fn ipv4(&mut self) -> Result<Ipv4Addr, WireError> {
        Ok(Ipv4Addr::from(self.array::<4>()?))
    }

    /// Reads a string with a u8 length prefix, at most `max` bytes of UTF-8.
    pub fn string(&mut self, max: usize) -> Result<String, WireError> {
        let n = self.u8()? as usize;
        if n > max {
            return Err(WireError::Invalid("string too long"));
        }
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| WireError::Invalid("string is not UTF-8"))
    }

    /// Reads bytes with a u16 length prefix, at most `max` bytes.
    pub fn bytes16(&mut self, max: usize) -> Result<&'a [u8], WireError> {
        let n = self.u16()? as usize;
        if n > max {
            return Err(WireError::Invalid("field too long"));
        }
        self.take(n)
    }

    /// Reads a socket address: family (4 or 6), address, port.
    pub fn sockaddr(&mut self) -> Result<SocketAddr, WireError> {
        let ip = match self.u8()? {
            4 => IpAddr::V4(self.ipv4()?),
            6 => IpAddr::V6(Ipv6Addr::from(self.array::<16>()?)),
            _ => return Err(WireError::Invalid("address family")),
        };
        Ok(SocketAddr::new(ip, self.u16()?))
    }

    /// Reads an optional socket address (family 0 = none).
    pub fn opt_sockaddr(&mut self) -> Result<Option<SocketAddr>, WireError> {
        if self.buf.first() == Some(&0) {
            self.u8()?;
            return Ok(None);
        }
        self.sockaddr().map(Some)
    }

    /// Reads a candidate list with a u8 count, at most `max` entries.
    pub fn candidates(&mut self, max: usize) -> Result<Vec<Candidate>, WireError> {
        let n = self.u8()? as usize;
        if n > max {
            return Err(WireError::Invalid("too many candidates"));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let kind =
                CandidateKind::from_u8(self.u8()?).ok_or(WireError::Invalid("candidate kind"))?;
            out.push(Candidate {
                kind,
                addr: self.sockaddr()?,
            });
        }
        Ok(out)
    }
}

/// Appends fields to a byte vector.
pub struct Writer<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    /// Appends to `buf`.
    pub fn new(buf: &'a mut Vec<u8>) -> Self {
        Self { buf }
    }

    /// Appends raw bytes.
    pub fn put(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Appends a u8.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Appends a big-endian u16.
    pub fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }

    /// Appends a big-endian u32.
    pub fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }

    /// Appends a big-endian u64.
    pub fn u64(&mut self, v: u64) {
        self.put(&v.to_be_bytes());
    }

    /// Appends a string with a u8 length prefix (callers enforce the limit; longer input is cut
    /// at a character boundary to 255 bytes).
    pub fn string(&mut self, s: &str) {
        let mut end = s.len().min(255);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.u8(end as u8);
        self.put(s.as_bytes().get(..end).unwrap_or_default());
    }

    /// Appends bytes with a u16 length prefix.
    pub fn bytes16(&mut self, b: &[u8]) {
        let n = b.len().min(u16::MAX as usize);
        self.u16(n as u16);
        self.put(b.get(..n).unwrap_or_default());
    }

    /// Appends a socket address.
    pub fn sockaddr(&mut self, a: SocketAddr) {
        match a.ip() {
            IpAddr::V4(v4) => {
                self.u8(4);
                self.put(&v4.octets());
            }
            IpAddr::V6(v6) => {
                self.u8(6);
                self.put(&v6.octets());
            }
        }
        self.u16(a.port());
    }

    /// Appends an optional socket address.
    pub fn opt_sockaddr(&mut self, a: Option<SocketAddr>) {
        match a {
            Some(a) => self.sockaddr(a),
            None => self.u8(0),
        }
    }

    /// Appends a candidate list (at most 255 entries are written).
    pub fn candidates(&mut self, c: &[Candidate]) {
        let c = c.get(..c.len().min(255)).unwrap_or_default();
        self.u8(c.len() as u8);
        for cand in c {
            self.u8(cand.kind as u8);
            self.sockaddr(cand.addr);
        }
    }
}
