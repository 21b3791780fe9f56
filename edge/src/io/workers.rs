//! Packet workers: blocking threads that move frames TAP -> UDP and UDP -> TAP using the
//! current forwarding snapshot, with buffers reused across packets. Everything that is not a
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

/// Reads frames from the TAP device (super-frames are cut here) and sends them to peers:
/// every frame already queued is read before sending, so runs of datagrams to one peer leave
/// as one GSO send.
pub fn tap_to_udp(tap: Arc<Tap>, sock: UdpSocket, shared: Arc<Shared>) {
    let mut buf = vec![0u8; VNET_HDR_LEN + 65536];
    let (mut out, mut scratch, mut seg) = (
        Vec::with_capacity(2048),
        Vec::with_capacity(2048),
        Vec::with_capacity(2048),
    );
    let mut sender = Sender::new(sock);
    let mut queued = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let n = match tap.try_read(&mut buf) {
            Ok(Some(n)) => n,
            Ok(None) => {
                // The queue is empty: send what was read, then wait (waking up now and then
                // so `stop` is noticed).
                sender.flush();
                queued = 0;
                if let Err(e) = tap.wait_readable(Duration::from_millis(500)) {
                    tracing::warn!(error = %e, "TAP wait failed");
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            Err(e) => {
                sender.flush();
                queued = 0;
                if !shared.stop.load(Ordering::Relaxed) {
                    tracing::warn!(error = %e, "TAP read failed");
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
        };
        let fwd = shared.snapshot.load();
        let mut send = |frame: &[u8]| {
            if let Err(reason) = fwd.encapsulate(frame, &mut out, &mut scratch, |to, d| {
                sender.push(to, d);
            }) {
                fwd.counters.count_drop(reason);
            }
        };
        let read = buf.get_mut(..n).unwrap_or_default();
        if tap.offload() {
            let (hdr, frame) = read.split_at_mut(VNET_HDR_LEN.min(read.len()));
            match VnetHdr::parse(hdr)
                .ok_or(DropReason::Malformed)
                .and_then(|h| offload::segment(&h, frame, &mut seg, &mut send))
            {
                Ok(n) if n > 1 => {
                    fwd.counters
                        .tap_superframes_read
                        .fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(reason) => fwd.counters.count_drop(reason),
            }
        } else {
            send(read);
        }
        queued += 1;
        if queued >= TAP_BATCH {
            sender.flush();
            queued = 0;
        }
    }
}

/// Receives datagrams in batches: data frames are opened and written to the TAP device here;
/// the rest goes to the control task.
pub fn udp_to_tap(
    tap: Arc<Tap>,
    sock: UdpSocket,
    shared: Arc<Shared>,
    control: mpsc::Sender<ToControl>,
) {
    let mut receiver = Receiver::new(sock, BATCH);
    let mut state = RxState::default();
    let mut gro = Coalescer::default();
    let mut seg = Vec::with_capacity(2048);
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
                offload::segment(&h, &mut frame, &mut seg, |s| {
                    let _ = tap.write(s);
                })
            });
        if let Err(reason) = cut {
            counters.count_drop(reason);
        }
    };
    while !shared.stop.load(Ordering::Relaxed) {
        // Errors are timeouts (so `stop` is noticed) and ICMP reports for earlier sends.
        let _ = receiver.recv(|from, pkt| {
            open_datagram(&shared, &control, &mut state, from, pkt, |frame| {
                if tap.offload() {
                    gro.push(frame, &mut write);
                } else {
                    write(&PLAIN_HDR, frame);
                }
            });
        });
        gro.flush(&mut write);
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
