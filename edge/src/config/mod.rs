//! The edge daemon's settings: embedded defaults < YAML file < `N2N_*` environment <
//! command-line flags (single- or double-dash). Unknown keys and bad values fail at start.

mod commands;

pub use commands::{Command, LogsArgs, parse_when};

use clap::Parser;
use n2n_kit::config::{self as cfg};
use serde::Serialize;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

n2n_kit::settings! {
    /// Everything the edge can be configured with (`config/edge.yaml` documents each key).
    #[derive(Clone, Debug, PartialEq)]
    pub struct Settings;
    /// A flag for each key; each overrides the same-named key. n2n-go's names work as aliases.
    pub struct KeyFlags;
    keys {
        /// Name shown to peers (default: the host name).
        restart edge_id: String = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "edge".into()),
            [long, short = 'i', alias = "id", global = true] String;
        /// Community to join.
        restart community: String = String::new(), [long] String;
        /// Supernode addresses (host:port), tried in order (repeat or comma-separate).
        #[serde(deserialize_with = "cfg::one_or_many")]
        restart supernode: Vec<String> = Vec::new(), [long, value_delimiter = ','] Vec<String>;
        /// Local UDP port (0: any).
        restart local_port: u16 = 0, [long, alias = "port"] u16;
        /// TAP device name.
        restart tap_name: String = "n2n0".into(), [long, alias = "tap"] String;
        /// TAP MTU.
        restart mtu: u16 = n2n_protocol::wire::data::DEFAULT_MTU as u16, [long] u16;
        /// Let the kernel hand the TAP device TCP super-frames, cut up by the edge (TSO;
        /// -tap-offload false to disable).
        restart tap_offload: bool = true, [long] bool;
        /// Packet worker threads, each with its own TAP queue and UDP socket on the one
        /// port; flows spread over them (0: one per two cores, at most 8; at most 64).
        restart workers: usize = 0, [long] usize;
        /// Heartbeat period upper bound, e.g. 10s (the supernode may ask for shorter).
        #[serde(with = "humantime_serde")]
        restart heartbeat: Duration = Duration::from_secs(10), [long] String;
        /// UDP socket buffer size, bytes.
        restart udp_buffer_size: usize = 4 << 20, [long, alias = "udpbuffersize"] usize;
        /// Local HTTP API address ("" disables it).
        restart api_listen: String = "127.0.0.1:7778".into(), [long, global = true] String;
        /// Community passphrase: encrypts and authenticates data, proves membership (prefer
        /// N2N_PASSPHRASE or the config file: flags show in `ps`).
        restart passphrase: String = String::new(), [long, alias = "encryption-passphrase"] String;
        /// Compress frames with zstd when smaller.
        restart compress: bool = false, [long, alias = "compress-payload"] bool;
        /// Ask the supernode for this virtual IP.
        restart static_ip: Option<Ipv4Addr> = None, [long] Ipv4Addr;
        /// Refuse supernodes whose identity fingerprint differs (SHA256:...).
        restart supernode_fingerprint: Option<String> = None, [long] String;
        /// Map the UDP port on the local gateway with UPnP or NAT-PMP and advertise it
        /// (-port-mapping false to disable).
        restart port_mapping: bool = true, [long] bool;
        /// Also store log lines in SQLite (state_dir/edge-logs.db), readable with `edge logs`.
        restart log_store: bool = false, [long] bool;
        /// Write `NAME.COMMUNITY` for this edge and every peer into this hosts file (e.g.
        /// /etc/hosts), in a block of its own, removed at exit; "": off.
        restart hosts_file: String = String::new(), [long] String;
        /// Where the machine id and the identity key live.
        restart state_dir: PathBuf = default_state_dir(), [long, global = true] PathBuf;
        /// Log filter.
        restart log_level: String = "info".into(), [long] String;
    }
    file_only {
        /// What loading noted (n2n-go names read, keys ignored), for the daemon to log.
        #[serde(skip)]
        notes: Vec<String> = Vec::new(),
    }
}

pub use n2n_kit::os::default_state_dir;

/// n2n-go's edge keys: renamed, or without meaning here.
const LEGACY: cfg::Legacy = &[
    ("supernode_addr", Some("supernode")),
    ("heartbeat_interval", Some("heartbeat")),
    ("api_listen_address", Some("api_listen")),
    ("encryption_passphrase", Some("passphrase")),
    ("compress_payload", Some("compress")),
    ("enable_vfuze", None),
    ("protocol_version", None),
    ("verify_hash", None),
    ("config_file", None),
];

/// Command-line flags; each overrides the same-named key. n2n-go's names work as aliases.
#[derive(Parser, Debug, Default, Serialize)]
#[command(
    name = "edge",
    version,
    about = "n2n-rs edge: join a community, carry Ethernet frames to its members"
)]
pub struct Flags {
    /// YAML configuration file (default: edge.yaml if present).
    #[arg(long, global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// The keys.
    #[command(flatten)]
    #[serde(flatten)]
    pub keys: KeyFlags,
    /// n2n-go's VFuze header switch: accepted and ignored (every frame here is encrypted).
    #[arg(
        long = "enableFuze",
        hide = true,
        global = true,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    #[serde(skip)]
    pub enable_fuze: Option<bool>,
    /// Subcommand (none: run the edge).
    #[command(subcommand)]
    #[serde(skip)]
    pub command: Option<Command>,
}

/// Resolves supernode names (host:port) to addresses, preferring IPv4 (the socket is IPv4).
pub fn resolve_supernodes(names: &[String]) -> Result<Vec<SocketAddr>, String> {
    let mut out = Vec::new();
    for s in names {
        let addrs: Vec<SocketAddr> = s
            .to_socket_addrs()
            .map_err(|e| format!("supernode: cannot resolve {s:?}: {e}"))?
            .collect();
        let first = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied();
        out.push(first.ok_or_else(|| format!("supernode: {s:?} has no address"))?);
    }
    Ok(out)
}

/// A validated configuration, ready to run.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The settings.
    pub settings: Settings,
    /// Supernode socket addresses.
    pub supernodes: Vec<SocketAddr>,
    /// Pinned fingerprint.
    pub pinned: Option<n2n_protocol::crypto::identity::Fingerprint>,
    /// API address, if enabled.
    pub api: Option<SocketAddr>,
}

impl Settings {
    /// Loads the layered settings for `flags` (no validation).
    pub fn load(flags: &Flags) -> Result<Self, String> {
        let (file, required) = match &flags.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from("edge.yaml"), false),
        };
        let (fig, mut notes) = cfg::layered(
            &Settings::default(),
            Some(Path::new(&file)),
            required,
            Settings::KEYS,
            LEGACY,
            flags,
        )?;
        if flags.enable_fuze.is_some() {
            notes.push("-enableFuze (n2n-go) has no meaning in n2n-rs; ignored".into());
        }
        let mut s: Settings = fig.extract().map_err(cfg::explain)?;
        s.notes = notes;
        Ok(s)
    }

    /// Checks and resolves the settings needed to run.
    pub fn resolve(self) -> Result<Resolved, String> {
        if self.community.is_empty() {
            return Err("community: required (-community NAME)".into());
        }
        if self.community.len() > n2n_protocol::wire::MAX_COMMUNITY_LEN {
            return Err("community: at most 64 bytes".into());
        }
        if self.community.contains('~') {
            return Err("community: names cannot contain '~'".into());
        }
        if self.supernode.is_empty() {
            return Err("supernode: required (-supernode host:7777)".into());
        }
        if !(576..=9000).contains(&self.mtu) {
            return Err(format!("mtu: {} out of range (576..=9000)", self.mtu));
        }
        if self.heartbeat < Duration::from_secs(1) {
            return Err("heartbeat: at least 1s".into());
        }
        let supernodes = resolve_supernodes(&self.supernode)?;
        let pinned = match &self.supernode_fingerprint {
            Some(f) => Some(
                f.parse()
                    .map_err(|e| format!("supernode_fingerprint: {e}"))?,
            ),
            None => None,
        };
        let api = if self.api_listen.is_empty() {
            None
        } else {
            Some(
                self.api_listen
                    .parse::<cfg::ListenAddr>()
                    .map_err(|e| format!("api_listen: {e}"))?
                    .0,
            )
        };
        Ok(Resolved {
            settings: self,
            supernodes,
            pinned,
            api,
        })
    }
}

#[cfg(test)]
mod tests;
