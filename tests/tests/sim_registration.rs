//! Simulator scenarios: registration, leases, admission, and frames over the overlay.

#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

use n2n_edge::proto::{Event, Path};
use n2n_protocol::sim::NatKind;
use n2n_protocol::types::Mac;
use n2n_supernode::proto::{CommunityPolicy, SupernodeConfig, base_name};
use n2n_tests::{EdgeOptions, World, closed_policy, frame};
use std::time::Duration;

fn mac_of(w: &World, i: usize) -> [u8; 6] {
    w.edges[i].core.config().mac.0
}

#[test]
fn two_public_edges_register_get_distinct_ips_and_exchange_frames_directly() {
    let mut w = World::new(1, SupernodeConfig::default());
    let a = w.add_edge(EdgeOptions::new(NatKind::None, 1));
    let b = w.add_edge(EdgeOptions::new(NatKind::None, 2));
    assert!(
        w.run_until(Duration::from_secs(10), |w| w.all_connected()),
        "edges did not connect"
    );
    let (ipa, pa) = w.edges[a].core.address().unwrap();
    let (ipb, pb) = w.edges[b].core.address().unwrap();
    assert_ne!(ipa, ipb);
    assert_eq!((pa, pb), (24, 24));
    let community = w.community("acme");
    assert!(community.contains(ipa) && community.contains(ipb));
    assert_eq!(w.sn_store.leases.len(), 2, "both leases persisted");
    assert!(w.run_until(Duration::from_secs(5), |w| {
        matches!(w.path(a, b), Some(Path::Direct { .. }))
            && matches!(w.path(b, a), Some(Path::Direct { .. }))
    }));

    // Broadcast first (ARP-like), then unicast once MACs are known.
    let bcast = frame([0xff; 6], mac_of(&w, a), 1, 60);
    w.send_frame(a, &bcast);
    w.run_for(Duration::from_millis(100));
    assert_eq!(w.edges[b].delivered, vec![bcast]);
    for seq in 0..50 {
        let f = frame(mac_of(&w, b), mac_of(&w, a), seq, 1400);
        w.send_frame(a, &f);
        let g = frame(mac_of(&w, a), mac_of(&w, b), seq, 200);
        w.send_frame(b, &g);
    }
    w.run_for(Duration::from_millis(100));
    assert_eq!(w.edges[b].delivered.len(), 51);
    assert_eq!(w.edges[a].delivered.len(), 50);
    assert_eq!(
        w.edges[a].core.stats().tx_relayed,
        0,
        "direct path carried everything"
    );
    // Only the first handshake and its confirmation went through the supernode.
    assert!(w.sn.as_ref().unwrap().stats().relayed_packets <= 3);
    assert_eq!(
        w.edge_drops().values().sum::<u64>(),
        0,
        "no drops: {:?}",
        w.edge_drops()
    );
}

#[test]
fn leases_are_stable_per_mac_and_static_requests_are_honoured() {
    let mut w = World::new(2, SupernodeConfig::default());
    let a = w.add_edge(EdgeOptions::new(NatKind::None, 1));
    let mut opts = EdgeOptions::new(NatKind::None, 2);
    let community = {
        w.run_until(Duration::from_secs(5), |w| w.edges[a].core.is_registered());
        w.community("acme")
    };
    let wanted = std::net::Ipv4Addr::from(u32::from(community.subnet) + 77);
    opts.requested_ip = Some(wanted);
    let b = w.add_edge(opts);
    assert!(w.run_until(Duration::from_secs(10), |w| w.all_connected()));
    assert_eq!(w.edges[b].core.address().unwrap().0, wanted);
    let ip_a = w.edges[a].core.address().unwrap().0;
    let id_a = w.edges[a].core.edge_id().unwrap();
    // The edge restarts (new process: new keys, new session): same MAC, same IP, same id.
    w.restart_edge(a, 99);
    assert!(w.run_until(Duration::from_secs(10), |w| w.all_connected()
        && w.edges[a].core.is_registered()));
    assert_eq!(w.edges[a].core.address().unwrap().0, ip_a);
    assert_eq!(w.edges[a].core.edge_id().unwrap(), id_a);
    // A third edge asking for a taken address gets another one.
    let mut opts = EdgeOptions::new(NatKind::None, 3);
    opts.requested_ip = Some(wanted);
    let c = w.add_edge(opts);
    assert!(w.run_until(Duration::from_secs(10), |w| w.all_connected()));
    let ip_c = w.edges[c].core.address().unwrap().0;
    assert!(ip_c != wanted && ip_c != ip_a);
}

#[test]
fn restricted_community_refuses_a_wrong_secret_with_a_clear_reason() {
    let mut cfg = SupernodeConfig::default();
    cfg.communities
        .insert("acme".into(), closed_policy("acme", "secret"));
    cfg.allow_open = false;
    let mut w = World::new(3, cfg);
    let good = w.add_edge(EdgeOptions::new(NatKind::None, 1));
    let mut bad_opts = EdgeOptions::new(NatKind::None, 2);
    bad_opts.passphrase = Some("wrong".into());
    let bad = w.add_edge(bad_opts);
    let mut stranger = EdgeOptions::new(NatKind::None, 3);
    stranger.community = "other".into();
    let other = w.add_edge(stranger);
    w.run_for(Duration::from_secs(5));
    assert!(w.edges[good].core.is_registered());
    assert!(!w.edges[bad].core.is_registered());
    assert!(!w.edges[other].core.is_registered());
    let reason = |i: usize| {
        w.edges[i].events.iter().find_map(|e| match e {
            Event::RegistrationRefused { reason } => Some(reason.clone()),
            _ => None,
        })
    };
    assert!(
        reason(bad).unwrap().contains("wrong community passphrase"),
        "{:?}",
        reason(bad)
    );
    assert!(
        reason(other).unwrap().contains("not served"),
        "{:?}",
        reason(other)
    );
    assert!(
        w.edges[good].core.peers().is_empty(),
        "refused edges are not peers"
    );
    assert_eq!(w.sn.as_ref().unwrap().edges().len(), 1);
}

#[test]
fn supernode_never_sees_a_frame_in_plaintext() {
    let mut w = World::new(4, SupernodeConfig::default());
    w.capture = true;
    // Both symmetric: everything is relayed through the supernode.
    let a = w.add_edge(EdgeOptions::new(NatKind::Symmetric, 1));
    let b = w.add_edge(EdgeOptions::new(NatKind::Symmetric, 2));
    assert!(w.run_until(Duration::from_secs(10), |w| w.all_connected()));
    let mut f = frame(mac_of(&w, b), mac_of(&w, a), 7, 300);
    f.extend_from_slice(b"PLAINTEXT-MARKER-0123456789");
    w.send_frame(a, &f);
    w.run_for(Duration::from_millis(100));
    assert_eq!(w.edges[b].delivered.last(), Some(&f));
    assert!(w.sn.as_ref().unwrap().stats().relayed_packets >= 1);
    let leaked = w
        .wire_log
        .iter()
        .any(|(_, _, bytes)| bytes.windows(16).any(|win| win == &b"PLAINTEXT-MARKER"[..]));
    assert!(!leaked, "frame bytes visible on the wire");
    let _ = Mac::BROADCAST;
}

#[test]
fn no_unauthenticated_reply_is_larger_than_its_request() {
    let mut w = World::new(5, SupernodeConfig::default());
    w.capture = true;
    w.add_edge(EdgeOptions::new(NatKind::None, 1));
    w.run_for(Duration::from_secs(2));
    let sn: std::net::SocketAddr = n2n_tests::SN_ADDR.parse().unwrap();
    let hellos: Vec<usize> = w
        .wire_log
        .iter()
        .filter(|(_, t, b)| *t == sn && b[..2] == [0x20, 0x01])
        .map(|(_, _, b)| b.len())
        .collect();
    let replies: Vec<usize> = w
        .wire_log
        .iter()
        .filter(|(f, _, b)| *f == sn && b[..2] == [0x20, 0x02])
        .map(|(_, _, b)| b.len())
        .collect();
    assert!(!hellos.is_empty() && !replies.is_empty());
    assert!(
        replies.iter().max() <= hellos.iter().min(),
        "replies {replies:?} vs hellos {hellos:?}"
    );
}

#[test]
fn abuse_limits_are_enforced_and_counted() {
    let mut cfg = SupernodeConfig::default();
    cfg.limits.max_edges_per_community = 2;
    cfg.limits.relay_per_edge = n2n_protocol::ratelimit::Rate::new(10.0, 10.0);
    let mut w = World::new(6, cfg);
    let a = w.add_edge(EdgeOptions::new(NatKind::Symmetric, 1));
    let b = w.add_edge(EdgeOptions::new(NatKind::Symmetric, 2));
    let c = w.add_edge(EdgeOptions::new(NatKind::None, 3));
    w.run_for(Duration::from_secs(5));
    assert!(
        !w.edges[c].core.is_registered(),
        "third edge refused: community full"
    );
    assert!(
        w.edges[c]
            .events
            .iter()
            .any(|e| matches!(e, Event::RegistrationRefused { reason } if reason.contains("full")))
    );
    // Symmetric pair: relayed; 50 frames at once exceed a burst of 10.
    for seq in 0..50 {
        w.send_frame(a, &frame(mac_of(&w, b), mac_of(&w, a), seq, 100));
    }
    w.run_for(Duration::from_millis(50));
    let st = w.sn.as_ref().unwrap().stats();
    assert!(st.limit_hits.community_full >= 1);
    assert!(st.limit_hits.relay >= 30, "{:?}", st.limit_hits);
    assert!(w.edges[b].delivered.len() <= 20);
    // Handshakes per source: a flood of hellos from one address is cut off.
    let sn: std::net::SocketAddr = n2n_tests::SN_ADDR.parse().unwrap();
    let hello = n2n_protocol::wire::plain::PlainMessage::Hello { nonce: [1; 16] }.emit();
    let flooder: std::net::SocketAddr = "203.0.113.99:1".parse().unwrap();
    w.net.add_host(flooder.ip(), None);
    for _ in 0..200 {
        w.inject(flooder, sn, hello.clone());
    }
    w.run_for(Duration::from_millis(50));
    assert!(w.sn.as_ref().unwrap().stats().limit_hits.handshakes >= 150);
}

#[test]
fn a_supernode_address_that_changes_is_followed() {
    let mut w = World::new(7, SupernodeConfig::default());
    let a = w.add_edge(EdgeOptions::new(NatKind::None, 1));
    // The edge starts with a stale address (the name used to resolve elsewhere).
    let stale: std::net::SocketAddr = "203.0.113.250:7777".parse().unwrap();
    let real: std::net::SocketAddr = n2n_tests::SN_ADDR.parse().unwrap();
    let now = w.now;
    w.edges[a]
        .core
        .handle_command(now, n2n_edge::proto::Command::SetSupernodes(vec![stale]));
    w.drain();
    w.run_for(Duration::from_secs(5));
    assert!(!w.edges[a].core.is_registered());
    let regs = w.edges[a].core.stats().registrations;
    // Re-resolution yields the real address: the edge registers there.
    let now = w.now;
    w.edges[a]
        .core
        .handle_command(now, n2n_edge::proto::Command::SetSupernodes(vec![real]));
    w.drain();
    assert!(w.run_until(Duration::from_secs(5), |w| w.edges[a].core.is_registered()));
    assert_eq!(w.edges[a].core.supernode(), Some(real));
    assert!(w.edges[a].core.stats().registrations > regs);
}

#[test]
fn one_source_cannot_use_up_the_subnet_pool() {
    let mut cfg = SupernodeConfig::default();
    cfg.limits.new_communities_per_source = n2n_protocol::ratelimit::Rate::new(1.0 / 3600.0, 3.0);
    let mut w = World::new(8, cfg);
    // Six edges behind one NAT, each asking for a community of its own.
    let r = w.add_router(NatKind::PortRestricted);
    let mut behind = Vec::new();
    for i in 0..6u8 {
        let mut o = EdgeOptions::new(NatKind::None, 10 + i);
        o.behind = Some(r);
        o.community = format!("grab{i}");
        behind.push(w.add_edge(o));
    }
    w.run_for(Duration::from_secs(5));
    let registered = behind
        .iter()
        .filter(|&&e| w.edges[e].core.is_registered())
        .count();
    assert_eq!(registered, 3, "the burst of three, no more");
    let refused = behind
        .iter()
        .find(|&&e| !w.edges[e].core.is_registered())
        .copied()
        .unwrap();
    assert!(
        w.edges[refused].events.iter().any(
            |e| matches!(e, Event::RegistrationRefused { reason } if reason.contains("new communities"))
        ),
        "the refusal says why"
    );
    let sn = w.sn.as_ref().unwrap();
    assert_eq!(sn.communities().len(), 3);
    assert!(sn.stats().limit_hits.new_communities >= 3);
    // The same source still joins a community that exists, and other sources still create.
    let mut join = EdgeOptions::new(NatKind::None, 30);
    join.behind = Some(r);
    join.community = "grab0".into();
    let join = w.add_edge(join);
    let mut other = EdgeOptions::new(NatKind::None, 31);
    other.community = "elsewhere".into();
    let other = w.add_edge(other);
    assert!(w.run_until(Duration::from_secs(5), |w| {
        w.edges[join].core.is_registered() && w.edges[other].core.is_registered()
    }));
}

#[test]
fn a_peer_that_leaves_is_remembered_until_it_returns() {
    let mut w = World::new(9, SupernodeConfig::default());
    let a = w.add_edge(EdgeOptions::new(NatKind::None, 1));
    let b = w.add_edge(EdgeOptions::new(NatKind::None, 2));
    assert!(w.run_until(Duration::from_secs(10), |w| w.all_connected()));
    assert!(w.edges[a].core.departed().is_empty());
    let (b_id, b_ip) = (
        w.edges[b].core.edge_id().unwrap(),
        w.edges[b].core.address().unwrap().0,
    );
    let now = w.now;
    w.edges[b]
        .core
        .handle_command(now, n2n_edge::proto::Command::Shutdown);
    w.drain();
    assert!(w.run_until(Duration::from_secs(5), |w| {
        w.edges[a].core.peers().is_empty()
    }));
    let gone = &w.edges[a].core.departed()[&b_id];
    assert_eq!((gone.ip, gone.desc.as_str()), (b_ip, "edge1"));
    assert_eq!(gone.mac, w.edges[b].core.config().mac);
    // The API lists it as offline, in /peers.json and /leases.json.
    let info = n2n_edge::api::DaemonInfo {
        community: "acme".into(),
        tap: "n2n0".into(),
        local: "192.0.2.1:1".parse().unwrap(),
        started: w.now,
        fingerprint: None,
        queues: Default::default(),
    };
    let peers = n2n_edge::api::peers_json(&w.edges[a].core, &info, w.now);
    assert_eq!(peers["offline"][0]["desc"], "edge1");
    assert_eq!(peers["offline"][0]["ip"], b_ip.to_string());
    let n2n_edge::api::Answer::Json(_, leases) = n2n_edge::api::answer(
        &n2n_edge::api::Query::Leases,
        &w.edges[a].core,
        &info,
        w.now,
    ) else {
        panic!("leases are JSON")
    };
    let row = leases
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == b_id)
        .unwrap();
    assert_eq!(
        (row["online"].clone(), row["self"].clone()),
        (false.into(), false.into())
    );
    assert_eq!(row["ip"], b_ip.to_string());
    // It comes back (same machine: same id): no longer listed as gone.
    w.restart_edge(b, 99);
    assert!(w.run_until(Duration::from_secs(10), |w| {
        w.edges[a].core.peers().contains_key(&b_id)
    }));
    assert!(w.edges[a].core.departed().is_empty());
}

#[test]
fn an_abandoned_open_community_gives_its_subnet_back() {
    let mut cfg = SupernodeConfig {
        open_community_idle: Duration::from_secs(3600),
        ..SupernodeConfig::default()
    };
    cfg.communities
        .insert("kept".into(), CommunityPolicy::default());
    let mut w = World::new(10, cfg);
    let edge_in = |w: &mut World, community: &str, machine: u8| {
        let mut o = EdgeOptions::new(NatKind::None, machine);
        o.community = community.into();
        if community == "kept" {
            // Configured without verifiers: open, and a passphrase would be refused there.
            o.passphrase = None;
        }
        w.add_edge(o)
    };
    let idle = edge_in(&mut w, "idle", 1);
    let kept = edge_in(&mut w, "kept", 2);
    let busy = edge_in(&mut w, "busy", 3);
    assert!(w.run_until(Duration::from_secs(10), |w| {
        [idle, kept, busy]
            .iter()
            .all(|&e| w.edges[e].core.is_registered())
    }));
    for e in [idle, kept] {
        let now = w.now;
        w.edges[e]
            .core
            .handle_command(now, n2n_edge::proto::Command::Shutdown);
        w.restart_edge(e, 50 + e as u64);
        // The restarted cores must stay quiet: point them nowhere.
        let now = w.now;
        w.edges[e].core.handle_command(
            now,
            n2n_edge::proto::Command::SetSupernodes(vec!["203.0.113.250:7777".parse().unwrap()]),
        );
    }
    w.run_for(Duration::from_secs(1800));
    assert_eq!(
        w.sn.as_ref().unwrap().communities().len(),
        3,
        "not idle long enough yet"
    );
    w.run_for(Duration::from_secs(2400));
    let sn = w.sn.as_ref().unwrap();
    let names: Vec<&str> = sn.communities().keys().map(|k| base_name(k)).collect();
    assert_eq!(
        names,
        ["busy", "kept"],
        "only the abandoned open one is gone"
    );
    assert!(w.sn_events.iter().any(
        |e| matches!(e, n2n_supernode::proto::Event::CommunityRemoved { name, .. } if base_name(name) == "idle")
    ));
    assert!(
        w.sn_store
            .leases
            .iter()
            .all(|l| base_name(&l.community) != "idle")
    );
    assert!(
        w.sn_store
            .communities
            .iter()
            .all(|c| base_name(&c.name) != "idle")
    );
    assert!(
        w.sn_store
            .leases
            .iter()
            .any(|l| base_name(&l.community) == "kept")
    );
    assert!(w.edges[busy].core.is_registered());

    // A restart empties every community for a moment, and busy's lease was last written
    // over an hour ago: it must not count as idle.
    // busy's edge looks elsewhere while the supernode restarts, so busy stays empty.
    let now = w.now;
    w.edges[busy].core.handle_command(
        now,
        n2n_edge::proto::Command::SetSupernodes(vec!["203.0.113.250:7777".parse().unwrap()]),
    );
    w.kill_supernode();
    w.start_supernode();
    w.run_for(Duration::from_secs(20));
    let removed_busy = |w: &World| {
        w.sn_events.iter().any(|e| {
            matches!(e, n2n_supernode::proto::Event::CommunityRemoved { name, .. } if base_name(name) == "busy")
        })
    };
    assert!(!removed_busy(&w), "busy is not idle right after a restart");
    let now = w.now;
    w.edges[busy].core.handle_command(
        now,
        n2n_edge::proto::Command::SetSupernodes(vec![n2n_tests::SN_ADDR.parse().unwrap()]),
    );
    assert!(w.run_until(Duration::from_secs(60), |w| {
        w.edges[busy].core.is_registered() && w.community("busy").members.len() == 1
    }));
}

/// Issue 12 #7: ids only grew (`next_edge_id`, persisted through the leases), so once the
/// highest id was handed out no new edge could join any community ("ran out of edge ids"),
/// although almost every id was free.
#[test]
fn edge_ids_are_reused_once_the_highest_was_given_and_never_collide() {
    use n2n_protocol::types::MAX_EDGE_ID;
    let mut w = World::new(40, SupernodeConfig::default());
    let a = w.add_edge(EdgeOptions::new(NatKind::None, 1));
    assert!(w.run_until(Duration::from_secs(10), |w| w.all_connected()));
    let id_a = w.edges[a].core.edge_id().unwrap();
    // A lease holding the highest id (as after years of churn), then a supernode restart.
    let mut top = w.sn_store.leases[0].clone();
    top.mac = Mac([0x02, 9, 9, 9, 9, 9]);
    top.ip = std::net::Ipv4Addr::from(u32::from(w.sn_store.leases[0].ip) + 100);
    top.edge_id = MAX_EDGE_ID;
    w.sn_store.leases.push(top);
    w.kill_supernode();
    w.start_supernode();
    let b = w.add_edge(EdgeOptions::new(NatKind::None, 2));
    assert!(
        w.run_until(Duration::from_secs(30), |w| w.edges[b].core.is_registered()),
        "a new edge was refused: {:?}",
        w.edges[b].events
    );
    let id_b = w.edges[b].core.edge_id().unwrap();
    assert!(id_b != id_a && id_b != MAX_EDGE_ID && id_b >= 1, "{id_b}");
    assert!(w.run_until(Duration::from_secs(30), |w| w.all_connected()));
}

/// Issue 12 #5: an edge without `supernode_fingerprint` accepted any supernode identity,
/// every time: whoever took over the supernode's address (or a restarted host with a new
/// key) was trusted silently. Now the first identity is pinned (trust on first use).
#[test]
fn a_supernode_with_another_identity_at_a_known_address_is_refused() {
    use n2n_protocol::crypto::identity::{Fingerprint, Identity};
    use n2n_protocol::rng::CoreRng;
    let mut w = World::new(60, SupernodeConfig::default());
    let a = w.add_edge(EdgeOptions::new(NatKind::None, 1));
    assert!(w.run_until(Duration::from_secs(10), |w| w.all_connected()));
    let sn_addr: std::net::SocketAddr = n2n_tests::SN_ADDR.parse().unwrap();
    let first = Fingerprint::of(w.sn_identity.public_der());
    assert_eq!(w.edges[a].core.config().seen.get(&sn_addr), Some(&first));
    assert!(w.edges[a].events.iter().any(|e| matches!(
        e,
        Event::SupernodeFirstSeen { fingerprint, .. } if *fingerprint == first
    )));
    // Someone else answers at the supernode's address, with a valid key of its own.
    w.kill_supernode();
    w.sn_identity = Identity::generate(&mut CoreRng::seeded(61), 2048).unwrap();
    w.start_supernode();
    let regs = w.edges[a].core.stats().registrations;
    w.run_for(Duration::from_secs(90));
    assert_eq!(
        w.edges[a].core.stats().registrations,
        regs,
        "registered with an impostor"
    );
    assert!(w.edges[a].events.iter().any(|e| matches!(
        e,
        Event::SupernodeRejected { reason } if reason.contains("first contact")
    )));
}
