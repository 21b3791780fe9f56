//! What the control task does with the core's outputs: events logged and acted on (TAP
//! address, pins and supernode identities saved), frames written, datagrams sent.

use super::{peer_pins, seen, tap, unix_now};
use crate::api::DaemonInfo;
use crate::proto::{Edge, Event};
use std::net::UdpSocket;
use std::time::Instant;

/// Acts on the core's outputs; true when the set of members (or our address) changed.
pub fn drain(
    core: &mut Edge,
    tap: &tap::Tap,
    sock: &UdpSocket,
    info: &mut DaemonInfo,
    state_dir: &std::path::Path,
) -> bool {
    let mut members_changed = false;
    while let Some(ev) = core.poll_event() {
        members_changed |= matches!(
            ev,
            Event::Registered { .. } | Event::PeerAdded { .. } | Event::PeerRemoved { .. }
        );
        match &ev {
            Event::Registered {
                edge_id,
                ip,
                prefix,
                supernode,
            } => {
                tracing::info!(edge_id, %ip, prefix, %supernode, "registered");
                if let Err(e) = tap.set_address(*ip, *prefix) {
                    tracing::error!("{e:#}");
                }
            }
            Event::RegistrationRefused { reason } => {
                tracing::error!(%reason, "the supernode refused us; retrying in 30 s")
            }
            Event::SupernodeIdentity { fingerprint } => {
                if info.fingerprint != Some(*fingerprint) {
                    tracing::info!(%fingerprint, "supernode identity verified");
                }
                info.fingerprint = Some(*fingerprint);
            }
            Event::SupernodeFirstSeen {
                supernode,
                fingerprint,
            } => {
                tracing::info!(%supernode, %fingerprint, "first contact: this supernode identity is trusted from now on (`edge trust-supernode` forgets it)");
                if let Err(e) = seen::save(state_dir, &core.config().seen) {
                    tracing::error!(error = %e, "cannot store the supernode identity; it is trusted until the edge stops");
                }
            }
            Event::SupernodeRejected { reason } => tracing::error!(
                %reason,
                "supernode rejected; if its identity really changed, run `edge trust-supernode` (or set supernode_fingerprint)"
            ),
            Event::PeerRefused { reason } => tracing::warn!(
                %reason,
                "peer announcement refused (a pin lapses 10 minutes after its member leaves)"
            ),
            Event::PinsChanged => save_pins(core, state_dir),
            Event::SupernodeLost => tracing::warn!(
                "supernode stopped answering; direct paths keep working, re-registering"
            ),
            Event::PeerAdded { id } => tracing::info!(peer = id, "peer joined"),
            Event::PeerRemoved { id } => tracing::info!(peer = id, "peer left"),
            Event::PathChanged { id, path } => tracing::info!(peer = id, ?path, "path changed"),
        }
    }
    while let Some(f) = core.poll_frame() {
        let _ = tap.write(&f);
    }
    while let Some(t) = core.poll_transmit() {
        if let Err(e) = sock.send_to(&t.payload, t.dst) {
            tracing::debug!(error = %e, dst = %t.dst, "send");
        }
    }
    members_changed
}

/// Saves the peer pins for the next process; a failure is logged (they hold until we stop).
pub fn save_pins(core: &Edge, state_dir: &std::path::Path) {
    let cfg = core.config();
    let path = peer_pins::file(state_dir, &cfg.community, cfg.keys.verifier());
    let pins = core.pinned_peers(Instant::now());
    if let Err(e) = peer_pins::save(&path, &cfg.community, &pins, unix_now()) {
        tracing::error!(error = %e, file = %path.display(), "cannot save the peer pins; they hold until the edge stops");
    }
}

/// This edge and its peers as (address, description), for the hosts file.
pub fn names_of(core: &Edge) -> Vec<(std::net::Ipv4Addr, String)> {
    let me = core
        .address()
        .map(|(ip, _)| (ip, core.config().desc.clone()));
    me.into_iter()
        .chain(
            core.peers()
                .values()
                .map(|p| (p.info.ip, p.info.desc.clone())),
        )
        .collect()
}
