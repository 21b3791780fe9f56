//! Hostile members and strangers against the edge's one receive path: a member cannot claim
//! another member's MAC, cannot grow the learned-MAC table without bound, and input from
//! strangers costs no forwarding rebuild.

#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

use n2n_edge::proto::Path;
use n2n_protocol::sim::NatKind;
use n2n_supernode::proto::SupernodeConfig;
use n2n_tests::{EdgeOptions, World, frame};
use std::sync::Arc;
use std::time::Duration;

/// Three public edges a, b, c with direct paths between every pair.
fn three() -> World {
    let mut w = World::new(41, SupernodeConfig::default());
    for m in 1..=3 {
        w.add_edge(EdgeOptions::new(NatKind::None, m));
    }
    assert!(w.run_until(Duration::from_secs(15), |w| w.all_connected()
        && (0..3).all(|i| {
            (0..3).all(|j| i == j || matches!(w.path(i, j), Some(Path::Direct { .. })))
        })));
    w
}

fn mac(w: &World, i: usize) -> [u8; 6] {
    w.edges[i].core.config().mac.0
}

#[test]
fn a_member_cannot_claim_another_members_mac() {
    let mut w = three();
    let (ma, mb, mc) = (mac(&w, 0), mac(&w, 1), mac(&w, 2));
    // b sends a frame to a that claims to come from c.
    w.send_frame(1, &frame(ma, mc, 1, 100));
    w.run_for(Duration::from_millis(200));
    assert_eq!(w.edge_drop(0, "spoofed_source"), 1, "dropped and counted");
    assert!(w.edges[0].delivered.is_empty(), "never written to the TAP");
    // a's frames for c still go to c, not to b.
    w.send_frame(0, &frame(mc, ma, 2, 100));
    w.run_for(Duration::from_millis(200));
    assert_eq!(w.edges[2].delivered.len(), 1);
    assert!(w.edges[1].delivered.is_empty());
    // Nor can b claim a's own MAC towards a.
    w.send_frame(1, &frame(ma, ma, 3, 100));
    w.run_for(Duration::from_millis(200));
    assert_eq!(w.edge_drop(0, "spoofed_source"), 2);
    let _ = mb;
}

#[test]
fn mac_learning_is_capped_per_peer_and_counted() {
    let mut w = three();
    let ma = mac(&w, 0);
    let cap = n2n_edge::proto::MAX_MACS_PER_PEER;
    let n = cap + 500;
    for i in 0..n as u32 {
        let [_, b1, b2, b3] = i.to_be_bytes();
        // Locally administered unicast MACs of hosts "bridged" behind b.
        w.send_frame(1, &frame(ma, [0x02, 0x55, 0, b1, b2, b3], i, 60));
        if i % 256 == 0 {
            w.run_for(Duration::from_millis(10));
        }
    }
    w.run_for(Duration::from_millis(500));
    // Every frame is delivered (learning is what is limited, not traffic)...
    assert_eq!(w.edges[0].delivered.len(), n);
    let now = w.now;
    let fwd = w.edges[0].core.forwarding(now);
    let behind_b = fwd
        .by_mac
        .values()
        .filter(|id| Some(**id) == w.edges[1].core.edge_id())
        .count();
    // ...but a learns at most `cap` MACs behind b (plus b's own), and counts the rest.
    assert!(behind_b <= cap + 1, "{behind_b} MACs learned behind b");
    assert!(behind_b > cap / 2, "learning still works: {behind_b}");
    assert!(w.edges[0].core.stats().macs_refused >= (n - cap) as u64);
}

#[test]
fn junk_from_strangers_does_not_rebuild_forwarding() {
    let mut w = three();
    let now = w.now;
    let stranger = "198.51.100.9:9999".parse().unwrap();
    let core = &mut w.edges[0].core;
    let before = core.forwarding(now);
    for junk in [&[0x20u8][..], &[0x21, 0, 0], &[0x22; 40], &[0x20, 7, 7, 7]] {
        core.handle_datagram(now, stranger, junk);
    }
    let after = core.forwarding(now);
    assert!(Arc::ptr_eq(&before, &after), "the snapshot was rebuilt");
    assert!(w.edge_drop(0, "not_from_supernode") >= 3);
}
