//! JSON views of the supernode core, answered inside the event loop.

use super::info::DaemonInfo;
use super::{Answer, Query};
use crate::proto::Supernode;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::time::Instant;

/// Answers one query (the only one that changes the core is [`Query::ReleaseLease`]).
pub fn answer(q: &Query, sn: &mut Supernode, info: &DaemonInfo, now: Instant) -> Answer {
    match q {
        Query::ReleaseLease { community, mac } => match sn.release_lease(community, *mac) {
            Ok(l) => Answer::Json(StatusCode::OK, lease(&l, false)),
            Err(e) => Answer::Json(StatusCode::NOT_FOUND, json!({ "error": e })),
        },
        Query::Status => Answer::Json(StatusCode::OK, status(sn, info, now)),
        Query::Communities => Answer::Json(StatusCode::OK, communities(sn)),
        Query::CommunityEdges(name) => match sn.communities().get(name) {
            Some(_) => Answer::Json(StatusCode::OK, edges(sn, name, now)),
            None => Answer::Json(
                StatusCode::NOT_FOUND,
                json!({ "error": format!("no community named {name:?}") }),
            ),
        },
        Query::Leases => Answer::Json(StatusCode::OK, leases(sn)),
        Query::Metrics => {
            Answer::Text(n2n_kit::api::METRICS_TYPE, super::metrics::render(sn, info))
        }
        Query::Overview => {
            let edges: serde_json::Map<String, Value> = sn
                .communities()
                .keys()
                .map(|name| (name.clone(), self::edges(sn, name, now)))
                .collect();
            Answer::Json(
                StatusCode::OK,
                json!({ "status": status(sn, info, now), "communities": communities(sn), "edges": edges }),
            )
        }
    }
}

fn status(sn: &Supernode, info: &DaemonInfo, now: Instant) -> Value {
    let st = sn.stats();
    let drops: serde_json::Map<String, Value> = st
        .drops
        .iter()
        .map(|(r, n)| (r.label().to_string(), json!(n)))
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "fingerprint": sn.fingerprint().to_string(),
        "listen": info.listen.to_string(),
        "uptime_secs": now.saturating_duration_since(info.started).as_secs(),
        "communities": sn.communities().len(),
        "edges": sn.edges().len(),
        "registrations": st.registrations,
        "relayed_packets": st.relayed_packets,
        "relayed_bytes": st.relayed_bytes,
        "punches": st.punches,
        "datagrams": st.datagrams,
        "store_errors": info.store_errors,
        "drops": drops,
        "limit_hits": {
            "handshakes_per_source": st.limit_hits.handshakes,
            "relay_pps_per_edge": st.limit_hits.relay,
            "punches_per_edge": st.limit_hits.punches,
            "peer_syncs_per_edge": st.limit_hits.peer_syncs,
            "max_edges_per_community": st.limit_hits.community_full,
            "new_communities_per_hour": st.limit_hits.new_communities,
        },
    })
}

fn communities(sn: &Supernode) -> Value {
    let list: Vec<Value> = sn
        .communities()
        .values()
        .map(|c| {
            json!({
                "name": c.name,
                "subnet": format!("{}/{}", c.subnet, c.prefix),
                "open": c.verifier.is_none() && c.policy.verifiers.is_empty(),
                "edges": c.members.len(),
                "leases": c.leases.len(),
            })
        })
        .collect();
    Value::Array(list)
}

fn edges(sn: &Supernode, community: &str, now: Instant) -> Value {
    let list: Vec<Value> = sn
        .edges()
        .values()
        .filter(|e| e.community == community)
        .map(|e| {
            let candidates: Vec<Value> = e
                .candidates
                .iter()
                .map(|c| json!({ "kind": c.kind.name(), "addr": c.addr.to_string() }))
                .collect();
            json!({
                "id": e.id,
                "mac": e.mac.to_string(),
                "ip": e.ip.to_string(),
                "desc": e.desc,
                "endpoint": e.endpoint.to_string(),
                "candidates": candidates,
                "key_epoch": e.key.epoch,
                "last_seen_secs_ago": now.saturating_duration_since(e.last_seen).as_secs(),
                "registered_secs_ago": now.saturating_duration_since(e.registered_at).as_secs(),
                "relayed_packets": e.relayed_packets,
                "relayed_bytes": e.relayed_bytes,
            })
        })
        .collect();
    Value::Array(list)
}

fn leases(sn: &Supernode) -> Value {
    let online: std::collections::BTreeSet<u32> = sn.edges().keys().copied().collect();
    let list: Vec<Value> = sn
        .communities()
        .values()
        .flat_map(|c| c.leases.values())
        .map(|l| lease(l, online.contains(&l.edge_id)))
        .collect();
    Value::Array(list)
}

/// One lease as the API shows it.
pub fn lease(l: &crate::proto::Lease, online: bool) -> Value {
    json!({
        "community": l.community,
        "mac": l.mac.to_string(),
        "ip": l.ip.to_string(),
        "edge_id": l.edge_id,
        "desc": l.desc,
        "identity": l.identity.map(|k| n2n_kit::config::HexKey(k).to_string()),
        "last_seen_unix": l.last_seen_unix,
        "online": online,
    })
}
