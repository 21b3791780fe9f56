//! Whole datagrams into the edge's one receive path (`Forwarding::receive`, what the packet
//! workers and the core run). Half the inputs are sealed with a real pair key first, so the
//! fuzzer reaches what lies behind authentication: peer messages, frame checks, learning.
#![no_main]
use libfuzzer_sys::fuzz_target;
use n2n_protocol::crypto::handshake::SessionKeys;
use n2n_protocol::types::Mac;
use n2n_edge::proto::forward::{Forwarding, MIN_FRAME, PeerFwd};
use n2n_edge::proto::{PairKey, RxAction, RxState};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ME: u32 = 1;
const PEER: u32 = 2;
const MY_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 1]);
const PEER_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 2]);

/// A snapshot of edge `me` knowing edge `peer` under one pair session.
fn view(me: u32, my_mac: Mac, peer: u32, peer_mac: Mac, sn: SocketAddr, now: Instant) -> Forwarding {
    let keys = SessionKeys {
        send: [me as u8; 32],
        recv: [peer as u8; 32],
    };
    let key = Arc::new(PairKey::new(0, &keys, true, now));
    let mut f = Forwarding::empty(Default::default());
    f.my_id = Some(me);
    f.supernode = Some(sn);
    f.supernodes = vec![sn];
    f.compress = true;
    f.owners.insert(my_mac, 0);
    f.owners.insert(peer_mac, peer);
    f.by_mac.insert(peer_mac, peer);
    f.peers.insert(
        peer,
        PeerFwd {
            id: peer,
            dst: "192.0.2.2:2".parse().expect("addr"),
            relayed: false,
            send: Some(key.clone()),
            next: None,
            keys: vec![key],
            counters: Default::default(),
        },
    );
    f
}

const MAC1_KEY: [u8; 32] = [3; 32];

/// `rest` as a handshake datagram to us (header fields from its first bytes) with our mac1.
fn handshake(rest: &[u8]) -> Vec<u8> {
    use n2n_protocol::wire::data::{DataHeader, HEADER_LEN, flags};
    let mut header = [0u8; HEADER_LEN];
    DataHeader {
        flags: flags::HANDSHAKE,
        dst: ME,
        src: PEER,
        counter: 0,
    }
    .emit(&mut header);
    let mut pkt = header.to_vec();
    pkt.extend_from_slice(rest);
    let mac1 = n2n_protocol::crypto::handshake::mac1(&MAC1_KEY, &pkt);
    pkt.extend_from_slice(&mac1);
    pkt
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let sn: SocketAddr = "198.51.100.1:7777".parse().expect("addr");
    let mut me = view(ME, MY_MAC, PEER, PEER_MAC, sn, now);
    me.mac1_keys = vec![MAC1_KEY];
    let them = view(PEER, PEER_MAC, ME, MY_MAC, sn, now);
    let sources = [sn, "192.0.2.2:2".parse().expect("addr"), "203.0.113.9:9".parse().expect("addr")];
    let mut st = RxState::default();
    let (mut out, mut scratch) = (Vec::new(), Vec::new());
    for (i, chunk) in data.split(|b| *b == 0xff).enumerate() {
        let [mode, rest @ ..] = chunk else { continue };
        let from = sources[usize::from(*mode >> 1) % sources.len()];
        let mut pkt = if mode & 3 == 2 {
            // A handshake with a valid mac1, so the fuzzer gets past the first check.
            handshake(rest)
        } else if mode & 1 == 1 {
            // Sealed by the peer: flags from the low bits of the mode byte.
            let flags = (mode >> 2) & n2n_protocol::wire::data::flags::PEER_CONTROL;
            let Some(p) = them.peers.get(&ME) else { return };
            them.seal(p, flags, rest, None, &mut out, &mut scratch);
            out.clone()
        } else {
            rest.to_vec()
        };
        let t = now + Duration::from_millis(i as u64 * 300);
        match me.receive(&mut st, t, from, &mut pkt, |_| {}) {
            RxAction::Deliver(frame) => {
                assert!(frame.len() >= MIN_FRAME);
                let src = Mac::src_of(frame).expect("a frame has a source");
                assert!(src != MY_MAC, "a peer spoke as us");
            }
            RxAction::Supernode => assert_eq!(from, sn),
            RxAction::PeerControl { peer, .. } => assert_eq!(peer, PEER),
            RxAction::Handshake { .. } => assert!(mode & 3 == 2, "a handshake without our mac1"),
            RxAction::UnknownPeer | RxAction::Drop(_) => {}
        }
    }
});
