//! Body types shared by several messages: key announcements, peer descriptions, registration.

use super::codec::{Reader, Writer};
use super::{MAX_CANDIDATES, MAX_COMMUNITY_LEN, MAX_DESC_LEN, WireError};
use crate::types::{Candidate, EdgeId, Mac};
use std::net::{Ipv4Addr, SocketAddr};

/// An edge's current data-plane public key, authenticated with the community key so that the
/// supernode that distributes it cannot substitute its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAnnounce {
    /// X25519 public key.
    pub public: [u8; 32],
    /// Rotation counter of this key (its parity selects keys on the data path).
    pub epoch: u32,
    /// HMAC tag over (MAC, key, epoch) under the community authentication key.
    pub tag: [u8; 16],
}

impl KeyAnnounce {
    /// Encoded length.
    pub const LEN: usize = 52;

    /// Decodes from a reader.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            public: r.array()?,
            epoch: r.u32()?,
            tag: r.array()?,
        })
    }

    /// Encodes into a writer.
    pub fn write(&self, w: &mut Writer<'_>) {
        w.put(&self.public);
        w.u32(self.epoch);
        w.put(&self.tag);
    }
}

/// What an edge learns about another member of its community.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// Supernode-assigned id.
    pub id: EdgeId,
    /// The peer's TAP MAC.
    pub mac: Mac,
    /// The peer's virtual IPv4 address.
    pub ip: Ipv4Addr,
    /// The peer's description (host name by default). Untrusted text.
    pub desc: String,
    /// The peer's public endpoint as the supernode sees it.
    pub observed: Option<SocketAddr>,
    /// Addresses the peer advertised itself (LAN, port-mapped).
    pub candidates: Vec<Candidate>,
    /// The peer's data-plane key.
    pub key: KeyAnnounce,
}

impl PeerInfo {
    /// Decodes from a reader.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let id = r.u32()?;
        let mac = r.mac()?;
        let ip = r.ipv4()?;
        let _reserved = r.u8()?;
        Ok(Self {
            id,
            mac,
            ip,
            desc: r.string(MAX_DESC_LEN)?,
            observed: r.opt_sockaddr()?,
            candidates: r.candidates(MAX_CANDIDATES)?,
            key: KeyAnnounce::read(r)?,
        })
    }

    /// Encodes into a writer.
    pub fn write(&self, w: &mut Writer<'_>) {
        w.u32(self.id);
        w.put(&self.mac.0);
        w.put(&self.ip.octets());
        w.u8(0);
        w.string(&self.desc);
        w.opt_sockaddr(self.observed);
        w.candidates(&self.candidates);
        self.key.write(w);
    }

    /// Encoded length.
    pub fn encoded_len(&self) -> usize {
        let mut v = Vec::with_capacity(128);
        self.write(&mut Writer::new(&mut v));
        v.len()
    }
}

/// The sealed part of a registration request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterBody {
    /// Community to join.
    pub community: String,
    /// The edge's TAP MAC (stable per machine and community).
    pub mac: Mac,
    /// Description shown to peers.
    pub desc: String,
    /// A static virtual IP the edge asks for.
    pub requested_ip: Option<Ipv4Addr>,
    /// Proof of the community admission secret, when the edge has one.
    pub admission_proof: Option<[u8; 32]>,
    /// LAN and port-mapped addresses.
    pub candidates: Vec<Candidate>,
    /// The edge's data-plane key.
    pub key: KeyAnnounce,
}

impl RegisterBody {
    /// Decodes a complete body.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let community = r.string(MAX_COMMUNITY_LEN)?;
        if community.is_empty() {
            return Err(WireError::Invalid("empty community"));
        }
        let mac = r.mac()?;
        let desc = r.string(MAX_DESC_LEN)?;
        let flags = r.u8()?;
        let requested_ip = if flags & 1 != 0 {
            Some(r.ipv4()?)
        } else {
            None
        };
        let admission_proof = if flags & 2 != 0 {
            Some(r.array()?)
        } else {
            None
        };
        if flags & !3 != 0 {
            return Err(WireError::Invalid("register flags"));
        }
        let candidates = r.candidates(MAX_CANDIDATES)?;
        let key = KeyAnnounce::read(&mut r)?;
        r.finish()?;
        Ok(Self {
            community,
            mac,
            desc,
            requested_ip,
            admission_proof,
            candidates,
            key,
        })
    }

    /// Encodes the body.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.string(&self.community);
        w.put(&self.mac.0);
        w.string(&self.desc);
        let flags =
            u8::from(self.requested_ip.is_some()) | (u8::from(self.admission_proof.is_some()) << 1);
        w.u8(flags);
        if let Some(ip) = self.requested_ip {
            w.put(&ip.octets());
        }
        if let Some(p) = &self.admission_proof {
            w.put(p);
        }
        w.candidates(&self.candidates);
        self.key.write(&mut w);
    }
}
