//! Whole datagrams into a supernode core: nothing panics, whatever arrives. Each run copies
//! one core made at the first run (making one costs an RSA signature).
#![no_main]
use libfuzzer_sys::fuzz_target;
use n2n_protocol::crypto::identity::Identity;
use n2n_protocol::rng::CoreRng;
use n2n_supernode::proto::{PersistedState, Supernode, SupernodeConfig};
use std::sync::OnceLock;
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    static READY: OnceLock<(Supernode, Instant)> = OnceLock::new();
    let (ready, now) = READY.get_or_init(|| {
        let id = Identity::generate(&mut CoreRng::seeded(1), 1024).expect("keygen");
        let now = Instant::now();
        let sn = Supernode::new(SupernodeConfig::default(), id, PersistedState::default(), CoreRng::seeded(2), now, 0);
        (sn, now)
    });
    let mut sn = ready.clone();
    let from = "198.51.100.1:4000".parse().expect("addr");
    for chunk in data.split(|b| *b == 0xff) {
        sn.handle_datagram(*now, from, chunk);
        while sn.poll_transmit().is_some() {}
    }
});
