//! The lease store: SQLite (WAL) through sqlx, migrations embedded in the binary.

use crate::proto::{CommunityRecord, Event, Lease, PersistedState};
use n2n_kit::config::HexKey;
use n2n_protocol::types::Mac;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;

/// The supernode's persistent state.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies migrations.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: a commit survives the process being killed (kill -9); only a power
            // loss can take back the very last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Loads communities and leases; rows that do not parse are skipped and reported.
    pub async fn load(&self) -> anyhow::Result<PersistedState> {
        let mut state = PersistedState::default();
        for row in sqlx::query("SELECT name, subnet, prefix, verifier FROM communities")
            .fetch_all(&self.pool)
            .await?
        {
            let (name, subnet, prefix): (String, String, i64) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            let verifier = key_column(row.try_get(3)?);
            match (subnet.parse(), u8::try_from(prefix), verifier) {
                (Ok(subnet), Ok(prefix), Ok(verifier)) => state.communities.push(CommunityRecord {
                    name,
                    subnet,
                    prefix,
                    verifier,
                }),
                _ => {
                    tracing::warn!(community = %name, "skipping a community row that does not parse")
                }
            }
        }
        let rows = sqlx::query(
            "SELECT community, mac, ip, edge_id, descr, last_seen, identity FROM leases",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let community: String = row.try_get(0)?;
            let (mac, ip): (String, String) = (row.try_get(1)?, row.try_get(2)?);
            let (edge_id, desc, last_seen): (i64, String, i64) =
                (row.try_get(3)?, row.try_get(4)?, row.try_get(5)?);
            let identity = key_column(row.try_get(6)?);
            match (
                Mac::from_str(&mac),
                ip.parse(),
                u32::try_from(edge_id),
                identity,
            ) {
                (Ok(mac), Ok(ip), Ok(edge_id), Ok(identity)) => state.leases.push(Lease {
                    community,
                    mac,
                    ip,
                    edge_id,
                    desc,
                    identity,
                    last_seen_unix: u64::try_from(last_seen).unwrap_or(0),
                }),
                _ => tracing::warn!(%community, %mac, "skipping a lease row that does not parse"),
            }
        }
        Ok(state)
    }

    /// True if `e` changes what is stored.
    pub fn persists(e: &Event) -> bool {
        matches!(
            e,
            Event::CommunityCreated(_)
                | Event::CommunityRemoved { .. }
                | Event::CommunityRenamed { .. }
                | Event::LeaseGranted(_)
                | Event::LeaseReclaimed { .. }
        )
    }

    /// Persists what a batch of core events changed, in one transaction.
    pub async fn apply(&self, events: &[Event]) -> anyhow::Result<()> {
        if !events.iter().any(Self::persists) {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for e in events {
            match e {
                Event::CommunityCreated(c) => {
                    sqlx::query("INSERT OR REPLACE INTO communities (name, subnet, prefix, verifier) VALUES (?, ?, ?, ?)")
                        .bind(&c.name)
                        .bind(c.subnet.to_string())
                        .bind(i64::from(c.prefix))
                        .bind(c.verifier.map(|v| HexKey(v).to_string()))
                        .execute(&mut *tx)
                        .await?;
                }
                Event::CommunityRemoved { name, .. } => {
                    sqlx::query("DELETE FROM leases WHERE community = ?")
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("DELETE FROM communities WHERE name = ?")
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                }
                Event::CommunityRenamed { from, to } => {
                    sqlx::query("UPDATE communities SET name = ?, verifier = ? WHERE name = ?")
                        .bind(&to.name)
                        .bind(to.verifier.map(|v| HexKey(v).to_string()))
                        .bind(from)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("UPDATE leases SET community = ? WHERE community = ?")
                        .bind(&to.name)
                        .bind(from)
                        .execute(&mut *tx)
                        .await?;
                }
                Event::LeaseReclaimed { community, mac } => {
                    sqlx::query("DELETE FROM leases WHERE community = ? AND mac = ?")
                        .bind(community)
                        .bind(mac.to_string())
                        .execute(&mut *tx)
                        .await?;
                }
                Event::LeaseGranted(l) => {
                    sqlx::query(
                        "INSERT INTO leases (community, mac, ip, edge_id, descr, last_seen, identity) VALUES (?, ?, ?, ?, ?, ?, ?)
                         ON CONFLICT (community, mac) DO UPDATE SET ip = excluded.ip, edge_id = excluded.edge_id,
                         descr = excluded.descr, last_seen = excluded.last_seen, identity = excluded.identity",
                    )
                    .bind(&l.community)
                    .bind(l.mac.to_string())
                    .bind(l.ip.to_string())
                    .bind(i64::from(l.edge_id))
                    .bind(&l.desc)
                    .bind(i64::try_from(l.last_seen_unix).unwrap_or(i64::MAX))
                    .bind(l.identity.map(|v| HexKey(v).to_string()))
                    .execute(&mut *tx)
                    .await?;
                }
                _ => {}
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Checkpoints the WAL and closes the database.
    pub async fn close(&self) {
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await;
        self.pool.close().await;
    }
}

/// A nullable key column (64 hex digits).
fn key_column(text: Option<String>) -> Result<Option<[u8; 32]>, String> {
    text.map(|t| t.parse::<HexKey>().map(|k| k.0)).transpose()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn lease(community: &str, last: u8) -> Lease {
        Lease {
            community: community.into(),
            mac: Mac([2, 0, 0, 0, 0, last]),
            ip: Ipv4Addr::new(10, 128, 0, last),
            edge_id: u32::from(last),
            desc: format!("e{last}"),
            identity: (last != 2).then_some([last; 32]),
            last_seen_unix: 1_700_000_000,
        }
    }

    #[tokio::test]
    async fn a_removed_community_goes_with_its_leases_and_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("leases.db")).await.unwrap();
        let rec = |name: &str, third: u8| CommunityRecord {
            name: name.into(),
            subnet: Ipv4Addr::new(10, 128, third, 0),
            prefix: 24,
            verifier: Some([third; 32]),
        };
        store
            .apply(&[
                Event::CommunityCreated(rec("gone", 1)),
                Event::CommunityCreated(rec("stays", 2)),
                Event::LeaseGranted(lease("gone", 1)),
                Event::LeaseGranted(lease("gone", 2)),
                Event::LeaseGranted(lease("stays", 3)),
            ])
            .await
            .unwrap();
        store
            .apply(&[Event::CommunityRemoved {
                name: "gone".into(),
                subnet: Ipv4Addr::new(10, 128, 1, 0),
            }])
            .await
            .unwrap();
        let state = store.load().await.unwrap();
        assert_eq!(state.communities, vec![rec("stays", 2)]);
        assert_eq!(state.leases, vec![lease("stays", 3)]);
    }
}
