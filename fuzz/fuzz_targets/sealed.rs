//! Sealed control: the header, and every body type (first byte picks the type).
#![no_main]
use libfuzzer_sys::fuzz_target;
use n2n_protocol::wire::sealed::{SealedHeader, SealedMessage, SealedType};

fuzz_target!(|data: &[u8]| {
    let _ = SealedHeader::parse(data);
    if let Some((kind, body)) = data.split_first() {
        let kind = SealedType::from(*kind);
        if let Ok(m) = SealedMessage::parse(kind, body) {
            let mut out = Vec::new();
            m.emit(&mut out);
            assert_eq!(SealedMessage::parse(kind, &out).ok(), Some(m));
        }
    }
});
