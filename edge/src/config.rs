//! The edge daemon's settings: embedded defaults < YAML file < `N2N_*` environment <
//! command-line flags (single- or double-dash). Unknown keys and bad values fail at start.

use clap::Parser;
use n2n_kit::config::{self as cfg};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything the edge can be configured with (`config/edge.yaml` documents each key).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Name shown to peers (default: the host name).
    pub edge_id: String,
    /// Community to join.
    pub community: String,
    /// Supernode addresses (host:port), tried in order.
    #[serde(deserialize_with = "cfg::one_or_many")]
    pub supernode: Vec<String>,
    /// Local UDP port (0: any).
    pub local_port: u16,
    /// TAP device name.
    pub tap_name: String,
    /// TAP MTU.
    pub mtu: u16,
    /// Let the kernel hand the TAP device TCP super-frames, cut up by the edge (TSO).
    pub tap_offload: bool,
    /// Heartbeat period upper bound (the supernode may ask for shorter).
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// UDP socket buffer size, bytes.
    pub udp_buffer_size: usize,
    /// Local HTTP API address; empty disables it.
    pub api_listen: String,
    /// Community passphrase: encrypts and authenticates data, proves membership.
    pub passphrase: String,
    /// Compress frames with zstd when smaller.
    pub compress: bool,
    /// Ask the supernode for this virtual IP.
    pub static_ip: Option<Ipv4Addr>,
    /// Refuse supernodes whose identity fingerprint differs (SHA256:...).
    pub supernode_fingerprint: Option<String>,
    /// Map the UDP port on the local gateway with UPnP or NAT-PMP and advertise it.
    pub port_mapping: bool,
    /// Also store log lines in SQLite (state_dir/edge-logs.db), readable with `edge logs`.
    pub log_store: bool,
    /// Write `NAME.COMMUNITY` for this edge and every peer into this hosts file (e.g.
    /// /etc/hosts), in a block of its own, removed at exit; empty: off.
    pub hosts_file: String,
    /// Where the machine id lives.
    pub state_dir: PathBuf,
    /// Log filter.
    pub log_level: String,
    /// What loading noted (n2n-go names read, keys ignored), for the daemon to log.
    #[serde(skip)]
    pub notes: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            edge_id: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "edge".into()),
            community: String::new(),
            supernode: Vec::new(),
            local_port: 0,
            tap_name: "n2n0".into(),
            mtu: n2n_protocol::wire::data::DEFAULT_MTU as u16,
            tap_offload: true,
            heartbeat: Duration::from_secs(10),
            udp_buffer_size: 4 << 20,
            api_listen: "127.0.0.1:7778".into(),
            passphrase: String::new(),
            compress: false,
            static_ip: None,
            supernode_fingerprint: None,
            port_mapping: true,
            log_store: false,
            hosts_file: String::new(),
            state_dir: default_state_dir(),
            log_level: "info".into(),
            notes: Vec::new(),
        }
    }
}

pub use n2n_kit::os::default_state_dir;

const KEYS: &[&str] = &[
    "edge_id",
    "community",
    "local_port",
    "tap_name",
    "mtu",
    "tap_offload",
    "heartbeat",
    "udp_buffer_size",
    "api_listen",
    "passphrase",
    "compress",
    "static_ip",
    "supernode_fingerprint",
    "port_mapping",
    "log_store",
    "hosts_file",
    "state_dir",
    "log_level",
];

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
    /// Name shown to peers.
    #[arg(long, short = 'i', alias = "id", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge_id: Option<String>,
    /// Community to join.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub community: Option<String>,
    /// Supernode host:port (repeat or comma-separate for several).
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub supernode: Vec<String>,
    /// Local UDP port.
    #[arg(long, alias = "port")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    /// TAP device name.
    #[arg(long, alias = "tap")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tap_name: Option<String>,
    /// TAP MTU.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    /// Heartbeat period, e.g. 10s.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<String>,
    /// UDP buffer size in bytes.
    #[arg(long, alias = "udpbuffersize")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp_buffer_size: Option<usize>,
    /// Local API address ("" disables it).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_listen: Option<String>,
    /// Community passphrase (prefer N2N_PASSPHRASE or the config file: flags show in `ps`).
    #[arg(long, alias = "encryption-passphrase")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<String>,
    /// Compress frames when it helps.
    #[arg(long, alias = "compress-payload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compress: Option<bool>,
    /// Ask for this virtual IP.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub static_ip: Option<Ipv4Addr>,
    /// Pin the supernode identity (SHA256:...).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supernode_fingerprint: Option<String>,
    /// TCP segmentation offload on the TAP device (-tap-offload false to disable).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tap_offload: Option<bool>,
    /// Map the port with UPnP/NAT-PMP (-port-mapping false to disable).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_mapping: Option<bool>,
    /// Store logs in SQLite too (read them with `edge logs`).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_store: Option<bool>,
    /// Keep peer names in this hosts file, e.g. /etc/hosts ("" to disable).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts_file: Option<String>,
    /// State directory (machine id).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Log level.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
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

/// Management subcommands (they talk to a running edge's local API).
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Run the edge (the default).
    Up {
        /// n2n-go's console-logging switch: accepted; logs always go to standard error.
        #[arg(long, short = 'l', hide = true)]
        stdout_log: bool,
    },
    /// Show the running edge's status.
    Status {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the running edge's peers as a table.
    Peers {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print stored log lines (needs log_store: true).
    Logs(LogsArgs),
    /// Forget the supernode identities seen before (all, or the one at ADDRESS), so the next
    /// contact trusts what it finds: after a supernode's identity really changed.
    TrustSupernode {
        /// The supernode address (host:port as configured, resolved).
        address: Option<std::net::SocketAddr>,
    },
    /// n2n-go's management commands: status, ping, peers, logs, help.
    #[command(hide = true)]
    Ctl {
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Which stored log lines `edge logs` prints.
#[derive(clap::Args, Debug, Clone)]
pub struct LogsArgs {
    /// At most the newest N lines (n2n-go: --count, --limit).
    #[arg(
        long,
        short = 'n',
        default_value_t = 100,
        visible_alias = "count",
        alias = "limit",
        short_alias = 'l'
    )]
    pub last: i64,
    /// Only lines from then on: a time ago (90s, 1h, 2d) or a time (2026-12-01T10:00:00Z).
    #[arg(long, short = 's')]
    pub since: Option<String>,
    /// Only lines up to then, in the same forms (n2n-go: --between -s A -e B).
    #[arg(long, short = 'e', alias = "end")]
    pub until: Option<String>,
    /// Minimum level: error, warn, info, debug, trace.
    #[arg(long, default_value = "trace")]
    pub level: String,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// n2n-go's pretty switch: text is the default here.
    #[arg(long, short = 'p', hide = true)]
    pub pretty: bool,
}

/// A time given as a span ago (`90s`, `1h`, `2d`) or as an RFC 3339 time, in Unix ms.
pub fn parse_when(spec: &str, now: std::time::SystemTime) -> Result<i64, String> {
    let at = match humantime::parse_duration(spec) {
        Ok(ago) => now.checked_sub(ago).unwrap_or(std::time::UNIX_EPOCH),
        Err(_) => humantime::parse_rfc3339_weak(spec).map_err(|_| {
            format!(
                "{spec:?}: want a time ago like 90s, 1h, 2d or a time like 2026-12-01T10:00:00Z"
            )
        })?,
    };
    Ok(at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0))
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
            KEYS,
            LEGACY,
            flags,
        )?;
        if flags.enable_fuze.is_some() {
            notes.push("-enableFuze (n2n-go) has no meaning in n2n-rs; ignored".into());
        }
        let env_supernode =
            std::env::var("N2N_SUPERNODE").or_else(|_| std::env::var("N2N_SUPERNODE_ADDR"));
        let fig = match env_supernode {
            Ok(v) if flags.supernode.is_empty() => {
                fig.merge(figment::providers::Serialized::global(
                    "supernode",
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .collect::<Vec<_>>(),
                ))
            }
            _ => fig,
        };
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
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        let mut v = vec!["edge".to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        Flags::parse_from(cfg::go_style_args(v))
    }

    #[test]
    fn go_style_and_double_dash_flags_and_n2n_go_aliases_work() {
        figment::Jail::expect_with(|_| {
            let s = Settings::load(&flags(&[
                "-community",
                "acme",
                "-supernode",
                "127.0.0.1:7777,127.0.0.1:7778",
            ]))
            .map_err(|e| e.to_string())?;
            assert_eq!(s.community, "acme");
            assert_eq!(s.supernode, ["127.0.0.1:7777", "127.0.0.1:7778"]);
            let s = Settings::load(&flags(&[
                "--community",
                "x",
                "--supernode",
                "127.0.0.1:1",
                "-id",
                "box",
                "-tap",
                "t0",
                "-port",
                "5000",
                "-encryption-passphrase",
                "pw",
                "-compress-payload",
                "true",
                "-udpbuffersize",
                "1024",
            ]))
            .map_err(|e| e.to_string())?;
            assert_eq!(
                (s.edge_id.as_str(), s.tap_name.as_str(), s.local_port),
                ("box", "t0", 5000)
            );
            assert_eq!(
                (s.passphrase.as_str(), s.compress, s.udp_buffer_size),
                ("pw", true, 1024)
            );
            let r = s.resolve().map_err(|e| e.to_string())?;
            assert_eq!(
                r.supernodes,
                vec!["127.0.0.1:1".parse::<SocketAddr>().unwrap()]
            );
            Ok(())
        });
    }

    #[test]
    fn an_n2n_go_edge_yaml_and_its_flags_still_start_the_edge() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "edge.yaml",
                "edge_id: box\ncommunity: acme\nsupernode_addr: \"127.0.0.1:7777\"\n\
                 heartbeat_interval: 20s\napi_listen_address: \"127.0.0.1:9778\"\n\
                 encryption_passphrase: pw\ncompress_payload: true\nenable_vfuze: true\n\
                 protocol_version: 5\nverify_hash: true\nheartbeat: 15s\n",
            )?;
            let f = flags(&["up", "-i", "other", "-l", "-enableFuze"]);
            assert!(matches!(f.command, Some(Command::Up { stdout_log: true })));
            let s = Settings::load(&f).map_err(|e| e.to_string())?;
            assert_eq!(s.supernode, ["127.0.0.1:7777"]);
            assert_eq!(
                s.heartbeat,
                Duration::from_secs(15),
                "our name wins over n2n-go's"
            );
            assert_eq!(
                (s.api_listen.as_str(), s.passphrase.as_str(), s.compress),
                ("127.0.0.1:9778", "pw", true)
            );
            assert_eq!(s.edge_id, "other", "`edge up -i` names the edge");
            let all = s.notes.join("\n");
            for key in [
                "supernode_addr",
                "encryption_passphrase",
                "enable_vfuze",
                "verify_hash",
            ] {
                assert!(all.contains(key), "no note on {key}: {all}");
            }
            assert!(all.contains("-enableFuze"), "{all}");

            jail.create_file("edge.yaml", "community: acme\n")?;
            // Both names in the environment: ours wins, whatever the order.
            jail.set_env("N2N_HEARTBEAT", "7s");
            jail.set_env("N2N_HEARTBEAT_INTERVAL", "9s");
            let s = Settings::load(&flags(&[])).map_err(|e| e.to_string())?;
            assert_eq!(s.heartbeat, Duration::from_secs(7));
            jail.clear_env();
            jail.set_env("N2N_SUPERNODE_ADDR", "127.0.0.1:7000");
            let s = Settings::load(&flags(&[])).map_err(|e| e.to_string())?;
            assert_eq!(s.supernode, ["127.0.0.1:7000"]);
            assert!(
                s.notes.len() == 1
                    && s.notes[0].contains("N2N_")
                    && s.notes[0].contains("supernode_addr"),
                "{:?}",
                s.notes
            );
            Ok(())
        });
    }

    #[test]
    fn logs_takes_n2n_go_forms_and_times_ago_or_absolute() {
        let f = flags(&[
            "logs",
            "-l",
            "5",
            "-s",
            "1h",
            "-e",
            "2026-12-01T10:00:00Z",
            "-p",
        ]);
        let Some(Command::Logs(a)) = f.command else {
            panic!("{:?}", f.command)
        };
        assert_eq!(a.last, 5);
        assert_eq!(
            (a.since.as_deref(), a.until.as_deref()),
            (Some("1h"), Some("2026-12-01T10:00:00Z"))
        );
        let f = flags(&["logs", "--count", "7", "--end", "10m"]);
        assert!(matches!(
            f.command,
            Some(Command::Logs(LogsArgs { last: 7, .. }))
        ));
        let now = std::time::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        assert_eq!(parse_when("1h", now), Ok((2_000_000_000 - 3600) * 1000));
        assert_eq!(
            parse_when("2026-12-01T10:00:00Z", now),
            Ok(1_796_119_200_000)
        );
        assert!(
            parse_when("yesterday-ish", now)
                .unwrap_err()
                .contains("90s")
        );
        let f = flags(&["ctl", "logs", "pretty"]);
        assert!(
            matches!(f.command, Some(Command::Ctl { ref args }) if args == &["logs", "pretty"])
        );
    }

    #[test]
    fn layering_file_env_flags_and_errors_name_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "edge.yaml",
                "community: fromfile\nsupernode: [\"127.0.0.1:7777\"]\nmtu: 1300\nheartbeat: 20s\n",
            )?;
            jail.set_env("N2N_MTU", "1200");
            jail.set_env("N2N_LISTEN", "ignored: a supernode key");
            let s = Settings::load(&flags(&["-heartbeat", "5s"])).map_err(|e| e.to_string())?;
            assert_eq!(s.community, "fromfile");
            assert_eq!(s.mtu, 1200, "env over file");
            assert_eq!(s.heartbeat, Duration::from_secs(5), "flags over file");
            jail.set_env("N2N_SUPERNODE", "127.0.0.1:9,127.0.0.1:10");
            let s = Settings::load(&flags(&[])).map_err(|e| e.to_string())?;
            assert_eq!(s.supernode, ["127.0.0.1:9", "127.0.0.1:10"]);

            jail.create_file("bad.yaml", "community: a\ntapname: x\n")?;
            let e = Settings::load(&flags(&["-config", "bad.yaml"])).unwrap_err();
            assert!(e.contains("tapname") && e.contains("unknown field"), "{e}");
            let e = Settings::load(&flags(&["-heartbeat", "often"])).unwrap_err();
            assert!(e.starts_with("heartbeat:"), "{e}");
            let e = Settings::load(&flags(&[
                "-community",
                "a",
                "-supernode",
                "x:1",
                "-mtu",
                "100",
            ]))
            .and_then(Settings::resolve)
            .unwrap_err();
            assert!(e.starts_with("mtu:"), "{e}");
            std::fs::remove_file("edge.yaml").map_err(|e| e.to_string())?;
            let e = Settings::load(&flags(&["-supernode", "127.0.0.1:1"]))
                .and_then(Settings::resolve)
                .unwrap_err();
            assert!(e.starts_with("community:"), "{e}");
            let e = Settings::load(&flags(&[
                "-community",
                "a",
                "-supernode",
                "127.0.0.1:1",
                "-supernode-fingerprint",
                "nope",
            ]))
            .and_then(Settings::resolve)
            .unwrap_err();
            assert!(e.starts_with("supernode_fingerprint:"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn the_example_config_file_loads() {
        figment::Jail::expect_with(|_| {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/edge.yaml");
            let s = Settings::load(&flags(&["-config", path])).map_err(|e| e.to_string())?;
            let d = Settings::default();
            assert_eq!(
                (s.mtu, s.tap_name, s.api_listen, s.heartbeat),
                (d.mtu, d.tap_name, d.api_listen, d.heartbeat)
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
