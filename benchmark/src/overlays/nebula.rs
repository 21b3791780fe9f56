//! nebula (L3), with a CA and certificates made for the run.

use super::*;

const NEBULA_MTU: u32 = 1300;

pub(super) fn up(lab: &mut Lab) -> anyhow::Result<Up> {
    let (nebula, cert) = (program("nebula")?, program("nebula-cert")?);
    let d = lab.dir().join("nebula");
    std::fs::create_dir_all(&d)?;
    let run_cert = |args: &[&str]| -> anyhow::Result<()> {
        let out = Command::new(&cert).args(args).current_dir(&d).output()?;
        if !out.status.success() {
            bail!(
                "nebula-cert {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    run_cert(&[
        "ca", "-name", "bench-ca", "-out-crt", "ca.crt", "-out-key", "ca.key",
    ])?;
    for (n, ip) in [
        ("lh", "10.20.0.1/24"),
        ("a", "10.20.0.11/24"),
        ("b", "10.20.0.12/24"),
    ] {
        run_cert(&[
            "sign",
            "-name",
            n,
            "-ip",
            ip,
            "-out-crt",
            &format!("{n}.crt"),
            "-out-key",
            &format!("{n}.key"),
        ])?;
        let lighthouse = n == "lh";
        let hosts = if lighthouse { "[]" } else { "[\"10.20.0.1\"]" };
        let dir = path_str(&d);
        std::fs::write(
            d.join(format!("{n}.yml")),
            format!(
                "pki:\n  ca: {dir}/ca.crt\n  cert: {dir}/{n}.crt\n  key: {dir}/{n}.key\n\
                 static_host_map:\n  \"10.20.0.1\": [\"192.0.2.1:4242\"]\n\
                 lighthouse:\n  am_lighthouse: {lighthouse}\n  interval: 60\n  hosts: {hosts}\n\
                 listen:\n  host: 0.0.0.0\n  port: 4242\n\
                 punchy:\n  punch: true\n  respond: true\n\
                 tun:\n  disabled: false\n  dev: nebula0\n  drop_local_broadcast: false\n  drop_multicast: false\n  tx_queue: 500\n  mtu: {NEBULA_MTU}\n\
                 logging:\n  level: warning\n\
                 firewall:\n  outbound:\n    - port: any\n      proto: any\n      host: any\n  inbound:\n    - port: any\n      proto: any\n      host: any\n"
            ),
        )?;
    }
    let cfg = |n: &str| path_str(&d.join(format!("{n}.yml")));
    lab.spawn(Host::Sn, &[&nebula, "-config", &cfg("lh")], "nebula-lh.log")?;
    std::thread::sleep(Duration::from_millis(500));
    let pids = vec![
        lab.spawn(Host::B, &[&nebula, "-config", &cfg("b")], "nebula-b.log")?,
        lab.spawn(Host::A, &[&nebula, "-config", &cfg("a")], "nebula-a.log")?,
    ];
    let server = Ipv4Addr::new(10, 20, 0, 12);
    lab.wait_ping(Host::A, server, Duration::from_secs(20))
        .with_context(|| lab.log_tail("nebula-a.log"))?;
    // Let the lighthouse-assisted direct tunnel settle.
    std::thread::sleep(Duration::from_secs(2));
    Ok(Up {
        subject: subject("nebula", version(&nebula, &["-version"])),
        server,
        pids,
        mtu: NEBULA_MTU,
    })
}
