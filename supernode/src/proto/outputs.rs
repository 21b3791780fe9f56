//! What crosses the core's boundary besides datagrams: the state it restores at start, the
//! events the shell stores and logs, and the counters it shows.

use super::{CommunityRecord, Lease};
use n2n_protocol::stats::DropCounters;
use n2n_protocol::types::{EdgeId, Mac};
use std::net::{Ipv4Addr, SocketAddr};

/// What the supernode restores at start (from its lease store).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PersistedState {
    /// Communities and their subnets.
    pub communities: Vec<CommunityRecord>,
    /// Granted leases.
    pub leases: Vec<Lease>,
}

/// Why an edge left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoveReason {
    /// It said goodbye.
    Unregistered,
    /// It went silent for longer than the expiry.
    Expired,
    /// Its community's admission rules changed: it must register again.
    Readmit,
}

/// Things the shell must act on or may log. Drain events before transmits: a
/// [`Event::LeaseGranted`] must be stored before the registration ack goes out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A community was created; persist its subnet.
    CommunityCreated(CommunityRecord),
    /// A lease was granted or changed; persist it.
    LeaseGranted(Lease),
    /// An open community stood empty for `open_community_idle`: delete it and its leases.
    CommunityRemoved {
        /// Its name.
        name: String,
        /// Its subnet, free again.
        subnet: Ipv4Addr,
    },
    /// A community moved to another key with its subnet and leases (configured verifiers, or
    /// the upgrade from protocol v1); rename it and its leases.
    CommunityRenamed {
        /// Its old key.
        from: String,
        /// Its new record.
        to: CommunityRecord,
    },
    /// A lease was reclaimed for another MAC; delete it.
    LeaseReclaimed {
        /// Community.
        community: String,
        /// The MAC that lost it.
        mac: Mac,
    },
    /// An edge registered (or re-registered).
    EdgeRegistered {
        /// Its id.
        id: EdgeId,
        /// Its community.
        community: String,
        /// Its virtual IP.
        ip: Ipv4Addr,
        /// Where it registered from.
        endpoint: SocketAddr,
        /// True if the community is open (no admission secret).
        open: bool,
    },
    /// An edge left.
    EdgeRemoved {
        /// Its id.
        id: EdgeId,
        /// Its community.
        community: String,
        /// Why.
        reason: RemoveReason,
    },
    /// A datagram of an older protocol version arrived (at most one such event a minute):
    /// an edge from before n2n-rs 0.2 is trying to connect and needs an upgrade.
    OutdatedPeer {
        /// Its source.
        from: SocketAddr,
        /// The version it speaks.
        version: u8,
    },
    /// A registration was refused.
    RegistrationRefused {
        /// The community asked for.
        community: String,
        /// Who asked.
        from: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// Counters the API and metrics export.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SupernodeStats {
    /// Datagrams handled.
    pub datagrams: u64,
    /// Successful registrations.
    pub registrations: u64,
    /// Data packets relayed.
    pub relayed_packets: u64,
    /// Data bytes relayed.
    pub relayed_bytes: u64,
    /// Punches coordinated.
    pub punches: u64,
    /// Drops by reason.
    pub drops: DropCounters,
    /// How often each abuse limit was hit.
    pub limit_hits: LimitHits,
}

/// Hits per abuse limit (each is also counted as a drop).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitHits {
    /// Hello/register over the per-source rate.
    pub handshakes: u64,
    /// Relayed packets over the per-edge rate.
    pub relay: u64,
    /// Punch requests over the per-edge rate.
    pub punches: u64,
    /// Peer list requests over the per-edge rate.
    pub peer_syncs: u64,
    /// Registrations refused because the community was full.
    pub community_full: u64,
    /// Open communities refused because their source (IPv4 address, IPv6 /48) created too
    /// many.
    pub new_communities: u64,
}
