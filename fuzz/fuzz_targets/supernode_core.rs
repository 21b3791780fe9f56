//! Whole datagrams into a supernode core: nothing panics, whatever arrives.
#![no_main]
use libfuzzer_sys::fuzz_target;
use n2n_common::crypto::identity::Identity;
use n2n_common::rng::CoreRng;
use n2n_supernode::proto::{PersistedState, Supernode, SupernodeConfig};
use std::sync::OnceLock;
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    static ID: OnceLock<Identity> = OnceLock::new();
    let id = ID.get_or_init(|| Identity::generate(&mut CoreRng::seeded(1), 1024).expect("keygen"));
    let now = Instant::now();
    let mut sn = Supernode::new(SupernodeConfig::default(), id.clone(), PersistedState::default(), CoreRng::seeded(2), now, 0);
    let from = "198.51.100.1:4000".parse().expect("addr");
    for chunk in data.split(|b| *b == 0xff) {
        sn.handle_datagram(now, from, chunk);
        while sn.poll_transmit().is_some() {}
    }
});
