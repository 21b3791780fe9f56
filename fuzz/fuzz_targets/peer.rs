//! Peer control messages and peer info records.
#![no_main]
use libfuzzer_sys::fuzz_target;
use n2n_protocol::wire::codec::Reader;
use n2n_protocol::wire::messages::PeerInfo;
use n2n_protocol::wire::peer::PeerMessage;

fuzz_target!(|data: &[u8]| {
    let _ = PeerMessage::parse(data);
    let _ = PeerInfo::read(&mut Reader::new(data));
});
