//! What the edge core needs to know (the daemon's configuration maps onto this).

use n2n_protocol::crypto::CommunityKeys;
use n2n_protocol::crypto::identity::Fingerprint;
use n2n_protocol::crypto::signing::Signer;
use n2n_protocol::types::{Candidate, Mac};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Configuration of the edge core.
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    /// Community name.
    pub community: String,
    /// Keys derived from the community passphrase.
    pub keys: CommunityKeys,
    /// This machine's identity key: its leases belong to it, peers pin it.
    pub identity: Signer,
    /// When this process started (Unix seconds; the shell reads the clock): orders our
    /// announcements across restarts. A restart must give a larger value.
    pub boot: u32,
    /// Description shown to peers (host name by default).
    pub desc: String,
    /// The TAP MAC (stable per machine and community).
    pub mac: Mac,
    /// Supernodes, tried in order.
    pub supernodes: Vec<SocketAddr>,
    /// Refuse supernodes whose identity does not have this fingerprint.
    pub pinned: Option<Fingerprint>,
    /// Identities seen before, by supernode address (trust on first use): a supernode at one
    /// of these addresses must prove the same identity again. `pinned` wins over these.
    pub seen: std::collections::BTreeMap<SocketAddr, Fingerprint>,
    /// Peer pins saved by an earlier process (the core takes them at start).
    pub pins: Vec<super::PinnedPeer>,
    /// Ask for this virtual IP.
    pub requested_ip: Option<Ipv4Addr>,
    /// Compress frames with zstd when that makes them smaller.
    pub compress: bool,
    /// LAN and port-mapped addresses to advertise (the shell keeps them current).
    pub candidates: Vec<Candidate>,
    /// Probe period of a direct path (keeps NAT mappings open, measures RTT).
    pub keepalive: Duration,
    /// A direct path with no probe answer for this long falls back to the relay.
    pub path_timeout: Duration,
    /// How long one hole-punching attempt probes.
    pub punch_duration: Duration,
    /// Interval between probe rounds while punching.
    pub probe_interval: Duration,
    /// First wait before punching again after a failed attempt (doubles up to 16x).
    pub repunch_after: Duration,
    /// Rotate the data-plane key this often (forward secrecy); None disables.
    pub key_rotation: Option<Duration>,
    /// Learned MAC addresses (hosts bridged behind peers) are forgotten after this long.
    pub mac_ageing: Duration,
    /// Heartbeat at least this often, even if the supernode asks for less.
    pub max_heartbeat: Duration,
}

impl EdgeConfig {
    /// A configuration with the recommended timings.
    pub fn new(
        community: &str,
        keys: CommunityKeys,
        mac: Mac,
        identity: Signer,
        supernodes: Vec<SocketAddr>,
    ) -> Self {
        Self {
            community: community.to_string(),
            identity,
            boot: 0,
            keys,
            desc: String::new(),
            mac,
            supernodes,
            pinned: None,
            seen: Default::default(),
            pins: Vec::new(),
            requested_ip: None,
            compress: false,
            candidates: Vec::new(),
            keepalive: Duration::from_secs(5),
            path_timeout: Duration::from_secs(16),
            punch_duration: Duration::from_secs(10),
            probe_interval: Duration::from_millis(200),
            repunch_after: Duration::from_secs(30),
            key_rotation: Some(Duration::from_secs(600)),
            mac_ageing: Duration::from_secs(300),
            max_heartbeat: Duration::from_secs(60),
        }
    }
}
