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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// the TAP device; returns how many datagrams came.
    fn recv(&mut self, tap: &Tap, queue: usize, shared: &Shared) -> usize {
        let Self {
            receiver,
            state,
            gro,
            seg,
            control,
        } = self;
        let mut write = |hdr: &[u8; VNET_HDR_LEN], frame: &[u8]| {
            if hdr == &PLAIN_HDR {
                let _ = tap.write(frame);
                return;
            }
            let counters = &shared.snapshot.load().counters;
            if tap.write_with(hdr, frame).is_ok() {
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
                        let _ = tap.write(s);
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
        got
    }
}

/// Both directions of one TAP queue and one socket on one thread: datagrams to the TAP
/// device and frames to the socket, each in batches, sleeping only when both are empty.
/// What the kernel answers to a frame written to the TAP device (an echo reply, a TCP ACK)
/// is queued by the time the write returns; when the frame's flow belongs to this worker's
/// queue it goes out in the same wake-up, and no other thread is woken on the round trip.
pub fn worker(
    tap: Arc<Tap>,
    queue: usize,
    mut inbound: Inbound,
    mut outbound: Outbound,
    shared: Arc<Shared>,
) {
    while !shared.stop.load(Ordering::Relaxed) {
        let got = inbound.recv(&tap, queue, &shared);
        let emptied = match outbound.pump(&tap, queue, &shared, TAP_BATCH) {
            Ok(emptied) => emptied,
            Err(e) => {
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
