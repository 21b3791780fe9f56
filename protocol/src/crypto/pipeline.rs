//! The data pipeline: [optional zstd] then AES-256-GCM with the 16-byte data header as
//! associated data. Shared by the edge core and the packet workers.

use super::aead::{AuthError, SessionKey};
use super::compress;
use crate::wire::data::{DataHeader, HEADER_LEN, flags};

/// How frames are transformed on the way out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pipeline {
    /// Try zstd and send compressed when smaller.
    pub compress: bool,
}

/// Why an incoming packet could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The AEAD tag did not verify.
    #[error("authentication failed")]
    Auth,
    /// The compressed payload was invalid.
    #[error("bad compressed payload")]
    Decompress,
}

impl From<AuthError> for OpenError {
    fn from(_: AuthError) -> Self {
        OpenError::Auth
    }
}

impl Pipeline {
    /// Builds a complete data packet into `out` (cleared first): header, sealed payload, tag.
    /// `scratch` is a reusable buffer for compression.
    pub fn seal(
        &self,
        key: &SessionKey,
        mut header: DataHeader,
        payload: &[u8],
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) {
        let body: &[u8] = if self.compress && compress::compress_if_smaller(payload, scratch) {
            header.flags |= flags::COMPRESSED;
            scratch
        } else {
            header.flags &= !flags::COMPRESSED;
            payload
        };
        out.clear();
        out.resize(HEADER_LEN, 0);
        let mut hdr = [0u8; HEADER_LEN];
        header.emit(&mut hdr);
        out.copy_from_slice(&hdr);
        out.extend_from_slice(body);
        out.extend_from_slice(&[0u8; crate::wire::TAG_LEN]);
        let tag_at = out.len() - crate::wire::TAG_LEN;
        let (head, tail) = out.split_at_mut(HEADER_LEN);
        let (body, tag) = tail.split_at_mut(tag_at - HEADER_LEN);
        key.seal_detached(header.src, header.counter, head, body, tag);
    }

    /// Opens a data packet in place (`packet` is header + ciphertext + tag) and returns the
    /// plaintext; decompressed into `scratch` when the header says so.
    pub fn open<'a>(
        key: &SessionKey,
        header: &DataHeader,
        packet: &'a mut [u8],
        scratch: &'a mut Vec<u8>,
    ) -> Result<&'a [u8], OpenError> {
        if packet.len() < HEADER_LEN {
            return Err(OpenError::Auth);
        }
        let (head, sealed) = packet.split_at_mut(HEADER_LEN);
        let plain = key.open(header.src, header.counter, head, sealed)?;
        if header.flags & flags::COMPRESSED != 0 {
            compress::decompress(plain, scratch).map_err(|_| OpenError::Decompress)?;
            Ok(scratch)
        } else {
            Ok(plain)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::data::DataPacket;

    #[test]
    fn seal_open_roundtrip_with_and_without_compression() {
        let key = SessionKey::new(&[5; 32]);
        for compress in [false, true] {
            let p = Pipeline { compress };
            let frame = vec![0x42u8; 600];
            let h = DataHeader {
                flags: 0,
                dst: 2,
                src: 1,
                counter: 7,
            };
            let (mut out, mut scratch) = (Vec::new(), Vec::new());
            p.seal(&key, h, &frame, &mut out, &mut scratch);
            assert_eq!(out.len() < frame.len(), compress);
            let pkt = DataPacket::new_checked(&out[..]).unwrap();
            let hdr = DataHeader::parse(&pkt);
            assert_eq!(hdr.flags & flags::COMPRESSED != 0, compress);
            let mut scratch2 = Vec::new();
            let mut buf = out.clone();
            assert_eq!(
                Pipeline::open(&key, &hdr, &mut buf, &mut scratch2).unwrap(),
                &frame[..]
            );
            // Flipping a header bit (the AAD) breaks authentication.
            let mut buf = out.clone();
            buf[4] ^= 1;
            let hdr2 = DataHeader::parse(&DataPacket::new_checked(&buf[..]).unwrap());
            assert_eq!(
                Pipeline::open(&key, &hdr2, &mut buf, &mut scratch2),
                Err(OpenError::Auth)
            );
        }
    }
}
