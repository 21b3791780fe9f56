//! The packet workers' UDP I/O in batches: sealed datagrams to one destination leave as one
//! GSO send (up to 64 KiB, one system call), and datagrams arrive many per system call
//! (recvmmsg, plus UDP GRO where the kernel coalesces a flow).

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg,
    sendmsg, setsockopt, sockopt,
};
use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// Largest GSO send.
const MAX_GSO_BYTES: usize = 65_000;
/// Most segments in one GSO send (the kernel's UDP_MAX_SEGMENTS).
const MAX_SEGMENTS: usize = 64;

/// Queues datagrams and sends runs to one destination as one GSO send.
pub struct Sender {
    sock: UdpSocket,
    buf: Vec<u8>,
    dst: Option<SocketAddr>,
    size: usize,
    count: usize,
    closed: bool,
    gso: bool,
    /// Datagrams this long or longer go one by one: a GSO send of them failed with EINVAL,
    /// which the kernel answers when a segment exceeds the path MTU (single sends fragment).
    too_big: usize,
}

impl Sender {
    /// A sender on `sock`.
    pub fn new(sock: UdpSocket) -> Self {
        Self {
            sock,
            buf: Vec::with_capacity(MAX_GSO_BYTES),
            dst: None,
            size: 0,
            count: 0,
            closed: false,
            gso: true,
            too_big: usize::MAX,
        }
    }

    /// Queues one datagram; what was queued goes out first when this one cannot join it.
    pub fn push(&mut self, to: SocketAddr, d: &[u8]) {
        let joins = self.count > 0
            && self.gso
            && self.size < self.too_big
            && !self.closed
            && self.dst == Some(to)
            && d.len() <= self.size
            && self.count < MAX_SEGMENTS
            && self.buf.len() + d.len() <= MAX_GSO_BYTES;
        if !joins {
            self.flush();
            self.dst = Some(to);
            self.size = d.len();
        }
        self.buf.extend_from_slice(d);
        self.count += 1;
        // Only the last segment of a GSO send may be shorter.
        self.closed = d.len() < self.size;
    }

    /// Sends what is queued.
    pub fn flush(&mut self) {
        let Some(dst) = self.dst.filter(|_| self.count > 0) else {
            return;
        };
        if self.count == 1 || !self.send_gso(dst) {
            for d in self.buf.chunks(self.size.max(1)) {
                if let Err(e) = self.sock.send_to(d, dst) {
                    tracing::debug!(error = %e, %dst, "send");
                }
            }
        }
        self.buf.clear();
        self.count = 0;
        self.closed = false;
    }

    fn send_gso(&mut self, dst: SocketAddr) -> bool {
        let Ok(size) = u16::try_from(self.size) else {
            return false;
        };
        let addr = SockaddrStorage::from(dst);
        let cmsg = [ControlMessage::UdpGsoSegments(&size)];
        let iov = [IoSlice::new(&self.buf)];
        match sendmsg(
            self.sock.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::empty(),
            Some(&addr),
        ) {
            Ok(_) => true,
            Err(nix::errno::Errno::EIO) => {
                // The device cannot segment (no checksum offload): one by one from now on.
                tracing::info!("UDP GSO unavailable; sending datagrams one by one");
                self.gso = false;
                false
            }
            Err(nix::errno::Errno::EINVAL) => {
                tracing::info!(
                    size = self.size,
                    "UDP GSO refused for datagrams this long (above the path MTU?); sending them one by one"
                );
                self.too_big = self.too_big.min(self.size);
                false
            }
            Err(e) => {
                tracing::debug!(error = %e, %dst, "GSO send");
                false
            }
        }
    }
}

/// Receives datagrams in batches.
pub struct Receiver {
    sock: UdpSocket,
    bufs: Vec<Vec<u8>>,
    got: Vec<(Option<SocketAddr>, usize, usize)>,
}

impl Receiver {
    /// A receiver of up to `batch` datagrams (or GRO runs) per system call on `sock`; turns
    /// on UDP GRO where the kernel has it.
    pub fn new(sock: UdpSocket, batch: usize) -> Self {
        if let Err(e) = setsockopt(&sock, sockopt::UdpGroSegment, &true) {
            tracing::debug!(error = %e, "UDP GRO unavailable");
        }
        Self {
            // One allocation each, so pages stay unmapped until a GRO run needs them.
            bufs: (0..batch.max(1)).map(|_| vec![0u8; 65_536]).collect(),
            got: Vec::with_capacity(batch.max(1)),
            sock,
        }
    }

    /// The socket, to wait on.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.sock)
    }

    /// Takes every datagram that is queued, up to the batch, without waiting, and calls `f`
    /// with each datagram and its source.
    pub fn recv(&mut self, mut f: impl FnMut(SocketAddr, &mut [u8])) -> std::io::Result<usize> {
        let fd = self.sock.as_raw_fd();
        self.got.clear();
        // Fresh headers each call: the kernel shrinks each header's control and address
        // lengths to what it used, and nix does not restore them, so reused headers would
        // truncate the next batch's GRO segment size.
        let mut headers =
            MultiHeaders::<SockaddrStorage>::preallocate(self.bufs.len(), Some(vec![0u8; 64]));
        {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> =
                self.bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            let results = recvmmsg(
                fd,
                &mut headers,
                iovs.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )
            .map_err(std::io::Error::from)?;
            for r in results {
                let stride = r
                    .cmsgs()
                    .ok()
                    .and_then(|mut c| {
                        c.find_map(|m| match m {
                            ControlMessageOwned::UdpGroSegments(s) => usize::try_from(s).ok(),
                            _ => None,
                        })
                    })
                    .unwrap_or(r.bytes);
                let from = r.address.and_then(|a| {
                    a.as_sockaddr_in()
                        .map(|v4| SocketAddr::V4((*v4).into()))
                        .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into())))
                        .map(n2n_kit::udp::canonical)
                });
                self.got.push((from, r.bytes, stride));
            }
        }
        let mut count = 0;
        for (buf, &(from, len, stride)) in self.bufs.iter_mut().zip(&self.got) {
            let (Some(from), Some(data)) = (from, buf.get_mut(..len)) else {
                continue;
            };
            for d in data.chunks_mut(stride.max(1)) {
                f(from, d);
                count += 1;
            }
        }
        Ok(count)
    }
}
