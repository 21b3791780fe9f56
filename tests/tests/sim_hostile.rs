//! The simulator's hostile supernode and hostile member (issue 12, findings 4 and 3): the
//! supernode says whatever it likes on the edges' real sessions (`Supernode::say`), a member
//! signs whatever it likes with its own keys. Edges must accept only announcements a member
//! made for itself, bound to its id, MAC, IP, name and candidates, and only addresses of
//! their community's private subnet.

#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

use n2n_edge::proto::{Event, Path};
use n2n_protocol::crypto::signing::Signer;
use n2n_protocol::sim::NatKind;
use n2n_protocol::types::{Candidate, CandidateKind};
use n2n_protocol::wire::messages::{Binding, KeyAnnounce, PeerInfo};
use n2n_protocol::wire::sealed::SealedMessage;
use n2n_supernode::proto::SupernodeConfig;
use n2n_tests::{ATTACKER, EdgeOptions, World, keys};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Two members with direct paths both ways, settled.
fn pair(seed: u64) -> World {
    let mut w = World::connected_pair(seed);
    assert!(w.run_until(Duration::from_secs(10), |w| {
        matches!(w.path(0, 1), Some(Path::Direct { .. }))
            && matches!(w.path(1, 0), Some(Path::Direct { .. }))
    }));
    w.run_for(Duration::from_secs(2));
    w
}

fn verifier() -> Option<[u8; 32]> {
    keys("acme", Some("secret")).verifier()
}

fn info_of(w: &World, i: usize) -> PeerInfo {
    let id = w.edges[i].core.edge_id().unwrap();
    w.sn.as_ref().unwrap().edges()[&id].peer_info()
}

fn say(w: &mut World, to: usize, msg: SealedMessage) {
    w.supernode_says(to, &msg);
    w.run_for(Duration::from_millis(300));
}

fn probes_to(w: &World, addr: SocketAddr) -> usize {
    w.wire_log.iter().filter(|(_, t, _)| *t == addr).count()
}

/// A supernode rebinds member 1's valid announcement to another id, IP, name or candidate
/// list: member 0 takes none of them (no new peer, no moved address, no probe to the
/// attacker's address), counts each, and keeps talking to member 1.
#[test]
fn a_supernode_cannot_rebind_a_members_announcement() {
    let mut w = pair(70);
    let genuine = info_of(&w, 1);
    let state = w.edge_state(0);
    let auth_before = w.edge_drop(0, "auth");
    let attacker: SocketAddr = ATTACKER.parse().unwrap();
    let rebinds = vec![
        PeerInfo {
            id: 77,
            ..genuine.clone()
        },
        PeerInfo {
            ip: Ipv4Addr::from(u32::from(genuine.ip) + 50),
            ..genuine.clone()
        },
        PeerInfo {
            desc: "nas".into(),
            ..genuine.clone()
        },
        PeerInfo {
            candidates: vec![Candidate {
                kind: CandidateKind::Lan,
                addr: attacker,
            }],
            ..genuine.clone()
        },
        PeerInfo {
            mac: n2n_protocol::types::Mac([2, 9, 9, 9, 9, 9]),
            ..genuine.clone()
        },
    ];
    let n = rebinds.len() as u64;
    for r in rebinds {
        let before = w.edge_drop(0, "auth");
        say(
            &mut w,
            0,
            SealedMessage::PeerUpdate {
                peers: vec![r.clone()],
            },
        );
        assert_eq!(
            w.edge_drop(0, "auth") - before,
            1,
            "{r:?} {:?}",
            w.edges[0].core.stats().drops.iter().collect::<Vec<_>>()
        );
    }
    say(
        &mut w,
        0,
        SealedMessage::Punch {
            peer: PeerInfo {
                candidates: vec![Candidate {
                    kind: CandidateKind::Mapped,
                    addr: attacker,
                }],
                ..genuine.clone()
            },
        },
    );
    assert_eq!(w.edge_drop(0, "auth") - auth_before, n + 1);
    assert_eq!(w.edge_state(0), state, "nothing moved");
    assert_eq!(probes_to(&w, attacker), 0, "no probe to the attacker");
    assert_eq!(w.exchange(0, 1, 5), (5, 5));
}

/// The supernode forges a member from scratch (its own identity and keys) or takes a
/// member's announcement from another community: without the community's auth key neither
/// is accepted.
#[test]
fn a_supernode_cannot_invent_a_member() {
    let mut w = pair(71);
    let genuine = info_of(&w, 1);
    let fake_ip = Ipv4Addr::from(u32::from(genuine.ip) + 9);
    let mut fake = PeerInfo {
        id: 99,
        mac: n2n_protocol::types::Mac([2, 1, 2, 3, 4, 5]),
        ip: fake_ip,
        ..genuine.clone()
    };
    let operator = Signer::from_seed(&[66; 32]);
    let wrong_auth = keys("acme", Some("guess")).auth;
    fake.key = KeyAnnounce::new(
        &operator,
        &wrong_auth,
        [5; 32],
        (0, 1),
        &fake.binding("acme", verifier()),
    );
    let before = w.edge_drop(0, "auth");
    say(&mut w, 0, SealedMessage::PeerUpdate { peers: vec![fake] });
    assert_eq!(w.edge_drop(0, "auth") - before, 1);
    assert!(!w.edges[0].core.peers().contains_key(&99));
}

/// A hostile member (it knows the passphrase, so its announcements carry a valid tag) with
/// a colluding supernode claims member 1's IP, and then member 1's id, with its own identity
/// key: member 0 pinned member 1's identity at first sight and refuses both, saying why.
#[test]
fn a_member_cannot_pose_as_another_even_with_the_supernode_on_its_side() {
    let mut w = pair(72);
    let genuine = info_of(&w, 1);
    let auth = keys("acme", Some("secret")).auth;
    let mallory = Signer::from_seed(&[13; 32]);
    let mut claims = Vec::new();
    for (id, mac) in [
        (88, n2n_protocol::types::Mac([2, 8, 8, 8, 8, 8])),
        (genuine.id, genuine.mac),
    ] {
        let mut i = PeerInfo {
            id,
            mac,
            ..genuine.clone()
        };
        let b: Binding<'_> = i.binding("acme", verifier());
        i.key = KeyAnnounce::new(&mallory, &auth, [6; 32], (u32::MAX, 1), &b);
        claims.push(i);
    }
    let state = w.edge_state(0);
    let before = w.edge_drop(0, "auth");
    say(&mut w, 0, SealedMessage::PeerUpdate { peers: claims });
    assert_eq!(w.edge_drop(0, "auth") - before, 2);
    assert_eq!(w.edge_state(0), state);
    let refusals = w.edges[0]
        .events
        .iter()
        .filter(|e| matches!(e, Event::PeerRefused { reason } if reason.contains("pinned")))
        .count();
    assert_eq!(refusals, 2);
    assert_eq!(w.exchange(0, 1, 5), (5, 5));
}

/// A supernode whose subnet is a public range would make edges route it into the TAP (and
/// name it in the hosts file): edges refuse the address, with a reason.
#[test]
fn an_edge_refuses_an_overlay_address_outside_the_private_ranges() {
    let cfg = SupernodeConfig {
        subnet_pool: (Ipv4Addr::new(1, 0, 0, 0), 8),
        ..SupernodeConfig::default()
    };
    let mut w = World::new(73, cfg);
    let a = w.add_edge(EdgeOptions::new(NatKind::None, 1));
    w.run_for(Duration::from_secs(5));
    assert!(!w.edges[a].core.is_registered());
    assert!(w.edges[a].core.address().is_none());
    let refused = w.edges[a].events.iter().any(
        |e| matches!(e, Event::RegistrationRefused { reason } if reason.contains("private range")),
    );
    assert!(refused, "{:?}", w.edges[a].events);
}

/// The supernode shows a newcomer a member's older announcement (validly signed, from before
/// its last key rotation): the newcomer never saw that key, but the announcement is older
/// than the one it holds, so it is refused, not taken for a restart that would shut out the
/// member's current key.
#[test]
fn a_supernode_replaying_an_older_announcement_changes_nothing() {
    let mut w = pair(74);
    let old = info_of(&w, 1);
    // Member 1 rotates its static key (every 10 minutes by default).
    assert!(
        w.run_until(Duration::from_secs(700), |w| w.edges[1].core.key_epoch()
            > 0)
    );
    let c = w.add_edge(EdgeOptions::new(NatKind::None, 3));
    assert!(w.run_until(Duration::from_secs(10), |w| w.all_connected()));
    assert_eq!(w.exchange(c, 1, 5), (5, 5));
    w.run_for(Duration::from_secs(5)); // paths settle
    let (state, replays) = (w.edge_state(c), w.edge_drop(c, "replay"));
    say(&mut w, c, SealedMessage::PeerUpdate { peers: vec![old] });
    assert_eq!(w.edge_drop(c, "replay") - replays, 1);
    assert_eq!(w.edge_state(c), state);
    assert_eq!(w.exchange(c, 1, 5), (5, 5));
}

/// Pins outlive a restart of the edge: the supernode cannot show the new process a colluding
/// member's announcement for the address of a member that is away (first sight would pin it),
/// and the member itself comes back unhindered.
#[test]
fn a_restarted_edge_keeps_its_pins() {
    let mut w = pair(75);
    let genuine = info_of(&w, 1);
    // Member 1 is suspended: the supernode drops it and edge 0 sees it leave.
    w.freeze(1, true);
    assert!(w.run_until(Duration::from_secs(300), |w| {
        w.edges[0].core.peers().is_empty()
    }));
    w.restart_edge(0, 76);
    assert!(w.run_until(Duration::from_secs(10), |w| w.edges[0].core.is_registered()));
    let mallory = Signer::from_seed(&[13; 32]);
    let mut claim = genuine.clone();
    let b: Binding<'_> = claim.binding("acme", verifier());
    claim.key = KeyAnnounce::new(
        &mallory,
        &keys("acme", Some("secret")).auth,
        [6; 32],
        (u32::MAX, 1),
        &b,
    );
    let (events, auth) = (w.edges[0].events.len(), w.edge_drop(0, "auth"));
    say(&mut w, 0, SealedMessage::PeerUpdate { peers: vec![claim] });
    assert_eq!(w.edge_drop(0, "auth") - auth, 1);
    assert!(w.edges[0].core.peers().is_empty());
    assert!(
        w.edges[0].events[events..]
            .iter()
            .any(|e| matches!(e, Event::PeerRefused { reason } if reason.contains("pinned"))),
        "{:?}",
        &w.edges[0].events[events..]
    );
    w.freeze(1, false);
    assert!(w.run_until(Duration::from_secs(60), |w| w.all_connected()));
    assert_eq!(w.exchange(0, 1, 5), (5, 5));
}
