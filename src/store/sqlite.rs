//! The embedded SQLite store: one file under the data directory, WAL, `synchronous=FULL`.

use std::path::PathBuf;
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
    /// The database file, for a file database. SQLite goes on writing to a file that was deleted
    /// while open, and everything written after that is lost at the next start; the store
    /// checks that the file is still there before each write and in the health check.
    file: Option<PathBuf>,
    /// The directory state this server's routing holds.
    directory: super::DirectoryWatermark,
    /// Seals and opens the sensitive columns.
    cipher: std::sync::Arc<crate::crypto::FieldCipher>,
}

impl SqliteStore {
    /// SQLite has no notifications: other processes on the same file find new events by
    /// polling, and this process's feed is woken by its own writer.
    pub(crate) const NOTIFY_EVENTS: Option<&'static str> = None;

    fn listen_for_events(
        &self,
        _wake: std::sync::Arc<tokio::sync::Notify>,
        _stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        None
    }

    /// Opens (creating if missing) the database `url` names and applies the migrations.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        cipher: std::sync::Arc<crate::crypto::FieldCipher>,
    ) -> Result<Self, Error> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(Error::internal)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // An in-memory database lives only as long as a connection to it: it gets exactly one,
        // kept for the pool's life.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let file = (!in_memory).then(|| options.get_filename().to_path_buf());
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
        migrate(&pool).await?;
        Ok(Self {
            pool,
            file,
            directory: super::DirectoryWatermark::default(),
            cipher,
        })
    }

    /// Fails when the database file has gone from its path.
    fn check_file(&self) -> Result<(), sqlx::Error> {
        match &self.file {
            Some(path) if !path.exists() => Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the database file is no longer at its path",
            ))),
            _ => Ok(()),
        }
    }

    /// Starts a write transaction. `BEGIN IMMEDIATE` takes the write lock at once, so a
    /// transaction never fails half-way on upgrading a read lock while another one writes.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.check_file()?;
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    async fn check_reachable(&self) -> Result<(), sqlx::Error> {
        self.check_file()?;
        sqlx::query("select 1").execute(&self.pool).await.map(drop)
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

/// Applies the migrations. sqlx takes no lock for migrations on SQLite, so two processes that
/// start together on a new file can both try to apply one; the loser fails (the table exists or
/// the file is locked), and on a later attempt finds the migration applied by the winner. On a
/// loaded machine the winner may take seconds, so the loser keeps trying for up to 30 seconds.
async fn migrate(pool: &SqlitePool) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut pause = Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        match sqlx::migrate!("./migrations/sqlite").run(pool).await {
            Ok(()) => return Ok(()),
            Err(error) if tokio::time::Instant::now() + pause < deadline => {
                tracing::warn!(attempt, %error, "migration failed; another process may be migrating, retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
                attempt += 1;
            }
            Err(error) => return Err(Error::internal(error)),
        }
    }
}

/// The driver the shared SQL's macros build queries for.
type Db = sqlx::Sqlite;

super::changes::impl_changes!(SqliteStore);
super::reseal::impl_reseal!(SqliteStore);
impl_sql_store!(SqliteStore, Sqlite);
