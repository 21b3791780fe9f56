//! The n2n-rs supernode: admits edges into communities, grants stable virtual IPs, tells
//! edges about each other, coordinates hole punching and relays when no direct path exists.
//!
//! [`proto`] is the sans-IO core; the daemon around it lives beside it.

pub mod proto;

pub use proto::{Supernode, SupernodeConfig};
