//! Golden bytes for every message, property round-trips, and "no decoder panics on any input".

use super::codec::Writer;
use super::data::{DataHeader, DataPacket};
use super::messages::{KeyAnnounce, PeerInfo, RegisterBody};
use super::peer::PeerMessage;
use super::plain::{HELLO_LEN, PlainMessage};
use super::sealed::{NakCode, SealedHeader, SealedMessage, SealedType};
use crate::types::{Candidate, CandidateKind, Mac};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn key() -> KeyAnnounce {
    KeyAnnounce {
        identity: [0xcc; 32],
        public: [0xaa; 32],
        epoch: 7,
        boot: 9,
        signature: [0xdd; 64],
        tag: [0xbb; 16],
    }
}

fn peer() -> PeerInfo {
    PeerInfo {
        id: 0x0102,
        mac: Mac([2, 0, 0, 0, 0, 9]),
        ip: Ipv4Addr::new(10, 128, 0, 5),
        desc: "pc".into(),
        observed: Some("203.0.113.9:4000".parse().unwrap()),
        candidates: vec![Candidate {
            kind: CandidateKind::Lan,
            addr: "192.168.1.2:4000".parse().unwrap(),
        }],
        key: key(),
    }
}

const KEY_HEX: &str = concat!(
    "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa0000000700000009",
    "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
    "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
);

#[test]
fn golden_peer_info() {
    let mut out = Vec::new();
    peer().write(&mut Writer::new(&mut out));
    let expected = [
        "00000102",       // id
        "020000000009",   // mac
        "0a800005",       // ip
        "00",             // reserved
        "027063",         // desc "pc"
        "04cb0071090fa0", // observed 203.0.113.9:4000
        "01",             // one candidate
        "00",             // kind lan
        "04c0a801020fa0", // 192.168.1.2:4000
        KEY_HEX,
    ]
    .concat();
    assert_eq!(hex(&out), expected);
    assert_eq!(peer().encoded_len(), out.len());
}

#[test]
fn golden_plain_messages() {
    let hello = PlainMessage::Hello { nonce: [0x11; 16] }.emit();
    assert_eq!(hello.len(), HELLO_LEN);
    assert_eq!(hex(&hello[..18]), format!("2001{}", "11".repeat(16)));
    assert!(hello[18..].iter().all(|b| *b == 0));

    let reply = PlainMessage::HelloReply {
        nonce: [1; 16],
        sn_key: [2; 32],
        sn_epoch: 3,
        cookie: [4; 16],
        identity: vec![5, 6],
        signature: vec![7],
    }
    .emit();
    assert_eq!(
        hex(&reply),
        format!(
            "2002{}{}0000000000000003{}000205060001{}",
            "01".repeat(16),
            "02".repeat(32),
            "04".repeat(16),
            "07"
        )
    );

    let reg = PlainMessage::Register {
        sn_epoch: 9,
        edge_key: [8; 32],
        cookie: [4; 16],
        sealed: vec![0xee; 16],
    }
    .emit();
    assert_eq!(
        hex(&reg),
        format!(
            "20030000000000000009{}{}{}",
            "08".repeat(32),
            "04".repeat(16),
            "ee".repeat(16)
        )
    );

    assert_eq!(
        hex(&PlainMessage::UnknownSession {
            edge_id: 0x01020304
        }
        .emit()),
        "200401020304"
    );
}

#[test]
fn golden_sealed_header_and_bodies() {
    let h = SealedHeader {
        kind: SealedType::Heartbeat,
        edge_id: 5,
        counter: 6,
    }
    .emit();
    assert_eq!(hex(&h), "21100000000000050000000000000006");

    let body = |m: SealedMessage| {
        let mut v = Vec::new();
        m.emit(&mut v);
        hex(&v)
    };
    let addr: SocketAddr = "198.51.100.7:7777".parse().unwrap();
    let addr_hex = "04c63364071e61";
    assert_eq!(
        body(SealedMessage::Heartbeat {
            candidates: vec![],
            key: key()
        }),
        format!("00{KEY_HEX}")
    );
    assert_eq!(body(SealedMessage::Unregister), "");
    assert_eq!(body(SealedMessage::PeerSyncRequest), "");
    assert_eq!(body(SealedMessage::PunchRequest { peer: 3 }), "00000003");
    assert_eq!(
        body(SealedMessage::RegisterAck {
            edge_id: 1,
            ip: Ipv4Addr::new(10, 1, 2, 3),
            prefix: 24,
            observed: addr,
            heartbeat_secs: 10
        }),
        format!("000000010a01020318{addr_hex}000a")
    );
    assert_eq!(
        body(SealedMessage::RegisterNak {
            code: NakCode::AdmissionRefused,
            reason: "no".into()
        }),
        "01026e6f"
    );
    assert_eq!(
        body(SealedMessage::HeartbeatAck { observed: addr }),
        addr_hex
    );
    let mut p = Vec::new();
    peer().write(&mut Writer::new(&mut p));
    assert_eq!(
        body(SealedMessage::PeerList {
            first: true,
            last: true,
            peers: vec![peer()]
        }),
        format!("0301{}", hex(&p))
    );
    assert_eq!(body(SealedMessage::PeerUpdate { peers: vec![] }), "00");
    assert_eq!(
        body(SealedMessage::PeerRemove { ids: vec![1, 2] }),
        "020000000100000002"
    );
    assert_eq!(body(SealedMessage::Punch { peer: peer() }), hex(&p));
}

#[test]
fn golden_register_body_and_peer_messages() {
    let b = RegisterBody {
        community: "acme".into(),
        mac: Mac([2, 1, 1, 1, 1, 1]),
        desc: "".into(),
        requested_ip: Some(Ipv4Addr::new(10, 0, 0, 7)),
        verifier: None,
        identity: [0x11; 32],
        candidates: vec![],
        key: key(),
        identity_sig: [0x22; 64],
        admission_sig: None,
    };
    let mut v = Vec::new();
    b.emit(&mut v);
    assert_eq!(
        hex(&v),
        format!(
            "0461636d6502010101010100010a000007{}00{KEY_HEX}{}",
            "11".repeat(32),
            "22".repeat(64)
        )
    );
    assert_eq!(RegisterBody::parse(&v).unwrap(), b);
    let closed = RegisterBody {
        verifier: Some([0x33; 32]),
        admission_sig: Some([0x44; 64]),
        requested_ip: None,
        ..b
    };
    let mut v = Vec::new();
    closed.emit(&mut v);
    assert_eq!(
        hex(&v),
        format!(
            "0461636d650201010101010002{}{}00{KEY_HEX}{}{}",
            "33".repeat(32),
            "11".repeat(32),
            "22".repeat(64),
            "44".repeat(64)
        )
    );
    assert_eq!(RegisterBody::parse(&v).unwrap(), closed);

    let mut v = Vec::new();
    let six: SocketAddr = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 1);
    PeerMessage::Probe {
        probe_id: 1,
        sent_to: six,
    }
    .emit(&mut v);
    assert_eq!(
        hex(&v),
        format!("01000000000000000106{}010001", "00".repeat(15))
    );
    let mut v = Vec::new();
    PeerMessage::ProbeAck {
        probe_id: 2,
        seen_from: "1.2.3.4:5".parse().unwrap(),
    }
    .emit(&mut v);
    assert_eq!(
        hex(&v),
        "0200000000000000020401020304 0005".replace(' ', "")
    );
}

#[test]
fn rejects_unknown_types_versions_and_trailing_bytes() {
    assert_eq!(
        PlainMessage::parse(&[0x20, 0x7f]),
        Err(super::WireError::UnknownType(0x7f))
    );
    assert_eq!(
        PlainMessage::parse(&[0x10, 0x01]),
        Err(super::WireError::BadVersion(1))
    );
    let mut us = PlainMessage::UnknownSession { edge_id: 1 }.emit();
    us.push(0);
    assert_eq!(
        PlainMessage::parse(&us),
        Err(super::WireError::TrailingBytes)
    );
    let mut h = SealedHeader {
        kind: SealedType::Heartbeat,
        edge_id: 1,
        counter: 0,
    }
    .emit()
    .to_vec();
    h.extend_from_slice(&[0; 16]);
    h[1] = 0x77;
    assert_eq!(
        SealedHeader::parse(&h).unwrap_err(),
        super::WireError::UnknownType(0x77)
    );
    h[1] = 0x10;
    h[2] = 1;
    assert!(SealedHeader::parse(&h).is_err(), "reserved bits");
    assert_eq!(
        PeerMessage::parse(&[9]),
        Err(super::WireError::UnknownType(9))
    );
    assert!(SealedMessage::parse(SealedType::PeerRemove, &[1, 0, 0, 0]).is_err());
}

fn arb_sockaddr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p)),
    ]
}

fn arb_candidate() -> impl Strategy<Value = Candidate> {
    (0u8..4, arb_sockaddr()).prop_map(|(k, addr)| Candidate {
        kind: CandidateKind::from_u8(k).unwrap(),
        addr,
    })
}

fn arb_key() -> impl Strategy<Value = KeyAnnounce> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<u32>(),
        any::<[u8; 32]>(),
        any::<[u8; 16]>(),
    )
        .prop_map(|(identity, public, epoch, sig, tag)| KeyAnnounce {
            identity,
            public,
            epoch,
            boot: epoch.rotate_left(7),
            signature: [sig, identity].concat().try_into().unwrap(),
            tag,
        })
}

fn arb_peer() -> impl Strategy<Value = PeerInfo> {
    (
        any::<u32>(),
        any::<[u8; 6]>(),
        any::<[u8; 4]>(),
        "[a-z<>&\"' ]{0,64}",
        proptest::option::of(arb_sockaddr()),
        proptest::collection::vec(arb_candidate(), 0..8),
        arb_key(),
    )
        .prop_map(|(id, mac, ip, desc, observed, candidates, key)| PeerInfo {
            id,
            mac: Mac(mac),
            ip: Ipv4Addr::from(ip),
            desc,
            observed,
            candidates,
            key,
        })
}

fn arb_sealed() -> impl Strategy<Value = SealedMessage> {
    prop_oneof![
        (proptest::collection::vec(arb_candidate(), 0..8), arb_key())
            .prop_map(|(candidates, key)| SealedMessage::Heartbeat { candidates, key }),
        Just(SealedMessage::Unregister),
        any::<u32>().prop_map(|peer| SealedMessage::PunchRequest { peer }),
        Just(SealedMessage::PeerSyncRequest),
        (
            any::<u32>(),
            any::<[u8; 4]>(),
            8u8..=30,
            arb_sockaddr(),
            any::<u16>()
        )
            .prop_map(|(edge_id, ip, prefix, observed, hb)| {
                SealedMessage::RegisterAck {
                    edge_id,
                    ip: Ipv4Addr::from(ip),
                    prefix,
                    observed,
                    heartbeat_secs: hb,
                }
            }),
        (1u8..6, ".{0,60}").prop_map(|(c, reason)| SealedMessage::RegisterNak {
            code: NakCode::from(c),
            reason
        }),
        arb_sockaddr().prop_map(|observed| SealedMessage::HeartbeatAck { observed }),
        (
            any::<bool>(),
            any::<bool>(),
            proptest::collection::vec(arb_peer(), 0..4)
        )
            .prop_map(|(first, last, peers)| SealedMessage::PeerList {
                first,
                last,
                peers
            }),
        proptest::collection::vec(arb_peer(), 0..4)
            .prop_map(|peers| SealedMessage::PeerUpdate { peers }),
        proptest::collection::vec(any::<u32>(), 0..20)
            .prop_map(|ids| SealedMessage::PeerRemove { ids }),
        arb_peer().prop_map(|peer| SealedMessage::Punch { peer }),
    ]
}

proptest! {
    #[test]
    fn sealed_bodies_roundtrip(m in arb_sealed()) {
        let mut v = Vec::new();
        m.emit(&mut v);
        prop_assert_eq!(SealedMessage::parse(m.kind(), &v).unwrap(), m);
    }

    #[test]
    fn plain_messages_roundtrip(
        nonce in any::<[u8; 16]>(), key in any::<[u8; 32]>(), epoch in any::<u64>(),
        der in proptest::collection::vec(any::<u8>(), 0..300),
        sealed in proptest::collection::vec(any::<u8>(), 16..300), id in any::<u32>(),
    ) {
        for m in [
            PlainMessage::Hello { nonce },
            PlainMessage::HelloReply { nonce, sn_key: key, sn_epoch: epoch, cookie: nonce, identity: der.clone(), signature: der.clone() },
            PlainMessage::Register { sn_epoch: epoch, edge_key: key, cookie: nonce, sealed: sealed.clone() },
            PlainMessage::UnknownSession { edge_id: id },
        ] {
            prop_assert_eq!(PlainMessage::parse(&m.emit()).unwrap(), m);
        }
    }

    #[test]
    fn register_body_and_peer_messages_roundtrip(
        community in "[a-z]{1,64}", mac in any::<[u8; 6]>(), desc in ".{0,20}",
        ip in proptest::option::of(any::<[u8; 4]>()), verifier in proptest::option::of(any::<[u8; 32]>()),
        identity in any::<[u8; 32]>(), sig in any::<[u8; 32]>(),
        candidates in proptest::collection::vec(arb_candidate(), 0..8), key in arb_key(),
        probe_id in any::<u64>(), addr in arb_sockaddr(),
    ) {
        let sig: [u8; 64] = [sig, identity].concat().try_into().unwrap();
        let b = RegisterBody { community, verifier, mac: Mac(mac), desc, requested_ip: ip.map(Ipv4Addr::from), identity, candidates, key, identity_sig: sig, admission_sig: verifier.map(|_| sig) };
        let mut v = Vec::new();
        b.emit(&mut v);
        prop_assert_eq!(RegisterBody::parse(&v).unwrap(), b);
        for m in [PeerMessage::Probe { probe_id, sent_to: addr }, PeerMessage::ProbeAck { probe_id, seen_from: addr }] {
            let mut v = Vec::new();
            m.emit(&mut v);
            prop_assert_eq!(PeerMessage::parse(&v).unwrap(), m);
        }
    }

    #[test]
    fn data_header_roundtrips(flags in 0u8..16, dst in 1u32..0xff_ffff, src in 1u32..0xff_ffff, counter in any::<u64>()) {
        let h = DataHeader { flags, dst, src, counter };
        let mut out = [0u8; super::data::HEADER_LEN];
        h.emit(&mut out);
        let mut pkt = out.to_vec();
        pkt.extend_from_slice(&[0; 16]);
        prop_assert_eq!(DataHeader::parse(&DataPacket::new_checked(&pkt[..]).unwrap()), h);
    }

    #[test]
    fn no_decoder_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1600), kind in any::<u8>()) {
        let _ = super::classify(&bytes);
        let _ = PlainMessage::parse(&bytes);
        let _ = SealedHeader::parse(&bytes);
        let _ = SealedMessage::parse(SealedType::from(kind), &bytes);
        let _ = DataPacket::new_checked(&bytes[..]).map(|p| DataHeader::parse(&p));
        let _ = PeerMessage::parse(&bytes);
        let _ = RegisterBody::parse(&bytes);
        let _ = PeerInfo::read(&mut super::codec::Reader::new(&bytes));
    }

    #[test]
    fn no_decoder_panics_on_mutated_valid_messages(m in arb_sealed(), pos in any::<usize>(), val in any::<u8>(), cut in any::<usize>()) {
        let mut v = Vec::new();
        m.emit(&mut v);
        if !v.is_empty() {
            let i = pos % v.len();
            v[i] = val;
            let c = cut % (v.len() + 1);
            let _ = SealedMessage::parse(m.kind(), &v);
            let _ = SealedMessage::parse(m.kind(), &v[..c]);
        }
    }
}
