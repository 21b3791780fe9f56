//! The daemons' UDP socket: one socket for IPv4 and IPv6 where the host has IPv6, and
//! addresses as the protocol cores see them (IPv4 as IPv4, never as `::ffff:a.b.c.d`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Binds a UDP socket on `addr` with `buffer`-byte send and receive buffers. `[::]` means
/// every address of both families: a dual-stack socket, or IPv4 alone on a host without
/// IPv6. `0.0.0.0` is IPv4 only; a given address binds that address only.
pub fn bind(addr: SocketAddr, buffer: usize) -> std::io::Result<socket2::Socket> {
    if addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
        match bind_exact(addr, buffer, false) {
            Err(e) if no_ipv6(&e) => {
                tracing::info!(error = %e, "no IPv6 here; UDP on IPv4 only");
                let any4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), addr.port());
                return bind_exact(any4, buffer, true);
            }
            r => return r,
        }
    }
    bind_exact(addr, buffer, true)
}

/// True for the errors of a host without IPv6 (not, say, a port already in use).
fn no_ipv6(e: &std::io::Error) -> bool {
    const EAFNOSUPPORT: i32 = 97;
    e.kind() == std::io::ErrorKind::AddrNotAvailable || e.raw_os_error() == Some(EAFNOSUPPORT)
}

fn bind_exact(addr: SocketAddr, buffer: usize, v6_only: bool) -> std::io::Result<socket2::Socket> {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(v6_only)?;
    }
    if let Err(e) = s
        .set_recv_buffer_size(buffer)
        .and_then(|_| s.set_send_buffer_size(buffer))
    {
        tracing::warn!(error = %e, "could not set UDP buffer sizes");
    }
    s.bind(&addr.into())
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot bind UDP {addr}: {e}")))?;
    Ok(s)
}

/// `a` as the cores see it: an IPv4-mapped IPv6 address (what a dual-stack socket reports
/// for IPv4 senders) becomes the IPv4 address; anything else, scope id included, stays.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        SocketAddr::V4(_) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_become_ipv4_and_others_stay() {
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:7777".parse().unwrap();
        assert_eq!(canonical(mapped), "192.0.2.7:7777".parse().unwrap());
        for a in ["[2001:db8::1]:1", "192.0.2.1:2", "[::1]:3"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(canonical(a), a);
        }
    }

    #[test]
    fn scope_ids_survive() {
        let scoped = SocketAddr::V6(std::net::SocketAddrV6::new(
            "fe80::1".parse().unwrap(),
            7777,
            0,
            2,
        ));
        assert_eq!(canonical(scoped), scoped);
    }

    #[test]
    fn any_address_of_both_families_is_one_socket_and_0_0_0_0_is_ipv4() {
        let s = bind("[::]:0".parse().unwrap(), 1 << 16).unwrap();
        let local = s.local_addr().unwrap().as_socket().unwrap();
        let sock: std::net::UdpSocket = s.into();
        let has_v6 = std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|t| !t.is_empty());
        assert!(
            local.is_ipv6() || !has_v6,
            "dual-stack where the host has IPv6"
        );
        // IPv4 reaches the one socket (as itself, after `canonical`), and replies to an IPv4
        // address leave from it as they are; IPv6 too where loopback has ::1.
        let mut peers = vec!["127.0.0.1"];
        if local.is_ipv6() && has_v6 {
            peers.push("::1");
        }
        for p in peers {
            let peer = std::net::UdpSocket::bind((p, 0)).unwrap();
            let to = SocketAddr::new(p.parse().unwrap(), local.port());
            peer.send_to(b"hi", to).unwrap();
            let mut buf = [0u8; 8];
            let (n, from) = sock.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"hi");
            assert_eq!(canonical(from), peer.local_addr().unwrap());
            sock.send_to(b"ok", canonical(from)).unwrap();
            let (n, _) = peer.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"ok");
        }
        let v4 = bind("0.0.0.0:0".parse().unwrap(), 1 << 16).unwrap();
        assert!(v4.local_addr().unwrap().as_socket().unwrap().is_ipv4());
        // A port in use is an error, not a silent fall back to IPv4.
        if local.is_ipv6() {
            let again = bind(
                SocketAddr::new("::".parse().unwrap(), local.port()),
                1 << 16,
            );
            assert!(again.is_err());
        }
    }
}
