//! boringtun (userspace WireGuard, L3) configured with `wg`.

use super::*;

const WG_MTU: u32 = 1420;

pub(super) fn up(lab: &mut Lab) -> anyhow::Result<Up> {
    let (bt, wg) = (program("boringtun-cli")?, program("wg")?);
    let d = lab.dir().join("wg");
    std::fs::create_dir_all(&d)?;
    let genkey = |name: &str| -> anyhow::Result<String> {
        let key = Command::new(&wg).arg("genkey").output()?.stdout;
        let key_path = d.join(format!("{name}.key"));
        std::fs::write(&key_path, &key)?;
        use std::io::Write;
        let mut child = Command::new(&wg)
            .arg("pubkey")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .context("wg pubkey stdin")?
            .write_all(&key)?;
        let out = child.wait_with_output()?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let (pub_a, pub_b) = (genkey("a")?, genkey("b")?);
    // Interface names are also UAPI socket names in the shared /var/run/wireguard: make them
    // unique to this run.
    let tag = std::process::id() % 100_000;
    let (if_a, if_b) = (format!("wga{tag}"), format!("wgb{tag}"));
    let mut pids = Vec::new();
    for (h, ifname) in [(Host::B, &if_b), (Host::A, &if_a)] {
        let log = path_str(&d.join(format!("{ifname}.log")));
        pids.push(lab.spawn(
            h,
            &[&bt, ifname, "-f", "--disable-drop-privileges", "-l", &log],
            &format!("boringtun-{h:?}.log"),
        )?);
    }
    for i in [&if_a, &if_b] {
        lab.remove_on_drop(format!("/var/run/wireguard/{i}.sock").into());
    }
    for _ in 0..50 {
        if [&if_a, &if_b]
            .iter()
            .all(|i| std::path::Path::new(&format!("/var/run/wireguard/{i}.sock")).exists())
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let key = |n: &str| path_str(&d.join(format!("{n}.key")));
    let mtu = WG_MTU.to_string();
    lab.check(
        Host::B,
        &[
            &wg,
            "set",
            &if_b,
            "listen-port",
            "51820",
            "private-key",
            &key("b"),
            "peer",
            &pub_a,
            "allowed-ips",
            "10.50.0.11/32",
        ],
    )?;
    lab.check(
        Host::A,
        &[
            &wg,
            "set",
            &if_a,
            "listen-port",
            "51820",
            "private-key",
            &key("a"),
            "peer",
            &pub_b,
            "allowed-ips",
            "10.50.0.12/32",
            "endpoint",
            "192.0.2.12:51820",
        ],
    )?;
    for (h, ifname, ip) in [
        (Host::B, &if_b, "10.50.0.12/24"),
        (Host::A, &if_a, "10.50.0.11/24"),
    ] {
        lab.check(h, &["ip", "addr", "add", ip, "dev", ifname])?;
        lab.check(h, &["ip", "link", "set", ifname, "mtu", &mtu, "up"])?;
    }
    let server = Ipv4Addr::new(10, 50, 0, 12);
    lab.wait_ping(Host::A, server, Duration::from_secs(20))
        .with_context(|| lab.log_tail("boringtun-A.log"))?;
    Ok(Up {
        subject: subject("boringtun", version(&bt, &["--version"])),
        server,
        pids,
        mtu: WG_MTU,
    })
}
