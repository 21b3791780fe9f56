//! Peer control messages and peer info records.
#![no_main]
use libfuzzer_sys::fuzz_target;
use n2n_common::wire::codec::Reader;
use n2n_common::wire::messages::PeerInfo;
use n2n_common::wire::peer::PeerMessage;

fuzz_target!(|data: &[u8]| {
    let _ = PeerMessage::parse(data);
    let _ = PeerInfo::read(&mut Reader::new(data));
});
