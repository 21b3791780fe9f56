//! What the API shows about the daemon itself, beside the core's state.

use std::time::Instant;

/// Facts about the daemon the core does not know.
pub struct DaemonInfo {
    /// UDP address.
    pub listen: std::net::SocketAddr,
    /// When the daemon started.
    pub started: Instant,
    /// Store writes that failed (disk full, ...).
    pub store_errors: u64,
}
