//! The supernode's log lines for the core's events.

use crate::proto::{Event, RemoveReason};
use std::collections::BTreeSet;

/// Logs one event; an open community is named once (`open_logged` remembers which).
pub fn log_event(e: &Event, open_logged: &mut BTreeSet<String>) {
    match e {
        Event::EdgeRegistered {
            id,
            community,
            ip,
            endpoint,
            open,
        } => {
            tracing::info!(id, %community, %ip, %endpoint, "edge registered");
            if *open && open_logged.insert(community.clone()) {
                tracing::warn!(%community, "community is open: no admission secret configured, anyone who knows its name can join");
            }
        }
        Event::EdgeRemoved {
            id,
            community,
            reason,
        } => {
            let why = match reason {
                RemoveReason::Unregistered => "left",
                RemoveReason::Expired => "expired",
                RemoveReason::Readmit => "must register again (admission changed)",
            };
            tracing::info!(id, %community, why, "edge removed");
        }
        Event::OutdatedPeer { from, version } => {
            tracing::warn!(%from, version, "an edge speaks protocol v{version} (n2n-rs before 0.2): this supernode speaks v{} only; upgrade the edge", n2n_protocol::wire::VERSION)
        }
        Event::RegistrationRefused {
            community,
            from,
            reason,
        } => {
            tracing::warn!(%community, %from, %reason, "registration refused");
        }
        Event::CommunityCreated(c) => {
            tracing::info!(community = %c.name, subnet = %format!("{}/{}", c.subnet, c.prefix), "community created")
        }
        Event::CommunityRemoved { name, subnet } => {
            tracing::info!(community = %name, %subnet, "open community unused for open_community_idle: removed, its subnet is free again")
        }
        Event::CommunityRenamed { from, to } => {
            tracing::info!(%from, to = %to.name, "community moved with its subnet and leases (verifiers configured, or upgraded from protocol v1)")
        }
        Event::LeaseGranted(_) | Event::LeaseReclaimed { .. } => {}
    }
}
