//! The supernode's HTTP API (axum). Handlers send a query to the event loop, which owns the
//! core, and wait for its answer: no shared locks, and every answer is a consistent snapshot.

mod metrics;
mod views;

pub use views::{DaemonInfo, answer};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
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

/// Builds the router; `tx` reaches the event loop.
pub fn router(tx: mpsc::Sender<ApiRequest>) -> Router {
    Router::new()
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
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(tx)
}

fn error(code: StatusCode, msg: &str) -> Response {
    (code, axum::Json(serde_json::json!({ "error": msg }))).into_response()
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
