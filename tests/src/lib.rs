//! Test support across crates: a simulated world of one supernode and edges behind NAT
//! routers, driven on the deterministic network of `n2n_protocol::sim` with a manual clock.

// Test support: a wrong index or a failed expectation should panic the test right there.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use n2n_edge::proto::{Edge, EdgeConfig, Path};
use n2n_protocol::crypto::identity::Identity;
use n2n_protocol::crypto::kdf::{CommunityKeys, KdfParams, edge_mac};
use n2n_protocol::crypto::signing::Signer;
use n2n_protocol::rng::CoreRng;
use n2n_protocol::sim::{NatKind, Network, RouterId};
use n2n_protocol::types::{Candidate, CandidateKind};
use n2n_supernode::proto::{Event as SnEvent, PersistedState, Supernode, SupernodeConfig};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The supernode's public address in every world.
pub const SN_ADDR: &str = "203.0.113.1:7777";

/// One identity per test binary: RSA key generation is slow.
pub fn test_identity() -> Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| Identity::generate(&mut CoreRng::seeded(7), 2048).expect("rsa keygen"))
        .clone()
}

/// Community keys with cheap KDF parameters (cached per passphrase).
pub fn keys(community: &str, passphrase: Option<&str>) -> CommunityKeys {
    CommunityKeys::derive(community, passphrase, KdfParams::FAST_INSECURE)
}

/// A community policy that admits only the members of `passphrase` (its verifier listed).
pub fn closed_policy(community: &str, passphrase: &str) -> n2n_supernode::proto::CommunityPolicy {
    n2n_supernode::proto::CommunityPolicy {
        verifiers: keys(community, Some(passphrase))
            .verifier()
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

/// Where the simulator's attackers send from.
pub const ATTACKER: &str = "203.0.113.66:4444";

/// An edge living in the world.
pub struct SimEdge {
    /// Its socket address on its host.
    pub addr: SocketAddr,
    /// The core.
    pub core: Edge,
    /// The router it sits behind.
    pub router: Option<RouterId>,
    /// Frames it delivered to its TAP.
    pub delivered: Vec<Vec<u8>>,
    /// Every event it emitted.
    pub events: Vec<n2n_edge::proto::Event>,
    /// When it was created.
    pub started: Instant,
    /// When it first had a direct path to any peer.
    pub first_direct: Option<Instant>,
    /// Suspended (a laptop lid closed): it gets no time and no datagrams.
    pub frozen: bool,
}

/// A supernode, a network, and edges.
pub struct World {
    /// The network.
    pub net: Network,
    /// The clock.
    pub now: Instant,
    /// The supernode (None while "down").
    pub sn: Option<Supernode>,
    /// What the supernode persisted (leases, communities), as its store would hold.
    pub sn_store: PersistedState,
    /// Every event the supernode emitted.
    pub sn_events: Vec<SnEvent>,
    /// Edges in creation order.
    pub edges: Vec<SimEdge>,
    /// Every datagram sent, in order: (from, to, bytes), for replay tests.
    pub wire_log: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// Record the wire log.
    pub capture: bool,
    /// An on-path attacker: datagrams an edge sends to this address are kept in
    /// `withheld` instead of delivered.
    pub withhold_to: Option<SocketAddr>,
    /// What the on-path attacker kept (source, payload).
    pub withheld: Vec<(SocketAddr, Vec<u8>)>,
    /// The identity the supernode (re)starts with.
    pub sn_identity: Identity,
    sn_config: SupernodeConfig,
    seed: u64,
    next_public: u8,
    /// When the world began: wall-clock time is [`UNIX_AT_START`] then.
    began: Instant,
}

/// The wall-clock second the simulated world begins at.
pub const UNIX_AT_START: u64 = 1_700_000_000;

/// Options of a new edge.
#[derive(Clone, Debug)]
pub struct EdgeOptions {
    /// Community.
    pub community: String,
    /// Passphrase.
    pub passphrase: Option<String>,
    /// Router kind in front of it (a new router), unless `behind` is set.
    pub nat: NatKind,
    /// Put it behind an existing router instead.
    pub behind: Option<RouterId>,
    /// Advertise its own address as a LAN candidate.
    pub advertise_lan: bool,
    /// Machine id byte (MAC derivation).
    pub machine: u8,
    /// Identity key seed byte (each simulated machine has its own; `new` uses `machine`).
    pub identity: u8,
    /// Requested static IP.
    pub requested_ip: Option<Ipv4Addr>,
    /// Compress.
    pub compress: bool,
    /// How often the edge rotates its static key.
    pub key_rotation: Option<Duration>,
}

impl EdgeOptions {
    /// An edge of community "acme" with passphrase "secret" behind a `nat` router.
    pub fn new(nat: NatKind, machine: u8) -> Self {
        Self {
            community: "acme".into(),
            passphrase: Some("secret".into()),
            nat,
            behind: None,
            advertise_lan: true,
            machine,
            identity: machine,
            requested_ip: None,
            compress: false,
            key_rotation: None,
        }
    }
}

fn sn_addr() -> SocketAddr {
    SN_ADDR.parse().expect("address")
}

impl World {
    /// A world with a public supernode.
    pub fn new(seed: u64, sn_config: SupernodeConfig) -> Self {
        let mut net = Network::new(seed);
        net.add_host(sn_addr().ip(), None);
        let now = Instant::now();
        let mut w = Self {
            net,
            now,
            sn: None,
            sn_store: PersistedState::default(),
            sn_events: Vec::new(),
            edges: Vec::new(),
            wire_log: Vec::new(),
            capture: false,
            withhold_to: None,
            withheld: Vec::new(),
            sn_identity: test_identity(),
            sn_config,
            seed,
            next_public: 10,
            began: now,
        };
        w.start_supernode();
        w
    }

    /// A world with a default supernode and two members of "acme" (passphrase "secret",
    /// public addresses), registered and connected, with the wire log on.
    pub fn connected_pair(seed: u64) -> Self {
        let mut w = Self::new(seed, SupernodeConfig::default());
        w.capture = true;
        w.add_edge(EdgeOptions::new(NatKind::None, 1));
        w.add_edge(EdgeOptions::new(NatKind::None, 2));
        assert!(w.run_until(Duration::from_secs(10), |w| w.all_connected()));
        w
    }

    /// Starts the supernode with a new configuration (kept for later restarts).
    pub fn start_supernode_with(&mut self, config: SupernodeConfig) {
        self.sn_config = config;
        self.start_supernode();
    }

    /// (Re)starts the supernode from its persisted store, with a fresh RNG.
    pub fn start_supernode(&mut self) {
        self.seed += 1000;
        let sn = Supernode::new(
            self.sn_config.clone(),
            self.sn_identity.clone(),
            self.sn_store.clone(),
            CoreRng::seeded(self.seed),
            self.now,
            UNIX_AT_START + self.now.duration_since(self.began).as_secs(),
        );
        self.sn = Some(sn);
    }

    /// Stops the supernode, losing all its memory (the store survives).
    pub fn kill_supernode(&mut self) {
        self.sn = None;
    }

    fn next_public_ip(&mut self) -> IpAddr {
        self.next_public += 1;
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, self.next_public))
    }

    /// Adds a router of `kind` on the public segment.
    pub fn add_router(&mut self, kind: NatKind) -> RouterId {
        let ip = self.next_public_ip();
        self.net.add_router(kind, ip)
    }

    /// The supernode's community `name` with `passphrase` (as edges of [`EdgeOptions`] see it).
    pub fn closed_community(
        &self,
        name: &str,
        passphrase: &str,
    ) -> &n2n_supernode::proto::Community {
        let verifier = keys(name, Some(passphrase)).verifier();
        let key = n2n_supernode::proto::community_key(name, verifier.as_ref(), None);
        &self.sn.as_ref().expect("supernode running").communities()[&key]
    }

    /// The supernode's only community of this name (closed ones are kept under `name~…`).
    pub fn community(&self, name: &str) -> &n2n_supernode::proto::Community {
        let sn = self.sn.as_ref().expect("supernode running");
        let mut found = sn
            .communities()
            .values()
            .filter(|c| n2n_supernode::proto::base_name(&c.name) == name);
        let c = found.next().expect("community exists");
        assert!(found.next().is_none(), "one community named {name}");
        c
    }

    /// Adds an edge; returns its index.
    pub fn add_edge(&mut self, opts: EdgeOptions) -> usize {
        let idx = self.edges.len();
        let (router, host_ip) = match (opts.behind, opts.nat) {
            (Some(r), _) => (
                Some(r),
                IpAddr::V4(Ipv4Addr::new(10, 0, r as u8, 10 + idx as u8)),
            ),
            (None, NatKind::None) => (None, self.next_public_ip()),
            (None, NatKind::Firewall) => {
                let r = self.add_router(NatKind::Firewall);
                (Some(r), self.next_public_ip())
            }
            (None, kind) => {
                let r = self.add_router(kind);
                (
                    Some(r),
                    IpAddr::V4(Ipv4Addr::new(10, 0, r as u8, 10 + idx as u8)),
                )
            }
        };
        self.net.add_host(host_ip, router);
        let addr = SocketAddr::new(host_ip, 40000 + idx as u16);
        let k = keys(&opts.community, opts.passphrase.as_deref());
        let mac = edge_mac(&[opts.machine; 16], &opts.community);
        let identity = Signer::from_seed(&[opts.identity; 32]);
        let mut cfg = EdgeConfig::new(&opts.community, k, mac, identity, vec![sn_addr()]);
        cfg.desc = format!("edge{idx}");
        cfg.boot = UNIX_AT_START as u32;
        cfg.requested_ip = opts.requested_ip;
        cfg.compress = opts.compress;
        if opts.key_rotation.is_some() {
            cfg.key_rotation = opts.key_rotation;
        }
        if opts.advertise_lan {
            cfg.candidates = vec![Candidate {
                kind: CandidateKind::Lan,
                addr,
            }];
        }
        let core = Edge::new(cfg, CoreRng::seeded(self.seed * 31 + idx as u64), self.now);
        self.edges.push(SimEdge {
            addr,
            core,
            router,
            delivered: Vec::new(),
            events: Vec::new(),
            started: self.now,
            first_direct: None,
            frozen: false,
        });
        self.drain();
        idx
    }

    /// Replaces an edge's core with a new one built by `f` from the old config (a restart).
    pub fn restart_edge(&mut self, idx: usize, seed: u64) {
        self.restart_edge_with(idx, seed, |_| {});
    }

    /// Restarts edge `idx` with a changed configuration (another identity key, say). The new
    /// process gets the old one's peer pins, as the shell saves and loads them.
    pub fn restart_edge_with(&mut self, idx: usize, seed: u64, f: impl FnOnce(&mut EdgeConfig)) {
        let mut cfg = self.edges[idx].core.config().clone();
        cfg.boot += 1; // a new process starts later
        cfg.pins = self.edges[idx].core.pinned_peers(self.now);
        f(&mut cfg);
        self.edges[idx].core = Edge::new(cfg, CoreRng::seeded(seed), self.now);
        self.drain();
    }

    /// The supernode (as a hostile operator could) seals `msg` to edge `idx` on its session.
    pub fn supernode_says(&mut self, idx: usize, msg: &n2n_protocol::wire::sealed::SealedMessage) {
        let id = self.edges[idx].core.edge_id().expect("registered");
        self.sn.as_mut().expect("supernode running").say(id, msg);
        self.drain();
    }

    /// Suspends edge `idx` (no time passes for it, datagrams to it are lost) or resumes it.
    pub fn freeze(&mut self, idx: usize, frozen: bool) {
        self.edges[idx].frozen = frozen;
    }

    /// Sends `n` 500-byte frames each way between edges `a` and `b` (5 ms apart, then 200 ms
    /// to settle) and returns how many arrived each way.
    pub fn exchange(&mut self, a: usize, b: usize, n: u32) -> (usize, usize) {
        let (ma, mb) = (
            self.edges[a].core.config().mac.0,
            self.edges[b].core.config().mac.0,
        );
        let (da, db) = (self.edges[a].delivered.len(), self.edges[b].delivered.len());
        for seq in 0..n {
            self.send_frame(a, &frame(mb, ma, seq, 500));
            self.send_frame(b, &frame(ma, mb, seq, 500));
            self.run_for(Duration::from_millis(5));
        }
        self.run_for(Duration::from_millis(200));
        (
            self.edges[b].delivered.len() - db,
            self.edges[a].delivered.len() - da,
        )
    }

    /// Hands a frame to edge `idx` as if read from its TAP.
    pub fn send_frame(&mut self, idx: usize, frame: &[u8]) {
        let now = self.now;
        self.edges[idx].core.handle_frame(now, frame);
        self.drain();
    }

    /// Injects a datagram with any (possibly forged) source address.
    pub fn inject(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        self.net.spoof(self.now, from, to, bytes);
    }

    /// A printable summary of everything an edge's state consists of that outsiders must not
    /// be able to move.
    pub fn edge_state(&self, i: usize) -> String {
        let c = &self.edges[i].core;
        let peers: Vec<_> = c
            .peers()
            .values()
            .map(|p| (p.info.clone(), p.path, p.keys.len()))
            .collect();
        format!(
            "{:?} {:?} {:?} reg={} peers={:?} delivered={}",
            c.edge_id(),
            c.address(),
            c.observed(),
            c.stats().registrations,
            peers,
            self.edges[i].delivered.len()
        )
    }

    /// The same for the supernode: edges, endpoints, keys, leases, registrations (counters of
    /// relayed traffic are not state: a spoofed source can make it relay junk).
    pub fn sn_state(&self) -> String {
        let Some(sn) = self.sn.as_ref() else {
            return "down".into();
        };
        let edges: Vec<_> = sn
            .edges()
            .values()
            .map(|e| (e.id, e.endpoint, e.ip, e.key, e.candidates.clone()))
            .collect();
        let leases: Vec<_> = sn
            .communities()
            .values()
            .map(|c| c.leases.clone())
            .collect();
        format!("{edges:?} {leases:?} reg={}", sn.stats().registrations)
    }

    /// Advances time by `d`, processing everything that happens.
    pub fn run_for(&mut self, d: Duration) {
        let deadline = self.now + d;
        loop {
            let mut next = self.net.next_arrival();
            let mut consider = |t: Option<Instant>| {
                if let Some(t) = t {
                    next = Some(next.map_or(t, |n: Instant| n.min(t)));
                }
            };
            consider(self.sn.as_ref().and_then(|s| s.poll_timeout()));
            for e in self.edges.iter().filter(|e| !e.frozen) {
                consider(e.core.poll_timeout());
            }
            let Some(next) = next.filter(|n| *n <= deadline) else {
                self.now = deadline;
                return;
            };
            self.now = self.now.max(next);
            self.step();
        }
    }

    /// Runs until `pred` holds or `max` passes; returns whether it held.
    pub fn run_until(&mut self, max: Duration, mut pred: impl FnMut(&World) -> bool) -> bool {
        let deadline = self.now + max;
        while self.now < deadline {
            if pred(self) {
                return true;
            }
            self.run_for(Duration::from_millis(50));
        }
        pred(self)
    }

    fn step(&mut self) {
        let now = self.now;
        while let Some(d) = self.net.poll(now) {
            if d.to == sn_addr() {
                if let Some(sn) = self.sn.as_mut() {
                    sn.handle_datagram(now, d.from, &d.payload);
                }
            } else if let Some(e) = self.edges.iter_mut().find(|e| e.addr == d.to && !e.frozen) {
                e.core.handle_datagram(now, d.from, &d.payload);
            }
            self.drain();
        }
        if let Some(sn) = self.sn.as_mut()
            && sn.poll_timeout().is_some_and(|t| t <= now)
        {
            sn.handle_timeout(now);
        }
        for e in self.edges.iter_mut().filter(|e| !e.frozen) {
            if e.core.poll_timeout().is_some_and(|t| t <= now) {
                e.core.handle_timeout(now);
            }
        }
        self.drain();
    }

    /// Moves every core's outputs into the network, the store and the logs.
    pub fn drain(&mut self) {
        let now = self.now;
        if let Some(sn) = self.sn.as_mut() {
            while let Some(ev) = sn.poll_event() {
                match &ev {
                    SnEvent::CommunityCreated(c) => {
                        // INSERT OR REPLACE, as the SQLite store does.
                        self.sn_store.communities.retain(|x| x.name != c.name);
                        self.sn_store.communities.push(c.clone());
                    }
                    SnEvent::CommunityRenamed { from, to } => {
                        self.sn_store.communities.retain(|x| &x.name != from);
                        self.sn_store.communities.push(to.clone());
                        for l in &mut self.sn_store.leases {
                            if &l.community == from {
                                l.community = to.name.clone();
                            }
                        }
                    }
                    SnEvent::LeaseGranted(l) => {
                        self.sn_store
                            .leases
                            .retain(|x| !(x.community == l.community && x.mac == l.mac));
                        self.sn_store.leases.push(l.clone());
                    }
                    SnEvent::CommunityRemoved { name, .. } => {
                        self.sn_store.communities.retain(|c| &c.name != name);
                        self.sn_store.leases.retain(|l| &l.community != name);
                    }
                    SnEvent::LeaseReclaimed { community, mac } => {
                        self.sn_store
                            .leases
                            .retain(|x| !(&x.community == community && x.mac == *mac));
                    }
                    _ => {}
                }
                self.sn_events.push(ev);
            }
            while let Some(t) = sn.poll_transmit() {
                if self.capture {
                    self.wire_log.push((sn_addr(), t.dst, t.payload.clone()));
                }
                self.net.send(now, sn_addr(), t.dst, t.payload);
            }
        }
        for e in &mut self.edges {
            while let Some(ev) = e.core.poll_event() {
                if matches!(
                    ev,
                    n2n_edge::proto::Event::PathChanged {
                        path: Path::Direct { .. },
                        ..
                    }
                ) && e.first_direct.is_none()
                {
                    e.first_direct = Some(now);
                }
                e.events.push(ev);
            }
            while let Some(f) = e.core.poll_frame() {
                e.delivered.push(f);
            }
            while let Some(t) = e.core.poll_transmit() {
                if self.capture {
                    self.wire_log.push((e.addr, t.dst, t.payload.clone()));
                }
                if self.withhold_to == Some(t.dst) {
                    self.withheld.push((e.addr, t.payload));
                    continue;
                }
                self.net.send(now, e.addr, t.dst, t.payload);
            }
        }
    }

    /// The path edge `a` uses to edge `b`, if `a` knows `b`.
    pub fn path(&self, a: usize, b: usize) -> Option<Path> {
        let id = self.edges[b].core.edge_id()?;
        self.edges[a].core.peers().get(&id).map(|p| p.path)
    }

    /// True if every edge is registered and knows every other edge of its community.
    pub fn all_connected(&self) -> bool {
        self.edges.iter().enumerate().all(|(i, e)| {
            e.core.is_registered()
                && self.edges.iter().enumerate().all(|(j, o)| {
                    i == j
                        || o.core.config().community != e.core.config().community
                        || o.core.config().keys != e.core.config().keys
                        || self.path(i, j).is_some()
                })
        })
    }

    /// Edge `i`'s drops for one reason, by its metrics label.
    pub fn edge_drop(&self, i: usize, reason: &str) -> u64 {
        self.edges[i]
            .core
            .stats()
            .drops
            .iter()
            .find(|(r, _)| r.label() == reason)
            .map_or(0, |(_, n)| n)
    }

    /// Drop counters of every edge by reason, summed.
    pub fn edge_drops(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for e in &self.edges {
            for (r, n) in e.core.stats().drops.iter() {
                *m.entry(r.label().to_string()).or_default() += n;
            }
        }
        m
    }
}

/// An Ethernet frame from `src` to `dst` with an IPv4 ethertype and a recognisable payload.
pub fn frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len.max(14));
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&seq.to_be_bytes());
    while f.len() < len {
        f.push((f.len() as u32 ^ seq) as u8);
    }
    f
}
