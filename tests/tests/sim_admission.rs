//! Simulator scenarios for protocol v2 admission (issue 12, finding 3): a community with a
//! passphrase is closed on a supernode configured with nothing, names cannot be squatted,
//! and a lease belongs to the identity key that registered it, not to a MAC anyone can claim.

#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

use n2n_edge::proto::Event;
use n2n_protocol::crypto::signing::Signer;
use n2n_protocol::sim::NatKind;
use n2n_supernode::proto::{CommunityPolicy, SupernodeConfig, base_name};
use n2n_tests::{EdgeOptions, World, closed_policy};
use std::time::Duration;

fn refusal(w: &World, i: usize) -> Option<String> {
    w.edges[i].events.iter().rev().find_map(|e| match e {
        Event::RegistrationRefused { reason } => Some(reason.clone()),
        _ => None,
    })
}

/// Two members of "acme" (passphrase "secret"), connected.
fn members(seed: u64) -> World {
    World::connected_pair(seed)
}

fn identity_of(w: &World, i: usize) -> [u8; 32] {
    w.edges[i].core.config().identity.public()
}

/// The review's attack (a): with no passphrase and a copy of a member's machine-id file, a
/// stranger registered in the member's passphrase community on a default supernode and got
/// the member's edge id, IP and peer list. Now it lands in the open community of that name,
/// which is another community: it learns nothing and takes nothing.
#[test]
fn a_stranger_with_the_name_and_a_members_machine_id_gets_nothing() {
    let mut w = members(60);
    let (ip_a, id_a) = (
        w.edges[0].core.address().unwrap().0,
        w.edges[0].core.edge_id().unwrap(),
    );
    for (n, passphrase) in [(0u8, None), (1, Some("guess"))] {
        let mut o = EdgeOptions::new(NatKind::None, 1); // member 0's machine id: its MAC
        o.identity = 90 + n;
        o.passphrase = passphrase.map(Into::into);
        let s = w.add_edge(o);
        w.run_for(Duration::from_secs(5));
        let stranger = &w.edges[s].core;
        assert!(stranger.peers().is_empty(), "the stranger sees no member");
        assert_ne!(stranger.edge_id(), Some(id_a));
        assert_ne!(stranger.address().map(|a| a.0), Some(ip_a));
    }
    for m in [0, 1] {
        assert_eq!(
            w.edges[m].core.peers().len(),
            1,
            "members see only each other"
        );
    }
    assert_eq!(w.edges[0].core.address().unwrap().0, ip_a);
    assert_eq!(w.edges[0].core.edge_id(), Some(id_a));
    let acme = w.closed_community("acme", "secret");
    assert!(
        acme.verifier.is_some(),
        "kept under its verifier: {}",
        acme.name
    );
    let lease = &acme.leases[&w.edges[0].core.config().mac];
    assert_eq!(lease.identity, Some(identity_of(&w, 0)));
    assert_eq!(lease.ip, ip_a);
}

/// A member who knows the passphrase still cannot take another member's lease, id or
/// relayed traffic by registering with its MAC, whether the owner is online or not.
#[test]
fn a_member_cannot_take_another_members_lease_by_claiming_its_mac() {
    let mut w = members(61);
    let (ip_a, id_a) = (
        w.edges[0].core.address().unwrap().0,
        w.edges[0].core.edge_id().unwrap(),
    );
    let a_addr = w.edges[0].addr;
    let mut o = EdgeOptions::new(NatKind::None, 1);
    o.identity = 77;
    let thief = w.add_edge(o);
    w.run_for(Duration::from_secs(5));
    assert!(!w.edges[thief].core.is_registered());
    let reason = refusal(&w, thief).expect("refused with a reason");
    assert!(
        reason.contains("leased to another member's identity key"),
        "{reason}"
    );
    assert_eq!(w.sn.as_ref().unwrap().edges()[&id_a].endpoint, a_addr);
    // The owner goes offline: its lease still is not the thief's.
    let now = w.now;
    w.edges[0]
        .core
        .handle_command(now, n2n_edge::proto::Command::Shutdown);
    w.run_for(Duration::from_secs(60));
    assert!(!w.edges[thief].core.is_registered());
    assert!(!w.sn.as_ref().unwrap().edges().contains_key(&id_a));
    let lease = &w.community("acme").leases[&w.edges[0].core.config().mac];
    assert_eq!((lease.ip, lease.edge_id), (ip_a, id_a));
    assert_eq!(lease.identity, Some(identity_of(&w, 0)));
}

/// Nobody can squat a name: groups that chose one name with different passphrases are
/// different communities (own subnet, own members).
#[test]
fn one_name_with_two_passphrases_is_two_communities() {
    let mut w = members(62);
    let mut o = EdgeOptions::new(NatKind::None, 3);
    o.passphrase = Some("other".into());
    let y1 = w.add_edge(o.clone());
    o.machine = 4;
    o.identity = 4;
    let y2 = w.add_edge(o);
    assert!(w.run_until(Duration::from_secs(10), |w| w.all_connected()));
    for (i, peer) in [(0, 1), (1, 0), (y1, y2), (y2, y1)] {
        let peers = w.edges[i].core.peers();
        assert_eq!(peers.len(), 1, "edge {i} sees only its own group");
        assert_eq!(
            peers.keys().next().copied(),
            w.edges[peer].core.edge_id(),
            "edge {i}"
        );
    }
    let sn = w.sn.as_ref().unwrap();
    let acmes: Vec<_> = sn
        .communities()
        .values()
        .filter(|c| base_name(&c.name) == "acme")
        .collect();
    assert_eq!(acmes.len(), 2);
    assert_ne!(acmes[0].subnet, acmes[1].subnet);
    assert_eq!(w.exchange(y1, y2, 5), (5, 5));
}

/// An edge that lost its identity key (a reinstall) is refused its old lease until the
/// operator releases it; then it gets its address and id back, and its peers accept the new
/// key once their pin of the old one lapses.
#[test]
fn a_lost_identity_key_gets_its_lease_back_once_the_operator_releases_it() {
    let mut w = members(63);
    let (ip_a, id_a) = (
        w.edges[0].core.address().unwrap().0,
        w.edges[0].core.edge_id().unwrap(),
    );
    let now = w.now;
    w.edges[0]
        .core
        .handle_command(now, n2n_edge::proto::Command::Shutdown);
    w.restart_edge_with(0, 5, |c| c.identity = Signer::from_seed(&[200; 32]));
    w.run_for(Duration::from_secs(5));
    assert!(!w.edges[0].core.is_registered());
    assert!(refusal(&w, 0).unwrap().contains("supernode release-lease"));
    let key = w.community("acme").name.clone();
    let mac = w.edges[0].core.config().mac;
    let released = w.sn.as_mut().unwrap().release_lease(&key, mac).unwrap();
    assert_eq!((released.ip, released.identity), (ip_a, None));
    assert!(
        w.sn.as_mut()
            .unwrap()
            .release_lease("nope", mac)
            .unwrap_err()
            .contains("no community")
    );
    assert!(w.run_until(Duration::from_secs(30), |w| w.edges[0].core.is_registered()));
    // Member 1 pinned the old identity: it refuses the new one until the pin lapses (10
    // minutes after the member left), then takes it at its next announcement.
    assert!(w.edges[1].core.peers().is_empty());
    assert!(w.run_until(Duration::from_secs(1500), |w| w.all_connected()));
    assert_eq!(w.edges[0].core.address().unwrap().0, ip_a);
    assert_eq!(w.edges[0].core.edge_id(), Some(id_a));
    let lease = &w.community("acme").leases[&mac];
    assert_eq!(
        lease.identity,
        Some(identity_of(&w, 0)),
        "bound to the new key"
    );
    assert!(
        w.sn_store
            .leases
            .iter()
            .any(|l| l.mac == mac && l.identity == Some(identity_of(&w, 0))),
        "persisted"
    );
}

/// The upgrade from protocol v1: a stored v1 community (bare name, leases without identity
/// keys) stays with its name. Nobody adopts it by registering first (an outsider with its own
/// passphrase gets a community of its own); once the operator lists the community's verifier,
/// members come back to their addresses and ids and their leases bind to their identities.
#[test]
fn leases_from_protocol_v1_carry_over_once_the_operator_lists_the_verifier() {
    let mut w = members(64);
    let before: Vec<_> = (0..2)
        .map(|i| {
            (
                w.edges[i].core.address().unwrap().0,
                w.edges[i].core.edge_id(),
            )
        })
        .collect();
    w.kill_supernode();
    // What a v1 supernode stored: the bare name, no verifier, no identities.
    for c in &mut w.sn_store.communities {
        c.name = "acme".into();
        c.verifier = None;
    }
    for l in &mut w.sn_store.leases {
        l.community = "acme".into();
        l.identity = None;
    }
    let v1_subnet = w.sn_store.communities[0].subnet;
    // An outsider registers first on the unconfigured supernode: its own community.
    w.start_supernode();
    let mut o = EdgeOptions::new(NatKind::None, 9);
    o.passphrase = Some("evil".into());
    let outsider = w.add_edge(o);
    assert!(w.run_until(Duration::from_secs(30), |w| {
        w.edges[outsider].core.is_registered()
    }));
    let sn = w.sn.as_ref().unwrap();
    assert_eq!(
        sn.communities()["acme"].subnet,
        v1_subnet,
        "v1 community untouched"
    );
    assert!(!sn.communities()["acme"].contains(w.edges[outsider].core.address().unwrap().0));
    // The operator lists the verifier: the members get their v1 leases.
    w.kill_supernode();
    let mut cfg = SupernodeConfig::default();
    cfg.communities
        .insert("acme".into(), closed_policy("acme", "secret"));
    w.start_supernode_with(cfg);
    assert!(w.run_until(Duration::from_secs(120), |w| {
        w.sn.as_ref().unwrap().communities()["acme"].members.len() == 2
            && (0..2).all(|i| w.edges[i].core.peers().len() == 1)
    }));
    for (i, b) in before.iter().enumerate() {
        assert_eq!(
            (
                w.edges[i].core.address().unwrap().0,
                w.edges[i].core.edge_id()
            ),
            *b
        );
    }
    let acme = &w.sn.as_ref().unwrap().communities()["acme"];
    assert_eq!(acme.leases.len(), 2);
    assert!(
        acme.leases.values().all(|l| l.identity.is_some()),
        "{:?}",
        acme.leases
    );
    w.run_for(Duration::from_secs(60));
    let sn = w.sn.as_ref().unwrap();
    assert_eq!(sn.edges().len(), 2, "the outsider is refused here now");
    assert!(
        refusal(&w, outsider)
            .unwrap()
            .contains("wrong community passphrase")
    );
}

/// A name the operator configured open (no verifiers) is theirs: a passphrase group cannot
/// take it, or its fixed subnet, under `name~…`.
#[test]
fn a_name_configured_open_cannot_be_squatted_with_a_passphrase() {
    let mut cfg = SupernodeConfig::default();
    cfg.communities
        .insert("lab".into(), CommunityPolicy::default());
    let mut w = World::new(66, cfg);
    let mut o = EdgeOptions::new(NatKind::None, 1);
    o.community = "lab".into();
    let squatter = w.add_edge(o.clone());
    o.passphrase = None;
    o.machine = 2;
    o.identity = 2;
    let member = w.add_edge(o);
    w.run_for(Duration::from_secs(5));
    assert!(w.edges[member].core.is_registered());
    assert!(!w.edges[squatter].core.is_registered());
    assert!(refusal(&w, squatter).unwrap().contains("configured open"));
    assert_eq!(w.sn.as_ref().unwrap().communities().len(), 1);
}

/// The flag day is explained, not silent: a v2 supernode names a v1 edge's datagrams (once a
/// minute at most), and a v2 edge that gets no answer tries a v1 hello, whose v1 answer
/// makes it say the supernode needs an upgrade (once).
#[test]
fn protocol_v1_on_either_side_is_named_in_one_log_line() {
    let mut w = World::new(65, SupernodeConfig::default());
    w.capture = true;
    let sn: std::net::SocketAddr = n2n_tests::SN_ADDR.parse().unwrap();
    let old_edge: std::net::SocketAddr = "198.51.100.9:5000".parse().unwrap();
    let mut v1_hello = vec![0u8; 800];
    v1_hello[..2].copy_from_slice(&[0x10, 0x01]);
    for _ in 0..3 {
        w.inject(old_edge, sn, v1_hello.clone());
    }
    w.run_for(Duration::from_millis(100));
    let outdated = |w: &World| {
        w.sn_events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    n2n_supernode::proto::Event::OutdatedPeer { version: 1, .. }
                )
            })
            .count()
    };
    assert_eq!(outdated(&w), 1, "one line, not one per datagram");

    // An edge whose supernode is v1 (here: gone, and a v1 reply forged from its address).
    w.kill_supernode();
    let a = w.add_edge(EdgeOptions::new(NatKind::None, 1));
    w.run_for(Duration::from_secs(4));
    let v1_sent = w
        .wire_log
        .iter()
        .filter(|(f, t, b)| *f == w.edges[a].addr && *t == sn && b[..2] == [0x10, 0x01])
        .count();
    assert!(v1_sent >= 1, "a v1 hello after unanswered v2 ones");
    let mut v1_reply = vec![0x10, 0x02];
    v1_reply.extend_from_slice(&[0; 200]);
    let to = w.edges[a].addr;
    for _ in 0..2 {
        w.inject(sn, to, v1_reply.clone());
    }
    w.run_for(Duration::from_millis(100));
    let told: Vec<_> = w.edges[a]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::SupernodeRejected { reason } if reason.contains("protocol v1") => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("upgrade the supernode"));
}

/// A member fills a small community's subnet with identities of its own while another member
/// is away: the full pool refuses the next one rather than hand it the absent member's
/// address (a lease is reclaimed only a lease lifetime after its edge was last seen).
#[test]
fn filling_the_subnet_does_not_win_an_absent_members_address() {
    let cfg = SupernodeConfig {
        community_prefix: 29, // six host addresses
        ..SupernodeConfig::default()
    };
    let mut w = World::new(67, cfg);
    let victim = w.add_edge(EdgeOptions::new(NatKind::None, 1));
    assert!(w.run_until(Duration::from_secs(10), |w| {
        w.edges[victim].core.is_registered()
    }));
    let (ip_v, mac_v) = (
        w.edges[victim].core.address().unwrap().0,
        w.edges[victim].core.config().mac,
    );
    let now = w.now;
    w.edges[victim]
        .core
        .handle_command(now, n2n_edge::proto::Command::Shutdown);
    w.run_for(Duration::from_secs(1));
    let mut sybils = Vec::new();
    for m in 10..16u8 {
        sybils.push(w.add_edge(EdgeOptions::new(NatKind::None, m)));
        w.run_for(Duration::from_secs(2));
    }
    w.run_for(Duration::from_secs(900));
    let registered: Vec<_> = sybils
        .iter()
        .filter(|&&s| w.edges[s].core.is_registered())
        .collect();
    assert_eq!(registered.len(), 5, "five free addresses, no more");
    for &s in &sybils {
        assert_ne!(w.edges[s].core.address().map(|a| a.0), Some(ip_v));
    }
    let last = *sybils.last().unwrap();
    assert!(refusal(&w, last).unwrap().contains("no free address"));
    let lease = &w.closed_community("acme", "secret").leases[&mac_v];
    assert_eq!(lease.ip, ip_v, "the absent member keeps its lease");
}
