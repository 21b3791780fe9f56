//! TAP segmentation offload. With IFF_VNET_HDR the kernel puts a virtio-net header before
//! every frame it hands us and expects one before every frame we write; with TSO enabled on the
//! device it hands us TCP (and, on kernels that have it, UDP) super-frames of up to 64 KiB, so
//! one read carries what took forty. [`segment`] cuts them back into frames that fit the
//! overlay, writing the IP and TCP/UDP fields and checksums a NIC doing TSO would write, and
//! completes the checksums the kernel left partial.

use n2n_protocol::stats::DropReason;

/// Length of the virtio-net header (no mergeable-buffers field).
pub const VNET_HDR_LEN: usize = 10;

/// The header of every frame we write to the device: one whole frame, checksums as they are.
pub const PLAIN_HDR: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];

pub(super) const F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
pub(super) const GSO_TCPV4: u8 = 1;
pub(super) const GSO_TCPV6: u8 = 4;
const GSO_UDP_L4: u8 = 5;
const GSO_ECN: u8 = 0x80;

const TCP_FIN: u8 = 0x01;
pub(super) const TCP_ACK: u8 = 0x10;
pub(super) const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// A virtio-net header as the kernel wrote it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `VIRTIO_NET_HDR_F_*` bits.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*`: how the frame is to be segmented.
    pub gso_type: u8,
    /// Length of the headers (a hint; we compute it from the frame).
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where the checksummed part (the transport header) starts.
    pub csum_start: u16,
    /// Where in it the checksum field sits.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Parses the header at the start of `b` (legacy virtio: host byte order).
    pub fn parse(b: &[u8]) -> Option<Self> {
        let u16_at = |at: usize| {
            b.get(at..at + 2)
                .and_then(|s| s.try_into().ok())
                .map(u16::from_ne_bytes)
        };
        Some(Self {
            flags: *b.first()?,
            gso_type: *b.get(1)?,
            hdr_len: u16_at(2)?,
            gso_size: u16_at(4)?,
            csum_start: u16_at(6)?,
            csum_offset: u16_at(8)?,
        })
    }

    /// The header's bytes.
    pub fn to_bytes(self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        let fields = [
            self.hdr_len,
            self.gso_size,
            self.csum_start,
            self.csum_offset,
        ];
        b[0] = self.flags;
        b[1] = self.gso_type;
        for (dst, v) in b[2..].chunks_exact_mut(2).zip(fields) {
            dst.copy_from_slice(&v.to_ne_bytes());
        }
        b
    }
}

/// Calls `emit` with each frame of `frame` as `hdr` describes it: the frame itself (with its
/// checksum completed if the kernel left it partial), or its segments, built in `seg`.
/// Returns the number of frames emitted; a header that does not match the frame is an error.
pub fn segment(
    hdr: &VnetHdr,
    frame: &mut [u8],
    seg: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]),
) -> Result<usize, DropReason> {
    match hdr.gso_type & !GSO_ECN {
        GSO_NONE => {
            if hdr.flags & F_NEEDS_CSUM != 0 {
                let start = usize::from(hdr.csum_start);
                complete_checksum(frame, start, start + usize::from(hdr.csum_offset))?;
            }
            emit(frame);
            Ok(1)
        }
        GSO_TCPV4 | GSO_TCPV6 | GSO_UDP_L4 => split(hdr, frame, seg, emit),
        _ => Err(DropReason::Malformed),
    }
}

/// Fills in a partial checksum: the kernel left the pseudo-header sum in the field at `at`.
fn complete_checksum(frame: &mut [u8], start: usize, at: usize) -> Result<(), DropReason> {
    let part = frame.get(start..).ok_or(DropReason::Malformed)?;
    let mut c = !fold(sum(part, 0));
    // A UDP checksum of zero means "none"; its complement form stands in for it.
    if at == start + 6 && c == 0 {
        c = 0xffff;
    }
    put16(frame, at, c)
}

/// What a header says of the frame it describes.
struct Layout {
    l3: usize,
    l4: usize,
    end: usize,
    v6: bool,
    tcp: bool,
}

fn layout(hdr: &VnetHdr, frame: &[u8]) -> Option<Layout> {
    let gso = hdr.gso_type & !GSO_ECN;
    let l3 = l3_offset(frame)?;
    let v6 = match frame.get(l3)? >> 4 {
        4 => false,
        6 => true,
        _ => return None,
    };
    let tcp = gso != GSO_UDP_L4;
    if (gso == GSO_TCPV4 && v6) || (gso == GSO_TCPV6 && !v6) {
        return None;
    }
    let proto = if tcp { 6 } else { 17 };
    // The transport header's place comes from the packet itself; the kernel's csum_start is
    // only needed past IPv6 extension headers.
    let l4 = if v6 {
        if *frame.get(l3 + 6)? == proto {
            l3 + 40
        } else {
            usize::from(hdr.csum_start).max(l3 + 40)
        }
    } else {
        let ihl = usize::from(frame.get(l3)? & 0x0f) * 4;
        if ihl < 20 || *frame.get(l3 + 9)? != proto {
            return None;
        }
        l3 + ihl
    };
    let l4_len = if tcp {
        usize::from(frame.get(l4 + 12)? >> 4) * 4
    } else {
        8
    };
    if l4_len < 8 || (tcp && l4_len < 20) {
        return None;
    }
    let end = l4 + l4_len;
    (frame.len() > end).then_some(Layout {
        l3,
        l4,
        end,
        v6,
        tcp,
    })
}

/// Software TSO/USO: one frame per `gso_size` bytes of payload.
fn split(
    hdr: &VnetHdr,
    frame: &[u8],
    seg: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]),
) -> Result<usize, DropReason> {
    let bad = DropReason::Malformed;
    let Layout {
        l3,
        l4,
        end,
        v6,
        tcp,
    } = layout(hdr, frame).ok_or(bad)?;
    let mss = usize::from(hdr.gso_size);
    let (headers, payload) = (frame.get(..end).ok_or(bad)?, frame.get(end..).ok_or(bad)?);
    if mss == 0 || end + mss > usize::from(u16::MAX) {
        return Err(bad);
    }
    let id0 = if v6 {
        0
    } else {
        be16(frame, l3 + 4).ok_or(bad)?
    };
    let seq0 = if tcp {
        be32(frame, l4 + 4).ok_or(bad)?
    } else {
        0
    };
    let flags0 = if tcp {
        *frame.get(l4 + 13).ok_or(bad)?
    } else {
        0
    };
    let addrs = if v6 {
        frame.get(l3 + 8..l3 + 40)
    } else {
        frame.get(l3 + 12..l3 + 20)
    }
    .ok_or(bad)?;
    let proto: u64 = if tcp { 6 } else { 17 };
    let count = payload.len().div_ceil(mss);
    for (i, chunk) in payload.chunks(mss).enumerate() {
        seg.clear();
        seg.extend_from_slice(headers);
        seg.extend_from_slice(chunk);
        let l3_len = u16::try_from(seg.len() - l3).map_err(|_| bad)?;
        let l4_len = u16::try_from(seg.len() - l4).map_err(|_| bad)?;
        if v6 {
            put16(seg, l3 + 4, l3_len - 40)?;
        } else {
            put16(seg, l3 + 2, l3_len)?;
            put16(seg, l3 + 4, id0.wrapping_add(i as u16))?;
            put16(seg, l3 + 10, 0)?;
            let c = !fold(sum(seg.get(l3..l4).ok_or(bad)?, 0));
            put16(seg, l3 + 10, c)?;
        }
        let csum_at = if tcp {
            let mut flags = flags0;
            if i + 1 < count {
                flags &= !(TCP_FIN | TCP_PSH);
            }
            if i > 0 {
                flags &= !TCP_CWR;
            }
            put32(seg, l4 + 4, seq0.wrapping_add((i * mss) as u32))?;
            *seg.get_mut(l4 + 13).ok_or(bad)? = flags;
            l4 + 16
        } else {
            put16(seg, l4 + 4, l4_len)?;
            l4 + 6
        };
        put16(seg, csum_at, 0)?;
        let pseudo = sum(addrs, proto + u64::from(l4_len));
        let mut c = !fold(sum(seg.get(l4..).ok_or(bad)?, pseudo));
        if !tcp && c == 0 {
            c = 0xffff;
        }
        put16(seg, csum_at, c)?;
        emit(seg);
    }
    Ok(count)
}

/// Where the IP header starts: after the Ethernet header and up to two VLAN tags.
pub(super) fn l3_offset(frame: &[u8]) -> Option<usize> {
    let mut at = 12;
    for _ in 0..3 {
        match be16(frame, at)? {
            0x0800 | 0x86dd => return Some(at + 2),
            0x8100 | 0x88a8 | 0x9100 => at += 4,
            _ => return None,
        }
    }
    None
}

/// The ones'-complement sum of `data` (as big-endian 16-bit words) added to `init`, unfolded.
/// Eight bytes a step with the carry added back in: the same sum modulo 0xffff.
pub fn sum(data: &[u8], init: u64) -> u64 {
    let mut words = data.chunks_exact(8);
    let mut s = init;
    for w in &mut words {
        let v = <[u8; 8]>::try_from(w).map_or(0, u64::from_be_bytes);
        let (t, carry) = s.overflowing_add(v);
        s = t + u64::from(carry);
    }
    let mut tail = [0u8; 8];
    for (t, b) in tail.iter_mut().zip(words.remainder()) {
        *t = *b;
    }
    let (t, carry) = s.overflowing_add(u64::from_be_bytes(tail));
    t + u64::from(carry)
}

/// Folds a sum to 16 bits.
pub fn fold(s: u64) -> u16 {
    let mut s = (s >> 32) + (s & 0xffff_ffff);
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

pub(super) fn be16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2)?.try_into().ok().map(u16::from_be_bytes)
}

pub(super) fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)?.try_into().ok().map(u32::from_be_bytes)
}

pub(super) fn put16(b: &mut [u8], at: usize, v: u16) -> Result<(), DropReason> {
    b.get_mut(at..at + 2)
        .ok_or(DropReason::Malformed)?
        .copy_from_slice(&v.to_be_bytes());
    Ok(())
}

fn put32(b: &mut [u8], at: usize, v: u32) -> Result<(), DropReason> {
    b.get_mut(at..at + 4)
        .ok_or(DropReason::Malformed)?
        .copy_from_slice(&v.to_be_bytes());
    Ok(())
}

/// Frames for the offload tests: built plainly, checked with RFC 1071's own algorithm.
#[cfg(test)]
pub(super) mod test_frames {
    #![allow(missing_docs)]
    use super::*;

    /// RFC 1071's checksum, written plainly: the reference the fast one is checked against.
    pub fn naive(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for pair in data.chunks(2) {
            s += u32::from(pair[0]) << 8 | u32::from(pair.get(1).copied().unwrap_or(0));
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    pub fn pseudo(src: &[u8], dst: &[u8], proto: u8, len: usize) -> Vec<u8> {
        let mut p = [src, dst].concat();
        p.extend_from_slice(&[0, proto]);
        p.extend_from_slice(&(len as u16).to_be_bytes());
        p
    }

    pub const ETH: [u8; 12] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];

    /// An Ethernet frame (with `vlan` tags) carrying an IPv4 or IPv6 packet of `proto` with a
    /// 20-byte TCP or 8-byte UDP header and `payload`.
    pub fn frame(v6: bool, tcp: bool, vlan: usize, payload: &[u8]) -> (Vec<u8>, usize, usize) {
        frame_with_flags(v6, tcp, vlan, payload, 0x99)
    }

    /// As [`frame`], with these TCP flags.
    pub fn frame_with_flags(
        v6: bool,
        tcp: bool,
        vlan: usize,
        payload: &[u8],
        flags: u8,
    ) -> (Vec<u8>, usize, usize) {
        let mut f = ETH.to_vec();
        for _ in 0..vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
        }
        f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
        let l3 = f.len();
        let proto = if tcp { 6 } else { 17 };
        let l4_len = if tcp { 20 } else { 8 };
        let total = l4_len + payload.len();
        if v6 {
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(total as u16).to_be_bytes());
            f.extend_from_slice(&[proto, 64]);
            f.extend_from_slice(&[0xfd; 15]);
            f.push(1);
            f.extend_from_slice(&[0xfd; 15]);
            f.push(2);
        } else {
            f.extend_from_slice(&[0x45, 0]);
            f.extend_from_slice(&((total + 20) as u16).to_be_bytes());
            f.extend_from_slice(&[
                0x12, 0x34, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
            ]);
            let c = !naive(&f[l3..]);
            f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        let l4 = f.len();
        f.extend_from_slice(&[0x04, 0xd2, 0x14, 0x51]);
        if tcp {
            // seq 0xfffff000 (wraps), ack 1, data offset 5, flags, window.
            f.extend_from_slice(&[0xff, 0xff, 0xf0, 0x00, 0, 0, 0, 1, 0x50, flags, 0x02, 0x00]);
            f.extend_from_slice(&[0, 0, 0, 0]);
        } else {
            f.extend_from_slice(&(total as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0]);
        }
        f.extend_from_slice(payload);
        // A correct transport checksum, as the sending stack writes it.
        let at = l4 + if tcp { 16 } else { 6 };
        let (src, dst) = addrs(&f, l3, v6);
        let mut whole = pseudo(src, dst, proto, f.len() - l4);
        whole.extend_from_slice(&f[l4..]);
        let c = !naive(&whole);
        f[at..at + 2].copy_from_slice(&c.to_be_bytes());
        (f, l3, l4)
    }

    /// The source and destination addresses of the IP header at `l3`.
    pub fn addrs(f: &[u8], l3: usize, v6: bool) -> (&[u8], &[u8]) {
        if v6 {
            (&f[l3 + 8..l3 + 24], &f[l3 + 24..l3 + 40])
        } else {
            (&f[l3 + 12..l3 + 16], &f[l3 + 16..l3 + 20])
        }
    }

    /// Writes a correct IPv4 header checksum (after a test changed the header).
    pub fn fix_ipv4_checksum(f: &mut [u8], l3: usize) {
        f[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
        let c = !naive(&f[l3..l3 + 20]);
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    }

    pub fn gso_hdr(v6: bool, tcp: bool, l4: usize, mss: u16) -> VnetHdr {
        VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: match (tcp, v6) {
                (false, _) => GSO_UDP_L4,
                (true, false) => GSO_TCPV4,
                (true, true) => GSO_TCPV6,
            },
            hdr_len: 0,
            gso_size: mss,
            csum_start: l4 as u16,
            csum_offset: if tcp { 16 } else { 6 },
        }
    }

    pub fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_frames::*;
    use super::*;
    use proptest::prelude::*;

    fn cut(hdr: &VnetHdr, f: &mut [u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let n = segment(hdr, f, &mut Vec::new(), |s| out.push(s.to_vec())).unwrap();
        assert_eq!(n, out.len());
        out
    }

    /// Checks every segment as the receiving stack would, and returns the payloads joined.
    fn check(segs: &[Vec<u8>], v6: bool, tcp: bool, l3: usize, l4: usize, mss: usize) -> Vec<u8> {
        let hl = if tcp { 20 } else { 8 };
        let mut joined = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let last = i + 1 == segs.len();
            assert!(last || s.len() == l4 + hl + mss, "segment {i} is not full");
            let l4_len = s.len() - l4;
            let (src, dst) = if v6 {
                assert_eq!(
                    &s[l3 + 4..l3 + 6],
                    &((s.len() - l3 - 40) as u16).to_be_bytes()
                );
                (&s[l3 + 8..l3 + 24], &s[l3 + 24..l3 + 40])
            } else {
                assert_eq!(&s[l3 + 2..l3 + 4], &((s.len() - l3) as u16).to_be_bytes());
                assert_eq!(&s[l3 + 4..l3 + 6], &(0x1234u16 + i as u16).to_be_bytes());
                assert_eq!(naive(&s[l3..l4]), 0xffff, "IPv4 header checksum of {i}");
                (&s[l3 + 12..l3 + 16], &s[l3 + 16..l3 + 20])
            };
            let mut whole = pseudo(src, dst, if tcp { 6 } else { 17 }, l4_len);
            whole.extend_from_slice(&s[l4..]);
            assert_eq!(naive(&whole), 0xffff, "transport checksum of segment {i}");
            if tcp {
                let seq = u32::from_be_bytes(s[l4 + 4..l4 + 8].try_into().unwrap());
                assert_eq!(seq, 0xffff_f000u32.wrapping_add((i * mss) as u32));
                let flags = s[l4 + 13];
                assert_eq!(flags & TCP_CWR != 0, i == 0, "CWR only on the first");
                assert_eq!(
                    flags & (TCP_PSH | TCP_FIN) != 0,
                    last,
                    "PSH/FIN only on the last"
                );
                assert_eq!(flags & 0x10, 0x10, "ACK on every segment");
            } else {
                assert_eq!(&s[l4 + 4..l4 + 6], &(l4_len as u16).to_be_bytes());
            }
            joined.extend_from_slice(&s[l4 + hl..]);
        }
        joined
    }

    #[test]
    fn sum_matches_rfc_1071() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        for n in (0..64).chain([1399, 1400, 1448, 9000, 65_535]) {
            let p = payload(n);
            assert_eq!(fold(sum(&p, 0)), naive(&p), "length {n}");
            let ones = vec![0xffu8; n];
            assert_eq!(
                fold(sum(&ones, 0xffff_ffff_ffff)),
                naive(&[ones.clone(), vec![0xff; 6]].concat()),
                "carries, length {n}"
            );
        }
    }

    #[test]
    fn tcp_super_frames_are_cut_like_a_nic_would() {
        for (v6, vlan) in [(false, 0), (true, 0), (false, 1), (true, 2)] {
            let data = payload(5000);
            let (mut f, l3, l4) = frame(v6, true, vlan, &data);
            let segs = cut(&gso_hdr(v6, true, l4, 1448), &mut f);
            assert_eq!(segs.len(), 4, "v6={v6} vlan={vlan}");
            assert_eq!(check(&segs, v6, true, l3, l4, 1448), data);
        }
    }

    #[test]
    fn a_pseudo_header_sum_near_the_top_does_not_overflow() {
        // Found by fuzzing: a pseudo-header sum just below 2^64, plus the length, overflowed.
        for tcp in [true, false] {
            let data = payload(4000);
            let (mut f, l3, l4) = frame(true, tcp, 0, &data);
            f[l3 + 8..l3 + 40].fill(0);
            f[l3 + 8..l3 + 16].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0]);
            let segs = cut(&gso_hdr(true, tcp, l4, 1400), &mut f);
            assert_eq!(check(&segs, true, tcp, l3, l4, 1400), data);
        }
    }

    #[test]
    fn udp_super_frames_become_datagrams() {
        for v6 in [false, true] {
            let data = payload(3000);
            let (mut f, l3, l4) = frame(v6, false, 0, &data);
            let segs = cut(&gso_hdr(v6, false, l4, 1200), &mut f);
            assert_eq!(segs.len(), 3);
            assert_eq!(check(&segs, v6, false, l3, l4, 1200), data);
        }
    }

    #[test]
    fn one_segment_and_partial_checksums_are_completed() {
        // A super-frame that fits in one segment still gets its checksums.
        let data = payload(100);
        let (mut f, l3, l4) = frame(false, true, 0, &data);
        let segs = cut(&gso_hdr(false, true, l4, 1448), &mut f);
        assert_eq!(check(&segs, false, true, l3, l4, 1448), data);
        // No GSO, checksum left partial: the kernel put the pseudo-header sum in the field.
        for tcp in [true, false] {
            let (mut f, l3, l4) = frame(false, tcp, 0, &data);
            let at = l4 + if tcp { 16 } else { 6 };
            let part = fold(sum(
                &pseudo(
                    &f[l3 + 12..l3 + 16],
                    &f[l3 + 16..l3 + 20],
                    if tcp { 6 } else { 17 },
                    f.len() - l4,
                ),
                0,
            ));
            f[at..at + 2].copy_from_slice(&part.to_be_bytes());
            let hdr = VnetHdr {
                gso_type: GSO_NONE,
                ..gso_hdr(false, tcp, l4, 0)
            };
            let segs = cut(&hdr, &mut f);
            assert_eq!(segs.len(), 1);
            check(&segs, false, tcp, l3, l4, 1448);
        }
        // Nothing to do: the frame passes untouched.
        let (mut f, ..) = frame(false, true, 0, &data);
        let copy = f.clone();
        assert_eq!(cut(&VnetHdr::default(), &mut f), vec![copy]);
    }

    #[test]
    fn headers_that_do_not_match_the_frame_are_refused() {
        let (f, _, l4) = frame(false, true, 0, &payload(3000));
        let good = gso_hdr(false, true, l4, 1448);
        let cases = [
            VnetHdr {
                gso_size: 0,
                ..good
            },
            VnetHdr {
                gso_type: GSO_TCPV6,
                ..good
            },
            VnetHdr {
                gso_type: 3,
                ..good
            },
            VnetHdr {
                gso_type: GSO_UDP_L4,
                ..good
            },
        ];
        for h in cases {
            let mut g = f.clone();
            let r = segment(&h, &mut g, &mut Vec::new(), |_| panic!("emitted for {h:?}"));
            assert_eq!(r, Err(DropReason::Malformed), "{h:?}");
        }
        // Where the transport header starts is read from the packet: a header that puts it
        // elsewhere (a forwarded GRO frame may say 0) does not change the cut.
        let mut g = f.clone();
        let mut h = f.clone();
        let odd = VnetHdr {
            csum_start: 0,
            ..good
        };
        assert_eq!(cut(&odd, &mut g), cut(&good, &mut h));
        // Truncated in the headers.
        let mut short = f[..l4 + 10].to_vec();
        assert!(segment(&good, &mut short, &mut Vec::new(), |_| ()).is_err());
    }

    #[test]
    fn header_round_trips() {
        let h = gso_hdr(true, true, 54, 1448);
        assert_eq!(VnetHdr::parse(&h.to_bytes()), Some(h));
        assert_eq!(VnetHdr::parse(&[0; 9]), None);
        assert_eq!(VnetHdr::parse(&PLAIN_HDR), Some(VnetHdr::default()));
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(
            hdr in proptest::collection::vec(any::<u8>(), VNET_HDR_LEN),
            mut f in proptest::collection::vec(any::<u8>(), 0..3000),
            start in 0u16..120,
            mss in 0u16..1600,
            kind in 0usize..4,
        ) {
            let mut h = VnetHdr::parse(&hdr).unwrap();
            // Steer half the cases past the first checks into the cutting code.
            if kind > 0 {
                h.gso_type = [GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4][kind - 1];
                h.csum_start = start;
                h.gso_size = mss;
                if f.len() > 14 {
                    f[12] = if kind == 2 { 0x86 } else { 0x08 };
                    f[13] = if kind == 2 { 0xdd } else { 0x00 };
                }
            }
            let mut n = 0;
            let r = segment(&h, &mut f, &mut Vec::new(), |s| {
                n += 1;
                assert!(s.len() <= usize::from(u16::MAX) + 64);
            });
            if let Ok(count) = r {
                prop_assert_eq!(count, n);
            }
        }
    }
}
