//! The daemon kit: what the edge's and the supernode's shells share. Layered configuration,
//! socket binding, the local HTTP API (ask the owning task, server-sent events, serve with
//! graceful shutdown, the Host guard, one small client), private files and /proc readers.
//!
//! The protocol itself lives in `n2n-protocol`, which does no I/O; everything here does.

pub mod api;
pub mod config;
pub mod host;
pub mod http;
pub mod metrics;
pub mod os;
pub mod proc;
pub mod udp;
