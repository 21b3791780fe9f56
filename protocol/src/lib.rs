//! The n2n-rs protocol: wire formats, crypto, sessions, timers, rate limits, common types,
//! and (feature `test-support`) a deterministic network simulator.
//!
//! Nothing in this crate does I/O or reads a clock (its manifest has no tokio, socket or
//! config dependency, so Cargo enforces it): time comes in as `Instant` arguments and
//! randomness from a caller-seeded RNG, so the protocol cores built on it replay exactly.

pub mod crypto;
pub mod ratelimit;
pub mod rng;
pub mod session;
pub mod stats;
pub mod text;
pub mod timer;
pub mod types;
pub mod wire;

#[cfg(feature = "test-support")]
pub mod sim;

#[cfg(test)]
mod boundary {
    /// The crate's promise (no I/O) holds as long as its manifest names no I/O crate.
    #[test]
    fn the_manifest_names_no_io_crate() {
        let manifest = include_str!("../Cargo.toml");
        let deps = manifest
            .split("[dependencies]")
            .nth(1)
            .and_then(|d| d.split("\n[").next())
            .unwrap_or("");
        for io in [
            "tokio", "socket2", "figment", "axum", "nix", "quinn", "sqlx", "libc", "tun",
        ] {
            assert!(
                !deps.lines().any(|l| l.trim_start().starts_with(io)),
                "protocol/Cargo.toml depends on {io}: I/O belongs in the daemon kit (kit/)"
            );
        }
    }
}
