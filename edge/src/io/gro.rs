//! Receive-side coalescing, what GRO does for a NIC: consecutive TCP segments of one flow that
//! arrive in one receive batch are joined into one super-frame, written to the TAP device with
//! a virtio-net header that tells the kernel how to cut it again, so the receiving stack
//! handles one packet where it had forty. Every other frame is written as it came.

use super::offload::{
    F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, PLAIN_HDR, TCP_ACK, TCP_PSH, VNET_HDR_LEN, VnetHdr, be16,
    be32, fold, l3_offset, put16, sum,
};

/// Largest IP packet a super-frame may carry.
const MAX_IP_LEN: usize = 65_535;

/// Joins TCP segments of one flow; hands every frame it cannot join to the writer at once.
#[derive(Default)]
pub struct Coalescer {
    /// The super-frame being built: the first segment, then the others' payloads.
    buf: Vec<u8>,
    flow: Option<Flow>,
}

/// Where the headers of the segment that started a super-frame are, and what may come next.
#[derive(Clone, Copy)]
struct Flow {
    l3: usize,
    l4: usize,
    end: usize,
    v6: bool,
    mss: usize,
    next_seq: u32,
    segments: usize,
    /// The last segment carried PSH.
    psh: bool,
    /// Nothing more may join (a short or PSH segment came).
    closed: bool,
}

impl Coalescer {
    /// Adds one frame; `write` gets (virtio-net header, frame) for everything finished.
    pub fn push(&mut self, frame: &[u8], write: &mut impl FnMut(&[u8; VNET_HDR_LEN], &[u8])) {
        if let Some(flow) = self.flow {
            if let Some(next) = self.joins(&flow, frame) {
                self.buf
                    .extend_from_slice(frame.get(flow.end..).unwrap_or_default());
                self.flow = Some(next);
                return;
            }
            self.flush(write);
        }
        match segment_layout(frame) {
            Some(flow) => {
                self.buf.clear();
                self.buf.extend_from_slice(frame);
                self.flow = Some(flow);
            }
            None => write(&PLAIN_HDR, frame),
        }
    }

    /// Writes the super-frame being built, if any.
    pub fn flush(&mut self, write: &mut impl FnMut(&[u8; VNET_HDR_LEN], &[u8])) {
        let Some(flow) = self.flow.take() else {
            return;
        };
        if flow.segments == 1 {
            write(&PLAIN_HDR, &self.buf);
            return;
        }
        match finish(&mut self.buf, &flow) {
            Some(hdr) => write(&hdr.to_bytes(), &self.buf),
            // Cannot happen for a flow built here; written as one frame rather than lost.
            None => write(&PLAIN_HDR, &self.buf),
        }
    }

    /// The flow state after `frame` joins the super-frame, if it can.
    fn joins(&self, flow: &Flow, frame: &[u8]) -> Option<Flow> {
        let first = self.buf.as_slice();
        let (l3, l4, end) = (flow.l3, flow.l4, flow.end);
        if flow.closed || frame.len() <= end || frame.len() - end > flow.mss {
            return None;
        }
        let payload = frame.len() - end;
        if self.buf.len() + payload - l3 > MAX_IP_LEN {
            return None;
        }
        let same =
            |a: usize, b: usize| frame.get(a..b).is_some() && frame.get(a..b) == first.get(a..b);
        // Ethernet header; IP fields but lengths, id and checksum; TCP ports, ack, offset,
        // window, urgent pointer and options. The sequence number must follow on.
        let ip_same = if flow.v6 {
            same(l3, l3 + 4) && same(l3 + 6, l3 + 40)
        } else {
            same(l3, l3 + 2) && same(l3 + 6, l3 + 10) && same(l3 + 12, l3 + 20)
        };
        let tcp_same = same(l4, l4 + 4) && same(l4 + 8, l4 + 13) && same(l4 + 14, l4 + 16);
        if !(same(0, l3) && ip_same && tcp_same && same(l4 + 18, end)) {
            return None;
        }
        if segment_layout(frame).is_none() || be32(frame, l4 + 4)? != flow.next_seq {
            return None;
        }
        // Without DF, the ids must rise by one, as the kernel writes them when it cuts again.
        let df = !flow.v6 && be16(first, l3 + 6)? & 0x4000 != 0;
        if !flow.v6 && !df {
            let id0 = be16(first, l3 + 4)?;
            if be16(frame, l3 + 4)? != id0.wrapping_add(flow.segments as u16) {
                return None;
            }
        }
        let psh = *frame.get(l4 + 13)? & TCP_PSH != 0;
        Some(Flow {
            next_seq: flow.next_seq.wrapping_add(payload as u32),
            segments: flow.segments + 1,
            psh,
            closed: payload < flow.mss || psh,
            ..*flow
        })
    }
}

/// The layout of a frame that may start or join a super-frame: an untagged or tagged IPv4
/// (no options, not a fragment) or IPv6 (no extension headers) TCP segment with payload,
/// only ACK or ACK|PSH set, whose IP length accounts for the whole frame (no padding), and
/// whose checksums are right: the super-frame goes up marked as checked, so a bad segment
/// must stay out of it (and is written as it came, for the kernel to drop).
fn segment_layout(frame: &[u8]) -> Option<Flow> {
    let l3 = l3_offset(frame)?;
    let v6 = frame.get(l3)? >> 4 == 6;
    let (l4, ip_end) = if v6 {
        if *frame.get(l3 + 6)? != 6 {
            return None;
        }
        (l3 + 40, l3 + 40 + usize::from(be16(frame, l3 + 4)?))
    } else {
        let frag = be16(frame, l3 + 6)?;
        if *frame.get(l3)? != 0x45 || frag & 0x3fff != 0 || *frame.get(l3 + 9)? != 6 {
            return None;
        }
        (l3 + 20, l3 + usize::from(be16(frame, l3 + 2)?))
    };
    let end = l4 + usize::from(frame.get(l4 + 12)? >> 4) * 4;
    let flags = *frame.get(l4 + 13)?;
    if ip_end != frame.len() || end < l4 + 20 || frame.len() <= end {
        return None;
    }
    if flags != TCP_ACK && flags != TCP_ACK | TCP_PSH {
        return None;
    }
    let addrs = if v6 {
        frame.get(l3 + 8..l3 + 40)?
    } else {
        if fold(sum(frame.get(l3..l4)?, 0)) != 0xffff {
            return None;
        }
        frame.get(l3 + 12..l3 + 20)?
    };
    let pseudo = sum(addrs, 6 + (frame.len() - l4) as u64);
    if fold(sum(frame.get(l4..)?, pseudo)) != 0xffff {
        return None;
    }
    let payload = frame.len() - end;
    Some(Flow {
        l3,
        l4,
        end,
        v6,
        mss: payload,
        next_seq: be32(frame, l4 + 4)?.wrapping_add(payload as u32),
        segments: 1,
        psh: flags & TCP_PSH != 0,
        closed: flags & TCP_PSH != 0,
    })
}

/// Turns the joined segments in `buf` into a super-frame the kernel can take: IP length (and
/// IPv4 header checksum), PSH from the last segment, and a partial TCP checksum holding the
/// pseudo-header sum, as a sender with checksum offload leaves it.
fn finish(buf: &mut [u8], flow: &Flow) -> Option<VnetHdr> {
    let (l3, l4) = (flow.l3, flow.l4);
    let l4_len = buf.len() - l4;
    if flow.v6 {
        put16(buf, l3 + 4, u16::try_from(buf.len() - l3 - 40).ok()?).ok()?;
    } else {
        put16(buf, l3 + 2, u16::try_from(buf.len() - l3).ok()?).ok()?;
        put16(buf, l3 + 10, 0).ok()?;
        let c = !fold(sum(buf.get(l3..l4)?, 0));
        put16(buf, l3 + 10, c).ok()?;
    }
    if flow.psh {
        *buf.get_mut(l4 + 13)? |= TCP_PSH;
    }
    let addrs = if flow.v6 {
        buf.get(l3 + 8..l3 + 40)?
    } else {
        buf.get(l3 + 12..l3 + 20)?
    };
    let pseudo = fold(sum(addrs, 6 + l4_len as u64));
    put16(buf, l4 + 16, pseudo).ok()?;
    Some(VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: if flow.v6 { GSO_TCPV6 } else { GSO_TCPV4 },
        hdr_len: u16::try_from(flow.end).ok()?,
        gso_size: u16::try_from(flow.mss).ok()?,
        csum_start: u16::try_from(l4).ok()?,
        csum_offset: 16,
    })
}

#[cfg(test)]
mod tests {
    use super::super::offload::test_frames::*;
    use super::super::offload::{VnetHdr, segment};
    use super::*;

    /// What a coalescer wrote: (header, frame) pairs.
    fn run(frames: &[Vec<u8>]) -> Vec<(VnetHdr, Vec<u8>)> {
        let mut out = Vec::new();
        let mut c = Coalescer::default();
        let mut write = |h: &[u8; VNET_HDR_LEN], f: &[u8]| {
            out.push((VnetHdr::parse(h).unwrap(), f.to_vec()));
        };
        for f in frames {
            c.push(f, &mut write);
        }
        c.flush(&mut write);
        out
    }

    /// Segments of a TCP super-frame carrying `n` payload bytes (ACK, PSH on the last).
    fn segments(v6: bool, vlan: usize, n: usize, mss: u16) -> Vec<Vec<u8>> {
        let (mut f, _, l4) = frame_with_flags(v6, true, vlan, &payload(n), 0x18);
        let mut segs = Vec::new();
        segment(&gso_hdr(v6, true, l4, mss), &mut f, &mut Vec::new(), |s| {
            segs.push(s.to_vec())
        })
        .unwrap();
        segs
    }

    fn cut(h: &VnetHdr, f: &[u8]) -> Vec<Vec<u8>> {
        let mut f = f.to_vec();
        let mut segs = Vec::new();
        segment(h, &mut f, &mut Vec::new(), |s| segs.push(s.to_vec())).unwrap();
        segs
    }

    #[test]
    fn a_run_of_segments_becomes_one_super_frame_the_kernel_cuts_back_into_them() {
        for (v6, vlan) in [(false, 0), (true, 0), (false, 1)] {
            let segs = segments(v6, vlan, 20_000, 1448);
            assert_eq!(segs.len(), 14);
            let out = run(&segs);
            assert_eq!(out.len(), 1, "v6={v6} vlan={vlan}");
            let (h, sup) = &out[0];
            assert_eq!(h.gso_type, if v6 { 4 } else { 1 });
            assert_eq!((h.gso_size, h.flags, h.csum_offset), (1448, 1, 16));
            let l4 = usize::from(h.csum_start);
            // IP length covers the whole super-frame; the TCP checksum field holds the
            // pseudo-header sum over the whole segment, as checksum offload expects.
            let l3 = l4 - if v6 { 40 } else { 20 };
            let (src, dst) = if v6 {
                (&sup[l3 + 8..l3 + 24], &sup[l3 + 24..l3 + 40])
            } else {
                (&sup[l3 + 12..l3 + 16], &sup[l3 + 16..l3 + 20])
            };
            let partial = u16::from_be_bytes([sup[l4 + 16], sup[l4 + 17]]);
            assert_eq!(partial, naive(&pseudo(src, dst, 6, sup.len() - l4)));
            if !v6 {
                assert_eq!(
                    usize::from(u16::from_be_bytes([sup[l3 + 2], sup[l3 + 3]])),
                    sup.len() - l3
                );
                assert_eq!(naive(&sup[l3..l4]), 0xffff);
            }
            // Cut again the way the kernel would, it gives back exactly what came in.
            assert_eq!(cut(h, sup), segs);
        }
    }

    #[test]
    fn only_what_may_join_joins_and_order_is_kept() {
        let segs = segments(false, 0, 6000, 1000);
        let other = segments(true, 0, 3000, 1000);
        let arp = {
            let mut f = ETH.to_vec();
            f.extend_from_slice(&[0x08, 0x06]);
            f.extend_from_slice(&[0u8; 28]);
            f
        };
        // Another flow in between ends the run; a non-TCP frame passes untouched.
        let frames = vec![
            segs[0].clone(),
            segs[1].clone(),
            other[0].clone(),
            arp.clone(),
            segs[2].clone(),
            segs[3].clone(),
        ];
        let out = run(&frames);
        let kinds: Vec<(u8, usize)> = out.iter().map(|(h, f)| (h.gso_type, f.len())).collect();
        assert_eq!(kinds.len(), 4, "{kinds:?}");
        assert_eq!(out[1], (VnetHdr::default(), other[0].clone()));
        assert_eq!(out[2], (VnetHdr::default(), arp));
        assert_eq!(cut(&out[0].0, &out[0].1), segs[..2].to_vec());
        assert_eq!(cut(&out[3].0, &out[3].1), segs[2..4].to_vec());

        // A gap in the sequence, or a segment out of order, starts a new super-frame.
        let out = run(&[segs[0].clone(), segs[2].clone(), segs[1].clone()]);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|(h, _)| *h == VnetHdr::default()));

        // PSH ends a super-frame: what follows starts a new one.
        let more = segments(false, 0, 2000, 1000);
        let mut later = more[0].clone();
        // Same flow, following on: the sequence of the segment after segs' last.
        let l4 = 34;
        let next = u32::from_be_bytes(segs[5][l4 + 4..l4 + 8].try_into().unwrap())
            .wrapping_add((segs[5].len() - l4 - 20) as u32);
        later[l4 + 4..l4 + 8].copy_from_slice(&next.to_be_bytes());
        let out = run(&[segs[4].clone(), segs[5].clone(), later]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0.gso_type, 1);
        assert_eq!(
            out[0].1[l4 + 13] & TCP_PSH,
            TCP_PSH,
            "PSH kept on the super-frame"
        );
    }

    #[test]
    fn padded_short_frames_and_fragments_are_written_as_they_are() {
        // A 1-byte segment padded to the Ethernet minimum: the padding is not payload.
        let (mut f, l3, _) = frame_with_flags(false, true, 0, &[7], 0x10);
        f.resize(60, 0);
        let (mut g, ..) = frame_with_flags(false, true, 0, &[8], 0x10);
        g.resize(60, 0);
        assert!(
            run(&[f.clone(), g])
                .iter()
                .all(|(h, _)| *h == VnetHdr::default())
        );
        // An IPv4 fragment.
        let (mut frag, ..) = frame_with_flags(false, true, 0, &payload(100), 0x10);
        frag[l3 + 6] = 0x20;
        fix_ipv4_checksum(&mut frag, l3);
        let out = run(&[frag.clone(), frag.clone()]);
        assert_eq!(
            out,
            vec![
                (VnetHdr::default(), frag.clone()),
                (VnetHdr::default(), frag)
            ]
        );
    }

    #[test]
    fn segments_with_bad_checksums_stay_out() {
        let segs = segments(false, 0, 4000, 1000);
        let mut bad = segs[1].clone();
        *bad.last_mut().unwrap() ^= 1;
        let mut bad_ip = segs[2].clone();
        bad_ip[14 + 8] ^= 1; // TTL: the IPv4 header checksum no longer holds
        let out = run(&[
            segs[0].clone(),
            bad.clone(),
            bad_ip.clone(),
            segs[3].clone(),
        ]);
        let plain = VnetHdr::default();
        assert_eq!(
            out,
            vec![
                (plain, segs[0].clone()),
                (plain, bad),
                (plain, bad_ip),
                (plain, segs[3].clone())
            ]
        );
    }

    #[test]
    fn without_df_ids_must_rise_by_one() {
        let l3 = 14;
        let mut segs = segments(false, 0, 3000, 1000);
        for s in &mut segs {
            s[l3 + 6] &= !0x40;
            fix_ipv4_checksum(s, l3);
        }
        // The ids the kernel wrote rise by one: they join.
        assert_eq!(run(&segs).len(), 1);
        // A repeated id does not (and the third then does not follow the second either).
        let mut fixed = segs.clone();
        fixed[1][l3 + 4..l3 + 6].copy_from_slice(&segs[0][l3 + 4..l3 + 6]);
        fix_ipv4_checksum(&mut fixed[1], l3);
        let out = run(&fixed);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|(h, _)| *h == VnetHdr::default()));
    }

    proptest::proptest! {
        /// Whatever frames arrive (valid segments with random bytes changed, or noise), every
        /// one is written exactly once: cutting the output gives back as many frames and bytes.
        #[test]
        fn nothing_is_lost_or_invented(
            picks in proptest::collection::vec(0usize..14, 0..24),
            flips in proptest::collection::vec((0usize..24, 0usize..1600, proptest::prelude::any::<u8>()), 0..6),
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let segs = segments(false, 0, 20_000, 1448);
            let mut frames: Vec<Vec<u8>> = picks.iter().map(|&i| segs[i].clone()).collect();
            for (f, at, b) in flips {
                if let Some(frame) = frames.get_mut(f) {
                    let at = at % frame.len();
                    frame[at] ^= b;
                }
            }
            frames.push(noise);
            let out = run(&frames);
            let (mut count, mut bytes) = (0, 0);
            for (h, f) in &out {
                let pieces = if *h == VnetHdr::default() { vec![f.clone()] } else { cut(h, f) };
                count += pieces.len();
                bytes += pieces.iter().map(Vec::len).sum::<usize>();
            }
            proptest::prop_assert_eq!(count, frames.len());
            proptest::prop_assert_eq!(bytes, frames.iter().map(Vec::len).sum::<usize>());
        }
    }
}
