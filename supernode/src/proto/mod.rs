//! The sans-IO supernode core: admission, leases, peer distribution, punch coordination,
//! relay and expiry. Inputs carry the time; outputs are polled.

mod admission;
mod community;
mod config;
mod control;
mod edge;
mod outputs;
mod register;
mod relay;

pub use community::{
    AllocError, Community, CommunityRecord, Lease, VERIFIER_SEPARATOR, base_name, community_key,
};
pub use config::{CommunityPolicy, Limits, SupernodeConfig};
pub use edge::EdgeRecord;
pub use outputs::{Event, LimitHits, PersistedState, RemoveReason, SupernodeStats};

use n2n_protocol::crypto::identity::{Fingerprint, Identity};
use n2n_protocol::crypto::kdf;
use n2n_protocol::ratelimit::{KeyedLimiter, TokenBucket};
use n2n_protocol::rng::CoreRng;
use n2n_protocol::timer::TimerTable;
use n2n_protocol::types::{EdgeId, Mac, Transmit};
use n2n_protocol::wire::sealed::SealedMessage;
use n2n_protocol::wire::{self, Form};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use x25519_dalek::{PublicKey, StaticSecret};

/// The key abuse limits count a source under: its IPv4 address, or the /64 of its IPv6
/// address (one LAN: per-address limits would be no limits at all).
pub fn source_key(ip: IpAddr) -> IpAddr {
    prefix_key(ip, 64)
}

/// The key new communities are counted under: an IPv4 address, or an IPv6 /48 (a whole
/// site's allocation: subnets are scarce, so one site gets one share).
pub fn site_key(ip: IpAddr) -> IpAddr {
    prefix_key(ip, 48)
}

fn prefix_key(ip: IpAddr, v6_bits: u32) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(
            u128::from(v6) & !(u128::MAX >> v6_bits),
        )),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Sweep,
}

/// Length of one cookie validity bucket.
const COOKIE_BUCKET: Duration = Duration::from_secs(30);
/// Full peer lists one edge may ask for (PEER_SYNC_REQUEST): a burst of 3, then one per 5 s
/// (what an edge asks for at most).
pub(crate) const PEER_SYNCS_PER_EDGE: n2n_protocol::ratelimit::Rate =
    n2n_protocol::ratelimit::Rate::new(0.2, 3.0);
/// A new address is challenged at most this often per edge.
const CHALLENGE_EVERY: Duration = Duration::from_secs(1);
/// At most one [`Event::OutdatedPeer`] this often (spoofed floods must not flood the log).
const OUTDATED_LOG_EVERY: Duration = Duration::from_secs(60);

/// The supernode core.
#[cfg_attr(fuzzing, derive(Clone))]
pub struct Supernode {
    config: SupernodeConfig,
    identity: Identity,
    signature: Vec<u8>,
    secret: StaticSecret,
    public: [u8; 32],
    epoch: u64,
    cookie_secret: [u8; 32],
    start: Instant,
    unix_at_start: u64,
    communities: BTreeMap<String, Community>,
    /// The subnets of `communities`, kept beside them so a new community's subnet is chosen
    /// without walking every community.
    subnets: BTreeSet<Ipv4Addr>,
    edges: BTreeMap<EdgeId, EdgeRecord>,
    next_edge_id: EdgeId,
    handshakes: KeyedLimiter<IpAddr>,
    /// Edge session keys of REGISTERs accepted while their cookies can still be valid, with
    /// the id they registered (0: refused): a key is never given a second session.
    used_register_keys: BTreeMap<[u8; 32], (EdgeId, Instant)>,
    last_outdated: Option<Instant>,
    /// Path challenge nonces.
    rng: CoreRng,
    new_communities: KeyedLimiter<IpAddr>,
    unknown_replies: TokenBucket,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    timers: TimerTable<Timer>,
    stats: SupernodeStats,
}

impl Supernode {
    /// Creates the core. `unix_now` maps `now` to wall-clock seconds for lease timestamps.
    pub fn new(
        config: SupernodeConfig,
        identity: Identity,
        state: PersistedState,
        mut rng: CoreRng,
        now: Instant,
        unix_now: u64,
    ) -> Self {
        let secret = StaticSecret::from(rng.bytes::<32>());
        let public = PublicKey::from(&secret).to_bytes();
        let epoch = rng.next_u64();
        // The one RSA private-key operation: done here, once, never on request.
        let signature = identity.sign(&wire::plain::signed_key_material(&public, epoch));
        let cookie_secret = rng.bytes();
        let mut timers = TimerTable::default();
        timers.set(Timer::Sweep, now + config.sweep_interval);
        let limits = config.limits.clone();
        let mut sn = Self {
            handshakes: KeyedLimiter::new(limits.handshakes_per_source, limits.max_tracked_sources),
            new_communities: KeyedLimiter::new(
                limits.new_communities_per_source,
                limits.max_tracked_sources,
            ),
            unknown_replies: TokenBucket::new(limits.unknown_session_replies, now),
            used_register_keys: BTreeMap::new(),
            last_outdated: None,
            rng,
            config,
            identity,
            signature,
            secret,
            public,
            epoch,
            cookie_secret,
            start: now,
            unix_at_start: unix_now,
            communities: BTreeMap::new(),
            subnets: BTreeSet::new(),
            edges: BTreeMap::new(),
            next_edge_id: 1,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            timers,
            stats: SupernodeStats::default(),
        };
        sn.restore(state);
        sn
    }

    fn restore(&mut self, state: PersistedState) {
        for rec in state.communities {
            let policy = self
                .config
                .communities
                .get(&rec.name)
                .cloned()
                .unwrap_or_default();
            self.add_community(&rec, policy);
        }
        for lease in state.leases {
            self.next_edge_id = self.next_edge_id.max(lease.edge_id.saturating_add(1));
            if let Some(c) = self.communities.get_mut(&lease.community) {
                c.restore(lease);
            }
        }
    }

    /// Adds a community (communities are never removed, so `subnets` only grows).
    fn add_community(&mut self, rec: &CommunityRecord, policy: CommunityPolicy) {
        self.subnets.insert(rec.subnet);
        self.communities
            .insert(rec.name.clone(), Community::new(rec, policy));
    }

    /// The identity fingerprint edges can pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.identity.fingerprint()
    }

    /// Counters.
    pub fn stats(&self) -> &SupernodeStats {
        &self.stats
    }

    /// Communities by name.
    pub fn communities(&self) -> &BTreeMap<String, Community> {
        &self.communities
    }

    /// Registered edges by id.
    pub fn edges(&self) -> &BTreeMap<EdgeId, EdgeRecord> {
        &self.edges
    }

    /// The configuration in force.
    pub fn config(&self) -> &SupernodeConfig {
        &self.config
    }

    /// Wall-clock seconds at `now`.
    pub fn unix_time(&self, now: Instant) -> u64 {
        self.unix_at_start + now.saturating_duration_since(self.start).as_secs()
    }

    /// Handles one datagram from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.stats.datagrams += 1;
        let result = match wire::classify(bytes) {
            Ok(Form::Plain) => self.handle_plain(now, from, bytes),
            Ok(Form::Sealed) => self.handle_sealed(now, from, bytes),
            Ok(Form::Data) => self.handle_relay(now, from, bytes),
            Err(e) => {
                if let wire::WireError::BadVersion(version) = e
                    && version < wire::VERSION
                    && self
                        .last_outdated
                        .is_none_or(|t| now.saturating_duration_since(t) >= OUTDATED_LOG_EVERY)
                {
                    self.last_outdated = Some(now);
                    self.events.push_back(Event::OutdatedPeer { from, version });
                }
                Err(e.drop_reason())
            }
        };
        if let Err(reason) = result {
            self.stats.drops.count(reason);
        }
    }

    /// Runs due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        for t in self.timers.expired(now) {
            match t {
                Timer::Sweep => {
                    self.sweep(now);
                    self.timers
                        .set(Timer::Sweep, now + self.config.sweep_interval);
                }
            }
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    fn send(&mut self, dst: SocketAddr, payload: Vec<u8>) {
        self.transmits.push_back(Transmit { dst, payload });
    }

    fn sweep(&mut self, now: Instant) {
        let expiry = self.config.expiry;
        let stale: Vec<EdgeId> = self
            .edges
            .values()
            .filter(|e| now.saturating_duration_since(e.last_seen) > expiry)
            .map(|e| e.id)
            .collect();
        for id in stale {
            self.remove_edge(id, RemoveReason::Expired);
        }
        self.handshakes.prune(now);
        // A REGISTER's cookie is valid for two buckets at most: older keys cannot come back.
        self.used_register_keys
            .retain(|_, (_, at)| now.saturating_duration_since(*at) <= 3 * COOKIE_BUCKET);
        self.new_communities.prune(now);
        self.remove_idle_communities(now);
    }

    /// Applies a new configuration to the running core (SIGHUP): communities, limits,
    /// timings and the pool for new subnets. Members of a community whose admission changed
    /// (a secret added, changed or removed, or no longer served) are dropped: their next
    /// heartbeat finds no session and they register again under the new rules. Existing
    /// communities keep their subnets.
    pub fn reconfigure(&mut self, config: SupernodeConfig, now: Instant) {
        let served = |cfg: &SupernodeConfig, name: &str| {
            cfg.communities.contains_key(name) || cfg.allow_open
        };
        let mut readmit = Vec::new();
        for c in self.communities.values_mut() {
            let name = base_name(&c.name);
            let policy = config.communities.get(name).cloned().unwrap_or_default();
            let admission_changed = policy.verifiers != c.policy.verifiers
                || served(&self.config, name) != served(&config, name);
            if admission_changed {
                readmit.extend(c.members.iter().copied());
            }
            c.policy = policy;
        }
        if config.limits != self.config.limits {
            let l = &config.limits;
            self.handshakes = KeyedLimiter::new(l.handshakes_per_source, l.max_tracked_sources);
            self.new_communities =
                KeyedLimiter::new(l.new_communities_per_source, l.max_tracked_sources);
            self.unknown_replies = TokenBucket::new(l.unknown_session_replies, now);
        }
        if config.sweep_interval != self.config.sweep_interval {
            self.timers.set(Timer::Sweep, now + config.sweep_interval);
        }
        self.config = config;
        for id in readmit {
            self.remove_edge(id, RemoveReason::Readmit);
        }
    }

    /// Removes open communities nobody used for `open_community_idle` (no edge registered,
    /// none seen that long, and this process up that long), so abandoned ones free their
    /// subnet.
    fn remove_idle_communities(&mut self, now: Instant) {
        let idle = self.config.open_community_idle.as_secs();
        if idle == 0 {
            return;
        }
        let cutoff = self.unix_time(now).saturating_sub(idle);
        let configured = &self.config.communities;
        // Leases record registrations and departures, not heartbeats, and a restart empties
        // every community: the idle clock starts no earlier than this process did.
        let started = self.unix_at_start;
        let gone: Vec<(String, Ipv4Addr)> = self
            .communities
            .values()
            .filter(|c| c.members.is_empty() && !configured.contains_key(base_name(&c.name)))
            .filter(|c| c.last_seen_unix().max(started) <= cutoff)
            .map(|c| (c.name.clone(), c.subnet))
            .collect();
        for (name, subnet) in gone {
            self.communities.remove(&name);
            self.subnets.remove(&subnet);
            self.events
                .push_back(Event::CommunityRemoved { name, subnet });
        }
    }

    /// Frees the lease of `mac` in `community` from its identity key, for a member that lost
    /// its key: the next registration with that MAC (and a valid admission) claims the
    /// lease, its address and its edge id. An edge online with that MAC is dropped, so it
    /// has to register again like everyone else. Returns the released lease.
    pub fn release_lease(&mut self, community: &str, mac: Mac) -> Result<Lease, String> {
        let c = self
            .communities
            .get_mut(community)
            .ok_or_else(|| format!("no community {community:?} (see GET /communities)"))?;
        let lease = c
            .leases
            .get_mut(&mac)
            .ok_or_else(|| format!("no lease for {mac} in community {community:?}"))?;
        lease.identity = None;
        let lease = lease.clone();
        self.events.push_back(Event::LeaseGranted(lease.clone()));
        if self.edges.contains_key(&lease.edge_id) {
            self.remove_edge(lease.edge_id, RemoveReason::Readmit);
        }
        Ok(lease)
    }

    fn remove_edge(&mut self, id: EdgeId, reason: RemoveReason) {
        let Some(rec) = self.edges.remove(&id) else {
            return;
        };
        let unix_now = self.unix_time(rec.last_seen);
        if let Some(c) = self.communities.get_mut(&rec.community) {
            c.members.remove(&id);
            // The lease remembers when its edge was last heard from (idle communities and
            // the lease list go by it).
            if let Some(l) = c.leases.get_mut(&rec.mac)
                && l.edge_id == id
            {
                l.last_seen_unix = l.last_seen_unix.max(unix_now);
                self.events.push_back(Event::LeaseGranted(l.clone()));
            }
        }
        self.broadcast(
            &rec.community,
            Some(id),
            &SealedMessage::PeerRemove { ids: vec![id] },
        );
        self.events.push_back(Event::EdgeRemoved {
            id,
            community: rec.community,
            reason,
        });
    }

    fn cookie_bucket(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_secs() / COOKIE_BUCKET.as_secs()
    }

    fn cookie_for(&self, from: SocketAddr, now: Instant) -> [u8; 16] {
        kdf::cookie(&self.cookie_secret, from, self.cookie_bucket(now))
    }

    /// A cookie stays valid for the current and the previous bucket.
    fn cookie_valid(&self, from: SocketAddr, now: Instant, cookie: &[u8; 16]) -> bool {
        let bucket = self.cookie_bucket(now);
        [bucket, bucket.wrapping_sub(1)]
            .iter()
            .any(|b| kdf::ct_eq(&kdf::cookie(&self.cookie_secret, from, *b), cookie))
    }
}

#[cfg(test)]
mod tests {
    use super::source_key;

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_slash_64s() {
        let k = |s: &str| source_key(s.parse().unwrap());
        assert_eq!(k("192.0.2.7"), k("192.0.2.7"));
        assert_ne!(k("192.0.2.7"), k("192.0.2.8"));
        assert_eq!(k("2001:db8:1:2:aaaa::1"), k("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(
            k("2001:db8:1:2::9"),
            "2001:db8:1:2::".parse::<std::net::IpAddr>().unwrap()
        );
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        let site = |s: &str| super::site_key(s.parse().unwrap());
        assert_eq!(site("2001:db8:1:2::1"), site("2001:db8:1:ffff::9"));
        assert_ne!(site("2001:db8:1::1"), site("2001:db8:2::1"));
        assert_eq!(site("192.0.2.7"), k("192.0.2.7"));
    }
}
