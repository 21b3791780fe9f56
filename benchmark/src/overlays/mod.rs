//! The systems measured end to end: the native path, n2n-rs, and the peer VPNs when they are
//! installed (tinc, nebula, vpncloud, boringtun, ntop n2n v1), each brought up in a fresh lab with its
//! defaults kept, as ../shared/lab/overlays does. `scripts/install-peers.sh` installs them.

mod boringtun;
mod n2n_rs;
mod n2n_v1;
mod nebula;
mod tinc;
mod vpncloud;

pub use n2n_rs::wait_path;

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
            System::N2nRs => n2n_rs::up(lab, bins, false),
            System::N2nRsRelayed => n2n_rs::up(lab, bins, true),
            System::Tinc => tinc::up(lab),
            System::Nebula => nebula::up(lab),
            System::Vpncloud => vpncloud::up(lab),
            System::Boringtun => boringtun::up(lab),
            System::N2nV1 => n2n_v1::up(lab),
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

pub(crate) fn set_executable(p: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}
