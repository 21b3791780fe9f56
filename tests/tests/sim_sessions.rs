//! Pair sessions under pressure: a flood of replayed handshakes, and a supernode gone for
//! longer than a session lives. Traffic between the edges must keep flowing.

#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

use n2n_edge::proto::Path;
use n2n_protocol::sim::NatKind;
use n2n_protocol::wire::data::flags;
use n2n_supernode::proto::SupernodeConfig;
use n2n_tests::{EdgeOptions, World};
use std::time::Duration;

fn direct_pair(seed: u64) -> (World, usize, usize) {
    let mut w = World::new(seed, SupernodeConfig::default());
    w.capture = true;
    let a = w.add_edge(EdgeOptions::new(NatKind::None, 1));
    let b = w.add_edge(EdgeOptions::new(NatKind::None, 2));
    assert!(w.run_until(Duration::from_secs(10), |w| w.all_connected()
        && matches!(w.path(a, b), Some(Path::Direct { .. }))
        && matches!(w.path(b, a), Some(Path::Direct { .. }))));
    (w, a, b)
}

/// Runs `flood(world, second)` once a second for 250 s (past the first rekey at 120 s and the
/// end of the first session at 180 s), sending a frame each way between `a` and `b` each
/// second; returns the seconds in which a frame was lost.
fn flood_for_250_s(
    w: &mut World,
    a: usize,
    b: usize,
    mut flood: impl FnMut(&mut World, u32),
) -> Vec<u32> {
    let mut failed = Vec::new();
    for second in 0..250u32 {
        flood(w, second);
        if w.exchange(a, b, 1) != (1, 1) {
            failed.push(second);
        }
        w.run_for(Duration::from_millis(795));
    }
    failed
}

/// Review finding: the per-peer handshake budget was charged before anything else, so
/// anyone replaying one captured handshake datagram a few times a second made the edge drop
/// its peer's real handshakes, and the pair lost its keys at the next rekey.
#[test]
fn a_flood_of_replayed_handshakes_does_not_keep_peers_apart() {
    let (mut w, a, b) = direct_pair(51);
    let addr_a = w.edges[a].addr;
    let replay: Vec<_> = w
        .wire_log
        .iter()
        .filter(|(_, to, p)| *to == addr_a && p.len() > 1 && p[1] & flags::HANDSHAKE != 0)
        .map(|(from, _, p)| (*from, p.clone()))
        .collect();
    assert!(!replay.is_empty(), "a handshake to a was captured");
    let failed = flood_for_250_s(&mut w, a, b, |w, second| {
        for _ in 0..20 {
            let (from, bytes) = replay[second as usize % replay.len()].clone();
            w.inject(from, addr_a, bytes);
        }
    });
    assert!(
        failed.len() <= 2,
        "frames lost in seconds {failed:?} (drops {:?})",
        w.edge_drops()
    );
    assert!(w.edge_drop(a, "replay") > 1000, "{:?}", w.edge_drops());
}

/// Review finding: only a registered edge started handshakes, so a supernode gone for
/// longer than a session lives (180 s) took every direct path down with it.
#[test]
fn direct_paths_keep_their_keys_while_the_supernode_is_gone() {
    let (mut w, a, b) = direct_pair(52);
    w.kill_supernode();
    let mut failed = Vec::new();
    for second in 0..300u32 {
        if w.exchange(a, b, 1) != (1, 1) {
            failed.push(second);
        }
        w.run_for(Duration::from_millis(795));
    }
    assert!(failed.is_empty(), "frames lost in seconds {failed:?}");
}

/// Review finding L7: the replay check (initiation timestamps) was forgotten when a peer was
/// removed, so after it came back any initiation captured before was answered again.
#[test]
fn an_initiation_captured_before_a_peer_left_is_still_a_replay_when_it_returns() {
    let (mut w, a, b) = direct_pair(53);
    let addr_b = w.edges[b].addr;
    // The first initiation went through the supernode (no direct path yet).
    let (init_from, old_init) = w
        .wire_log
        .iter()
        .find(|(_, to, p)| {
            *to == addr_b && p.len() > 16 && p[1] & flags::HANDSHAKE != 0 && p[16] == 1
        })
        .map(|(from, _, p)| (*from, p.clone()))
        .expect("a's first initiation was captured");
    // a is suspended past the supernode's expiry: b forgets it, then learns it again.
    let id_a = w.edges[a].core.edge_id().unwrap();
    w.freeze(a, true);
    w.run_for(Duration::from_secs(70));
    assert!(!w.edges[b].core.peers().contains_key(&id_a), "b forgot a");
    w.freeze(a, false);
    // Replayed the moment b learns of a again, before any new handshake between them.
    assert!(w.run_until(Duration::from_secs(20), |w| {
        w.edges[b].core.peers().contains_key(&id_a)
    }));
    let replays = w.edge_drop(b, "replay");
    w.inject(init_from, addr_b, old_init);
    w.run_for(Duration::from_millis(20));
    assert_eq!(
        w.edge_drop(b, "replay"),
        replays + 1,
        "{:?}",
        w.edge_drops()
    );
    let unconfirmed = w.edges[b].core.peers()[&id_a]
        .keys
        .iter()
        .filter(|k| !k.is_confirmed())
        .count();
    assert_eq!(unconfirmed, 0, "b answered the old initiation");
    let back = w.now + Duration::from_secs(20);
    while w.exchange(a, b, 1) != (1, 1) {
        assert!(w.now < back, "no traffic after the return");
        w.run_for(Duration::from_millis(400));
    }
}

/// Issue 12, cheap before costly: a member (it can make a valid mac1) floods a with
/// initiations in b's name from its own address, more than a's per-peer budget. Under load,
/// a answers with a cookie for the sender's address, which the member then uses too; b's own
/// handshakes carry a mac2 for b's address, which has its own budget, and get through, so
/// the pair rekeys past the first session's end (before, the flood used up b's budget and
/// the pair lost its keys at 180 s).
#[test]
fn a_member_flooding_handshakes_in_a_peers_name_does_not_keep_the_pair_apart() {
    use n2n_protocol::crypto::handshake;
    use n2n_protocol::wire::data::{DataHeader, HEADER_LEN};
    let (mut w, a, b) = direct_pair(52);
    let (id_a, id_b) = (
        w.edges[a].core.edge_id().unwrap(),
        w.edges[b].core.edge_id().unwrap(),
    );
    let a_static = w.sn.as_ref().unwrap().edges()[&id_a].peer_info().key.public;
    let mac1_key = handshake::mac1_key(&w.edges[b].core.config().keys.data, &a_static);
    let (attacker, addr_a) = (n2n_tests::ATTACKER.parse().unwrap(), w.edges[a].addr);
    let mut n = 0u32;
    let mut cookies = 0;
    let failed = flood_for_250_s(&mut w, a, b, |w, _| {
        // The latest cookie a sent to the member's address.
        let cookie: Option<[u8; handshake::COOKIE_LEN]> = w
            .wire_log
            .iter()
            .rev()
            .find(|(_, to, _)| *to == attacker)
            .and_then(|(_, _, p)| p.get(HEADER_LEN + 1..HEADER_LEN + 17)?.try_into().ok());
        cookies += usize::from(cookie.is_some());
        for _ in 0..50 {
            n += 1;
            let mut header = [0u8; HEADER_LEN];
            DataHeader {
                flags: flags::HANDSHAKE,
                dst: id_a,
                src: id_b,
                counter: 0,
            }
            .emit(&mut header);
            let mut pkt = header.to_vec();
            pkt.push(if cookie.is_some() { 1 | 0x80 } else { 1 });
            pkt.extend((0..60).map(|i| (n.wrapping_mul(31).wrapping_add(i)) as u8));
            pkt.extend_from_slice(&n.to_be_bytes());
            if let Some(c) = &cookie {
                let mac2 = handshake::mac2(c, &pkt);
                pkt.extend_from_slice(&mac2);
            }
            let mac1 = handshake::mac1(&mac1_key, &pkt);
            pkt.extend_from_slice(&mac1);
            w.inject(attacker, addr_a, pkt);
        }
    });
    assert!(
        failed.len() <= 2,
        "frames lost in seconds {failed:?} (drops {:?})",
        w.edge_drops()
    );
    // a did Diffie-Hellman for at most 8 + 8 of the member's 50 messages a second (its
    // budget for b, and the one for the member's address); the rest cost a MAC.
    assert!(
        w.edge_drop(a, "rate_limited") > 8_000,
        "{:?}",
        w.edge_drops()
    );
    assert!(w.edge_drop(a, "auth") <= 16 * 250, "{:?}", w.edge_drops());
    assert!(
        cookies > 200,
        "the member used a's cookies in {cookies} seconds"
    );
}
