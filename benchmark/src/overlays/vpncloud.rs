//! vpncloud (L2, AES).

use super::*;

pub(super) fn up(lab: &mut Lab) -> anyhow::Result<Up> {
    let vpncloud = program("vpncloud")?;
    let mut pids = Vec::new();
    for (h, oip, peer) in [
        (Host::B, "10.30.0.12/24", None),
        (Host::A, "10.30.0.11/24", Some("192.0.2.12:3210")),
    ] {
        let mut args = vec![
            vpncloud.as_str(),
            "-t",
            "tap",
            "-d",
            "vpncl0",
            "-l",
            "3210",
            "-p",
            "bench-shared-password",
            "--no-port-forwarding",
        ];
        if let Some(p) = peer {
            args.extend(["-c", p]);
        }
        pids.push(lab.spawn(h, &args, &format!("vpncloud-{h:?}.log"))?);
        // vpncloud's own --ip is broken in 2.3.0 built with current Rust (../shared/lab notes):
        // address the device ourselves once it exists.
        let mut made = false;
        for _ in 0..50 {
            if lab
                .exec(h, &["ip", "link", "show", "vpncl0"])?
                .status
                .success()
            {
                made = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !made {
            bail!(
                "vpncloud made no device: {}",
                lab.log_tail(&format!("vpncloud-{h:?}.log"))
            );
        }
        lab.check(h, &["ip", "addr", "add", oip, "dev", "vpncl0"])?;
        lab.check(h, &["ip", "link", "set", "vpncl0", "up"])?;
    }
    let server = Ipv4Addr::new(10, 30, 0, 12);
    lab.wait_ping(Host::A, server, Duration::from_secs(30))
        .with_context(|| lab.log_tail("vpncloud-A.log"))?;
    std::thread::sleep(Duration::from_secs(1));
    Ok(Up {
        subject: subject("vpncloud", version(&vpncloud, &["--version"])),
        server,
        pids,
        mtu: lab.mtu(Host::A, "vpncl0")?,
    })
}
