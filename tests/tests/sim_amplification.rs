//! Bounded amplification and work (issue 12, finding 6): an endpoint moves only to an
//! address that proves it receives, peer lists and probing are limited per edge.

#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

use n2n_edge::proto::Command;
use n2n_protocol::sim::NatKind;
use n2n_protocol::types::{Candidate, CandidateKind};
use n2n_protocol::wire::sealed::SealedMessage;
use n2n_supernode::proto::SupernodeConfig;
use n2n_tests::{ATTACKER, EdgeOptions, SN_ADDR, World};
use std::net::SocketAddr;
use std::time::Duration;

fn pair(seed: u64) -> World {
    World::connected_pair(seed)
}

fn sent_to(w: &World, to: SocketAddr, from_sn: bool) -> Vec<Vec<u8>> {
    let sn: SocketAddr = SN_ADDR.parse().unwrap();
    w.wire_log
        .iter()
        .filter(|(f, t, _)| *t == to && (!from_sn || *f == sn))
        .map(|(_, _, b)| b.clone())
        .collect()
}

/// The review's attack (b), and finding 6: an on-path attacker withholds an edge's fresh
/// heartbeat and sends it from its own address. It authenticates (it was never seen), but
/// the endpoint stays: the supernode only challenges the new address (one small datagram
/// the attacker cannot answer) and sends it no peer list.
#[test]
fn a_fresh_heartbeat_sent_from_elsewhere_does_not_move_the_endpoint() {
    let mut w = pair(80);
    let sn: SocketAddr = SN_ADDR.parse().unwrap();
    let attacker: SocketAddr = ATTACKER.parse().unwrap();
    let (a_addr, id_a) = (w.edges[0].addr, w.edges[0].core.edge_id().unwrap());
    w.withhold_to = Some(sn);
    assert!(w.run_until(Duration::from_secs(30), |w| {
        w.withheld
            .iter()
            .any(|(f, b)| *f == a_addr && b[..2] == [0x21, 0x10])
    }));
    w.withhold_to = None;
    let fresh: Vec<Vec<u8>> = w
        .withheld
        .iter()
        .filter(|(f, b)| *f == a_addr && b[0] == 0x21)
        .map(|(_, b)| b.clone())
        .collect();
    for d in &fresh {
        w.inject(attacker, sn, d.clone());
    }
    w.run_for(Duration::from_millis(200));
    assert_eq!(w.sn.as_ref().unwrap().edges()[&id_a].endpoint, a_addr);
    let to_attacker = sent_to(&w, attacker, true);
    assert!(
        to_attacker.iter().all(|d| d[1] == 0x27 || d[1] == 0x22),
        "only challenges and heartbeat acks: {:?}",
        to_attacker.iter().map(|d| d[1]).collect::<Vec<_>>()
    );
    let challenges = to_attacker.iter().filter(|d| d[1] == 0x27).count();
    assert_eq!(challenges, 1, "one challenge a second at most");
    assert!(to_attacker.iter().all(|d| d.len() <= 80), "small answers");
    assert!(w.edges[0].core.is_registered());
    assert_eq!(w.exchange(0, 1, 5), (5, 5));
}

/// A genuine move (the NAT gives the edge a new port) is proven by the challenge and taken
/// within a round trip or two: relayed traffic follows the edge.
#[test]
fn a_rebound_edge_proves_its_new_address_and_the_endpoint_follows() {
    let mut w = World::new(81, SupernodeConfig::default());
    let a = w.add_edge(EdgeOptions::new(NatKind::Symmetric, 1));
    let b = w.add_edge(EdgeOptions::new(NatKind::Symmetric, 2));
    assert!(w.run_until(Duration::from_secs(10), |w| w.all_connected()));
    let id_a = w.edges[a].core.edge_id().unwrap();
    let before = w.sn.as_ref().unwrap().edges()[&id_a].endpoint;
    let router = w.edges[a].router.unwrap();
    w.net.flush_mappings(router);
    assert!(w.run_until(Duration::from_secs(30), |w| {
        w.sn.as_ref().unwrap().edges()[&id_a].endpoint != before
    }));
    assert!(w.edges[a].core.is_registered());
    assert_eq!(w.exchange(a, b, 5), (5, 5));
}

/// A member asks for the whole peer list again and again: three answers, then one per 5 s;
/// the rest are refused and counted.
#[test]
fn peer_list_requests_are_limited_per_edge() {
    let mut w = pair(82);
    let a_addr = w.edges[0].addr;
    let lists_before = sent_to(&w, a_addr, true)
        .iter()
        .filter(|d| d[1] == 0x23)
        .count();
    for _ in 0..20 {
        w.edges[0]
            .core
            .tell_supernode(&SealedMessage::PeerSyncRequest);
    }
    w.run_for(Duration::from_millis(200));
    let lists = sent_to(&w, a_addr, true)
        .iter()
        .filter(|d| d[1] == 0x23)
        .count()
        - lists_before;
    assert_eq!(lists, 3, "a burst of three");
    assert_eq!(w.sn.as_ref().unwrap().stats().limit_hits.peer_syncs, 17);
}

/// A hostile member changes its candidates every second for a minute, each time to new
/// addresses of its choosing (valid, signed announcements): its peer probes them out of a
/// budget (two punch attempts at once, then a round every 2 s), not 45 probes a second.
#[test]
fn a_member_changing_its_candidates_cannot_make_peers_probe_without_end() {
    let mut w = pair(83);
    let victim = 1;
    let mut targets = Vec::new();
    for i in 0..60u16 {
        let cands: Vec<Candidate> = (0..8)
            .map(|j| Candidate {
                kind: CandidateKind::Lan,
                addr: SocketAddr::from(([198, 51, 100, (i % 200) as u8 + 1], 1000 + j)),
            })
            .collect();
        targets.extend(cands.iter().map(|c| c.addr));
        let now = w.now;
        w.edges[0]
            .core
            .handle_command(now, Command::SetCandidates(cands));
        w.run_for(Duration::from_secs(1));
    }
    let victim_addr = w.edges[victim].addr;
    let probes = w
        .wire_log
        .iter()
        .filter(|(f, t, _)| *f == victim_addr && targets.contains(t))
        .count();
    // 100 rounds at once plus 0.5 a second, 8 chosen addresses a round.
    assert!(probes <= (100 + 31) * 8, "{probes} probes");
    assert!(probes > 0, "it did probe them (the test can fail)");
    assert!(w.edge_drop(victim, "rate_limited") > 0);
}

/// Leaving and coming back (a member re-registering, or a supernode that removes and re-adds
/// it again and again) does not refill the probe budget.
#[test]
fn dropping_and_re_adding_a_peer_does_not_refill_its_probe_budget() {
    let mut w = pair(84);
    let id1 = w.edges[1].core.edge_id().unwrap();
    let genuine = w.sn.as_ref().unwrap().edges()[&id1].peer_info();
    let (from, to) = (w.edges[0].addr, w.edges[1].addr);
    let probes = |w: &World| {
        w.wire_log
            .iter()
            .filter(|(f, t, b)| *f == from && *t == to && b[0] == 0x22)
            .count()
    };
    let before = probes(&w);
    for _ in 0..40 {
        w.supernode_says(0, &SealedMessage::PeerRemove { ids: vec![id1] });
        w.supernode_says(
            0,
            &SealedMessage::PeerUpdate {
                peers: vec![genuine.clone()],
            },
        );
        w.run_for(Duration::from_secs(2));
    }
    let sent = probes(&w) - before;
    // Probe rounds (one address each) from the budget: at most 100 + 0.5/s over 80 s; plus
    // handshakes and keepalives, a few per cycle.
    assert!(sent <= 100 + 40 + 40 * 4, "{sent} datagrams to the peer");
    assert!(w.edge_drop(0, "rate_limited") > 0);
}
