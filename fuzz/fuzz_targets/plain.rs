//! Plain handshake messages: parse, and re-encode what parses.
#![no_main]
use libfuzzer_sys::fuzz_target;
use n2n_protocol::wire::plain::PlainMessage;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = PlainMessage::parse(data) {
        assert_eq!(PlainMessage::parse(&m.emit()).ok(), Some(m));
    }
});
