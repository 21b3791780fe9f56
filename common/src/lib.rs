//! Shared building blocks of n2n-rs: the wire protocol, the crypto transforms, common types,
//! timers, and (feature `test-support`) a deterministic network simulator.
//!
//! Nothing in this crate does I/O or reads a clock: time comes in as `Instant` arguments and
//! randomness from a caller-seeded RNG, so the protocol cores built on it replay exactly.

pub mod config;
pub mod crypto;
pub mod host;
pub mod os;
pub mod ratelimit;
pub mod rng;
pub mod session;
pub mod stats;
pub mod text;
pub mod timer;
pub mod types;
pub mod udp;
pub mod wire;

#[cfg(feature = "test-support")]
pub mod sim;
