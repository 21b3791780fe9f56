//! Component benchmarks in this process: wire codec, the data crypto pipeline, and UDP on
//! loopback (one datagram per syscall, and batched with GSO/GRO and recvmmsg).

use crate::report::{Better, Report};
use n2n_protocol::crypto::aead::SessionKey;
use n2n_protocol::crypto::pipeline::Pipeline;
use n2n_protocol::types::{Candidate, CandidateKind, Mac};
use n2n_protocol::wire::data::{DataHeader, DataPacket, HEADER_LEN};
use n2n_protocol::wire::messages::{KeyAnnounce, PeerInfo};
use n2n_protocol::wire::peer::PeerMessage;
use n2n_protocol::wire::sealed::{SealedHeader, SealedMessage};
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long each component measurement runs.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Per micro benchmark (codec, crypto).
    pub micro: Duration,
    /// Per UDP run.
    pub udp: Duration,
}

/// Runs the codec and crypto benchmarks.
pub fn codec_and_crypto(report: &mut Report, budget: Budget, progress: &crate::progress::Steps) {
    codec(report, budget.micro, progress);
    crypto(report, budget.micro, progress);
}

/// Calls `f` in batches until `budget` has passed; returns nanoseconds per call.
pub fn ns_per_op(budget: Duration, mut f: impl FnMut()) -> f64 {
    // Warm caches and the branch predictor first.
    for _ in 0..64 {
        f();
    }
    let start = Instant::now();
    let mut n: u64 = 0;
    let mut batch: u64 = 16;
    while start.elapsed() < budget {
        for _ in 0..batch {
            f();
        }
        n += batch;
        batch = (batch * 2).min(1 << 16);
    }
    start.elapsed().as_nanos() as f64 / n.max(1) as f64
}

fn sample_peer(i: u32) -> PeerInfo {
    PeerInfo {
        id: i,
        mac: Mac([2, 0, 0, 0, 0, i as u8]),
        ip: Ipv4Addr::new(10, 128, 0, i as u8),
        desc: format!("host-{i}.example"),
        observed: Some(SocketAddr::from(([203, 0, 113, 7], 40000))),
        candidates: vec![Candidate {
            kind: CandidateKind::Lan,
            addr: SocketAddr::from(([192, 168, 1, 20], 50000)),
        }],
        key: KeyAnnounce {
            identity: [5; 32],
            public: [7; 32],
            epoch: 3,
            boot: 1_700_000_000,
            signature: [8; 64],
            tag: [9; 16],
        },
    }
}

fn codec(report: &mut Report, budget: Duration, progress: &crate::progress::Steps) {
    let header = DataHeader {
        flags: 0,
        dst: 2,
        src: 1,
        counter: 123_456,
    };
    let mut packet = [0u8; HEADER_LEN + 16];
    let mut hdr = [0u8; HEADER_LEN];
    let enc = ns_per_op(budget, || {
        black_box(&header).emit(&mut hdr);
        black_box(&hdr);
    });
    header.emit(&mut hdr);
    packet[..HEADER_LEN].copy_from_slice(&hdr);
    let dec = ns_per_op(budget, || {
        if let Ok(p) = DataPacket::new_checked(black_box(&packet[..])) {
            black_box(DataHeader::parse(&p));
        }
    });
    report.add("codec", "data header", "encode", "ns", enc, Better::Lower);
    report.add("codec", "data header", "decode", "ns", dec, Better::Lower);
    progress.tick();

    let probe = PeerMessage::Probe {
        probe_id: 42,
        sent_to: SocketAddr::from(([198, 51, 100, 1], 7777)),
    };
    message_pair(
        report,
        budget,
        "peer probe",
        |out| probe.emit(out),
        |b| PeerMessage::parse(b).is_ok(),
    );
    let list = SealedMessage::PeerList {
        first: true,
        last: true,
        peers: (1..=8).map(sample_peer).collect(),
    };
    let kind = list.kind();
    message_pair(
        report,
        budget,
        "peer list (8 peers)",
        |out| list.emit(out),
        |b| SealedMessage::parse(kind, b).is_ok(),
    );
    let sh = SealedHeader {
        kind,
        edge_id: 9,
        counter: 77,
    };
    let bytes = sh.emit();
    let dec = ns_per_op(budget, || {
        black_box(SealedHeader::parse(black_box(&bytes[..])).is_ok());
    });
    report.add("codec", "sealed header", "decode", "ns", dec, Better::Lower);
    progress.tick();
}

fn message_pair(
    report: &mut Report,
    budget: Duration,
    name: &str,
    emit: impl Fn(&mut Vec<u8>),
    parse: impl Fn(&[u8]) -> bool,
) {
    let mut out = Vec::with_capacity(2048);
    let enc = ns_per_op(budget, || {
        out.clear();
        emit(&mut out);
        black_box(&out);
    });
    out.clear();
    emit(&mut out);
    assert!(parse(&out), "{name} must parse what it emits");
    let dec = ns_per_op(budget, || {
        black_box(parse(black_box(&out)));
    });
    report.add("codec", name, "encode", "ns", enc, Better::Lower);
    report.add("codec", name, "decode", "ns", dec, Better::Lower);
}

/// An Ethernet frame of `len` bytes: incompressible (random) or typical text-like traffic.
pub fn sample_frame(len: usize, compressible: bool) -> Vec<u8> {
    let mut f = vec![0u8; len];
    if compressible {
        let text = b"GET /index.html HTTP/1.1\r\nHost: files.example.lan\r\nAccept: text/html\r\n<p>hello world</p> ";
        for (i, b) in f.iter_mut().enumerate() {
            *b = text.get(i % text.len()).copied().unwrap_or(0);
        }
    } else {
        // splitmix64: incompressible, and the same bytes every run.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for b in f.iter_mut() {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            *b = (z ^ (z >> 31)) as u8;
        }
    }
    f
}

/// One full pair handshake (both sides: initiation, reply, finish), as two edges run it.
fn handshake(report: &mut Report, budget: Duration) {
    use n2n_protocol::crypto::handshake::{Initiator, Params, Responder, public_key};
    let (a, b, psk) = ([1u8; 32], [2u8; 32], [9u8; 32]);
    let (pa, pb) = (public_key(&a), public_key(&b));
    let mut seed = 0u8;
    let ns = ns_per_op(budget, || {
        seed = seed.wrapping_add(1);
        let p = |me, peer, seed| Params {
            my_static: me,
            peer_static: peer,
            psk: &psk,
            prologue: b"bench",
            seed: [seed; 32],
        };
        let ok = Initiator::start(&p(&a, &pb, seed), &[0; 12])
            .ok()
            .and_then(|(mut i, m1)| {
                let (r, _) = Responder::read(&p(&b, &pa, !seed), &m1).ok()?;
                let (m2, _) = r.reply(&[0; 12]).ok()?;
                i.finish(&m2).ok()
            });
        black_box(ok.is_some());
    });
    report.add(
        "crypto",
        "pair handshake (both sides)",
        "per handshake",
        "µs",
        ns / 1e3,
        Better::Lower,
    );
    report.add(
        "crypto",
        "pair handshake (both sides)",
        "rate on one core",
        "handshakes/s",
        1e9 / ns,
        Better::Higher,
    );
}

fn crypto(report: &mut Report, budget: Duration, progress: &crate::progress::Steps) {
    handshake(report, budget);
    let key = SessionKey::new(&[0x5a; 32]);
    for compress in [false, true] {
        for size in [64usize, 512, 1400] {
            let frame = sample_frame(size, compress);
            let pipeline = Pipeline { compress };
            let (mut out, mut scratch) = (Vec::with_capacity(2048), Vec::with_capacity(2048));
            let mut counter = 0u64;
            let mut header = DataHeader {
                flags: 0,
                dst: 2,
                src: 1,
                counter: 0,
            };
            let seal = ns_per_op(budget, || {
                counter += 1;
                header.counter = counter;
                pipeline.seal(&key, header, black_box(&frame), &mut out, &mut scratch);
                black_box(&out);
            });
            pipeline.seal(&key, header, &frame, &mut out, &mut scratch);
            let sealed_hdr = match DataPacket::new_checked(&out[..]) {
                Ok(p) => DataHeader::parse(&p),
                Err(_) => continue,
            };
            let mut buf = out.clone();
            let mut scratch2 = Vec::with_capacity(2048);
            let open = ns_per_op(budget, || {
                buf.copy_from_slice(&out);
                let ok = Pipeline::open(&key, &sealed_hdr, &mut buf, &mut scratch2).is_ok();
                black_box(ok);
            });
            let name = |op: &str| format!("{op} {size} B{}", if compress { " zstd" } else { "" });
            for (op, ns) in [("seal", seal), ("open", open)] {
                report.add("crypto", &name(op), "per packet", "ns", ns, Better::Lower);
                report.add(
                    "crypto",
                    &name(op),
                    "throughput",
                    "GB/s",
                    size as f64 / ns,
                    Better::Higher,
                );
            }
            progress.tick();
        }
    }
}

/// Measures UDP over loopback, 1400-byte datagrams: one per syscall, then batched.
pub fn udp(
    report: &mut Report,
    budget: Duration,
    progress: &crate::progress::Steps,
) -> anyhow::Result<()> {
    let (sent, got) = udp_run(budget, false)?;
    report.add(
        "udp",
        "loopback 1400 B",
        "sent, 1 per syscall",
        "kpps",
        sent / 1e3,
        Better::Higher,
    );
    report.add(
        "udp",
        "loopback 1400 B",
        "received, 1 per syscall",
        "kpps",
        got / 1e3,
        Better::Higher,
    );
    progress.tick();
    let (sent, got) = udp_run(budget, true)?;
    report.add(
        "udp",
        "loopback 1400 B",
        "sent, GSO batches",
        "kpps",
        sent / 1e3,
        Better::Higher,
    );
    report.add(
        "udp",
        "loopback 1400 B",
        "received, GRO+recvmmsg",
        "kpps",
        got / 1e3,
        Better::Higher,
    );
    progress.tick();
    Ok(())
}

const DATAGRAM: usize = 1400;

fn udp_pair() -> anyhow::Result<(UdpSocket, UdpSocket)> {
    let rx = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    rx.set_recv_buffer_size(8 << 20)?;
    rx.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    let rx: UdpSocket = rx.into();
    rx.set_read_timeout(Some(Duration::from_millis(100)))?;
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    tx.connect(rx.local_addr()?)?;
    Ok((tx, rx))
}

/// Returns (sent, received) datagrams per second.
fn udp_run(budget: Duration, batched: bool) -> anyhow::Result<(f64, f64)> {
    let (tx, rx) = udp_pair()?;
    let dst = rx.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let receiver = {
        let (stop, received) = (stop.clone(), received.clone());
        std::thread::spawn(move || -> anyhow::Result<()> {
            if batched {
                recv_batched(&rx, &stop, &received)
            } else {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if rx.recv(&mut buf).is_ok() {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            }
        })
    };
    let payload = vec![0xabu8; DATAGRAM * 64];
    let start = Instant::now();
    let mut sent = 0u64;
    let got_before = received.load(Ordering::Relaxed);
    if batched {
        let state = quinn_udp::UdpSocketState::new((&tx).into())?;
        // One GSO send carries at most 64 KiB of payload.
        let segments = state.max_gso_segments().clamp(1, 65_000 / DATAGRAM);
        let contents = payload.get(..DATAGRAM * segments).unwrap_or(&payload);
        while start.elapsed() < budget {
            let t = quinn_udp::Transmit {
                destination: dst,
                ecn: None,
                contents,
                segment_size: (segments > 1).then_some(DATAGRAM),
                src_ip: None,
            };
            match state.try_send((&tx).into(), &t) {
                Ok(()) => sent += segments as u64,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => return Err(e.into()),
            }
        }
    } else {
        let one = payload.get(..DATAGRAM).unwrap_or(&payload);
        while start.elapsed() < budget {
            if tx.send(one).is_ok() {
                sent += 1;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let got = received.load(Ordering::Relaxed) - got_before;
    stop.store(true, Ordering::Relaxed);
    receiver
        .join()
        .map_err(|_| anyhow::anyhow!("UDP receiver thread panicked"))??;
    Ok((sent as f64 / secs, got as f64 / secs))
}

fn recv_batched(rx: &UdpSocket, stop: &AtomicBool, received: &AtomicU64) -> anyhow::Result<()> {
    let state = quinn_udp::UdpSocketState::new(rx.into())?;
    let gro = state.gro_segments().max(1);
    let mut storage = vec![vec![0u8; 2048 * gro]; quinn_udp::BATCH_SIZE];
    let mut meta = vec![quinn_udp::RecvMeta::default(); quinn_udp::BATCH_SIZE];
    while !stop.load(Ordering::Relaxed) {
        let mut bufs: Vec<std::io::IoSliceMut<'_>> = storage
            .iter_mut()
            .map(|b| std::io::IoSliceMut::new(b))
            .collect();
        match state.recv(rx.into(), &mut bufs, &mut meta) {
            Ok(n) => {
                let datagrams: usize = meta
                    .iter()
                    .take(n)
                    .map(|m| m.len.div_ceil(m.stride.max(1)))
                    .sum();
                received.fetch_add(datagrams as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
