//! The web pages in a real browser: headless Chromium driven over WebDriver (chromedriver)
//! against real daemons in namespaces. Asserts on the rendered DOM: nodes, links and their
//! path styles, a peer appearing and disappearing live without a reload, a hostile name shown
//! as text, the "unreachable" banner, and the supernode's page. Saves a screenshot.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

mod support;

use base64::Engine;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{Lab, Site, ok, supernode_bin, wait_until};

const HOSTILE: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>";

/// A minimal WebDriver client (HTTP/1.1 + JSON over one connection per request).
struct Driver {
    port: u16,
    session: String,
}

fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // chromedriver keeps the connection open: read the head, then Content-Length bytes.
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).unwrap(),
            1,
            "webdriver closed the connection"
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    let body = String::from_utf8_lossy(&body).into_owned();
    let body = body.as_str();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}: {body}"))
}

impl Driver {
    fn start(port: u16, profile: &std::path::Path) -> Self {
        let caps = json!({ "capabilities": { "alwaysMatch": { "browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1100,800", format!("--user-data-dir={}", profile.display())]
        }}}});
        let v = http(port, "POST", "/session", Some(&caps));
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Driver { port, session }
    }

    fn goto(&self, url: &str) {
        http(
            self.port,
            "POST",
            &format!("/session/{}/url", self.session),
            Some(&json!({ "url": url })),
        );
    }

    fn js(&self, script: &str) -> Value {
        let v = http(
            self.port,
            "POST",
            &format!("/session/{}/execute/sync", self.session),
            Some(&json!({ "script": script, "args": [] })),
        );
        v["value"].clone()
    }

    fn screenshot(&self, path: &std::path::Path) {
        let v = http(
            self.port,
            "GET",
            &format!("/session/{}/screenshot", self.session),
            None,
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    fn wait_js(&self, what: &str, script: &str, want: impl Fn(&Value) -> bool) -> Value {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.js(script);
            if want(&v) {
                return v;
            }
            assert!(
                Instant::now() < until,
                "timed out waiting for {what}: last {v}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            http(
                self.port,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            )
        });
    }
}

const STATE: &str = r#"return {
  peers: document.querySelectorAll('#graph .node.peer').length,
  direct: document.querySelectorAll('#graph .link.direct').length,
  relayed: document.querySelectorAll('#graph .link.relayed').length,
  rows: Array.from(document.querySelectorAll('#peers tbody tr')).map(r => r.cells[0].textContent),
  offline: Array.from(document.querySelectorAll('#offline li')).map(l => l.textContent),
  scripts: document.scripts.length,
  imgs: document.images.length,
  marker: window.__marker === 42,
  banner: document.body.classList.contains('offline'),
  conn: document.getElementById('conn').textContent,
};"#;

#[test]
fn the_peer_graph_page_renders_updates_live_and_escapes_names() {
    assert!(
        n2n_kit::config::is_root(),
        "needs root (namespaces); CI runs as root"
    );
    assert!(
        std::path::Path::new("/usr/bin/chromedriver").exists(),
        "chromium-driver missing: run scripts/setup.sh"
    );
    // alpha behind a port-restricted NAT (the page we look at), a hostile-named public peer
    // (direct), and later charlie behind a symmetric NAT (relayed from alpha's side).
    let mut lab = Lab::bare();
    lab.add_site(1, Site::PortRestricted);
    lab.add_site(2, Site::Public);
    lab.add_site(3, Site::Symmetric);
    // Reach edge a and the supernode from this namespace over point-to-point veths in the
    // benchmarking range 198.18.0.0/15 (the lab's 192.0.2.0/24 may exist on the host too);
    // each veth disappears with its namespace.
    let tag = std::process::id() % 100_000; // interface names are at most 15 bytes
    for (ns, i) in [("h1", 0u8), ("sn", 4u8)] {
        let host_if = format!("n2nu{tag}x{i}");
        ok(&[
            "ip",
            "link",
            "add",
            &host_if,
            "type",
            "veth",
            "peer",
            "name",
            "ui0",
            "netns",
            &lab.ns(ns),
        ]);
        ok(&[
            "ip",
            "addr",
            "add",
            &format!("198.18.0.{}/30", i + 1),
            "dev",
            &host_if,
        ]);
        ok(&["ip", "link", "set", &host_if, "up"]);
        ok(&[
            "ip",
            "-n",
            &lab.ns(ns),
            "addr",
            "add",
            &format!("198.18.0.{}/30", i + 2),
            "dev",
            "ui0",
        ]);
        ok(&["ip", "-n", &lab.ns(ns), "link", "set", "ui0", "up"]);
    }

    let sn_dir = lab.dir.path().join("sn");
    lab.spawn(
        "sn",
        &supernode_bin(),
        &[
            "-listen",
            ":7777",
            "-state-dir",
            sn_dir.to_str().unwrap(),
            "-api-listen",
            "0.0.0.0:7779",
        ],
        "sn.log",
    );
    let edge = PathBuf::from(env!("CARGO_BIN_EXE_edge"));
    let start_edge = |lab: &mut Lab, ns: &str, name: &str| {
        let state = lab.dir.path().join(format!("st-{ns}-{}", name.len()));
        let args = [
            "-community",
            "web",
            "-supernode",
            "192.0.2.1:7777",
            "-edge-id",
            name,
            "-state-dir",
            state.to_str().unwrap(),
            "-api-listen",
            "0.0.0.0:7778",
            "-port-mapping",
            "false",
        ];
        lab.spawn(ns, &edge, &args, &format!("{ns}.log"));
    };
    start_edge(&mut lab, "h1", "alpha");
    start_edge(&mut lab, "h2", HOSTILE);

    let port = support::EDGE_PORT + 1000;
    let profile = lab.dir.path().join("chrome-profile");
    let mut driver_proc = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || TcpStream::connect(
        ("127.0.0.1", port)
    )
    .is_ok()));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let d = Driver::start(port, &profile);
        eprintln!("webdriver session started");
        let reach = wait_until(Duration::from_secs(20), || {
            TcpStream::connect("198.18.0.2:7778").is_ok()
        });
        assert!(
            reach,
            "edge API unreachable from the test namespace:\n{}",
            lab.log("h1.log")
        );
        d.goto("http://198.18.0.2:7778/peers");
        eprintln!("page loaded");
        d.js("window.__marker = 42; return true;");
        let s = d.wait_js("one peer, direct", STATE, |v| {
            v["peers"] == 1 && v["direct"] == 1
        });
        assert_eq!(
            s["rows"],
            json!([HOSTILE]),
            "the hostile name is shown as text"
        );
        assert_eq!(s["scripts"], 1, "no script element was injected");
        assert_eq!(s["imgs"], 0, "no img element was injected");
        assert_eq!(s["conn"], "live");
        let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("webui-peers.png");
        d.screenshot(&shot);
        println!("screenshot: {}", shot.display());

        // A peer appears, live, without a reload (the marker survives).
        start_edge(&mut lab, "h3", "charlie");
        let s = d.wait_js("charlie appears, relayed", STATE, |v| {
            v["peers"] == 2 && v["relayed"] == 1 && v["direct"] == 1
        });
        assert_eq!(s["marker"], true, "no reload");
        assert!(s["rows"].as_array().unwrap().iter().any(|r| r == "charlie"));
        let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("webui-peers-relayed.png");
        d.screenshot(&shot);
        println!("screenshot: {}", shot.display());
        // ... and disappears (its process ends; the supernode tells everyone).
        let charlie = lab.children.pop().unwrap();
        ok(&["kill", "-TERM", &charlie.id().to_string()]);
        lab.children.push(charlie);
        let s = d.wait_js("charlie leaves", STATE, |v| {
            v["peers"] == 1 && !v["offline"].as_array().unwrap().is_empty()
        });
        assert!(
            s["offline"][0].as_str().unwrap().starts_with("charlie"),
            "{s}"
        );
        assert_eq!(s["marker"], true, "no reload");
        let shot2 = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("webui-peers-offline.png");
        d.screenshot(&shot2);

        // The supernode's page.
        d.goto("http://198.18.0.6:7779/");
        let sn = d.wait_js(
            "supernode page",
            "return { edges: (document.querySelector('[data-key=edges]')||{}).textContent, cells: Array.from(document.querySelectorAll('td')).map(t => t.textContent), scripts: document.scripts.length, imgs: document.images.length };",
            |v| v["edges"] == "edges: 2",
        );
        assert!(
            sn["cells"].as_array().unwrap().iter().any(|c| c == HOSTILE),
            "{sn}"
        );
        assert_eq!(
            (sn["scripts"].clone(), sn["imgs"].clone()),
            (json!(1), json!(0))
        );

        // The edge goes away: its page says so.
        d.goto("http://198.18.0.2:7778/peers");
        // A fresh page still lists charlie as gone: the edge remembers, not the page.
        let s = d.wait_js("page live again", STATE, |v| {
            v["conn"] == "live" && v["peers"] == 1
        });
        assert!(
            s["offline"][0]
                .as_str()
                .unwrap_or("")
                .starts_with("charlie"),
            "{s}"
        );
        let a = lab.children.iter().position(|_| true).map(|_| 1).unwrap();
        ok(&["kill", "-TERM", &lab.children[a].id().to_string()]);
        d.wait_js("unreachable banner", STATE, |v| v["banner"] == true);
    }));
    let _ = driver_proc.kill();
    let _ = driver_proc.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
