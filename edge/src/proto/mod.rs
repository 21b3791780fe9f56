//! The sans-IO edge core: registration with a supernode, peer keys, hole punching, path
//! keepalive and fallback, and the data path (frames in and out). Inputs carry the time;
//! outputs are polled.

mod config;
mod data;
pub mod forward;
mod handshake;
mod keys;
mod outputs;
mod paths;
mod peer;
mod pins;
pub mod receive;
mod registration;

pub use config::EdgeConfig;
pub use outputs::{Command, DEPARTED_FOR, Departed, EdgeStats, Event, MAX_DEPARTED};
pub use peer::{MAX_KEYS, PairKey, Path, Peer};
pub use pins::{PIN_LAPSES_AFTER, PinnedPeer};
pub use receive::{MAX_MACS_PER_PEER, Note, RxAction, RxState};

use n2n_protocol::rng::CoreRng;
use n2n_protocol::session::ControlSession;
use n2n_protocol::stats;
use n2n_protocol::timer::TimerTable;
use n2n_protocol::types::{EdgeId, Mac, Transmit};
use n2n_protocol::wire::{self, Form};
use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// How long a superseded pair session still opens packets (reordered or in flight).
const KEY_GRACE: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Hello,
    Register,
    Heartbeat,
    Maintenance,
    KeyRotation,
}

/// Registration progress with the current supernode.
enum Phase {
    /// Waiting for a hello reply.
    Hello { nonce: [u8; 16], attempts: u32 },
    /// Waiting for the register ack.
    Register {
        attempts: u32,
        datagram: Vec<u8>,
        session: Box<ControlSession>,
        sn_epoch: u64,
    },
    /// Registered.
    Up,
    /// Refused; retrying later.
    Refused,
}

/// What we hold once registered.
struct SnSession {
    session: ControlSession,
    sn_epoch: u64,
    last_ack: Instant,
    heartbeat: Duration,
}

/// The edge core.
pub struct Edge {
    config: EdgeConfig,
    rng: CoreRng,
    sn_index: usize,
    phase: Phase,
    sn: Option<SnSession>,
    /// Nonce of a hello sent to check whether the supernode restarted.
    check_nonce: Option<([u8; 16], Instant)>,
    /// Supernodes already reported as speaking an older protocol version.
    outdated: std::collections::BTreeSet<SocketAddr>,
    my_id: Option<EdgeId>,
    my_ip: Option<(Ipv4Addr, u8)>,
    observed: Option<SocketAddr>,
    key: KeyPair,
    /// The static key before the last rotation: peers may not have learned the new one yet.
    prev_key: Option<KeyPair>,
    /// When the core started (the handshake clock counts from here).
    started: Instant,
    /// Makes the cookies a peer's address must echo while we are under load.
    cookie_secret: [u8; 32],
    peers: BTreeMap<EdgeId, Peer>,
    departed: BTreeMap<EdgeId, Departed>,
    /// Peers' identity keys, pinned to their id, MAC and IP at first sight.
    pins: pins::Pins,
    /// When present members' pins are next saved again (their "last seen" moves on).
    pins_refresh_at: Instant,
    /// Probe budgets of departed peers (see [`Departed`]), restored if they come back.
    departed_budgets: BTreeMap<EdgeId, n2n_protocol::ratelimit::TokenBucket>,
    sync_seen: Option<Vec<EdgeId>>,
    macs: BTreeMap<Mac, (EdgeId, Instant)>,
    last_sync_request: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    frames: VecDeque<Vec<u8>>,
    timers: TimerTable<Timer>,
    stats: EdgeStats,
    out: Vec<u8>,
    scratch: Vec<u8>,
    fwd: std::sync::Arc<forward::Forwarding>,
    fwd_dirty: bool,
    fwd_built_at: Option<Instant>,
    data_counters: std::sync::Arc<forward::DataCounters>,
    rx: RxState,
}

use keys::KeyPair;

/// How often present members' pins are saved again: a crashed edge restarted within
/// [`PIN_LAPSES_AFTER`] minus this still holds them.
pub const PINS_REFRESH_EVERY: Duration = Duration::from_secs(120);

impl Edge {
    /// Creates the core and starts registering.
    pub fn new(config: EdgeConfig, mut rng: CoreRng, now: Instant) -> Self {
        let key = Self::new_keypair(&mut rng, 0);
        let cookie_secret = rng.bytes();
        let mut edge = Self {
            cookie_secret,
            config,
            rng,
            sn_index: 0,
            phase: Phase::Refused,
            sn: None,
            check_nonce: None,
            outdated: Default::default(),
            my_id: None,
            my_ip: None,
            observed: None,
            key,
            prev_key: None,
            started: now,
            peers: BTreeMap::new(),
            departed: BTreeMap::new(),
            pins: Default::default(),
            pins_refresh_at: now + PINS_REFRESH_EVERY,
            departed_budgets: BTreeMap::new(),
            sync_seen: None,
            macs: BTreeMap::new(),
            last_sync_request: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            frames: VecDeque::new(),
            timers: TimerTable::default(),
            stats: EdgeStats::default(),
            out: Vec::with_capacity(2048),
            scratch: Vec::with_capacity(2048),
            fwd: std::sync::Arc::new(forward::Forwarding::empty(Default::default())),
            fwd_dirty: true,
            fwd_built_at: None,
            data_counters: Default::default(),
            rx: RxState::default(),
        };
        let saved = std::mem::take(&mut edge.config.pins);
        edge.pins.restore(now, &saved);
        edge.start_hello(now, 0);
        if let Some(every) = edge.config.key_rotation {
            edge.timers.set(Timer::KeyRotation, now + every);
        }
        edge.timers
            .set(Timer::Maintenance, now + edge.config.probe_interval);
        edge
    }

    /// Our id, once registered.
    pub fn edge_id(&self) -> Option<EdgeId> {
        self.my_id
    }

    /// Our virtual IP and prefix, once registered.
    pub fn address(&self) -> Option<(Ipv4Addr, u8)> {
        self.my_ip
    }

    /// Our public endpoint as the supernode sees it.
    pub fn observed(&self) -> Option<SocketAddr> {
        self.observed
    }

    /// True while registered with a supernode that answers.
    pub fn is_registered(&self) -> bool {
        matches!(self.phase, Phase::Up)
    }

    /// The supernode in use.
    pub fn supernode(&self) -> Option<SocketAddr> {
        self.config.supernodes.get(self.sn_index).copied()
    }

    /// Peers by id.
    pub fn peers(&self) -> &BTreeMap<EdgeId, Peer> {
        &self.peers
    }

    /// Peers that left while this edge ran, newest [`MAX_DEPARTED`] within [`DEPARTED_FOR`].
    pub fn departed(&self) -> &BTreeMap<EdgeId, Departed> {
        &self.departed
    }

    /// Counters, including the data plane's.
    pub fn stats(&self) -> EdgeStats {
        use std::sync::atomic::Ordering::Relaxed;
        let mut s = self.stats.clone();
        let d = &self.data_counters;
        s.tx_frames = d.tx_frames.load(Relaxed);
        s.tx_relayed = d.tx_relayed.load(Relaxed);
        s.rx_frames = d.rx_frames.load(Relaxed);
        s.tap_superframes_read = d.tap_superframes_read.load(Relaxed);
        s.tap_superframes_written = d.tap_superframes_written.load(Relaxed);
        s.macs_refused = d.macs_refused.load(Relaxed);
        d.merge_drops(&mut s.drops);
        s
    }

    /// The data plane's counters (workers count into these).
    pub fn data_counters(&self) -> &std::sync::Arc<forward::DataCounters> {
        &self.data_counters
    }

    /// The configuration in force.
    pub fn config(&self) -> &EdgeConfig {
        &self.config
    }

    /// Our current data key epoch.
    pub fn key_epoch(&self) -> u32 {
        self.key.epoch
    }

    /// Handles one datagram from `from`: the packet workers' receive path
    /// ([`forward::Forwarding::receive`]), then what the control task does with its outcome.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if let Err(reason) = self.receive_datagram(now, from, bytes) {
            self.stats.drops.count(reason);
        }
    }

    /// Handles control from the supernode (plain or sealed form; the receive path has checked
    /// the source is a supernode address). Only authenticated input changes state.
    pub fn handle_control(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let result = match wire::classify(bytes) {
            Ok(Form::Plain) => self.handle_plain(now, from, bytes),
            Ok(Form::Sealed) => self.handle_sealed(now, from, bytes),
            Ok(Form::Data) => Err(stats::DropReason::Unexpected),
            Err(e) => {
                if let wire::WireError::BadVersion(v) = e
                    && v < wire::VERSION
                    && self.outdated.insert(from)
                {
                    self.events.push_back(Event::SupernodeRejected {
                        reason: format!(
                            "the supernode at {from} speaks protocol v{v} (n2n-rs before 0.2); this edge speaks v{}: upgrade the supernode",
                            wire::VERSION
                        ),
                    });
                }
                Err(e.drop_reason())
            }
        };
        if let Err(reason) = result {
            self.stats.drops.count(reason);
        }
    }

    /// Handles one Ethernet frame read from the TAP device.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        if let Err(reason) = self.send_frame(now, frame) {
            self.stats.drops.count(reason);
        }
    }

    /// Handles a command from the shell.
    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        self.fwd_dirty = true;
        match cmd {
            Command::SetCandidates(c) => {
                self.config.candidates = c;
                self.send_heartbeat(now);
            }
            Command::SetSupernodes(list) => {
                if list.is_empty() || list == self.config.supernodes {
                    return;
                }
                let current = self.supernode();
                self.config.supernodes = list;
                match current.and_then(|c| self.config.supernodes.iter().position(|a| *a == c)) {
                    Some(i) => self.sn_index = i,
                    None => {
                        self.sn_index = 0;
                        self.sn = None;
                        self.start_hello(now, 0);
                    }
                }
            }
            Command::Shutdown => {
                if let (Phase::Up, Some(id)) = (&self.phase, self.my_id) {
                    self.seal_to_sn(id, &wire::sealed::SealedMessage::Unregister);
                }
                self.phase = Phase::Refused;
                self.timers = TimerTable::default();
            }
        }
    }

    /// Runs due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.fwd_dirty = true;
        for t in self.timers.expired(now) {
            match t {
                Timer::Hello => self.on_hello_timeout(now),
                Timer::Register => self.on_register_timeout(now),
                Timer::Heartbeat => self.on_heartbeat_timer(now),
                Timer::Maintenance => {
                    self.maintain_paths(now);
                    self.maintain_sessions(now);
                    self.age_state(now);
                    if now >= self.pins_refresh_at {
                        self.pins_refresh_at = now + PINS_REFRESH_EVERY;
                        if self.pins.any_present() {
                            self.events.push_back(Event::PinsChanged);
                        }
                    }
                    let any_punching = self.peers.values().any(|p| p.punching(now));
                    let next = if any_punching {
                        self.config.probe_interval
                    } else {
                        Duration::from_millis(500)
                    };
                    self.timers.set(Timer::Maintenance, now + next);
                }
                Timer::KeyRotation => self.rotate_key(now),
            }
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.pins.take_changed() {
            self.events.push_back(Event::PinsChanged);
        }
        self.events.pop_front()
    }

    /// Every peer pin, to be saved for the next process ([`EdgeConfig::pins`]).
    pub fn pinned_peers(&self, now: Instant) -> Vec<PinnedPeer> {
        self.pins.snapshot(now)
    }

    /// The next frame to write to the TAP device.
    pub fn poll_frame(&mut self) -> Option<Vec<u8>> {
        self.frames.pop_front()
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    fn send(&mut self, dst: SocketAddr, payload: Vec<u8>) {
        self.transmits.push_back(Transmit { dst, payload });
    }

    fn age_state(&mut self, now: Instant) {
        let ageing = self.config.mac_ageing;
        self.macs
            .retain(|_, (_, seen)| now.saturating_duration_since(*seen) < ageing);
        for peer in self.peers.values_mut() {
            // Sessions older than the newest one the peer sends with open stragglers for a
            // while, then go (forward secrecy). Not before the peer sends with it: until then
            // (its keepalive lost) it may still send with an older one.
            let current = peer
                .keys
                .iter()
                .rposition(|k| k.is_confirmed() && k.is_heard());
            if let Some(current) = current.filter(|&c| c > 0)
                && peer
                    .keys
                    .get(current)
                    .is_some_and(|k| k.created + KEY_GRACE <= now)
            {
                peer.keys.drain(..current);
                self.fwd_dirty = true;
            }
        }
    }
}
