//! What the API shows about the daemon itself, beside the core's state.

use n2n_protocol::crypto::identity::Fingerprint;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Facts about the daemon the core does not know.
#[derive(Debug, Clone)]
pub struct DaemonInfo {
    /// Community name.
    pub community: String,
    /// TAP device name.
    pub tap: String,
    /// Local UDP address.
    pub local: SocketAddr,
    /// Start time.
    pub started: Instant,
    /// The supernode's verified identity.
    pub fingerprint: Option<Fingerprint>,
    /// Each packet worker's counters, by queue.
    pub queues: Arc<[QueueCounters]>,
}

/// What each packet worker moved: its TAP queue's frames and its UDP socket's datagrams.
#[derive(Debug, Default)]
pub struct QueueCounters {
    /// Frames read from the queue (by its worker, or one draining it after writing to it).
    pub tap_read: AtomicU64,
    /// Frames written to the queue (by any worker, steered by flow).
    pub tap_written: AtomicU64,
    /// Datagrams received on the worker's socket.
    pub datagrams: AtomicU64,
}

impl QueueCounters {
    /// Counts into `c` (relaxed: these are statistics).
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}
