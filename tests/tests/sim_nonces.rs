//! Nonces never repeat: every (key, nonce) an edge or the supernode seals with is recorded
//! (the `nonce-audit` feature) while peers expire and return, edges freeze past the
//! supernode's expiry, restart and rotate keys, the supernode restarts, and old supernode
//! datagrams are replayed.

#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

use n2n_protocol::crypto::aead::audit;
use n2n_protocol::sim::NatKind;
use n2n_supernode::proto::SupernodeConfig;
use n2n_tests::{EdgeOptions, World};
use proptest::prelude::*;
use std::sync::Mutex;
use std::time::Duration;

/// The audit log is global: one test at a time records.
static AUDIT: Mutex<()> = Mutex::new(());

fn assert_no_repeats(log: &audit::Log) {
    assert!(log.seals > 0, "nothing was recorded");
    assert!(
        log.repeats.is_empty(),
        "{} of {} seals reused a (key, nonce): {:?}",
        log.repeats.len(),
        log.seals,
        &log.repeats[..log.repeats.len().min(5)]
    );
}

/// Issue 12 #1: the pair key was a pure function of both static keys, so a peer that
/// expired and came back got the same key with its counter back at 0 (keystream reuse), and
/// could not exchange traffic for about 50 s after a 70 s suspend.
#[test]
fn an_edge_frozen_past_expiry_resumes_within_seconds_without_reusing_a_nonce() {
    let _g = AUDIT.lock().unwrap_or_else(|e| e.into_inner());
    let mut w = World::new(21, SupernodeConfig::default());
    let a = w.add_edge(EdgeOptions::new(NatKind::None, 1));
    let b = w.add_edge(EdgeOptions::new(NatKind::None, 2));
    audit::start();
    assert!(w.run_until(Duration::from_secs(10), |w| w.all_connected()));
    assert_eq!(w.exchange(a, b, 20), (20, 20));
    w.freeze(a, true);
    w.run_for(Duration::from_secs(70));
    w.freeze(a, false);
    let resumed = w.now;
    let mut back = false;
    while w.now < resumed + Duration::from_secs(5) {
        if w.exchange(a, b, 1) == (1, 1) {
            back = true;
            break;
        }
        w.run_for(Duration::from_millis(250));
    }
    let took = w.now - resumed;
    assert!(back, "no traffic both ways within 5 s of the resume");
    assert_eq!(w.exchange(a, b, 20), (20, 20), "after {took:?}");
    assert_no_repeats(&audit::stop());
}

#[derive(Clone, Debug)]
enum Step {
    /// Frames both ways between two edges.
    Traffic(usize, usize),
    /// Time passes (crosses rekeys, expiry and rotations).
    Wait(u64),
    /// An edge is suspended this many seconds.
    Freeze(usize, u64),
    /// An edge restarts (new core, same machine).
    RestartEdge(usize),
    /// The supernode restarts after this many seconds down.
    RestartSupernode(u64),
    /// An old datagram from the supernode is sent again to its edge.
    ReplaySupernode(usize),
    /// An old datagram between edges is sent again.
    ReplayEdge(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..3usize, 0..3usize).prop_map(|(a, b)| Step::Traffic(a, b)),
        2 => (1..200u64).prop_map(Step::Wait),
        1 => (0..3usize, 1..120u64).prop_map(|(i, s)| Step::Freeze(i, s)),
        1 => (0..3usize).prop_map(Step::RestartEdge),
        1 => (0..20u64).prop_map(Step::RestartSupernode),
        1 => any::<usize>().prop_map(Step::ReplaySupernode),
        1 => any::<usize>().prop_map(Step::ReplayEdge),
    ]
}

fn run(steps: &[Step], seed: u64) -> audit::Log {
    let mut w = World::new(seed, SupernodeConfig::default());
    let kinds = [NatKind::None, NatKind::PortRestricted, NatKind::Symmetric];
    for (i, kind) in kinds.into_iter().enumerate() {
        let mut o = EdgeOptions::new(kind, i as u8 + 1);
        o.key_rotation = Some(Duration::from_secs(150));
        w.add_edge(o);
    }
    w.capture = true;
    audit::start();
    w.run_until(Duration::from_secs(10), |w| w.all_connected());
    let mut restarts = 0;
    for s in steps {
        match *s {
            Step::Traffic(a, b) if a != b => {
                w.exchange(a, b, 5);
            }
            Step::Traffic(..) => {}
            Step::Wait(secs) => w.run_for(Duration::from_secs(secs)),
            Step::Freeze(i, secs) => {
                w.freeze(i, true);
                w.run_for(Duration::from_secs(secs));
                w.freeze(i, false);
            }
            Step::RestartEdge(i) => {
                restarts += 1;
                w.restart_edge(i, seed * 1000 + restarts);
            }
            Step::RestartSupernode(secs) => {
                w.kill_supernode();
                w.run_for(Duration::from_secs(secs));
                w.start_supernode();
            }
            Step::ReplaySupernode(pick) | Step::ReplayEdge(pick) => {
                let from_sn = matches!(s, Step::ReplaySupernode(_));
                let sn = n2n_tests::SN_ADDR.parse().unwrap();
                let old: Vec<_> = w
                    .wire_log
                    .iter()
                    .filter(|(from, _, _)| (*from == sn) == from_sn)
                    .cloned()
                    .collect();
                if !old.is_empty() {
                    let (from, to, bytes) = old[pick % old.len()].clone();
                    w.inject(from, to, bytes);
                }
            }
        }
        w.run_for(Duration::from_millis(500));
        if w.wire_log.len() > 20_000 {
            w.wire_log.drain(..10_000);
        }
    }
    // Whatever happened, every pair carries traffic again soon after it stops.
    let mut stuck = Vec::new();
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        let deadline = w.now + Duration::from_secs(30);
        while w.exchange(a, b, 1) != (1, 1) {
            if w.now > deadline {
                stuck.push((a, b));
                break;
            }
            w.run_for(Duration::from_millis(400));
        }
    }
    let log = audit::stop();
    assert!(
        stuck.is_empty(),
        "pairs {stuck:?} carried no traffic 30 s after {steps:?}"
    );
    log
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random sequences of expiry and return, freezes, restarts of edges and the supernode,
    /// key rotations and replays (handshakes included): no (key, nonce) is ever sealed with
    /// twice, and every pair carries traffic again within 30 s of the last event.
    #[test]
    fn no_key_and_nonce_is_ever_sealed_twice(
        steps in proptest::collection::vec(step(), 1..14),
        seed in 1..1000u64,
    ) {
        let _g = AUDIT.lock().unwrap_or_else(|e| e.into_inner());
        let log = run(&steps, seed);
        prop_assert!(log.seals > 0);
        prop_assert!(log.repeats.is_empty(), "{} repeats of {} seals", log.repeats.len(), log.seals);
    }
}
