//! What the edge knows about each peer: its keys, its candidates and the path in use.

use n2n_protocol::crypto::aead::SessionKey;
use n2n_protocol::crypto::handshake::{Initiator, SessionKeys};
use n2n_protocol::crypto::replay::ReplayWindow;
use n2n_protocol::types::{CandidateKind, EdgeId};
use n2n_protocol::wire::messages::PeerInfo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Per-peer traffic counters, shared by the core, the snapshot and the workers.
#[derive(Debug, Default)]
pub struct PeerCounters {
    /// Frames sent.
    pub tx_frames: AtomicU64,
    /// Frame bytes sent.
    pub tx_bytes: AtomicU64,
    /// Frames sent through the supernode.
    pub tx_relayed: AtomicU64,
    /// Frames received.
    pub rx_frames: AtomicU64,
    /// Frame bytes received.
    pub rx_bytes: AtomicU64,
}

/// Probe rounds to one peer's candidates: two whole punch attempts (10 s of rounds every
/// 200 ms each) at once, then one round every 2 s.
pub const PROBE_ROUNDS_PER_PEER: n2n_protocol::ratelimit::Rate =
    n2n_protocol::ratelimit::Rate::new(0.5, 100.0);

/// One pair session: the two keys of one handshake, shareable with packet workers (atomic
/// counter, locked replay window). Never built twice from the same secrets.
#[derive(Debug)]
pub struct PairKey {
    /// Its number, agreed in the handshake; data headers carry it modulo 4 (the slot).
    pub session: u32,
    /// When the handshake finished.
    pub created: Instant,
    /// We started the handshake.
    pub initiator: bool,
    send: SessionKey,
    recv: SessionKey,
    confirmed: AtomicBool,
    heard: AtomicBool,
    send_counter: AtomicU64,
    replay: Mutex<ReplayWindow>,
}

/// Start a new handshake once a session is this old (WireGuard's REKEY_AFTER_TIME).
pub const REKEY_AFTER: Duration = Duration::from_secs(120);
/// Never use a session older than this (WireGuard's REJECT_AFTER_TIME).
pub const REJECT_AFTER: Duration = Duration::from_secs(180);
/// Start a new handshake once this many packets were sealed with a session.
pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;
/// Never seal more than this many packets with a session (room for the replay window).
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);

impl PairKey {
    /// A session from a finished handshake. The initiator's is confirmed at once (it read
    /// the reply); the responder's when the first packet sealed with it arrives.
    pub fn new(session: u32, keys: &SessionKeys, initiator: bool, created: Instant) -> Self {
        Self {
            session,
            created,
            initiator,
            send: SessionKey::new(&keys.send),
            recv: SessionKey::new(&keys.recv),
            confirmed: AtomicBool::new(initiator),
            heard: AtomicBool::new(false),
            send_counter: AtomicU64::new(0),
            replay: Mutex::new(ReplayWindow::default()),
        }
    }

    /// The key we seal with.
    pub fn send_key(&self) -> &SessionKey {
        &self.send
    }

    /// The key the peer seals with.
    pub fn recv_key(&self) -> &SessionKey {
        &self.recv
    }

    /// Takes the next send counter; None once the session has sealed its limit.
    pub fn next_counter(&self) -> Option<u64> {
        let c = self.send_counter.fetch_add(1, Ordering::Relaxed);
        (c < REJECT_AFTER_MESSAGES).then_some(c)
    }

    /// Packets sealed so far.
    pub fn sent(&self) -> u64 {
        self.send_counter.load(Ordering::Relaxed)
    }

    /// True once both sides are known to hold the session.
    pub fn is_confirmed(&self) -> bool {
        self.confirmed.load(Ordering::Relaxed)
    }

    /// The peer sealed a packet with it: it holds the session too.
    pub fn confirm(&self) {
        if !self.heard.load(Ordering::Relaxed) {
            self.heard.store(true, Ordering::Relaxed);
            self.confirmed.store(true, Ordering::Relaxed);
        }
    }

    /// True once a packet sealed with it arrived (the peer sends with it).
    pub fn is_heard(&self) -> bool {
        self.heard.load(Ordering::Relaxed)
    }

    /// True if `counter` is not a replay (does not record it).
    pub fn replay_check(&self, counter: u64) -> bool {
        self.replay
            .lock()
            .map(|w| w.check(counter))
            .unwrap_or(false)
    }

    /// Records an authenticated `counter`; false if it was a replay after all.
    pub fn replay_accept(&self, counter: u64) -> bool {
        self.replay
            .lock()
            .map(|mut w| w.accept(counter))
            .unwrap_or(false)
    }

    /// The slot bits a sender using this session puts in the data header.
    pub fn slot_flags(&self) -> u8 {
        slot_flags(self.session)
    }

    /// True while it may still seal or open packets.
    pub fn alive(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.created) < REJECT_AFTER
    }
}

/// The header slot bits of session number `session`.
pub fn slot_flags(session: u32) -> u8 {
    ((session & 3) as u8) << n2n_protocol::wire::data::flags::SLOT_SHIFT
}

/// A handshake we started and await the reply to.
pub struct Pending {
    /// The session number proposed.
    pub session: u32,
    /// The handshake state.
    pub state: Initiator,
    /// When the (last) initiation went out.
    pub sent_at: Instant,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pending {{ session: {} }}", self.session)
    }
}

/// The path frames to a peer take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Through the supernode.
    Relayed,
    /// Straight to the peer.
    Direct {
        /// The peer's address.
        addr: SocketAddr,
        /// Which candidate it was.
        kind: CandidateKind,
    },
}

/// A peer.
#[derive(Debug)]
pub struct Peer {
    /// What the supernode told us.
    pub info: PeerInfo,
    /// Pair sessions, oldest first (at most [`MAX_KEYS`], one per slot).
    pub keys: Vec<std::sync::Arc<PairKey>>,
    /// The handshake we started, if its reply is still due.
    pub handshake: Option<Pending>,
    /// No handshake is started before this (retry spacing).
    pub next_handshake: Instant,
    /// Wait before the next retry of an unanswered handshake.
    pub handshake_retry: Duration,
    /// The next session number we propose (above every number seen with this peer).
    pub next_session: u32,
    /// The greatest initiation timestamp accepted for the peer's current static key.
    pub last_timestamp: Option<u64>,
    /// Handshake messages taken from this peer in the current second (at most a few).
    pub handshake_budget: (Instant, u32),
    /// The `mac1`s of its latest handshake messages (replays are dropped unprocessed).
    pub seen_mac1s: std::collections::VecDeque<[u8; 16]>,
    /// The cookie it gave us while under load, and when: our handshakes to it carry a
    /// `mac2` with it.
    pub cookie: Option<([u8; 16], Instant)>,
    /// Past its budget, handshakes with a valid `mac2` taken per source address (so one
    /// that floods from its own address cannot use up the budget of another).
    pub cookie_budgets: Vec<(SocketAddr, (Instant, u32))>,
    /// Static keys it announced before its current one: an announcement going back to one
    /// is stale (a replay or reordering) and ignored.
    pub old_statics: std::collections::VecDeque<[u8; 32]>,
    /// The path in use.
    pub path: Path,
    /// Addresses to probe, with the best kind each is known as.
    pub candidates: BTreeMap<SocketAddr, CandidateKind>,
    /// Probes in flight: id -> (target, sent at).
    pub probes: BTreeMap<u64, (SocketAddr, Instant)>,
    /// Probing every candidate until then.
    pub punch_until: Option<Instant>,
    /// Next probe round while punching, or next keepalive on a direct path.
    pub next_probe: Instant,
    /// Ask the supernode for a coordinated punch at this time (relayed peers).
    pub next_punch_request: Instant,
    /// Current wait between failed punch attempts.
    pub punch_backoff: Duration,
    /// Probe rounds left for punching to this peer (see [`PROBE_ROUNDS_PER_PEER`]).
    pub punch_budget: n2n_protocol::ratelimit::TokenBucket,
    /// Last probe answer on the current direct path.
    pub last_ack: Option<Instant>,
    /// Last authenticated packet from the peer, any path.
    pub last_rx: Option<Instant>,
    /// Last authenticated packet that came straight from the peer, and its source.
    pub last_direct_rx: Option<(SocketAddr, Instant)>,
    /// Smoothed round-trip time of the direct path.
    pub rtt: Option<Duration>,
    /// Traffic counters (shared with the data plane).
    pub counters: std::sync::Arc<PeerCounters>,
    /// Missing from the supernode's last full list (it restarted and has not seen the peer
    /// yet); kept only while its direct path lives.
    pub unlisted: bool,
}

/// The most pair sessions kept per peer: the previous, current and next (slots modulo 4).
pub const MAX_KEYS: usize = 3;

impl Peer {
    /// A peer we just heard of.
    pub fn new(info: PeerInfo, now: Instant) -> Self {
        let mut p = Self {
            info,
            keys: Vec::new(),
            handshake: None,
            next_handshake: now,
            handshake_retry: Duration::ZERO,
            next_session: 0,
            last_timestamp: None,
            handshake_budget: (now, 0),
            seen_mac1s: Default::default(),
            cookie: None,
            cookie_budgets: Vec::new(),
            old_statics: Default::default(),
            path: Path::Relayed,
            candidates: BTreeMap::new(),
            probes: BTreeMap::new(),
            punch_until: None,
            next_probe: now,
            next_punch_request: now,
            punch_backoff: Duration::ZERO,
            punch_budget: n2n_protocol::ratelimit::TokenBucket::new(PROBE_ROUNDS_PER_PEER, now),
            last_ack: None,
            last_rx: None,
            last_direct_rx: None,
            rtt: None,
            counters: Default::default(),
            unlisted: false,
        };
        p.refresh_candidates();
        p
    }

    /// The peer's id.
    pub fn id(&self) -> EdgeId {
        self.info.id
    }

    /// Rebuilds the candidate set from the peer info, keeping peer-reflexive ones.
    pub fn refresh_candidates(&mut self) {
        self.candidates
            .retain(|_, k| *k == CandidateKind::PeerReflexive);
        if let Some(o) = self.info.observed {
            self.add_candidate(o, CandidateKind::Observed);
        }
        for c in self.info.candidates.clone() {
            self.add_candidate(c.addr, c.kind);
        }
    }

    /// Adds a candidate, keeping the better kind if already known. Returns true if new.
    pub fn add_candidate(&mut self, addr: SocketAddr, kind: CandidateKind) -> bool {
        match self.candidates.get_mut(&addr) {
            Some(k) => {
                *k = (*k).min(kind);
                false
            }
            None => {
                // Bounded: an authenticated peer still cannot grow this without limit.
                if self.candidates.len() >= 16 {
                    self.candidates
                        .retain(|_, k| *k != CandidateKind::PeerReflexive);
                }
                self.candidates.insert(addr, kind);
                true
            }
        }
    }

    /// The session to send with: the newest confirmed live one, else (nothing confirmed yet)
    /// the newest live one.
    pub fn send_key(&self, now: Instant) -> Option<&std::sync::Arc<PairKey>> {
        let mut live = self.keys.iter().rev().filter(|k| k.alive(now));
        live.clone()
            .find(|k| k.is_confirmed())
            .or_else(|| live.next())
    }

    /// A newer session than [`Self::send_key`]'s that is not confirmed yet: the data plane
    /// moves to it as soon as the peer's first packet under it confirms it.
    pub fn next_key(&self, now: Instant) -> Option<&std::sync::Arc<PairKey>> {
        let current = self.send_key(now)?;
        self.keys
            .last()
            .filter(|k| k.session != current.session && k.alive(now))
    }

    /// True if a direct path is in use.
    pub fn is_direct(&self) -> bool {
        matches!(self.path, Path::Direct { .. })
    }

    /// True while a punch attempt runs.
    pub fn punching(&self, now: Instant) -> bool {
        self.punch_until.is_some_and(|t| t > now)
    }
}
