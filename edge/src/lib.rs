//! The n2n-rs edge: joins a community through a supernode and carries Ethernet frames to the
//! other members, directly through NATs when possible and through the supernode when not.
//!
//! [`proto`] is the sans-IO core; the daemon around it lives beside it.

pub mod proto;

pub use proto::{Edge, EdgeConfig};
