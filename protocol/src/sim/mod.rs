//! A deterministic in-memory network for whole-protocol simulations: hosts, NAT routers of
//! the classic kinds, fixed latency, seeded loss, and a queue of datagrams in flight.
//! Time is whatever the caller passes in; nothing here reads a clock.

mod nat;

pub use nat::NatKind;

use crate::rng::CoreRng;
use nat::Router;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Index of a router in a [`Network`].
pub type RouterId = usize;

/// A datagram arriving at a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// When it arrives.
    pub at: Instant,
    /// The receiving host's own socket address.
    pub to: SocketAddr,
    /// The sender as the receiver sees it (after any NAT).
    pub from: SocketAddr,
    /// The bytes.
    pub payload: Vec<u8>,
}

/// Counters of what the network did with datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams handed to a host.
    pub delivered: u64,
    /// Dropped by a NAT or firewall filter (unsolicited inbound).
    pub filtered: u64,
    /// Dropped because no host or mapping matched the destination.
    pub unroutable: u64,
    /// Dropped by simulated loss.
    pub lost: u64,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    seq: u64,
    to: SocketAddr,
    from: SocketAddr,
    payload: Vec<u8>,
}

/// The simulated network.
pub struct Network {
    routers: Vec<Router>,
    /// Host IP -> the router it sits behind (None: directly on the public segment).
    hosts: BTreeMap<IpAddr, Option<RouterId>>,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    latency: Duration,
    loss_percent: u64,
    rng: CoreRng,
    stats: NetStats,
}

impl Network {
    /// An empty network with a one-way latency of 5 ms and no loss.
    pub fn new(seed: u64) -> Self {
        Self {
            routers: Vec::new(),
            hosts: BTreeMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            latency: Duration::from_millis(5),
            loss_percent: 0,
            rng: CoreRng::seeded(seed),
            stats: NetStats::default(),
        }
    }

    /// Drops this percentage of datagrams at random (seeded).
    pub fn set_loss(&mut self, percent: u64) {
        self.loss_percent = percent.min(100);
    }

    /// Adds a router of `kind` with public address `public_ip`.
    pub fn add_router(&mut self, kind: NatKind, public_ip: IpAddr) -> RouterId {
        self.routers.push(Router::new(kind, public_ip));
        self.routers.len() - 1
    }

    /// Adds a host with address `ip`, behind `router` or on the public segment.
    /// Hosts behind a [`NatKind::Firewall`] keep their (public) address.
    pub fn add_host(&mut self, ip: IpAddr, router: Option<RouterId>) {
        self.hosts.insert(ip, router);
    }

    /// Forgets every NAT mapping of `router`, as a reboot or a conntrack flush does; later
    /// outbound traffic gets new external ports.
    pub fn flush_mappings(&mut self, router: RouterId) {
        if let Some(r) = self.routers.get_mut(router) {
            r.flush();
        }
    }

    /// What the network did so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Sends a datagram from host socket `from` to `to` at time `now`.
    pub fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, payload: Vec<u8>) {
        if self.loss_percent > 0 && self.rng.below(100) < self.loss_percent {
            self.stats.lost += 1;
            return;
        }
        let Some(&src_router) = self.hosts.get(&from.ip()) else {
            self.stats.unroutable += 1;
            return;
        };
        // Same LAN (or both public): delivered as addressed, no translation.
        if let Some(&dst_router) = self.hosts.get(&to.ip()) {
            let same_lan = src_router == dst_router;
            let behind_nat =
                dst_router.is_some_and(|r| self.routers.get(r).is_some_and(|r| r.translates()));
            if same_lan || !behind_nat {
                let seen_from = if same_lan {
                    from
                } else {
                    match self.translate_out(src_router, now, from, to) {
                        Some(a) => a,
                        None => return,
                    }
                };
                if !same_lan
                    && let Some(r) = dst_router
                    && self
                        .routers
                        .get_mut(r)
                        .and_then(|r| r.inbound(now, seen_from, to))
                        .is_none()
                {
                    self.stats.filtered += 1;
                    return;
                }
                self.enqueue(now, to, seen_from, payload);
                return;
            }
            // A private address of another LAN is not routable from here.
            self.stats.unroutable += 1;
            return;
        }
        // Destination is a router's public address.
        let Some(seen_from) = self.translate_out(src_router, now, from, to) else {
            return;
        };
        let Some(router) = self.routers.iter_mut().find(|r| r.public_ip() == to.ip()) else {
            self.stats.unroutable += 1;
            return;
        };
        match router.inbound(now, seen_from, to) {
            Some(inner) => self.enqueue(now, inner, seen_from, payload),
            None => self.stats.filtered += 1,
        }
    }

    /// Puts a datagram with a forged source `from` on the public segment, addressed to `to`
    /// (an attacker's spoofed packet): NAT filters still apply on the way in.
    pub fn spoof(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, payload: Vec<u8>) {
        match self.hosts.get(&to.ip()) {
            Some(None) => self.enqueue(now, to, from, payload),
            Some(Some(r)) => match self
                .routers
                .get_mut(*r)
                .and_then(|r| r.inbound(now, from, to))
            {
                Some(inner) => self.enqueue(now, inner, from, payload),
                None => self.stats.filtered += 1,
            },
            None => match self.routers.iter_mut().find(|r| r.public_ip() == to.ip()) {
                Some(router) => match router.inbound(now, from, to) {
                    Some(inner) => self.enqueue(now, inner, from, payload),
                    None => self.stats.filtered += 1,
                },
                None => self.stats.unroutable += 1,
            },
        }
    }

    fn translate_out(
        &mut self,
        router: Option<RouterId>,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
    ) -> Option<SocketAddr> {
        match router {
            Some(r) => self
                .routers
                .get_mut(r)?
                .outbound(now, from, to, &mut self.rng),
            None => Some(from),
        }
    }

    fn enqueue(&mut self, now: Instant, to: SocketAddr, from: SocketAddr, payload: Vec<u8>) {
        self.seq += 1;
        self.queue.push(Reverse(InFlight {
            at: now + self.latency,
            seq: self.seq,
            to,
            from,
            payload,
        }));
    }

    /// When the next datagram arrives.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(f)| f.at)
    }

    /// Takes the next datagram arriving at or before `until`.
    pub fn poll(&mut self, until: Instant) -> Option<Delivery> {
        if self.next_arrival()? > until {
            return None;
        }
        let Reverse(f) = self.queue.pop()?;
        self.stats.delivered += 1;
        Some(Delivery {
            at: f.at,
            to: f.to,
            from: f.from,
            payload: f.payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn net(kind: NatKind) -> (Network, Instant) {
        let mut n = Network::new(1);
        let r = n.add_router(kind, "203.0.113.21".parse().unwrap());
        n.add_host("10.1.0.2".parse().unwrap(), Some(r));
        n.add_host("203.0.113.1".parse().unwrap(), None);
        n.add_host("203.0.113.2".parse().unwrap(), None);
        (n, Instant::now())
    }

    fn roundtrip(n: &mut Network, t: Instant) -> SocketAddr {
        n.send(
            t,
            sa("10.1.0.2:5000"),
            sa("203.0.113.1:7777"),
            b"out".to_vec(),
        );
        let d = n.poll(t + Duration::from_secs(1)).unwrap();
        assert_eq!(d.to, sa("203.0.113.1:7777"));
        d.from
    }

    #[test]
    fn port_restricted_keeps_port_and_filters_by_port() {
        let (mut n, t) = net(NatKind::PortRestricted);
        let ext = roundtrip(&mut n, t);
        assert_eq!(ext, sa("203.0.113.21:5000"), "port preserved");
        // The contacted endpoint can answer.
        n.send(t, sa("203.0.113.1:7777"), ext, b"in".to_vec());
        assert_eq!(
            n.poll(t + Duration::from_secs(1)).unwrap().to,
            sa("10.1.0.2:5000")
        );
        // Same IP, other port: filtered.
        n.send(t, sa("203.0.113.1:9999"), ext, b"in".to_vec());
        assert!(n.poll(t + Duration::from_secs(1)).is_none());
        assert_eq!(n.stats().filtered, 1);
    }

    #[test]
    fn full_cone_and_address_restricted_filtering() {
        let (mut n, t) = net(NatKind::FullCone);
        let ext = roundtrip(&mut n, t);
        n.send(t, sa("203.0.113.2:1"), ext, b"x".to_vec());
        assert!(
            n.poll(t + Duration::from_secs(1)).is_some(),
            "full cone accepts anyone"
        );

        let (mut n, t) = net(NatKind::AddressRestricted);
        let ext = roundtrip(&mut n, t);
        n.send(t, sa("203.0.113.1:1"), ext, b"x".to_vec());
        assert!(
            n.poll(t + Duration::from_secs(1)).is_some(),
            "same IP, other port"
        );
        n.send(t, sa("203.0.113.2:7777"), ext, b"x".to_vec());
        assert!(n.poll(t + Duration::from_secs(1)).is_none(), "other IP");
    }

    #[test]
    fn symmetric_maps_per_destination_and_flush_rebinds() {
        let (mut n, t) = net(NatKind::Symmetric);
        let a = roundtrip(&mut n, t);
        n.send(
            t,
            sa("10.1.0.2:5000"),
            sa("203.0.113.2:7777"),
            b"out".to_vec(),
        );
        let b = n.poll(t + Duration::from_secs(1)).unwrap().from;
        assert_ne!(a.port(), b.port(), "a new port per destination");
        let (mut n, t) = net(NatKind::PortRestricted);
        let before = roundtrip(&mut n, t);
        n.flush_mappings(0);
        let after = roundtrip(&mut n, t);
        assert_ne!(before, after, "flush gives a new external port");
    }

    #[test]
    fn firewall_keeps_address_and_drops_unsolicited() {
        let mut n = Network::new(1);
        let r = n.add_router(NatKind::Firewall, "203.0.113.30".parse().unwrap());
        n.add_host("203.0.113.31".parse().unwrap(), Some(r));
        n.add_host("203.0.113.1".parse().unwrap(), None);
        let t = Instant::now();
        n.send(
            t,
            sa("203.0.113.1:7777"),
            sa("203.0.113.31:5000"),
            b"x".to_vec(),
        );
        assert!(n.poll(t + Duration::from_secs(1)).is_none());
        n.send(
            t,
            sa("203.0.113.31:5000"),
            sa("203.0.113.1:7777"),
            b"x".to_vec(),
        );
        assert_eq!(
            n.poll(t + Duration::from_secs(1)).unwrap().from,
            sa("203.0.113.31:5000")
        );
        n.send(
            t,
            sa("203.0.113.1:7777"),
            sa("203.0.113.31:5000"),
            b"x".to_vec(),
        );
        assert!(
            n.poll(t + Duration::from_secs(1)).is_some(),
            "reply allowed"
        );
    }

    #[test]
    fn loss_and_unroutable_are_counted() {
        let (mut n, t) = net(NatKind::None);
        n.send(t, sa("10.1.0.2:1"), sa("10.9.9.9:1"), vec![]);
        assert_eq!(n.stats().unroutable, 1);
        n.set_loss(100);
        n.send(t, sa("10.1.0.2:1"), sa("203.0.113.1:1"), vec![]);
        assert_eq!(n.stats().lost, 1);
    }
}
