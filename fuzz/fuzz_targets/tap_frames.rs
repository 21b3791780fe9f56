//! TAP offload: cutting super-frames (what the kernel hands us) and joining received
//! segments (what peers send us) never panic, and joining loses or invents nothing.
#![no_main]
use libfuzzer_sys::fuzz_target;
use n2n_edge::io::gro::Coalescer;
use n2n_edge::io::offload::{PLAIN_HDR, VNET_HDR_LEN, VnetHdr, segment};

fuzz_target!(|data: &[u8]| {
    // The whole input as one header + super-frame.
    if let Some(h) = data.get(..VNET_HDR_LEN).and_then(VnetHdr::parse) {
        let mut frame = data[VNET_HDR_LEN..].to_vec();
        let _ = segment(&h, &mut frame, &mut Vec::new(), |_| ());
    }
    // The input as frames separated by 0xfe bytes, through the coalescer.
    let frames: Vec<&[u8]> = data.split(|b| *b == 0xfe).collect();
    let mut out: Vec<([u8; VNET_HDR_LEN], Vec<u8>)> = Vec::new();
    let mut write = |h: &[u8; VNET_HDR_LEN], f: &[u8]| out.push((*h, f.to_vec()));
    let mut c = Coalescer::default();
    for f in &frames {
        c.push(f, &mut write);
    }
    c.flush(&mut write);
    let (mut count, mut bytes) = (0, 0);
    for (h, f) in &out {
        if *h == PLAIN_HDR {
            count += 1;
            bytes += f.len();
        } else {
            let mut f = f.clone();
            let hdr = VnetHdr::parse(h).unwrap();
            count += segment(&hdr, &mut f, &mut Vec::new(), |s| bytes += s.len()).unwrap();
        }
    }
    assert_eq!(count, frames.len());
    assert_eq!(bytes, frames.iter().map(|f| f.len()).sum::<usize>());
});
