-- The edge's stored log lines (optional, `log_store: true`), read by `edge logs`.
CREATE TABLE logs (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms   INTEGER NOT NULL,
    level   TEXT NOT NULL,
    target  TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX logs_by_time ON logs (ts_ms);
