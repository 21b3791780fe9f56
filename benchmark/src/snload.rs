//! Supernode load: starts the real `supernode` binary, measures its idle RSS, then brings up
//! N edge cores (in this process, each on its own UDP socket and loopback address) spread over
//! M communities, waits until the supernode reports all of them registered, lets heartbeats
//! run, and measures RSS again.

use anyhow::{Context, bail};
use n2n_common::crypto::kdf::{CommunityKeys, KdfParams, edge_mac};
use n2n_common::rng::CoreRng;
use n2n_edge::proto::{Edge, EdgeConfig};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Options of the `sn-load` mode.
#[derive(clap::Args, Debug)]
pub struct Options {
    /// Number of edges.
    #[arg(long, default_value_t = 10_000)]
    edges: usize,
    /// Number of communities the edges are spread over.
    #[arg(long, default_value_t = 1_000)]
    communities: usize,
    /// Seconds of heartbeating after everyone registered.
    #[arg(long, default_value_t = 15)]
    hold: u64,
    /// The supernode binary (default: next to this one).
    #[arg(long)]
    supernode: Option<PathBuf>,
}

fn rss_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

async fn api_get(api: SocketAddr, path: &str) -> anyhow::Result<serde_json::Value> {
    let mut s = tokio::net::TcpStream::connect(api).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).await?;
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok(serde_json::from_str(body)?)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs the mode.
pub async fn run(o: Options) -> anyhow::Result<()> {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    let want = (o.edges as u64 + 1024).max(soft);
    rlimit::setrlimit(rlimit::Resource::NOFILE, want, hard.max(want))
        .context("raise the open-file limit (run as root)")?;
    let exe = match o.supernode.clone() {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("supernode"),
    };
    let state = std::env::temp_dir().join(format!("n2n-snload-{}", std::process::id()));
    let (udp, api) = (free_port()?, free_port()?);
    let sn: SocketAddr = ([127, 0, 0, 1], udp).into();
    let api_addr: SocketAddr = ([127, 0, 0, 1], api).into();
    let config = state.join("supernode.yaml");
    std::fs::create_dir_all(&state)?;
    std::fs::write(
        &config,
        "limits:\n  handshakes_per_source: 100000.0\n  max_edges_per_community: 100000\nexpiry: 120s\nudp_buffer_size: 16777216\nlog_level: warn\n",
    )?;
    let mut child = Command::new(&exe)
        .args([
            "-config",
            config.to_str().unwrap_or_default(),
            "-state-dir",
            state.to_str().unwrap_or_default(),
        ])
        .args([
            "-listen",
            &sn.to_string(),
            "-api-listen",
            &api_addr.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("start {}", exe.display()))?;
    let pid = child.id();
    let result = drive(&o, sn, api_addr, pid).await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&state);
    result
}

async fn drive(o: &Options, sn: SocketAddr, api: SocketAddr, pid: u32) -> anyhow::Result<()> {
    let mut up = false;
    for _ in 0..100 {
        if api_get(api, "/status").await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !up {
        bail!("supernode API did not come up");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle, _) = rss_kib(pid)?;
    println!("supernode idle RSS: {:.1} MiB", idle as f64 / 1024.0);

    let keys: Vec<CommunityKeys> = (0..o.communities)
        .map(|c| CommunityKeys::derive(&format!("c{c}"), Some("load"), KdfParams::FAST_INSECURE))
        .collect();
    let registered = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    for i in 0..o.edges {
        let c = i % o.communities;
        let name = format!("c{c}");
        let mut machine = [0u8; 16];
        machine[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let community_keys = keys.get(c).cloned().context("community keys")?;
        let mut cfg = EdgeConfig::new(&name, community_keys, edge_mac(&machine, &name), vec![sn]);
        cfg.key_rotation = None;
        // Spread edges over loopback addresses, as real edges come from many hosts.
        let ip = IpAddr::V4(Ipv4Addr::new(
            127,
            1 + (i / 60000) as u8,
            ((i / 250) % 240) as u8,
            1 + (i % 250) as u8,
        ));
        let socket = tokio::net::UdpSocket::bind((ip, 0))
            .await
            .with_context(|| format!("bind edge {i} on {ip}"))?;
        let reg = registered.clone();
        tokio::spawn(edge_task(
            socket,
            Edge::new(cfg, CoreRng::seeded(i as u64), Instant::now()),
            reg,
        ));
        if i % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let st = api_get(api, "/status").await?;
        let edges = st.get("edges").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
        if edges >= o.edges {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {edges} of {} edges registered in 300 s", o.edges);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let took = start.elapsed();
    println!(
        "{} edges in {} communities registered in {:.1} s ({:.0} registrations/s)",
        o.edges,
        o.communities,
        took.as_secs_f64(),
        o.edges as f64 / took.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(o.hold)).await;
    let st = api_get(api, "/status").await?;
    let (rss, hwm) = rss_kib(pid)?;
    println!(
        "supernode RSS with {} edges heartbeating: {:.1} MiB (peak {:.1} MiB), {:.1} KiB per edge above idle; still registered: {}",
        o.edges,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        (rss.saturating_sub(idle)) as f64 / o.edges as f64,
        st.get("edges").cloned().unwrap_or_default()
    );
    println!(
        "edge-side registrations seen: {}",
        registered.load(Ordering::Relaxed)
    );
    Ok(())
}

async fn edge_task(socket: tokio::net::UdpSocket, mut core: Edge, registered: Arc<AtomicUsize>) {
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
        if !counted && core.is_registered() {
            counted = true;
            registered.fetch_add(1, Ordering::Relaxed);
        }
        while let Some(t) = core.poll_transmit() {
            let _ = socket.send_to(&t.payload, t.dst).await;
        }
    }
}
