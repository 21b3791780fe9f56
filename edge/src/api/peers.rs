//! `/peers.json` as types: this edge, its peers and those that left. The graph views (DOT,
//! SVG) and `/leases.json` are built from the same values.

use super::info::DaemonInfo;
use crate::proto::{Edge, Path};
use n2n_protocol::types::EdgeId;
use serde::Serialize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// A peer counts as reaching us directly ("one-way") if a direct packet came this recently.
const ONE_WAY_WINDOW: Duration = Duration::from_secs(10);

/// This edge, its peers and those that left.
#[derive(Debug, Clone, Serialize)]
pub struct PeersView {
    /// This edge.
    #[serde(rename = "self")]
    pub me: SelfView,
    /// The peers.
    pub peers: Vec<PeerView>,
    /// The peers that left, newest first.
    pub offline: Vec<OfflineView>,
}

/// This edge.
#[derive(Debug, Clone, Serialize)]
pub struct SelfView {
    /// Edge id, once registered.
    pub id: Option<EdgeId>,
    /// MAC.
    pub mac: String,
    /// Overlay IP, once registered.
    pub ip: Option<String>,
    /// Name.
    pub desc: String,
    /// Community.
    pub community: String,
    /// Registered with a supernode.
    pub registered: bool,
    /// The supernode's address.
    pub supernode: Option<String>,
}

/// One peer.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    /// Edge id.
    pub id: EdgeId,
    /// MAC.
    pub mac: String,
    /// Overlay IP.
    pub ip: String,
    /// Name (the peer's own text: escape it where it is shown).
    pub desc: String,
    /// "direct" or "relayed".
    pub path: &'static str,
    /// Relayed from here, but its direct packets reach us.
    pub one_way: bool,
    /// Where its packets go (its address, or the supernode's).
    pub endpoint: Option<String>,
    /// The kind of candidate the direct path uses.
    pub candidate: Option<&'static str>,
    /// Round-trip time of the direct path, ms.
    pub rtt_ms: Option<f64>,
    /// Seconds since it was last heard from.
    pub last_seen_secs: Option<u64>,
    /// Frames sent to it.
    pub tx_frames: u64,
    /// Frame bytes sent to it.
    pub tx_bytes: u64,
    /// Frames sent to it through the supernode.
    pub tx_relayed: u64,
    /// Frames received from it.
    pub rx_frames: u64,
    /// Frame bytes received from it.
    pub rx_bytes: u64,
    /// Its announcement's key epoch.
    pub key_epoch: u32,
    /// The pair session we send on.
    pub session: Option<u32>,
    /// That session's age, seconds.
    pub session_age_secs: Option<u64>,
}

/// A peer that left.
#[derive(Debug, Clone, Serialize)]
pub struct OfflineView {
    /// Edge id.
    pub id: EdgeId,
    /// MAC.
    pub mac: String,
    /// Overlay IP (its lease keeps it).
    pub ip: String,
    /// Name.
    pub desc: String,
    /// When it left, Unix seconds.
    pub left_unix: u64,
}

/// The peers view of `edge` at `now`.
pub fn peers_view(edge: &Edge, info: &DaemonInfo, now: Instant) -> PeersView {
    PeersView {
        me: SelfView {
            id: edge.edge_id(),
            mac: edge.config().mac.to_string(),
            ip: edge.address().map(|(ip, _)| ip.to_string()),
            desc: edge.config().desc.clone(),
            community: info.community.clone(),
            registered: edge.is_registered(),
            supernode: edge.supernode().map(|a| a.to_string()),
        },
        peers: edge.peers().values().map(|p| peer(edge, p, now)).collect(),
        offline: offline(edge, now),
    }
}

fn peer(edge: &Edge, p: &crate::proto::Peer, now: Instant) -> PeerView {
    let (path, endpoint, candidate) = match p.path {
        Path::Direct { addr, kind } => ("direct", Some(addr.to_string()), Some(kind.name())),
        Path::Relayed => ("relayed", edge.supernode().map(|a| a.to_string()), None),
    };
    let one_way = !p.is_direct()
        && p.last_direct_rx
            .is_some_and(|(_, t)| now.saturating_duration_since(t) < ONE_WAY_WINDOW);
    let c = &p.counters;
    let key = p.send_key(now);
    PeerView {
        id: p.info.id,
        mac: p.info.mac.to_string(),
        ip: p.info.ip.to_string(),
        desc: p.info.desc.clone(),
        path,
        one_way,
        endpoint,
        candidate,
        rtt_ms: p.rtt.map(|r| (r.as_secs_f64() * 1e6).round() / 1e3),
        last_seen_secs: p
            .last_rx
            .map(|t| now.saturating_duration_since(t).as_secs()),
        tx_frames: c.tx_frames.load(Relaxed),
        tx_bytes: c.tx_bytes.load(Relaxed),
        tx_relayed: c.tx_relayed.load(Relaxed),
        rx_frames: c.rx_frames.load(Relaxed),
        rx_bytes: c.rx_bytes.load(Relaxed),
        key_epoch: p.info.key.epoch,
        session: key.map(|k| k.session),
        session_age_secs: key.map(|k| now.saturating_duration_since(k.created).as_secs()),
    }
}

/// The peers that left, newest first, with the Unix time they left.
pub fn offline(edge: &Edge, now: Instant) -> Vec<OfflineView> {
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut list: Vec<_> = edge
        .departed()
        .iter()
        .filter(|(_, d)| now.saturating_duration_since(d.left) < crate::proto::DEPARTED_FOR)
        .collect();
    list.sort_by_key(|(_, d)| std::cmp::Reverse(d.left));
    list.into_iter()
        .map(|(id, d)| OfflineView {
            id: *id,
            mac: d.mac.to_string(),
            ip: d.ip.to_string(),
            desc: d.desc.clone(),
            left_unix: unix_now.saturating_sub(now.saturating_duration_since(d.left).as_secs()),
        })
        .collect()
}
