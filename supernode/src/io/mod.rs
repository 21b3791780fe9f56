//! The supernode's event loop: one task owns the core and selects over shutdown, the core's
//! timer, API queries, reloads and the UDP socket (in that order, so a flood of datagrams
//! cannot starve the others), draining the core's outputs after every input. Lease writes
//! run in their own task: the control replies that announce a lease wait for its write,
//! relayed data never does.

pub mod identity;
mod log;
pub mod store;
pub mod token;
mod udp;
mod writer;

use crate::api::{self, ApiRequest};
use crate::config::Settings;
use crate::proto::Supernode;
use anyhow::Context;
use n2n_protocol::rng::CoreRng;
use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use store::Store;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use writer::LeaseWriter;

/// Datagrams handled per wake-up before outputs are flushed (bounds store batching latency).
const BATCH: usize = 256;

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
    let (mut core, store, started) = open(&settings, socket.local_addr()?).await?;
    let mut info = api::DaemonInfo {
        listen: socket.local_addr()?,
        started,
        store_errors: 0,
    };
    let dir = &settings.state_dir;
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
    let mut writer = LeaseWriter::spawn(store.clone());
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
                settings = reload(&mut core, new, &settings);
            }
            Some(w) = writer.written.recv() => {
                if writer.done(w, &mut udp).await {
                    info.store_errors += 1;
                }
            }
            r = udp.readable() => {
                if r.is_ok() {
                    let now = Instant::now();
                    udp.drain(BATCH, |from, d| core.handle_datagram(now, from, d));
                }
            }
        }
        while let Some(e) = core.poll_event() {
            log::log_event(&e, &mut open_logged);
            events.push(e);
        }
        pending.extend(std::iter::from_fn(|| core.poll_transmit()));
        info.store_errors += writer.submit(&mut events, &mut pending, &mut udp).await;
    }
    writer.finish(&mut udp).await;
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

/// Opens the state directory (lease database, identity key) and builds the core; returns
/// them with the core's start time.
async fn open(
    settings: &Settings,
    listen: SocketAddr,
) -> anyhow::Result<(Supernode, Store, Instant)> {
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
    let started = Instant::now();
    let core = Supernode::new(settings.core_config(), id, state, rng, started, unix_now());
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
    Ok((core, store, started))
}

/// Applies reloaded settings (SIGHUP) where they can change live; returns what now runs.
fn reload(core: &mut Supernode, new: Settings, running: &Settings) -> Settings {
    for key in new.restart_only_changes(running) {
        tracing::warn!(key, "changed in the configuration, takes effect at restart");
    }
    core.reconfigure(new.core_config(), Instant::now());
    tracing::info!(
        communities = new.communities.len(),
        allow_open = new.allow_open,
        "configuration reloaded"
    );
    // What only a restart changes stays as it runs.
    new.keeping_restart_only(running)
}
