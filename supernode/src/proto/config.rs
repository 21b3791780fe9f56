//! What the supernode core needs to know (the daemon's configuration maps onto this).

use n2n_protocol::ratelimit::Rate;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Policy of one configured community.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommunityPolicy {
    /// When not empty, only edges that sign with the admission key of one of these verifiers
    /// (from the community passphrase; they do not reveal the data key) may use this name,
    /// and the community is kept under its bare name whichever of them an edge proves (a
    /// passphrase change lists the new verifier and the old one while members move).
    pub verifiers: Vec<[u8; 32]>,
    /// Subnet override (network address, prefix length).
    pub subnet: Option<(Ipv4Addr, u8)>,
    /// Cap on registered edges (overrides the global cap).
    pub max_edges: Option<usize>,
}

/// Limits on what outsiders and members can make the supernode spend.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Hellos plus registrations per source IP.
    pub handshakes_per_source: Rate,
    /// Source IPs tracked by the handshake limiter at once.
    pub max_tracked_sources: usize,
    /// New open communities per source (an IPv4 address or an IPv6 /48): each takes a subnet
    /// for good, so one source must not use up the pool.
    pub new_communities_per_source: Rate,
    /// Registered edges per community.
    pub max_edges_per_community: usize,
    /// Relayed packets per edge.
    pub relay_per_edge: Rate,
    /// Punch requests per edge.
    pub punches_per_edge: Rate,
    /// "Unknown session" hints sent, in total.
    pub unknown_session_replies: Rate,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshakes_per_source: Rate::new(10.0, 40.0),
            max_tracked_sources: 100_000,
            new_communities_per_source: Rate::new(8.0 / 3600.0, 8.0),
            max_edges_per_community: 4096,
            relay_per_edge: Rate::new(100_000.0, 20_000.0),
            punches_per_edge: Rate::new(10.0, 40.0),
            unknown_session_replies: Rate::new(200.0, 400.0),
        }
    }
}

/// Configuration of the supernode core.
#[derive(Clone, Debug, PartialEq)]
pub struct SupernodeConfig {
    /// Heartbeat period edges are told to use.
    pub heartbeat: Duration,
    /// An edge silent for this long is removed (its lease stays).
    pub expiry: Duration,
    /// Period of the expiry sweep.
    pub sweep_interval: Duration,
    /// An open (unconfigured) community without an edge for this long is removed with its
    /// leases, and its subnet goes back to the pool; zero keeps them for ever.
    pub open_community_idle: Duration,
    /// A full community takes back an offline edge's lease only once it was last seen this
    /// long ago.
    pub lease_reclaim_after: Duration,
    /// The range community subnets are carved from (network, prefix length).
    pub subnet_pool: (Ipv4Addr, u8),
    /// Prefix length of each community's subnet.
    pub community_prefix: u8,
    /// Admit communities that are not configured (open, logged as such).
    pub allow_open: bool,
    /// Configured communities.
    pub communities: BTreeMap<String, CommunityPolicy>,
    /// Abuse limits.
    pub limits: Limits,
}

impl Default for SupernodeConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(10),
            expiry: Duration::from_secs(45),
            sweep_interval: Duration::from_secs(5),
            open_community_idle: Duration::from_secs(30 * 24 * 3600),
            lease_reclaim_after: Duration::from_secs(7 * 24 * 3600),
            subnet_pool: (Ipv4Addr::new(10, 128, 0, 0), 9),
            community_prefix: 24,
            allow_open: true,
            communities: BTreeMap::new(),
            limits: Limits::default(),
        }
    }
}
