//! Hostile input: replayed, truncated, forged and wrong-community packets are dropped and
//! counted, move no state, and panic nothing; random bytes never panic either core.

#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

use n2n_edge::proto::Path;
use n2n_protocol::sim::NatKind;
use n2n_protocol::wire::data::HEADER_LEN;
use n2n_protocol::wire::plain::PlainMessage;
use n2n_supernode::proto::SupernodeConfig;
use n2n_tests::{EdgeOptions, SN_ADDR, World, frame};
use proptest::prelude::*;
use std::net::SocketAddr;
use std::time::Duration;

const ATTACKER: &str = "203.0.113.66:6666";

fn sn() -> SocketAddr {
    SN_ADDR.parse().unwrap()
}

/// A world with two public edges a, b exchanging frames directly and a captured wire log.
fn setup(seed: u64) -> World {
    let mut w = World::new(seed, SupernodeConfig::default());
    w.net
        .add_host(ATTACKER.parse::<SocketAddr>().unwrap().ip(), None);
    w.capture = true;
    let a = w.add_edge(EdgeOptions::new(NatKind::None, 1));
    let b = w.add_edge(EdgeOptions::new(NatKind::None, 2));
    assert!(w.run_until(Duration::from_secs(10), |w| w.all_connected()
        && matches!(w.path(a, b), Some(Path::Direct { .. }))));
    let (ma, mb) = (
        w.edges[a].core.config().mac.0,
        w.edges[b].core.config().mac.0,
    );
    for seq in 0..5 {
        w.send_frame(a, &frame(mb, ma, seq, 300));
        w.send_frame(b, &frame(ma, mb, seq, 300));
    }
    w.run_for(Duration::from_secs(12)); // a heartbeat round gets captured too
    w
}

/// Captured datagrams from `from` to `to`.
fn captured(w: &World, from: SocketAddr, to: SocketAddr) -> Vec<Vec<u8>> {
    w.wire_log
        .iter()
        .filter(|(f, t, _)| *f == from && *t == to)
        .map(|(_, _, b)| b.clone())
        .collect()
}

/// Whether the supernode may relay these bytes (a well-formed data header; it cannot check
/// the end-to-end tag).
fn relayable(b: &[u8]) -> bool {
    n2n_protocol::wire::data::DataPacket::new_checked(b).is_ok()
}

fn sn_drops(w: &World, reason: &str) -> u64 {
    w.sn.as_ref()
        .unwrap()
        .stats()
        .drops
        .iter()
        .find(|(r, _)| r.label() == reason)
        .map_or(0, |(_, n)| n)
}

#[test]
fn replayed_packets_are_dropped_and_counted_without_state_change() {
    let mut w = setup(21);
    let (a, b) = (w.edges[0].addr, w.edges[1].addr);
    let data = captured(&w, a, b);
    let heartbeats: Vec<_> = captured(&w, a, sn())
        .into_iter()
        .filter(|d| d[0] == 0x21)
        .collect();
    assert!(!data.is_empty() && !heartbeats.is_empty());
    let (eb, ssn) = (w.edge_state(1), w.sn_state());
    let replays_before = w.edge_drop(1, "replay");
    for d in &data {
        w.inject(a, b, d.clone()); // from the genuine source
        w.inject(ATTACKER.parse().unwrap(), b, d.clone());
    }
    for h in &heartbeats {
        // A replayed heartbeat from elsewhere must not move a's endpoint.
        w.inject(ATTACKER.parse().unwrap(), sn(), h.clone());
    }
    w.run_for(Duration::from_millis(100));
    assert_eq!(
        w.edge_drop(1, "replay") - replays_before,
        2 * data.len() as u64
    );
    assert!(sn_drops(&w, "replay") >= heartbeats.len() as u64);
    assert_eq!(w.edge_state(1), eb);
    assert_eq!(w.sn_state(), ssn);
}

#[test]
fn truncated_and_forged_packets_are_dropped_and_counted_without_state_change() {
    let mut w = setup(22);
    let (a, b) = (w.edges[0].addr, w.edges[1].addr);
    let mut samples = captured(&w, a, b);
    samples.extend(captured(&w, sn(), b));
    samples.extend(captured(&w, a, sn()));
    let (eb, ssn) = (w.edge_state(1), w.sn_state());
    let edge_drops_before = w.edges[1].core.stats().drops.total();
    let sn_drops_before = w.sn.as_ref().unwrap().stats().drops.total();
    let mut sent_to_edge = 0;
    let mut sent_to_sn = 0;
    for s in &samples {
        for cut in [
            0,
            1,
            2,
            HEADER_LEN - 1,
            HEADER_LEN,
            s.len() / 2,
            s.len() - 1,
        ] {
            let t = s[..cut.min(s.len())].to_vec();
            w.inject(sn(), b, t.clone()); // forged supernode source, truncated
            sent_to_sn += u64::from(!relayable(&t));
            w.inject(a, sn(), t);
            sent_to_edge += 1;
        }
        for bit in [0usize, 8, 20, s.len() * 8 - 1] {
            let mut f = s.clone();
            f[bit / 8] ^= 1 << (bit % 8);
            w.inject(sn(), b, f.clone());
            w.inject(a, b, f.clone());
            sent_to_sn += u64::from(!relayable(&f));
            w.inject(a, sn(), f);
            sent_to_edge += 2;
        }
        // A fresh counter gets past the replay window, so the AEAD tag must stop it.
        if s.len() > HEADER_LEN && (s[0] == 0x21 || s[0] == 0x22) {
            let mut f = s.clone();
            f[8..16].copy_from_slice(&(u64::MAX - sent_to_edge).to_be_bytes());
            w.inject(sn(), b, f.clone());
            w.inject(a, b, f);
            sent_to_edge += 2;
        }
    }
    w.run_for(Duration::from_millis(100));
    // At least every packet sent straight to b; forged data "from a" sent to the supernode is
    // relayed on (the source binding cannot tell a spoofed address) and dropped at b too.
    assert!(w.edges[1].core.stats().drops.total() - edge_drops_before >= sent_to_edge);
    // Every control packet is dropped; data packets it cannot read are relayed, not dropped.
    assert!(w.sn.as_ref().unwrap().stats().drops.total() - sn_drops_before >= sent_to_sn);
    assert_eq!(w.edge_state(1), eb);
    assert_eq!(w.sn_state(), ssn);
    let all: Vec<_> = w.edges[1].core.stats().drops.iter().collect();
    assert!(
        w.edge_drop(1, "auth") > 0 && w.edge_drop(1, "malformed") > 0,
        "{all:?}"
    );
}

/// Protocol v2 finding 2: a REGISTER resent within its cookie's life (a retransmission, or
/// an attacker's replay from the edge's forged address) used to build a fresh control session
/// with the same keys: its counter restarted at 0 and its replay window was empty, so
/// captured heartbeats replayed from elsewhere moved the edge's endpoint to the attacker.
#[test]
fn a_resent_register_neither_resets_the_session_nor_lets_old_heartbeats_move_the_endpoint() {
    let mut w = setup(26);
    let a = w.edges[0].addr;
    let id_a = w.edges[0].core.edge_id().unwrap();
    let sent = captured(&w, a, sn());
    let register = sent.iter().find(|d| d[..2] == [0x20, 3]).unwrap().clone();
    let heartbeats: Vec<_> = sent.into_iter().filter(|d| d[0] == 0x21).collect();
    assert!(!heartbeats.is_empty());
    let (ea, ssn) = (w.edge_state(0), w.sn_state());
    let log_len = w.wire_log.len();
    // Resent from the edge's own address (its cookie is bound to it).
    w.inject(a, sn(), register);
    w.run_for(Duration::from_millis(50));
    // The supernode answers a retransmission from the session it has (a fresh counter the
    // edge accepts), without touching the edge's state.
    let answers = w.wire_log[log_len..]
        .iter()
        .filter(|(f, t, _)| *f == sn() && *t == a)
        .count();
    assert!(answers >= 1, "the retransmission is answered");
    for h in &heartbeats {
        w.inject(ATTACKER.parse().unwrap(), sn(), h.clone());
    }
    w.run_for(Duration::from_millis(50));
    assert_eq!(w.sn.as_ref().unwrap().edges()[&id_a].endpoint, a);
    assert!(sn_drops(&w, "replay") >= heartbeats.len() as u64);
    assert_eq!(w.sn_state(), ssn);
    assert_eq!(w.edge_state(0), ea);
    assert!(w.edges[0].core.is_registered());
}

#[test]
fn forged_unknown_session_hint_does_not_force_reregistration() {
    let mut w = setup(23);
    let b = w.edges[1].addr;
    let id_b = w.edges[1].core.edge_id().unwrap();
    let regs = w.edges[1].core.stats().registrations;
    for _ in 0..5 {
        w.inject(
            sn(),
            b,
            PlainMessage::UnknownSession { edge_id: id_b }.emit(),
        );
        w.run_for(Duration::from_secs(3));
    }
    assert_eq!(w.edges[1].core.stats().registrations, regs);
    assert!(w.edges[1].core.is_registered());
}

#[test]
fn wrong_community_and_wrong_passphrase_packets_are_dropped() {
    let mut w = setup(24);
    // An edge of another community on the same supernode.
    let mut o = EdgeOptions::new(NatKind::None, 3);
    o.community = "other".into();
    w.add_edge(o);
    // An edge of the same (open) community name with the wrong passphrase.
    let mut o = EdgeOptions::new(NatKind::None, 4);
    o.passphrase = Some("not-the-secret".into());
    let d = w.add_edge(o);
    assert!(
        w.run_until(Duration::from_secs(10), |w| w.edges[2].core.is_registered()
            && w.edges[3].core.is_registered())
    );
    w.run_for(Duration::from_secs(2));
    let (eb, peers_b) = (w.edge_state(1), w.edges[1].core.peers().len());
    assert_eq!(
        peers_b, 1,
        "the wrong-passphrase edge's key tag fails: not a peer"
    );
    assert!(
        w.edges[3].core.peers().is_empty(),
        "and it accepts no one either"
    );
    // c tries to reach b through the relay and directly.
    let (id_b, id_c) = (
        w.edges[1].core.edge_id().unwrap(),
        w.edges[2].core.edge_id().unwrap(),
    );
    let mut pkt = vec![0u8; 80];
    n2n_protocol::wire::data::DataHeader {
        flags: 0,
        dst: id_b,
        src: id_c,
        counter: 1,
    }
    .emit((&mut pkt[..HEADER_LEN]).try_into().unwrap());
    let wrong_before = sn_drops(&w, "wrong_community");
    let (addr_b, addr_c) = (w.edges[1].addr, w.edges[2].addr);
    let sn_endpoint_c = w.sn.as_ref().unwrap().edges()[&id_c].endpoint;
    assert_eq!(sn_endpoint_c, addr_c);
    w.inject(addr_c, sn(), pkt.clone());
    w.inject(addr_c, addr_b, pkt);
    // And d sends b a frame with its (wrongly keyed) data.
    let md = w.edges[3].core.config().mac.0;
    w.send_frame(d, &frame([0xff; 6], md, 1, 100));
    w.run_for(Duration::from_millis(100));
    assert_eq!(sn_drops(&w, "wrong_community") - wrong_before, 1);
    assert!(w.edge_drop(1, "unknown_session") >= 1);
    assert_eq!(w.edge_state(1), eb);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_datagrams_never_panic_either_core(
        datagrams in proptest::collection::vec(
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..200)), 1..40)
    ) {
        let mut w = setup(25);
        let (a, b) = (w.edges[0].addr, w.edges[1].addr);
        let before = (w.edge_state(1), w.sn_state());
        for (first, mut bytes) in datagrams {
            // Mostly well-formed first bytes, so decoders get past the version check.
            bytes.insert(0, [0x20, 0x21, 0x22, first][first as usize % 4]);
            w.inject(sn(), b, bytes.clone());
            w.inject(a, b, bytes.clone());
            w.inject(a, sn(), bytes);
        }
        w.run_for(Duration::from_millis(50));
        prop_assert_eq!((w.edge_state(1), w.sn_state()), before);
    }
}

/// Issue 12 #10: with a 3072-bit (or larger) identity the hello reply outgrew the 800-byte
/// hello: a spoofed hello made the supernode send more than it got.
#[test]
fn no_hello_reply_is_larger_than_the_hello_even_with_a_large_identity() {
    use n2n_protocol::crypto::identity::Identity;
    use n2n_protocol::rng::CoreRng;
    use n2n_protocol::wire::plain::HELLO_LEN;
    use n2n_supernode::proto::{PersistedState, Supernode};
    let now = std::time::Instant::now();
    let big = Identity::generate(&mut CoreRng::seeded(3), 3072).unwrap();
    let mut sn = Supernode::new(
        SupernodeConfig::default(),
        big,
        PersistedState::default(),
        CoreRng::seeded(4),
        now,
        0,
    );
    assert!(
        sn.hello_reply_len() > HELLO_LEN,
        "the daemon refuses to start with it"
    );
    let hello = PlainMessage::Hello { nonce: [1; 16] }.emit();
    sn.handle_datagram(now, ATTACKER.parse().unwrap(), &hello);
    while let Some(t) = sn.poll_transmit() {
        assert!(
            t.payload.len() <= hello.len(),
            "{} bytes answered {}",
            t.payload.len(),
            hello.len()
        );
    }
    let small = n2n_tests::test_identity();
    let sn = Supernode::new(
        SupernodeConfig::default(),
        small,
        PersistedState::default(),
        CoreRng::seeded(4),
        now,
        0,
    );
    assert!(sn.hello_reply_len() <= HELLO_LEN);
}
