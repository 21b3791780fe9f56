//! The supernode's event loop: one task owns the core and selects over shutdown, the core's
//! timer, API queries, reloads and the UDP socket (in that order, so a flood of datagrams
//! cannot starve the others), draining the core's outputs after every input. Lease writes
//! run in their own task: the control replies that announce a lease wait for its write,
//! relayed data never does.

pub mod identity;
pub mod store;
pub mod token;
mod udp;

use crate::api::{self, ApiRequest};
use crate::config::Settings;
use crate::proto::{Event, RemoveReason, Supernode};
use anyhow::Context;
use n2n_protocol::rng::CoreRng;
use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use store::Store;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Datagrams handled per wake-up before outputs are flushed (bounds store batching latency).
const BATCH: usize = 256;

/// First byte of a data datagram (relayed as is, never held behind a lease write).
const DATA_FORM: u8 = (n2n_protocol::wire::VERSION << 4) | 2;

/// A batch of events to store and the replies that wait for it.
type Write = (Vec<Event>, Vec<n2n_protocol::types::Transmit>);
/// The replies of stored batches, how many batches, and how the write went.
type Written = (
    Vec<n2n_protocol::types::Transmit>,
    usize,
    Result<(), String>,
);

/// The lease writer: stores each batch in order, then hands back its replies.
fn spawn_store(
    store: Store,
) -> (
    mpsc::Sender<Write>,
    mpsc::Receiver<Written>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut jobs) = mpsc::channel::<Write>(256);
    let (done, written) = mpsc::channel::<Written>(256);
    let task = tokio::spawn(async move {
        while let Some((mut events, mut held)) = jobs.recv().await {
            // Everything queued meanwhile goes in the same transaction: a slow disk delays
            // replies by one write, not by one write per queued batch.
            let mut batches = 1;
            while let Ok((e, h)) = jobs.try_recv() {
                events.extend(e);
                held.extend(h);
                batches += 1;
            }
            let result = store.apply(&events).await.map_err(|e| format!("{e:#}"));
            if done.send((held, batches, result)).await.is_err() {
                break;
            }
        }
    });
    (tx, written, task)
}

/// Binds the UDP socket with the configured buffer sizes (an unspecified address listens on
/// IPv4 and IPv6 where the host has it).
pub fn bind_udp(addr: SocketAddr, buffer: usize) -> anyhow::Result<UdpSocket> {
    let s = n2n_kit::udp::bind(addr, buffer)?;
    s.set_nonblocking(true)?;
    Ok(UdpSocket::from_std(s.into())?)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs the supernode on `socket` until `shutdown` resolves, then flushes its state. The API
/// listens where the settings say.
pub async fn run(
    socket: UdpSocket,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    reloads: mpsc::Receiver<Settings>,
) -> anyhow::Result<()> {
    let api = match settings.api_addr() {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot bind the API on {addr}"))?,
        ),
        None => None,
    };
    serve(socket, api, settings, shutdown, reloads).await
}

/// Like [`run`], with the API on an already bound listener (or none). Settings sent on
/// `reloads` (SIGHUP) replace the running ones where they can change live.
pub async fn serve(
    socket: UdpSocket,
    api: Option<tokio::net::TcpListener>,
    mut settings: Settings,
    shutdown: impl Future<Output = ()>,
    mut reloads: mpsc::Receiver<Settings>,
) -> anyhow::Result<()> {
    let dir = &settings.state_dir;
    n2n_kit::os::create_private_dir(dir)
        .with_context(|| format!("cannot create state directory {}", dir.display()))?;
    let store = Store::open(&dir.join("supernode.db"))
        .await
        .with_context(|| format!("cannot open the lease database in {}", dir.display()))?;
    let state = store
        .load()
        .await
        .context("cannot read the lease database")?;
    let (n_leases, n_communities) = (state.leases.len(), state.communities.len());
    let mut rng = CoreRng::from_seed(identity::os_seed()?);
    let id = identity::load_or_create(dir, &mut rng)?;
    let listen = socket.local_addr()?;
    let started = Instant::now();
    let mut core = Supernode::new(settings.core_config(), id, state, rng, started, unix_now());
    let reply = core.hello_reply_len();
    if reply > n2n_protocol::wire::plain::HELLO_LEN {
        anyhow::bail!(
            "{}: this identity key makes {reply}-byte hello replies, larger than the {}-byte \
             hello they answer (anyone could use the supernode as an amplifier); use a \
             2048-bit key (move the file away and a new one is made)",
            dir.join(identity::IDENTITY_FILE).display(),
            n2n_protocol::wire::plain::HELLO_LEN
        );
    }
    tracing::info!(
        %listen,
        fingerprint = %core.fingerprint(),
        leases = n_leases,
        communities = n_communities,
        "supernode started; edges can pin this fingerprint with -supernode-fingerprint"
    );
    if settings.allow_open {
        tracing::info!(
            "allow_open: communities without configuration are open to anyone who knows their name"
        );
    }
    let mut info = api::DaemonInfo {
        listen,
        started,
        store_errors: 0,
    };

    let (api_tx, mut api_rx) = mpsc::channel::<ApiRequest>(64);
    let api_server = match api {
        Some(listener) => {
            tracing::info!(api = %listener.local_addr()?, "HTTP API listening");
            let app = api::router(api_tx, token::load_or_create(dir)?);
            Some(n2n_kit::api::Server::spawn(listener, app))
        }
        None => {
            drop(api_tx);
            None
        }
    };

    let mut udp = udp::BatchSocket::new(socket)?;
    let (writes, mut written, store_task) = spawn_store(store.clone());
    // Control replies queued behind lease writes (in order); relayed data skips the queue.
    let mut writes_in_flight = 0usize;
    let mut pending = Vec::new();
    let mut events = Vec::new();
    let mut open_logged = BTreeSet::new();
    tokio::pin!(shutdown);
    loop {
        let deadline = core
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            _ = tokio::time::sleep_until(deadline.into()) => core.handle_timeout(Instant::now()),
            Some((q, reply)) = api_rx.recv() => {
                let _ = reply.send(api::answer(&q, &mut core, &info, Instant::now()));
            }
            Some(new) = reloads.recv() => {
                for key in new.restart_only_changes(&settings) {
                    tracing::warn!(key, "changed in the configuration, takes effect at restart");
                }
                core.reconfigure(new.core_config(), Instant::now());
                tracing::info!(communities = new.communities.len(), allow_open = new.allow_open, "configuration reloaded");
                // What only a restart changes stays as it runs.
                settings = new.keeping_restart_only(&settings);
            }
            Some((held, batches, result)) = written.recv() => {
                writes_in_flight = writes_in_flight.saturating_sub(batches);
                if let Err(e) = result {
                    info.store_errors += 1;
                    tracing::error!(error = %e, "could not store leases (disk full?); serving on, leases kept in memory");
                }
                udp.send_all(&held).await;
            }
            r = udp.readable() => {
                if r.is_ok() {
                    let now = Instant::now();
                    udp.drain(BATCH, |from, d| core.handle_datagram(now, from, d));
                }
            }
        }
        while let Some(e) = core.poll_event() {
            log_event(&e, &mut open_logged);
            events.push(e);
        }
        pending.extend(std::iter::from_fn(|| core.poll_transmit()));
        let persist = events.iter().any(Store::persists);
        if persist || writes_in_flight > 0 {
            // Leases are stored before the replies that announce them go out, and later
            // replies keep their order behind them; relayed data goes now.
            let (data, control): (Vec<_>, Vec<_>) = pending
                .drain(..)
                .partition(|t| t.payload.first() == Some(&DATA_FORM));
            udp.send_all(&data).await;
            if persist || !control.is_empty() {
                match writes.try_send((std::mem::take(&mut events), control)) {
                    Ok(()) => writes_in_flight += 1,
                    // Never block the loop on the disk: past the queue's depth (or without a
                    // writer), replies go now and the leases live in memory only.
                    Err(e) => {
                        let closed = matches!(e, mpsc::error::TrySendError::Closed(_));
                        let (_, control) = e.into_inner();
                        info.store_errors += 1;
                        tracing::error!(
                            closed,
                            "lease writes are backed up; serving on, leases kept in memory"
                        );
                        if closed {
                            writes_in_flight = 0;
                        }
                        udp.send_all(&control).await;
                    }
                }
            }
        } else if !pending.is_empty() {
            udp.send_all(&pending).await;
            pending.clear();
        }
        events.clear();
    }
    drop(writes);
    // The last writes land (and their replies go) before the database closes.
    while let Some((held, _, result)) = written.recv().await {
        if let Err(e) = result {
            tracing::error!(error = %e, "could not store the last leases");
        }
        udp.send_all(&held).await;
    }
    let _ = store_task.await;
    tracing::info!("shutting down: flushing state");
    // Closing the query channel ends the live (SSE) streams, so graceful shutdown can
    // finish; a client that still hangs on is cut off after a second.
    drop(api_rx);
    if let Some(server) = api_server {
        server.stop().await;
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

fn log_event(e: &Event, open_logged: &mut BTreeSet<String>) {
    match e {
        Event::EdgeRegistered {
            id,
            community,
            ip,
            endpoint,
            open,
        } => {
            tracing::info!(id, %community, %ip, %endpoint, "edge registered");
            if *open && open_logged.insert(community.clone()) {
                tracing::warn!(%community, "community is open: no admission secret configured, anyone who knows its name can join");
            }
        }
        Event::EdgeRemoved {
            id,
            community,
            reason,
        } => {
            let why = match reason {
                RemoveReason::Unregistered => "left",
                RemoveReason::Expired => "expired",
                RemoveReason::Readmit => "must register again (admission changed)",
            };
            tracing::info!(id, %community, why, "edge removed");
        }
        Event::OutdatedPeer { from, version } => {
            tracing::warn!(%from, version, "an edge speaks protocol v{version} (n2n-rs before 0.2): this supernode speaks v{} only; upgrade the edge", n2n_protocol::wire::VERSION)
        }
        Event::RegistrationRefused {
            community,
            from,
            reason,
        } => {
            tracing::warn!(%community, %from, %reason, "registration refused");
        }
        Event::CommunityCreated(c) => {
            tracing::info!(community = %c.name, subnet = %format!("{}/{}", c.subnet, c.prefix), "community created")
        }
        Event::CommunityRemoved { name, subnet } => {
            tracing::info!(community = %name, %subnet, "open community unused for open_community_idle: removed, its subnet is free again")
        }
        Event::CommunityRenamed { from, to } => {
            tracing::info!(%from, to = %to.name, "community moved with its subnet and leases (verifiers configured, or upgraded from protocol v1)")
        }
        Event::LeaseGranted(_) | Event::LeaseReclaimed { .. } => {}
    }
}
