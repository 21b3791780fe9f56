//! Prometheus text exposition of the supernode's counters.

use super::views::DaemonInfo;
use crate::proto::Supernode;
use n2n_common::stats::DropReason;
use std::fmt::Write;

/// Renders every metric.
pub fn render(sn: &Supernode, info: &DaemonInfo) -> String {
    let st = sn.stats();
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        n2n_common::stats::write_metric(&mut out, name, kind, help, value)
    };
    metric(
        "n2n_supernode_edges",
        "gauge",
        "Registered edges.",
        sn.edges().len() as u64,
    );
    metric(
        "n2n_supernode_communities",
        "gauge",
        "Communities.",
        sn.communities().len() as u64,
    );
    metric(
        "n2n_supernode_registrations_total",
        "counter",
        "Successful registrations.",
        st.registrations,
    );
    metric(
        "n2n_supernode_relayed_packets_total",
        "counter",
        "Data packets relayed.",
        st.relayed_packets,
    );
    metric(
        "n2n_supernode_relayed_bytes_total",
        "counter",
        "Data bytes relayed.",
        st.relayed_bytes,
    );
    metric(
        "n2n_supernode_punches_total",
        "counter",
        "Hole punches coordinated.",
        st.punches,
    );
    metric(
        "n2n_supernode_datagrams_total",
        "counter",
        "Datagrams received.",
        st.datagrams,
    );
    metric(
        "n2n_supernode_store_errors_total",
        "counter",
        "Failed lease store writes.",
        info.store_errors,
    );
    let _ = writeln!(
        out,
        "# HELP n2n_supernode_limit_hits_total Requests refused by an abuse limit, by limit."
    );
    let _ = writeln!(out, "# TYPE n2n_supernode_limit_hits_total counter");
    let hits = &st.limit_hits;
    for (limit, n) in [
        ("handshakes_per_source", hits.handshakes),
        ("relay_pps_per_edge", hits.relay),
        ("punches_per_edge", hits.punches),
        ("peer_syncs_per_edge", hits.peer_syncs),
        ("max_edges_per_community", hits.community_full),
        ("new_communities_per_hour", hits.new_communities),
    ] {
        let _ = writeln!(
            out,
            "n2n_supernode_limit_hits_total{{limit=\"{limit}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP n2n_supernode_drops_total Datagrams dropped, by reason."
    );
    let _ = writeln!(out, "# TYPE n2n_supernode_drops_total counter");
    for r in DropReason::ALL {
        let _ = writeln!(
            out,
            "n2n_supernode_drops_total{{reason=\"{}\"}} {}",
            r.label(),
            st.drops.get(r)
        );
    }
    let _ = writeln!(
        out,
        "# HELP n2n_supernode_community_edges Registered edges per community."
    );
    let _ = writeln!(out, "# TYPE n2n_supernode_community_edges gauge");
    for c in sn.communities().values() {
        let name = c
            .name
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = writeln!(
            out,
            "n2n_supernode_community_edges{{community=\"{name}\"}} {}",
            c.members.len()
        );
    }
    out
}
