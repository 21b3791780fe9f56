//! NAT and firewall models for the simulator (RFC 4787 terms).

use crate::rng::CoreRng;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How a router treats traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NatKind {
    /// A plain router that translates nothing and filters nothing (host behind is public).
    None,
    /// Endpoint-independent mapping and filtering: anyone may send to a mapped port.
    FullCone,
    /// Endpoint-independent mapping; inbound only from IPs the host has sent to.
    AddressRestricted,
    /// Endpoint-independent mapping; inbound only from exact IP:port the host has sent to.
    PortRestricted,
    /// A new mapping (random port) per destination; inbound only from that destination.
    Symmetric,
    /// No translation (the host has a public address), but unsolicited inbound packets are
    /// silently dropped: only replies to what the host sent (exact IP:port) get in.
    Firewall,
}

impl NatKind {
    /// Every kind, for exhaustive scenario matrices.
    pub const ALL: [NatKind; 6] = [
        Self::None,
        Self::FullCone,
        Self::AddressRestricted,
        Self::PortRestricted,
        Self::Symmetric,
        Self::Firewall,
    ];

    /// Whether two edges behind these kinds can reach each other directly by hole punching
    /// (with supernode-coordinated simultaneous probes and peer-reflexive candidates).
    /// Only a symmetric mapping facing a port-dependent filter defeats it.
    pub fn direct_possible(a: NatKind, b: NatKind) -> bool {
        let port_filtered =
            |k| matches!(k, Self::PortRestricted | Self::Symmetric | Self::Firewall);
        !((a == Self::Symmetric && port_filtered(b)) || (b == Self::Symmetric && port_filtered(a)))
    }
}

/// Idle time after which a mapping is forgotten.
const MAPPING_TIMEOUT: Duration = Duration::from_secs(120);

struct Mapping {
    internal: SocketAddr,
    external_port: u16,
    /// For symmetric NATs: the one destination this mapping serves.
    remote: Option<SocketAddr>,
    contacted: BTreeSet<SocketAddr>,
    last_used: Instant,
}

pub(super) struct Router {
    kind: NatKind,
    public_ip: IpAddr,
    mappings: Vec<Mapping>,
    /// Ports of flushed mappings, never reused, so a flush really rebinds.
    retired: BTreeSet<u16>,
}

impl Router {
    pub(super) fn new(kind: NatKind, public_ip: IpAddr) -> Self {
        Self {
            kind,
            public_ip,
            mappings: Vec::new(),
            retired: BTreeSet::new(),
        }
    }

    pub(super) fn public_ip(&self) -> IpAddr {
        self.public_ip
    }

    /// True when hosts behind it use private addresses.
    pub(super) fn translates(&self) -> bool {
        !matches!(self.kind, NatKind::None | NatKind::Firewall)
    }

    pub(super) fn flush(&mut self) {
        self.retired
            .extend(self.mappings.iter().map(|m| m.external_port));
        self.mappings.clear();
    }

    fn expire(&mut self, now: Instant) {
        self.mappings
            .retain(|m| now.saturating_duration_since(m.last_used) < MAPPING_TIMEOUT);
    }

    /// Translates an outbound datagram's source; returns the source the world sees.
    pub(super) fn outbound(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        rng: &mut CoreRng,
    ) -> Option<SocketAddr> {
        self.expire(now);
        if self.kind == NatKind::None {
            return Some(from);
        }
        let symmetric = self.kind == NatKind::Symmetric;
        let idx = self
            .mappings
            .iter()
            .position(|m| m.internal == from && (!symmetric || m.remote == Some(to)));
        let idx = match idx {
            Some(i) => i,
            None => {
                let keep = !self.translates() || (!symmetric && !self.port_in_use(from.port()));
                let port = if keep {
                    from.port()
                } else {
                    self.random_free_port(rng)
                };
                self.mappings.push(Mapping {
                    internal: from,
                    external_port: port,
                    remote: symmetric.then_some(to),
                    contacted: BTreeSet::new(),
                    last_used: now,
                });
                self.mappings.len() - 1
            }
        };
        let ip = if self.translates() {
            self.public_ip
        } else {
            from.ip()
        };
        let m = self.mappings.get_mut(idx)?;
        m.contacted.insert(to);
        m.last_used = now;
        Some(SocketAddr::new(ip, m.external_port))
    }

    fn port_in_use(&self, port: u16) -> bool {
        self.retired.contains(&port) || self.mappings.iter().any(|m| m.external_port == port)
    }

    fn random_free_port(&self, rng: &mut CoreRng) -> u16 {
        loop {
            let p = 20000 + rng.below(40000) as u16;
            if !self.port_in_use(p) {
                return p;
            }
        }
    }

    /// Filters an inbound datagram from `from` to `to` (a public address of this router or of
    /// a host behind a firewall); returns the inner destination if it may pass.
    pub(super) fn inbound(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
    ) -> Option<SocketAddr> {
        self.expire(now);
        if self.kind == NatKind::None {
            return Some(to);
        }
        let kind = self.kind;
        let translates = self.translates();
        let m = self.mappings.iter_mut().find(|m| {
            let port_ok = m.external_port == to.port();
            let addr_ok = translates || m.internal.ip() == to.ip();
            port_ok && addr_ok && (kind != NatKind::Symmetric || m.remote == Some(from))
        })?;
        let allowed = match kind {
            NatKind::FullCone => true,
            NatKind::AddressRestricted => m.contacted.iter().any(|c| c.ip() == from.ip()),
            _ => m.contacted.contains(&from),
        };
        if !allowed {
            return None;
        }
        m.last_used = now;
        Some(m.internal)
    }
}
