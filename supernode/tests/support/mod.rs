//! Helpers for loopback tests: edge cores driven over real UDP sockets, a tiny HTTP client,
//! and free-port discovery.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::expect_used
)]

use n2n_edge::proto::{Edge, EdgeConfig, Event};
use n2n_protocol::crypto::kdf::{CommunityKeys, KdfParams, edge_mac};
use n2n_protocol::crypto::signing::Signer;
use n2n_protocol::rng::CoreRng;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// An edge core running over a UDP socket on 127.0.0.1 in a background task.
pub struct UdpEdge {
    /// The core, shared with its task.
    pub core: Arc<Mutex<Edge>>,
    /// Every event it emitted.
    pub events: Arc<Mutex<Vec<Event>>>,
    /// Its socket address.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for UdpEdge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Edge config for `community` with `passphrase`, machine `machine`, supernode `sn`.
pub fn edge_config(
    community: &str,
    passphrase: Option<&str>,
    machine: u8,
    sn: SocketAddr,
) -> EdgeConfig {
    let keys = CommunityKeys::derive(community, passphrase, KdfParams::FAST_INSECURE);
    let mut c = EdgeConfig::new(
        community,
        keys,
        edge_mac(&[machine; 16], community),
        Signer::from_seed(&[machine; 32]),
        vec![sn],
    );
    c.desc = format!("edge-{machine}");
    // Each start is a new process: later than the last.
    c.boot = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    c
}

impl UdpEdge {
    /// Starts an edge core on a fresh loopback socket.
    pub async fn start(config: EdgeConfig, seed: u64) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let core = Arc::new(Mutex::new(Edge::new(
            config,
            CoreRng::seeded(seed),
            Instant::now(),
        )));
        let events = Arc::new(Mutex::new(Vec::new()));
        let (c, e) = (core.clone(), events.clone());
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                let deadline = c
                    .lock()
                    .unwrap()
                    .poll_timeout()
                    .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
                tokio::select! {
                    r = socket.recv_from(&mut buf) => {
                        if let Ok((n, from)) = r {
                            c.lock().unwrap().handle_datagram(Instant::now(), from, &buf[..n]);
                        }
                    }
                    _ = tokio::time::sleep_until(deadline.into()) => c.lock().unwrap().handle_timeout(Instant::now()),
                }
                let mut out = Vec::new();
                {
                    let mut core = c.lock().unwrap();
                    while let Some(ev) = core.poll_event() {
                        e.lock().unwrap().push(ev);
                    }
                    while core.poll_frame().is_some() {}
                    while let Some(t) = core.poll_transmit() {
                        out.push(t);
                    }
                }
                for t in out {
                    let _ = socket.send_to(&t.payload, t.dst).await;
                }
            }
        });
        Self {
            core,
            events,
            addr,
            task,
        }
    }

    /// Waits until `pred` holds on the core, up to `max`.
    pub async fn wait(&self, max: Duration, pred: impl Fn(&Edge) -> bool) -> bool {
        let until = Instant::now() + max;
        while Instant::now() < until {
            if pred(&self.core.lock().unwrap()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        pred(&self.core.lock().unwrap())
    }

    /// The virtual IP, once registered.
    pub fn ip(&self) -> Option<std::net::Ipv4Addr> {
        self.core.lock().unwrap().address().map(|(ip, _)| ip)
    }

    /// The first refusal reason the edge got.
    pub fn refusal(&self) -> Option<String> {
        self.events.lock().unwrap().iter().find_map(|e| match e {
            Event::RegistrationRefused { reason } => Some(reason.clone()),
            _ => None,
        })
    }
}

/// A port that was free a moment ago on 127.0.0.1 (UDP and TCP).
pub fn free_port() -> u16 {
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// GET `path` from `addr`; returns (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_get_host(addr, path, "localhost").await
}

/// `http_get` with the `Host` header given.
pub async fn http_get_host(addr: SocketAddr, path: &str, host: &str) -> (u16, String) {
    let req = n2n_kit::http::Request {
        host,
        ..n2n_kit::http::Request::get(path)
    };
    let r = req.send_async(addr).await.unwrap();
    (r.status, r.body)
}

/// GET and parse JSON.
pub async fn get_json(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (code, body) = http_get(addr, path).await;
    (
        code,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
    )
}
