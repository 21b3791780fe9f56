//! The edge's local HTTP API (axum). Handlers ask the control task, which owns the core, so
//! every answer is a consistent snapshot and no supernode round trip is needed.

mod graph;
mod info;
mod peers;
mod views;

pub use graph::{dot, offline_dot, svg};
pub use info::{DaemonInfo, QueueCounters};
pub use peers::{OfflineView, PeerView, PeersView, SelfView, peers_view};
pub use views::{answer, peers_json};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, Response};
use axum::routing::get;
use n2n_kit::api::Asker;
use std::time::Duration;

/// What a handler asks the control task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// Status and counters.
    Status,
    /// This edge and its peers.
    Peers,
    /// Addresses known in the community.
    Leases,
    /// Graphviz DOT of the peer graph.
    Dot,
    /// SVG of the peer graph.
    Svg,
    /// Graphviz DOT of the peers that left.
    OfflineDot,
    /// Prometheus metrics.
    Metrics,
}

pub use n2n_kit::api::Answer;

/// A query with its reply channel.
pub type ApiRequest = n2n_kit::api::Request<Query>;

type Tx = State<Asker<Query>>;

/// Builds the router. Requests from this machine must be addressed to a loopback name
/// (against DNS rebinding): serve it with connect info (`SocketAddr`).
pub fn router(tx: Asker<Query>) -> Router {
    Router::new()
        .route("/status", get(|s: Tx| ask(s, Query::Status)))
        .route("/peers.json", get(|s: Tx| ask(s, Query::Peers)))
        .route("/leases.json", get(|s: Tx| ask(s, Query::Leases)))
        .route("/peers.dot", get(|s: Tx| ask(s, Query::Dot)))
        .route("/peers.svg", get(|s: Tx| ask(s, Query::Svg)))
        .route("/offlines.dot", get(|s: Tx| ask(s, Query::OfflineDot)))
        .route("/metrics", get(|s: Tx| ask(s, Query::Metrics)))
        .route("/peers", get(|| async { Html(PEERS_PAGE) }))
        .route(
            "/",
            get(|| async { axum::response::Redirect::temporary("/peers") }),
        )
        .route(
            "/events",
            get(|State(tx): Tx| async move {
                n2n_kit::api::events(tx, Query::Peers, Duration::from_millis(500))
            }),
        )
        .fallback(|| async { n2n_kit::api::error(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(tx)
        .layer(axum::middleware::from_fn(n2n_kit::host::loopback_host_only))
}

/// The peer graph page (assets embedded at build time: no CDN, works offline).
pub const PEERS_PAGE: &str = include_str!("../../../webui/peers.html");

async fn ask(State(tx): Tx, q: Query) -> Response {
    n2n_kit::api::ask(&tx, q, "edge").await
}
