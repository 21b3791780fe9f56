//! Many edge cores on one UDP socket: each core has its own loopback address (127.x.y.z), set
//! as the source of its datagrams (IP_PKTINFO) and recognised as the destination of the
//! replies, so 100,000 edges need one file descriptor instead of 100,000.

use n2n_edge::proto::Edge;
use n2n_protocol::crypto::kdf::CommunityKeys;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{ErrorKind, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// The loopback address of edge `i`.
pub fn loopback_for(i: usize) -> Ipv4Addr {
    let i = i as u32 + 1;
    // 127.1.0.1 onwards, skipping .0 and .255 host bytes.
    Ipv4Addr::new(
        127,
        1 + (i / 62_500) as u8,
        ((i / 250) % 250) as u8,
        1 + (i % 250) as u8,
    )
}

/// Edge cores sharing one socket.
pub struct Fleet {
    socket: UdpSocket,
    state: quinn_udp::UdpSocketState,
    first: usize,
    cores: Vec<Edge>,
    addrs: Vec<Ipv4Addr>,
    index: HashMap<Ipv4Addr, usize>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    scheduled: Vec<Option<Instant>>,
    registered: Vec<bool>,
    /// Edges registered so far.
    pub registered_count: usize,
    bufs: Vec<Vec<u8>>,
    meta: Vec<quinn_udp::RecvMeta>,
}

impl Fleet {
    /// A fleet on a fresh wildcard socket; its edges take addresses from `first` on.
    pub fn new(first: usize) -> anyhow::Result<Self> {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
        s.set_recv_buffer_size(16 << 20)?;
        s.set_send_buffer_size(16 << 20)?;
        s.set_nonblocking(true)?;
        s.bind(&SocketAddr::from(([0, 0, 0, 0], 0)).into())?;
        let socket = UdpSocket::from_std(s.into())?;
        let state = quinn_udp::UdpSocketState::new((&socket).into())?;
        Ok(Self {
            socket,
            state,
            first,
            cores: Vec::new(),
            addrs: Vec::new(),
            index: HashMap::new(),
            timers: BinaryHeap::new(),
            scheduled: Vec::new(),
            registered: Vec::new(),
            registered_count: 0,
            bufs: (0..quinn_udp::BATCH_SIZE)
                .map(|_| vec![0u8; 2048])
                .collect(),
            meta: vec![quinn_udp::RecvMeta::default(); quinn_udp::BATCH_SIZE],
        })
    }

    /// Adds an edge core (it starts registering at once).
    pub async fn add(&mut self, core: Edge) {
        let i = self.cores.len();
        let addr = loopback_for(self.first + i);
        self.cores.push(core);
        self.addrs.push(addr);
        self.index.insert(addr, i);
        self.scheduled.push(None);
        self.registered.push(false);
        let now = Instant::now();
        if let Some(c) = self.cores.get_mut(i) {
            c.handle_timeout(now);
        }
        self.flush(i).await;
    }

    /// Runs the cores until `until`: receives, fires timers, sends.
    pub async fn run_until(&mut self, until: Instant) {
        loop {
            let now = Instant::now();
            if now >= until {
                return;
            }
            while let Some(Reverse((at, i))) = self.timers.peek().copied() {
                if at > now {
                    break;
                }
                self.timers.pop();
                if self.scheduled.get(i).copied().flatten() == Some(at) {
                    if let Some(s) = self.scheduled.get_mut(i) {
                        *s = None;
                    }
                    if let Some(c) = self.cores.get_mut(i) {
                        c.handle_timeout(now);
                    }
                    self.flush(i).await;
                }
            }
            let next = self
                .timers
                .peek()
                .map_or(until, |Reverse((at, _))| (*at).min(until));
            tokio::select! {
                r = self.socket.readable() => if r.is_ok() { self.receive().await },
                _ = tokio::time::sleep_until(next.into()) => {}
            }
        }
    }

    async fn receive(&mut self) {
        loop {
            let mut iov: Vec<IoSliceMut<'_>> =
                self.bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            let (state, meta) = (&self.state, &mut self.meta);
            let n = match self.socket.try_io(Interest::READABLE, || {
                state.recv((&self.socket).into(), &mut iov, meta)
            }) {
                Ok(n) => n,
                // Other errors (an ICMP error queued on the socket) end this round too: the
                // next readiness brings the following datagrams.
                Err(_) => return,
            };
            let now = Instant::now();
            let mut touched = Vec::with_capacity(n);
            for (m, buf) in self.meta.iter().zip(&self.bufs).take(n) {
                let Some(IpAddr::V4(dst)) = m.dst_ip else {
                    continue;
                };
                let Some(&i) = self.index.get(&dst) else {
                    continue;
                };
                let data = buf.get(..m.len).unwrap_or_default();
                for d in data.chunks(m.stride.max(1)) {
                    if let Some(c) = self.cores.get_mut(i) {
                        c.handle_datagram(now, m.addr, d);
                    }
                }
                touched.push(i);
            }
            for i in touched {
                self.flush(i).await;
            }
        }
    }

    async fn flush(&mut self, i: usize) {
        let (Some(core), Some(&src)) = (self.cores.get_mut(i), self.addrs.get(i)) else {
            return;
        };
        while core.poll_event().is_some() {}
        while core.poll_frame().is_some() {}
        if core.is_registered() && !self.registered.get(i).copied().unwrap_or(true) {
            if let Some(r) = self.registered.get_mut(i) {
                *r = true;
            }
            self.registered_count += 1;
        }
        let transmits: Vec<_> = std::iter::from_fn(|| core.poll_transmit()).collect();
        let next = core.poll_timeout();
        for t in transmits {
            let q = quinn_udp::Transmit {
                destination: t.dst,
                ecn: None,
                contents: &t.payload,
                segment_size: None,
                src_ip: Some(IpAddr::V4(src)),
            };
            loop {
                match self.socket.try_io(Interest::WRITABLE, || {
                    self.state.try_send((&self.socket).into(), &q)
                }) {
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        if self.socket.writable().await.is_err() {
                            break;
                        }
                    }
                    _ => break,
                }
            }
        }
        if let (Some(at), Some(s)) = (next, self.scheduled.get_mut(i))
            && *s != Some(at)
        {
            *s = Some(at);
            self.timers.push(Reverse((at, i)));
        }
    }
}

/// Keys for `communities` communities (fast KDF parameters: load, not security, is measured).
pub fn community_keys(communities: usize) -> Vec<CommunityKeys> {
    use n2n_protocol::crypto::kdf::KdfParams;
    (0..communities)
        .map(|c| CommunityKeys::derive(&format!("c{c}"), Some("load"), KdfParams::FAST_INSECURE))
        .collect()
}
