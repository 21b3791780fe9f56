//! Everything the edge needs before its loop starts: the machine id and identity key, the
//! community keys, the TAP device, the UDP socket, and the core configured from the settings
//! and the state directory.

use super::addresses::Addresses;
use super::{machine, peer_pins, seen, tap, unix_now};
use crate::config::Resolved;
use crate::proto::{Edge, EdgeConfig};
use anyhow::Context;
use n2n_protocol::crypto::kdf::{self, CommunityKeys, KdfParams};
use n2n_protocol::crypto::signing::Signer;
use n2n_protocol::rng::CoreRng;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// A started edge, not yet serving.
pub struct Started {
    /// The core.
    pub core: Edge,
    /// The TAP device.
    pub tap: Arc<tap::Tap>,
    /// The UDP socket the control task sends on (the first of `group`).
    pub sock: UdpSocket,
    /// One socket per packet worker, all on one port.
    pub group: Vec<UdpSocket>,
    /// Its local address.
    pub local: SocketAddr,
    /// This host's candidates.
    pub addresses: Addresses,
    /// When it started.
    pub started: Instant,
}

/// Builds the edge for `r`.
pub async fn start(r: &Resolved) -> anyhow::Result<Started> {
    let s = &r.settings;
    let machine_id = machine::load_or_create(&s.state_dir)
        .with_context(|| in_state_dir("cannot read or create the machine id", &s.state_dir))?;
    let identity = machine::identity(&s.state_dir)
        .with_context(|| in_state_dir("cannot read or create the identity key", &s.state_dir))?;
    let mac = kdf::edge_mac(&machine_id, &s.community);
    let keys = derive_keys(&s.community, &s.passphrase).await?;
    if !keys.has_secret {
        tracing::warn!(community = %s.community, "no passphrase: traffic is encrypted, but anyone who knows the community name can join and read it");
    }
    let tap = tap::create(&s.tap_name, mac.0, s.mtu, s.tap_offload, workers(s.workers))?;
    let group = bind_udp(s.local_port, s.udp_buffer_size, tap.queues())?;
    let sock = group.first().context("no socket")?.try_clone()?;
    let local = sock.local_addr()?;
    let first_sn = *r.supernodes.first().context("no supernode")?;

    let mut cfg = EdgeConfig::new(
        &s.community,
        keys,
        mac,
        Signer::from_seed(&identity),
        r.supernodes.clone(),
    );
    cfg.desc = s.edge_id.clone();
    // Orders our announcements across restarts (peers refuse older ones).
    cfg.boot = u32::try_from(unix_now()).unwrap_or(u32::MAX);
    cfg.pinned = r.pinned;
    if cfg.pinned.is_none() {
        cfg.seen = seen::load(&s.state_dir)?;
    }
    let pins_file = peer_pins::file(&s.state_dir, &s.community, cfg.keys.verifier());
    cfg.pins = peer_pins::load(&pins_file, unix_now())?;
    cfg.requested_ip = s.static_ip;
    cfg.compress = s.compress;
    cfg.max_heartbeat = s.heartbeat;
    let addresses = Addresses::find(&sock, first_sn, !s.passphrase.is_empty());
    cfg.candidates = addresses.candidates();

    let started = Instant::now();
    let core = Edge::new(cfg, CoreRng::from_seed(machine::random_seed()?), started);
    tracing::info!(tap = %s.tap_name, offload = tap.offload(), workers = tap.queues(), %mac, udp = %local, community = %s.community, supernode = %first_sn, "edge started");
    Ok(Started {
        core,
        tap,
        sock,
        group,
        local,
        addresses,
        started,
    })
}

fn in_state_dir(what: &str, dir: &Path) -> String {
    format!("{what} in {}", dir.display())
}

/// The community's keys (Argon2id takes a moment and a few MiB: off the async threads).
async fn derive_keys(community: &str, passphrase: &str) -> anyhow::Result<CommunityKeys> {
    let (community, pass) = (community.to_string(), passphrase.to_string());
    Ok(tokio::task::spawn_blocking(move || {
        CommunityKeys::derive(
            &community,
            Some(pass.as_str()).filter(|p| !p.is_empty()),
            KdfParams::default(),
        )
    })
    .await?)
}

/// The packet workers for setting `n` (0: one per two cores, at most [`MAX_AUTO_WORKERS`]).
/// Half the cores, because the kernel's side of every frame (the TAP device, the sockets,
/// the applications' own TCP) costs about as much CPU as the edge's: on 2 vCPUs two workers
/// carried no more than one and answered pings about 15 % slower (see the notes of issue 13).
fn workers(n: usize) -> usize {
    if n > 0 {
        return n.min(MAX_WORKERS);
    }
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    (cores / 2).clamp(1, MAX_AUTO_WORKERS)
}

/// Most packet workers `workers: 0` starts.
const MAX_AUTO_WORKERS: usize = 8;
/// Most packet workers (the workers track the queues they wrote to in a 64-bit mask).
const MAX_WORKERS: usize = 64;

fn bind_udp(port: u16, buffer: usize, n: usize) -> anyhow::Result<Vec<UdpSocket>> {
    let any = (std::net::Ipv6Addr::UNSPECIFIED, port).into();
    let group = n2n_kit::udp::bind_group(any, buffer, n)?;
    Ok(group.into_iter().map(Into::into).collect())
}
