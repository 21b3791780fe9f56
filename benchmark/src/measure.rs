//! End-to-end measurements from host `a` to host `b` of a lab: iperf3 TCP (1 and 4 streams),
//! iperf3 UDP at a fixed rate with loss, ping RTT distributions, and the daemons' CPU and peak
//! memory while they carry the traffic.

use crate::lab::{Host, Lab, cpu_seconds, peak_rss_kib, rss_kib};
use crate::report::{Better, Report};
use anyhow::{Context, bail};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// How much of each measurement to take.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Seconds per iperf3 run.
    pub seconds: u32,
    /// Pings per size.
    pub pings: u32,
    /// UDP offered rate, Mbit/s.
    pub udp_mbps: u32,
}

/// What to measure on: the server's address and the daemons carrying the traffic.
pub struct Target<'a> {
    /// Row subject, e.g. "n2n-rs" or "tinc 1.0.36".
    pub subject: &'a str,
    /// Address of `b` on the path under test.
    pub server: Ipv4Addr,
    /// PIDs of the daemons on `a` and `b` (empty for native).
    pub pids: &'a [u32],
    /// MTU of the path (UDP payloads are sized to fit).
    pub mtu: u32,
}

/// Number of progress steps one [`run`] takes.
pub const STEPS: u64 = 6;

/// Runs every end-to-end measurement on `t` and adds the rows.
pub fn run(
    lab: &Lab,
    t: &Target<'_>,
    plan: Plan,
    report: &mut Report,
    progress: &crate::progress::Steps,
) -> anyhow::Result<()> {
    let s = t.subject;
    progress.doing(format!("{s}: TCP, 1 stream"));
    let cpu_before: f64 = t.pids.iter().filter_map(|p| cpu_seconds(*p)).sum();
    let started = Instant::now();
    let tcp1 = iperf(lab, t.server, plan.seconds, &["-P", "1"])?;
    let cpu = (t.pids.iter().filter_map(|p| cpu_seconds(*p)).sum::<f64>() - cpu_before)
        / started.elapsed().as_secs_f64()
        * 100.0;
    report.add(
        "e2e",
        s,
        "TCP 1 stream",
        "Mbit/s",
        tcp1.mbps,
        Better::Higher,
    );
    progress.tick();

    progress.doing(format!("{s}: TCP, 4 streams"));
    let tcp4 = iperf(lab, t.server, plan.seconds, &["-P", "4"])?;
    report.add(
        "e2e",
        s,
        "TCP 4 streams",
        "Mbit/s",
        tcp4.mbps,
        Better::Higher,
    );
    progress.tick();

    progress.doing(format!("{s}: UDP at {} Mbit/s", plan.udp_mbps));
    let len = (t.mtu.saturating_sub(28)).min(1400).to_string();
    let rate = format!("{}M", plan.udp_mbps);
    let udp = iperf(
        lab,
        t.server,
        plan.seconds,
        &["-u", "-b", &rate, "-l", &len],
    )?;
    report.add(
        "e2e",
        s,
        &format!("UDP {} Mbit/s offered", plan.udp_mbps),
        "Mbit/s",
        udp.mbps,
        Better::Higher,
    );
    report.add("e2e", s, "UDP loss", "%", udp.loss_percent, Better::Lower);
    progress.tick();

    for size in [100u32, 500, 1000] {
        progress.doing(format!("{s}: ping {size} B"));
        let rtts = ping(lab, t.server, size, plan.pings)?;
        report.add(
            "e2e",
            s,
            &format!("ping {size} B p50"),
            "ms",
            percentile(&rtts, 50.0),
            Better::Lower,
        );
        report.add(
            "e2e",
            s,
            &format!("ping {size} B p99"),
            "ms",
            percentile(&rtts, 99.0),
            Better::Lower,
        );
        progress.tick();
    }
    if !t.pids.is_empty() {
        report.add(
            "e2e",
            s,
            "daemon CPU in TCP 1 stream",
            "% of a core",
            cpu,
            Better::Lower,
        );
        let mib = |f: fn(u32) -> Option<u64>| {
            t.pids.iter().filter_map(|p| f(*p)).max().unwrap_or(0) as f64 / 1024.0
        };
        // Both: a peak can come from start-up work (n2n-rs derives keys with Argon2id, which
        // touches 19 MiB once) rather than from carrying traffic.
        report.add(
            "e2e",
            s,
            "daemon RSS after traffic",
            "MiB",
            mib(rss_kib),
            Better::Lower,
        );
        report.add(
            "e2e",
            s,
            "daemon peak RSS",
            "MiB",
            mib(peak_rss_kib),
            Better::Lower,
        );
    }
    Ok(())
}

/// One iperf3 result.
pub struct IperfResult {
    /// Received throughput.
    pub mbps: f64,
    /// Lost datagrams (UDP only).
    pub loss_percent: f64,
}

const IPERF_PORT: &str = "5201";

/// Runs an iperf3 client on `a` against a one-off server on `b`.
pub fn iperf(
    lab: &Lab,
    server: Ipv4Addr,
    seconds: u32,
    extra: &[&str],
) -> anyhow::Result<IperfResult> {
    let server_s = server.to_string();
    let secs = seconds.to_string();
    let mut last_err = String::new();
    for _attempt in 0..3 {
        let mut srv = lab.child(Host::B, &["iperf3", "-s", "-1", "-p", IPERF_PORT])?;
        let mut args = vec![
            "iperf3", "-c", &server_s, "-p", IPERF_PORT, "-t", &secs, "-J",
        ];
        args.extend_from_slice(extra);
        // Let the server bind before the client connects.
        std::thread::sleep(Duration::from_millis(300));
        let out = lab.exec(Host::A, &args);
        // The one-off server exits after its test; if the test never started, stop it.
        let deadline = Instant::now() + Duration::from_secs(2);
        while matches!(srv.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = srv.kill();
        let _ = srv.wait();
        let out = out?;
        let json: serde_json::Value = match serde_json::from_slice(&out.stdout) {
            Ok(j) => j,
            Err(_) => {
                last_err = String::from_utf8_lossy(&out.stderr).into_owned();
                continue;
            }
        };
        if let Some(e) = json.get("error").and_then(|e| e.as_str()) {
            last_err = e.to_string();
            continue;
        }
        return parse_iperf(&json);
    }
    bail!("iperf3 to {server} failed: {last_err}")
}

/// Extracts the received rate and the loss from iperf3's JSON.
pub fn parse_iperf(json: &serde_json::Value) -> anyhow::Result<IperfResult> {
    let end = json.get("end").context("iperf3 JSON without `end`")?;
    let udp = end.get("sum").and_then(|s| s.get("lost_percent")).is_some();
    let sum = if udp {
        end.get("sum_received")
            .filter(|s| s.get("bits_per_second").is_some())
            .or_else(|| end.get("sum"))
    } else {
        end.get("sum_received")
    }
    .context("iperf3 JSON without a summary")?;
    let bps = sum
        .get("bits_per_second")
        .and_then(|v| v.as_f64())
        .context("iperf3 JSON without bits_per_second")?;
    let loss = end
        .get("sum")
        .and_then(|s| s.get("lost_percent"))
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    // Older iperf3 reports the sender's rate in `sum` for UDP; the receiver got less.
    let received = if udp && end.get("sum_received").is_none() {
        bps * (1.0 - loss / 100.0)
    } else {
        bps
    };
    Ok(IperfResult {
        mbps: received / 1e6,
        loss_percent: loss,
    })
}

/// Pings `server` from `a` `count` times with `size`-byte payloads; returns the RTTs in ms.
pub fn ping(lab: &Lab, server: Ipv4Addr, size: u32, count: u32) -> anyhow::Result<Vec<f64>> {
    let out = lab.exec(
        Host::A,
        &[
            "ping",
            "-n",
            "-c",
            &count.to_string(),
            "-i",
            "0.01",
            "-W",
            "1",
            "-s",
            &size.to_string(),
            &server.to_string(),
        ],
    )?;
    let rtts = parse_ping(&String::from_utf8_lossy(&out.stdout));
    if rtts.is_empty() {
        bail!(
            "no ping answers from {server}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(rtts)
}

/// The `time=` values of ping's per-reply lines.
pub fn parse_ping(text: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.split_whitespace().next())
        .filter_map(|t| t.parse().ok())
        .collect()
}

/// The `p`th percentile (nearest rank) of `values`.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v.get(rank.clamp(1, v.len()) - 1)
        .copied()
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_lines_and_percentiles() {
        let text = "PING 10.0.0.2 (10.0.0.2) 100(128) bytes of data.\n\
            108 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.250 ms\n\
            108 bytes from 10.0.0.2: icmp_seq=2 ttl=64 time=0.110 ms\n\
            108 bytes from 10.0.0.2: icmp_seq=3 ttl=64 time=1.50 ms\n\
            rtt min/avg/max/mdev = 0.110/0.620/1.500/0.6 ms\n";
        let r = parse_ping(text);
        assert_eq!(r, vec![0.25, 0.11, 1.5]);
        assert_eq!(percentile(&r, 50.0), 0.25);
        assert_eq!(percentile(&r, 99.0), 1.5);
        assert_eq!(percentile(&r, 0.0), 0.11);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn iperf_tcp_and_udp_summaries() {
        let tcp = serde_json::json!({"end": {"sum_sent": {"bits_per_second": 2e9},
            "sum_received": {"bits_per_second": 1.5e9}}});
        let r = parse_iperf(&tcp).unwrap();
        assert_eq!((r.mbps, r.loss_percent), (1500.0, 0.0));
        let udp_old =
            serde_json::json!({"end": {"sum": {"bits_per_second": 5e8, "lost_percent": 10.0}}});
        let r = parse_iperf(&udp_old).unwrap();
        assert_eq!((r.mbps, r.loss_percent), (450.0, 10.0));
        assert!(parse_iperf(&serde_json::json!({"error": "x"})).is_err());
    }
}
