//! Small value types shared by the wire format and both cores.

use std::fmt;
use std::net::SocketAddr;

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The broadcast address ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Mac = Mac([0xff; 6]);

    /// True for broadcast and multicast (group bit set) addresses.
    pub fn is_group(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Reads the destination MAC of an Ethernet frame.
    pub fn dst_of(frame: &[u8]) -> Option<Mac> {
        frame.get(0..6).map(|b| Mac(b.try_into().unwrap_or([0; 6])))
    }

    /// Reads the source MAC of an Ethernet frame.
    pub fn src_of(frame: &[u8]) -> Option<Mac> {
        frame
            .get(6..12)
            .map(|b| Mac(b.try_into().unwrap_or([0; 6])))
    }

    /// Makes a locally administered unicast MAC out of arbitrary bytes.
    pub fn local_unicast(mut bytes: [u8; 6]) -> Mac {
        bytes[0] = (bytes[0] | 0x02) & !0x01;
        Mac(bytes)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(format!("{s:?} is not a MAC address (want 6 hex bytes)"));
        }
        for (o, p) in out.iter_mut().zip(parts) {
            *o = u8::from_str_radix(p, 16).map_err(|_| format!("{s:?}: bad hex byte {p:?}"))?;
        }
        Ok(Mac(out))
    }
}

/// The supernode-assigned identifier of an edge; 24 bits on the data path.
pub type EdgeId = u32;

/// The largest usable edge id (0 is "none", 0xFF_FFFF is reserved).
pub const MAX_EDGE_ID: EdgeId = 0x00FF_FFFE;

/// Where a hole-punching candidate address came from, in order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CandidateKind {
    /// An address of the peer's own interfaces (works when both share a LAN).
    Lan = 0,
    /// An address mapped on the peer's gateway by UPnP or NAT-PMP.
    Mapped = 1,
    /// The peer's public address as the supernode observed it.
    Observed = 2,
    /// An address we saw the peer's authenticated probe come from.
    PeerReflexive = 3,
}

impl CandidateKind {
    /// Decodes the wire value.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Lan,
            1 => Self::Mapped,
            2 => Self::Observed,
            3 => Self::PeerReflexive,
            _ => return None,
        })
    }

    /// The name used in APIs and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lan => "lan",
            Self::Mapped => "mapped",
            Self::Observed => "observed",
            Self::PeerReflexive => "peer-reflexive",
        }
    }
}

/// An address an edge may be reachable at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Candidate {
    /// Where the address came from.
    pub kind: CandidateKind,
    /// The address.
    pub addr: SocketAddr,
}

/// A datagram a core wants sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination address.
    pub dst: SocketAddr,
    /// The bytes.
    pub payload: Vec<u8>,
}
