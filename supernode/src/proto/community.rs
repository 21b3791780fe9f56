//! Communities: their subnet, their leases (stable IP per MAC) and their members.

use super::config::CommunityPolicy;
use n2n_protocol::types::{EdgeId, Mac};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// A virtual IP granted to a MAC in a community; persisted by the shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Community name.
    pub community: String,
    /// The edge's MAC.
    pub mac: Mac,
    /// The granted address.
    pub ip: Ipv4Addr,
    /// The edge id that goes with it (stable across supernode restarts).
    pub edge_id: EdgeId,
    /// The edge's last description.
    pub desc: String,
    /// The identity key the lease belongs to: only a registration signed by it gets this
    /// lease. None for a lease from protocol v1 or released by the operator (the next member
    /// to register with its MAC claims it).
    pub identity: Option<[u8; 32]>,
    /// Unix seconds when the edge was last registered or heard from.
    pub last_seen_unix: u64,
}

/// Separates a community's name from its verifier in the key a closed community is kept
/// under (names may not contain it).
pub const VERIFIER_SEPARATOR: char = '~';

/// The key a community is kept under: the bare name for an open community and for one whose
/// verifiers the operator configured, else `name~` and the verifier's first 16 bytes in hex,
/// so groups that chose one name with different passphrases are different communities and
/// nobody can squat a name. (The full verifier is checked at every registration.)
pub fn community_key(
    name: &str,
    verifier: Option<&[u8; 32]>,
    policy: Option<&CommunityPolicy>,
) -> String {
    match verifier {
        Some(v) if policy.is_none_or(|p| p.verifiers.is_empty()) => {
            let hex: String = v[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("{name}{VERIFIER_SEPARATOR}{hex}")
        }
        _ => name.to_string(),
    }
}

/// The community name in a community key (what configured policies are looked up by).
pub fn base_name(key: &str) -> &str {
    key.split_once(VERIFIER_SEPARATOR).map_or(key, |(n, _)| n)
}

/// A community's subnet; persisted by the shell so subnets stay put across restarts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommunityRecord {
    /// Community name.
    pub name: String,
    /// Network address.
    pub subnet: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
    /// The verifier of a closed community kept under `name~…` (see [`community_key`]).
    pub verifier: Option<[u8; 32]>,
}

/// Why no address could be granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// Every host address is leased to an online edge.
    Exhausted,
}

/// A community as the supernode keeps it.
#[derive(Debug)]
#[cfg_attr(fuzzing, derive(Clone))]
pub struct Community {
    /// Name.
    pub name: String,
    /// Network address of the subnet.
    pub subnet: Ipv4Addr,
    /// Prefix length of the subnet.
    pub prefix: u8,
    /// Admission and limits.
    pub policy: CommunityPolicy,
    /// The verifier every member proves (None: open, or configured verifiers in `policy`).
    pub verifier: Option<[u8; 32]>,
    /// Leases by MAC.
    pub leases: BTreeMap<Mac, Lease>,
    ip_owner: BTreeMap<Ipv4Addr, Mac>,
    /// Registered edge ids.
    pub members: BTreeSet<EdgeId>,
}

fn host_range(subnet: Ipv4Addr, prefix: u8) -> (u32, u32) {
    let base = u32::from(subnet);
    let size = 1u32 << (32 - u32::from(prefix.clamp(8, 30)));
    (base + 1, base + size - 2)
}

impl Community {
    /// Unix seconds its newest lease was last seen (0 without leases).
    pub fn last_seen_unix(&self) -> u64 {
        self.leases
            .values()
            .map(|l| l.last_seen_unix)
            .max()
            .unwrap_or(0)
    }

    /// A community with no leases yet.
    pub fn new(record: &CommunityRecord, policy: CommunityPolicy) -> Self {
        Self {
            name: record.name.clone(),
            subnet: record.subnet,
            prefix: record.prefix,
            policy,
            verifier: record.verifier,
            leases: BTreeMap::new(),
            ip_owner: BTreeMap::new(),
            members: BTreeSet::new(),
        }
    }

    /// The persisted form of this community.
    pub fn record(&self) -> CommunityRecord {
        CommunityRecord {
            name: self.name.clone(),
            subnet: self.subnet,
            prefix: self.prefix,
            verifier: self.verifier,
        }
    }

    /// True if `ip` is a host address of this community's subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let (lo, hi) = host_range(self.subnet, self.prefix);
        (lo..=hi).contains(&u32::from(ip))
    }

    /// Restores a persisted lease (ignored if it no longer fits the subnet or collides).
    pub fn restore(&mut self, lease: Lease) -> bool {
        if !self.contains(lease.ip) || self.ip_owner.contains_key(&lease.ip) {
            return false;
        }
        self.ip_owner.insert(lease.ip, lease.mac);
        self.leases.insert(lease.mac, lease);
        true
    }

    /// Chooses the address for `mac`: its requested static IP when free, else its existing
    /// lease, else the lowest free address, else the least recently seen lease that
    /// `reclaimable` allows (an offline edge's, old enough). Returns the address and the MAC
    /// whose lease was reclaimed, if any.
    pub fn choose_ip(
        &self,
        mac: Mac,
        requested: Option<Ipv4Addr>,
        reclaimable: impl Fn(&Lease) -> bool,
    ) -> Result<(Ipv4Addr, Option<Mac>), AllocError> {
        if let Some(ip) = requested
            && self.contains(ip)
            && self.ip_owner.get(&ip).is_none_or(|owner| *owner == mac)
        {
            return Ok((ip, None));
        }
        if let Some(l) = self.leases.get(&mac) {
            return Ok((l.ip, None));
        }
        let (lo, hi) = host_range(self.subnet, self.prefix);
        if let Some(ip) = (lo..=hi)
            .map(Ipv4Addr::from)
            .find(|ip| !self.ip_owner.contains_key(ip))
        {
            return Ok((ip, None));
        }
        self.leases
            .values()
            .filter(|l| reclaimable(l))
            .min_by_key(|l| (l.last_seen_unix, l.ip))
            .map(|l| (l.ip, Some(l.mac)))
            .ok_or(AllocError::Exhausted)
    }

    /// Records a lease (replacing the MAC's previous one and any reclaimed owner of the IP).
    pub fn grant(&mut self, lease: Lease) {
        if let Some(old) = self.leases.remove(&lease.mac) {
            self.ip_owner.remove(&old.ip);
        }
        if let Some(prev_owner) = self.ip_owner.insert(lease.ip, lease.mac) {
            self.leases.remove(&prev_owner);
        }
        self.leases.insert(lease.mac, lease);
    }
}

/// Picks a subnet for a new community: a hash of its name chooses the first candidate in the
/// pool, and the next free one is taken when it collides (no two communities share a subnet).
pub fn choose_subnet(
    name: &str,
    pool: (Ipv4Addr, u8),
    prefix: u8,
    taken: &BTreeSet<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let (base, pool_prefix) = pool;
    if prefix < pool_prefix || prefix > 30 {
        return None;
    }
    let count = 1u64 << (prefix - pool_prefix);
    let size = 1u64 << (32 - prefix);
    let mask = u32::MAX
        .checked_shl(32 - u32::from(pool_prefix))
        .unwrap_or(0);
    let base = u64::from(u32::from(base) & mask);
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (0..count)
        .map(|i| Ipv4Addr::from((base + ((h + i) % count) * size) as u32))
        .find(|s| !taken.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn community() -> Community {
        Community::new(
            &CommunityRecord {
                name: "c".into(),
                subnet: Ipv4Addr::new(10, 0, 0, 0),
                prefix: 30,
                verifier: None,
            },
            CommunityPolicy::default(),
        )
    }

    fn lease(mac: u8, ip: Ipv4Addr, seen: u64) -> Lease {
        Lease {
            community: "c".into(),
            mac: Mac([2, 0, 0, 0, 0, mac]),
            ip,
            edge_id: mac.into(),
            desc: String::new(),
            identity: None,
            last_seen_unix: seen,
        }
    }

    #[test]
    fn allocation_is_stable_honours_requests_and_reclaims_oldest_offline() {
        let mut c = community();
        let (m1, m2, m3) = (
            Mac([2, 0, 0, 0, 0, 1]),
            Mac([2, 0, 0, 0, 0, 2]),
            Mac([2, 0, 0, 0, 0, 3]),
        );
        let (ip1, ip2) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(c.choose_ip(m1, None, |_| true), Ok((ip1, None)));
        c.grant(lease(1, ip1, 10));
        assert_eq!(
            c.choose_ip(m1, None, |_| true),
            Ok((ip1, None)),
            "stable per MAC"
        );
        // m2 asks for m1's address: taken, so it gets the next free one.
        assert_eq!(c.choose_ip(m2, Some(ip1), |_| true), Ok((ip2, None)));
        c.grant(lease(2, ip2, 5));
        // Pool full (/30 has two hosts): m3 reclaims the oldest offline lease (m2).
        assert_eq!(c.choose_ip(m3, None, |_| true), Ok((ip2, Some(m2))));
        assert_eq!(c.choose_ip(m3, None, |_| false), Err(AllocError::Exhausted));
        c.grant(lease(3, ip2, 20));
        assert!(!c.leases.contains_key(&m2));
        // Out-of-subnet requests are ignored.
        assert_eq!(
            c.choose_ip(m1, Some(Ipv4Addr::new(192, 168, 1, 1)), |_| true),
            Ok((ip1, None))
        );
    }

    #[test]
    fn subnets_do_not_collide() {
        let pool = (Ipv4Addr::new(10, 128, 0, 0), 9);
        let mut taken = BTreeSet::new();
        for i in 0..50 {
            let s = choose_subnet(&format!("c{i}"), pool, 24, &taken).unwrap();
            assert!(u32::from(s) >= u32::from(Ipv4Addr::new(10, 128, 0, 0)));
            assert_eq!(u32::from(s) & 0xff, 0);
            assert!(taken.insert(s));
        }
        let tiny = (Ipv4Addr::new(10, 0, 0, 0), 23);
        let mut t = BTreeSet::new();
        t.insert(choose_subnet("a", tiny, 24, &t).unwrap());
        t.insert(choose_subnet("b", tiny, 24, &t).unwrap());
        assert_eq!(choose_subnet("c", tiny, 24, &t), None);
    }
}
