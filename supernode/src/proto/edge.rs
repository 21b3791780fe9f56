//! A registered edge as the supernode keeps it.

use n2n_common::ratelimit::TokenBucket;
use n2n_common::session::ControlSession;
use n2n_common::types::{Candidate, EdgeId, Mac};
use n2n_common::wire::messages::{KeyAnnounce, PeerInfo};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

/// A registered edge.
#[derive(Debug)]
pub struct EdgeRecord {
    /// Its id.
    pub id: EdgeId,
    /// Its community.
    pub community: String,
    /// Its MAC.
    pub mac: Mac,
    /// Its virtual IP.
    pub ip: Ipv4Addr,
    /// Its description (untrusted text).
    pub desc: String,
    /// Where its packets come from (authenticated control moves it).
    pub endpoint: SocketAddr,
    /// LAN and mapped candidates it advertised.
    pub candidates: Vec<Candidate>,
    /// Its data-plane key.
    pub key: KeyAnnounce,
    /// When it was last heard from (authenticated).
    pub last_seen: Instant,
    /// When it registered.
    pub registered_at: Instant,
    /// Packets relayed from it.
    pub relayed_packets: u64,
    /// Bytes relayed from it.
    pub relayed_bytes: u64,
    pub(super) session: ControlSession,
    /// The edge's key of the REGISTER that made `session` (a resent one is answered from it).
    pub(super) edge_key: [u8; 32],
    pub(super) relay_bucket: TokenBucket,
    pub(super) punch_bucket: TokenBucket,
}

impl EdgeRecord {
    /// How peers see this edge.
    pub fn peer_info(&self) -> PeerInfo {
        PeerInfo {
            id: self.id,
            mac: self.mac,
            ip: self.ip,
            desc: self.desc.clone(),
            observed: Some(self.endpoint),
            candidates: self.candidates.clone(),
            key: self.key,
        }
    }
}
