//! Every pair of NAT models: edges end up direct where hole punching can work and relayed
//! where it cannot, and every frame is delivered either way.

#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

use n2n_edge::proto::Path;
use n2n_protocol::sim::NatKind;
use n2n_supernode::proto::SupernodeConfig;
use n2n_tests::{EdgeOptions, World, frame};
use std::time::Duration;

fn exchange_all_frames(w: &mut World, a: usize, b: usize) {
    let (ma, mb) = (
        w.edges[a].core.config().mac.0,
        w.edges[b].core.config().mac.0,
    );
    let (da, db) = (w.edges[a].delivered.len(), w.edges[b].delivered.len());
    let mut sent_ab = Vec::new();
    let mut sent_ba = Vec::new();
    for seq in 0..40 {
        let f = frame(mb, ma, seq, 64 + (seq as usize * 37) % 1300);
        w.send_frame(a, &f);
        sent_ab.push(f);
        let g = frame(ma, mb, seq, 64 + (seq as usize * 53) % 1300);
        w.send_frame(b, &g);
        sent_ba.push(g);
        w.run_for(Duration::from_millis(2));
    }
    w.run_for(Duration::from_millis(200));
    assert_eq!(w.edges[b].delivered[db..], sent_ab[..], "a->b frames");
    assert_eq!(w.edges[a].delivered[da..], sent_ba[..], "b->a frames");
}

fn scenario(ka: NatKind, kb: NatKind, seed: u64) {
    let mut w = World::new(seed, SupernodeConfig::default());
    let a = w.add_edge(EdgeOptions::new(ka, 1));
    let b = w.add_edge(EdgeOptions::new(kb, 2));
    assert!(
        w.run_until(Duration::from_secs(10), |w| w.all_connected()),
        "{ka:?}/{kb:?}: not connected"
    );
    // Let punching (and its retries) play out.
    w.run_for(Duration::from_secs(30));
    let expect_direct = NatKind::direct_possible(ka, kb);
    for (x, y) in [(a, b), (b, a)] {
        let path = w.path(x, y).expect("peer known");
        assert_eq!(
            matches!(path, Path::Direct { .. }),
            expect_direct,
            "{ka:?}/{kb:?}: edge {x} -> {y} path {path:?}"
        );
    }
    let t = |i: usize| w.edges[i].first_direct.map(|t| t - w.edges[i].started);
    eprintln!(
        "{ka:?}/{kb:?}: direct={expect_direct} time-to-direct a={:?} b={:?}",
        t(a),
        t(b)
    );
    exchange_all_frames(&mut w, a, b);
    let relayed = w.sn.as_ref().unwrap().stats().relayed_packets;
    if expect_direct {
        assert_eq!(
            w.edges[a].core.stats().tx_relayed + w.edges[b].core.stats().tx_relayed,
            0
        );
    } else {
        assert!(relayed >= 80, "{ka:?}/{kb:?}: only {relayed} relayed");
    }
    let drops = w.edge_drops();
    assert_eq!(drops.get("auth"), None, "{ka:?}/{kb:?}: {drops:?}");
    assert_eq!(drops.get("replay"), None, "{ka:?}/{kb:?}: {drops:?}");
}

#[test]
fn every_pair_of_nat_models_connects_direct_or_relayed_as_theory_allows() {
    let mut seed = 100;
    for (i, ka) in NatKind::ALL.iter().enumerate() {
        for kb in &NatKind::ALL[i..] {
            seed += 1;
            scenario(*ka, *kb, seed);
        }
    }
}

#[test]
fn two_edges_behind_the_same_nat_use_the_lan_path() {
    let mut w = World::new(7, SupernodeConfig::default());
    let r = w.add_router(NatKind::Symmetric);
    let mut oa = EdgeOptions::new(NatKind::Symmetric, 1);
    oa.behind = Some(r);
    let mut ob = EdgeOptions::new(NatKind::Symmetric, 2);
    ob.behind = Some(r);
    let a = w.add_edge(oa);
    let b = w.add_edge(ob);
    assert!(w.run_until(Duration::from_secs(10), |w| w.all_connected()));
    w.run_for(Duration::from_secs(5));
    let lan_b = w.edges[b].addr;
    assert_eq!(
        w.path(a, b),
        Some(Path::Direct {
            addr: lan_b,
            kind: n2n_protocol::types::CandidateKind::Lan
        })
    );
    exchange_all_frames(&mut w, a, b);
    // Only the first handshake goes through the supernode; no frame does.
    for i in [a, b] {
        assert_eq!(w.edges[i].core.stats().tx_relayed, 0);
    }
    assert!(w.sn.as_ref().unwrap().stats().relayed_packets <= 4);
}
