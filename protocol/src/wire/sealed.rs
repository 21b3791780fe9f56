//! Sealed control messages between an edge and its supernode, after registration.
//!
//! ```text
//!  0      1      2          4               8                     16
//! +------+------+----------+---------------+---------------------+----------------------+
//! | 0x11 | type | reserved | edge id u32   | counter u64         | ciphertext + tag(16) |
//! +------+------+----------+---------------+---------------------+----------------------+
//! ```
//! The 16 header bytes are the AEAD associated data; the nonce is `direction(4) counter(8)`.

use super::codec::{Reader, Writer};
use super::messages::{KeyAnnounce, PeerInfo};
use super::{Form, MAX_CANDIDATES, WireError};
use crate::types::{Candidate, EdgeId};
use std::net::{Ipv4Addr, SocketAddr};

/// Length of the sealed header.
pub const HEADER_LEN: usize = 16;

/// Sealed message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SealedType {
    /// Edge -> supernode: liveness, candidates, current key.
    Heartbeat,
    /// Edge -> supernode: leaving.
    Unregister,
    /// Edge -> supernode: please coordinate a punch with a peer.
    PunchRequest,
    /// Edge -> supernode: send me the whole peer list.
    PeerSyncRequest,
    /// Edge -> supernode: the answer to a path challenge, from the new address.
    PathResponse,
    /// Supernode -> edge: registration accepted.
    RegisterAck,
    /// Supernode -> edge: registration refused, with the reason.
    RegisterNak,
    /// Supernode -> edge: heartbeat seen.
    HeartbeatAck,
    /// Supernode -> edge: a chunk of the full peer list.
    PeerList,
    /// Supernode -> edge: peers joined or changed.
    PeerUpdate,
    /// Supernode -> edge: peers left.
    PeerRemove,
    /// Supernode -> edge: probe this peer now (it is probing you).
    Punch,
    /// Supernode -> edge: prove you receive at the address this came to.
    PathChallenge,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for SealedType {
    fn from(v: u8) -> Self {
        match v {
            0x10 => Self::Heartbeat,
            0x11 => Self::Unregister,
            0x12 => Self::PunchRequest,
            0x13 => Self::PeerSyncRequest,
            0x14 => Self::PathResponse,
            0x20 => Self::RegisterAck,
            0x21 => Self::RegisterNak,
            0x22 => Self::HeartbeatAck,
            0x23 => Self::PeerList,
            0x24 => Self::PeerUpdate,
            0x25 => Self::PeerRemove,
            0x26 => Self::Punch,
            0x27 => Self::PathChallenge,
            v => Self::Unknown(v),
        }
    }
}

impl From<SealedType> for u8 {
    fn from(t: SealedType) -> u8 {
        match t {
            SealedType::Heartbeat => 0x10,
            SealedType::Unregister => 0x11,
            SealedType::PunchRequest => 0x12,
            SealedType::PeerSyncRequest => 0x13,
            SealedType::PathResponse => 0x14,
            SealedType::RegisterAck => 0x20,
            SealedType::RegisterNak => 0x21,
            SealedType::HeartbeatAck => 0x22,
            SealedType::PeerList => 0x23,
            SealedType::PeerUpdate => 0x24,
            SealedType::PeerRemove => 0x25,
            SealedType::Punch => 0x26,
            SealedType::PathChallenge => 0x27,
            SealedType::Unknown(v) => v,
        }
    }
}

/// The parsed sealed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealedHeader {
    /// Message type.
    pub kind: SealedType,
    /// The edge the session belongs to (0 before an id is assigned).
    pub edge_id: EdgeId,
    /// Per-direction counter.
    pub counter: u64,
}

impl SealedHeader {
    /// Parses the header of a sealed datagram; the rest is the ciphertext and tag.
    pub fn parse(b: &[u8]) -> Result<(Self, &[u8]), WireError> {
        if super::classify(b)? != Form::Sealed {
            return Err(WireError::Invalid("not a sealed message"));
        }
        if b.len() < HEADER_LEN + super::TAG_LEN {
            return Err(WireError::Truncated);
        }
        let mut r = Reader::new(b);
        r.u8()?;
        let kind = SealedType::from(r.u8()?);
        if let SealedType::Unknown(v) = kind {
            return Err(WireError::UnknownType(v));
        }
        if r.u16()? != 0 {
            return Err(WireError::Invalid("reserved bits set"));
        }
        let edge_id = r.u32()?;
        let counter = r.u64()?;
        Ok((
            Self {
                kind,
                edge_id,
                counter,
            },
            r.rest(),
        ))
    }

    /// Encodes the header.
    pub fn emit(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = Form::Sealed.first_byte();
        out[1] = self.kind.into();
        out[4..8].copy_from_slice(&self.edge_id.to_be_bytes());
        out[8..16].copy_from_slice(&self.counter.to_be_bytes());
        out
    }
}

/// Why a supernode refused a registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NakCode {
    /// The community requires a secret and the proof was missing or wrong.
    AdmissionRefused,
    /// The community has as many edges as it may.
    CommunityFull,
    /// No virtual address is free.
    NoAddress,
    /// Too many registrations from this address.
    RateLimited,
    /// The request was not acceptable (see the text).
    BadRequest,
    /// A code this version does not know.
    Other(u8),
}

impl From<u8> for NakCode {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::AdmissionRefused,
            2 => Self::CommunityFull,
            3 => Self::NoAddress,
            4 => Self::RateLimited,
            5 => Self::BadRequest,
            v => Self::Other(v),
        }
    }
}

impl From<NakCode> for u8 {
    fn from(c: NakCode) -> u8 {
        match c {
            NakCode::AdmissionRefused => 1,
            NakCode::CommunityFull => 2,
            NakCode::NoAddress => 3,
            NakCode::RateLimited => 4,
            NakCode::BadRequest => 5,
            NakCode::Other(v) => v,
        }
    }
}

/// A decrypted sealed message body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealedMessage {
    /// `candidates key(52)`.
    Heartbeat {
        /// LAN and mapped addresses.
        candidates: Vec<Candidate>,
        /// Current data key.
        key: KeyAnnounce,
    },
    /// Empty body.
    Unregister,
    /// `peer(4)`.
    PunchRequest {
        /// The peer to punch to.
        peer: EdgeId,
    },
    /// Empty body.
    PeerSyncRequest,
    /// `nonce(8)`.
    PathResponse {
        /// The challenge's nonce.
        nonce: [u8; 8],
    },
    /// `edge_id(4) ip(4) prefix(1) observed heartbeat_secs(2)`.
    RegisterAck {
        /// The edge's id.
        edge_id: EdgeId,
        /// Its virtual IP.
        ip: Ipv4Addr,
        /// Prefix length of the community subnet.
        prefix: u8,
        /// The edge's public endpoint as seen by the supernode.
        observed: SocketAddr,
        /// Heartbeat period the supernode expects.
        heartbeat_secs: u16,
    },
    /// `code(1) reason(string)`.
    RegisterNak {
        /// Machine-readable reason.
        code: NakCode,
        /// Human-readable reason.
        reason: String,
    },
    /// `observed`.
    HeartbeatAck {
        /// The edge's public endpoint as seen by the supernode.
        observed: SocketAddr,
    },
    /// `flags(1: bit0 first, bit1 last) count(1) peers`.
    PeerList {
        /// This chunk starts a new full list.
        first: bool,
        /// This chunk ends the list.
        last: bool,
        /// Peers in this chunk.
        peers: Vec<PeerInfo>,
    },
    /// `count(1) peers`.
    PeerUpdate {
        /// Peers that joined or changed.
        peers: Vec<PeerInfo>,
    },
    /// `count(1) ids(4 each)`.
    PeerRemove {
        /// Peers that left.
        ids: Vec<EdgeId>,
    },
    /// `peer`.
    Punch {
        /// The peer with its freshest candidates.
        peer: PeerInfo,
    },
    /// `nonce(8)`.
    PathChallenge {
        /// Echo this in a PATH_RESPONSE.
        nonce: [u8; 8],
    },
}

fn read_peers(r: &mut Reader<'_>) -> Result<Vec<PeerInfo>, WireError> {
    let n = r.u8()?;
    (0..n).map(|_| PeerInfo::read(r)).collect()
}

fn write_peers(w: &mut Writer<'_>, peers: &[PeerInfo]) {
    let peers = peers.get(..peers.len().min(255)).unwrap_or_default();
    w.u8(peers.len() as u8);
    for p in peers {
        p.write(w);
    }
}

impl SealedMessage {
    /// The type of this message.
    pub fn kind(&self) -> SealedType {
        match self {
            Self::Heartbeat { .. } => SealedType::Heartbeat,
            Self::Unregister => SealedType::Unregister,
            Self::PunchRequest { .. } => SealedType::PunchRequest,
            Self::PeerSyncRequest => SealedType::PeerSyncRequest,
            Self::PathResponse { .. } => SealedType::PathResponse,
            Self::RegisterAck { .. } => SealedType::RegisterAck,
            Self::RegisterNak { .. } => SealedType::RegisterNak,
            Self::HeartbeatAck { .. } => SealedType::HeartbeatAck,
            Self::PeerList { .. } => SealedType::PeerList,
            Self::PeerUpdate { .. } => SealedType::PeerUpdate,
            Self::PeerRemove { .. } => SealedType::PeerRemove,
            Self::Punch { .. } => SealedType::Punch,
            Self::PathChallenge { .. } => SealedType::PathChallenge,
        }
    }

    /// Parses a decrypted body of the given type.
    pub fn parse(kind: SealedType, b: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let msg = match kind {
            SealedType::Heartbeat => Self::Heartbeat {
                candidates: r.candidates(MAX_CANDIDATES)?,
                key: KeyAnnounce::read(&mut r)?,
            },
            SealedType::Unregister => Self::Unregister,
            SealedType::PunchRequest => Self::PunchRequest { peer: r.u32()? },
            SealedType::PeerSyncRequest => Self::PeerSyncRequest,
            SealedType::PathResponse => Self::PathResponse { nonce: r.array()? },
            SealedType::RegisterAck => Self::RegisterAck {
                edge_id: r.u32()?,
                ip: r.ipv4()?,
                prefix: match r.u8()? {
                    p @ 8..=30 => p,
                    _ => return Err(WireError::Invalid("prefix length")),
                },
                observed: r.sockaddr()?,
                heartbeat_secs: r.u16()?,
            },
            SealedType::RegisterNak => Self::RegisterNak {
                code: NakCode::from(r.u8()?),
                reason: r.string(255)?,
            },
            SealedType::HeartbeatAck => Self::HeartbeatAck {
                observed: r.sockaddr()?,
            },
            SealedType::PeerList => {
                let flags = r.u8()?;
                if flags & !3 != 0 {
                    return Err(WireError::Invalid("peer list flags"));
                }
                Self::PeerList {
                    first: flags & 1 != 0,
                    last: flags & 2 != 0,
                    peers: read_peers(&mut r)?,
                }
            }
            SealedType::PeerUpdate => Self::PeerUpdate {
                peers: read_peers(&mut r)?,
            },
            SealedType::PeerRemove => {
                let n = r.u8()?;
                Self::PeerRemove {
                    ids: (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?,
                }
            }
            SealedType::Punch => Self::Punch {
                peer: PeerInfo::read(&mut r)?,
            },
            SealedType::PathChallenge => Self::PathChallenge { nonce: r.array()? },
            SealedType::Unknown(v) => return Err(WireError::UnknownType(v)),
        };
        r.finish()?;
        Ok(msg)
    }

    /// Encodes the body (without header or tag).
    pub fn emit(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        match self {
            Self::Heartbeat { candidates, key } => {
                w.candidates(candidates);
                key.write(&mut w);
            }
            Self::Unregister | Self::PeerSyncRequest => {}
            Self::PunchRequest { peer } => w.u32(*peer),
            Self::RegisterAck {
                edge_id,
                ip,
                prefix,
                observed,
                heartbeat_secs,
            } => {
                w.u32(*edge_id);
                w.put(&ip.octets());
                w.u8(*prefix);
                w.sockaddr(*observed);
                w.u16(*heartbeat_secs);
            }
            Self::RegisterNak { code, reason } => {
                w.u8((*code).into());
                w.string(reason);
            }
            Self::HeartbeatAck { observed } => w.sockaddr(*observed),
            Self::PeerList { first, last, peers } => {
                w.u8(u8::from(*first) | (u8::from(*last) << 1));
                write_peers(&mut w, peers);
            }
            Self::PeerUpdate { peers } => write_peers(&mut w, peers),
            Self::PeerRemove { ids } => {
                let ids = ids.get(..ids.len().min(255)).unwrap_or_default();
                w.u8(ids.len() as u8);
                for id in ids {
                    w.u32(*id);
                }
            }
            Self::Punch { peer } => peer.write(&mut w),
            Self::PathResponse { nonce } | Self::PathChallenge { nonce } => w.put(nonce),
        }
    }
}
