//! The supernode's HTTP API (axum). Handlers send a query to the event loop, which owns the
//! core, and wait for its answer: no shared locks, and every answer is a consistent snapshot.

mod metrics;
mod views;

pub use views::{DaemonInfo, answer, lease};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

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
        mac: n2n_common::types::Mac,
    },
}

/// The loop's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A JSON document with a status code.
    Json(StatusCode, serde_json::Value),
    /// Prometheus text.
    Metrics(String),
}

/// A query with the channel for its answer.
pub type ApiRequest = (Query, oneshot::Sender<Answer>);

/// The header that carries the API token (from `STATE_DIR/api-token`) on changing requests.
pub const TOKEN_HEADER: &str = "x-n2n-token";

/// Builds the router; `tx` reaches the event loop. Requests that change state need `token`.
/// (No Host check: on a server it sits behind reverse proxies that pass their own Host, and
/// no browser there rebinds names.)
pub fn router(tx: mpsc::Sender<ApiRequest>, token: String) -> Router {
    let token: std::sync::Arc<str> = token.into();
    Router::new()
        .route(
            "/leases/{community}/{mac}/release",
            axum::routing::post(
                move |s: State<mpsc::Sender<ApiRequest>>,
                      headers: axum::http::HeaderMap,
                      Path((community, mac)): Path<(String, String)>| {
                    let token = token.clone();
                    async move {
                        let given = headers.get(TOKEN_HEADER).map(|v| v.as_bytes());
                        if !given.is_some_and(|g| {
                            n2n_common::crypto::kdf::ct_eq(g, token.as_bytes())
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
            get(|s: State<mpsc::Sender<ApiRequest>>| ask(s, Query::Status)),
        )
        .route(
            "/communities",
            get(|s: State<mpsc::Sender<ApiRequest>>| ask(s, Query::Communities)),
        )
        .route(
            "/communities/{name}/edges",
            get(
                |s: State<mpsc::Sender<ApiRequest>>, Path(name): Path<String>| {
                    ask(s, Query::CommunityEdges(name))
                },
            ),
        )
        .route(
            "/leases.json",
            get(|s: State<mpsc::Sender<ApiRequest>>| ask(s, Query::Leases)),
        )
        .route(
            "/metrics",
            get(|s: State<mpsc::Sender<ApiRequest>>| ask(s, Query::Metrics)),
        )
        .route("/", get(|| async { Html(PAGE) }))
        .route("/events", get(events))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(tx)
}

fn error(code: StatusCode, msg: &str) -> Response {
    (code, axum::Json(serde_json::json!({ "error": msg }))).into_response()
}

/// The supernode's web page (embedded at build time).
pub const PAGE: &str = include_str!("../../../webui/supernode.html");

/// Server-sent events: the overview JSON whenever it changes (checked every second).
async fn events(
    State(tx): State<mpsc::Sender<ApiRequest>>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let stream = futures_util::stream::unfold((tx, String::new()), |(tx, last)| async move {
        loop {
            let (reply, rx) = oneshot::channel();
            tx.send((Query::Overview, reply)).await.ok()?;
            if let Ok(Answer::Json(_, v)) = rx.await {
                let text = v.to_string();
                if text != last {
                    return Some((Ok(Event::default().data(text.clone())), (tx, text)));
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn ask(State(tx): State<mpsc::Sender<ApiRequest>>, q: Query) -> Response {
    let (reply, rx) = oneshot::channel();
    if tx.send((q, reply)).await.is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "supernode is shutting down",
        );
    }
    match tokio::time::timeout(Duration::from_secs(5), rx).await {
        Ok(Ok(Answer::Json(code, v))) => (code, axum::Json(v)).into_response(),
        Ok(Ok(Answer::Metrics(text))) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        _ => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "supernode did not answer in time",
        ),
    }
}
