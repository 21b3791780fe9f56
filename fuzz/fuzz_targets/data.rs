//! The data fast-path header.
#![no_main]
use libfuzzer_sys::fuzz_target;
use n2n_protocol::wire::data::{DataHeader, DataPacket};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = DataPacket::new_checked(data) {
        let h = DataHeader::parse(&p);
        let mut out = [0u8; n2n_protocol::wire::data::HEADER_LEN];
        h.emit(&mut out);
        assert_eq!(&out[..], p.header());
    }
});
