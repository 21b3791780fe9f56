//! Prometheus text exposition of the supernode's counters.

use super::info::DaemonInfo;
use crate::proto::Supernode;
use n2n_kit::metrics::{Exposition, Kind};
use n2n_protocol::stats::DropReason;

/// Renders every metric.
pub fn render(sn: &Supernode, info: &DaemonInfo) -> String {
    let st = sn.stats();
    let mut out = Exposition::new();
    out.metric(
        "n2n_supernode_edges",
        Kind::Gauge,
        "Registered edges.",
        sn.edges().len() as u64,
    );
    out.metric(
        "n2n_supernode_communities",
        Kind::Gauge,
        "Communities.",
        sn.communities().len() as u64,
    );
    out.metric(
        "n2n_supernode_registrations_total",
        Kind::Counter,
        "Successful registrations.",
        st.registrations,
    );
    out.metric(
        "n2n_supernode_relayed_packets_total",
        Kind::Counter,
        "Data packets relayed.",
        st.relayed_packets,
    );
    out.metric(
        "n2n_supernode_relayed_bytes_total",
        Kind::Counter,
        "Data bytes relayed.",
        st.relayed_bytes,
    );
    out.metric(
        "n2n_supernode_punches_total",
        Kind::Counter,
        "Hole punches coordinated.",
        st.punches,
    );
    out.metric(
        "n2n_supernode_datagrams_total",
        Kind::Counter,
        "Datagrams received.",
        st.datagrams,
    );
    out.metric(
        "n2n_supernode_store_errors_total",
        Kind::Counter,
        "Failed lease store writes.",
        info.store_errors,
    );
    let hits = &st.limit_hits;
    out.family(
        "n2n_supernode_limit_hits_total",
        Kind::Counter,
        "Requests refused by an abuse limit, by limit.",
        "limit",
        [
            ("handshakes_per_source", hits.handshakes),
            ("relay_pps_per_edge", hits.relay),
            ("punches_per_edge", hits.punches),
            ("peer_syncs_per_edge", hits.peer_syncs),
            ("max_edges_per_community", hits.community_full),
            ("new_communities_per_hour", hits.new_communities),
        ],
    );
    out.family(
        "n2n_supernode_drops_total",
        Kind::Counter,
        "Datagrams dropped, by reason.",
        "reason",
        DropReason::ALL.map(|r| (r.label(), st.drops.get(r))),
    );
    out.family(
        "n2n_supernode_community_edges",
        Kind::Gauge,
        "Registered edges per community.",
        "community",
        sn.communities()
            .values()
            .map(|c| (&c.name, c.members.len())),
    );
    out.finish()
}
