//! The real `supernode` and `edge` binaries in network namespaces this test creates, with
//! real TAP devices: addresses from the lease, ping, a checked TCP transfer, IPv6 link-local,
//! ARP, the local API, the TAP device removed at exit, and an IPv6-only underlay. Needs root (CI runs as root).

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{Lab, api, ok, sh, wait_for};

/// The IPv6 link-local address of n2n0 in `ns`, waiting until it is no longer tentative.
fn link_local(lab: &Lab, ns: &str) -> String {
    let mut addr = String::new();
    wait_for(
        &format!("{ns}'s IPv6 link-local address"),
        Duration::from_secs(10),
        || {
            let out = ok(&[
                "ip",
                "-n",
                &lab.ns(ns),
                "-6",
                "-o",
                "addr",
                "show",
                "dev",
                "n2n0",
                "scope",
                "link",
            ]);
            if out.contains("tentative") {
                return false;
            }
            addr = out
                .split_whitespace()
                .skip_while(|w| *w != "inet6")
                .nth(1)
                .unwrap_or("")
                .split('/')
                .next()
                .unwrap_or("")
                .to_string();
            !addr.is_empty()
        },
    );
    addr
}

#[test]
fn two_edges_in_namespaces_carry_ipv4_ipv6_arp_and_tcp_over_real_taps() {
    assert!(
        n2n_kit::config::is_root(),
        "this test needs root (network namespaces and TAP devices); CI runs as root"
    );
    let mut lab = Lab::new();
    let edge = PathBuf::from(env!("CARGO_BIN_EXE_edge"));
    lab.start_supernode();
    // alpha cuts TCP super-frames itself (TAP offload, the default); bravo reads frame by
    // frame. The transfers below cross both ways, so both paths carry every byte.
    // alpha keeps peer names in its /etc/hosts: `ip netns exec` mounts this file there.
    let etc_a = EtcNetns::new(&lab.ns("a"), "127.0.0.1\tlocalhost\n");
    // alpha has three packet workers (TAP queues), bravo two: flows spread over them.
    for (ns, name, offload, workers) in [("a", "alpha", "true", "3"), ("b", "bravo", "false", "2")]
    {
        let state = lab.dir.path().join(ns);
        let hosts = if ns == "a" { "/etc/hosts" } else { "" };
        let args = [
            "-hosts-file",
            hosts,
            "-community",
            "acme",
            "-supernode",
            "192.0.2.1:7777",
            "-passphrase",
            "test-secret",
            "-edge-id",
            name,
            "-state-dir",
            state.to_str().unwrap(),
            "-tap",
            "n2n0",
            "-log-store",
            "true",
            "-tap-offload",
            offload,
            "-workers",
            workers,
        ];
        lab.spawn(ns, &edge, &args, &format!("{ns}.log"));
    }
    wait_both_direct(&lab, &edge, "both edges registered with a direct path");
    let (sa, sb) = (api(&lab, "a", "status"), api(&lab, "b", "status"));
    assert_eq!(sa["registered"], true);
    let (ip_a, ip_b) = (
        sa["ip"].as_str().unwrap().to_string(),
        sb["ip"].as_str().unwrap().to_string(),
    );
    assert_ne!(ip_a, ip_b);
    assert_eq!(sa["prefix"], 24);
    // The TAP device carries the leased address and the edge's MAC.
    let link = ok(&[
        "ip",
        "-n",
        &lab.ns("a"),
        "-o",
        "addr",
        "show",
        "dev",
        "n2n0",
    ]);
    assert!(link.contains(&format!("{ip_a}/24")), "{link}");
    let mac_a = sa["mac"].as_str().unwrap();
    assert!(ok(&["ip", "-n", &lab.ns("a"), "link", "show", "n2n0"]).contains(mac_a));

    // The API, field by field.
    let pa = api(&lab, "a", "peers");
    let peer = &pa["peers"][0];
    assert_eq!(peer["ip"], ip_b);
    assert_eq!(peer["mac"], sb["mac"]);
    assert_eq!(peer["desc"], "bravo");
    assert_eq!(peer["path"], "direct");
    assert_eq!(
        peer["endpoint"]
            .as_str()
            .unwrap()
            .split(':')
            .next()
            .unwrap(),
        "192.0.2.12"
    );
    assert_eq!(pa["self"]["desc"], "alpha");
    assert_eq!(pa["self"]["community"], "acme");

    // From this machine the API answers only requests addressed to localhost: a web page
    // that rebinds its own name to 127.0.0.1 gets nothing.
    let code = |host: &str| {
        let o = lab.exec(
            "a",
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                &format!("Host: {host}"),
                "http://127.0.0.1:7778/peers.json",
            ],
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    assert_eq!(code("rebind.evil.example:7778"), "421");
    assert_eq!(code("localhost:7778"), "200");

    // Names: the system resolver in a finds bravo (and alpha itself) by name.
    wait_for("bravo.acme resolves in a", Duration::from_secs(10), || {
        let o = lab.exec("a", &["getent", "hosts", "bravo.acme"]);
        String::from_utf8_lossy(&o.stdout).starts_with(&format!("{ip_b} "))
    });
    let me = lab.exec("a", &["getent", "hosts", "alpha.acme"]);
    assert!(String::from_utf8_lossy(&me.stdout).starts_with(&format!("{ip_a} ")));

    // IPv4 ping, and ARP resolved the peer's TAP MAC.
    let ping = lab.exec("a", &["ping", "-c", "3", "-i", "0.2", "-W", "2", &ip_b]);
    assert!(
        ping.status.success(),
        "ping: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let neigh = ok(&["ip", "-n", &lab.ns("a"), "neigh", "show", "dev", "n2n0"]);
    assert!(
        neigh.contains(&ip_b) && neigh.contains(sb["mac"].as_str().unwrap()),
        "ARP: {neigh}"
    );

    // IPv6 link-local across the overlay (multicast neighbour discovery included), once
    // both addresses finished duplicate address detection.
    let ll_b = link_local(&lab, "b");
    link_local(&lab, "a");
    let target = format!("{ll_b}%n2n0");
    let ping6 = lab.exec(
        "a",
        &[
            "ping", "-6", "-c", "5", "-i", "0.2", "-W", "2", "-w", "6", &target,
        ],
    );
    assert!(
        ping6.status.success(),
        "ping6: {}{}",
        String::from_utf8_lossy(&ping6.stdout),
        String::from_utf8_lossy(&ping6.stderr)
    );

    // The kernel hands alpha TCP super-frames; bravo's device segments nothing.
    let tso = |ns: &str| {
        let k = ok(&["ip", "netns", "exec", &lab.ns(ns), "ethtool", "-k", "n2n0"]);
        k.lines()
            .any(|l| l.starts_with("tcp-segmentation-offload: on"))
    };
    assert!(tso("a") && !tso("b"), "TAP offload on alpha only");

    // TCP: 4 MiB of a known pattern each way, every byte checked on the far side.
    tcp_transfer(&lab, "a", "b", &ip_b);
    tcp_transfer(&lab, "b", "a", &ip_a);
    // alpha cut what it sent and joined what it received; bravo did neither.
    let (sa, sb) = (api(&lab, "a", "status"), api(&lab, "b", "status"));
    assert!(sa["tap_superframes_read"].as_u64().unwrap() > 0, "{sa}");
    assert!(sa["tap_superframes_written"].as_u64().unwrap() > 0, "{sa}");
    assert_eq!(sb["tap_superframes_read"], 0);
    assert_eq!(sb["tap_superframes_written"], 0);

    // 32 TCP flows at once each way, every byte checked: each flow stays on one worker,
    // and every queue of both edges carried some of them.
    parallel_tcp(&lab, "a", "b", &ip_b, 32);
    parallel_tcp(&lab, "b", "a", &ip_a, 32);
    for (ns, queues) in [("a", 3), ("b", 2)] {
        let st = api(&lab, ns, "status");
        let q = st["queues"].as_array().unwrap();
        assert_eq!(q.len(), queues, "{ns}: {st}");
        for (i, c) in q.iter().enumerate() {
            assert!(
                c["tap_read"].as_u64().unwrap() > 10 && c["tap_written"].as_u64().unwrap() > 10,
                "{ns} queue {i} carried no flow: {q:?}"
            );
        }
        let datagrams: u64 = q.iter().map(|c| c["datagrams"].as_u64().unwrap()).sum();
        assert!(datagrams > 1000, "{ns}: {q:?}");
    }

    // Logs were stored in SQLite too, and `edge logs` reads them.
    let state_a = lab.dir.path().join("a");
    let logs = lab.exec(
        "a",
        &[
            edge.to_str().unwrap(),
            "logs",
            "-state-dir",
            state_a.to_str().unwrap(),
            "-n",
            "500",
        ],
    );
    let (out, err) = (
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr),
    );
    assert!(
        out.contains("registered") && out.contains("INFO"),
        "edge logs: {out}{err}"
    );

    // Clean exit: SIGTERM removes the TAP device.
    let pid = lab.children[1].id().to_string();
    ok(&["kill", "-TERM", &pid]);
    let status = lab.children[1].wait().unwrap();
    assert!(
        status.success(),
        "edge exit status {status:?}\n{}",
        lab.log("a.log")
    );
    wait_for("n2n0 gone in a", Duration::from_secs(5), || {
        !sh(&["ip", "-n", &lab.ns("a"), "link", "show", "n2n0"])
            .status
            .success()
    });
    assert_eq!(
        etc_a.hosts(),
        "127.0.0.1\tlocalhost\n",
        "names removed at exit"
    );
    assert!(
        lab.log("a.log").contains("registered"),
        "{}",
        lab.log("a.log")
    );
}

#[test]
fn an_ipv6_only_underlay_carries_the_overlay() {
    assert!(
        n2n_kit::config::is_root(),
        "this test needs root (network namespaces and TAP devices); CI runs as root"
    );
    let mut lab = Lab::new();
    let edge = PathBuf::from(env!("CARGO_BIN_EXE_edge"));
    // The hosts lose their IPv4 addresses and get IPv6 ones only.
    for (ns, host) in [("sn", 1), ("a", 0x11), ("b", 0x12)] {
        ok(&[
            "ip",
            "-n",
            &lab.ns(ns),
            "-4",
            "addr",
            "flush",
            "dev",
            "eth0",
        ]);
        ok(&[
            "ip",
            "-n",
            &lab.ns(ns),
            "addr",
            "add",
            &format!("fd00:2::{host:x}/64"),
            "dev",
            "eth0",
            "nodad",
        ]);
    }
    // The supernode host has a second address, the one edges are given: its answers must
    // come from it, not from the address the kernel would pick.
    for extra in ["fd00:2::99/64", "fd00:2::98/64"] {
        ok(&[
            "ip",
            "-n",
            &lab.ns("sn"),
            "addr",
            "add",
            extra,
            "dev",
            "eth0",
            "nodad",
        ]);
    }
    // `-listen :7777` (the default's form) takes IPv6 too.
    lab.start_supernode();
    for (ns, name) in [("a", "alpha"), ("b", "bravo")] {
        let state = lab.dir.path().join(ns);
        let args = [
            "-community",
            "six",
            "-supernode",
            "[fd00:2::99]:7777",
            "-passphrase",
            "test-secret",
            "-edge-id",
            name,
            "-state-dir",
            state.to_str().unwrap(),
            "-port-mapping",
            "false",
        ];
        lab.spawn(ns, &edge, &args, &format!("{ns}.log"));
    }
    wait_both_direct(
        &lab,
        &edge,
        "both edges registered over IPv6 with a direct path",
    );
    let pa = api(&lab, "a", "peers");
    let endpoint = pa["peers"][0]["endpoint"].as_str().unwrap().to_string();
    assert!(endpoint.starts_with("[fd00:2::12]:"), "{endpoint}");
    let sb = api(&lab, "b", "status");
    let ip_b = sb["ip"].as_str().unwrap().to_string();
    let ping = lab.exec("a", &["ping", "-c", "3", "-i", "0.2", "-W", "2", &ip_b]);
    assert!(
        ping.status.success(),
        "ping: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let ip_a = api(&lab, "a", "status")["ip"].as_str().unwrap().to_string();
    tcp_transfer(&lab, "a", "b", &ip_b);
    tcp_transfer(&lab, "b", "a", &ip_a);
}

/// Waits until the edges in a and b each list the other as their one peer, reached directly.
fn wait_both_direct(lab: &Lab, edge: &std::path::Path, what: &str) {
    wait_for(what, Duration::from_secs(40), || {
        ["a", "b"].iter().all(|ns| {
            let o = lab.exec(ns, &[edge.to_str().unwrap(), "peers", "--json"]);
            o.status.success()
                && serde_json::from_slice::<serde_json::Value>(&o.stdout)
                    .map(|v| {
                        v["peers"]
                            .as_array()
                            .is_some_and(|p| p.len() == 1 && p[0]["path"] == "direct")
                    })
                    .unwrap_or(false)
        })
    });
}

/// `/etc/netns/NS/`, which `ip netns exec NS` mounts over `/etc`: here, a hosts file.
struct EtcNetns(PathBuf);

impl EtcNetns {
    fn new(ns: &str, hosts: &str) -> Self {
        let dir = PathBuf::from("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hosts"), hosts).unwrap();
        Self(dir)
    }

    fn hosts(&self) -> String {
        std::fs::read_to_string(self.0.join("hosts")).unwrap()
    }
}

impl Drop for EtcNetns {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn without_privileges_the_edge_fails_with_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_edge"))
        .args([
            "-community",
            "x",
            "-supernode",
            "127.0.0.1:9",
            "-api-listen",
            "",
            "-tap",
            "n2nperm0",
        ])
        .args(["-state-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("cannot create TAP device n2nperm0: permission denied (run as root or grant CAP_NET_ADMIN)"), "{err}");
}

/// Opens `flows` TCP connections at once from namespace `from` to `to` (at `ip_to`), each
/// carrying 256 KiB of its own pattern, and checks what every one delivered.
fn parallel_tcp(lab: &Lab, from: &str, to: &str, ip_to: &str, flows: usize) {
    let server = format!(
        "import socket,hashlib,threading\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',5002));s.listen({flows})\nout=[]\ndef rx(c):\n  h=hashlib.sha256();n=0\n  while True:\n    d=c.recv(65536)\n    if not d: break\n    h.update(d);n+=len(d)\n  out.append('%d %s'%(n,h.hexdigest()))\nts=[]\nfor _ in range({flows}):\n  c,_=s.accept();t=threading.Thread(target=rx,args=(c,));t.start();ts.append(t)\nfor t in ts: t.join()\nprint('\\n'.join(sorted(out)))"
    );
    let rx = Command::new("ip")
        .args(["netns", "exec", &lab.ns(to), "python3", "-c", &server])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let client = format!(
        "import socket,hashlib,threading\nout=[]\ndef tx(k):\n  data=bytes((i*7+k)%256 for i in range(256<<10))\n  c=socket.create_connection(('{ip_to}',5002),timeout=20)\n  c.sendall(data);c.close()\n  out.append('%d %s'%(len(data),hashlib.sha256(data).hexdigest()))\nts=[threading.Thread(target=tx,args=(k,)) for k in range({flows})]\nfor t in ts: t.start()\nfor t in ts: t.join()\nprint('\\n'.join(sorted(out)))"
    );
    let tx = lab.exec(from, &["python3", "-c", &client]);
    assert!(
        tx.status.success(),
        "clients {from} -> {to}: {}",
        String::from_utf8_lossy(&tx.stderr)
    );
    let got = rx.wait_with_output().unwrap();
    let (sent, received) = (
        String::from_utf8_lossy(&tx.stdout),
        String::from_utf8_lossy(&got.stdout),
    );
    assert_eq!(sent.lines().count(), flows, "{sent}");
    assert_eq!(sent.trim(), received.trim(), "flows differ {from} -> {to}");
}

/// Sends 4 MiB of a known pattern over TCP from namespace `from` to `to` (at `ip_to`) and
/// checks the receiver's count and SHA-256 against the sender's.
fn tcp_transfer(lab: &Lab, from: &str, to: &str, ip_to: &str) {
    let server = "import socket,hashlib\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',5001));s.listen(1);c,_=s.accept();h=hashlib.sha256();n=0\nwhile True:\n  d=c.recv(65536)\n  if not d: break\n  h.update(d);n+=len(d)\nprint(n,h.hexdigest())";
    let rx = Command::new("ip")
        .args(["netns", "exec", &lab.ns(to), "python3", "-c", server])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let client = format!(
        "import socket,hashlib\ndata=bytes((i*7+i//251)%256 for i in range(4<<20))\nc=socket.create_connection(('{ip_to}',5001),timeout=20)\nc.sendall(data);c.close()\nprint(len(data),hashlib.sha256(data).hexdigest())"
    );
    let tx = lab.exec(from, &["python3", "-c", &client]);
    assert!(
        tx.status.success(),
        "client {from} -> {to}: {}",
        String::from_utf8_lossy(&tx.stderr)
    );
    let got = rx.wait_with_output().unwrap();
    let (sent, received) = (
        String::from_utf8_lossy(&tx.stdout),
        String::from_utf8_lossy(&got.stdout),
    );
    assert_eq!(sent.trim(), received.trim(), "bytes differ {from} -> {to}");
    assert!(sent.starts_with("4194304 "));
}
