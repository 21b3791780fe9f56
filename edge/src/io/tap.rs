//! The TAP device: created with the edge's MAC and MTU, addressed from the lease, removed
//! when the process exits (it is not persistent). With segmentation offload the kernel hands
//! us TCP super-frames behind a virtio-net header (see [`super::offload`]). With several
//! packet workers it has one queue per worker (`IFF_MULTI_QUEUE`): each worker reads its
//! own, and frames are written to the queue of their flow (see [`super::steer`]).

use super::offload::{PLAIN_HDR, VNET_HDR_LEN};
use super::steer;
use crate::api::QueueCounters;
use anyhow::Context;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::io::IoSlice;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;
use tun_rs::{DeviceBuilder, Layer, SyncDevice};

/// The TAP device and how frames cross it.
pub struct Tap {
    /// Queue 0, always there.
    head: SyncDevice,
    /// Queues 1 and on.
    more: Vec<SyncDevice>,
    offload: bool,
    counters: Arc<[QueueCounters]>,
}

/// Creates the TAP device `name` with `mac` and `mtu`, up, without an address yet, with
/// `queues` queues (one where the kernel has no multi-queue TAP, with a warning); with
/// `offload`, asks for segmentation offload and goes without it (with a warning) where the
/// kernel refuses.
pub fn create(
    name: &str,
    mac: [u8; 6],
    mtu: u16,
    offload: bool,
    queues: usize,
) -> anyhow::Result<Arc<Tap>> {
    if !std::path::Path::new("/dev/net/tun").exists() {
        anyhow::bail!(
            "/dev/net/tun is missing: load the tun module (modprobe tun) or, in a container, pass the device through"
        );
    }
    let build = |offload: bool, multi: bool| {
        DeviceBuilder::new()
            .name(name)
            .layer(Layer::L2)
            .mac_addr(mac)
            .mtu(mtu)
            .offload(offload)
            .multi_queue(multi)
            .build_sync()
    };
    let multi = queues > 1;
    let denied = |e: &std::io::Error| e.kind() == std::io::ErrorKind::PermissionDenied;
    let dev = match build(offload, multi) {
        Err(e) if multi && !denied(&e) => {
            tracing::warn!(error = %e, "multi-queue TAP refused by the kernel; one packet worker");
            build(offload, false)
        }
        r => r,
    };
    let dev = match dev {
        Err(e) if offload && !denied(&e) => {
            tracing::warn!(error = %e, "TAP segmentation offload refused by the kernel; reading frame by frame");
            build(false, multi).or_else(|_| build(false, false))
        }
        r => r,
    };
    let dev = dev.map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            anyhow::anyhow!(
                "cannot create TAP device {name}: permission denied (run as root or grant CAP_NET_ADMIN)"
            )
        } else {
            anyhow::anyhow!("cannot create TAP device {name}: {e}")
        }
    })?;
    dev.enabled(true)
        .with_context(|| format!("cannot bring {name} up"))?;
    let offload = dev.tcp_gso();
    let mut more = Vec::new();
    while more.len() + 1 < queues {
        match dev.try_clone() {
            Ok(q) => more.push(q),
            Err(e) => {
                tracing::warn!(error = %e, queues = more.len() + 1, "cannot open another TAP queue");
                break;
            }
        }
    }
    for q in std::iter::once(&dev).chain(&more) {
        // Non-blocking reads let a worker take every queued frame before it sends. The flag
        // is on the open file, so writes are non-blocking too: harmless, as a TAP device's
        // send buffer is unlimited unless TUNSETSNDBUF says otherwise (writes never wait).
        q.set_nonblocking(true)
            .with_context(|| format!("cannot make {name} non-blocking"))?;
    }
    let counters = (0..=more.len()).map(|_| QueueCounters::default()).collect();
    Ok(Arc::new(Tap {
        head: dev,
        more,
        offload,
        counters,
    }))
}

impl Tap {
    /// How many queues (and packet workers) it has.
    pub fn queues(&self) -> usize {
        self.more.len() + 1
    }

    /// Each queue's counters.
    pub fn counters(&self) -> Arc<[QueueCounters]> {
        self.counters.clone()
    }

    /// True when frames read carry a virtio-net header and may be super-frames.
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Reads one frame (behind its virtio-net header when offload is on) from `queue` if
    /// one is queued there.
    pub fn try_read(&self, queue: usize, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        match self.queue(queue).recv(buf) {
            Ok(n) => {
                if let Some(c) = self.counters.get(queue) {
                    QueueCounters::add(&c.tap_read, 1);
                }
                Ok(Some(n))
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits until a frame is queued on `queue` or `other` is readable, or `timeout` passes.
    pub fn wait_readable_or(
        &self,
        queue: usize,
        other: std::os::fd::BorrowedFd<'_>,
        timeout: Duration,
    ) -> std::io::Result<()> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [
            PollFd::new(self.queue(queue).as_fd(), PollFlags::POLLIN),
            PollFd::new(other, PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes one Ethernet frame to the queue of its flow; returns that queue.
    pub fn write(&self, frame: &[u8]) -> std::io::Result<usize> {
        self.write_with(&PLAIN_HDR, frame)
    }

    /// Writes a frame behind virtio-net header `hdr` (dropped when offload is off, where only
    /// [`PLAIN_HDR`] frames are written) to the queue of its flow; returns that queue.
    pub fn write_with(&self, hdr: &[u8; VNET_HDR_LEN], frame: &[u8]) -> std::io::Result<usize> {
        let q = steer::queue_of(frame, self.queues());
        let dev = self.queue(q);
        if self.offload {
            dev.send_vectored(&[IoSlice::new(hdr), IoSlice::new(frame)])
        } else {
            dev.send(frame)
        }?;
        if let Some(c) = self.counters.get(q) {
            QueueCounters::add(&c.tap_written, 1);
        }
        Ok(q)
    }

    /// Counts `n` datagrams received by `queue`'s worker.
    pub fn count_datagrams(&self, queue: usize, n: usize) {
        if let Some(c) = self.counters.get(queue) {
            QueueCounters::add(&c.datagrams, n as u64);
        }
    }

    /// Queue `q` (queue 0 for one that does not exist).
    fn queue(&self, q: usize) -> &SyncDevice {
        q.checked_sub(1)
            .and_then(|i| self.more.get(i))
            .unwrap_or(&self.head)
    }

    /// Sets the device's IPv4 address from the lease.
    pub fn set_address(&self, ip: Ipv4Addr, prefix: u8) -> anyhow::Result<()> {
        self.head
            .set_network_address(ip, prefix, None)
            .with_context(|| format!("cannot set address {ip}/{prefix}"))?;
        self.head.enabled(true)?;
        Ok(())
    }
}
