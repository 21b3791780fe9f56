//! JSON and metrics views of the edge core.

use super::info::{DaemonInfo, QueueCounters};
use super::peers::{offline, peers_view};
use super::{Answer, Query};
use crate::proto::Edge;
use axum::http::StatusCode;
use n2n_kit::metrics::{Exposition, Kind};
use n2n_protocol::stats::DropReason;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Answers one query.
pub fn answer(q: &Query, edge: &Edge, info: &DaemonInfo, now: Instant) -> Answer {
    match q {
        Query::Status => Answer::Json(StatusCode::OK, status(edge, info, now)),
        Query::Peers => Answer::Json(StatusCode::OK, peers_json(edge, info, now)),
        Query::Leases => Answer::Json(StatusCode::OK, leases(edge, now)),
        Query::Dot => Answer::Text(
            "text/vnd.graphviz; charset=utf-8",
            super::dot(&peers_view(edge, info, now)),
        ),
        Query::OfflineDot => Answer::Text(
            "text/vnd.graphviz; charset=utf-8",
            super::offline_dot(&peers_view(edge, info, now)),
        ),
        Query::Svg => Answer::Text(
            "image/svg+xml; charset=utf-8",
            super::svg(&peers_view(edge, info, now)),
        ),
        Query::Metrics => Answer::Text(n2n_kit::api::METRICS_TYPE, metrics(edge, info)),
    }
}

fn status(edge: &Edge, info: &DaemonInfo, now: Instant) -> Value {
    let st = edge.stats();
    let drops: serde_json::Map<String, Value> = st
        .drops
        .iter()
        .map(|(r, n)| (r.label().to_string(), json!(n)))
        .collect();
    let direct = edge.peers().values().filter(|p| p.is_direct()).count();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "community": info.community,
        "tap": info.tap,
        "local": info.local.to_string(),
        "registered": edge.is_registered(),
        "edge_id": edge.edge_id(),
        "ip": edge.address().map(|(ip, _)| ip.to_string()),
        "prefix": edge.address().map(|(_, p)| p),
        "mac": edge.config().mac.to_string(),
        "supernode": edge.supernode().map(|a| a.to_string()),
        "supernode_fingerprint": info.fingerprint.map(|f| f.to_string()),
        "observed": edge.observed().map(|a| a.to_string()),
        "candidates": edge
            .config()
            .candidates
            .iter()
            .map(|c| json!({ "kind": c.kind.name(), "addr": c.addr.to_string() }))
            .collect::<Vec<_>>(),
        "uptime_secs": now.saturating_duration_since(info.started).as_secs(),
        "peers": edge.peers().len(),
        "direct_peers": direct,
        "tx_frames": st.tx_frames,
        "tx_relayed": st.tx_relayed,
        "rx_frames": st.rx_frames,
        "tap_superframes_read": st.tap_superframes_read,
        "tap_superframes_written": st.tap_superframes_written,
        "macs_refused": st.macs_refused,
        "registrations": st.registrations,
        "handshakes_sent": st.handshakes_sent,
        "handshakes_completed": st.handshakes_completed,
        "drops": drops,
        "queues": info
            .queues
            .iter()
            .map(|q| json!({
                "tap_read": q.tap_read.load(Ordering::Relaxed),
                "tap_written": q.tap_written.load(Ordering::Relaxed),
                "datagrams": q.datagrams.load(Ordering::Relaxed),
            }))
            .collect::<Vec<_>>(),
    })
}

/// This edge and its peers, the data of `/peers.json` and of the graph views, as JSON.
pub fn peers_json(edge: &Edge, info: &DaemonInfo, now: Instant) -> Value {
    serde_json::to_value(peers_view(edge, info, now)).unwrap_or(Value::Null)
}

fn leases(edge: &Edge, now: Instant) -> Value {
    let mut list = vec![json!({
        "id": edge.edge_id(),
        "mac": edge.config().mac.to_string(),
        "ip": edge.address().map(|(ip, _)| ip.to_string()),
        "desc": edge.config().desc,
        "self": true,
        "online": edge.is_registered(),
    })];
    list.extend(edge.peers().values().map(|p| {
        json!({ "id": p.info.id, "mac": p.info.mac.to_string(), "ip": p.info.ip.to_string(), "desc": p.info.desc, "self": false, "online": true })
    }));
    // Peers that left keep their address (the supernode holds their lease for them).
    list.extend(offline(edge, now).into_iter().map(|o| {
        json!({ "id": o.id, "mac": o.mac, "ip": o.ip, "desc": o.desc, "left_unix": o.left_unix, "self": false, "online": false })
    }));
    Value::Array(list)
}

fn metrics(edge: &Edge, info: &DaemonInfo) -> String {
    let st = edge.stats();
    let mut out = Exposition::new();
    out.metric(
        "n2n_edge_registered",
        Kind::Gauge,
        "1 while registered with a supernode.",
        u64::from(edge.is_registered()),
    );
    out.metric(
        "n2n_edge_peers",
        Kind::Gauge,
        "Known peers.",
        edge.peers().len() as u64,
    );
    out.metric(
        "n2n_edge_direct_peers",
        Kind::Gauge,
        "Peers with a direct path.",
        edge.peers().values().filter(|p| p.is_direct()).count() as u64,
    );
    out.metric(
        "n2n_edge_tx_frames_total",
        Kind::Counter,
        "Frames sent to peers.",
        st.tx_frames,
    );
    out.metric(
        "n2n_edge_tx_relayed_total",
        Kind::Counter,
        "Frames sent through the supernode.",
        st.tx_relayed,
    );
    out.metric(
        "n2n_edge_rx_frames_total",
        Kind::Counter,
        "Frames received from peers.",
        st.rx_frames,
    );
    out.metric(
        "n2n_edge_tap_superframes_read_total",
        Kind::Counter,
        "TCP super-frames read from the TAP device and cut to the MTU (segmentation offload).",
        st.tap_superframes_read,
    );
    out.metric(
        "n2n_edge_tap_superframes_written_total",
        Kind::Counter,
        "Super-frames joined from received segments and written to the TAP device.",
        st.tap_superframes_written,
    );
    out.metric(
        "n2n_edge_macs_refused_total",
        Kind::Counter,
        "MACs not learned behind a peer that already had the most allowed (1024).",
        st.macs_refused,
    );
    out.metric(
        "n2n_edge_registrations_total",
        Kind::Counter,
        "Registrations.",
        st.registrations,
    );
    out.metric(
        "n2n_edge_handshakes_sent_total",
        Kind::Counter,
        "Pair handshakes started, retries included.",
        st.handshakes_sent,
    );
    out.metric(
        "n2n_edge_handshakes_completed_total",
        Kind::Counter,
        "Pair handshakes this edge started that finished.",
        st.handshakes_completed,
    );
    out.family(
        "n2n_edge_drops_total",
        Kind::Counter,
        "Packets dropped, by reason.",
        "reason",
        DropReason::ALL.map(|r| (r.label(), st.drops.get(r))),
    );
    let per_queue = |f: fn(&QueueCounters) -> &AtomicU64| {
        info.queues
            .iter()
            .enumerate()
            .map(move |(i, q)| (i, f(q).load(Ordering::Relaxed)))
    };
    out.family(
        "n2n_edge_queue_tap_read_total",
        Kind::Counter,
        "Frames read from each TAP queue by its packet worker.",
        "queue",
        per_queue(|q| &q.tap_read),
    );
    out.family(
        "n2n_edge_queue_tap_written_total",
        Kind::Counter,
        "Frames written to each TAP queue (chosen by flow).",
        "queue",
        per_queue(|q| &q.tap_written),
    );
    out.family(
        "n2n_edge_queue_datagrams_total",
        Kind::Counter,
        "Datagrams received on each packet worker's socket.",
        "queue",
        per_queue(|q| &q.datagrams),
    );
    out.family(
        "n2n_edge_peer_rtt_seconds",
        Kind::Gauge,
        "Round-trip time of direct paths.",
        "peer",
        edge.peers()
            .values()
            .filter_map(|p| Some((p.info.id, p.rtt?.as_secs_f64()))),
    );
    out.finish()
}
