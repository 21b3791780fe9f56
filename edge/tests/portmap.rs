//! Port mapping against a real gateway: miniupnpd (Debian's miniupnpd-nftables) in a NAT
//! router namespace. The edge maps its port (UPnP, then NAT-PMP with UPnP switched off),
//! advertises the mapped address, and removes the mapping at exit. Needs root and miniupnpd.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::time::Duration;
use support::{Lab, api, ok, wait_for, wait_until};

fn scenario(upnp: bool, natpmp: bool) {
    let mut lab = Lab::new();
    lab.add_upnp_router();
    lab.start_miniupnpd(upnp, natpmp);
    lab.start_supernode();
    let state = lab.dir.path().join("n");
    let edge = PathBuf::from(env!("CARGO_BIN_EXE_edge"));
    let args = [
        "-community",
        "acme",
        "-supernode",
        "192.0.2.1:7777",
        "-port",
        "40123",
        "-state-dir",
        state.to_str().unwrap(),
        "-log-level",
        "debug",
    ];
    lab.spawn("n", &edge, &args, "n.log");
    let what = if upnp { "UPnP" } else { "NAT-PMP" };
    let advertised = wait_until(Duration::from_secs(30), || {
        let o = lab.exec("n", &[edge.to_str().unwrap(), "status", "--json"]);
        o.status.success()
            && serde_json::from_slice::<serde_json::Value>(&o.stdout).is_ok_and(|v| {
                v["candidates"].as_array().is_some_and(|c| {
                    c.iter().any(|c| {
                        c["kind"] == "mapped"
                            && c["addr"]
                                .as_str()
                                .is_some_and(|a| a.starts_with(&format!("{}:", support::EXT_IP)))
                    })
                })
            })
    });
    assert!(
        advertised,
        "no {what} mapping advertised\n--- edge\n{}\n--- miniupnpd\n{}",
        lab.log("n.log"),
        lab.log("miniupnpd.log")
    );
    let status = api(&lab, "n", "status");
    let mapped = status["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "mapped")
        .unwrap()["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let port = mapped.rsplit(':').next().unwrap().to_string();
    let rules = lab.upnp_rules();
    assert!(
        rules.contains(&format!("dport {port}")) && rules.contains("10.1.0.2"),
        "{what}: gateway rules: {rules}"
    );
    assert!(
        lab.log("n.log").contains("port mapped on the gateway"),
        "{}",
        lab.log("n.log")
    );

    // Exit: the mapping is removed from the gateway.
    let pid = lab.children.last().unwrap().id().to_string();
    ok(&["kill", "-TERM", &pid]);
    let st = lab.children.last_mut().unwrap().wait().unwrap();
    assert!(st.success(), "{}", lab.log("n.log"));
    wait_for("the mapping removed", Duration::from_secs(10), || {
        !lab.upnp_rules().contains(&format!("dport {port}"))
    });
    assert!(
        lab.log("n.log").contains("port mapping removed"),
        "{}",
        lab.log("n.log")
    );
}

#[test]
fn the_edge_maps_advertises_and_removes_its_port_with_upnp_and_with_nat_pmp() {
    assert!(
        n2n_kit::config::is_root(),
        "needs root (namespaces, nftables); CI runs as root"
    );
    assert!(
        std::path::Path::new("/usr/sbin/miniupnpd").exists(),
        "miniupnpd missing: run scripts/setup.sh"
    );
    scenario(true, true);
    scenario(false, true);
}
