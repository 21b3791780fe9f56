//! Supernode load: starts the real `supernode` binary, measures its idle RSS, then brings up
//! N edge cores (in this process, each with its own loopback address, in fleets that share a
//! socket) spread over M communities, waits until the supernode reports all of them
//! registered, lets heartbeats run, and measures RSS again. Also relay throughput.

use crate::lab::{peak_rss_kib, rss_kib};
use anyhow::{Context, bail};
use n2n_edge::proto::{Edge, EdgeConfig};
use n2n_protocol::crypto::kdf::{CommunityKeys, KdfParams, edge_mac};
use n2n_protocol::crypto::signing::Signer;
use n2n_protocol::rng::CoreRng;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Options of the `sn-load` mode.
#[derive(clap::Args, Debug)]
pub struct Options {
    /// Number of edges.
    #[arg(long, default_value_t = 10_000)]
    pub edges: usize,
    /// Number of communities the edges are spread over.
    #[arg(long, default_value_t = 1_000)]
    pub communities: usize,
    /// Seconds of heartbeating after everyone registered.
    #[arg(long, default_value_t = 15)]
    pub hold: u64,
    /// The supernode binary (default: next to this one).
    #[arg(long)]
    pub supernode: Option<PathBuf>,
}

async fn api_get(api: SocketAddr, path: &str) -> anyhow::Result<serde_json::Value> {
    let r = n2n_kit::http::Request::get(path).send_async(api).await?;
    Ok(r.json()?)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A `supernode` process on loopback, stopped and its state removed on drop.
pub struct SnProcess {
    child: std::process::Child,
    state: PathBuf,
    /// Its UDP address.
    pub addr: SocketAddr,
    /// Its API address.
    pub api: SocketAddr,
}

impl SnProcess {
    /// Starts the supernode binary next to this one (or `exe`) with `limits` YAML lines.
    pub async fn start(exe: Option<PathBuf>, limits: &str) -> anyhow::Result<Self> {
        let exe = match exe {
            Some(p) => p,
            None => std::env::current_exe()?.with_file_name("supernode"),
        };
        let state = std::env::temp_dir().join(format!(
            "n2n-bench-sn-{}-{}",
            std::process::id(),
            free_port()?
        ));
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let api: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let config = state.join("supernode.yaml");
        std::fs::create_dir_all(&state)?;
        std::fs::write(
            &config,
            format!("limits:\n{limits}expiry: 120s\nudp_buffer_size: 16777216\nlog_level: error\n"),
        )?;
        let child = Command::new(&exe)
            .args(["-config", &config.display().to_string()])
            .args(["-state-dir", &state.display().to_string()])
            .args([
                "-listen",
                &addr.to_string(),
                "-api-listen",
                &api.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("start {}", exe.display()))?;
        let sn = Self {
            child,
            state,
            addr,
            api,
        };
        for _ in 0..100 {
            if api_get(api, "/status").await.is_ok() {
                return Ok(sn);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("supernode API did not come up")
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GET on its API.
    pub async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        api_get(self.api, path).await
    }
}

impl Drop for SnProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// What one load run measured.
pub struct LoadResult {
    /// RSS before any edge, KiB.
    pub idle_kib: u64,
    /// RSS with every edge registered and heartbeating, KiB.
    pub loaded_kib: u64,
    /// Peak RSS, KiB.
    pub peak_kib: u64,
    /// Registrations per second.
    pub reg_per_sec: f64,
}

/// Runs the mode.
pub async fn run(o: Options) -> anyhow::Result<()> {
    let r = load(&o).await?;
    println!(
        "supernode RSS: idle {:.1} MiB, with {} edges heartbeating {:.1} MiB (peak {:.1} MiB), {:.2} KiB per edge; {:.0} registrations/s",
        r.idle_kib as f64 / 1024.0,
        o.edges,
        r.loaded_kib as f64 / 1024.0,
        r.peak_kib as f64 / 1024.0,
        r.loaded_kib.saturating_sub(r.idle_kib) as f64 / o.edges as f64,
        r.reg_per_sec
    );
    Ok(())
}

/// Registers `o.edges` edges against a fresh supernode and measures it.
pub async fn load(o: &Options) -> anyhow::Result<LoadResult> {
    let sn = SnProcess::start(
        o.supernode.clone(),
        "  handshakes_per_source: 100000.0\n  max_edges_per_community: 100000\n",
    )
    .await?;
    drive(o, &sn).await
}

async fn drive(o: &Options, sn: &SnProcess) -> anyhow::Result<LoadResult> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_kib = rss_kib(sn.pid()).context("supernode RSS")?;
    let keys = Arc::new(crate::fleet::community_keys(o.communities));
    // One fleet per core: the edges' side of registration is crypto work too.
    let fleets = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let registered = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for f in 0..fleets {
        let (keys, registered, mut stop) = (keys.clone(), registered.clone(), stop_rx.clone());
        let (communities, snaddr) = (o.communities, sn.addr);
        let mine: Vec<usize> = (0..o.edges).filter(|i| i % fleets == f).collect();
        tasks.push(tokio::spawn(async move {
            let mut fleet = crate::fleet::Fleet::new(f * 1_000_000 / fleets)?;
            let mut counted = 0;
            for (n, i) in mine.into_iter().enumerate() {
                let c = i % communities;
                let community_keys = keys.get(c).cloned().context("community keys")?;
                let core = edge_core(&format!("c{c}"), community_keys, i, snaddr, |cfg| {
                    // Keepalives between the simulated edges never reach the supernode; slower
                    // ones leave the generator's CPU to registrations and heartbeats.
                    cfg.keepalive = Duration::from_secs(25);
                    cfg.path_timeout = Duration::from_secs(80);
                });
                fleet.add(core).await;
                // Pace the arrivals and serve the replies meanwhile.
                if n % 100 == 99 {
                    fleet
                        .run_until(Instant::now() + Duration::from_millis(5))
                        .await;
                }
            }
            while !*stop.borrow_and_update() {
                fleet
                    .run_until(Instant::now() + Duration::from_millis(100))
                    .await;
                registered.fetch_add(fleet.registered_count - counted, Ordering::Relaxed);
                counted = fleet.registered_count;
            }
            anyhow::Ok(())
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let st = sn.get("/status").await?;
        let edges = st.get("edges").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
        if edges >= o.edges && registered.load(Ordering::Relaxed) >= o.edges {
            break;
        }
        if Instant::now() > deadline || tasks.iter().any(|t| t.is_finished()) {
            let _ = stop_tx.send(true);
            for t in tasks {
                t.await??;
            }
            bail!("only {edges} of {} edges registered", o.edges);
        }
    }
    let reg_per_sec = o.edges as f64 / start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(o.hold)).await;
    let st = sn.get("/status").await?;
    let _ = stop_tx.send(true);
    for t in tasks {
        t.await??;
    }
    let still = st.get("edges").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
    if still < o.edges {
        bail!(
            "only {still} of {} edges still registered after {} s of heartbeats",
            o.edges,
            o.hold
        );
    }
    let (loaded_kib, peak_kib) = (
        rss_kib(sn.pid()).context("supernode RSS")?,
        peak_rss_kib(sn.pid()).context("supernode peak RSS")?,
    );
    Ok(LoadResult {
        idle_kib,
        loaded_kib,
        peak_kib,
        reg_per_sec,
    })
}

fn edge_core(
    community: &str,
    keys: CommunityKeys,
    i: usize,
    sn: SocketAddr,
    tune: impl FnOnce(&mut EdgeConfig),
) -> Edge {
    let mut machine = [0u8; 16];
    machine[..8].copy_from_slice(&(i as u64).to_be_bytes());
    let identity = Signer::from_seed(&[machine, machine].concat().try_into().unwrap_or([1; 32]));
    let mut cfg = EdgeConfig::new(
        community,
        keys,
        edge_mac(&machine, community),
        identity,
        vec![sn],
    );
    cfg.key_rotation = None;
    tune(&mut cfg);
    Edge::new(cfg, CoreRng::seeded(i as u64), Instant::now())
}

/// Relay throughput: `senders` registered edges flood one registered receiver with
/// `size`-byte data packets through the supernode for `secs`; returns (offered, relayed)
/// packets per second as seen by the senders and the receiver, and the supernode's CPU use
/// meanwhile (percent of one core).
pub async fn relay(
    exe: Option<PathBuf>,
    senders: usize,
    size: usize,
    secs: f64,
) -> anyhow::Result<(f64, f64, f64)> {
    let sn = SnProcess::start(
        exe,
        "  handshakes_per_source: 100000.0\n  relay_pps_per_edge: 100000000.0\n",
    )
    .await?;
    let keys = CommunityKeys::derive("relay", Some("load"), KdfParams::FAST_INSECURE);
    let mut edges = Vec::new();
    for i in 0..=senders {
        let socket = tokio::net::UdpSocket::bind((crate::fleet::loopback_for(i), 0)).await?;
        let core = edge_core("relay", keys.clone(), i, sn.addr, |_| {});
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(edge_task(
            socket,
            core,
            Arc::new(AtomicUsize::new(0)),
            Some(tx),
        ));
        let id = tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .context("edge did not register within 10 s")??;
        // The core is done: the raw socket carries the benchmark's packets from here on.
        let socket = task.await?.context("edge socket")?.into_std()?;
        socket.set_nonblocking(false)?;
        edges.push((socket, id));
    }
    let (receiver, dst) = edges.remove(0);
    receiver.set_read_timeout(Some(Duration::from_millis(200)))?;
    // Bursts must not overflow the receiving socket: loss there would be charged to the relay.
    socket2::SockRef::from(&receiver).set_recv_buffer_size(16 << 20)?;
    let snaddr = sn.addr;
    let budget = Duration::from_secs_f64(secs);
    let pid = sn.pid();
    let cpu_before = crate::lab::cpu_seconds(pid).unwrap_or(0.0);
    let started = Instant::now();
    let (offered, relayed) =
        tokio::task::spawn_blocking(move || blast(edges, receiver, dst, snaddr, size, budget))
            .await??;
    let cpu = (crate::lab::cpu_seconds(pid).unwrap_or(0.0) - cpu_before)
        / started.elapsed().as_secs_f64()
        * 100.0;
    Ok((offered, relayed, cpu))
}

fn blast(
    senders: Vec<(std::net::UdpSocket, u32)>,
    receiver: std::net::UdpSocket,
    dst: u32,
    sn: SocketAddr,
    size: usize,
    budget: Duration,
) -> anyhow::Result<(f64, f64)> {
    use n2n_protocol::wire::data::{DataHeader, HEADER_LEN};
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let got = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = {
        let (stop, got) = (stop.clone(), got.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if receiver.recv(&mut buf).is_ok() {
                    got.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let mut packets: Vec<Vec<u8>> = Vec::new();
    for (_, src) in &senders {
        let mut h = [0u8; HEADER_LEN];
        DataHeader {
            flags: 0,
            dst,
            src: *src,
            counter: 1,
        }
        .emit(&mut h);
        let mut p = h.to_vec();
        p.resize(size.max(HEADER_LEN + 16), 0);
        packets.push(p);
    }
    let start = Instant::now();
    let mut sent = 0u64;
    let before = got.load(Ordering::Relaxed);
    'outer: loop {
        for ((socket, _), p) in senders.iter().zip(&packets) {
            if socket.send_to(p, sn).is_ok() {
                sent += 1;
            }
        }
        if sent % 1024 < senders.len() as u64 && start.elapsed() >= budget {
            break 'outer;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // Packets still in flight land within a few milliseconds.
    std::thread::sleep(Duration::from_millis(50));
    let relayed = got.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    let _ = counter.join();
    Ok((sent as f64 / secs, relayed as f64 / secs))
}

/// Drives one edge core. With `done`, stops once registered, reports the edge id and
/// hands the socket back.
async fn edge_task(
    socket: tokio::net::UdpSocket,
    mut core: Edge,
    registered: Arc<AtomicUsize>,
    mut done: Option<tokio::sync::oneshot::Sender<u32>>,
) -> Option<tokio::net::UdpSocket> {
    let mut buf = vec![0u8; 2048];
    let mut counted = false;
    loop {
        let deadline = core
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            r = socket.recv_from(&mut buf) => if let Ok((n, from)) = r {
                core.handle_datagram(Instant::now(), from, buf.get(..n).unwrap_or_default());
            },
            _ = tokio::time::sleep_until(deadline.into()) => core.handle_timeout(Instant::now()),
        }
        while core.poll_event().is_some() {}
        while core.poll_frame().is_some() {}
        while let Some(t) = core.poll_transmit() {
            let _ = socket.send_to(&t.payload, t.dst).await;
        }
        if !counted && core.is_registered() {
            counted = true;
            registered.fetch_add(1, Ordering::Relaxed);
            if let (Some(tx), Some(id)) = (done.take(), core.edge_id()) {
                let _ = tx.send(id);
                return Some(socket);
            }
        }
    }
}
