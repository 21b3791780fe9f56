//! What the edge knows about each peer: its keys, its candidates and the path in use.

use n2n_common::crypto::aead::SessionKey;
use n2n_common::crypto::replay::ReplayWindow;
use n2n_common::types::{CandidateKind, EdgeId};
use n2n_common::wire::messages::PeerInfo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One pairwise data key, shareable with packet workers (atomic counter, locked window).
#[derive(Debug)]
pub struct PairKey {
    /// Our key epoch it was derived with.
    pub my_epoch: u32,
    /// The peer's key epoch it was derived with.
    pub peer_epoch: u32,
    /// The AEAD key.
    pub key: SessionKey,
    /// Not used for sending before this (the peer may not know our new key yet).
    pub usable_at: Instant,
    send_counter: AtomicU64,
    replay: Mutex<ReplayWindow>,
}

impl PairKey {
    /// A fresh key.
    pub fn new(my_epoch: u32, peer_epoch: u32, secret: &[u8; 32], usable_at: Instant) -> Self {
        Self {
            my_epoch,
            peer_epoch,
            key: SessionKey::new(secret),
            usable_at,
            send_counter: AtomicU64::new(0),
            replay: Mutex::new(ReplayWindow::default()),
        }
    }

    /// Takes the next send counter.
    pub fn next_counter(&self) -> u64 {
        self.send_counter.fetch_add(1, Ordering::Relaxed)
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

    /// The phase bits a sender using this key puts in the data header.
    pub fn phase_flags(&self) -> u8 {
        use n2n_common::wire::data::flags;
        (if self.my_epoch & 1 == 1 {
            flags::SENDER_PHASE
        } else {
            0
        }) | (if self.peer_epoch & 1 == 1 {
            flags::RECEIVER_PHASE
        } else {
            0
        })
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
    /// Pair keys, oldest first (at most [`MAX_KEYS`]).
    pub keys: Vec<std::sync::Arc<PairKey>>,
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
    /// Last probe answer on the current direct path.
    pub last_ack: Option<Instant>,
    /// Last authenticated packet from the peer, any path.
    pub last_rx: Option<Instant>,
    /// Last authenticated packet that came straight from the peer, and its source.
    pub last_direct_rx: Option<(SocketAddr, Instant)>,
    /// Smoothed round-trip time of the direct path.
    pub rtt: Option<Duration>,
    /// Traffic counters (shared with the data plane).
    pub counters: std::sync::Arc<super::forward::PeerCounters>,
    /// Missing from the supernode's last full list (it restarted and has not seen the peer
    /// yet); kept only while its direct path lives.
    pub unlisted: bool,
}

/// The most pair keys kept per peer (covers a rotation on each side at once).
pub const MAX_KEYS: usize = 4;

impl Peer {
    /// A peer we just heard of.
    pub fn new(info: PeerInfo, now: Instant) -> Self {
        let mut p = Self {
            info,
            keys: Vec::new(),
            path: Path::Relayed,
            candidates: BTreeMap::new(),
            probes: BTreeMap::new(),
            punch_until: None,
            next_probe: now,
            next_punch_request: now,
            punch_backoff: Duration::ZERO,
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

    /// The key to send with at `now`: the newest usable one.
    pub fn send_key(&self, now: Instant) -> Option<&std::sync::Arc<PairKey>> {
        self.keys
            .iter()
            .rev()
            .find(|k| k.usable_at <= now)
            .or_else(|| self.keys.last())
    }

    /// The newest key matching the phase bits of a received header.
    pub fn recv_key(&self, flags: u8) -> Option<&std::sync::Arc<PairKey>> {
        use n2n_common::wire::data::flags as f;
        let sender = u32::from(flags & f::SENDER_PHASE != 0);
        let receiver = u32::from(flags & f::RECEIVER_PHASE != 0);
        self.keys
            .iter()
            .rev()
            .find(|k| k.peer_epoch & 1 == sender && k.my_epoch & 1 == receiver)
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
