//! Optional log storage in SQLite: a tracing layer hands each line to a channel (never
//! blocking, never writing on the caller's thread), and a task writes them in batches, one
//! transaction per batch, keeping the newest [`KEEP_ROWS`] lines. `edge logs` reads them.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// File name of the log database inside the state directory.
pub const LOG_DB: &str = "edge-logs.db";
/// Rows kept; older ones are deleted after each batch.
pub const KEEP_ROWS: i64 = 100_000;
/// Lines written per transaction at most.
const BATCH: usize = 512;

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Unix milliseconds.
    pub ts_ms: i64,
    /// Level name.
    pub level: String,
    /// Module path.
    pub target: String,
    /// Message and fields.
    pub message: String,
}

impl Line {
    /// The line as `edge logs` prints it (time given), control characters escaped: stored
    /// text can carry what a supernode or a peer chose.
    pub fn to_text(&self, time: &str) -> String {
        use n2n_protocol::text::printable;
        format!(
            "{time} {:<5} {}: {}",
            printable(&self.level),
            printable(&self.target),
            printable(&self.message)
        )
    }
}

/// The tracing layer feeding the store.
pub struct StoreLayer {
    tx: mpsc::Sender<Line>,
    dropped: Arc<AtomicU64>,
}

/// Creates the layer and the receiving end for [`write_loop`].
pub fn layer() -> (StoreLayer, mpsc::Receiver<Line>, Arc<AtomicU64>) {
    let (tx, rx) = mpsc::channel(8192);
    let dropped = Arc::new(AtomicU64::new(0));
    (
        StoreLayer {
            tx,
            dropped: dropped.clone(),
        },
        rx,
        dropped,
    )
}

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StoreLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields(String::new());
        event.record(&mut f);
        let meta = event.metadata();
        let line = Line {
            ts_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            level: meta.level().to_string(),
            target: meta.target().to_string(),
            message: f.0,
        };
        // A full queue (the disk cannot keep up) loses lines, counted; logging never blocks.
        if self.tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn open(path: &Path) -> anyhow::Result<SqlitePool> {
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(pool)
}

/// Writes lines from `rx` into the database at `path` until the channel closes.
pub async fn write_loop(path: std::path::PathBuf, mut rx: mpsc::Receiver<Line>) {
    let pool = match open(&path).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "edge: log store {} unavailable: {e:#}; logging to stderr only",
                path.display()
            );
            return;
        }
    };
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        // Gather what else arrived within a short window.
        let until = tokio::time::Instant::now() + Duration::from_millis(200);
        while batch.len() < BATCH {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(l)) => batch.push(l),
                _ => break,
            }
        }
        if let Err(e) = insert(&pool, &batch).await {
            eprintln!("edge: could not store {} log lines: {e}", batch.len());
        }
        batch.clear();
    }
    pool.close().await;
}

async fn insert(pool: &SqlitePool, lines: &[Line]) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    for l in lines {
        sqlx::query("INSERT INTO logs (ts_ms, level, target, message) VALUES (?, ?, ?, ?)")
            .bind(l.ts_ms)
            .bind(&l.level)
            .bind(&l.target)
            .bind(&l.message)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM logs WHERE id <= (SELECT MAX(id) FROM logs) - ?")
        .bind(KEEP_ROWS)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Which stored lines [`read`] returns.
#[derive(Clone, Debug)]
pub struct Query {
    /// At most the newest this many.
    pub last: i64,
    /// Only lines at or after this Unix time, ms.
    pub from_ms: Option<i64>,
    /// Only lines at or before this Unix time, ms.
    pub until_ms: Option<i64>,
    /// At or above this level.
    pub min_level: tracing::Level,
}

impl Query {
    /// The newest `last` lines at or above `min_level`.
    pub fn newest(last: i64, min_level: tracing::Level) -> Self {
        Self {
            last,
            from_ms: None,
            until_ms: None,
            min_level,
        }
    }
}

/// Reads stored lines, oldest first, as `q` asks.
pub async fn read(path: &Path, q: &Query) -> anyhow::Result<Vec<Line>> {
    if !path.exists() {
        anyhow::bail!(
            "no log store at {} (run the edge with log_store: true)",
            path.display()
        );
    }
    let pool = open(path).await?;
    let rows = sqlx::query(
        "SELECT ts_ms, level, target, message FROM (SELECT * FROM logs WHERE ts_ms >= ? AND ts_ms <= ? ORDER BY id DESC LIMIT ?) ORDER BY id",
    )
    .bind(q.from_ms.unwrap_or(0))
    .bind(q.until_ms.unwrap_or(i64::MAX))
    .bind(q.last)
    .fetch_all(&pool)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let level: String = r.try_get(1)?;
        if tracing::Level::from_str(&level).is_ok_and(|l| l <= q.min_level) {
            out.push(Line {
                ts_ms: r.try_get(0)?,
                level,
                target: r.try_get(2)?,
                message: r.try_get(3)?,
            });
        }
    }
    pool.close().await;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    /// Issue 12 #10: `edge logs` printed stored text raw, so a supernode's refusal reason
    /// could clear the terminal or forge a line.
    #[test]
    fn printed_lines_escape_control_characters() {
        let l = Line {
            ts_ms: 0,
            level: "ERROR".into(),
            target: "n2n_edge::io".into(),
            message: "refused: \u{1b}[2Jgone\nINFO fake line".into(),
        };
        let text = l.to_text("T");
        assert!(!text.chars().any(|c| c.is_control()), "{text:?}");
        assert!(text.contains("\\u{1b}[2Jgone\\nINFO fake line"), "{text}");
    }

    #[tokio::test]
    async fn lines_are_batched_into_sqlite_and_read_back_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_DB);
        let (layer, rx, dropped) = layer();
        let writer = tokio::spawn(write_loop(path.clone(), rx));
        let sub = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(sub, || {
            tracing::info!(peer = 7, "peer joined");
            tracing::warn!("supernode lost");
            tracing::debug!("noise");
        });
        // The subscriber (and with it the sender) is gone: the writer drains and stops.
        writer.await.unwrap();
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
        let all = read(&path, &Query::newest(100, tracing::Level::TRACE))
            .await
            .unwrap();
        let msgs: Vec<&str> = all.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(msgs, ["peer joined peer=7", "supernode lost", "noise"]);
        let warn = read(&path, &Query::newest(100, tracing::Level::WARN))
            .await
            .unwrap();
        assert_eq!(warn.len(), 1);
        assert_eq!(warn[0].level, "WARN");
        let hour_ago = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .saturating_sub(Duration::from_secs(3600))
            .as_millis() as i64;
        let q = Query {
            from_ms: Some(hour_ago),
            ..Query::newest(1, tracing::Level::TRACE)
        };
        let last = read(&path, &q).await.unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].message, "noise");
        // A window that ends before the lines were written holds none of them.
        let q = Query {
            until_ms: Some(hour_ago),
            ..Query::newest(100, tracing::Level::TRACE)
        };
        assert!(read(&path, &q).await.unwrap().is_empty());
        assert!(
            read(
                &dir.path().join("nope.db"),
                &Query::newest(1, tracing::Level::INFO)
            )
            .await
            .is_err()
        );
    }
}
