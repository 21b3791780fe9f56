//! The n2n-rs supernode: admits edges into communities, grants stable virtual IPs, tells
//! edges about each other, coordinates hole punching and relays when no direct path exists.
//!
//! [`proto`] is the sans-IO core; [`io`] the event loop, lease store and identity around it;
//! [`api`] the HTTP API; [`config`] the layered settings.

pub mod api;
pub mod config;
pub mod io;
pub mod proto;

pub use io::{run, serve};
pub use proto::{Supernode, SupernodeConfig};
