//! The one receive path. Every datagram an edge gets goes through [`Forwarding::receive`]:
//! the packet worker calls it on the socket thread, the core calls it for the simulator, and
//! the fuzzers call it, so what the tests exercise is what runs.
//!
//! It decides, without touching the core: a data packet is authenticated and opened here; a
//! frame is delivered, a peer control message is handed on already authenticated, and
//! control in the supernode's forms is passed on only when it comes from a supernode address
//! (the core then authenticates it). Everything else is dropped with a reason.

use super::forward::{Forwarding, MIN_FRAME};
use n2n_protocol::crypto::handshake::{self, MAC1_LEN};
use n2n_protocol::crypto::kdf;
use n2n_protocol::stats::DropReason;
use n2n_protocol::types::{EdgeId, Mac};
use n2n_protocol::wire::data::{DataPacket, flags};
use n2n_protocol::wire::handshake::HandshakeBody;
use n2n_protocol::wire::peer::PeerMessage;
use n2n_protocol::wire::{self, Form, WireError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The most MACs learned behind one peer (hosts it bridges); further ones are refused and
/// counted, so one member cannot fill the table for everyone.
pub const MAX_MACS_PER_PEER: usize = 1024;

/// How often a peer's (unchanged) source address is reported to the core.
const SEEN_EVERY: Duration = Duration::from_secs(1);
/// How often an (unchanged) learned MAC is reported to the core.
const LEARN_EVERY: Duration = Duration::from_secs(5);

/// What to do with a received datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum RxAction<'a> {
    /// An authenticated Ethernet frame from a peer: write it to the TAP device.
    Deliver(&'a [u8]),
    /// An authenticated peer control message (probe or ack).
    PeerControl {
        /// The peer that sealed it.
        peer: EdgeId,
        /// The message.
        msg: PeerMessage,
    },
    /// Control in the supernode's forms from a supernode address: the core authenticates it.
    Supernode,
    /// A pair handshake message addressed to us whose `mac1` checked: the core runs the
    /// handshake on the datagram as received.
    Handshake {
        /// The sender's edge id (not authenticated until the handshake is).
        peer: EdgeId,
    },
    /// A well-formed data packet from an edge id we have no key for (nothing was decrypted):
    /// the core asks the supernode for the peer list.
    UnknownPeer,
    /// Dropped; the caller counts the reason.
    Drop(DropReason),
}

/// What the core learns from authenticated frames, reported at most once a second per peer
/// (at once when its address changes) and once every five seconds per learned MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// An authenticated frame from `peer` came from `from` (liveness, roaming).
    Seen {
        /// The peer.
        peer: EdgeId,
        /// The datagram's source address.
        from: SocketAddr,
    },
    /// `mac` lives behind `peer` (a host it bridges).
    Learn {
        /// The MAC.
        mac: Mac,
        /// The peer.
        peer: EdgeId,
    },
}

/// What the receive path remembers between datagrams (one per receiving thread).
#[derive(Debug, Default)]
pub struct RxState {
    scratch: Vec<u8>,
    seen: HashMap<EdgeId, (SocketAddr, Instant)>,
    learned: HashMap<Mac, (EdgeId, Instant)>,
    learned_per_peer: HashMap<EdgeId, usize>,
}

impl Forwarding {
    /// Decides what one datagram from `from` is (see [`RxAction`]); `packet` is decrypted in
    /// place. `note` gets what the core should learn from it.
    pub fn receive<'a>(
        &self,
        st: &'a mut RxState,
        now: Instant,
        from: SocketAddr,
        packet: &'a mut [u8],
        note: impl FnMut(Note),
    ) -> RxAction<'a> {
        match wire::classify(packet) {
            // A supernode of an older version: the core says so once.
            Err(WireError::BadVersion(v))
                if v < wire::VERSION && self.supernodes.contains(&from) =>
            {
                RxAction::Supernode
            }
            Err(e) => RxAction::Drop(e.drop_reason()),
            Ok(Form::Plain | Form::Sealed) if self.supernodes.contains(&from) => {
                RxAction::Supernode
            }
            Ok(Form::Plain | Form::Sealed) => RxAction::Drop(DropReason::NotFromSupernode),
            Ok(Form::Data) if packet.get(1).is_some_and(|f| f & flags::HANDSHAKE != 0) => {
                self.receive_handshake(packet)
            }
            Ok(Form::Data) => self.receive_data(st, now, from, packet, note),
        }
    }

    /// Checks a handshake's header and `mac1` (one HMAC, before any Diffie-Hellman).
    fn receive_handshake<'a>(&self, packet: &[u8]) -> RxAction<'a> {
        let pkt = match DataPacket::new_checked(packet) {
            Ok(p) => p,
            Err(e) => return RxAction::Drop(e.drop_reason()),
        };
        if Some(pkt.dst()) != self.my_id {
            return RxAction::Drop(DropReason::Misdirected);
        }
        if pkt.flags() != flags::HANDSHAKE || pkt.counter() != 0 {
            return RxAction::Drop(DropReason::Malformed);
        }
        let body = match HandshakeBody::parse(pkt.sealed_payload()) {
            Ok(b) => b,
            Err(e) => return RxAction::Drop(e.drop_reason()),
        };
        let signed = packet.get(..packet.len() - MAC1_LEN).unwrap_or_default();
        let valid = self
            .mac1_keys
            .iter()
            .any(|k| kdf::ct_eq(&handshake::mac1(k, signed), body.mac1));
        if !valid {
            return RxAction::Drop(DropReason::Auth);
        }
        RxAction::Handshake { peer: pkt.src() }
    }

    fn receive_data<'a>(
        &self,
        st: &'a mut RxState,
        now: Instant,
        from: SocketAddr,
        packet: &'a mut [u8],
        mut note: impl FnMut(Note),
    ) -> RxAction<'a> {
        let RxState {
            scratch,
            seen,
            learned,
            learned_per_peer,
        } = st;
        let opened = match self.decapsulate(packet, scratch) {
            Ok(o) => o,
            Err(DropReason::UnknownSession) => return RxAction::UnknownPeer,
            Err(reason) => return RxAction::Drop(reason),
        };
        let peer = opened.peer;
        if opened.flags & flags::PEER_CONTROL != 0 {
            return match PeerMessage::parse(opened.plain) {
                Ok(msg) => RxAction::PeerControl { peer, msg },
                Err(e) => RxAction::Drop(e.drop_reason()),
            };
        }
        let frame = opened.plain;
        if frame.len() < MIN_FRAME {
            return RxAction::Drop(DropReason::Malformed);
        }
        let src = Mac::src_of(frame).unwrap_or_default();
        // A member may bridge other hosts, but never speak as another member or as us.
        let owner = self.owners.get(&src).copied();
        if owner.is_some_and(|o| o != peer) {
            return RxAction::Drop(DropReason::SpoofedSource);
        }
        opened.counters.rx_frames.fetch_add(1, Ordering::Relaxed);
        opened
            .counters
            .rx_bytes
            .fetch_add(frame.len() as u64, Ordering::Relaxed);
        self.counters.rx_frames.fetch_add(1, Ordering::Relaxed);
        // Tell the core about the path (roaming, liveness) at most once a second per peer, at
        // once when the source address changed.
        if seen
            .get(&peer)
            .is_none_or(|(addr, at)| *addr != from || now.duration_since(*at) >= SEEN_EVERY)
        {
            if seen.len() > 2 * self.peers.len() + 16 {
                seen.retain(|id, _| self.peers.contains_key(id));
            }
            seen.insert(peer, (from, now));
            note(Note::Seen { peer, from });
        }
        if !src.is_group() && owner.is_none() && self.by_mac.get(&src) != Some(&peer) {
            learn(self, learned, learned_per_peer, now, src, peer, &mut note);
        }
        RxAction::Deliver(frame)
    }
}

/// Reports `mac` behind `peer` unless it was reported lately; a peer over its quota of
/// learned MACs is refused and counted.
fn learn(
    fwd: &Forwarding,
    learned: &mut HashMap<Mac, (EdgeId, Instant)>,
    per_peer: &mut HashMap<EdgeId, usize>,
    now: Instant,
    mac: Mac,
    peer: EdgeId,
    note: &mut impl FnMut(Note),
) {
    match learned.get(&mac) {
        Some((p, at)) if *p == peer && now.duration_since(*at) < LEARN_EVERY => return,
        Some(_) => {}
        None => {
            if per_peer.get(&peer).copied().unwrap_or(0) >= MAX_MACS_PER_PEER {
                // Forget what has not been reported lately, then look again.
                learned.retain(|_, (_, at)| now.duration_since(*at) < LEARN_EVERY);
                per_peer.clear();
                for (p, _) in learned.values() {
                    *per_peer.entry(*p).or_default() += 1;
                }
                if per_peer.get(&peer).copied().unwrap_or(0) >= MAX_MACS_PER_PEER {
                    fwd.counters.macs_refused.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
    if let Some((old, _)) = learned.insert(mac, (peer, now))
        && let Some(n) = per_peer.get_mut(&old)
    {
        *n = n.saturating_sub(1);
    }
    *per_peer.entry(peer).or_default() += 1;
    note(Note::Learn { mac, peer });
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::proto::PairKey;
    use crate::proto::forward::PeerFwd;
    use n2n_protocol::crypto::handshake::SessionKeys;
    use proptest::prelude::*;
    use std::sync::Arc;

    const SN: &str = "198.51.100.1:7777";
    const PEER_ADDR: &str = "192.0.2.2:2";
    const STRANGER: &str = "203.0.113.9:9";
    const MAC_1: Mac = Mac([0x02, 0, 0, 0, 0, 1]);
    const MAC_2: Mac = Mac([0x02, 0, 0, 0, 0, 2]);
    const MAC_3: Mac = Mac([0x02, 0, 0, 0, 0, 3]);

    /// Edge `me`'s snapshot, knowing the other two of edges 1, 2, 3 (one key per pair).
    fn view(me: u32, now: Instant) -> Forwarding {
        let sn: SocketAddr = SN.parse().unwrap();
        let mut f = Forwarding::empty(Default::default());
        f.my_id = Some(me);
        f.supernode = Some(sn);
        f.supernodes = vec![sn];
        for (id, mac) in [(1, MAC_1), (2, MAC_2), (3, MAC_3)] {
            if id == me {
                f.owners.insert(mac, 0);
                continue;
            }
            let keys = SessionKeys {
                send: [(me * 16 + id) as u8; 32],
                recv: [(id * 16 + me) as u8; 32],
            };
            let key = Arc::new(PairKey::new(0, &keys, true, now));
            f.owners.insert(mac, id);
            f.by_mac.insert(mac, id);
            f.peers.insert(
                id,
                PeerFwd {
                    id,
                    dst: PEER_ADDR.parse().unwrap(),
                    relayed: false,
                    send: Some(key.clone()),
                    next: None,
                    keys: vec![key],
                    counters: Default::default(),
                },
            );
        }
        f
    }

    /// `payload` sealed by `from` for `to`.
    fn sealed(from: &Forwarding, to: u32, extra_flags: u8, payload: &[u8]) -> Vec<u8> {
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        from.seal(
            &from.peers[&to],
            extra_flags,
            payload,
            None,
            &mut out,
            &mut scratch,
        )
        .unwrap();
        out
    }

    fn frame(dst: Mac, src: Mac) -> Vec<u8> {
        let mut f = [dst.0, src.0].concat();
        f.extend_from_slice(&[0x08, 0x00, 1, 2, 3, 4]);
        f
    }

    fn run(
        f: &Forwarding,
        st: &mut RxState,
        now: Instant,
        from: &str,
        pkt: &[u8],
    ) -> (String, Vec<Note>) {
        let mut notes = Vec::new();
        let mut buf = pkt.to_vec();
        let a = f.receive(st, now, from.parse().unwrap(), &mut buf, |n| notes.push(n));
        (format!("{a:?}"), notes)
    }

    #[test]
    fn control_forms_pass_only_from_a_supernode_address() {
        let now = Instant::now();
        let (me, mut st) = (view(1, now), RxState::default());
        for first in [0x20u8, 0x21] {
            assert_eq!(run(&me, &mut st, now, SN, &[first, 1, 2]).0, "Supernode");
            assert_eq!(
                run(&me, &mut st, now, STRANGER, &[first, 1, 2]).0,
                "Drop(NotFromSupernode)"
            );
        }
        assert_eq!(run(&me, &mut st, now, SN, &[0x32]).0, "Drop(BadVersion)");
        // An older supernode's datagram reaches the core, which names the version once.
        assert_eq!(run(&me, &mut st, now, SN, &[0x10, 2]).0, "Supernode");
        assert_eq!(
            run(&me, &mut st, now, STRANGER, &[0x10, 2]).0,
            "Drop(BadVersion)"
        );
        assert_eq!(run(&me, &mut st, now, SN, &[]).0, "Drop(Malformed)");
    }

    #[test]
    fn frames_are_delivered_once_and_noted() {
        let now = Instant::now();
        let (me, two, mut st) = (view(1, now), view(2, now), RxState::default());
        let pkt = sealed(&two, 1, 0, &frame(MAC_1, MAC_2));
        let (a, notes) = run(&me, &mut st, now, PEER_ADDR, &pkt);
        assert!(a.starts_with("Deliver("), "{a}");
        let from = PEER_ADDR.parse().unwrap();
        assert_eq!(notes, vec![Note::Seen { peer: 2, from }]);
        assert_eq!(run(&me, &mut st, now, PEER_ADDR, &pkt).0, "Drop(Replay)");
        // A bridged host behind 2 is learned; the next frame within a second says nothing.
        let bridged = Mac([0x02, 9, 9, 9, 9, 9]);
        let pkt = sealed(&two, 1, 0, &frame(MAC_1, bridged));
        let (_, notes) = run(&me, &mut st, now, PEER_ADDR, &pkt);
        assert_eq!(
            notes,
            vec![Note::Learn {
                mac: bridged,
                peer: 2
            }]
        );
    }

    #[test]
    fn a_member_cannot_speak_as_another_member_or_as_us() {
        let now = Instant::now();
        let (me, mut st) = (view(1, now), RxState::default());
        let two = view(2, now);
        for src in [MAC_3, MAC_1] {
            let (a, notes) = run(
                &me,
                &mut st,
                now,
                PEER_ADDR,
                &sealed(&two, 1, 0, &frame(MAC_1, src)),
            );
            assert_eq!(a, "Drop(SpoofedSource)");
            assert!(notes.is_empty());
        }
    }

    #[test]
    fn peer_control_is_handed_on_authenticated_and_data_from_strangers_is_unknown() {
        let now = Instant::now();
        let (me, mut st) = (view(1, now), RxState::default());
        let msg = PeerMessage::Probe {
            probe_id: 7,
            sent_to: STRANGER.parse().unwrap(),
        };
        let mut body = Vec::new();
        msg.emit(&mut body);
        let three = view(3, now);
        let pkt = sealed(&three, 1, flags::PEER_CONTROL, &body);
        assert_eq!(
            run(&me, &mut st, now, PEER_ADDR, &pkt).0,
            format!("{:?}", RxAction::PeerControl { peer: 3, msg })
        );
        // A fresh counter gets past the replay window: the tag must stop a forgery.
        let mut forged = sealed(&three, 1, flags::PEER_CONTROL, &body);
        *forged.last_mut().unwrap() ^= 1;
        assert_eq!(run(&me, &mut st, now, PEER_ADDR, &forged).0, "Drop(Auth)");
        let mut stranger = view(9, now);
        stranger.peers.insert(1, stranger.peers[&2].clone());
        stranger.peers.get_mut(&1).unwrap().id = 1;
        let pkt = sealed(&stranger, 1, 0, &frame(MAC_1, Mac([2, 7, 7, 7, 7, 7])));
        assert_eq!(run(&me, &mut st, now, STRANGER, &pkt).0, "UnknownPeer");
    }

    fn handshake_packet(dst: u32, counter: u64, mac1_key: &[u8; 32]) -> Vec<u8> {
        use n2n_protocol::wire::data::{DataHeader, HEADER_LEN};
        let mut header = [0u8; HEADER_LEN];
        DataHeader {
            flags: flags::HANDSHAKE,
            dst,
            src: 2,
            counter,
        }
        .emit(&mut header);
        let mut pkt = header.to_vec();
        pkt.push(1);
        pkt.extend_from_slice(&[0x55; 60]);
        let mac1 = handshake::mac1(mac1_key, &pkt);
        pkt.extend_from_slice(&mac1);
        pkt
    }

    #[test]
    fn a_handshake_reaches_the_core_only_with_our_mac1() {
        let now = Instant::now();
        let (mut me, mut st) = (view(1, now), RxState::default());
        let (ours, other) = ([1u8; 32], [2u8; 32]);
        me.mac1_keys = vec![ours];
        let good = handshake_packet(1, 0, &ours);
        assert_eq!(
            run(&me, &mut st, now, STRANGER, &good).0,
            "Handshake { peer: 2 }"
        );
        let mut tampered = good.clone();
        tampered[20] ^= 1;
        assert_eq!(run(&me, &mut st, now, STRANGER, &tampered).0, "Drop(Auth)");
        let wrong_key = handshake_packet(1, 0, &other);
        assert_eq!(run(&me, &mut st, now, STRANGER, &wrong_key).0, "Drop(Auth)");
        let misdirected = handshake_packet(3, 0, &ours);
        assert_eq!(
            run(&me, &mut st, now, STRANGER, &misdirected).0,
            "Drop(Misdirected)"
        );
        let with_counter = handshake_packet(1, 5, &ours);
        assert_eq!(
            run(&me, &mut st, now, STRANGER, &with_counter).0,
            "Drop(Malformed)"
        );
    }

    proptest! {
        #[test]
        fn any_datagram_is_decided_without_panic(
            chunks in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..120)), 1..20)
        ) {
            let now = Instant::now();
            let (me, two, mut st) = (view(1, now), view(2, now), RxState::default());
            for (i, (mode, body)) in chunks.into_iter().enumerate() {
                let pkt = match mode % 3 {
                    0 => body,
                    1 => sealed(&two, 1, (mode >> 2) & flags::PEER_CONTROL, &body),
                    _ => [&[0x20 | (mode & 3)][..], &body].concat(),
                };
                let from = [SN, PEER_ADDR, STRANGER][usize::from(mode >> 4) % 3];
                let t = now + Duration::from_millis(i as u64 * 100);
                let mut buf = pkt.clone();
                if let RxAction::Deliver(f) = me.receive(&mut st, t, from.parse().unwrap(), &mut buf, |_| {}) {
                    prop_assert!(f.len() >= MIN_FRAME);
                    let src = Mac::src_of(f).unwrap();
                    prop_assert!(src != MAC_1 && src != MAC_3);
                }
            }
        }
    }
}
