//! The TAP device: created with the edge's MAC and MTU, addressed from the lease, removed
//! when the process exits (it is not persistent). With segmentation offload the kernel hands
//! us TCP super-frames behind a virtio-net header (see [`super::offload`]).

use super::offload::{PLAIN_HDR, VNET_HDR_LEN};
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
    dev: SyncDevice,
    offload: bool,
}

/// Creates the TAP device `name` with `mac` and `mtu`, up, without an address yet; with
/// `offload`, asks for segmentation offload and goes without it (with a warning) where the
/// kernel refuses.
pub fn create(name: &str, mac: [u8; 6], mtu: u16, offload: bool) -> anyhow::Result<Arc<Tap>> {
    if !std::path::Path::new("/dev/net/tun").exists() {
        anyhow::bail!(
            "/dev/net/tun is missing: load the tun module (modprobe tun) or, in a container, pass the device through"
        );
    }
    let build = |offload: bool| {
        DeviceBuilder::new()
            .name(name)
            .layer(Layer::L2)
            .mac_addr(mac)
            .mtu(mtu)
            .offload(offload)
            .build_sync()
    };
    let dev = match build(offload) {
        Err(e) if offload && e.kind() != std::io::ErrorKind::PermissionDenied => {
            tracing::warn!(error = %e, "TAP segmentation offload refused by the kernel; reading frame by frame");
            build(false)
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
    // Non-blocking reads let the send worker take every queued frame before it sends. The
    // flag is on the open file, so writes are non-blocking too: harmless, as a TAP device's
    // send buffer is unlimited unless TUNSETSNDBUF says otherwise (writes never wait).
    dev.set_nonblocking(true)
        .with_context(|| format!("cannot make {name} non-blocking"))?;
    let offload = dev.tcp_gso();
    Ok(Arc::new(Tap { dev, offload }))
}

impl Tap {
    /// True when frames read carry a virtio-net header and may be super-frames.
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Reads one frame (behind its virtio-net header when offload is on) if one is queued.
    pub fn try_read(&self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        match self.dev.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits until a frame is queued or `other` is readable, or `timeout` passes.
    pub fn wait_readable_or(
        &self,
        other: std::os::fd::BorrowedFd<'_>,
        timeout: Duration,
    ) -> std::io::Result<()> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [
            PollFd::new(self.dev.as_fd(), PollFlags::POLLIN),
            PollFd::new(other, PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes one Ethernet frame.
    pub fn write(&self, frame: &[u8]) -> std::io::Result<usize> {
        self.write_with(&PLAIN_HDR, frame)
    }

    /// Writes a frame behind virtio-net header `hdr` (dropped when offload is off, where only
    /// [`PLAIN_HDR`] frames are written).
    pub fn write_with(&self, hdr: &[u8; VNET_HDR_LEN], frame: &[u8]) -> std::io::Result<usize> {
        if self.offload {
            self.dev
                .send_vectored(&[IoSlice::new(hdr), IoSlice::new(frame)])
        } else {
            self.dev.send(frame)
        }
    }

    /// Sets the device's IPv4 address from the lease.
    pub fn set_address(&self, ip: Ipv4Addr, prefix: u8) -> anyhow::Result<()> {
        self.dev
            .set_network_address(ip, prefix, None)
            .with_context(|| format!("cannot set address {ip}/{prefix}"))?;
        self.dev.enabled(true)?;
        Ok(())
    }
}
