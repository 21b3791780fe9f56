//! The supernode's UDP socket with batched I/O: receives up to a batch of datagrams per
//! system call (recvmmsg, and UDP GRO where the kernel coalesces), and sends runs of
//! equal-sized datagrams to one destination (a relayed burst) as one GSO send.

use n2n_protocol::types::Transmit;
use std::collections::HashMap;
use std::io::{ErrorKind, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Largest payload of one GSO send.
const MAX_GSO_BYTES: usize = 65_000;
/// Peers whose reply address is remembered (beyond it the memory starts over: spoofed
/// sources must not grow it).
const MAX_REPLY_FROM: usize = 262_144;

/// A UDP socket plus the state of its batched I/O.
pub struct BatchSocket {
    socket: UdpSocket,
    state: quinn_udp::UdpSocketState,
    bufs: Vec<Vec<u8>>,
    meta: Vec<quinn_udp::RecvMeta>,
    gso: Vec<u8>,
    /// The local address each peer wrote to: answers leave from it (a host with several
    /// addresses would otherwise answer from whichever the kernel picks, and edges accept
    /// answers only from the address they asked).
    reply_from: HashMap<SocketAddr, IpAddr>,
}

impl BatchSocket {
    /// Wraps a bound socket.
    pub fn new(socket: UdpSocket) -> std::io::Result<Self> {
        let state = quinn_udp::UdpSocketState::new((&socket).into())?;
        // Room for the largest datagram, or for a GRO run (the kernel caps those at 64 KiB).
        // Pages are only touched as data arrives.
        Ok(Self {
            // One allocation each (not clones of one), so untouched pages stay unmapped.
            bufs: (0..quinn_udp::BATCH_SIZE)
                .map(|_| vec![0u8; 65_536])
                .collect(),
            meta: vec![quinn_udp::RecvMeta::default(); quinn_udp::BATCH_SIZE],
            gso: Vec::with_capacity(MAX_GSO_BYTES),
            reply_from: HashMap::new(),
            socket,
            state,
        })
    }

    /// Waits until datagrams can be read.
    pub async fn readable(&self) -> std::io::Result<()> {
        self.socket.readable().await
    }

    /// Reads what is queued, up to `max` datagrams, without waiting; calls `f` for each.
    /// Returns how many were read.
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(SocketAddr, &[u8])) -> usize {
        let mut count = 0;
        while count < max {
            let mut iov: Vec<IoSliceMut<'_>> =
                self.bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            let (state, meta) = (&self.state, &mut self.meta);
            let r = self.socket.try_io(Interest::READABLE, || {
                state.recv((&self.socket).into(), &mut iov, meta)
            });
            let n = match r {
                Ok(n) => n,
                Err(e) => {
                    // WouldBlock: drained. Other errors are ICMP reports for earlier sends.
                    if e.kind() == ErrorKind::WouldBlock {
                        break;
                    }
                    tracing::debug!(error = %e, "recv");
                    count += 1;
                    continue;
                }
            };
            for (m, buf) in self.meta.iter().zip(&self.bufs).take(n) {
                let from = n2n_kit::udp::canonical(m.addr);
                if let Some(to) = m.dst_ip
                    && self.reply_from.get(&from) != Some(&to)
                {
                    if self.reply_from.len() >= MAX_REPLY_FROM {
                        self.reply_from.clear();
                    }
                    self.reply_from.insert(from, to);
                }
                let data = buf.get(..m.len).unwrap_or_default();
                for d in data.chunks(m.stride.max(1)) {
                    f(from, d);
                    count += 1;
                }
            }
        }
        count
    }

    /// Sends every transmit, coalescing runs of equal-sized datagrams to one destination.
    pub async fn send_all(&mut self, transmits: &[Transmit]) {
        let max_segments = self.state.max_gso_segments().max(1);
        let mut rest = transmits;
        while let Some(first) = rest.first() {
            let size = first.payload.len();
            let run = rest
                .iter()
                .take(max_segments.min(MAX_GSO_BYTES / size.max(1)).max(1))
                .take_while(|t| t.dst == first.dst && t.payload.len() == size)
                .count()
                .max(1);
            let (batch, tail) = rest.split_at(run.min(rest.len()));
            rest = tail;
            if batch.len() == 1 {
                self.send(first.dst, &first.payload, None).await;
                continue;
            }
            self.gso.clear();
            for t in batch {
                self.gso.extend_from_slice(&t.payload);
            }
            let gso = std::mem::take(&mut self.gso);
            if !self.send(first.dst, &gso, Some(size)).await {
                // The kernel refused the batch (no GSO on this path): one by one.
                for t in batch {
                    self.send(t.dst, &t.payload, None).await;
                }
            }
            self.gso = gso;
        }
    }

    /// Sends one datagram, or `segment`-sized datagrams with GSO; false on an error.
    async fn send(&self, dst: SocketAddr, contents: &[u8], segment: Option<usize>) -> bool {
        let t = quinn_udp::Transmit {
            destination: dst,
            ecn: None,
            contents,
            segment_size: segment,
            src_ip: self.reply_from.get(&dst).copied(),
        };
        loop {
            match self.socket.try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.socket).into(), &t)
            }) {
                Ok(()) => return true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if self.socket.writable().await.is_err() {
                        return false;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, %dst, "send");
                    return false;
                }
            }
        }
    }
}
