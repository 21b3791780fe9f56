//! Optional zstd compression of frames, used only when it makes the packet smaller.

use std::cell::RefCell;

/// The largest frame we ever decompress to (a 9000-byte jumbo frame plus headers).
pub const MAX_DECOMPRESSED: usize = 9216;

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Compresses `input` into `out` (cleared first) and returns true only when the result is
/// strictly smaller; otherwise `out` is left empty and the caller sends `input` as it is.
pub fn compress_if_smaller(input: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(1).ok();
        }
        let Some(comp) = c.as_mut() else { return false };
        out.reserve(zstd::zstd_safe::compress_bound(input.len()));
        match comp.compress_to_buffer(input, out) {
            Ok(n) if n < input.len() => true,
            _ => {
                out.clear();
                false
            }
        }
    })
}

/// Decompresses `input` into `out` (cleared first), refusing outputs over [`MAX_DECOMPRESSED`].
pub fn decompress(input: &[u8], out: &mut Vec<u8>) -> Result<(), DecompressError> {
    out.clear();
    out.reserve(MAX_DECOMPRESSED);
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = zstd::bulk::Decompressor::new().ok();
        }
        let dec = d.as_mut().ok_or(DecompressError)?;
        match dec.decompress_to_buffer(input, out) {
            Ok(_) if out.len() <= MAX_DECOMPRESSED => Ok(()),
            _ => {
                out.clear();
                Err(DecompressError)
            }
        }
    })
}

/// The compressed bytes were invalid or decompressed to more than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid compressed payload")]
pub struct DecompressError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compresses_only_when_smaller_and_roundtrips() {
        let text = vec![b'a'; 1000];
        let mut c = Vec::new();
        assert!(compress_if_smaller(&text, &mut c));
        assert!(c.len() < 100);
        let mut d = Vec::new();
        decompress(&c, &mut d).unwrap();
        assert_eq!(d, text);
        let random: Vec<u8> = (0..200u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert!(!compress_if_smaller(&random, &mut c));
        assert!(c.is_empty());
        assert!(decompress(b"not zstd", &mut d).is_err());
    }

    #[test]
    fn refuses_decompression_bombs() {
        let big = vec![0u8; MAX_DECOMPRESSED * 4];
        let bomb = zstd::bulk::compress(&big, 3).unwrap();
        let mut out = Vec::new();
        assert!(decompress(&bomb, &mut out).is_err());
    }
}
