//! The local API's plumbing, the same for both daemons: a handler *asks* the task that owns
//! the core (a query and a reply channel) and answers with what it gets, so every answer is
//! a consistent snapshot and no lock is shared; live pages get server-sent events; the
//! server stops gracefully with the daemon.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long a handler waits for the owning task before answering 503.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Prometheus' text exposition content type.
pub const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The owning task's answer to a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// JSON with a status code.
    Json(StatusCode, serde_json::Value),
    /// Text with a content type.
    Text(&'static str, String),
}

/// A query with the channel for its answer.
pub type Request<Q> = (Q, oneshot::Sender<Answer>);

/// The handlers' end of the channel to the owning task.
pub type Asker<Q> = mpsc::Sender<Request<Q>>;

/// A JSON error document `{"error": msg}` with `code`.
pub fn error(code: StatusCode, msg: &str) -> Response {
    (code, axum::Json(serde_json::json!({ "error": msg }))).into_response()
}

/// Asks the owning task `q` and turns its answer into a response; `daemon` names it in the
/// 503 a handler gives when the task is gone or late.
pub async fn ask<Q>(tx: &Asker<Q>, q: Q, daemon: &str) -> Response {
    let (reply, rx) = oneshot::channel();
    if tx.send((q, reply)).await.is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{daemon} is shutting down"),
        );
    }
    match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
        Ok(Ok(a)) => respond(a),
        _ => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{daemon} did not answer in time"),
        ),
    }
}

/// An answer as an HTTP response.
pub fn respond(a: Answer) -> Response {
    match a {
        Answer::Json(code, v) => (code, axum::Json(v)).into_response(),
        Answer::Text(ct, body) => ([(header::CONTENT_TYPE, ct)], body).into_response(),
    }
}

/// Server-sent events: the JSON answer to `q`, pushed whenever it changes (asked every
/// `every`). The stream ends when the owning task closes its channel.
pub fn events<Q: Clone + Send + 'static>(
    tx: Asker<Q>,
    q: Q,
    every: Duration,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold((tx, String::new()), move |(tx, last)| {
        let q = q.clone();
        async move {
            loop {
                let (reply, rx) = oneshot::channel();
                tx.send((q.clone(), reply)).await.ok()?;
                if let Ok(Answer::Json(_, v)) = rx.await {
                    let text = v.to_string();
                    if text != last {
                        return Some((Ok(Event::default().data(text.clone())), (tx, text)));
                    }
                }
                tokio::time::sleep(every).await;
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// A running API server, stopped with [`Server::stop`].
pub struct Server {
    task: tokio::task::JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl Server {
    /// Serves `app` on `listener` (with the client's address as connect info, which the Host
    /// guard needs) until stopped.
    pub fn spawn(listener: tokio::net::TcpListener, app: Router) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self { task, stop }
    }

    /// Stops accepting and lets open requests finish; a client that still hangs on (a live
    /// event stream whose owner has not closed its channel) is cut off after a second.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let abort = self.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(1), self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}
