//! Which TAP queue a frame is written to. The kernel sends a flow's next frames to the queue
//! that last wrote one of its frames (the tun driver's flow table), so writing each flow to
//! a queue chosen by its addresses and ports spreads the flows, and with them the reading,
//! sealing and sending, over the packet workers, one flow always on one worker (in order).

/// The queue of `frame` (an Ethernet frame) among `queues`: from the IPv4 or IPv6 addresses
/// and, for TCP and UDP (not fragments), the ports, the same for both directions of a flow;
/// from the MAC addresses for anything else.
pub fn queue_of(frame: &[u8], queues: usize) -> usize {
    if queues <= 1 {
        return 0;
    }
    let h = mix(flow_key(frame));
    // The top 32 bits scaled to the range (no division, no bias worth a thought).
    (((h >> 32) * queues as u64) >> 32) as usize
}

fn flow_key(frame: &[u8]) -> u64 {
    let ethertype = be16(frame, 12);
    let ip = frame.get(14..).unwrap_or_default();
    let key = match ethertype {
        Some(0x0800) => ipv4_key(ip),
        Some(0x86DD) => ipv6_key(ip),
        _ => None,
    };
    key.unwrap_or_else(|| {
        let macs = frame.get(..12).unwrap_or_default();
        let (dst, src) = macs.split_at(macs.len().min(6));
        symmetric(fold(dst), fold(src))
    })
}

fn ipv4_key(ip: &[u8]) -> Option<u64> {
    let ihl = usize::from(ip.first()? & 0x0F) * 4;
    let proto = *ip.get(9)?;
    let src = fold(ip.get(12..16)?);
    let dst = fold(ip.get(16..20)?);
    let frag = be16(ip, 6)?;
    // More fragments or an offset: the ports are only in the first fragment.
    let whole = frag & 0x3FFF == 0;
    Some(ports_key(
        src,
        dst,
        proto,
        whole.then(|| ip.get(ihl..ihl + 4)).flatten(),
    ))
}

fn ipv6_key(ip: &[u8]) -> Option<u64> {
    let next = *ip.get(6)?;
    let src = fold(ip.get(8..24)?);
    let dst = fold(ip.get(24..40)?);
    Some(ports_key(src, dst, next, ip.get(40..44)))
}

fn ports_key(src: u64, dst: u64, proto: u8, ports: Option<&[u8]>) -> u64 {
    let ports = match (proto, ports) {
        (6 | 17, Some(p)) => be16(p, 0).zip(be16(p, 2)),
        _ => None,
    };
    let ports = ports.map(|(s, d)| (u64::from(s), u64::from(d)));
    let (a, b) = match ports {
        Some((sp, dp)) => (src ^ (sp << 48), dst ^ (dp << 48)),
        None => (src, dst),
    };
    symmetric(a, b) ^ u64::from(proto)
}

/// MurmurHash3's 64-bit finaliser: every input bit reaches every output bit.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The same value for `(a, b)` and `(b, a)`.
fn symmetric(a: u64, b: u64) -> u64 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    lo.rotate_left(21) ^ hi
}

fn fold(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x1000_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[14 + 9] = 6;
        f[14 + 12..14 + 16].copy_from_slice(&src);
        f[14 + 16..14 + 20].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn both_directions_of_a_flow_share_a_queue_and_flows_spread() {
        let mut used = [0usize; 4];
        for port in 5201..5265 {
            let there = tcp4([10, 0, 0, 1], 40000, [10, 0, 0, 2], port);
            let back = tcp4([10, 0, 0, 2], port, [10, 0, 0, 1], 40000);
            let q = queue_of(&there, 4);
            assert_eq!(q, queue_of(&back, 4));
            used[q] += 1;
        }
        assert!(
            used.iter().all(|n| *n >= 4),
            "64 flows over 4 queues: {used:?}"
        );
    }

    #[test]
    fn one_queue_short_frames_and_fragments_are_safe() {
        let f = tcp4([10, 0, 0, 1], 1, [10, 0, 0, 2], 2);
        assert_eq!(queue_of(&f, 1), 0);
        for n in 0..f.len() {
            assert!(queue_of(&f[..n], 3) < 3);
        }
        // Fragments of one datagram agree (the later ones carry no ports).
        let mut first = tcp4([10, 0, 0, 1], 1, [10, 0, 0, 2], 2);
        first[14 + 9] = 17;
        first[14 + 6] = 0x20; // more fragments
        let mut later = first.clone();
        later[14 + 6] = 0x00;
        later[14 + 7] = 0xB9; // offset 185, no more fragments
        later[34..38].copy_from_slice(&[0xAA; 4]); // payload, not ports
        assert_eq!(queue_of(&first, 8), queue_of(&later, 8));
    }
}
