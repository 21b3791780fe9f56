//! What the API shows about the daemon itself, beside the core's state.

use n2n_protocol::crypto::identity::Fingerprint;
use std::net::SocketAddr;
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
}
