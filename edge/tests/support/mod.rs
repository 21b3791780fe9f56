//! Network-namespace helpers for the edge's integration tests: a lab whose namespaces and
//! processes are removed on drop, pass or fail.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::expect_used
)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Namespaces and processes of one test; everything is removed on drop, pass or fail.
pub struct Lab {
    pub prefix: String,
    pub children: Vec<Child>,
    pub dir: tempfile::TempDir,
    /// Namespaces added beyond sw, sn, a, b.
    pub extra: Vec<String>,
}

pub fn sh(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

pub fn ok(args: &[&str]) -> String {
    let o = sh(args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

impl Lab {
    pub fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// sw (bridge) + sn, a, b on 192.0.2.0/24 (TEST-NET-1), nothing routed anywhere else.
    pub fn new() -> Self {
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("n2nt{}{seq}-", std::process::id() % 100000);
        let lab = Lab {
            prefix,
            children: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
            extra: Vec::new(),
        };
        let sw = lab.ns("sw");
        ok(&["ip", "netns", "add", &sw]);
        ok(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"]);
        ok(&["ip", "-n", &sw, "link", "set", "br0", "up"]);
        for (i, host) in ["sn", "a", "b"].iter().enumerate() {
            let ns = lab.ns(host);
            ok(&["ip", "netns", "add", &ns]);
            ok(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            let port = format!("p{i}");
            ok(&[
                "ip", "link", "add", &port, "netns", &sw, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            ok(&["ip", "-n", &sw, "link", "set", &port, "master", "br0", "up"]);
            ok(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("192.0.2.{}/24", [1, 11, 12][i]),
                "dev",
                "eth0",
            ]);
            ok(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        }
        lab
    }

    pub fn spawn(&mut self, ns: &str, bin: &PathBuf, args: &[&str], log: &str) {
        let log = std::fs::File::create(self.dir.path().join(log)).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(ns)])
            .arg(bin)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    pub fn exec(&self, ns: &str, args: &[&str]) -> Output {
        let name = self.ns(ns);
        let mut v = vec!["ip", "netns", "exec", name.as_str()];
        v.extend_from_slice(args);
        sh(&v)
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for h in self
            .extra
            .iter()
            .map(String::as_str)
            .chain(["a", "b", "sn", "sw"])
        {
            let _ = sh(&["ip", "netns", "del", &self.ns(h)]);
        }
    }
}

pub fn supernode_bin() -> PathBuf {
    let edge = PathBuf::from(env!("CARGO_BIN_EXE_edge"));
    let sn = edge.with_file_name("supernode");
    if !sn.exists() {
        let release = edge.parent().unwrap().ends_with("release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-p", "n2n-supernode", "--bin", "supernode"]);
        if release {
            cmd.arg("--release");
        }
        assert!(
            cmd.status().unwrap().success(),
            "building the supernode failed"
        );
    }
    sn
}

pub fn wait_for(what: &str, max: Duration, f: impl FnMut() -> bool) {
    assert!(wait_until(max, f), "timed out waiting for {what}");
}

/// Polls `f` until it holds or `max` passes; returns whether it held.
pub fn wait_until(max: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + max;
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

pub fn api(lab: &Lab, ns: &str, what: &str) -> serde_json::Value {
    let o = lab.exec(ns, &[env!("CARGO_BIN_EXE_edge"), what, "--json"]);
    assert!(
        o.status.success(),
        "edge {what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The external address miniupnpd reports (see [`Lab::start_miniupnpd`]).
pub const EXT_IP: &str = "198.20.0.21";

impl Lab {
    /// Adds a NAT router `r` on the public segment (WAN 192.0.2.21, LAN 10.1.0.1/24) with a
    /// host `n` behind it (10.1.0.2), masquerading through an nftables table `n2nlab` whose
    /// chains miniupnpd fills.
    pub fn add_upnp_router(&mut self) {
        let (r, n, sw) = (self.ns("r"), self.ns("n"), self.ns("sw"));
        self.extra.extend(["r".to_string(), "n".to_string()]);
        for ns in [&r, &n] {
            ok(&["ip", "netns", "add", ns]);
            ok(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        ok(&[
            "ip", "link", "add", "pr", "netns", &sw, "type", "veth", "peer", "name", "eth0",
            "netns", &r,
        ]);
        ok(&["ip", "-n", &sw, "link", "set", "pr", "master", "br0", "up"]);
        ok(&[
            "ip",
            "-n",
            &r,
            "addr",
            "add",
            "192.0.2.21/24",
            "dev",
            "eth0",
        ]);
        ok(&["ip", "-n", &r, "link", "set", "eth0", "up"]);
        ok(&[
            "ip", "link", "add", "lan0", "netns", &r, "type", "veth", "peer", "name", "eth0",
            "netns", &n,
        ]);
        ok(&["ip", "-n", &r, "addr", "add", "10.1.0.1/24", "dev", "lan0"]);
        ok(&["ip", "-n", &r, "link", "set", "lan0", "up"]);
        ok(&["ip", "-n", &n, "addr", "add", "10.1.0.2/24", "dev", "eth0"]);
        ok(&["ip", "-n", &n, "link", "set", "eth0", "up"]);
        ok(&["ip", "-n", &n, "route", "add", "default", "via", "10.1.0.1"]);
        ok(&[
            "ip",
            "netns",
            "exec",
            &r,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        let rules = "table inet n2nlab {
  chain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }
  chain miniupnpd { }
  chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
  chain prerouting_miniupnpd { }
  chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; oifname \"eth0\" masquerade; }
  chain postrouting_miniupnpd { }
}
";
        let file = self.dir.path().join("router.nft");
        std::fs::write(&file, rules).unwrap();
        ok(&[
            "ip",
            "netns",
            "exec",
            &r,
            "nft",
            "-f",
            file.to_str().unwrap(),
        ]);
    }

    /// Starts miniupnpd in the router with UPnP and/or NAT-PMP. miniupnpd refuses to map
    /// when its external address is private or documentation space, so it is told the WAN
    /// is [`EXT_IP`]: that address is only ever reported, never assigned or sent to.
    pub fn start_miniupnpd(&mut self, upnp: bool, natpmp: bool) {
        let conf = format!(
            "ext_ifname=eth0\next_ip={EXT_IP}\nlistening_ip=lan0\nport=0\nenable_upnp={}\nenable_natpmp={}\nsecure_mode=yes\nsystem_uptime=yes\n\
             uuid=3e3e3e3e-3e3e-4e3e-8e3e-3e3e3e3e3e3e\nupnp_table_name=n2nlab\nupnp_nat_table_name=n2nlab\n\
             upnp_forward_chain=miniupnpd\nupnp_nat_chain=prerouting_miniupnpd\nupnp_nat_postrouting_chain=postrouting_miniupnpd\n\
             lease_file={}\nallow 1024-65535 10.1.0.0/24 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n",
            if upnp { "yes" } else { "no" },
            if natpmp { "yes" } else { "no" },
            self.dir.path().join("upnp.leases").display()
        );
        let file = self.dir.path().join("miniupnpd.conf");
        std::fs::write(&file, conf).unwrap();
        let bin = std::path::PathBuf::from("/usr/sbin/miniupnpd");
        let args = ["-d", "-f", file.to_str().unwrap()];
        self.spawn("r", &bin, &args, "miniupnpd.log");
    }

    /// The router's miniupnpd DNAT chain, as nft prints it.
    pub fn upnp_rules(&self) -> String {
        ok(&[
            "ip",
            "netns",
            "exec",
            &self.ns("r"),
            "nft",
            "list",
            "chain",
            "inet",
            "n2nlab",
            "prerouting_miniupnpd",
        ])
    }
}

/// Kinds of site a NAT-lab edge sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// A public host, no NAT.
    Public,
    /// Linux masquerade (endpoint-independent mapping, port-dependent filtering), nothing else.
    Masquerade,
    /// Masquerade plus a home router's "drop unsolicited inbound to the router".
    PortRestricted,
    /// Masquerade with random ports: a new mapping per destination.
    Symmetric,
    /// Inbound allowed from any port of addresses the host has sent to (a dynamic nft set).
    AddressRestricted,
    /// A public host behind a stateful firewall that drops unsolicited inbound.
    Firewall,
}

/// The edge port every lab edge binds.
pub const EDGE_PORT: u16 = 40000;

impl Lab {
    /// Only the switch and the supernode host (192.0.2.1).
    pub fn bare() -> Self {
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("n2nl{}{seq}-", std::process::id() % 100000);
        let lab = Lab {
            prefix,
            children: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
            extra: Vec::new(),
        };
        let (sw, sn) = (lab.ns("sw"), lab.ns("sn"));
        ok(&["ip", "netns", "add", &sw]);
        ok(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"]);
        ok(&["ip", "-n", &sw, "link", "set", "br0", "up"]);
        ok(&["ip", "netns", "add", &sn]);
        ok(&["ip", "-n", &sn, "link", "set", "lo", "up"]);
        ok(&[
            "ip", "link", "add", "psn", "netns", &sw, "type", "veth", "peer", "name", "eth0",
            "netns", &sn,
        ]);
        ok(&["ip", "-n", &sw, "link", "set", "psn", "master", "br0", "up"]);
        ok(&[
            "ip",
            "-n",
            &sn,
            "addr",
            "add",
            "192.0.2.1/24",
            "dev",
            "eth0",
        ]);
        ok(&["ip", "-n", &sn, "link", "set", "eth0", "up"]);
        lab
    }

    fn mk(&mut self, name: &str) -> String {
        let ns = self.ns(name);
        ok(&["ip", "netns", "add", &ns]);
        ok(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        self.extra.push(name.to_string());
        ns
    }

    /// Adds site number `i` (1..=9) of `kind`; returns the namespace of its edge host.
    /// Router WAN 192.0.2.(20+i); LAN 10.i.0.0/24 with the host at 10.i.0.2 (public and
    /// firewalled hosts get 192.0.2.(10+i)).
    pub fn add_site(&mut self, i: u8, kind: Site) -> String {
        let sw = self.ns("sw");
        let host = self.mk(&format!("h{i}"));
        if kind == Site::Public {
            ok(&[
                "ip",
                "link",
                "add",
                &format!("ph{i}"),
                "netns",
                &sw,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &host,
            ]);
            ok(&[
                "ip",
                "-n",
                &sw,
                "link",
                "set",
                &format!("ph{i}"),
                "master",
                "br0",
                "up",
            ]);
            ok(&[
                "ip",
                "-n",
                &host,
                "addr",
                "add",
                &format!("192.0.2.{}/24", 10 + i),
                "dev",
                "eth0",
            ]);
            ok(&["ip", "-n", &host, "link", "set", "eth0", "up"]);
            return host;
        }
        let r = self.mk(&format!("r{i}"));
        ok(&[
            "ip",
            "link",
            "add",
            &format!("pr{i}"),
            "netns",
            &sw,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &r,
        ]);
        ok(&[
            "ip",
            "-n",
            &sw,
            "link",
            "set",
            &format!("pr{i}"),
            "master",
            "br0",
            "up",
        ]);
        ok(&[
            "ip",
            "-n",
            &r,
            "addr",
            "add",
            &format!("192.0.2.{}/24", 20 + i),
            "dev",
            "eth0",
        ]);
        ok(&["ip", "-n", &r, "link", "set", "eth0", "up"]);
        ok(&[
            "ip", "link", "add", "lan0", "netns", &r, "type", "veth", "peer", "name", "eth0",
            "netns", &host,
        ]);
        ok(&["ip", "-n", &r, "link", "set", "lan0", "up"]);
        ok(&["ip", "-n", &host, "link", "set", "eth0", "up"]);
        ok(&[
            "ip",
            "netns",
            "exec",
            &r,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        let rules = if kind == Site::Firewall {
            let pub_ip = format!("192.0.2.{}", 10 + i);
            ok(&[
                "ip",
                "-n",
                &r,
                "addr",
                "add",
                &format!("192.0.2.{}/32", 40 + i),
                "dev",
                "lan0",
            ]);
            ok(&[
                "ip",
                "-n",
                &host,
                "addr",
                "add",
                &format!("{pub_ip}/32"),
                "dev",
                "eth0",
            ]);
            ok(&[
                "ip",
                "-n",
                &host,
                "route",
                "add",
                &format!("192.0.2.{}", 40 + i),
                "dev",
                "eth0",
            ]);
            ok(&[
                "ip",
                "-n",
                &host,
                "route",
                "add",
                "default",
                "via",
                &format!("192.0.2.{}", 40 + i),
            ]);
            ok(&["ip", "-n", &r, "route", "add", &pub_ip, "dev", "lan0"]);
            ok(&[
                "ip",
                "netns",
                "exec",
                &r,
                "sysctl",
                "-qw",
                "net.ipv4.conf.eth0.proxy_arp=1",
            ]);
            "table ip lab {\n chain forward { type filter hook forward priority filter; policy accept; iifname \"eth0\" ct state new drop; }\n}\n".to_string()
        } else {
            ok(&[
                "ip",
                "-n",
                &r,
                "addr",
                "add",
                &format!("10.{i}.0.1/24"),
                "dev",
                "lan0",
            ]);
            ok(&[
                "ip",
                "-n",
                &host,
                "addr",
                "add",
                &format!("10.{i}.0.2/24"),
                "dev",
                "eth0",
            ]);
            ok(&[
                "ip",
                "-n",
                &host,
                "route",
                "add",
                "default",
                "via",
                &format!("10.{i}.0.1"),
            ]);
            let masq = if kind == Site::Symmetric {
                "masquerade random"
            } else {
                "masquerade"
            };
            let drop_new = if kind == Site::Masquerade {
                ""
            } else {
                "iifname \"eth0\" ct state new drop;"
            };
            let addr_restricted = if kind == Site::AddressRestricted {
                format!(
                    "set contacted {{ type ipv4_addr; flags timeout; timeout 120s; }}
                     chain forward {{ type filter hook forward priority filter; policy accept; iifname \"lan0\" update @contacted {{ ip daddr }}; }}
                     chain prerouting {{ type nat hook prerouting priority dstnat; policy accept; iifname \"eth0\" ip saddr @contacted udp dport {EDGE_PORT} dnat to 10.{i}.0.2:{EDGE_PORT}; }}"
                )
            } else {
                String::new()
            };
            format!(
                "table ip lab {{
                   {addr_restricted}
                   chain postrouting {{ type nat hook postrouting priority srcnat; policy accept; oifname \"eth0\" {masq}; }}
                   chain input {{ type filter hook input priority filter; policy accept; {drop_new} }}
                 }}"
            )
        };
        let file = self.dir.path().join(format!("r{i}.nft"));
        std::fs::write(&file, rules).unwrap();
        ok(&[
            "ip",
            "netns",
            "exec",
            &r,
            "nft",
            "-f",
            file.to_str().unwrap(),
        ]);
        host
    }

    /// Starts an edge in namespace `ns` named `name`.
    pub fn start_edge(&mut self, ns_name: &str, name: &str, extra: &[&str]) {
        let state = self.dir.path().join(format!("state-{name}"));
        let edge = PathBuf::from(env!("CARGO_BIN_EXE_edge"));
        let port = EDGE_PORT.to_string();
        let mut args = vec![
            "-community",
            "lab",
            "-supernode",
            "192.0.2.1:7777",
            "-passphrase",
            "lab-secret",
            "-edge-id",
            name,
            "-port",
            &port,
            "-port-mapping",
            "false",
            "-state-dir",
            state.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns_name])
            .arg(edge)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    /// Starts the supernode.
    pub fn start_supernode(&mut self) {
        self.start_supernode_with(&[]);
    }

    /// Starts the supernode with extra flags.
    pub fn start_supernode_with(&mut self, extra: &[&str]) {
        let dir = self.dir.path().join("sn");
        let mut args = vec![
            "-listen",
            ":7777",
            "-state-dir",
            dir.to_str().unwrap(),
            "-api-listen",
            "",
            "-log-level",
            "warn",
        ];
        args.extend_from_slice(extra);
        self.spawn("sn", &supernode_bin(), &args, "sn.log");
    }

    /// The peers JSON of the edge in namespace `ns_name`.
    pub fn peers(&self, ns_name: &str) -> Option<serde_json::Value> {
        let o = sh(&[
            "ip",
            "netns",
            "exec",
            ns_name,
            env!("CARGO_BIN_EXE_edge"),
            "peers",
            "--json",
        ]);
        if !o.status.success() {
            return None;
        }
        serde_json::from_slice(&o.stdout).ok()
    }
}
