//! The sealed body of a registration.
#![no_main]
use libfuzzer_sys::fuzz_target;
use n2n_protocol::wire::messages::RegisterBody;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = RegisterBody::parse(data) {
        let mut out = Vec::new();
        b.emit(&mut out);
        assert_eq!(RegisterBody::parse(&out).ok(), Some(b));
    }
});
