//! The control task: spawns the packet workers and the API, then owns the core and serves,
//! in this order of priority, shutdown, the core's timer, the API, what the workers pass on,
//! address changes and the port mapping. After every input it publishes the forwarding
//! snapshot and acts on the core's outputs.

use super::events::{drain, names_of, save_pins};
use super::start::Started;
use super::workers::{self, Shared, ToControl};
use super::{hosts, portmap, tap};
use crate::api::{self, ApiRequest, DaemonInfo};
use crate::config::Resolved;
use crate::proto::forward::Forwarding;
use crate::proto::{Command, Edge};
use anyhow::Context;
use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Serves the started edge until `shutdown` resolves; says goodbye to the supernode on the
/// way out.
pub async fn serve(
    st: Started,
    r: &Resolved,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let Started {
        mut core,
        tap,
        sock,
        group,
        local,
        mut addresses,
        started,
    } = st;
    let s = &r.settings;
    let shared = Arc::new(Shared::new(core.forwarding(started), tap.queues()));
    let mut from_workers = spawn_workers(&tap, group, &shared)?;
    let mut info = DaemonInfo {
        community: s.community.clone(),
        tap: s.tap_name.clone(),
        local,
        started,
        fingerprint: None,
        queues: tap.counters(),
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
    let mut mapping = PortMapping::start(s.port_mapping, addresses.lan_ipv4(), local.port());
    let mut resolver = Resolver::new(s.supernode.clone());
    let mut hosts = HostNames::new(&s.hosts_file, &s.community);
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
            Some(msg) = from_workers.recv() => from_worker(&mut core, msg),
            _ = resolver.every.tick() => {
                if let Some(c) = core.supernode().and_then(|sn| addresses.refresh(&sock, sn)) {
                    core.handle_command(Instant::now(), Command::SetCandidates(c));
                }
                resolver.resolve();
            }
            Some(addrs) = resolver.resolved.recv() => {
                if addrs != core.config().supernodes {
                    tracing::info!(?addrs, "supernode addresses changed");
                }
                core.handle_command(Instant::now(), Command::SetSupernodes(addrs));
            }
            Some(mapped) = mapping.changes.recv() => {
                let c = addresses.set_mapped(mapped);
                core.handle_command(Instant::now(), Command::SetCandidates(c));
            }
        }
        // Publish first: a handshake reply about to go out must find its session in the
        // workers' snapshot when the peer's first packet under it comes back.
        publish(&mut core, &shared, &mut published);
        if drain(&mut core, &tap, &sock, &mut info, &s.state_dir) {
            hosts.update(&core);
        }
    }
    tracing::info!("shutting down: leaving the community");
    mapping.stop().await;
    core.handle_command(Instant::now(), Command::Shutdown);
    drain(&mut core, &tap, &sock, &mut info, &s.state_dir);
    save_pins(&core, &s.state_dir);
    hosts.remove();
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

/// Starts a packet worker per TAP queue, each on its own socket of `group`; returns what
/// they pass to the control task.
fn spawn_workers(
    tap: &Arc<tap::Tap>,
    group: Vec<UdpSocket>,
    shared: &Arc<Shared>,
) -> anyhow::Result<mpsc::Receiver<ToControl>> {
    let (to_control, from_workers) = mpsc::channel::<ToControl>(8192);
    for (queue, sock) in group.into_iter().enumerate().take(tap.queues()) {
        let inbound = workers::Inbound::new(sock.try_clone()?, to_control.clone());
        let outbound = workers::Outbound::new(sock);
        let (t, sh) = (tap.clone(), shared.clone());
        std::thread::Builder::new()
            .name(format!("packets-{queue}"))
            .spawn(move || workers::worker(t, queue, inbound, outbound, sh))?;
    }
    Ok(from_workers)
}

/// Hands the core what a worker passed on.
fn from_worker(core: &mut Edge, msg: ToControl) {
    let now = Instant::now();
    match msg {
        ToControl::Supernode(from, bytes) => core.handle_control(now, from, &bytes),
        ToControl::PeerControl { peer, from, msg } => {
            core.handle_peer_control(now, peer, from, msg)
        }
        ToControl::Handshake { peer, from, packet } => {
            core.handle_handshake(now, peer, from, &packet)
        }
        ToControl::UnknownPeer => core.handle_unknown_peer(now),
        ToControl::Note(n) => core.handle_note(now, n),
    }
}

/// Gives the workers the core's snapshot if it changed.
fn publish(core: &mut Edge, shared: &Shared, published: &mut Arc<Forwarding>) {
    let snap = core.forwarding(Instant::now());
    if !Arc::ptr_eq(&snap, published) {
        shared.snapshot.store(snap.clone());
        *published = snap;
    }
}

/// Supernode names resolved again every minute (n2n-go resolved once, at start), so a
/// supernode that moves to a new address is followed.
struct Resolver {
    names: Vec<String>,
    every: tokio::time::Interval,
    tx: mpsc::Sender<Vec<SocketAddr>>,
    resolved: mpsc::Receiver<Vec<SocketAddr>>,
}

impl Resolver {
    fn new(names: Vec<String>) -> Self {
        let (tx, resolved) = mpsc::channel(1);
        let every = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(60),
            Duration::from_secs(60),
        );
        Self {
            names,
            every,
            tx,
            resolved,
        }
    }

    /// Resolves the names off the async threads; the addresses arrive on `resolved`.
    fn resolve(&self) {
        let (names, tx) = (self.names.clone(), self.tx.clone());
        tokio::task::spawn_blocking(move || match crate::config::resolve_supernodes(&names) {
            Ok(addrs) => {
                let _ = tx.try_send(addrs);
            }
            Err(e) => tracing::warn!("{e}"),
        });
    }
}

/// The gateway port mapping (UPnP/NAT-PMP), kept alive by its own task.
struct PortMapping {
    changes: mpsc::Receiver<Option<SocketAddr>>,
    stop: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

impl PortMapping {
    fn start(enabled: bool, lan_ip: Option<std::net::Ipv4Addr>, port: u16) -> Self {
        let (tx, changes) = mpsc::channel(4);
        let stop = match (enabled, lan_ip) {
            (true, Some(ip)) => {
                let (stop, stopped) = oneshot::channel();
                let task = tokio::spawn(portmap::maintain(ip, port, tx, stopped));
                Some((stop, task))
            }
            _ => None,
        };
        Self { changes, stop }
    }

    /// Removes the mapping (waiting up to 5 s for the gateway).
    async fn stop(self) {
        if let Some((stop, task)) = self.stop {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// The peers' names in the hosts file (`hosts_file`), if configured.
struct HostNames {
    file: Option<hosts::HostsFile>,
    path: String,
    failed: bool,
}

impl HostNames {
    fn new(path: &str, community: &str) -> Self {
        Self {
            file: (!path.is_empty())
                .then(|| hosts::HostsFile::new(std::path::Path::new(path), community)),
            path: path.to_string(),
            failed: false,
        }
    }

    /// Writes the current names; a failure is logged once until it works again.
    fn update(&mut self, core: &Edge) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        match file.update(names_of(core)) {
            Ok(()) => self.failed = false,
            Err(e) if !self.failed => {
                self.failed = true;
                tracing::warn!(error = %e, path = %self.path, "cannot write peer names to the hosts file");
            }
            Err(_) => {}
        }
    }

    /// Removes our block from the file.
    fn remove(&mut self) {
        if let Some(Err(e)) = self.file.as_mut().map(|h| h.remove()) {
            tracing::warn!(error = %e, path = %self.path, "cannot remove peer names from the hosts file");
        }
    }
}
