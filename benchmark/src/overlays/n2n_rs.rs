//! n2n-rs itself, direct or relayed through its supernode.

use super::*;

pub(super) fn up(lab: &mut Lab, bins: &Bins, relayed: bool) -> anyhow::Result<Up> {
    let (edge, sn) = (path_str(&bins.edge), path_str(&bins.supernode));
    if relayed {
        // a and b cannot reach each other (as behind two symmetric NATs); both reach sn.
        for (h, other) in [(Host::A, Host::B), (Host::B, Host::A)] {
            let other = other.ip().to_string();
            lab.check(h, &["nft", "add", "table", "inet", "bench"])?;
            lab.check(
                h,
                &[
                    "nft",
                    "add chain inet bench out { type filter hook output priority 0; }",
                ],
            )?;
            lab.check(
                h,
                &[
                    "nft", "add", "rule", "inet", "bench", "out", "ip", "daddr", &other, "drop",
                ],
            )?;
        }
    }
    let dir = lab.dir().to_path_buf();
    let sn_state = path_str(&dir.join("sn"));
    lab.spawn(
        Host::Sn,
        &[
            &sn,
            "-listen",
            ":7777",
            "-state-dir",
            &sn_state,
            "-api-listen",
            "",
            "-log-level",
            "warn",
        ],
        "supernode.log",
    )?;
    let mut pids = Vec::new();
    for h in [Host::B, Host::A] {
        let state = path_str(&dir.join(format!("edge-{h:?}")));
        let log = format!("edge-{h:?}.log");
        pids.push(lab.spawn(
            h,
            &[
                &edge,
                "-community",
                "bench",
                "-supernode",
                "192.0.2.1:7777",
                "-passphrase",
                "bench-secret",
                "-state-dir",
                &state,
                "-log-level",
                "warn",
            ],
            &log,
        )?);
    }
    let mut server = None;
    for _ in 0..150 {
        lab.check_alive()
            .with_context(|| lab.log_tail("edge-A.log") + &lab.log_tail("edge-B.log"))?;
        server = lab.ipv4(Host::B, "n2n0");
        if server.is_some() && lab.ipv4(Host::A, "n2n0").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let server = server.context("edge on b got no address within 15 s")?;
    lab.wait_ping(Host::A, server, Duration::from_secs(15))?;
    wait_path(lab, &edge, if relayed { "relayed" } else { "direct" })?;
    let version = env!("CARGO_PKG_VERSION");
    Ok(Up {
        subject: if relayed {
            format!("n2n-rs {version} relayed")
        } else {
            format!("n2n-rs {version}")
        },
        server,
        pids,
        mtu: lab.mtu(Host::A, "n2n0")?,
    })
}

/// Waits until a's edge reports `path` ("direct" or "relayed") to b, so the intended path is
/// what gets measured.
pub fn wait_path(lab: &Lab, edge: &str, path: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        let out = lab.exec(Host::A, &[edge, "peers", "--json"])?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let found = json
            .get("peers")
            .and_then(|p| p.as_array())
            .is_some_and(|p| {
                p.iter()
                    .any(|p| p.get("path").and_then(|v| v.as_str()) == Some(path))
            });
        if found {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("n2n-rs: no {path} path between a and b within 10 s")
}
