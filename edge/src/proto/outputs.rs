//! What crosses the core's boundary besides datagrams and frames: the commands the shell
//! gives, the events it acts on, the counters it shows, and the peers that left.

use super::Path;
use n2n_protocol::crypto::identity::Fingerprint;
use n2n_protocol::stats::DropCounters;
use n2n_protocol::types::{Candidate, EdgeId, Mac};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Things the shell acts on or reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Registered (again): configure the TAP with this address.
    Registered {
        /// Our id.
        edge_id: EdgeId,
        /// Our virtual IP.
        ip: Ipv4Addr,
        /// Its prefix length.
        prefix: u8,
        /// The supernode that accepted us.
        supernode: SocketAddr,
    },
    /// The supernode refused us.
    RegistrationRefused {
        /// Its reason, verbatim.
        reason: String,
    },
    /// A supernode proved this identity.
    SupernodeIdentity {
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
    /// A supernode proved an identity at an address never seen before: trusted from now on
    /// (the shell keeps it in the state directory).
    SupernodeFirstSeen {
        /// Its address.
        supernode: SocketAddr,
        /// Its identity.
        fingerprint: Fingerprint,
    },
    /// Peer pins changed, or a present member's pin is due a refresh of its "last seen": the
    /// shell saves [`Edge::pinned_peers`] so that the next process keeps them.
    PinsChanged,
    /// A supernode was refused (identity mismatch or bad signature).
    SupernodeRejected {
        /// Why.
        reason: String,
    },
    /// The supernode stopped answering heartbeats; direct paths keep working.
    SupernodeLost,
    /// A peer's announcement contradicts an identity pinned before; it is ignored.
    PeerRefused {
        /// What it contradicts.
        reason: String,
    },
    /// A peer joined.
    PeerAdded {
        /// Its id.
        id: EdgeId,
    },
    /// A peer left.
    PeerRemoved {
        /// Its id.
        id: EdgeId,
    },
    /// A peer's path changed.
    PathChanged {
        /// The peer.
        id: EdgeId,
        /// The new path.
        path: Path,
    },
}

/// Commands from the shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Replace the LAN/mapped candidates we advertise.
    SetCandidates(Vec<Candidate>),
    /// The supernode names resolved to these addresses now (DNS changed, or a re-resolve
    /// after losing the supernode). If the one in use is gone, register with the first.
    SetSupernodes(Vec<SocketAddr>),
    /// Say goodbye to the supernode (before exit).
    Shutdown,
}

/// Counters for the API and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EdgeStats {
    /// Frames sent to peers (each flooded copy counts).
    pub tx_frames: u64,
    /// Frames sent through the supernode.
    pub tx_relayed: u64,
    /// Frames received from peers.
    pub rx_frames: u64,
    /// TCP super-frames read from the TAP device and cut (segmentation offload).
    pub tap_superframes_read: u64,
    /// Super-frames joined from received segments and written to the TAP device.
    pub tap_superframes_written: u64,
    /// MACs not learned because their peer already had [`super::MAX_MACS_PER_PEER`].
    pub macs_refused: u64,
    /// Registrations completed.
    pub registrations: u64,
    /// Pair handshakes started (each retry counts).
    pub handshakes_sent: u64,
    /// Pair handshakes we started that finished.
    pub handshakes_completed: u64,
    /// Drops by reason.
    pub drops: DropCounters,
}

/// How long a departed peer is remembered.
pub const DEPARTED_FOR: Duration = Duration::from_secs(24 * 3600);
/// How many departed peers are remembered at most (the oldest go first).
pub const MAX_DEPARTED: usize = 256;

/// A peer that left: what it was, and when it went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Departed {
    /// Its MAC.
    pub mac: Mac,
    /// Its virtual IP.
    pub ip: Ipv4Addr,
    /// Its description. Untrusted text.
    pub desc: String,
    /// When it left.
    pub left: Instant,
    /// Its static key then, and the last initiation timestamp accepted for it.
    pub last_timestamp: Option<([u8; 32], u64)>,
    /// (boot, epoch) of its last announcement: an older one is not taken when it returns.
    pub freshest: (u32, u32),
}
