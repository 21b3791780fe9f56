//! Counters of dropped packets, by reason, shared by both cores.

use std::collections::BTreeMap;
use std::fmt;

/// Why a datagram or frame was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// Too short, bad lengths, or fields that do not decode.
    Malformed,
    /// A protocol version we do not speak.
    BadVersion,
    /// A message type we do not know.
    UnknownType,
    /// Authentication (AEAD tag, signature, MAC) failed.
    Auth,
    /// A counter we have already seen, or too old for the replay window.
    Replay,
    /// A session or edge id we do not know.
    UnknownSession,
    /// A packet from or to an edge of another community.
    WrongCommunity,
    /// A control packet from an address other than our supernode.
    NotFromSupernode,
    /// Over a configured rate or size limit.
    RateLimited,
    /// A data packet addressed to another edge.
    Misdirected,
    /// The sender is not bound to the address the packet came from.
    SpoofedSource,
    /// A frame for which no peer or path exists.
    NoRoute,
    /// A message that makes no sense in the current state (e.g. reply to nothing).
    Unexpected,
    /// Admission to a community was refused.
    AdmissionRefused,
}

impl DropReason {
    /// Every reason, for exporting zero counters too.
    pub const ALL: [DropReason; 14] = [
        Self::Malformed,
        Self::BadVersion,
        Self::UnknownType,
        Self::Auth,
        Self::Replay,
        Self::UnknownSession,
        Self::WrongCommunity,
        Self::NotFromSupernode,
        Self::RateLimited,
        Self::Misdirected,
        Self::SpoofedSource,
        Self::NoRoute,
        Self::Unexpected,
        Self::AdmissionRefused,
    ];

    /// The snake_case label used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadVersion => "bad_version",
            Self::UnknownType => "unknown_type",
            Self::Auth => "auth",
            Self::Replay => "replay",
            Self::UnknownSession => "unknown_session",
            Self::WrongCommunity => "wrong_community",
            Self::NotFromSupernode => "not_from_supernode",
            Self::RateLimited => "rate_limited",
            Self::Misdirected => "misdirected",
            Self::SpoofedSource => "spoofed_source",
            Self::NoRoute => "no_route",
            Self::Unexpected => "unexpected",
            Self::AdmissionRefused => "admission_refused",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Drop counters by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropCounters(BTreeMap<DropReason, u64>);

impl DropCounters {
    /// Counts one drop.
    pub fn count(&mut self, reason: DropReason) {
        self.add(reason, 1);
    }

    /// Counts `n` drops for one reason (nothing is recorded for zero).
    pub fn add(&mut self, reason: DropReason, n: u64) {
        if n > 0 {
            let c = self.0.entry(reason).or_default();
            *c = c.saturating_add(n);
        }
    }

    /// The count for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0.get(&reason).copied().unwrap_or(0)
    }

    /// The sum over all reasons.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Iterates over non-zero counters.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        self.0.iter().map(|(r, n)| (*r, *n))
    }
}
