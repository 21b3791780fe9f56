//! A registered edge as the supernode keeps it.

use n2n_protocol::ratelimit::TokenBucket;
use n2n_protocol::session::ControlSession;
use n2n_protocol::types::{Candidate, EdgeId, Mac};
use n2n_protocol::wire::messages::{Binding, KeyAnnounce, PeerInfo};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

/// A registered edge.
#[derive(Debug)]
#[cfg_attr(fuzzing, derive(Clone))]
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
    /// The identity key it registered with (its lease belongs to it).
    pub identity: [u8; 32],
    /// The community verifier it proved (None: open).
    pub verifier: Option<[u8; 32]>,
    /// True once `key` is signed for what peers are told (id, MAC, IP, name, candidates):
    /// only then is the edge listed to its peers.
    pub bound: bool,
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
    pub(super) sync_bucket: TokenBucket,
    /// An address authenticated control came from that is not yet proven to receive: the
    /// nonce sent there and when.
    pub(super) challenge: Option<(SocketAddr, [u8; 8], Instant)>,
}

impl EdgeRecord {
    /// True if `key` is this edge's identity's announcement bound to its id, MAC, IP, name
    /// and `candidates`.
    pub fn announcement_ok(&self, key: &KeyAnnounce, candidates: &[Candidate]) -> bool {
        let binding = Binding {
            community: super::base_name(&self.community),
            verifier: self.verifier,
            id: self.id,
            mac: self.mac,
            ip: self.ip,
            desc: &self.desc,
            candidates,
        };
        key.identity == self.identity && key.signed_for(&binding)
    }

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
