//! The systems measured end to end: the native path, n2n-rs, and the peer VPNs when they are
//! installed (tinc, nebula, vpncloud, boringtun, ntop n2n v1), each brought up in a fresh lab with its
//! defaults kept, as ../shared/lab/overlays does. `scripts/install-peers.sh` installs them.

use crate::lab::{Host, Lab};
use anyhow::{Context, bail};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// A system to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    /// The veth path with no overlay (offloads off: the per-packet ceiling).
    Native,
    /// The veth path with TSO, GSO and GRO on, for reference.
    NativeOffload,
    /// This project, direct path.
    N2nRs,
    /// This project with the direct path blocked: every frame through the supernode.
    N2nRsRelayed,
    /// tinc 1.0 in switch (L2) mode.
    Tinc,
    /// Nebula with a lighthouse on `sn`.
    Nebula,
    /// VpnCloud in TAP mode.
    Vpncloud,
    /// Userspace WireGuard.
    Boringtun,
    /// ntop's n2n v1 (Debian's 1.3), the ancestor n2n-go re-implemented.
    N2nV1,
}

/// The peers `compare` adds when installed.
pub const PEERS: [System; 5] = [
    System::Tinc,
    System::Nebula,
    System::Vpncloud,
    System::Boringtun,
    System::N2nV1,
];

/// Where `scripts/install-peers.sh` unpacks Debian's n2n v1, off the PATH: its `edge` and
/// `supernode` would otherwise shadow n2n-rs's.
const N2N_V1_DIR: &str = "/opt/n2n-rs-peers/n2n";

/// An overlay up and ready to measure.
pub struct Up {
    /// Name and version for the report.
    pub subject: String,
    /// `b`'s address on the overlay.
    pub server: Ipv4Addr,
    /// Daemons on `a` and `b`.
    pub pids: Vec<u32>,
    /// MTU of the overlay device on `a`.
    pub mtu: u32,
}

/// Where the n2n-rs binaries are.
#[derive(Clone, Debug)]
pub struct Bins {
    /// The `edge` binary.
    pub edge: PathBuf,
    /// The `supernode` binary.
    pub supernode: PathBuf,
}

impl Bins {
    /// The binaries next to this one.
    pub fn beside_me() -> anyhow::Result<Self> {
        let me = std::env::current_exe()?;
        let bins = Self {
            edge: me.with_file_name("edge"),
            supernode: me.with_file_name("supernode"),
        };
        for b in [&bins.edge, &bins.supernode] {
            if !b.exists() {
                bail!(
                    "{} not found: build the workspace (cargo build --release) so edge and supernode sit next to benchmark",
                    b.display()
                );
            }
        }
        Ok(bins)
    }
}

impl System {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            System::Native => crate::report::NATIVE,
            System::NativeOffload => "native, offloads on",
            System::N2nRs => "n2n-rs",
            System::N2nRsRelayed => "n2n-rs relayed",
            System::Tinc => "tinc",
            System::Nebula => "nebula",
            System::Vpncloud => "vpncloud",
            System::Boringtun => "boringtun",
            System::N2nV1 => "n2n",
        }
    }

    fn programs(self) -> &'static [&'static str] {
        match self {
            System::Native | System::NativeOffload | System::N2nRs | System::N2nRsRelayed => &[],
            System::Tinc => &["tincd"],
            System::Nebula => &["nebula", "nebula-cert"],
            System::Vpncloud => &["vpncloud"],
            System::Boringtun => &["boringtun-cli", "wg"],
            System::N2nV1 => &[
                "/opt/n2n-rs-peers/n2n/usr/sbin/edge",
                "/opt/n2n-rs-peers/n2n/usr/bin/supernode",
                "ifconfig",
            ],
        }
    }

    /// Why this system cannot be measured here, if it cannot.
    pub fn missing(self) -> Option<String> {
        let missing: Vec<&str> = self
            .programs()
            .iter()
            .copied()
            .filter(|p| which(p).is_none())
            .collect();
        (!missing.is_empty()).then(|| {
            format!(
                "{}: {} not installed (scripts/install-peers.sh installs it)",
                self.name(),
                missing.join(", ")
            )
        })
    }

    /// Brings the system up in `lab`.
    pub fn up(self, lab: &mut Lab, bins: &Bins) -> anyhow::Result<Up> {
        match self {
            System::Native | System::NativeOffload => {
                lab.set_offloads(self == System::NativeOffload)?;
                Ok(Up {
                    subject: self.name().into(),
                    server: Host::B.ip(),
                    pids: Vec::new(),
                    mtu: lab.mtu(Host::A, "eth0")?,
                })
            }
            System::N2nRs => n2n_rs(lab, bins, false),
            System::N2nRsRelayed => n2n_rs(lab, bins, true),
            System::Tinc => tinc(lab),
            System::Nebula => nebula(lab),
            System::Vpncloud => vpncloud(lab),
            System::Boringtun => boringtun(lab),
            System::N2nV1 => n2n_v1(lab),
        }
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/root/.cargo/bin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn program(name: &str) -> anyhow::Result<String> {
    which(name)
        .map(|p| p.display().to_string())
        .with_context(|| format!("{name} not found"))
}

/// First line of `program args` (its version banner).
fn version(program: &str, args: &[&str]) -> String {
    let Ok(out) = Command::new(program).args(args).output() else {
        return String::new();
    };
    let text = [out.stdout, out.stderr].concat();
    let text = String::from_utf8_lossy(&text);
    text.split_whitespace()
        .find(|w| {
            w.trim_start_matches(['v', '.'])
                .starts_with(|c: char| c.is_ascii_digit())
                && w.contains('.')
        })
        .map(|w| {
            w.trim_start_matches(['v', '.'])
                .trim_end_matches(',')
                .to_string()
        })
        .unwrap_or_default()
}

fn subject(name: &str, version: String) -> String {
    if version.is_empty() {
        name.into()
    } else {
        format!("{name} {version}")
    }
}

fn path_str(p: &std::path::Path) -> String {
    p.display().to_string()
}

fn n2n_rs(lab: &mut Lab, bins: &Bins, relayed: bool) -> anyhow::Result<Up> {
    let (edge, sn) = (path_str(&bins.edge), path_str(&bins.supernode));
    if relayed {
        // a and b cannot reach each other (as behind two symmetric NATs); both reach sn.
        for (h, other) in [(Host::A, Host::B), (Host::B, Host::A)] {
            let other = other.ip().to_string();
            lab.check(h, &["nft", "add", "table", "inet", "bench"])?;
            lab.check(
                h,
                &[
                    "nft",
                    "add chain inet bench out { type filter hook output priority 0; }",
                ],
            )?;
            lab.check(
                h,
                &[
                    "nft", "add", "rule", "inet", "bench", "out", "ip", "daddr", &other, "drop",
                ],
            )?;
        }
    }
    let dir = lab.dir().to_path_buf();
    let sn_state = path_str(&dir.join("sn"));
    lab.spawn(
        Host::Sn,
        &[
            &sn,
            "-listen",
            ":7777",
            "-state-dir",
            &sn_state,
            "-api-listen",
            "",
            "-log-level",
            "warn",
        ],
        "supernode.log",
    )?;
    let mut pids = Vec::new();
    for h in [Host::B, Host::A] {
        let state = path_str(&dir.join(format!("edge-{h:?}")));
        let log = format!("edge-{h:?}.log");
        pids.push(lab.spawn(
            h,
            &[
                &edge,
                "-community",
                "bench",
                "-supernode",
                "192.0.2.1:7777",
                "-passphrase",
                "bench-secret",
                "-state-dir",
                &state,
                "-log-level",
                "warn",
            ],
            &log,
        )?);
    }
    let mut server = None;
    for _ in 0..150 {
        lab.check_alive()
            .with_context(|| lab.log_tail("edge-A.log") + &lab.log_tail("edge-B.log"))?;
        server = lab.ipv4(Host::B, "n2n0");
        if server.is_some() && lab.ipv4(Host::A, "n2n0").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let server = server.context("edge on b got no address within 15 s")?;
    lab.wait_ping(Host::A, server, Duration::from_secs(15))?;
    wait_path(lab, &edge, if relayed { "relayed" } else { "direct" })?;
    let version = env!("CARGO_PKG_VERSION");
    Ok(Up {
        subject: if relayed {
            format!("n2n-rs {version} relayed")
        } else {
            format!("n2n-rs {version}")
        },
        server,
        pids,
        mtu: lab.mtu(Host::A, "n2n0")?,
    })
}

/// Waits until a's edge reports `path` ("direct" or "relayed") to b, so the intended path is
/// what gets measured.
pub fn wait_path(lab: &Lab, edge: &str, path: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        let out = lab.exec(Host::A, &[edge, "peers", "--json"])?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let found = json
            .get("peers")
            .and_then(|p| p.as_array())
            .is_some_and(|p| {
                p.iter()
                    .any(|p| p.get("path").and_then(|v| v.as_str()) == Some(path))
            });
        if found {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("n2n-rs: no {path} path between a and b within 10 s")
}

fn tinc(lab: &mut Lab) -> anyhow::Result<Up> {
    let tincd = program("tincd")?;
    let root = lab.dir().join("tinc");
    for (name, h, oip, connect) in [
        ("a", Host::A, "10.10.0.11", Some("b")),
        ("b", Host::B, "10.10.0.12", None),
    ] {
        let d = root.join(name);
        std::fs::create_dir_all(d.join("hosts"))?;
        let mut conf = format!(
            "Name = {name}\nMode = switch\nDeviceType = tap\nDevice = /dev/net/tun\nInterface = tinc0\nAddressFamily = ipv4\nPort = 655\n"
        );
        if let Some(c) = connect {
            conf += &format!("ConnectTo = {c}\n");
        }
        std::fs::write(d.join("tinc.conf"), conf)?;
        std::fs::write(
            d.join("hosts").join(name),
            format!("Address = {}\nPort = 655\n", h.ip()),
        )?;
        let up = d.join("tinc-up");
        std::fs::write(
            &up,
            format!("#!/bin/sh\nip link set $INTERFACE up\nip addr add {oip}/24 dev $INTERFACE\n"),
        )?;
        set_executable(&up)?;
        let out = Command::new(&tincd)
            .args(["-c", &path_str(&d), "-K2048"])
            .stdin(std::process::Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!("tincd -K: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    for (from, to) in [("a", "b"), ("b", "a")] {
        std::fs::copy(
            root.join(from).join("hosts").join(from),
            root.join(to).join("hosts").join(from),
        )?;
    }
    let mut pids = Vec::new();
    for (name, h) in [("b", Host::B), ("a", Host::A)] {
        let d = path_str(&root.join(name));
        let pidfile = format!("--pidfile={d}/tinc.pid");
        pids.push(lab.spawn(
            h,
            &[&tincd, "-c", &d, "-D", "-d1", &pidfile],
            &format!("tinc-{name}.log"),
        )?);
    }
    let server = Ipv4Addr::new(10, 10, 0, 12);
    lab.wait_ping(Host::A, server, Duration::from_secs(20))
        .with_context(|| lab.log_tail("tinc-a.log"))?;
    Ok(Up {
        subject: subject("tinc", version(&tincd, &["--version"])),
        server,
        pids,
        mtu: lab.mtu(Host::A, "tinc0")?,
    })
}

/// ntop n2n v1 as ../shared/lab/overlays/n2n.sh runs it: Twofish, TAP, MTU 1400, edges
/// talking directly once the supernode introduced them.
fn n2n_v1(lab: &mut Lab) -> anyhow::Result<Up> {
    let edge = format!("{N2N_V1_DIR}/usr/sbin/edge");
    let sn = format!("{N2N_V1_DIR}/usr/bin/supernode");
    lab.spawn(Host::Sn, &[&sn, "-l", "7654"], "n2n-sn.log")?;
    std::thread::sleep(Duration::from_millis(500));
    let supernode = format!("{}:7654", Host::Sn.ip());
    let mut pids = Vec::new();
    for (h, oip, mac) in [
        (Host::B, "10.40.0.12", "02:00:00:40:00:12"),
        (Host::A, "10.40.0.11", "02:00:00:40:00:11"),
    ] {
        pids.push(lab.spawn(
            h,
            &[
                &edge,
                "-d",
                "n2nlab",
                "-a",
                oip,
                "-s",
                "255.255.255.0",
                "-c",
                "benchcomm",
                "-k",
                "bench-n2n-key",
                "-l",
                &supernode,
                "-p",
                "7655",
                "-m",
                mac,
                "-M",
                "1400",
            ],
            &format!("n2n-{h:?}.log"),
        )?);
    }
    let server = Ipv4Addr::new(10, 40, 0, 12);
    lab.wait_ping(Host::A, server, Duration::from_secs(30))
        .with_context(|| lab.log_tail("n2n-A.log"))?;
    // Until the edges have met, frames go through the supernode.
    std::thread::sleep(Duration::from_secs(2));
    Ok(Up {
        subject: subject("n2n", version(&edge, &["-h"])),
        server,
        pids,
        mtu: lab.mtu(Host::A, "n2nlab")?,
    })
}

fn set_executable(p: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

const NEBULA_MTU: u32 = 1300;

fn nebula(lab: &mut Lab) -> anyhow::Result<Up> {
    let (nebula, cert) = (program("nebula")?, program("nebula-cert")?);
    let d = lab.dir().join("nebula");
    std::fs::create_dir_all(&d)?;
    let run_cert = |args: &[&str]| -> anyhow::Result<()> {
        let out = Command::new(&cert).args(args).current_dir(&d).output()?;
        if !out.status.success() {
            bail!(
                "nebula-cert {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    run_cert(&[
        "ca", "-name", "bench-ca", "-out-crt", "ca.crt", "-out-key", "ca.key",
    ])?;
    for (n, ip) in [
        ("lh", "10.20.0.1/24"),
        ("a", "10.20.0.11/24"),
        ("b", "10.20.0.12/24"),
    ] {
        run_cert(&[
            "sign",
            "-name",
            n,
            "-ip",
            ip,
            "-out-crt",
            &format!("{n}.crt"),
            "-out-key",
            &format!("{n}.key"),
        ])?;
        let lighthouse = n == "lh";
        let hosts = if lighthouse { "[]" } else { "[\"10.20.0.1\"]" };
        let dir = path_str(&d);
        std::fs::write(
            d.join(format!("{n}.yml")),
            format!(
                "pki:\n  ca: {dir}/ca.crt\n  cert: {dir}/{n}.crt\n  key: {dir}/{n}.key\n\
                 static_host_map:\n  \"10.20.0.1\": [\"192.0.2.1:4242\"]\n\
                 lighthouse:\n  am_lighthouse: {lighthouse}\n  interval: 60\n  hosts: {hosts}\n\
                 listen:\n  host: 0.0.0.0\n  port: 4242\n\
                 punchy:\n  punch: true\n  respond: true\n\
                 tun:\n  disabled: false\n  dev: nebula0\n  drop_local_broadcast: false\n  drop_multicast: false\n  tx_queue: 500\n  mtu: {NEBULA_MTU}\n\
                 logging:\n  level: warning\n\
                 firewall:\n  outbound:\n    - port: any\n      proto: any\n      host: any\n  inbound:\n    - port: any\n      proto: any\n      host: any\n"
            ),
        )?;
    }
    let cfg = |n: &str| path_str(&d.join(format!("{n}.yml")));
    lab.spawn(Host::Sn, &[&nebula, "-config", &cfg("lh")], "nebula-lh.log")?;
    std::thread::sleep(Duration::from_millis(500));
    let pids = vec![
        lab.spawn(Host::B, &[&nebula, "-config", &cfg("b")], "nebula-b.log")?,
        lab.spawn(Host::A, &[&nebula, "-config", &cfg("a")], "nebula-a.log")?,
    ];
    let server = Ipv4Addr::new(10, 20, 0, 12);
    lab.wait_ping(Host::A, server, Duration::from_secs(20))
        .with_context(|| lab.log_tail("nebula-a.log"))?;
    // Let the lighthouse-assisted direct tunnel settle.
    std::thread::sleep(Duration::from_secs(2));
    Ok(Up {
        subject: subject("nebula", version(&nebula, &["-version"])),
        server,
        pids,
        mtu: NEBULA_MTU,
    })
}

fn vpncloud(lab: &mut Lab) -> anyhow::Result<Up> {
    let vpncloud = program("vpncloud")?;
    let mut pids = Vec::new();
    for (h, oip, peer) in [
        (Host::B, "10.30.0.12/24", None),
        (Host::A, "10.30.0.11/24", Some("192.0.2.12:3210")),
    ] {
        let mut args = vec![
            vpncloud.as_str(),
            "-t",
            "tap",
            "-d",
            "vpncl0",
            "-l",
            "3210",
            "-p",
            "bench-shared-password",
            "--no-port-forwarding",
        ];
        if let Some(p) = peer {
            args.extend(["-c", p]);
        }
        pids.push(lab.spawn(h, &args, &format!("vpncloud-{h:?}.log"))?);
        // vpncloud's own --ip is broken in 2.3.0 built with current Rust (../shared/lab notes):
        // address the device ourselves once it exists.
        let mut made = false;
        for _ in 0..50 {
            if lab
                .exec(h, &["ip", "link", "show", "vpncl0"])?
                .status
                .success()
            {
                made = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !made {
            bail!(
                "vpncloud made no device: {}",
                lab.log_tail(&format!("vpncloud-{h:?}.log"))
            );
        }
        lab.check(h, &["ip", "addr", "add", oip, "dev", "vpncl0"])?;
        lab.check(h, &["ip", "link", "set", "vpncl0", "up"])?;
    }
    let server = Ipv4Addr::new(10, 30, 0, 12);
    lab.wait_ping(Host::A, server, Duration::from_secs(30))
        .with_context(|| lab.log_tail("vpncloud-A.log"))?;
    std::thread::sleep(Duration::from_secs(1));
    Ok(Up {
        subject: subject("vpncloud", version(&vpncloud, &["--version"])),
        server,
        pids,
        mtu: lab.mtu(Host::A, "vpncl0")?,
    })
}

const WG_MTU: u32 = 1420;

fn boringtun(lab: &mut Lab) -> anyhow::Result<Up> {
    let (bt, wg) = (program("boringtun-cli")?, program("wg")?);
    let d = lab.dir().join("wg");
    std::fs::create_dir_all(&d)?;
    let genkey = |name: &str| -> anyhow::Result<String> {
        let key = Command::new(&wg).arg("genkey").output()?.stdout;
        let key_path = d.join(format!("{name}.key"));
        std::fs::write(&key_path, &key)?;
        use std::io::Write;
        let mut child = Command::new(&wg)
            .arg("pubkey")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .context("wg pubkey stdin")?
            .write_all(&key)?;
        let out = child.wait_with_output()?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let (pub_a, pub_b) = (genkey("a")?, genkey("b")?);
    // Interface names are also UAPI socket names in the shared /var/run/wireguard: make them
    // unique to this run.
    let tag = std::process::id() % 100_000;
    let (if_a, if_b) = (format!("wga{tag}"), format!("wgb{tag}"));
    let mut pids = Vec::new();
    for (h, ifname) in [(Host::B, &if_b), (Host::A, &if_a)] {
        let log = path_str(&d.join(format!("{ifname}.log")));
        pids.push(lab.spawn(
            h,
            &[&bt, ifname, "-f", "--disable-drop-privileges", "-l", &log],
            &format!("boringtun-{h:?}.log"),
        )?);
    }
    for i in [&if_a, &if_b] {
        lab.remove_on_drop(format!("/var/run/wireguard/{i}.sock").into());
    }
    for _ in 0..50 {
        if [&if_a, &if_b]
            .iter()
            .all(|i| std::path::Path::new(&format!("/var/run/wireguard/{i}.sock")).exists())
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let key = |n: &str| path_str(&d.join(format!("{n}.key")));
    let mtu = WG_MTU.to_string();
    lab.check(
        Host::B,
        &[
            &wg,
            "set",
            &if_b,
            "listen-port",
            "51820",
            "private-key",
            &key("b"),
            "peer",
            &pub_a,
            "allowed-ips",
            "10.50.0.11/32",
        ],
    )?;
    lab.check(
        Host::A,
        &[
            &wg,
            "set",
            &if_a,
            "listen-port",
            "51820",
            "private-key",
            &key("a"),
            "peer",
            &pub_b,
            "allowed-ips",
            "10.50.0.12/32",
            "endpoint",
            "192.0.2.12:51820",
        ],
    )?;
    for (h, ifname, ip) in [
        (Host::B, &if_b, "10.50.0.12/24"),
        (Host::A, &if_a, "10.50.0.11/24"),
    ] {
        lab.check(h, &["ip", "addr", "add", ip, "dev", ifname])?;
        lab.check(h, &["ip", "link", "set", ifname, "mtu", &mtu, "up"])?;
    }
    let server = Ipv4Addr::new(10, 50, 0, 12);
    lab.wait_ping(Host::A, server, Duration::from_secs(20))
        .with_context(|| lab.log_tail("boringtun-A.log"))?;
    Ok(Up {
        subject: subject("boringtun", version(&bt, &["--version"])),
        server,
        pids,
        mtu: WG_MTU,
    })
}
