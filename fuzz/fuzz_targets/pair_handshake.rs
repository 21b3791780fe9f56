//! The pair handshake (Noise KKpsk2 via snow) and its wire body. The input edits a valid
//! initiation and a valid reply (XOR at input-chosen offsets, truncation), so the fuzzer
//! reaches the Noise code behind the framing: a changed message must fail, never panic,
//! and an unchanged one must give both sides the same keys.
#![no_main]
use libfuzzer_sys::fuzz_target;
use n2n_protocol::crypto::handshake::{Initiator, Params, Responder, public_key};
use n2n_protocol::wire::handshake::{HandshakeBody, InitiationPayload, parse_reply};

const A: [u8; 32] = [1; 32];
const B: [u8; 32] = [2; 32];
const PSK: [u8; 32] = [9; 32];

fn params<'a>(me: &'a [u8; 32], peer: &'a [u8; 32], seed: u8) -> Params<'a> {
    Params { my_static: me, peer_static: peer, psk: &PSK, prologue: b"n2n-rs/2 pair\0acme\0", seed: [seed; 32] }
}

/// Applies the edits in `data` to `msg`: pairs of (offset, xor), then a length cut.
fn edit(msg: &mut Vec<u8>, data: &[u8]) -> bool {
    let mut changed = false;
    for pair in data.chunks(2) {
        if let [at, x] = pair {
            if !msg.is_empty() && *x != 0 {
                let i = usize::from(*at) % msg.len();
                msg[i] ^= x;
                changed = true;
            }
        } else if let [cut] = pair {
            let keep = usize::from(*cut) % (msg.len() + 1);
            changed |= keep != msg.len();
            msg.truncate(keep);
        }
    }
    changed
}

fuzz_target!(|data: &[u8]| {
    let _ = HandshakeBody::parse(data);
    let _ = InitiationPayload::parse(data);
    let _ = parse_reply(data);
    let (pa, pb) = (public_key(&A), public_key(&B));
    let payload = InitiationPayload { session: 7, timestamp: 42 }.emit();
    let Ok((mut init, mut m1)) = Initiator::start(&params(&A, &pb, 1), &payload) else { panic!("start") };
    let (first, second) = data.split_at(data.len() / 2);
    let m1_changed = edit(&mut m1, first);
    let resp = match Responder::read(&params(&B, &pa, 2), &m1) {
        Ok((resp, got)) => {
            assert!(!m1_changed || got == payload, "an edited initiation read as another payload");
            resp
        }
        Err(_) => {
            assert!(m1_changed, "a genuine initiation failed");
            return;
        }
    };
    let reply = InitiationPayload { session: 7, timestamp: 43 }.emit();
    let Ok((mut m2, rk)) = resp.reply(&reply) else { panic!("reply") };
    let m2_changed = edit(&mut m2, second);
    match init.finish(&m2) {
        Ok((got, ik)) => {
            assert_eq!(parse_reply(&got).ok().map(|r| r.session), Some(7));
            if !m1_changed && !m2_changed {
                assert_eq!(ik.send, rk.recv);
                assert_eq!(ik.recv, rk.send);
            }
        }
        Err(_) => assert!(m1_changed || m2_changed, "a genuine handshake failed"),
    }
});
