//! The real binaries across real NAT routers (nftables in namespaces): for every pair of
//! router kinds, the edges reach each other, and the path (read from the edge API) is what
//! NAT theory allows. Prints the outcome table the README shows:
//!   cargo test -p n2n-edge --test lab_nat -- --nocapture
//! Needs root.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

mod support;

use n2n_common::sim::NatKind;
use std::time::{Duration, Instant};
use support::{Lab, Site, wait_until};

const KINDS: [Site; 6] = [
    Site::Public,
    Site::Masquerade,
    Site::AddressRestricted,
    Site::PortRestricted,
    Site::Symmetric,
    Site::Firewall,
];

fn theory(s: Site) -> NatKind {
    match s {
        Site::Public => NatKind::None,
        Site::Masquerade | Site::PortRestricted => NatKind::PortRestricted,
        Site::AddressRestricted => NatKind::AddressRestricted,
        Site::Symmetric => NatKind::Symmetric,
        Site::Firewall => NatKind::Firewall,
    }
}

/// Whether hole punching can work between the two kinds.
///
/// NAT theory (RFC 4787 classes, as in the simulator), plus one Linux fact: a plain
/// `masquerade` router *answers* unsolicited packets itself (ICMP port unreachable), which
/// creates a conntrack entry for the peer's probe; its host's own probe to that peer then
/// clashes with the entry and is given another port. Two such routers poison each other
/// whichever probe arrives first, unless the probes cross in flight, which needs more
/// one-way delay than adjacent namespaces have. Home routers drop such packets instead
/// (`PortRestricted`), and then punching works.
fn expect_direct(a: Site, b: Site) -> bool {
    NatKind::direct_possible(theory(a), theory(b))
        && !(a == Site::Masquerade && b == Site::Masquerade)
}

fn path_of(lab: &Lab, ns: &str) -> Option<(String, String)> {
    let v = lab.peers(ns)?;
    let p = v["peers"].as_array()?.first()?.clone();
    Some((
        p["path"].as_str()?.to_string(),
        p["ip"].as_str()?.to_string(),
    ))
}

/// Runs one pair; returns (path, seconds until both edges had the expected path).
fn pair(a: Site, b: Site) -> (String, f64) {
    let mut lab = Lab::bare();
    let na = lab.add_site(1, a);
    let nb = lab.add_site(2, b);
    lab.start_supernode();
    let start = Instant::now();
    lab.start_edge(&na, "a", &[]);
    lab.start_edge(&nb, "b", &[]);
    let want = if expect_direct(a, b) {
        "direct"
    } else {
        "relayed"
    };
    let settled = wait_until(Duration::from_secs(25), || {
        [&na, &nb]
            .iter()
            .all(|ns| path_of(&lab, ns).is_some_and(|(p, _)| p == want))
    });
    let took = start.elapsed().as_secs_f64();
    let seen = (path_of(&lab, &na), path_of(&lab, &nb));
    assert!(
        settled,
        "{a:?}/{b:?}: want {want}, got {seen:?}\n--- a\n{}\n--- b\n{}",
        lab.log("a.log"),
        lab.log("b.log")
    );
    // Reachability with real traffic, both ways.
    let ip_b = seen.0.unwrap().1;
    let ip_a = seen.1.unwrap().1;
    for (ns, ip) in [(&na, &ip_b), (&nb, &ip_a)] {
        let o = support::sh(&[
            "ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", ip,
        ]);
        assert!(o.status.success(), "{a:?}/{b:?}: ping {ip} failed");
    }
    (want.to_string(), took)
}

#[test]
fn every_pair_of_router_kinds_connects_direct_or_relayed_as_nat_theory_allows() {
    assert!(
        n2n_common::config::is_root(),
        "needs root (namespaces, nftables); CI runs as root"
    );
    let mut table = Vec::new();
    for (i, a) in KINDS.iter().enumerate() {
        for b in &KINDS[i..] {
            let (path, secs) = pair(*a, *b);
            table.push(format!("| {a:?} | {b:?} | {path} | {secs:.1} s |"));
        }
    }
    println!("| router A | router B | path | time to connect |\n|---|---|---|---|");
    for row in table {
        println!("{row}");
    }
}

#[test]
fn two_edges_behind_the_same_nat_use_the_lan_path() {
    assert!(n2n_common::config::is_root(), "needs root");
    let mut lab = Lab::bare();
    let host_a = lab.add_site(1, Site::PortRestricted);
    // A second host on the same router's LAN.
    let r = lab.ns("r1");
    let host_b = lab.ns("h1b");
    support::ok(&["ip", "netns", "add", &host_b]);
    lab.extra.push("h1b".into());
    support::ok(&["ip", "-n", &host_b, "link", "set", "lo", "up"]);
    support::ok(&["ip", "-n", &r, "link", "add", "br1", "type", "bridge"]);
    support::ok(&["ip", "-n", &r, "link", "set", "br1", "up"]);
    // Move the router's LAN address onto a bridge that both hosts hang off.
    support::ok(&["ip", "-n", &r, "addr", "del", "10.1.0.1/24", "dev", "lan0"]);
    support::ok(&["ip", "-n", &r, "link", "set", "lan0", "master", "br1"]);
    support::ok(&["ip", "-n", &r, "addr", "add", "10.1.0.1/24", "dev", "br1"]);
    support::ok(&[
        "ip", "link", "add", "lan1", "netns", &r, "type", "veth", "peer", "name", "eth0", "netns",
        &host_b,
    ]);
    support::ok(&["ip", "-n", &r, "link", "set", "lan1", "master", "br1", "up"]);
    support::ok(&[
        "ip",
        "-n",
        &host_b,
        "addr",
        "add",
        "10.1.0.3/24",
        "dev",
        "eth0",
    ]);
    support::ok(&["ip", "-n", &host_b, "link", "set", "eth0", "up"]);
    support::ok(&[
        "ip", "-n", &host_b, "route", "add", "default", "via", "10.1.0.1",
    ]);
    lab.start_supernode();
    lab.start_edge(&host_a, "a", &[]);
    lab.start_edge(&host_b, "b", &[]);
    let lan = wait_until(Duration::from_secs(25), || {
        [&host_a, &host_b].iter().all(|ns| {
            lab.peers(ns).is_some_and(|v| {
                v["peers"][0]["path"] == "direct" && v["peers"][0]["candidate"] == "lan"
            })
        })
    });
    assert!(
        lan,
        "LAN path: {:?} / {:?}",
        lab.peers(&host_a),
        lab.peers(&host_b)
    );
}
