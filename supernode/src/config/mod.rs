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

n2n_kit::settings! {
    /// Everything the supernode daemon can be configured with (`config/supernode.yaml`
    /// documents each key).
    #[derive(Clone, Debug, PartialEq)]
    pub struct Settings;
    /// A flag for each key; each overrides the same-named key.
    pub struct KeyFlags;
    keys {
        /// UDP address edges talk to, e.g. :7777.
        restart listen: ListenAddr = ListenAddr(
            "[::]:7777".parse().unwrap_or_else(|_| ([0, 0, 0, 0], 7777).into()),
        ), [long] String;
        /// HTTP API address (status, communities, leases, metrics); "" disables it.
        restart api_listen: String = "127.0.0.1:7779".into(), [long] String;
        /// Where the lease database and the identity key live.
        restart state_dir: PathBuf = default_state_dir(), [long] PathBuf;
        /// Heartbeat period edges are told to use, e.g. 10s.
        #[serde(with = "humantime_serde")]
        live heartbeat: Duration = SupernodeConfig::default().heartbeat, [long] String;
        /// An edge silent this long is dropped (its lease is kept), e.g. 45s.
        #[serde(with = "humantime_serde")]
        live expiry: Duration = SupernodeConfig::default().expiry, [long] String;
        /// How often expired edges are swept (n2n-go: -cleanup).
        #[serde(with = "humantime_serde")]
        live sweep_interval: Duration = SupernodeConfig::default().sweep_interval,
            [long, alias = "cleanup"] String;
        /// An open community without an edge for this long is removed with its leases and
        /// its subnet returns to the pool ("0s": never).
        #[serde(with = "humantime_serde")]
        live open_community_idle: Duration = SupernodeConfig::default().open_community_idle,
            [long] String;
        /// The range community subnets are carved from, e.g. 10.128.0.0/9 (CIDR; a bare
        /// address, as n2n-go took it, covers the bits through its lowest set one within its
        /// private block: 10.128.0.0 is 10.128.0.0/9, 192.168.0.0 is 192.168.0.0/16).
        #[serde(deserialize_with = "pool_subnet")]
        live subnet: Ipv4Net = Ipv4Net {
            addr: SupernodeConfig::default().subnet_pool.0,
            prefix: SupernodeConfig::default().subnet_pool.1,
        }, [long] String;
        /// Prefix length of each community's subnet (n2n-go: -subnetcidr).
        live community_prefix: u8 = SupernodeConfig::default().community_prefix,
            [long, alias = "subnetcidr"] u8;
        /// Admit communities not listed under `communities` (open: logged as such).
        live allow_open: bool = SupernodeConfig::default().allow_open, [long] bool;
        /// Log filter (error, warn, info, debug, trace, or a tracing directive).
        restart log_level: String = "info".into(), [long] String;
        /// SO_RCVBUF / SO_SNDBUF of the UDP socket, bytes.
        restart udp_buffer_size: usize = 4 << 20, [long] usize;
        /// n2n-go's verbose switch: true is `log_level: debug` (-debug alone turns it on).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        restart debug: bool = false,
            [long, num_args = 0..=1, require_equals = true, default_missing_value = "true"] bool;
    }
    file_only {
        /// Per-community settings.
        communities: BTreeMap<String, CommunitySettings> = BTreeMap::new(),
        /// Abuse limits.
        limits: LimitSettings = LimitSettings::default(),
        /// What loading noted (n2n-go names read, keys ignored), for the daemon to log.
        #[serde(skip)]
        notes: Vec<String> = Vec::new(),
    }
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
    /// The keys.
    #[command(flatten)]
    #[serde(flatten)]
    pub keys: KeyFlags,
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
            Settings::KEYS,
            LEGACY,
            flags,
        )?;
        if flags.enable_fuze.is_some() {
            notes.push("-enableFuze (n2n-go) has no meaning in n2n-rs; ignored".into());
        }
        let mut s: Settings = fig.extract().map_err(cfg::explain)?;
        s.notes = notes;
        if s.debug {
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
mod tests;
