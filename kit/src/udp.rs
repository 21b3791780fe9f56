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

/// Binds `n` UDP sockets to one local address (as [`bind`] does) in one `SO_REUSEPORT`
/// group: the kernel spreads arriving datagrams over them by their source, so each sender
/// is served by one socket, in order. The first socket binds without `SO_REUSEPORT`, so a
/// port somebody holds is refused. Once the group stands, any socket of the same user that
/// binds the port with `SO_REUSEPORT` joins it (and one on a narrower address takes that
/// address's datagrams): a process of the daemon's user can take its datagrams, never read
/// or forge them (they are authenticated). With `n` = 1 there is no group.
pub fn bind_group(
    addr: SocketAddr,
    buffer: usize,
    n: usize,
) -> std::io::Result<Vec<socket2::Socket>> {
    let first = bind(addr, buffer)?;
    let mut group = Vec::with_capacity(n.max(1));
    if n > 1 {
        first.set_reuse_port(true)?;
        let local = first
            .local_addr()?
            .as_socket()
            .ok_or_else(|| std::io::Error::other("the socket has no IP address"))?;
        let v6_only = local.is_ipv6() && first.only_v6()?;
        group.push(first);
        for _ in 1..n {
            group.push(bind_socket(local, buffer, v6_only, true)?);
        }
    } else {
        group.push(first);
    }
    Ok(group)
}

/// True for the errors of a host without IPv6 (not, say, a port already in use).
fn no_ipv6(e: &std::io::Error) -> bool {
    const EAFNOSUPPORT: i32 = 97;
    e.kind() == std::io::ErrorKind::AddrNotAvailable || e.raw_os_error() == Some(EAFNOSUPPORT)
}

fn bind_exact(addr: SocketAddr, buffer: usize, v6_only: bool) -> std::io::Result<socket2::Socket> {
    bind_socket(addr, buffer, v6_only, false)
}

fn bind_socket(
    addr: SocketAddr,
    buffer: usize,
    v6_only: bool,
    reuse_port: bool,
) -> std::io::Result<socket2::Socket> {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(v6_only)?;
    }
    if reuse_port {
        s.set_reuse_port(true)?;
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
    fn a_group_shares_one_port_spreads_senders_and_keeps_strangers_out() {
        let group = bind_group("[::]:0".parse().unwrap(), 1 << 16, 4).unwrap();
        let port = group[0].local_addr().unwrap().as_socket().unwrap().port();
        let socks: Vec<std::net::UdpSocket> = group.into_iter().map(Into::into).collect();
        for s in &socks {
            assert_eq!(s.local_addr().unwrap().port(), port);
            s.set_nonblocking(true).unwrap();
        }
        // Many senders: every datagram reaches exactly one socket, and more than one socket
        // serves them.
        let senders: Vec<_> = (0..64)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for s in &senders {
            s.send_to(b"x", ("127.0.0.1", port)).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut per_socket = vec![0; socks.len()];
        let mut buf = [0u8; 4];
        for (i, s) in socks.iter().enumerate() {
            while s.recv_from(&mut buf).is_ok() {
                per_socket[i] += 1;
            }
        }
        assert_eq!(per_socket.iter().sum::<usize>(), senders.len());
        assert!(
            per_socket.iter().filter(|n| **n > 0).count() > 1,
            "one socket took every sender: {per_socket:?}"
        );
        // The port is ours: a plain bind is refused, and so is a second group on it.
        let any: SocketAddr = SocketAddr::new("::".parse().unwrap(), port);
        assert!(bind(any, 1 << 16).is_err());
        assert!(bind_group(any, 1 << 16, 2).is_err());
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
