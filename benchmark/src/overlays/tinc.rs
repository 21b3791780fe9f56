//! tinc 1.0 (L2, switch mode), as ../shared/lab/overlays/tinc.sh runs it.

use super::*;

pub(super) fn up(lab: &mut Lab) -> anyhow::Result<Up> {
    let tincd = program("tincd")?;
    let root = lab.dir().join("tinc");
    for (name, h, oip, connect) in [
        ("a", Host::A, "10.10.0.11", Some("b")),
        ("b", Host::B, "10.10.0.12", None),
    ] {
        let d = root.join(name);
        std::fs::create_dir_all(d.join("hosts"))?;
        let mut conf = format!(
            "Name = {name}\nMode = switch\nDeviceType = tap\nDevice = /dev/net/tun\nInterface = tinc0\nAddressFamily = ipv4\nPort = 655\n"
        );
        if let Some(c) = connect {
            conf += &format!("ConnectTo = {c}\n");
        }
        std::fs::write(d.join("tinc.conf"), conf)?;
        std::fs::write(
            d.join("hosts").join(name),
            format!("Address = {}\nPort = 655\n", h.ip()),
        )?;
        let up = d.join("tinc-up");
        std::fs::write(
            &up,
            format!("#!/bin/sh\nip link set $INTERFACE up\nip addr add {oip}/24 dev $INTERFACE\n"),
        )?;
        set_executable(&up)?;
        let out = Command::new(&tincd)
            .args(["-c", &path_str(&d), "-K2048"])
            .stdin(std::process::Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!("tincd -K: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    for (from, to) in [("a", "b"), ("b", "a")] {
        std::fs::copy(
            root.join(from).join("hosts").join(from),
            root.join(to).join("hosts").join(from),
        )?;
    }
    let mut pids = Vec::new();
    for (name, h) in [("b", Host::B), ("a", Host::A)] {
        let d = path_str(&root.join(name));
        let pidfile = format!("--pidfile={d}/tinc.pid");
        pids.push(lab.spawn(
            h,
            &[&tincd, "-c", &d, "-D", "-d1", &pidfile],
            &format!("tinc-{name}.log"),
        )?);
    }
    let server = Ipv4Addr::new(10, 10, 0, 12);
    lab.wait_ping(Host::A, server, Duration::from_secs(20))
        .with_context(|| lab.log_tail("tinc-a.log"))?;
    Ok(Up {
        subject: subject("tinc", version(&tincd, &["--version"])),
        server,
        pids,
        mtu: lab.mtu(Host::A, "tinc0")?,
    })
}
