//! The daemons' UDP socket: one socket for IPv4 and IPv6 where the host has IPv6, and
//! addresses as the protocol cores see them (IPv4 as IPv4, never as `::ffff:a.b.c.d`).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Binds a UDP socket on `addr` with `buffer`-byte send and receive buffers. An unspecified
/// address (`0.0.0.0` or `::`) means every address of both families: a dual-stack IPv6
/// socket, or IPv4 alone on a host without IPv6. A given address binds that address only.
pub fn bind(addr: SocketAddr, buffer: usize) -> std::io::Result<socket2::Socket> {
    if addr.ip().is_unspecified() {
        let any6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), addr.port());
        match bind_exact(any6, buffer, false) {
            Ok(s) => return Ok(s),
            Err(e) => tracing::info!(error = %e, "no IPv6 here; UDP on IPv4 only"),
        }
        let any4 = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), addr.port());
        return bind_exact(any4, buffer, true);
    }
    bind_exact(addr, buffer, true)
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
/// for IPv4 senders) becomes the IPv4 address.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
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
    fn an_unspecified_address_takes_both_families_on_one_port() {
        let s = bind("0.0.0.0:0".parse().unwrap(), 1 << 16).unwrap();
        let local = s.local_addr().unwrap().as_socket().unwrap();
        let sock: std::net::UdpSocket = s.into();
        let has_v6 = std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|t| !t.is_empty());
        assert_eq!(
            local.is_ipv6(),
            has_v6,
            "dual-stack exactly where the host has IPv6"
        );
        // One socket answers on both families.
        if local.is_ipv6() {
            for to in [
                SocketAddr::new("127.0.0.1".parse().unwrap(), local.port()),
                SocketAddr::new("::1".parse().unwrap(), local.port()),
            ] {
                let peer = std::net::UdpSocket::bind(SocketAddr::new(
                    if to.is_ipv4() { "127.0.0.1" } else { "::1" }
                        .parse()
                        .unwrap(),
                    0,
                ))
                .unwrap();
                peer.send_to(b"hi", to).unwrap();
                let mut buf = [0u8; 8];
                let (n, from) = sock.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"hi");
                assert_eq!(canonical(from), peer.local_addr().unwrap());
                // And replies to an IPv4 address go out of the IPv6 socket as they are.
                sock.send_to(b"ok", canonical(from)).unwrap();
                let (n, _) = peer.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"ok");
            }
        }
        let v4 = bind("127.0.0.1:0".parse().unwrap(), 1 << 16).unwrap();
        assert!(v4.local_addr().unwrap().as_socket().unwrap().is_ipv4());
    }
}
