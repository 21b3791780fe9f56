//! The edge daemon: the TAP device, the UDP socket, packet workers on the forwarding snapshot,
//! and one control task that owns the core and serves the local API.

pub mod gro;
pub mod hosts;
pub mod logstore;
pub mod machine;
pub mod offload;
pub mod peer_pins;
pub mod portmap;
pub mod seen;
pub mod tap;
pub mod udp;
pub mod workers;

use crate::api::{self, ApiRequest, DaemonInfo};
use crate::config::Resolved;
use crate::proto::{Command, Edge, EdgeConfig, Event};
use anyhow::Context;
use arc_swap::ArcSwap;
use n2n_protocol::crypto::kdf::{self, CommunityKeys, KdfParams};
use n2n_protocol::crypto::signing::Signer;
use n2n_protocol::rng::CoreRng;
use n2n_protocol::types::{Candidate, CandidateKind};
use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use workers::{Shared, ToControl};

fn bind_udp(port: u16, buffer: usize) -> anyhow::Result<UdpSocket> {
    let s = n2n_kit::udp::bind((std::net::Ipv6Addr::UNSPECIFIED, port).into(), buffer)?;
    // The receive worker wakes up twice a second to notice shutdown.
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    Ok(s.into())
}

/// Where the route lookup for this host's global IPv6 address points (documentation prefix:
/// `connect` on a UDP socket sends nothing).
const V6_PROBE: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    9,
);

/// The addresses of this host that peers could reach without the supernode's help: the
/// source address towards the supernode (for peers on the same LAN) and, with `global_v6` on
/// a dual-stack socket, the global IPv6 address (no NAT in the way, only firewalls). Found
/// without sending.
fn lan_candidates(sock: &UdpSocket, supernode: SocketAddr, global_v6: bool) -> Vec<Candidate> {
    let local = sock.local_addr().ok();
    let port = local.map(|a| a.port()).unwrap_or(0);
    let mut probes = vec![supernode];
    if global_v6 && local.is_some_and(|a| a.is_ipv6()) && supernode.is_ipv4() {
        probes.push(V6_PROBE);
    }
    probes
        .into_iter()
        .filter_map(|to| {
            let any: SocketAddr = match to {
                SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
                SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            let p = UdpSocket::bind(any).ok()?;
            p.connect(to).ok()?;
            let ip = p.local_addr().ok()?.ip();
            let usable = !ip.is_unspecified()
                && !ip.is_loopback()
                && !matches!(ip, std::net::IpAddr::V6(v6) if v6.is_unicast_link_local());
            usable.then_some(Candidate {
                kind: CandidateKind::Lan,
                addr: SocketAddr::new(ip, port),
            })
        })
        .collect()
}

/// Runs the edge until `shutdown` resolves; says goodbye to the supernode on the way out.
pub async fn run(r: Resolved, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let s = &r.settings;
    let machine_id = machine::load_or_create(&s.state_dir).with_context(|| {
        format!(
            "cannot read or create the machine id in {}",
            s.state_dir.display()
        )
    })?;
    let mac = kdf::edge_mac(&machine_id, &s.community);
    let identity = machine::identity(&s.state_dir).with_context(|| {
        format!(
            "cannot read or create the identity key in {}",
            s.state_dir.display()
        )
    })?;
    let (community, pass) = (s.community.clone(), s.passphrase.clone());
    // Argon2id takes a moment and a few MiB: off the async threads.
    let keys = tokio::task::spawn_blocking(move || {
        CommunityKeys::derive(
            &community,
            Some(pass.as_str()).filter(|p| !p.is_empty()),
            KdfParams::default(),
        )
    })
    .await?;
    if !keys.has_secret {
        tracing::warn!(community = %s.community, "no passphrase: traffic is encrypted, but anyone who knows the community name can join and read it");
    }
    let tap = tap::create(&s.tap_name, mac.0, s.mtu, s.tap_offload)?;
    let sock = bind_udp(s.local_port, s.udp_buffer_size)?;
    let local = sock.local_addr()?;
    let first_sn = *r.supernodes.first().context("no supernode")?;
    let identity = Signer::from_seed(&identity);
    let mut cfg = EdgeConfig::new(&s.community, keys, mac, identity, r.supernodes.clone());
    cfg.desc = s.edge_id.clone();
    // Orders our announcements across restarts (peers refuse older ones).
    cfg.boot = u32::try_from(unix_now()).unwrap_or(u32::MAX);
    cfg.pinned = r.pinned;
    if cfg.pinned.is_none() {
        cfg.seen = seen::load(&s.state_dir)?;
    }
    let pins_file = peer_pins::file(&s.state_dir, &s.community, cfg.keys.verifier());
    cfg.pins = peer_pins::load(&pins_file, unix_now())?;
    cfg.requested_ip = s.static_ip;
    cfg.compress = s.compress;
    cfg.max_heartbeat = s.heartbeat;
    // The global IPv6 address goes only to members who know the passphrase (in an open
    // community anyone could learn it).
    let global_v6 = !s.passphrase.is_empty();
    let mut lan = lan_candidates(&sock, first_sn, global_v6);
    let mut mapped_now: Option<SocketAddr> = None;
    cfg.candidates = lan.clone();
    let seed = machine::random_seed()?;
    let started = Instant::now();
    let mut core = Edge::new(cfg, CoreRng::from_seed(seed), started);
    tracing::info!(tap = %s.tap_name, offload = tap.offload(), %mac, udp = %local, community = %s.community, supernode = %first_sn, "edge started");

    let shared = Arc::new(Shared {
        snapshot: ArcSwap::from(core.forwarding(started)),
        stop: Default::default(),
    });
    let (to_control, mut from_workers) = mpsc::channel::<ToControl>(8192);
    {
        let (t, so, sh) = (tap.clone(), sock.try_clone()?, shared.clone());
        std::thread::Builder::new()
            .name("tap-to-udp".into())
            .spawn(move || workers::tap_to_udp(t, so, sh))?;
        let (t, so, sh) = (tap.clone(), sock.try_clone()?, shared.clone());
        std::thread::Builder::new()
            .name("udp-to-tap".into())
            .spawn(move || workers::udp_to_tap(t, so, sh, to_control))?;
    }

    let mut info = DaemonInfo {
        community: s.community.clone(),
        tap: s.tap_name.clone(),
        local,
        started,
        fingerprint: None,
    };
    let (api_tx, mut api_rx) = mpsc::channel::<ApiRequest>(64);
    let api_server = match r.api {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot bind the API on {addr}"))?;
            tracing::info!(api = %listener.local_addr()?, "local API listening (peer graph at /peers)");
            Some(n2n_kit::api::Server::spawn(listener, api::router(api_tx)))
        }
        None => None,
    };

    let (map_tx, mut map_rx) = mpsc::channel::<Option<SocketAddr>>(4);
    let (stop_map, map_stopped) = tokio::sync::oneshot::channel::<()>();
    let lan_ip = lan.first().and_then(|c| match c.addr.ip() {
        std::net::IpAddr::V4(v4) => Some(v4),
        std::net::IpAddr::V6(_) => None,
    });
    let map_task = match (s.port_mapping, lan_ip) {
        (true, Some(ip)) => Some(tokio::spawn(portmap::maintain(
            ip,
            local.port(),
            map_tx,
            map_stopped,
        ))),
        _ => None,
    };

    // Supernode names are resolved again every minute (n2n-go resolved once, at start), so
    // a supernode that moves to a new address is followed.
    let names = s.supernode.clone();
    let (resolved_tx, mut resolved_rx) = mpsc::channel::<Vec<SocketAddr>>(1);
    let mut reresolve = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(60),
        Duration::from_secs(60),
    );

    let mut hosts = (!s.hosts_file.is_empty())
        .then(|| hosts::HostsFile::new(std::path::Path::new(&s.hosts_file), &s.community));
    let mut hosts_failed = false;
    let mut published = shared.snapshot.load_full();
    tokio::pin!(shutdown);
    loop {
        let deadline = core
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            // Timers and the API before the workers' queue: what strangers can put in that
            // queue (datagrams forged from the supernode's address) must not starve them.
            biased;
            _ = &mut shutdown => break,
            _ = tokio::time::sleep_until(deadline.into()) => core.handle_timeout(Instant::now()),
            Some((q, reply)) = api_rx.recv() => {
                let _ = reply.send(api::answer(&q, &core, &info, Instant::now()));
            }
            Some(msg) = from_workers.recv() => {
                let now = Instant::now();
                match msg {
                    ToControl::Supernode(from, bytes) => core.handle_control(now, from, &bytes),
                    ToControl::PeerControl { peer, from, msg } => core.handle_peer_control(now, peer, from, msg),
                    ToControl::Handshake { peer, from, packet } => core.handle_handshake(now, peer, from, &packet),
                    ToControl::UnknownPeer => core.handle_unknown_peer(now),
                    ToControl::Note(n) => core.handle_note(now, n),
                }
            }
            _ = reresolve.tick() => {
                // Addresses change (DHCP, temporary IPv6 addresses): advertise the current ones.
                if let Some(sn) = core.supernode() {
                    let now_lan = lan_candidates(&sock, sn, global_v6);
                    if now_lan != lan {
                        tracing::info!(?now_lan, "local addresses changed");
                        lan = now_lan;
                        let mut c = lan.clone();
                        c.extend(mapped_now.map(|addr| Candidate { kind: CandidateKind::Mapped, addr }));
                        core.handle_command(Instant::now(), Command::SetCandidates(c));
                    }
                }
                let (names, tx) = (names.clone(), resolved_tx.clone());
                tokio::task::spawn_blocking(move || match crate::config::resolve_supernodes(&names) {
                    Ok(addrs) => {
                        let _ = tx.try_send(addrs);
                    }
                    Err(e) => tracing::warn!("{e}"),
                });
            }
            Some(addrs) = resolved_rx.recv() => {
                if addrs != core.config().supernodes {
                    tracing::info!(?addrs, "supernode addresses changed");
                }
                core.handle_command(Instant::now(), Command::SetSupernodes(addrs));
            }
            Some(mapped) = map_rx.recv() => {
                mapped_now = mapped;
                let mut c = lan.clone();
                c.extend(mapped.map(|addr| Candidate { kind: CandidateKind::Mapped, addr }));
                core.handle_command(Instant::now(), Command::SetCandidates(c));
            }
        }
        // Publish first: a handshake reply about to go out must find its session in the
        // workers' snapshot when the peer's first packet under it comes back.
        let snap = core.forwarding(Instant::now());
        if !Arc::ptr_eq(&snap, &published) {
            shared.snapshot.store(snap.clone());
            published = snap;
        }
        let peers_changed = drain(&mut core, &tap, &sock, &mut info, &s.state_dir);
        if let (true, Some(h)) = (peers_changed, hosts.as_mut()) {
            match h.update(names_of(&core)) {
                Ok(()) => hosts_failed = false,
                Err(e) if !hosts_failed => {
                    hosts_failed = true;
                    tracing::warn!(error = %e, path = %s.hosts_file, "cannot write peer names to the hosts file");
                }
                Err(_) => {}
            }
        }
    }
    tracing::info!("shutting down: leaving the community");
    if let Some(t) = map_task {
        let _ = stop_map.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    core.handle_command(Instant::now(), Command::Shutdown);
    drain(&mut core, &tap, &sock, &mut info, &s.state_dir);
    save_pins(&core, &s.state_dir);
    if let Some(Err(e)) = hosts.as_mut().map(|h| h.remove()) {
        tracing::warn!(error = %e, path = %s.hosts_file, "cannot remove peer names from the hosts file");
    }
    shared.stop.store(true, Ordering::Relaxed);
    // Closing the query channel ends the live (SSE) streams, so graceful shutdown can
    // finish; a client that still hangs on is cut off after a second.
    drop(api_rx);
    if let Some(server) = api_server {
        server.stop().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Wall-clock seconds.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Saves the peer pins for the next process; a failure is logged (they hold until we stop).
fn save_pins(core: &Edge, state_dir: &std::path::Path) {
    let cfg = core.config();
    let path = peer_pins::file(state_dir, &cfg.community, cfg.keys.verifier());
    let pins = core.pinned_peers(Instant::now());
    if let Err(e) = peer_pins::save(&path, &cfg.community, &pins, unix_now()) {
        tracing::error!(error = %e, file = %path.display(), "cannot save the peer pins; they hold until the edge stops");
    }
}

/// This edge and its peers as (address, description), for the hosts file.
fn names_of(core: &Edge) -> Vec<(std::net::Ipv4Addr, String)> {
    let me = core
        .address()
        .map(|(ip, _)| (ip, core.config().desc.clone()));
    me.into_iter()
        .chain(
            core.peers()
                .values()
                .map(|p| (p.info.ip, p.info.desc.clone())),
        )
        .collect()
}

/// Acts on the core's outputs; true when the set of members (or our address) changed.
fn drain(
    core: &mut Edge,
    tap: &tap::Tap,
    sock: &UdpSocket,
    info: &mut DaemonInfo,
    state_dir: &std::path::Path,
) -> bool {
    let mut members_changed = false;
    while let Some(ev) = core.poll_event() {
        members_changed |= matches!(
            ev,
            Event::Registered { .. } | Event::PeerAdded { .. } | Event::PeerRemoved { .. }
        );
        match &ev {
            Event::Registered {
                edge_id,
                ip,
                prefix,
                supernode,
            } => {
                tracing::info!(edge_id, %ip, prefix, %supernode, "registered");
                if let Err(e) = tap.set_address(*ip, *prefix) {
                    tracing::error!("{e:#}");
                }
            }
            Event::RegistrationRefused { reason } => {
                tracing::error!(%reason, "the supernode refused us; retrying in 30 s")
            }
            Event::SupernodeIdentity { fingerprint } => {
                if info.fingerprint != Some(*fingerprint) {
                    tracing::info!(%fingerprint, "supernode identity verified");
                }
                info.fingerprint = Some(*fingerprint);
            }
            Event::SupernodeFirstSeen {
                supernode,
                fingerprint,
            } => {
                tracing::info!(%supernode, %fingerprint, "first contact: this supernode identity is trusted from now on (`edge trust-supernode` forgets it)");
                if let Err(e) = seen::save(state_dir, &core.config().seen) {
                    tracing::error!(error = %e, "cannot store the supernode identity; it is trusted until the edge stops");
                }
            }
            Event::SupernodeRejected { reason } => tracing::error!(
                %reason,
                "supernode rejected; if its identity really changed, run `edge trust-supernode` (or set supernode_fingerprint)"
            ),
            Event::PeerRefused { reason } => tracing::warn!(
                %reason,
                "peer announcement refused (a pin lapses 10 minutes after its member leaves)"
            ),
            Event::PinsChanged => save_pins(core, state_dir),
            Event::SupernodeLost => tracing::warn!(
                "supernode stopped answering; direct paths keep working, re-registering"
            ),
            Event::PeerAdded { id } => tracing::info!(peer = id, "peer joined"),
            Event::PeerRemoved { id } => tracing::info!(peer = id, "peer left"),
            Event::PathChanged { id, path } => tracing::info!(peer = id, ?path, "path changed"),
        }
    }
    while let Some(f) = core.poll_frame() {
        let _ = tap.write(&f);
    }
    while let Some(t) = core.poll_transmit() {
        if let Err(e) = sock.send_to(&t.payload, t.dst) {
            tracing::debug!(error = %e, dst = %t.dst, "send");
        }
    }
    members_changed
}
