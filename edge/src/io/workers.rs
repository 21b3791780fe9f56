//! The packet workers: blocking threads, one per TAP queue and UDP socket, that move frames
//! TAP -> UDP and UDP -> TAP using the current forwarding snapshot, with buffers reused
//! across packets. Everything that is not a
//! data frame goes to the control task authenticated (peer control) or, from a supernode
//! address, as it arrived (the core authenticates supernode control).

use super::gro::Coalescer;
use super::offload::{self, PLAIN_HDR, VNET_HDR_LEN, VnetHdr};
use super::tap::Tap;
use super::udp::{Receiver, Sender};
use crate::proto::forward::Forwarding;
use crate::proto::{Note, RxAction, RxState};
use arc_swap::ArcSwap;
use n2n_protocol::stats::DropReason;
use n2n_protocol::types::EdgeId;
use n2n_protocol::wire::peer::PeerMessage;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Datagrams (or GRO runs) taken per receive system call.
const BATCH: usize = 32;
/// Most frames read from the TAP device before what they became is sent.
const TAP_BATCH: usize = 64;

/// What the UDP worker hands to the control task: only authenticated input, except control
/// in the supernode's forms from a supernode address, which the core authenticates.
#[derive(Debug)]
pub enum ToControl {
    /// Control from a supernode address, as it arrived.
    Supernode(SocketAddr, Vec<u8>),
    /// An authenticated peer control message from `peer` via `from`.
    PeerControl {
        /// The peer.
        peer: EdgeId,
        /// The datagram's source.
        from: SocketAddr,
        /// The message.
        msg: PeerMessage,
    },
    /// A pair handshake message whose `mac1` checked, as it arrived.
    Handshake {
        /// The sender's edge id (claimed).
        peer: EdgeId,
        /// The datagram's source.
        from: SocketAddr,
        /// The datagram.
        packet: Vec<u8>,
    },
    /// Data from an edge id without a key: ask the supernode for the peer list.
    UnknownPeer,
    /// What the receive path learned from an authenticated frame.
    Note(Note),
}

/// Shared state of the workers.
pub struct Shared {
    /// The current snapshot.
    pub snapshot: ArcSwap<Forwarding>,
    /// Set on shutdown.
    pub stop: AtomicBool,
    /// Held by whoever reads a TAP queue, one per queue: its own worker, or one that just
    /// wrote to it and takes the answer along.
    pub readers: Box<[Mutex<()>]>,
}

impl Shared {
    /// The state of the workers of `queues` TAP queues, forwarding with `snapshot`.
    pub fn new(snapshot: Arc<Forwarding>, queues: usize) -> Self {
        Self {
            snapshot: ArcSwap::new(snapshot),
            stop: AtomicBool::new(false),
            readers: (0..queues.max(1)).map(|_| Mutex::new(())).collect(),
        }
    }

    /// The right to read `queue`: waiting for it when `wait` (a queue's own worker waits the
    /// microseconds another takes), else only if it is free.
    fn reading(&self, queue: usize, wait: bool) -> Option<MutexGuard<'_, ()>> {
        let m = self.readers.get(queue)?;
        if wait {
            Some(m.lock().unwrap_or_else(|e| e.into_inner()))
        } else {
            match m.try_lock() {
                Ok(g) => Some(g),
                Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            }
        }
    }
}

/// The TAP-to-UDP direction: buffers and the batching sender.
pub struct Outbound {
    buf: Vec<u8>,
    out: Vec<u8>,
    scratch: Vec<u8>,
    seg: Vec<u8>,
    sender: Sender,
}

impl Outbound {
    /// The direction's state, sending on `sock`.
    pub fn new(sock: UdpSocket) -> Self {
        Self {
            buf: vec![0u8; VNET_HDR_LEN + 65536],
            out: Vec::with_capacity(2048),
            scratch: Vec::with_capacity(2048),
            seg: Vec::with_capacity(2048),
            sender: Sender::new(sock),
        }
    }

    /// Reads up to `max` queued frames (super-frames are cut here), sends what they became
    /// (runs to one peer as one GSO send), and says whether the queue was emptied.
    fn pump(
        &mut self,
        tap: &Tap,
        queue: usize,
        shared: &Shared,
        max: usize,
    ) -> std::io::Result<bool> {
        let Self {
            buf,
            out,
            scratch,
            seg,
            sender,
        } = self;
        let mut result = Ok(false);
        for _ in 0..max {
            let n = match tap.try_read(queue, buf) {
                Ok(Some(n)) => n,
                Ok(None) => {
                    result = Ok(true);
                    break;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            let fwd = shared.snapshot.load();
            let mut send = |frame: &[u8]| {
                if let Err(reason) =
                    fwd.encapsulate(frame, out, scratch, |to, d| sender.push(to, d))
                {
                    fwd.counters.count_drop(reason);
                }
            };
            let read = buf.get_mut(..n).unwrap_or_default();
            if !tap.offload() {
                send(read);
                continue;
            }
            let (hdr, frame) = read.split_at_mut(VNET_HDR_LEN.min(read.len()));
            match VnetHdr::parse(hdr)
                .ok_or(DropReason::Malformed)
                .and_then(|h| offload::segment(&h, frame, seg, &mut send))
            {
                Ok(n) if n > 1 => {
                    fwd.counters
                        .tap_superframes_read
                        .fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(reason) => fwd.counters.count_drop(reason),
            }
        }
        sender.flush();
        result
    }
}

/// The UDP-to-TAP direction: the batched receiver, the receive path's state and the
/// coalescer that joins segments into super-frames for the TAP device.
pub struct Inbound {
    receiver: Receiver,
    state: RxState,
    gro: Coalescer,
    seg: Vec<u8>,
    control: mpsc::Sender<ToControl>,
}

impl Inbound {
    /// The direction's state, receiving on `sock`; what is not a data frame goes to
    /// `control`.
    pub fn new(sock: UdpSocket, control: mpsc::Sender<ToControl>) -> Self {
        Self {
            receiver: Receiver::new(sock, BATCH),
            state: RxState::default(),
            gro: Coalescer::default(),
            seg: Vec::with_capacity(2048),
            control,
        }
    }

    /// Takes the queued datagrams (a batch at most, without waiting), writes their frames to
    /// the TAP device; returns how many datagrams came and the queues written (a bit each).
    fn recv(&mut self, tap: &Tap, queue: usize, shared: &Shared) -> (usize, u64) {
        let Self {
            receiver,
            state,
            gro,
            seg,
            control,
        } = self;
        let mut written = 0u64;
        let mut write = |hdr: &[u8; VNET_HDR_LEN], frame: &[u8]| {
            if hdr == &PLAIN_HDR {
                if let Ok(q) = tap.write(frame) {
                    written |= 1 << (q % 64);
                }
                return;
            }
            let counters = &shared.snapshot.load().counters;
            if let Ok(q) = tap.write_with(hdr, frame) {
                written |= 1 << (q % 64);
                counters
                    .tap_superframes_written
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            // The kernel refused the super-frame: write its segments one by one instead.
            let mut frame = frame.to_vec();
            let cut = VnetHdr::parse(hdr)
                .ok_or(DropReason::Malformed)
                .and_then(|h| {
                    offload::segment(&h, &mut frame, seg, |s| {
                        if let Ok(q) = tap.write(s) {
                            written |= 1 << (q % 64);
                        }
                    })
                });
            if let Err(reason) = cut {
                counters.count_drop(reason);
            }
        };
        // Errors are an empty queue and ICMP reports for earlier sends.
        let got = receiver
            .recv(|from, pkt| {
                open_datagram(shared, control, state, from, pkt, |frame| {
                    if tap.offload() {
                        gro.push(frame, &mut write);
                    } else {
                        write(&PLAIN_HDR, frame);
                    }
                });
            })
            .unwrap_or(0);
        gro.flush(&mut write);
        tap.count_datagrams(queue, got);
        (got, written)
    }
}

/// Both directions of one TAP queue and one socket on one thread: datagrams to the TAP
/// device and frames to the socket, each in batches, sleeping only when both are empty.
/// What the kernel answers to a frame written to the TAP device (an echo reply, a TCP ACK)
/// is queued by the time the write returns, on the queue of the frame's flow, and goes out
/// in the same wake-up: this worker drains that queue too unless its own worker is at it.
/// So the answer does not wait for another thread (whose worker still wakes, off the round
/// trip), and a flow's frames are read in order, by one worker at a time.
pub fn worker(
    tap: Arc<Tap>,
    queue: usize,
    mut inbound: Inbound,
    mut outbound: Outbound,
    shared: Arc<Shared>,
) {
    let own = 1u64 << (queue % 64);
    while !shared.stop.load(Ordering::Relaxed) {
        let (got, written) = inbound.recv(&tap, queue, &shared);
        // First the answers on other queues: their workers were woken too, and whoever
        // comes first takes them.
        let mut others = written & !own;
        while others != 0 {
            let q = others.trailing_zeros() as usize;
            others &= others - 1;
            if let Some(_reading) = shared.reading(q, false) {
                let _ = outbound.pump(&tap, q, &shared, TAP_BATCH);
            }
        }
        let pumped = shared
            .reading(queue, true)
            .map(|_reading| outbound.pump(&tap, queue, &shared, TAP_BATCH));
        let emptied = match pumped {
            Some(Ok(emptied)) => emptied,
            // No such queue (not started so): nothing to read.
            None => true,
            Some(Err(e)) => {
                // Back off, but not while datagrams are arriving: they are the other
                // direction's and the control task's.
                if got == 0 && !shared.stop.load(Ordering::Relaxed) {
                    tracing::warn!(error = %e, "TAP read failed");
                    std::thread::sleep(Duration::from_millis(100));
                }
                true
            }
        };
        if got == 0
            && emptied
            && let Err(e) =
                tap.wait_readable_or(queue, inbound.receiver.fd(), Duration::from_millis(500))
        {
            tracing::warn!(error = %e, "wait failed");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Runs one datagram through the receive path ([`Forwarding::receive`], the function the
/// core and the fuzzers run too): frames go to `deliver`, authenticated control and notes to
/// the control task, drops are counted.
fn open_datagram(
    shared: &Shared,
    control: &mpsc::Sender<ToControl>,
    st: &mut RxState,
    from: SocketAddr,
    pkt: &mut [u8],
    deliver: impl FnOnce(&[u8]),
) {
    let fwd = shared.snapshot.load();
    let note = |n| {
        let _ = control.try_send(ToControl::Note(n));
    };
    let to_control = match fwd.receive(st, Instant::now(), from, pkt, note) {
        RxAction::Deliver(frame) => {
            deliver(frame);
            return;
        }
        RxAction::PeerControl { peer, msg } => ToControl::PeerControl { peer, from, msg },
        RxAction::Supernode => ToControl::Supernode(from, pkt.to_vec()),
        RxAction::Handshake { peer } => ToControl::Handshake {
            peer,
            from,
            packet: pkt.to_vec(),
        },
        RxAction::UnknownPeer => {
            fwd.counters.count_drop(DropReason::UnknownSession);
            ToControl::UnknownPeer
        }
        RxAction::Drop(reason) => {
            fwd.counters.count_drop(reason);
            return;
        }
    };
    if control.try_send(to_control).is_err() {
        fwd.counters.count_drop(DropReason::RateLimited);
    }
}
