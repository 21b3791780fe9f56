//! ntop n2n v1 (Debian's package).

use super::*;

/// ntop n2n v1 as ../shared/lab/overlays/n2n.sh runs it: Twofish, TAP, MTU 1400, edges
/// talking directly once the supernode introduced them.
pub(super) fn up(lab: &mut Lab) -> anyhow::Result<Up> {
    let edge = format!("{N2N_V1_DIR}/usr/sbin/edge");
    let sn = format!("{N2N_V1_DIR}/usr/bin/supernode");
    lab.spawn(Host::Sn, &[&sn, "-l", "7654"], "n2n-sn.log")?;
    std::thread::sleep(Duration::from_millis(500));
    let supernode = format!("{}:7654", Host::Sn.ip());
    let mut pids = Vec::new();
    for (h, oip, mac) in [
        (Host::B, "10.40.0.12", "02:00:00:40:00:12"),
        (Host::A, "10.40.0.11", "02:00:00:40:00:11"),
    ] {
        pids.push(lab.spawn(
            h,
            &[
                &edge,
                "-d",
                "n2nlab",
                "-a",
                oip,
                "-s",
                "255.255.255.0",
                "-c",
                "benchcomm",
                "-k",
                "bench-n2n-key",
                "-l",
                &supernode,
                "-p",
                "7655",
                "-m",
                mac,
                "-M",
                "1400",
            ],
            &format!("n2n-{h:?}.log"),
        )?);
    }
    let server = Ipv4Addr::new(10, 40, 0, 12);
    lab.wait_ping(Host::A, server, Duration::from_secs(30))
        .with_context(|| lab.log_tail("n2n-A.log"))?;
    // Until the edges have met, frames go through the supernode.
    std::thread::sleep(Duration::from_secs(2));
    Ok(Up {
        subject: subject("n2n", version(&edge, &["-h"])),
        server,
        pids,
        mtu: lab.mtu(Host::A, "n2nlab")?,
    })
}
