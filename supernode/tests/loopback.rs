//! The real supernode (`serve()` in-process, and the `supernode` binary as a process) with
//! real edge cores over UDP on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

mod support;

use n2n_protocol::crypto::kdf::{CommunityKeys, KdfParams};
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

/// Configures `community` with the verifier of `passphrase` (only its members may use it).
fn restrict(s: &mut Settings, community: &str, passphrase: &str) {
    let keys = CommunityKeys::derive(community, Some(passphrase), KdfParams::FAST_INSECURE);
    s.communities.insert(
        community.into(),
        CommunitySettings {
            verifiers: vec![n2n_kit::config::HexKey(keys.verifier().unwrap())],
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
    // A passphrase community on a supernode configured with nothing is closed, and kept
    // under its name and verifier.
    let name = c["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("acme~") && name.len() == 5 + 32, "{name}");
    assert_eq!(c["edges"], 2);
    assert_eq!(c["leases"], 2);
    assert_eq!(c["open"], false);
    let subnet: n2n_kit::config::Ipv4Net = c["subnet"].as_str().unwrap().parse().unwrap();
    assert_eq!(subnet.prefix, 24);

    let (_, edges) = get_json(sn.api, &format!("/communities/{name}/edges")).await;
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
            .all(|l| l["online"] == true && l["community"] == name.as_str())
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
    assert!(metrics.contains(&format!(
        "n2n_supernode_community_edges{{community=\"{name}\"}} 2"
    )));
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
    assert!(reason.contains("wrong community passphrase"), "{reason}");
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
    assert!(reason.contains("wrong community passphrase"), "{reason}");
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

/// The operator's answer to a member that lost its identity key: `supernode release-lease`
/// (the binary, through the API with the state dir's token) frees the lease; the API refuses
/// the same request without the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_lease_needs_the_token_and_frees_the_lease_from_its_identity() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    // A dropped edge notices by its missed heartbeat acks.
    s.heartbeat = Duration::from_secs(1);
    s.expiry = Duration::from_secs(5);
    let sn = start_in_process(s).await;
    let a = UdpEdge::start(edge_config("acme", Some("pw"), 1, sn.udp), 1).await;
    assert!(a.wait(Duration::from_secs(10), |c| c.is_registered()).await);
    let (_, leases) = get_json(sn.api, "/leases.json").await;
    let lease = leases[0].clone();
    let identity = lease["identity"].as_str().unwrap().to_string();
    assert_eq!(identity.len(), 64);
    let (community, mac) = (
        lease["community"].as_str().unwrap().to_string(),
        lease["mac"].as_str().unwrap().to_string(),
    );
    let path = format!("/leases/{community}/{mac}/release");
    let mut s = tokio::net::TcpStream::connect(sn.api).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nx-n2n-token: guess\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");

    let run = |args: Vec<String>| {
        std::process::Command::new(env!("CARGO_BIN_EXE_supernode"))
            .args(args)
            .output()
            .unwrap()
    };
    let flags = |c: &str, m: &str| {
        vec![
            "-state-dir".to_string(),
            dir.path().display().to_string(),
            "-api-listen".into(),
            sn.api.to_string(),
            "release-lease".into(),
            c.into(),
            m.into(),
        ]
    };
    let out = tokio::task::spawn_blocking({
        let args = flags(&community, "02:00:00:00:00:99");
        move || run(args)
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no lease"));
    let out = tokio::task::spawn_blocking({
        let args = flags(&community, &mac);
        move || run(args)
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("released") && stdout.contains(&mac),
        "{stdout}"
    );
    // The edge was dropped with the lease; it registers again and binds it anew.
    let (_, leases) = get_json(sn.api, "/leases.json").await;
    assert!(leases[0]["identity"].is_null() || a.core.lock().unwrap().is_registered());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, leases) = get_json(sn.api, "/leases.json").await;
        if leases[0]["identity"] == identity.as_str() && leases[0]["online"] == true {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{leases}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sn.stop().await;
}

/// Issue 12 #8: the event loop awaited every lease write, so a slow or locked database
/// stopped relaying, timers and the API with it. Now the write runs beside the loop: the API
/// answers at once, while the new edge's ack waits for its lease to be stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_write_waiting_on_the_database_holds_only_its_own_ack() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let sn = start_in_process(settings(dir.path())).await;
    let a = UdpEdge::start(edge_config("acme", Some("pw"), 1, sn.udp), 1).await;
    assert!(a.wait(Duration::from_secs(10), |c| c.is_registered()).await);
    // Another process holds the database's write lock.
    let url = format!("sqlite://{}", dir.path().join("supernode.db").display());
    let mut locker = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    let b = UdpEdge::start(edge_config("acme", Some("pw"), 2, sn.udp), 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = std::time::Instant::now();
    let (code, status) = get_json(sn.api, "/status").await;
    assert_eq!(code, 200);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "the API waited {:?} for the database",
        asked.elapsed()
    );
    assert_eq!(status["edges"], 2, "b is admitted in memory: {status}");
    assert!(
        !b.core.lock().unwrap().is_registered(),
        "b's ack waits for its lease to be stored"
    );
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    assert!(b.wait(Duration::from_secs(10), |c| c.is_registered()).await);
    let (_, status) = get_json(sn.api, "/status").await;
    assert_eq!(status["store_errors"], 0, "{status}");
    let (_, leases) = get_json(sn.api, "/leases.json").await;
    assert_eq!(leases.as_array().unwrap().len(), 2);
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
            *first = [0x20, 0x21, 0x22, 0x10, 0xff][(i % 5) as usize];
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
