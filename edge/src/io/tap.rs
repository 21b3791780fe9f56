//! The TAP device: created with the edge's MAC and MTU, addressed from the lease, removed
//! when the process exits (it is not persistent).

use anyhow::Context;
use std::net::Ipv4Addr;
use std::sync::Arc;
use tun_rs::{DeviceBuilder, Layer, SyncDevice};

/// Creates the TAP device `name` with `mac` and `mtu`, up, without an address yet.
pub fn create(name: &str, mac: [u8; 6], mtu: u16) -> anyhow::Result<Arc<SyncDevice>> {
    if !std::path::Path::new("/dev/net/tun").exists() {
        anyhow::bail!(
            "/dev/net/tun is missing: load the tun module (modprobe tun) or, in a container, pass the device through"
        );
    }
    let dev = DeviceBuilder::new()
        .name(name)
        .layer(Layer::L2)
        .mac_addr(mac)
        .mtu(mtu)
        .build_sync()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                anyhow::anyhow!("cannot create TAP device {name}: permission denied (run as root or grant CAP_NET_ADMIN)")
            } else {
                anyhow::anyhow!("cannot create TAP device {name}: {e}")
            }
        })?;
    dev.enabled(true)
        .with_context(|| format!("cannot bring {name} up"))?;
    Ok(Arc::new(dev))
}

/// Sets the device's IPv4 address from the lease.
pub fn set_address(dev: &SyncDevice, ip: Ipv4Addr, prefix: u8) -> anyhow::Result<()> {
    dev.set_network_address(ip, prefix, None)
        .with_context(|| format!("cannot set address {ip}/{prefix}"))?;
    dev.enabled(true)?;
    Ok(())
}
