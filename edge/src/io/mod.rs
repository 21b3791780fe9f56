//! The edge daemon: [`start`] builds the core, the TAP device and the socket; the control task
//! ([`control`]) owns the core and serves the local API while packet workers ([`workers`])
//! carry frames on the forwarding snapshot.

pub mod addresses;
mod control;
mod events;
pub mod gro;
pub mod hosts;
pub mod logstore;
pub mod machine;
pub mod offload;
pub mod peer_pins;
pub mod portmap;
pub mod seen;
pub mod start;
pub mod steer;
pub mod tap;
pub mod udp;
pub mod workers;

use crate::config::Resolved;
use std::future::Future;

/// Runs the edge until `shutdown` resolves; says goodbye to the supernode on the way out.
pub async fn run(r: Resolved, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let started = start::start(&r).await?;
    control::serve(started, &r, shutdown).await
}

/// Wall-clock seconds.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
