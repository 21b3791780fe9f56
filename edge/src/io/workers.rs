//! Packet workers: blocking threads that move frames TAP -> UDP and UDP -> TAP using the
//! current forwarding snapshot, with buffers reused across packets. Everything that is not a
//! data frame (control, probes) goes to the control task.

use crate::proto::forward::Forwarding;
use arc_swap::ArcSwap;
use n2n_common::stats::DropReason;
use n2n_common::types::{EdgeId, Mac};
use n2n_common::wire::data::flags;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tun_rs::SyncDevice;

/// What the UDP worker hands to the control task.
#[derive(Debug)]
pub enum ToControl {
    /// A datagram for the core (control, probes, unknown senders).
    Datagram(SocketAddr, Vec<u8>),
    /// An authenticated frame arrived from `peer` via `from`.
    Seen {
        /// The peer.
        peer: EdgeId,
        /// Its source address.
        from: SocketAddr,
    },
    /// `mac` lives behind `peer`.
    Learn {
        /// The MAC.
        mac: Mac,
        /// The peer.
        peer: EdgeId,
    },
}

/// Shared state of the workers.
pub struct Shared {
    /// The current snapshot.
    pub snapshot: ArcSwap<Forwarding>,
    /// Set on shutdown.
    pub stop: AtomicBool,
}

/// Reads frames from the TAP device and sends them to peers.
pub fn tap_to_udp(tap: Arc<SyncDevice>, sock: UdpSocket, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65536];
    let (mut out, mut scratch) = (Vec::with_capacity(2048), Vec::with_capacity(2048));
    while !shared.stop.load(Ordering::Relaxed) {
        let n = match tap.recv(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                if !shared.stop.load(Ordering::Relaxed) {
                    tracing::warn!(error = %e, "TAP read failed");
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
        };
        let fwd = shared.snapshot.load();
        let frame = buf.get(..n).unwrap_or_default();
        if let Err(reason) = fwd.encapsulate(frame, &mut out, &mut scratch, |to, d| {
            let _ = sock.send_to(d, to);
        }) {
            fwd.counters.count_drop(reason);
        }
    }
}

/// Receives datagrams: data frames are opened and written to the TAP device here; the rest
/// goes to the control task.
pub fn udp_to_tap(
    tap: Arc<SyncDevice>,
    sock: UdpSocket,
    shared: Arc<Shared>,
    control: mpsc::Sender<ToControl>,
) {
    let mut buf = vec![0u8; 65536];
    let mut scratch = Vec::with_capacity(2048);
    let mut seen: HashMap<EdgeId, (SocketAddr, Instant)> = HashMap::new();
    let mut learned: HashMap<Mac, (EdgeId, Instant)> = HashMap::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(v) => v,
            // Timeouts (so `stop` is noticed) and ICMP errors for earlier sends.
            Err(_) => continue,
        };
        let Some(pkt) = buf.get_mut(..n) else {
            continue;
        };
        let is_frame =
            pkt.first() == Some(&0x12) && pkt.get(1).is_some_and(|f| f & flags::PEER_CONTROL == 0);
        if !is_frame {
            let _ = control.try_send(ToControl::Datagram(from, pkt.to_vec()));
            continue;
        }
        let fwd = shared.snapshot.load();
        let opened = match fwd.decapsulate(pkt, &mut scratch) {
            Ok(o) => o,
            Err(DropReason::UnknownSession) => {
                // The core asks the supernode for the peer list (and counts the drop).
                let _ = control.try_send(ToControl::Datagram(
                    from,
                    buf.get(..n).unwrap_or_default().to_vec(),
                ));
                continue;
            }
            Err(reason) => {
                fwd.counters.count_drop(reason);
                continue;
            }
        };
        let _ = tap.send(opened.plain);
        let now = Instant::now();
        let peer = opened.peer;
        // Tell the core about the path (roaming, liveness) at most once a second per peer,
        // at once when the source address changed.
        let report = seen.get(&peer).is_none_or(|(addr, at)| {
            *addr != from || now.duration_since(*at) > Duration::from_secs(1)
        });
        if report {
            seen.insert(peer, (from, now));
            let _ = control.try_send(ToControl::Seen { peer, from });
        }
        if let Some(src) = Mac::src_of(opened.plain)
            && !src.is_group()
            && fwd.by_mac.get(&src) != Some(&peer)
            && learned.get(&src).is_none_or(|(p, at)| {
                *p != peer || now.duration_since(*at) > Duration::from_secs(5)
            })
        {
            learned.insert(src, (peer, now));
            let _ = control.try_send(ToControl::Learn { mac: src, peer });
        }
    }
}
