//! This host's candidate addresses: the LAN address towards the supernode, the global IPv6
//! address (to members only), and the port mapped on the gateway, kept current.

use n2n_protocol::types::{Candidate, CandidateKind};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// Where the route lookup for this host's global IPv6 address points (documentation prefix:
/// `connect` on a UDP socket sends nothing).
const V6_PROBE: SocketAddr = SocketAddr::new(
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    9,
);

/// The candidates this edge advertises.
#[derive(Debug, Clone)]
pub struct Addresses {
    lan: Vec<Candidate>,
    mapped: Option<SocketAddr>,
    global_v6: bool,
}

impl Addresses {
    /// Finds the LAN candidates for `sock` towards `supernode`; `global_v6` also advertises
    /// the global IPv6 address (only where the community has a passphrase: in an open one
    /// anyone could learn it).
    pub fn find(sock: &UdpSocket, supernode: SocketAddr, global_v6: bool) -> Self {
        Self {
            lan: lan_candidates(sock, supernode, global_v6),
            mapped: None,
            global_v6,
        }
    }

    /// Every candidate, mapped port included.
    pub fn candidates(&self) -> Vec<Candidate> {
        let mut c = self.lan.clone();
        c.extend(self.mapped.map(|addr| Candidate {
            kind: CandidateKind::Mapped,
            addr,
        }));
        c
    }

    /// The IPv4 LAN address (where the gateway maps a port to).
    pub fn lan_ipv4(&self) -> Option<Ipv4Addr> {
        self.lan.first().and_then(|c| match c.addr.ip() {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
    }

    /// Looks again (DHCP, temporary IPv6 addresses); the new candidates if they changed.
    pub fn refresh(&mut self, sock: &UdpSocket, supernode: SocketAddr) -> Option<Vec<Candidate>> {
        let lan = lan_candidates(sock, supernode, self.global_v6);
        if lan == self.lan {
            return None;
        }
        tracing::info!(now_lan = ?lan, "local addresses changed");
        self.lan = lan;
        Some(self.candidates())
    }

    /// Records the gateway's mapping (or its loss); the new candidates.
    pub fn set_mapped(&mut self, mapped: Option<SocketAddr>) -> Vec<Candidate> {
        self.mapped = mapped;
        self.candidates()
    }
}

/// The addresses of this host that peers could reach without the supernode's help: the
/// source address towards the supernode (for peers on the same LAN) and, with `global_v6` on
/// a dual-stack socket, the global IPv6 address (no NAT in the way, only firewalls). Found
/// without sending.
fn lan_candidates(sock: &UdpSocket, supernode: SocketAddr, global_v6: bool) -> Vec<Candidate> {
    let local = sock.local_addr().ok();
    let port = local.map(|a| a.port()).unwrap_or(0);
    let mut probes = vec![supernode];
    if global_v6 && local.is_some_and(|a| a.is_ipv6()) && supernode.is_ipv4() {
        probes.push(V6_PROBE);
    }
    probes
        .into_iter()
        .filter_map(|to| {
            let any: SocketAddr = match to {
                SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            let p = UdpSocket::bind(any).ok()?;
            p.connect(to).ok()?;
            let ip = p.local_addr().ok()?.ip();
            let usable = !ip.is_unspecified()
                && !ip.is_loopback()
                && !matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local());
            usable.then_some(Candidate {
                kind: CandidateKind::Lan,
                addr: SocketAddr::new(ip, port),
            })
        })
        .collect()
}
