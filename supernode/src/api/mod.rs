//! The supernode's HTTP API (axum). Handlers send a query to the event loop, which owns the
//! core, and wait for its answer: no shared locks, and every answer is a consistent snapshot.

mod info;
mod metrics;
mod views;

pub use info::DaemonInfo;
pub use views::{answer, lease};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, Response};
use axum::routing::get;
use n2n_kit::api::{Asker, error};
use std::time::Duration;

/// What a handler asks the event loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Daemon status and counters.
    Status,
    /// Every community.
    Communities,
    /// The edges of one community.
    CommunityEdges(String),
    /// Every lease.
    Leases,
    /// Prometheus metrics.
    Metrics,
    /// Status, communities and every community's edges at once (the web page's data).
    Overview,
    /// Free a lease from its identity key (`supernode release-lease`; needs the API token).
    ReleaseLease {
        /// Community key, as `/communities` lists it.
        community: String,
        /// The lease's MAC.
        mac: n2n_protocol::types::Mac,
    },
}

pub use n2n_kit::api::Answer;

/// A query with the channel for its answer.
pub type ApiRequest = n2n_kit::api::Request<Query>;

type Tx = State<Asker<Query>>;

/// The header that carries the API token (from `STATE_DIR/api-token`) on changing requests.
pub const TOKEN_HEADER: &str = "x-n2n-token";

/// Builds the router; `tx` reaches the event loop. Requests that change state need `token`.
/// (No Host check: on a server it sits behind reverse proxies that pass their own Host, and
/// no browser there rebinds names.)
pub fn router(tx: Asker<Query>, token: String) -> Router {
    let token: std::sync::Arc<str> = token.into();
    Router::new()
        .route(
            "/leases/{community}/{mac}/release",
            axum::routing::post(
                move |s: Tx,
                      headers: axum::http::HeaderMap,
                      Path((community, mac)): Path<(String, String)>| {
                    let token = token.clone();
                    async move {
                        let given = headers.get(TOKEN_HEADER).map(|v| v.as_bytes());
                        if !given.is_some_and(|g| {
                            n2n_protocol::crypto::kdf::ct_eq(g, token.as_bytes())
                        }) {
                            return error(
                                StatusCode::FORBIDDEN,
                                "this needs the token in STATE_DIR/api-token (supernode release-lease reads it)",
                            );
                        }
                        match mac.parse() {
                            Ok(mac) => ask(s, Query::ReleaseLease { community, mac }).await,
                            Err(e) => error(StatusCode::BAD_REQUEST, &format!("mac: {e}")),
                        }
                    }
                },
            ),
        )
        .route(
            "/status",
            get(|s: Tx| ask(s, Query::Status)),
        )
        .route(
            "/communities",
            get(|s: Tx| ask(s, Query::Communities)),
        )
        .route(
            "/communities/{name}/edges",
            get(
                |s: Tx, Path(name): Path<String>| ask(s, Query::CommunityEdges(name)),
            ),
        )
        .route(
            "/leases.json",
            get(|s: Tx| ask(s, Query::Leases)),
        )
        .route(
            "/metrics",
            get(|s: Tx| ask(s, Query::Metrics)),
        )
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/events",
            get(|State(tx): Tx| async move {
                n2n_kit::api::events(tx, Query::Overview, Duration::from_secs(1))
            }),
        )
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(tx)
}

/// The supernode's web page (embedded at build time).
pub const PAGE: &str = include_str!("../../../webui/supernode.html");

async fn ask(State(tx): Tx, q: Query) -> Response {
    n2n_kit::api::ask(&tx, q, "supernode").await
}
