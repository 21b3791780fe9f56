//! TAP device throughput in a throwaway namespace: frames written to the device and
//! delivered to a UDP socket by the kernel (the edge's receive side), and frames the kernel
//! emits for a UDP sender that the benchmark reads back (the edge's send side).
//! The parent creates the namespace and runs `benchmark tap-probe` inside it.

use crate::report::{Better, Report};
use anyhow::{Context, bail};
use std::net::{Ipv4Addr, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const DEV: &str = "bt0";
const OUR_MAC: [u8; 6] = [2, 0, 0, 0x77, 0, 1];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0x77, 0, 2];
const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// IP packet size: a full frame at the edge's default MTU.
const IP_LEN: usize = 1400;

/// Measures the TAP device in a fresh namespace and adds the rows.
pub fn measure(report: &mut Report, budget: Duration, prefix: &str) -> anyhow::Result<()> {
    let ns = format!("{prefix}tap");
    let status = Command::new("ip").args(["netns", "add", &ns]).status()?;
    if !status.success() {
        bail!("cannot create namespace {ns} (needs root)");
    }
    let out = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(std::env::current_exe()?)
        .args(["tap-probe", "--millis", &budget.as_millis().to_string()])
        .output();
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    let out = out?;
    if !out.status.success() {
        bail!("tap probe: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("tap probe output")?;
    let get = |k: &str| v.get(k).and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
    report.add(
        "tap",
        "1400 B frames",
        "write",
        "kpps",
        get("write_pps") / 1e3,
        Better::Higher,
    );
    report.add(
        "tap",
        "1400 B frames",
        "write, delivered to socket",
        "kpps",
        get("delivered_pps") / 1e3,
        Better::Higher,
    );
    report.add(
        "tap",
        "1400 B frames",
        "read",
        "kpps",
        get("read_pps") / 1e3,
        Better::Higher,
    );
    Ok(())
}

/// Runs inside the namespace: creates the device, measures, prints JSON.
pub fn probe(millis: u64) -> anyhow::Result<()> {
    let budget = Duration::from_millis(millis);
    let dev = tun_rs::DeviceBuilder::new()
        .name(DEV)
        .layer(tun_rs::Layer::L2)
        .mac_addr(OUR_MAC)
        .mtu(1500)
        .build_sync()
        .context("create TAP device")?;
    dev.set_network_address(OUR_IP, 24, None)?;
    dev.enabled(true)?;
    let mac = PEER_MAC.map(|b| format!("{b:02x}")).join(":");
    let st = Command::new("ip")
        .args([
            "neigh",
            "replace",
            &PEER_IP.to_string(),
            "lladdr",
            &mac,
            "dev",
            DEV,
            "nud",
            "permanent",
        ])
        .status()?;
    if !st.success() {
        bail!("ip neigh replace failed");
    }
    let dev = Arc::new(dev);

    // Write side: frames from the "peer" to a socket on our address.
    let sink = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    sink.set_recv_buffer_size(8 << 20)?;
    sink.bind(&std::net::SocketAddr::from((OUR_IP, 9000)).into())?;
    let sink: UdpSocket = sink.into();
    sink.set_read_timeout(Some(Duration::from_millis(100)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));
    let counter = {
        let (stop, delivered) = (stop.clone(), delivered.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if sink.recv(&mut buf).is_ok() {
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let frame = udp_frame(PEER_MAC, OUR_MAC, PEER_IP, OUR_IP, 9999, 9000, IP_LEN);
    let start = Instant::now();
    let mut written = 0u64;
    while start.elapsed() < budget {
        if dev.send(&frame).is_ok() {
            written += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let got = delivered.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let _ = counter.join();

    // Read side: a socket floods the peer; we read the frames the kernel hands the device.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || -> std::io::Result<()> {
            let s = UdpSocket::bind((OUR_IP, 0))?;
            s.connect((PEER_IP, 9))?;
            let payload = vec![0u8; IP_LEN - 28];
            while !stop.load(Ordering::Relaxed) {
                let _ = s.send(&payload);
            }
            Ok(())
        })
    };
    let mut buf = vec![0u8; 2048];
    let start = Instant::now();
    let mut read = 0u64;
    while start.elapsed() < budget {
        match dev.recv(&mut buf) {
            Ok(n) if n >= 14 + IP_LEN => read += 1,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let read_secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    println!(
        "{}",
        serde_json::json!({
            "write_pps": written as f64 / secs,
            "delivered_pps": got as f64 / secs,
            "read_pps": read as f64 / read_secs,
        })
    );
    Ok(())
}

/// An Ethernet frame carrying an IPv4/UDP packet of `ip_len` bytes (UDP checksum 0).
pub fn udp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    ip_len: usize,
) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let sum = ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((ip_len - 20) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.resize(14 + ip_len, 0x5a);
    f
}

/// The RFC 791 header checksum.
pub fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| {
            u32::from(u16::from_be_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ]))
        })
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_the_rfc_1071_example_and_verifies_to_zero() {
        // Header from RFC 1071-style worked examples (Wikipedia's IPv4 checksum example).
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_checksum(&h), 0xb861);
        let f = udp_frame(PEER_MAC, OUR_MAC, PEER_IP, OUR_IP, 1, 2, 100);
        assert_eq!(f.len(), 114);
        assert_eq!(ipv4_checksum(&f[14..34]), 0);
    }
}
