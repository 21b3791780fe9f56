//! The edge's local HTTP API (axum). Handlers ask the control task, which owns the core, so
//! every answer is a consistent snapshot and no supernode round trip is needed.

mod graph;
mod views;

pub use graph::{dot, offline_dot, svg};
pub use views::{DaemonInfo, answer, peers_json};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

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

/// The control task's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// JSON with a status code.
    Json(StatusCode, serde_json::Value),
    /// Text with a content type.
    Text(&'static str, String),
}

/// A query with its reply channel.
pub type ApiRequest = (Query, oneshot::Sender<Answer>);

type Tx = State<mpsc::Sender<ApiRequest>>;

/// Builds the router. Requests from this machine must be addressed to a loopback name
/// (against DNS rebinding): serve it with connect info (`SocketAddr`).
pub fn router(tx: mpsc::Sender<ApiRequest>) -> Router {
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
        .route("/events", get(events))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({ "error": "no such endpoint" })),
            )
        })
        .with_state(tx)
        .layer(axum::middleware::from_fn(
            n2n_common::host::loopback_host_only,
        ))
}

/// The peer graph page (assets embedded at build time: no CDN, works offline).
pub const PEERS_PAGE: &str = include_str!("../../../webui/peers.html");

/// Server-sent events: the peers JSON, pushed whenever it changes (checked twice a second).
async fn events(
    State(tx): Tx,
) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let stream = futures_util::stream::unfold((tx, String::new()), |(tx, last)| async move {
        loop {
            let (reply, rx) = oneshot::channel();
            tx.send((Query::Peers, reply)).await.ok()?;
            if let Ok(Answer::Json(_, v)) = rx.await {
                let text = v.to_string();
                if text != last {
                    return Some((Ok(Event::default().data(text.clone())), (tx, text)));
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn ask(State(tx): Tx, q: Query) -> Response {
    let (reply, rx) = oneshot::channel();
    let unavailable = |msg: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "error": msg })),
        )
            .into_response()
    };
    if tx.send((q, reply)).await.is_err() {
        return unavailable("edge is shutting down");
    }
    match tokio::time::timeout(Duration::from_secs(5), rx).await {
        Ok(Ok(Answer::Json(code, v))) => (code, axum::Json(v)).into_response(),
        Ok(Ok(Answer::Text(ct, body))) => ([(header::CONTENT_TYPE, ct)], body).into_response(),
        _ => unavailable("edge did not answer in time"),
    }
}
