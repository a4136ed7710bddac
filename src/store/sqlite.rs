//! The embedded SQLite store: one file under the data directory, WAL, `synchronous=FULL`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use super::Durability;
use super::sql::impl_sql_store;
use crate::domain::Error;

/// Cases in a SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database `url` names and applies the migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, Error> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(Error::internal)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // Every connection to an in-memory database opens a database of its own, so such a
        // database gets exactly one connection, kept for the pool's life.
        let in_memory =
            options.get_filename().to_str() == Some(":memory:") || url.contains("mode=memory");
        let pool = if in_memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(max_connections.max(2))
        }
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(super::map_sqlx_error)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(Error::internal)?;
        Ok(Self { pool })
    }

    /// Starts a write transaction. `BEGIN IMMEDIATE` takes the write lock at once, so a
    /// transaction never fails half-way on upgrading a read lock while another one writes.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    async fn check_durability(&self) -> Result<Durability, sqlx::Error> {
        let journal: String = sqlx::query_scalar("pragma journal_mode")
            .fetch_one(&self.pool)
            .await?;
        let synchronous: i64 = sqlx::query_scalar("pragma synchronous")
            .fetch_one(&self.pool)
            .await?;
        let mut weakened = Vec::new();
        if !journal.eq_ignore_ascii_case("wal") {
            weakened.push(format!(
                "journal_mode is {journal}, not wal (an in-memory database loses every case on exit)"
            ));
        }
        // 2 is FULL, 3 is EXTRA; anything less may lose acknowledged intakes on power loss.
        if synchronous < 2 {
            weakened.push(format!("synchronous is {synchronous}, not FULL (2)"));
        }
        Ok(Durability { weakened })
    }
}

impl_sql_store!(SqliteStore, Sqlite);
