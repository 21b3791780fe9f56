//! Simulator scenarios: NAT rebinding, supernode restart, supernode outage, key rotation,
//! a bridged host behind an edge (MAC learning), and loss.

#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

use n2n_edge::proto::{Event, Path};
use n2n_protocol::sim::NatKind;
use n2n_supernode::proto::SupernodeConfig;
use n2n_tests::{EdgeOptions, World, frame};
use std::time::Duration;

fn direct(w: &World, a: usize, b: usize) -> bool {
    matches!(w.path(a, b), Some(Path::Direct { .. }))
        && matches!(w.path(b, a), Some(Path::Direct { .. }))
}

#[test]
fn nat_rebinding_recovers_the_direct_path() {
    let mut w = World::new(11, SupernodeConfig::default());
    let a = w.add_edge(EdgeOptions::new(NatKind::PortRestricted, 1));
    let b = w.add_edge(EdgeOptions::new(NatKind::PortRestricted, 2));
    assert!(w.run_until(Duration::from_secs(10), |w| direct(w, a, b)));
    let before = w.path(b, a).unwrap();
    let observed_before = w.edges[a].core.observed();
    w.net.flush_mappings(w.edges[a].router.unwrap());
    // The old mapping is gone; within a path timeout plus a punch the path is direct again,
    // to a's new public port.
    assert!(w.run_until(Duration::from_secs(60), |w| direct(w, a, b)
        && w.path(b, a) != Some(before)));
    assert_ne!(
        w.edges[a].core.observed(),
        observed_before,
        "a learned its new public address"
    );
    assert_eq!(w.exchange(a, b, 20), (20, 20));
    assert!(
        w.edges[b].events.iter().any(|e| matches!(
            e,
            Event::PathChanged {
                path: Path::Relayed,
                ..
            }
        )) || w.edges[a].events.iter().any(|e| matches!(
            e,
            Event::PathChanged {
                path: Path::Relayed,
                ..
            }
        )) || w.path(b, a) != Some(before)
    );
}

#[test]
fn supernode_restart_keeps_direct_paths_and_reregisters_edges_with_the_same_ips() {
    let mut w = World::new(12, SupernodeConfig::default());
    let a = w.add_edge(EdgeOptions::new(NatKind::PortRestricted, 1));
    let b = w.add_edge(EdgeOptions::new(NatKind::FullCone, 2));
    let c = w.add_edge(EdgeOptions::new(NatKind::AddressRestricted, 3));
    assert!(w.run_until(Duration::from_secs(10), |w| w.all_connected()
        && direct(w, a, b)));
    let ids: Vec<_> = w
        .edges
        .iter()
        .map(|e| (e.core.edge_id(), e.core.address()))
        .collect();
    let events_before = w.edges[a].events.len();
    let regs: Vec<_> = w
        .edges
        .iter()
        .map(|e| e.core.stats().registrations)
        .collect();

    w.kill_supernode();
    w.run_for(Duration::from_secs(3));
    // The supernode is down: the direct path carries traffic anyway.
    assert_eq!(w.exchange(a, b, 20), (20, 20));
    w.start_supernode();
    assert!(w.run_until(Duration::from_secs(60), |w| {
        w.edges
            .iter()
            .enumerate()
            .all(|(i, e)| e.core.stats().registrations > regs[i])
            && w.all_connected()
    }));
    let after: Vec<_> = w
        .edges
        .iter()
        .map(|e| (e.core.edge_id(), e.core.address()))
        .collect();
    assert_eq!(ids, after, "same ids and IPs after the restart");
    assert_eq!(w.sn.as_ref().unwrap().edges().len(), 3);
    assert!(direct(&w, a, b));
    let lost_path = w.edges[a].events[events_before..].iter().any(|e| {
        matches!(
            e,
            Event::PathChanged {
                path: Path::Relayed,
                ..
            } | Event::PeerRemoved { .. }
        )
    });
    assert!(
        !lost_path,
        "the direct path never dropped: {:?}",
        &w.edges[a].events[events_before..]
    );
    assert_eq!(w.exchange(a, c, 10), (10, 10));
}

#[test]
fn edges_survive_a_long_supernode_outage_and_come_back() {
    let mut w = World::new(13, SupernodeConfig::default());
    let a = w.add_edge(EdgeOptions::new(NatKind::FullCone, 1));
    let b = w.add_edge(EdgeOptions::new(NatKind::PortRestricted, 2));
    assert!(w.run_until(Duration::from_secs(10), |w| direct(w, a, b)));
    w.kill_supernode();
    w.run_for(Duration::from_secs(90));
    assert!(
        w.edges[a].events.contains(&Event::SupernodeLost),
        "loss detected and reported"
    );
    assert!(
        direct(&w, a, b),
        "direct path kept by keepalives during the outage"
    );
    assert_eq!(w.exchange(a, b, 10), (10, 10));
    w.start_supernode();
    assert!(w.run_until(Duration::from_secs(30), |w| w.all_connected()
        && w.edges.iter().all(|e| e.core.is_registered())));
}

#[test]
fn key_rotation_keeps_traffic_flowing_and_changes_keys() {
    let mut w = World::new(14, SupernodeConfig::default());
    let a = w.add_edge(EdgeOptions::new(NatKind::None, 1));
    let b = w.add_edge(EdgeOptions::new(NatKind::FullCone, 2));
    assert!(w.run_until(Duration::from_secs(10), |w| direct(w, a, b)));
    let epoch0 = w.edges[a].core.key_epoch();
    // Run across two rotation periods (600 s), sending all along.
    for _ in 0..13 {
        w.run_for(Duration::from_secs(100));
        assert_eq!(w.exchange(a, b, 5), (5, 5));
    }
    assert!(w.edges[a].core.key_epoch() >= epoch0 + 2);
    let id_b = w.edges[b].core.edge_id().unwrap();
    let keys = &w.edges[a].core.peers()[&id_b].keys;
    assert!(
        keys.len() <= 2,
        "superseded keys are erased after the grace period"
    );
    assert_eq!(w.edge_drops().get("auth"), None, "{:?}", w.edge_drops());
}

#[test]
fn hosts_bridged_behind_an_edge_are_learned_and_reached_by_unicast() {
    let mut w = World::new(15, SupernodeConfig::default());
    let a = w.add_edge(EdgeOptions::new(NatKind::None, 1));
    let b = w.add_edge(EdgeOptions::new(NatKind::None, 2));
    let c = w.add_edge(EdgeOptions::new(NatKind::None, 3));
    assert!(w.run_until(Duration::from_secs(10), |w| w.all_connected()));
    let host_behind_b = [0x02, 0xbb, 0, 0, 0, 9];
    let ma = w.edges[a].core.config().mac.0;
    // Unknown unicast is flooded to every peer...
    w.send_frame(a, &frame(host_behind_b, ma, 1, 100));
    w.run_for(Duration::from_millis(50));
    assert_eq!(
        (w.edges[b].delivered.len(), w.edges[c].delivered.len()),
        (1, 1)
    );
    // ...until the host answers through b, after which only b gets frames for it.
    w.send_frame(b, &frame(ma, host_behind_b, 2, 100));
    w.run_for(Duration::from_millis(50));
    w.send_frame(a, &frame(host_behind_b, ma, 3, 100));
    w.run_for(Duration::from_millis(50));
    assert_eq!(
        (w.edges[b].delivered.len(), w.edges[c].delivered.len()),
        (2, 1)
    );
    // Multicast (IPv6 all-nodes) reaches everyone.
    w.send_frame(a, &frame([0x33, 0x33, 0, 0, 0, 1], ma, 4, 90));
    w.run_for(Duration::from_millis(50));
    assert_eq!(
        (w.edges[b].delivered.len(), w.edges[c].delivered.len()),
        (3, 2)
    );
}

#[test]
fn registration_and_punching_succeed_with_five_percent_loss() {
    let mut w = World::new(16, SupernodeConfig::default());
    w.net.set_loss(5);
    let a = w.add_edge(EdgeOptions::new(NatKind::PortRestricted, 1));
    let b = w.add_edge(EdgeOptions::new(NatKind::AddressRestricted, 2));
    assert!(w.run_until(Duration::from_secs(30), |w| w.all_connected()
        && direct(w, a, b)));
    let (ab, ba) = w.exchange(a, b, 100);
    assert!(
        ab >= 85 && ba >= 85,
        "about 5% loss expected, got {ab}/{ba}"
    );
}
