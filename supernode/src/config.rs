//! The supernode daemon's settings: embedded defaults < YAML file < `N2N_*` environment <
//! command-line flags. Unknown keys and bad values fail at start, naming the key.

use crate::proto::{CommunityPolicy, Limits, SupernodeConfig};
use clap::Parser;
use n2n_kit::config::{self as cfg, HexKey, Ipv4Net, ListenAddr};
use n2n_protocol::ratelimit::Rate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything the supernode daemon can be configured with (`config/supernode.yaml` documents
/// each key).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// UDP address edges talk to.
    pub listen: ListenAddr,
    /// HTTP API address (status, communities, leases, metrics); empty string disables it.
    pub api_listen: String,
    /// Where the lease database and the identity key live.
    pub state_dir: PathBuf,
    /// Heartbeat period edges are told to use.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// An edge silent this long is dropped (its lease is kept).
    #[serde(with = "humantime_serde")]
    pub expiry: Duration,
    /// How often expired edges are swept.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// An open community without an edge for this long is removed with its leases and its
    /// subnet returns to the pool ("0s": never).
    #[serde(with = "humantime_serde")]
    pub open_community_idle: Duration,
    /// The range community subnets are carved from (CIDR; a bare address, as n2n-go took it,
    /// covers the bits through its lowest set one within its private block: 10.128.0.0 is
    /// 10.128.0.0/9, 192.168.0.0 is 192.168.0.0/16).
    #[serde(deserialize_with = "pool_subnet")]
    pub subnet: Ipv4Net,
    /// Prefix length of each community's subnet.
    pub community_prefix: u8,
    /// Admit communities not listed under `communities` (open: logged as such).
    pub allow_open: bool,
    /// Per-community settings.
    pub communities: BTreeMap<String, CommunitySettings>,
    /// Abuse limits.
    pub limits: LimitSettings,
    /// Log filter (error, warn, info, debug, trace, or a tracing directive).
    pub log_level: String,
    /// SO_RCVBUF / SO_SNDBUF of the UDP socket, bytes.
    pub udp_buffer_size: usize,
    /// n2n-go's verbose switch: true is `log_level: debug`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub debug: bool,
    /// What loading noted (n2n-go names read, keys ignored), for the daemon to log.
    #[serde(skip)]
    pub notes: Vec<String>,
}

/// Reads the subnet pool from CIDR or from a bare n2n-go base address.
fn pool_subnet<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Ipv4Net, D::Error> {
    let s = String::deserialize(d)?;
    let text = match s.parse::<std::net::Ipv4Addr>() {
        Ok(a) => {
            // Through the lowest set bit (n2n-go's 10.128.0.0 is 10.128.0.0/9), but never
            // wider than the private block it lies in (192.168.0.0 is /16, not /13).
            let private = [
                (0x0a00_0000u32, 8),
                (0xac10_0000, 12),
                (0xc0a8_0000, 16),
                (0x6440_0000, 10),
            ]
            .into_iter()
            .find(|(net, len)| u32::from(a) & (u32::MAX << (32 - len)) == *net)
            .map_or(8, |(_, len)| len);
            let prefix = (32 - u32::from(a).trailing_zeros()).clamp(private, 30);
            format!("{a}/{prefix}")
        }
        Err(_) => s,
    };
    text.parse().map_err(serde::de::Error::custom)
}

/// Settings of one community.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CommunitySettings {
    /// Verifiers (64 hex digits each, from `supernode community-key`): only edges that prove
    /// the passphrase of one of them may use this name. List the new one next to the old
    /// while members move to a new passphrase. The supernode cannot derive the data key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verifiers: Vec<HexKey>,
    /// Protocol v1's admission key: refused with a pointer to `verifiers`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admission_key: Option<String>,
    /// Subnet override for this community.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<Ipv4Net>,
    /// Cap on registered edges in this community.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_edges: Option<usize>,
}

/// Abuse limits.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Hello and register messages per second per source IP (burst: 4x).
    pub handshakes_per_source: f64,
    /// Registered edges per community (unless the community sets `max_edges`).
    pub max_edges_per_community: usize,
    /// Relayed packets per second per edge (burst: 1/5 s worth).
    pub relay_pps_per_edge: f64,
    /// New open communities one source (IPv4 address, IPv6 /48) may create per hour (burst:
    /// as many at once).
    pub new_communities_per_hour: f64,
    /// Punch requests per second per edge (burst: 4x).
    pub punches_per_edge: f64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        let l = Limits::default();
        Self {
            handshakes_per_source: l.handshakes_per_source.per_sec,
            max_edges_per_community: l.max_edges_per_community,
            relay_pps_per_edge: l.relay_per_edge.per_sec,
            new_communities_per_hour: l.new_communities_per_source.burst,
            punches_per_edge: l.punches_per_edge.per_sec,
        }
    }
}

pub use n2n_kit::os::default_state_dir;

impl Default for Settings {
    fn default() -> Self {
        let core = SupernodeConfig::default();
        Self {
            listen: ListenAddr(
                "[::]:7777"
                    .parse()
                    .unwrap_or_else(|_| ([0, 0, 0, 0], 7777).into()),
            ),
            api_listen: "127.0.0.1:7779".into(),
            state_dir: default_state_dir(),
            heartbeat: core.heartbeat,
            expiry: core.expiry,
            sweep_interval: core.sweep_interval,
            open_community_idle: core.open_community_idle,
            subnet: Ipv4Net {
                addr: core.subnet_pool.0,
                prefix: core.subnet_pool.1,
            },
            community_prefix: core.community_prefix,
            allow_open: core.allow_open,
            communities: BTreeMap::new(),
            limits: LimitSettings::default(),
            log_level: "info".into(),
            udp_buffer_size: 4 << 20,
            debug: false,
            notes: Vec::new(),
        }
    }
}

/// Top-level keys, for filtering `N2N_*` environment variables.
const KEYS: &[&str] = &[
    "listen",
    "api_listen",
    "state_dir",
    "heartbeat",
    "expiry",
    "sweep_interval",
    "open_community_idle",
    "subnet",
    "community_prefix",
    "allow_open",
    "log_level",
    "udp_buffer_size",
    "debug",
];

/// n2n-go's supernode keys: renamed, or without meaning here.
const LEGACY: cfg::Legacy = &[
    ("listen_address", Some("listen")),
    ("community_subnet", Some("subnet")),
    ("community_subnet_cidr", Some("community_prefix")),
    ("expiry_duration", Some("expiry")),
    ("cleanup_interval", Some("sweep_interval")),
    ("strict_hash_checking", None),
    ("enable_vfuze", None),
    ("config_file", None),
];

/// Command-line flags (single- or double-dash). Every flag overrides the same-named key.
#[derive(Parser, Debug, Default, Serialize)]
#[command(
    name = "supernode",
    version,
    about = "n2n-rs supernode: rendezvous, leases, hole punching and relay"
)]
pub struct Flags {
    /// YAML configuration file (default: supernode.yaml if present).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// UDP listen address, e.g. :7777.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// HTTP API address; "" disables the API.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_listen: Option<String>,
    /// State directory (lease database, identity key).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Heartbeat period told to edges, e.g. 10s.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<String>,
    /// Drop edges silent for this long, e.g. 45s.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
    /// Sweep period (n2n-go: -cleanup).
    #[arg(long, alias = "cleanup")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep_interval: Option<String>,
    /// Range community subnets come from, e.g. 10.128.0.0/9.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Prefix length of a community subnet (n2n-go: -subnetcidr).
    #[arg(long, alias = "subnetcidr")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub community_prefix: Option<u8>,
    /// Admit communities that are not configured.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_open: Option<bool>,
    /// Log level.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Shorthand for -log-level debug (n2n-go compatibility).
    #[arg(long)]
    #[serde(skip)]
    pub debug: bool,
    /// UDP socket buffer size in bytes.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp_buffer_size: Option<usize>,
    /// n2n-go's VFuze relay switch: accepted and ignored.
    #[arg(long = "enableFuze", hide = true, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip)]
    pub enable_fuze: Option<bool>,
    /// Subcommand (none: run the daemon).
    #[command(subcommand)]
    #[serde(skip)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Print the verifier of a community for its passphrase (for `communities.NAME.verifiers`).
    CommunityKey {
        /// Community name.
        #[arg(long)]
        community: String,
        /// Passphrase (or N2N_PASSPHRASE, or read from standard input).
        #[arg(long, env = "N2N_PASSPHRASE")]
        passphrase: Option<String>,
    },
    /// Free a lease from its identity key, for a member that lost its key (reinstalled): its
    /// next registration with that MAC gets the old address and edge id back. Asks the
    /// running supernode (its API, with the token from its state directory).
    ReleaseLease {
        /// Community, as `GET /communities` lists it (closed ones: NAME~VERIFIER).
        community: String,
        /// The member's MAC (as `GET /leases.json` lists it).
        mac: String,
    },
}

impl Settings {
    /// Loads the layered settings for `flags`.
    pub fn load(flags: &Flags) -> Result<Self, String> {
        let (file, required) = match &flags.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from("supernode.yaml"), false),
        };
        let (fig, mut notes) = cfg::layered(
            &Settings::default(),
            Some(Path::new(&file)),
            required,
            KEYS,
            LEGACY,
            flags,
        )?;
        if flags.enable_fuze.is_some() {
            notes.push("-enableFuze (n2n-go) has no meaning in n2n-rs; ignored".into());
        }
        let mut s: Settings = fig.extract().map_err(cfg::explain)?;
        s.notes = notes;
        if flags.debug || s.debug {
            s.log_level = "debug".into();
        }
        s.validate()?;
        Ok(s)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.community_prefix < 16 {
            return Err(format!(
                "community_prefix: /{} is larger than edges accept (a /16 at most: a larger \
                 overlay would swallow the private networks users live on)",
                self.community_prefix
            ));
        }
        if !(self.subnet.prefix..=30).contains(&self.community_prefix) {
            return Err(format!(
                "community_prefix: /{} must lie between the subnet's /{} and /30",
                self.community_prefix, self.subnet.prefix
            ));
        }
        if self.heartbeat.is_zero() || self.expiry <= self.heartbeat {
            return Err("expiry: must be longer than heartbeat".into());
        }
        if !self.api_listen.is_empty() {
            self.api_listen
                .parse::<ListenAddr>()
                .map_err(|e| format!("api_listen: {e}"))?;
        }
        for (name, c) in &self.communities {
            if name.is_empty() || name.len() > n2n_protocol::wire::MAX_COMMUNITY_LEN {
                return Err(format!("communities.{name}: name must be 1 to 64 bytes"));
            }
            if name.contains(crate::proto::VERIFIER_SEPARATOR) {
                return Err(format!("communities.{name}: names cannot contain '~'"));
            }
            if c.admission_key.is_some() {
                return Err(format!(
                    "communities.{name}.admission_key: protocol v1's admission key; run \
                     'supernode community-key' again and list its output under \
                     communities.{name}.verifiers"
                ));
            }
            if let Some(s) = c.subnet
                && !(16..=30).contains(&s.prefix)
            {
                return Err(format!(
                    "communities.{name}.subnet: the prefix must be /16 to /30 (edges refuse larger overlays)"
                ));
            }
        }
        let l = &self.limits;
        for (k, v) in [
            ("handshakes_per_source", l.handshakes_per_source),
            ("relay_pps_per_edge", l.relay_pps_per_edge),
            ("punches_per_edge", l.punches_per_edge),
            ("new_communities_per_hour", l.new_communities_per_hour),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(format!("limits.{k}: must be a positive number"));
            }
        }
        Ok(())
    }

    /// The keys that differ from `running` but only take effect at a restart.
    pub fn restart_only_changes(&self, running: &Settings) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.listen != running.listen {
            out.push("listen");
        }
        if self.api_listen != running.api_listen {
            out.push("api_listen");
        }
        if self.state_dir != running.state_dir {
            out.push("state_dir");
        }
        if self.log_level != running.log_level {
            out.push("log_level");
        }
        if self.udp_buffer_size != running.udp_buffer_size {
            out.push("udp_buffer_size");
        }
        out
    }

    /// The HTTP API address, if enabled.
    pub fn api_addr(&self) -> Option<std::net::SocketAddr> {
        self.api_listen.parse::<ListenAddr>().ok().map(|a| a.0)
    }

    /// The core's configuration.
    pub fn core_config(&self) -> SupernodeConfig {
        let l = &self.limits;
        SupernodeConfig {
            heartbeat: self.heartbeat,
            expiry: self.expiry,
            sweep_interval: self.sweep_interval,
            open_community_idle: self.open_community_idle,
            lease_reclaim_after: SupernodeConfig::default().lease_reclaim_after,
            subnet_pool: (self.subnet.addr, self.subnet.prefix),
            community_prefix: self.community_prefix,
            allow_open: self.allow_open,
            communities: self
                .communities
                .iter()
                .map(|(n, c)| {
                    (
                        n.clone(),
                        CommunityPolicy {
                            verifiers: c.verifiers.iter().map(|k| k.0).collect(),
                            subnet: c.subnet.map(|s| (s.addr, s.prefix)),
                            max_edges: c.max_edges,
                        },
                    )
                })
                .collect(),
            limits: Limits {
                handshakes_per_source: Rate::new(
                    l.handshakes_per_source,
                    l.handshakes_per_source * 4.0,
                ),
                max_edges_per_community: l.max_edges_per_community,
                relay_per_edge: Rate::new(
                    l.relay_pps_per_edge,
                    (l.relay_pps_per_edge / 5.0).max(64.0),
                ),
                punches_per_edge: Rate::new(l.punches_per_edge, l.punches_per_edge * 4.0),
                new_communities_per_source: Rate::new(
                    l.new_communities_per_hour / 3600.0,
                    l.new_communities_per_hour.max(1.0),
                ),
                ..Limits::default()
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        let mut v = vec!["supernode".to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        Flags::parse_from(cfg::go_style_args(v))
    }

    #[test]
    fn layering_is_defaults_then_file_then_env_then_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "supernode.yaml",
                "listen: \":1000\"\nheartbeat: 20s\nexpiry: 90s\nlog_level: warn\nsubnet: 10.200.0.0/16\n",
            )?;
            jail.set_env("N2N_HEARTBEAT", "30s");
            jail.set_env("N2N_LOG_LEVEL", "debug");
            jail.set_env("N2N_COMMUNITY", "ignored: an edge key");
            let s = Settings::load(&flags(&["-log-level", "trace"])).map_err(|e| e.to_string())?;
            assert_eq!(
                s.listen.0,
                "[::]:1000".parse().unwrap(),
                "file over defaults"
            );
            assert_eq!(s.heartbeat, Duration::from_secs(30), "env over file");
            assert_eq!(s.log_level, "trace", "flags over env");
            assert_eq!(s.expiry, Duration::from_secs(90));
            assert_eq!(s.subnet.to_string(), "10.200.0.0/16");
            assert_eq!(s.api_listen, "127.0.0.1:7779", "default kept");
            let s = Settings::load(&flags(&["--listen", "127.0.0.1:9", "-debug"]))
                .map_err(|e| e.to_string())?;
            assert_eq!(s.listen.0, "127.0.0.1:9".parse().unwrap());
            assert_eq!(s.log_level, "debug");
            Ok(())
        });
    }

    #[test]
    fn an_n2n_go_supernode_yaml_and_its_flags_still_start_the_supernode() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "supernode.yaml",
                "listen_address: \":7700\"\ndebug: true\ncommunity_subnet: \"10.128.0.0\"\n\
                 community_subnet_cidr: 24\nexpiry_duration: 90s\ncleanup_interval: 30s\n\
                 udp_buffer_size: 8388608\nstrict_hash_checking: true\nenable_vfuze: true\n",
            )?;
            let s = Settings::load(&flags(&["-enableFuze=false"])).map_err(|e| e.to_string())?;
            assert_eq!(s.listen.0, "[::]:7700".parse().unwrap());
            assert_eq!(s.subnet.to_string(), "10.128.0.0/9");
            assert_eq!(s.community_prefix, 24);
            assert_eq!(
                (s.expiry, s.sweep_interval),
                (Duration::from_secs(90), Duration::from_secs(30))
            );
            assert_eq!(s.udp_buffer_size, 8 << 20);
            assert_eq!(s.log_level, "debug", "n2n-go's debug: true");
            let all = s.notes.join("\n");
            for key in [
                "listen_address",
                "community_subnet_cidr",
                "strict_hash_checking",
                "-enableFuze",
            ] {
                assert!(all.contains(key), "no note on {key}: {all}");
            }
            let s = Settings::load(&flags(&["-subnet", "172.16.0.0", "-subnetcidr", "24"]))
                .map_err(|e| e.to_string())?;
            assert_eq!(s.subnet.to_string(), "172.16.0.0/12");
            let s =
                Settings::load(&flags(&["-subnet", "192.168.0.0"])).map_err(|e| e.to_string())?;
            assert_eq!(s.subnet.to_string(), "192.168.0.0/16", "inside 192.168/16");
            jail.set_env("N2N_EXPIRY_DURATION", "2m");
            let s = Settings::load(&flags(&[])).map_err(|e| e.to_string())?;
            assert_eq!(s.expiry, Duration::from_secs(120));
            Ok(())
        });
    }

    #[test]
    fn bad_keys_and_values_name_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.yaml", "listen: \":7777\"\nlisten_port: 5\n")?;
            let e = Settings::load(&flags(&["-config", "bad.yaml"])).unwrap_err();
            assert!(
                e.contains("listen_port") && e.contains("unknown field"),
                "{e}"
            );
            jail.create_file("bad2.yaml", "communities:\n  acme:\n    verifiers: [xyz]\n")?;
            let e = Settings::load(&flags(&["-config", "bad2.yaml"])).unwrap_err();
            assert!(
                e.contains("communities.acme.verifiers") && e.contains("64 hex"),
                "{e}"
            );
            jail.create_file(
                "v1.yaml",
                &format!(
                    "communities:\n  acme:\n    admission_key: \"{}\"\n",
                    "ab".repeat(32)
                ),
            )?;
            let e = Settings::load(&flags(&["-config", "v1.yaml"])).unwrap_err();
            assert!(
                e.contains("communities.acme.admission_key") && e.contains("verifiers"),
                "{e}"
            );
            let e = Settings::load(&flags(&["-expiry", "soon"])).unwrap_err();
            assert!(
                e.starts_with("expiry:") && e.contains("command-line flags"),
                "{e}"
            );
            let e = Settings::load(&flags(&["-subnet", "10.0.0.300"])).unwrap_err();
            assert!(e.starts_with("subnet:") && e.contains("CIDR"), "{e}");
            let e = Settings::load(&flags(&["-heartbeat", "60s", "-expiry", "30s"])).unwrap_err();
            assert!(e.starts_with("expiry:"), "{e}");
            let e = Settings::load(&flags(&["-config", "missing.yaml"])).unwrap_err();
            assert!(e.contains("does not exist"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn the_example_config_file_loads_and_matches_the_defaults() {
        // Inside a jail: jails serialize with each other, so no other test's env leaks in.
        figment::Jail::expect_with(|_| {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/supernode.yaml");
            let s = Settings::load(&flags(&["-config", path])).map_err(|e| e.to_string())?;
            let d = Settings::default();
            assert_eq!(
                (
                    s.listen,
                    s.heartbeat,
                    s.expiry,
                    s.subnet,
                    s.limits,
                    s.udp_buffer_size
                ),
                (
                    d.listen,
                    d.heartbeat,
                    d.expiry,
                    d.subnet,
                    d.limits,
                    d.udp_buffer_size
                )
            );
            Ok(())
        });
    }

    #[test]
    fn every_key_variable_flag_and_n2n_go_name_is_still_there() {
        use clap::CommandFactory;
        let file_keys: Vec<String> = match serde_json::to_value(Settings::default()) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            other => panic!("settings are not a map: {other:?}"),
        };
        let text = cfg::inventory(&Flags::command(), &file_keys, KEYS, LEGACY);
        cfg::assert_golden(
            Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/golden/config.txt"
            )),
            &text,
        );
    }
}
