//! The forwarding snapshot: what the data plane needs to move frames, published by the core
//! and read by packet workers without locks (they hold an `Arc` of the current snapshot).
//! The core's own data path runs on the same code, so the simulator tests it too.

use super::peer::{PairKey, PeerCounters};
use n2n_protocol::crypto::pipeline::{OpenError, Pipeline};
use n2n_protocol::stats::{DropCounters, DropReason};
use n2n_protocol::types::{EdgeId, Mac};
use n2n_protocol::wire::data::{DataHeader, DataPacket, flags};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The shortest Ethernet frame forwarded (a header).
pub const MIN_FRAME: usize = 14;

/// Counters of the whole data plane.
#[derive(Debug, Default)]
pub struct DataCounters {
    /// Frames sent (each flooded copy counts).
    pub tx_frames: AtomicU64,
    /// Frames sent through the supernode.
    pub tx_relayed: AtomicU64,
    /// Frames received.
    pub rx_frames: AtomicU64,
    /// TCP super-frames read from the TAP device and cut to the MTU (segmentation offload).
    pub tap_superframes_read: AtomicU64,
    /// Super-frames joined from received segments and written to the TAP device.
    pub tap_superframes_written: AtomicU64,
    /// MACs not learned because their peer had [`super::receive::MAX_MACS_PER_PEER`] already.
    pub macs_refused: AtomicU64,
    drops: [AtomicU64; DropReason::ALL.len()],
}

impl DataCounters {
    /// Counts a drop.
    pub fn count_drop(&self, reason: DropReason) {
        self.count_drops(reason, 1);
    }

    /// Counts `n` drops for one reason.
    pub fn count_drops(&self, reason: DropReason, n: u64) {
        if let Some(i) = DropReason::ALL.iter().position(|r| *r == reason)
            && let Some(c) = self.drops.get(i)
        {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Adds the data plane's drops to `into` (one addition per reason, whatever the counts).
    pub fn merge_drops(&self, into: &mut DropCounters) {
        for (r, c) in DropReason::ALL.iter().zip(&self.drops) {
            into.add(*r, c.load(Ordering::Relaxed));
        }
    }
}

/// What the data plane knows of one peer.
#[derive(Debug, Clone)]
pub struct PeerFwd {
    /// The peer's id.
    pub id: EdgeId,
    /// Where its packets go: its direct address, or the supernode.
    pub dst: SocketAddr,
    /// True when `dst` is the supernode.
    pub relayed: bool,
    /// The session to send with.
    pub send: Option<Arc<PairKey>>,
    /// A newer session, used instead as soon as the peer confirms it.
    pub next: Option<Arc<PairKey>>,
    /// Sessions that may open its packets, oldest first.
    pub keys: Vec<Arc<PairKey>>,
    /// Its counters.
    pub counters: Arc<PeerCounters>,
}

/// A decrypted data packet.
#[derive(Debug)]
pub struct Opened<'a, 'f> {
    /// The sending peer.
    pub peer: EdgeId,
    /// Its counters (found with its key, so the receive path need not look it up again).
    pub counters: &'f PeerCounters,
    /// Header flags.
    pub flags: u8,
    /// The plaintext (frame or peer message).
    pub plain: &'a [u8],
}

/// The snapshot.
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// Our id (None before registration: nothing is forwarded).
    pub my_id: Option<EdgeId>,
    /// The supernode (relay) address.
    pub supernode: Option<SocketAddr>,
    /// Every configured supernode address: control in their forms is accepted only from these.
    pub supernodes: Vec<SocketAddr>,
    /// The MACs members own (their TAP devices; ours under id 0): only that member may send
    /// frames from one, and none is learned behind anybody else.
    pub owners: HashMap<Mac, EdgeId>,
    /// Compress frames when it helps.
    pub compress: bool,
    /// Unicast MACs to the peer that owns or bridges them.
    pub by_mac: HashMap<Mac, EdgeId>,
    /// Peers by id (ordered: floods go out in id order).
    pub peers: BTreeMap<EdgeId, PeerFwd>,
    /// Keys of the `mac1` a handshake addressed to us carries (our current static key and
    /// the one before it).
    pub mac1_keys: Vec<[u8; 32]>,
    /// Data-plane counters.
    pub counters: Arc<DataCounters>,
}

impl Forwarding {
    /// An empty snapshot.
    pub fn empty(counters: Arc<DataCounters>) -> Self {
        Self {
            my_id: None,
            supernode: None,
            supernodes: Vec::new(),
            owners: HashMap::new(),
            compress: false,
            by_mac: HashMap::new(),
            peers: BTreeMap::new(),
            mac1_keys: Vec::new(),
            counters,
        }
    }

    /// Seals `payload` for `peer` into `out` and returns where to send it (`to` overrides the
    /// peer's path). None if we have no id or no key for the peer yet.
    pub fn seal(
        &self,
        peer: &PeerFwd,
        extra_flags: u8,
        payload: &[u8],
        to: Option<SocketAddr>,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> Option<SocketAddr> {
        let me = self.my_id?;
        let key = match &peer.next {
            Some(next) if next.is_confirmed() => next,
            _ => peer.send.as_ref()?,
        };
        let header = DataHeader {
            flags: extra_flags | key.slot_flags(),
            dst: peer.id,
            src: me,
            counter: key.next_counter()?,
        };
        let pipeline = Pipeline {
            compress: self.compress && extra_flags & flags::PEER_CONTROL == 0,
        };
        pipeline.seal(key.send_key(), header, payload, out, scratch);
        Some(to.unwrap_or(peer.dst))
    }

    /// Sends one Ethernet frame: to the peer owning its destination MAC, or to every peer for
    /// broadcast, multicast and unknown unicast. `emit` gets each datagram. Returns the copies.
    pub fn encapsulate(
        &self,
        frame: &[u8],
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
        mut emit: impl FnMut(SocketAddr, &[u8]),
    ) -> Result<usize, DropReason> {
        let Some(dst) = Mac::dst_of(frame).filter(|_| frame.len() >= MIN_FRAME) else {
            return Err(DropReason::Malformed);
        };
        let unicast = if dst.is_group() {
            None
        } else {
            self.by_mac.get(&dst).and_then(|id| self.peers.get(id))
        };
        let mut sent = 0;
        let mut one = |peer: &PeerFwd| {
            if let Some(to) = self.seal(peer, 0, frame, None, out, scratch) {
                emit(to, out);
                sent += 1;
                peer.counters.tx_frames.fetch_add(1, Ordering::Relaxed);
                peer.counters
                    .tx_bytes
                    .fetch_add(frame.len() as u64, Ordering::Relaxed);
                if peer.relayed {
                    peer.counters.tx_relayed.fetch_add(1, Ordering::Relaxed);
                    self.counters.tx_relayed.fetch_add(1, Ordering::Relaxed);
                }
            }
        };
        match unicast {
            Some(peer) => one(peer),
            None => self.peers.values().for_each(&mut one),
        }
        if sent == 0 {
            return Err(DropReason::NoRoute);
        }
        self.counters
            .tx_frames
            .fetch_add(sent as u64, Ordering::Relaxed);
        Ok(sent)
    }

    /// Authenticates and decrypts a data packet in place (replay-checked before, recorded
    /// after authentication). Only [`Self::receive`] calls it.
    pub(super) fn decapsulate<'a, 'f>(
        &'f self,
        packet: &'a mut [u8],
        scratch: &'a mut Vec<u8>,
    ) -> Result<Opened<'a, 'f>, DropReason> {
        let pkt = DataPacket::new_checked(&*packet).map_err(|e| e.drop_reason())?;
        let hdr = DataHeader::parse(&pkt);
        if Some(hdr.dst) != self.my_id {
            return Err(DropReason::Misdirected);
        }
        let peer = self.peers.get(&hdr.src).ok_or(DropReason::UnknownSession)?;
        let slot = hdr.flags & flags::SLOT;
        let key = peer
            .keys
            .iter()
            .rev()
            .find(|k| k.slot_flags() == slot)
            .ok_or(DropReason::Auth)?;
        if !key.replay_check(hdr.counter) {
            return Err(DropReason::Replay);
        }
        let plain = Pipeline::open(key.recv_key(), &hdr, packet, scratch).map_err(|e| match e {
            OpenError::Auth => DropReason::Auth,
            OpenError::Decompress => DropReason::Malformed,
        })?;
        if !key.replay_accept(hdr.counter) {
            return Err(DropReason::Replay);
        }
        key.confirm();
        Ok(Opened {
            peer: hdr.src,
            counters: &peer.counters,
            flags: hdr.flags,
            plain,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Merging used to add one at a time: after 10^8 drops one /metrics scrape stalled the
    /// control task for seconds (2^40 here would never finish).
    #[test]
    fn merging_drops_is_one_addition_per_reason() {
        let c = DataCounters::default();
        c.count_drops(DropReason::Auth, 1 << 40);
        c.count_drop(DropReason::Auth);
        let mut into = DropCounters::default();
        into.count(DropReason::Auth);
        c.merge_drops(&mut into);
        assert_eq!(into.get(DropReason::Auth), (1 << 40) + 2);
        assert_eq!(into.get(DropReason::Replay), 0);
        assert_eq!(into.iter().count(), 1, "zero counters are not recorded");
    }
}
