//! Port mapping on the local gateway: UPnP IGD first, NAT-PMP second, each with our own
//! timeouts and retries. The mapped address becomes a hole-punching candidate, is renewed at
//! half its lease, and is removed when the edge exits.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

/// Lease asked for; the mapping is renewed at half of it.
const LEASE: Duration = Duration::from_secs(3600);
/// Description shown in the gateway's mapping table.
const DESCRIPTION: &str = "n2n-rs edge";

/// How a mapping was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// UPnP Internet Gateway Device.
    Upnp,
    /// NAT-PMP.
    NatPmp,
}

/// A live mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The public address peers can use.
    pub external: SocketAddr,
    /// How it was made.
    pub method: Method,
    /// The gateway's lease.
    pub lease: Duration,
}

/// The IPv4 default gateway, from /proc/net/route.
pub fn default_gateway() -> Option<Ipv4Addr> {
    let routes = std::fs::read_to_string("/proc/net/route").ok()?;
    routes.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.get(1) != Some(&"00000000") {
            return None;
        }
        let gw = u32::from_str_radix(f.get(2)?, 16).ok()?;
        (gw != 0).then(|| Ipv4Addr::from(gw.to_le_bytes()))
    })
}

async fn upnp_map(
    lan: SocketAddrV4,
) -> Result<(Mapping, igd_next::aio::Gateway<igd_next::aio::tokio::Tokio>), String> {
    let mut opts = igd_next::SearchOptions::default();
    opts.timeout = Some(Duration::from_secs(3));
    opts.single_search_timeout = Some(Duration::from_secs(2));
    let gw = igd_next::aio::tokio::search_gateway(opts)
        .await
        .map_err(|e| format!("UPnP discovery: {e}"))?;
    let ext_ip = timeout(Duration::from_secs(3), gw.get_external_ip())
        .await
        .map_err(|_| "UPnP external IP: timeout".to_string())?
        .map_err(|e| format!("UPnP external IP: {e}"))?;
    let secs = LEASE.as_secs() as u32;
    let port = match timeout(
        Duration::from_secs(3),
        gw.add_port(
            igd_next::PortMappingProtocol::UDP,
            lan.port(),
            SocketAddr::V4(lan),
            secs,
            DESCRIPTION,
        ),
    )
    .await
    {
        Ok(Ok(())) => lan.port(),
        // The same external port is taken (another host): let the gateway pick one.
        _ => timeout(
            Duration::from_secs(3),
            gw.add_any_port(
                igd_next::PortMappingProtocol::UDP,
                SocketAddr::V4(lan),
                secs,
                DESCRIPTION,
            ),
        )
        .await
        .map_err(|_| "UPnP mapping: timeout".to_string())?
        .map_err(|e| format!("UPnP mapping: {e}"))?,
    };
    Ok((
        Mapping {
            external: SocketAddr::new(ext_ip, port),
            method: Method::Upnp,
            lease: LEASE,
        },
        gw,
    ))
}

/// One NAT-PMP exchange with retries (RFC 6886: 250 ms doubling), bounded by our timeouts.
async fn natpmp_request(
    gateway: Ipv4Addr,
    private_port: u16,
    public_port: u16,
    lifetime: u32,
) -> Result<(Ipv4Addr, natpmp::MappingResponse), String> {
    let mut n = timeout(
        Duration::from_secs(1),
        natpmp::new_tokio_natpmp_with(gateway),
    )
    .await
    .map_err(|_| "NAT-PMP: timeout".to_string())?
    .map_err(|e| format!("NAT-PMP: {e:?}"))?;
    let mut wait = Duration::from_millis(250);
    for _ in 0..4 {
        let _ = n.send_public_address_request().await;
        let public = match timeout(wait, n.read_response_or_retry()).await {
            Ok(Ok(natpmp::Response::Gateway(g))) => *g.public_address(),
            _ => {
                wait *= 2;
                continue;
            }
        };
        let _ = n
            .send_port_mapping_request(natpmp::Protocol::UDP, private_port, public_port, lifetime)
            .await;
        if let Ok(Ok(natpmp::Response::UDP(m))) = timeout(wait, n.read_response_or_retry()).await {
            return Ok((public, m));
        }
        wait *= 2;
    }
    Err(format!("NAT-PMP: no answer from {gateway}"))
}

async fn natpmp_map(gateway: Ipv4Addr, port: u16) -> Result<Mapping, String> {
    let (public, m) = natpmp_request(gateway, port, port, LEASE.as_secs() as u32).await?;
    Ok(Mapping {
        external: SocketAddr::new(IpAddr::V4(public), m.public_port()),
        method: Method::NatPmp,
        lease: *m.lifetime(),
    })
}

/// Keeps a mapping of UDP `port` for `lan_ip`: reports each (new) external address on
/// `report`, renews at half the lease, and removes the mapping when `stop` fires.
pub async fn maintain(
    lan_ip: Ipv4Addr,
    port: u16,
    report: mpsc::Sender<Option<SocketAddr>>,
    mut stop: oneshot::Receiver<()>,
) {
    let lan = SocketAddrV4::new(lan_ip, port);
    let gateway = default_gateway();
    loop {
        let (mapping, upnp) = match upnp_map(lan).await {
            Ok((m, gw)) => (Some(m), Some(gw)),
            Err(e) => {
                tracing::debug!("{e}");
                match gateway {
                    Some(g) => match natpmp_map(g, port).await {
                        Ok(m) => (Some(m), None),
                        Err(e2) => {
                            tracing::debug!("{e2}");
                            (None, None)
                        }
                    },
                    None => (None, None),
                }
            }
        };
        let retry = match mapping {
            Some(m) => {
                tracing::info!(external = %m.external, method = ?m.method, "port mapped on the gateway");
                let _ = report.send(Some(m.external)).await;
                (m.lease / 2).max(Duration::from_secs(30))
            }
            None => {
                tracing::info!("no UPnP or NAT-PMP gateway answered; relying on hole punching");
                Duration::from_secs(300)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(retry) => continue,
            _ = &mut stop => {
                if let Some(m) = mapping {
                    remove(m, upnp, gateway, port).await;
                }
                let _ = report.send(None).await;
                return;
            }
        }
    }
}

async fn remove(
    m: Mapping,
    upnp: Option<igd_next::aio::Gateway<igd_next::aio::tokio::Tokio>>,
    gateway: Option<Ipv4Addr>,
    port: u16,
) {
    let done = match (m.method, upnp, gateway) {
        (Method::Upnp, Some(gw), _) => timeout(
            Duration::from_secs(2),
            gw.remove_port(igd_next::PortMappingProtocol::UDP, m.external.port()),
        )
        .await
        .is_ok_and(|r| r.is_ok()),
        (Method::NatPmp, _, Some(g)) => natpmp_request(g, port, 0, 0).await.is_ok(),
        _ => false,
    };
    if done {
        tracing::info!(external = %m.external, "port mapping removed");
    } else {
        tracing::warn!(external = %m.external, "could not remove the port mapping; it expires with its lease");
    }
}
