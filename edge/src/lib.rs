//! The n2n-rs edge: joins a community through a supernode and carries Ethernet frames to the
//! other members, directly through NATs when possible and through the supernode when not.
//!
//! [`proto`] is the sans-IO core; [`io`] the daemon around it (TAP, UDP, packet workers);
//! [`api`] the local HTTP API; [`config`] the layered settings.

pub mod api;
pub mod config;
pub mod io;
pub mod proto;

pub use proto::{Edge, EdgeConfig};
