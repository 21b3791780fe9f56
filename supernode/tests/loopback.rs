//! The real supernode (`serve()` in-process, and the `supernode` binary as a process) with
//! real edge cores over UDP on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

mod support;

use n2n_common::crypto::kdf::{CommunityKeys, KdfParams};
use n2n_supernode::config::{CommunitySettings, Settings};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{UdpEdge, edge_config, free_port, get_json, http_get, http_get_host};

struct Daemon {
    udp: SocketAddr,
    api: SocketAddr,
    reload: tokio::sync::mpsc::Sender<Settings>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start_in_process(settings: Settings) -> Daemon {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let udp = socket.local_addr().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (reload, reloads) = tokio::sync::mpsc::channel(1);
    let task = tokio::spawn(n2n_supernode::serve(
        socket,
        Some(listener),
        settings,
        async {
            let _ = stopped.await;
        },
        reloads,
    ));
    Daemon {
        udp,
        api,
        reload,
        stop: Some(stop),
        task,
    }
}

impl Daemon {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

/// Gives `community` an admission secret derived from `passphrase`.
fn restrict(s: &mut Settings, community: &str, passphrase: &str) {
    let key =
        CommunityKeys::derive(community, Some(passphrase), KdfParams::FAST_INSECURE).admission;
    s.communities.insert(
        community.into(),
        CommunitySettings {
            admission_key: Some(n2n_common::config::HexKey(key)),
            ..Default::default()
        },
    );
}

fn settings(dir: &std::path::Path) -> Settings {
    Settings {
        state_dir: dir.to_path_buf(),
        ..Settings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_and_the_api_answer_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let sn = start_in_process(settings(dir.path())).await;
    let a = UdpEdge::start(edge_config("acme", Some("pw"), 1, sn.udp), 1).await;
    let b = UdpEdge::start(edge_config("acme", Some("pw"), 2, sn.udp), 2).await;
    for e in [&a, &b] {
        assert!(
            e.wait(Duration::from_secs(10), |c| c.is_registered()
                && c.peers().len() == 1)
                .await
        );
    }
    let (ip_a, ip_b) = (a.ip().unwrap(), b.ip().unwrap());
    assert_ne!(ip_a, ip_b);

    let (code, status) = get_json(sn.api, "/status").await;
    assert_eq!(code, 200);
    assert_eq!(status["edges"], 2);
    assert_eq!(status["communities"], 1);
    assert_eq!(status["registrations"], 2);
    assert_eq!(status["listen"], sn.udp.to_string());
    assert!(
        status["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:")
    );
    assert_eq!(status["store_errors"], 0);
    // Behind a reverse proxy the Host is the proxy's name: answered.
    let (code, _) = http_get_host(sn.api, "/status", "status.example.org").await;
    assert_eq!(code, 200);

    let (_, communities) = get_json(sn.api, "/communities").await;
    let c = &communities[0];
    assert_eq!(c["name"], "acme");
    assert_eq!(c["edges"], 2);
    assert_eq!(c["leases"], 2);
    assert_eq!(c["open"], true);
    let subnet: n2n_common::config::Ipv4Net = c["subnet"].as_str().unwrap().parse().unwrap();
    assert_eq!(subnet.prefix, 24);

    let (_, edges) = get_json(sn.api, "/communities/acme/edges").await;
    let edges = edges.as_array().unwrap();
    assert_eq!(edges.len(), 2);
    let ea = edges.iter().find(|e| e["ip"] == ip_a.to_string()).unwrap();
    assert_eq!(ea["endpoint"], a.addr.to_string());
    assert_eq!(ea["desc"], "edge-1");
    assert_eq!(ea["mac"], a.core.lock().unwrap().config().mac.to_string());
    assert_eq!(ea["id"], a.core.lock().unwrap().edge_id().unwrap());
    assert!(ea["last_seen_secs_ago"].as_u64().unwrap() < 10);

    let (_, leases) = get_json(sn.api, "/leases.json").await;
    let leases = leases.as_array().unwrap();
    assert_eq!(leases.len(), 2);
    assert!(
        leases
            .iter()
            .all(|l| l["online"] == true && l["community"] == "acme")
    );

    let (code, missing) = get_json(sn.api, "/communities/nope/edges").await;
    assert_eq!(code, 404);
    assert!(missing["error"].as_str().unwrap().contains("nope"));
    let (code, _) = get_json(sn.api, "/no/such/thing").await;
    assert_eq!(code, 404);

    let (code, metrics) = http_get(sn.api, "/metrics").await;
    assert_eq!(code, 200);
    assert!(metrics.contains("\nn2n_supernode_edges 2\n"), "{metrics}");
    assert!(metrics.contains("n2n_supernode_registrations_total 2"));
    assert!(metrics.contains("n2n_supernode_community_edges{community=\"acme\"} 2"));
    assert!(metrics.contains("n2n_supernode_drops_total{reason=\"rate_limited\"}"));
    sn.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_with_a_clear_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.allow_open = false;
    restrict(&mut s, "acme", "right");
    let sn = start_in_process(s).await;
    let good = UdpEdge::start(edge_config("acme", Some("right"), 1, sn.udp), 1).await;
    let bad = UdpEdge::start(edge_config("acme", Some("wrong"), 2, sn.udp), 2).await;
    assert!(
        good.wait(Duration::from_secs(10), |c| c.is_registered())
            .await
    );
    assert!(bad.wait(Duration::from_secs(10), |_| false).await || bad.refusal().is_some());
    let reason = bad.refusal().expect("the refusal reached the edge");
    assert!(
        reason.contains("wrong or missing community secret"),
        "{reason}"
    );
    let (_, status) = get_json(sn.api, "/status").await;
    assert_eq!(status["edges"], 1);
    assert!(status["drops"]["admission_refused"].as_u64().unwrap() >= 1);
    let (_, communities) = get_json(sn.api, "/communities").await;
    assert_eq!(communities[0]["open"], false);
    sn.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_adds_a_secret_keeps_members_and_turns_strangers_away() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.heartbeat = Duration::from_secs(1);
    s.expiry = Duration::from_secs(5);
    let sn = start_in_process(s.clone()).await;
    let member = UdpEdge::start(edge_config("acme", Some("right"), 1, sn.udp), 1).await;
    let stranger = UdpEdge::start(edge_config("acme", Some("guess"), 2, sn.udp), 2).await;
    for e in [&member, &stranger] {
        assert!(e.wait(Duration::from_secs(10), |c| c.is_registered()).await);
    }
    let ip = member.ip().unwrap();
    // The admin gives the open community a secret and sends SIGHUP.
    restrict(&mut s, "acme", "right");
    sn.reload.send(s).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while stranger.refusal().is_none() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reason = stranger.refusal().expect("the stranger is turned away");
    assert!(
        reason.contains("wrong or missing community secret"),
        "{reason}"
    );
    assert!(
        member
            .wait(Duration::from_secs(10), |c| c.is_registered())
            .await
    );
    assert_eq!(member.ip(), Some(ip), "the member keeps its address");
    let (_, status) = get_json(sn.api, "/status").await;
    assert_eq!(status["edges"], 1, "{status}");
    assert!(status["registrations"].as_u64().unwrap() >= 3, "{status}");
    let (_, communities) = get_json(sn.api, "/communities").await;
    assert_eq!(communities[0]["open"], false);
    sn.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barrage_of_malformed_datagrams_leaves_the_server_serving() {
    let dir = tempfile::tempdir().unwrap();
    let sn = start_in_process(settings(dir.path())).await;
    let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for i in 0..5000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 1500) as usize;
        let mut d: Vec<u8> = (0..len).map(|j| (x >> (j % 56)) as u8).collect();
        if let Some(first) = d.first_mut() {
            *first = [0x10, 0x11, 0x12, 0x05, 0xff][(i % 5) as usize];
        }
        let _ = attacker.send_to(&d, sn.udp).await;
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let _ = attacker.send_to(&[], sn.udp).await;
    // Still serving: an edge registers and the API answers.
    let e = UdpEdge::start(edge_config("acme", None, 3, sn.udp), 3).await;
    assert!(e.wait(Duration::from_secs(10), |c| c.is_registered()).await);
    let (code, status) = get_json(sn.api, "/status").await;
    assert_eq!(code, 200);
    let drops = status["drops"].as_object().unwrap();
    let total: u64 = drops.values().map(|v| v.as_u64().unwrap()).sum();
    // Every datagram that reached the server (the kernel may shed some) was dropped and
    // counted, apart from the few the genuine edge sent.
    let received = status["datagrams"].as_u64().unwrap();
    assert!(
        received >= 500,
        "the barrage reached the server: {received}"
    );
    assert!(
        total + 10 >= received,
        "malformed input counted: {total} of {received}: {drops:?}"
    );
    assert_eq!(status["edges"], 1);
    sn.stop().await;
}

fn spawn_binary(dir: &std::path::Path, udp: u16, api: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_supernode"))
        .args([
            "-listen",
            &format!("127.0.0.1:{udp}"),
            "-api-listen",
            &format!("127.0.0.1:{api}"),
        ])
        .args(["-state-dir", dir.to_str().unwrap(), "-log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start supernode")
}

async fn wait_api(api: SocketAddr) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(api).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("API did not come up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_survive_kill_9_and_a_restart_of_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let (udp, api) = (free_port(), free_port());
    let sn_addr: SocketAddr = format!("127.0.0.1:{udp}").parse().unwrap();
    let api_addr: SocketAddr = format!("127.0.0.1:{api}").parse().unwrap();
    let mut child = spawn_binary(dir.path(), udp, api);
    wait_api(api_addr).await;
    let a = UdpEdge::start(edge_config("acme", Some("pw"), 1, sn_addr), 1).await;
    assert!(a.wait(Duration::from_secs(10), |c| c.is_registered()).await);
    let (ip, id) = (a.ip().unwrap(), a.core.lock().unwrap().edge_id().unwrap());

    child.kill().unwrap(); // SIGKILL: no chance to flush anything
    child.wait().unwrap();
    let mut child = spawn_binary(dir.path(), udp, api);
    wait_api(api_addr).await;
    // The running edge notices (unknown session -> signed hello -> new key epoch) and
    // re-registers; a brand-new edge process on the same machine gets the same lease too.
    assert!(
        a.wait(Duration::from_secs(30), |c| c.stats().registrations >= 2
            && c.is_registered())
            .await
    );
    assert_eq!(
        (a.ip().unwrap(), a.core.lock().unwrap().edge_id().unwrap()),
        (ip, id)
    );
    drop(a);
    let again = UdpEdge::start(edge_config("acme", Some("pw"), 1, sn_addr), 9).await;
    assert!(
        again
            .wait(Duration::from_secs(10), |c| c.is_registered())
            .await
    );
    assert_eq!(again.ip().unwrap(), ip);
    let (_, leases) = get_json(api_addr, "/leases.json").await;
    assert_eq!(leases.as_array().unwrap().len(), 1);

    // SIGTERM: graceful stop.
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
}
