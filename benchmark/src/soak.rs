//! `benchmark soak`: a hostile soak in the namespace lab. Two well-behaved edges (`a`, `b`)
//! ping each other over their direct path for the whole run while edges on host `c` join,
//! leave, vanish and restart, the supernode restarts halfway, and `c` floods the supernode
//! and edge `b` with junk. Reports both daemons' RSS at start and end, drops by reason and the
//! longest gap between ping replies; fails if a well-behaved daemon died or the gap is longer
//! than `--max-gap`.

use crate::lab::{Host, Lab, rss_kib};
use crate::overlays::{Bins, wait_path};
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Options of `benchmark soak`.
#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// Length of the run, seconds (the soak is 1800; CI runs 120).
    #[arg(long, default_value_t = 1800)]
    pub seconds: u64,
    /// Churning edges on host c (each joins, leaves, vanishes, restarts).
    #[arg(long, default_value_t = 4)]
    pub churn_edges: usize,
    /// Seconds between two churn actions.
    #[arg(long, default_value_t = 3)]
    pub churn_every: u64,
    /// Junk datagrams per second, split between the supernode and edge b.
    #[arg(long, default_value_t = 2000)]
    pub junk_pps: u32,
    /// Longest accepted gap between two ping replies from a to b, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub max_gap: f64,
    /// Where soak.json goes.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
}

const COMMUNITY: &str = "soak";
const PASSPHRASE: &str = "soak-secret";
const SN: &str = "192.0.2.1:7777";
/// Edge b's UDP port (the junk's target).
const B_PORT: u16 = 50_001;
const SN_API: &str = "127.0.0.1:7779";
const EDGE_API: &str = "127.0.0.1:7778";

/// What a soak measured.
#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    /// Seconds run.
    pub seconds: u64,
    /// RSS in KiB at start and end: supernode (start, before its restart, end), edges a and b.
    pub rss_kib: BTreeMap<String, u64>,
    /// Drops by reason: "supernode"/"a"/"b" → reason → count.
    pub drops: BTreeMap<String, BTreeMap<String, u64>>,
    /// Longest time between two ping replies from b, seconds.
    pub longest_ping_gap: f64,
    /// Ping replies received.
    pub ping_replies: usize,
    /// Churn actions taken: action → count.
    pub churn: BTreeMap<String, u64>,
}

/// Runs the soak, prints the outcome and writes soak.json.
pub fn run(o: Options) -> anyhow::Result<()> {
    let bins = Bins::beside_me()?;
    let me = std::env::current_exe()?;
    let me = me
        .to_str()
        .context("benchmark path is not UTF-8")?
        .to_string();
    let prefix = format!("nsk{}-", std::process::id() % 100_000);
    let mut lab = Lab::up(&prefix)?;
    let mut sn = start_supernode(&mut lab, &bins)?;
    let b = start_edge(&mut lab, &bins, Host::B, "n2n0", "B", B_PORT, EDGE_API)?;
    let a = start_edge(&mut lab, &bins, Host::A, "n2n0", "A", 0, EDGE_API)?;
    let server = wait_address(&lab, Host::B)?;
    lab.wait_ping(Host::A, server, Duration::from_secs(15))?;
    wait_path(&lab, path(&bins.edge), "direct")?;
    let ping = lab.spawn(
        Host::A,
        &["ping", "-D", "-n", "-i", "0.2", &server.to_string()],
        "ping.log",
    )?;
    let b_addr = format!("{}:{B_PORT}", Host::B.ip());
    let junk_secs = (o.seconds + 60).to_string(); // stopped at the end
    let junk_pps = o.junk_pps.to_string();
    let junk = lab.spawn(
        Host::C,
        &[
            &me,
            "junk",
            "--to",
            SN,
            "--to",
            &b_addr,
            "--pps",
            &junk_pps,
            "--seconds",
            &junk_secs,
        ],
        "junk.log",
    )?;
    let mut rss = BTreeMap::new();
    let note_rss = |rss: &mut BTreeMap<String, u64>, what: &str, pid: u32| {
        rss.insert(what.to_string(), rss_kib(pid).unwrap_or(0));
    };
    note_rss(&mut rss, "supernode start", sn);
    note_rss(&mut rss, "edge a start", a);
    note_rss(&mut rss, "edge b start", b);

    let started = Instant::now();
    let end = started + Duration::from_secs(o.seconds);
    let mut restarted = false;
    let mut slots: Vec<Option<u32>> = vec![None; o.churn_edges];
    let mut churn = BTreeMap::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut drops_before_restart = BTreeMap::new();
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(o.churn_every).min(end - Instant::now()));
        if !restarted && started.elapsed() >= Duration::from_secs(o.seconds / 2) {
            drops_before_restart = drops(&lab, &me, Host::Sn, SN_API)?;
            note_rss(&mut rss, "supernode before restart", sn);
            lab.stop(sn, "TERM")?;
            sn = start_supernode(&mut lab, &bins)?;
            restarted = true;
            *churn.entry("supernode restart".to_string()).or_insert(0) += 1;
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let i = (rng % slots.len().max(1) as u64) as usize;
        let Some(slot) = slots.get_mut(i) else {
            continue;
        };
        let action = match slot {
            None => "join",
            Some(_) => match (rng >> 32) % 3 {
                0 => "leave",
                1 => "vanish",
                _ => "restart",
            },
        };
        if let Some(pid) = slot.take() {
            lab.stop(pid, if action == "vanish" { "KILL" } else { "TERM" })?;
        }
        if action == "join" || action == "restart" {
            let api = format!("127.0.0.1:{}", 7790 + i);
            let tap = format!("n2n{i}");
            *slot = Some(start_edge(
                &mut lab,
                &bins,
                Host::C,
                &tap,
                &format!("C{i}"),
                0,
                &api,
            )?);
        }
        *churn.entry(action.to_string()).or_insert(0) += 1;
        lab.check_alive()
            .with_context(|| format!("a daemon died; logs in {}", lab.dir().display()))
            .inspect_err(|_| lab.keep_files())?;
    }
    note_rss(&mut rss, "supernode end", sn);
    note_rss(&mut rss, "edge a end", a);
    note_rss(&mut rss, "edge b end", b);
    let mut all_drops = BTreeMap::new();
    let mut sn_drops = drops(&lab, &me, Host::Sn, SN_API)?;
    for (k, v) in drops_before_restart {
        *sn_drops.entry(k).or_insert(0) += v;
    }
    all_drops.insert("supernode".to_string(), sn_drops);
    all_drops.insert("a".to_string(), drops(&lab, &me, Host::A, EDGE_API)?);
    all_drops.insert("b".to_string(), drops(&lab, &me, Host::B, EDGE_API)?);
    lab.check_alive().context("a well-behaved daemon died")?;
    let finished = Instant::now();
    lab.stop(junk, "TERM")?;
    lab.stop(ping, "INT")?;
    let replies = reply_times(&std::fs::read_to_string(lab.dir().join("ping.log"))?);
    let tail = finished.duration_since(started).as_secs_f64();
    let gap = longest_gap(&replies, tail);
    let outcome = Outcome {
        seconds: o.seconds,
        rss_kib: rss,
        drops: all_drops,
        longest_ping_gap: gap,
        ping_replies: replies.len(),
        churn,
    };
    print!("{}", outcome.table());
    std::fs::create_dir_all(&o.out)?;
    let file = o.out.join("soak.json");
    std::fs::write(&file, serde_json::to_string_pretty(&outcome)?)?;
    println!("wrote {}", file.display());
    if replies.is_empty() {
        bail!("no ping reply from b during the soak");
    }
    if gap > o.max_gap {
        bail!(
            "the longest ping gap was {gap:.1} s (more than {} s)",
            o.max_gap
        );
    }
    Ok(())
}

impl Outcome {
    /// The outcome for people.
    pub fn table(&self) -> String {
        let mut s = format!("soak of {} s\n\nRSS (KiB)\n", self.seconds);
        for (k, v) in &self.rss_kib {
            s += &format!("  {k:28} {v:>10}\n");
        }
        s += "\ndrops by reason\n";
        for (who, reasons) in &self.drops {
            for (r, n) in reasons.iter().filter(|(_, n)| **n > 0) {
                s += &format!("  {who:10} {r:28} {n:>10}\n");
            }
        }
        s += "\nchurn\n";
        for (k, v) in &self.churn {
            s += &format!("  {k:28} {v:>10}\n");
        }
        s += &format!(
            "\nping a → b: {} replies, longest gap {:.2} s\n",
            self.ping_replies, self.longest_ping_gap
        );
        s
    }
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap_or_default()
}

fn start_supernode(lab: &mut Lab, bins: &Bins) -> anyhow::Result<u32> {
    let state = lab.dir().join("sn");
    lab.spawn(
        Host::Sn,
        &[
            path(&bins.supernode),
            "-listen",
            ":7777",
            "-state-dir",
            path(&state),
            "-api-listen",
            SN_API,
            "-log-level",
            "warn",
        ],
        "supernode.log",
    )
}

fn start_edge(
    lab: &mut Lab,
    bins: &Bins,
    h: Host,
    tap: &str,
    name: &str,
    port: u16,
    api: &str,
) -> anyhow::Result<u32> {
    let state = lab.dir().join(format!("edge-{name}"));
    lab.spawn(
        h,
        &[
            path(&bins.edge),
            "-community",
            COMMUNITY,
            "-supernode",
            SN,
            "-passphrase",
            PASSPHRASE,
            "-state-dir",
            path(&state),
            "-tap-name",
            tap,
            "-local-port",
            &port.to_string(),
            "-api-listen",
            api,
            "-port-mapping",
            "false",
            "-log-level",
            "warn",
        ],
        &format!("edge-{name}.log"),
    )
}

fn wait_address(lab: &Lab, h: Host) -> anyhow::Result<std::net::Ipv4Addr> {
    for _ in 0..150 {
        if let Some(ip) = lab.ipv4(h, "n2n0") {
            return Ok(ip);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the edge on {h:?} got no address within 15 s")
}

/// The `drops` of a daemon's /status, read inside its namespace.
fn drops(lab: &Lab, me: &str, h: Host, api: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let out = lab.check(h, &[me, "api-get", api, "/status"])?;
    let json: serde_json::Value =
        serde_json::from_str(&out).with_context(|| format!("{h:?} /status: {out}"))?;
    let drops = json
        .get("drops")
        .and_then(|d| d.as_object())
        .with_context(|| format!("{h:?} /status has no drops: {out}"))?;
    Ok(drops
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
        .collect())
}

/// Receive times (seconds since the epoch) of the replies in `ping -D` output.
fn reply_times(text: &str) -> Vec<f64> {
    text.lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split_once(']')?.0.parse().ok())
        .collect()
}

/// The longest gap between consecutive replies, and from the last reply to the end of a run
/// of `run_secs` that began at the first reply.
fn longest_gap(replies: &[f64], run_secs: f64) -> f64 {
    let Some(&first) = replies.first() else {
        return run_secs;
    };
    let inner = replies
        .iter()
        .zip(replies.iter().skip(1))
        .map(|(a, b)| b - a)
        .fold(0.0, f64::max);
    let last = replies.last().copied().unwrap_or(first);
    inner.max(run_secs - (last - first))
}

/// `benchmark junk`: sends junk to each `to` at `pps` in total for `seconds`: random bytes
/// behind version 2 headers of every form (plain, sealed, data), HELLOs well formed.
pub fn junk(to: &[std::net::SocketAddr], pps: u32, seconds: u64) -> anyhow::Result<()> {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let next = |rng: &mut u64| {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    let every = Duration::from_secs_f64(1.0 / f64::from(pps.max(1)));
    let mut sent = 0u64;
    let started = Instant::now();
    while Instant::now() < end {
        let r = next(&mut rng);
        let len = match r % 4 {
            0 => 800,
            _ => 1 + (r >> 8) as usize % 1400,
        };
        let mut buf: Vec<u8> = (0..len).map(|_| next(&mut rng) as u8).collect();
        // Version 2 headers, so most of it gets past the first byte: HELLOs (well formed),
        // REGISTERs, sealed control, data and pair handshakes between the first edge ids.
        let head: Vec<u8> = match (r >> 20) % 6 {
            0 => vec![0x20, 1],
            1 => vec![0x20, 3],
            2 => vec![0x21],
            3..=4 => {
                let flags = match (r >> 24) % 4 {
                    0 => 0x00,
                    1 => 0x02,
                    2 => 0x04,
                    _ => 0x10,
                };
                let (dst, src) = (1 + (r >> 26) % 6, 1 + (r >> 29) % 6);
                vec![0x22, flags, 0, 0, dst as u8, 0, 0, src as u8]
            }
            _ => vec![],
        };
        for (b, h) in buf.iter_mut().zip(&head) {
            *b = *h;
        }
        if head == [0x20, 1] {
            // A HELLO: nonce, then zero padding.
            for b in buf.iter_mut().skip(18) {
                *b = 0;
            }
        }
        if let Some(dest) = to.get(sent as usize % to.len().max(1)) {
            let _ = sock.send_to(&buf, dest);
        }
        sent += 1;
        let due = started + every.mul_f64(sent as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    println!("sent {sent} junk datagrams");
    Ok(())
}

/// `benchmark api-get`: prints the body of GET `path` at `api` (run inside a namespace).
pub fn api_get(api: std::net::SocketAddr, path: &str) -> anyhow::Result<()> {
    print!("{}", n2n_kit::http::get(api, path)?.body);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn ping_gaps_count_the_silence_at_the_end() {
        let log = "PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.\n\
                   [100.0] 64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.3 ms\n\
                   [100.2] 64 bytes from 10.0.0.2: icmp_seq=2 ttl=64 time=0.3 ms\n\
                   [103.7] 64 bytes from 10.0.0.2: icmp_seq=19 ttl=64 time=0.3 ms\n";
        let r = reply_times(log);
        assert_eq!(r, vec![100.0, 100.2, 103.7]);
        assert!((longest_gap(&r, 5.0) - 3.5).abs() < 1e-9);
        assert!(
            (longest_gap(&r, 10.0) - 6.3).abs() < 1e-9,
            "silent after the last reply"
        );
        assert_eq!(longest_gap(&[], 7.0), 7.0);
    }
}
