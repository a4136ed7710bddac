//! The connection the writer keeps from one of its transactions to the next.
//!
//! A connection taken from sqlx's pool for each transaction costs more than the transaction's
//! own statements when it holds a single intake:
//!
//! - **PostgreSQL:** sqlx pings a pooled connection when it is taken and again when it is
//!   returned, two round trips that do no work. The writes that take the directory's lock
//!   (intake batches, case changes, directory and crisis updates: one at a time anyway, since
//!   they all wait for that lock) run on one kept connection instead.
//! - **SQLite:** each connection has its own page cache, which SQLite empties whenever another
//!   connection has written to the file since it last looked. The pool hands its connections
//!   out in turn, so every write found its cache emptied by the write before, on another
//!   connection, and read again each page it touched: about seventy reads of the file for one
//!   intake. Every write of the process (SQLite has one writer at a time) runs on the kept
//!   connection, whose cache then stays valid from one write to the next.
//!
//! What the pool's checks guarded against is handled here:
//!
//! - A kept connection that broke since its last transaction fails its `BEGIN`, which writes
//!   nothing: it is closed, and the `BEGIN` is sent once more on a connection from the pool.
//! - A kept connection opened before the service moved to another host is closed, not used
//!   (see [`Hosts`]); so is one kept for longer than the pool's `max_lifetime`, as the pool
//!   would have closed it.
//! - A transaction dropped without commit is rolled back on the connection before the next one
//!   can take it; a connection whose commit or rollback fails is closed.
//!
//! A transaction can also be taken with its `BEGIN` still to send ([`KeptConnection::begin_later`]),
//! for a caller that sends its statements as scripts: the `BEGIN` goes at the head of its first
//! script and a `COMMIT` at the end of its last ([`KeptTx::committed`]), so that a SQLite batch
//! of intakes is two calls on the connection's thread instead of four.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Database, Executor, Pool, Postgres, Sqlite};
use std::future::Future;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::hosts::Hosts;

/// A backend whose writer keeps a connection.
pub(super) trait KeptBackend: Database {
    /// Runs `sql`, a simple statement such as `BEGIN` or `COMMIT`, on `conn`.
    fn run(
        conn: &mut Self::Connection,
        sql: &'static str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Whether `error`, from a kept connection's `BEGIN`, means the connection is not to be used
    /// again.
    fn broken(error: &sqlx::Error) -> bool;
}

impl KeptBackend for Postgres {
    async fn run(conn: &mut Self::Connection, sql: &'static str) -> Result<(), sqlx::Error> {
        conn.execute(sql).await.map(drop)
    }

    /// Any error: a connection to a host that became a standby answers, but refuses the lock.
    fn broken(_: &sqlx::Error) -> bool {
        true
    }
}

impl KeptBackend for Sqlite {
    async fn run(conn: &mut Self::Connection, sql: &'static str) -> Result<(), sqlx::Error> {
        conn.execute(sql).await.map(drop)
    }

    /// Not an error of the database: `SQLITE_BUSY` only says another process held the write
    /// lock for longer than the connection waits.
    fn broken(error: &sqlx::Error) -> bool {
        !matches!(error, sqlx::Error::Database(_))
    }
}

/// The writer's connection, between its transactions; none until the first one.
pub(super) struct KeptConnection<DB: KeptBackend> {
    slot: Arc<Mutex<Option<Kept<DB>>>>,
    /// Whether the connection stays out of the pool between transactions: not for an
    /// in-memory SQLite database, whose one connection its reads need as well.
    keep: bool,
    /// How long a transaction waits for another one to end before it is refused; `None`: as
    /// long as that takes.
    wait: Option<Duration>,
}

impl<DB: KeptBackend> Clone for KeptConnection<DB> {
    fn clone(&self) -> Self {
        Self {
            slot: self.slot.clone(),
            keep: self.keep,
            wait: self.wait,
        }
    }
}

impl<DB: KeptBackend> std::fmt::Debug for KeptConnection<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptConnection")
            .field("keep", &self.keep)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

struct Kept<DB: KeptBackend> {
    conn: PoolConnection<DB>,
    /// When it was taken from the pool, which checked then that it was to the host in use.
    taken: Instant,
}

impl<DB: KeptBackend> Kept<DB> {
    /// A connection from `pool`, to be kept.
    async fn take(pool: &Pool<DB>) -> Result<Self, sqlx::Error> {
        Ok(Self {
            conn: pool.acquire().await?,
            taken: Instant::now(),
        })
    }

    /// The connection, unless it is not to be used again, when it is closed instead: `pool`
    /// moved to another host since it was taken (as `hosts` tells), or it has been kept for
    /// longer than the pool keeps any of its connections (`max_lifetime`), which the pool would
    /// have closed by now.
    fn unless_stale(mut self, pool: &Pool<DB>, hosts: Option<&Hosts>) -> Option<Self> {
        let stale = hosts.is_some_and(|hosts| hosts.moved_since(self.taken))
            || pool
                .options()
                .get_max_lifetime()
                .is_some_and(|lifetime| self.taken.elapsed() >= lifetime);
        if stale {
            self.conn.close_on_drop();
            return None;
        }
        Some(self)
    }
}

impl<DB: KeptBackend> KeptConnection<DB> {
    pub(super) fn new(keep: bool, wait: Option<Duration>) -> Self {
        Self {
            slot: Default::default(),
            keep,
            wait,
        }
    }

    /// Opens a transaction with `begin` (one simple query that starts with `BEGIN`) on the kept
    /// connection, or on one taken from `pool` when there is none or the kept one broke; waits
    /// while another transaction has it. `hosts` tells when the pool moved to another host.
    pub(super) async fn begin(
        &self,
        pool: &Pool<DB>,
        hosts: Option<&Hosts>,
        begin: &'static str,
    ) -> Result<KeptTx<DB>, sqlx::Error> {
        let mut slot = self.turn().await?;
        if let Some(mut kept) = slot.take().and_then(|kept| kept.unless_stale(pool, hosts)) {
            match DB::run(&mut kept.conn, begin).await {
                Ok(_) => return Ok(KeptTx::open(slot, kept, self.keep)),
                Err(error) if DB::broken(&error) => {
                    tracing::info!(%error, "the writer's connection failed; taking another");
                    kept.conn.close_on_drop();
                }
                Err(error) => {
                    *slot = Some(kept);
                    return Err(error);
                }
            }
        }
        let mut kept = Kept::take(pool).await?;
        if let Err(error) = DB::run(&mut kept.conn, begin).await {
            // Its transaction may have opened before the failure.
            kept.conn.close_on_drop();
            return Err(error);
        }
        Ok(KeptTx::open(slot, kept, self.keep))
    }

    /// Takes the kept connection (or one from `pool`) for a transaction whose `begin` is sent
    /// by the caller at the head of its first statement ([`KeptTx::take_begin`]); waits while
    /// another transaction has it. A connection that broke fails that statement, and is closed
    /// when the rollback that follows fails too (as it does after a `BEGIN` that failed, which
    /// costs only the connection's cache).
    pub(super) async fn begin_later(
        &self,
        pool: &Pool<DB>,
        begin: &'static str,
    ) -> Result<KeptTx<DB>, sqlx::Error> {
        let mut slot = self.turn().await?;
        let kept = match slot.take().and_then(|kept| kept.unless_stale(pool, None)) {
            Some(kept) => kept,
            None => Kept::take(pool).await?,
        };
        let mut tx = KeptTx::open(slot, kept, self.keep);
        tx.begin = Some(begin);
        Ok(tx)
    }

    /// The slot, once every transaction that asked before has ended.
    async fn turn(&self) -> Result<Slot<DB>, sqlx::Error> {
        let lock = self.slot.clone().lock_owned();
        match self.wait {
            Some(wait) => tokio::time::timeout(wait, lock)
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut),
            None => Ok(lock.await),
        }
    }

    /// Gives the kept connection back to the pool, after any transaction on it ends, so that
    /// closing the pool does not wait for it.
    pub(super) async fn release(&self) {
        drop(self.slot.lock().await.take());
    }
}

/// The slot of a kept connection, held by the transaction that took the connection out of it.
type Slot<DB> = OwnedMutexGuard<Option<Kept<DB>>>;

/// A transaction on the kept connection. Dropped without [`KeptTx::commit`], it rolls back.
pub(super) struct KeptTx<DB: KeptBackend> {
    /// The empty slot, held until the transaction ends, and the connection it came from; `None`
    /// only once the transaction has ended.
    open: Option<(Slot<DB>, Kept<DB>)>,
    /// Whether the connection goes back in the slot when the transaction ends (or to the pool).
    keep: bool,
    /// The `BEGIN` of a transaction taken with [`KeptConnection::begin_later`], until the
    /// caller takes it to send.
    begin: Option<&'static str>,
}

impl<DB: KeptBackend> KeptTx<DB> {
    fn open(slot: Slot<DB>, kept: Kept<DB>, keep: bool) -> Self {
        Self {
            open: Some((slot, kept)),
            keep,
            begin: None,
        }
    }

    pub(super) fn connection(&mut self) -> &mut DB::Connection {
        match &mut self.open {
            Some((_, kept)) => &mut kept.conn,
            None => unreachable!("a transaction holds its connection until it ends"),
        }
    }

    /// The transaction's `BEGIN`, not sent yet: the caller puts it at the head of the next
    /// statement it sends on [`Self::connection`].
    pub(super) fn take_begin(&mut self) -> Option<&'static str> {
        self.begin.take()
    }

    /// Ends the transaction that the caller's last script committed, and keeps its connection.
    pub(super) fn committed(mut self) {
        if let Some((mut slot, kept)) = self.open.take() {
            *slot = self.keep.then_some(kept);
        }
    }

    pub(super) async fn commit(mut self) -> Result<(), sqlx::Error> {
        let Some((mut slot, mut kept)) = self.open.take() else {
            unreachable!("a transaction holds its connection until it ends")
        };
        if self.begin.is_some() {
            // Nothing was sent: there is no transaction to commit.
            *slot = self.keep.then_some(kept);
            return Ok(());
        }
        match DB::run(&mut kept.conn, "commit").await {
            Ok(_) => {
                *slot = self.keep.then_some(kept);
                Ok(())
            }
            Err(error) => {
                // Whether it committed is unknown; the connection is not used again.
                kept.conn.close_on_drop();
                Err(error)
            }
        }
    }
}

impl<DB: KeptBackend> Drop for KeptTx<DB> {
    fn drop(&mut self) {
        let Some((mut slot, mut kept)) = self.open.take() else {
            return;
        };
        let keep = self.keep;
        if self.begin.is_some() {
            // Its `BEGIN` was never sent.
            *slot = keep.then_some(kept);
            return;
        }
        // The rollback holds the slot, so the next transaction waits for it.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    match DB::run(&mut kept.conn, "rollback").await {
                        Ok(_) => *slot = keep.then_some(kept),
                        Err(error) => {
                            tracing::info!(%error, "the writer's rollback failed; closing its connection");
                            kept.conn.close_on_drop();
                        }
                    }
                });
            }
            // Closing the connection ends its transaction.
            Err(_) => kept.conn.close_on_drop(),
        }
    }
}

#[cfg(test)]
mod tests {
    //! On a SQLite file: a `TEMP` table lives only on the connection that made it, so finding
    //! one made in an earlier transaction shows that the connection was kept.
    use std::str::FromStr;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    use sqlx::{Connection, SqliteConnection, SqlitePool};

    use super::*;

    const BEGIN: &str = "BEGIN IMMEDIATE";

    async fn database(dir: &tempfile::TempDir) -> (SqlitePool, SqliteConnectOptions) {
        let options = SqliteConnectOptions::from_str(&format!(
            "sqlite://{}",
            dir.path().join("kept.db").display()
        ))
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_millis(50));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone())
            .await
            .unwrap();
        sqlx::raw_sql("create table cases (n integer)")
            .execute(&pool)
            .await
            .unwrap();
        (pool, options)
    }

    async fn count(pool: &SqlitePool) -> i64 {
        sqlx::query_scalar("select count(*) from cases")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    /// Whether the transaction's connection is the one that made the `TEMP` table `marker`.
    async fn has_marker(tx: &mut KeptTx<Sqlite>) -> bool {
        sqlx::query("select 1 from temp.marker")
            .fetch_optional(tx.connection())
            .await
            .is_ok()
    }

    /// A kept connection on `pool`, taken and marked by a first transaction.
    async fn marked(pool: &SqlitePool) -> KeptConnection<Sqlite> {
        let kept = KeptConnection::new(true, None);
        let mut tx = kept.begin(pool, None, BEGIN).await.unwrap();
        run(&mut tx, "create temp table marker (x)").await.unwrap();
        tx.commit().await.unwrap();
        kept
    }

    /// Runs `script` in `tx`, after its `BEGIN` when that is still to send.
    async fn run(tx: &mut KeptTx<Sqlite>, script: &str) -> Result<(), sqlx::Error> {
        let script = match tx.take_begin() {
            Some(begin) => format!("{begin}; {script}"),
            None => script.to_owned(),
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(script))
            .execute(tx.connection())
            .await
            .map(drop)
    }

    #[tokio::test]
    async fn the_writer_keeps_one_connection_from_one_transaction_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, _) = database(&dir).await;
        let kept = marked(&pool).await;

        // Begun with the first script and committed with the last.
        let mut tx = kept.begin_later(&pool, BEGIN).await.unwrap();
        assert!(tx.begin.is_some(), "the BEGIN is the caller's to send");
        run(&mut tx, "insert into cases values (1); COMMIT")
            .await
            .unwrap();
        assert!(has_marker(&mut tx).await, "the same connection");
        tx.committed();

        let mut tx = kept.begin(&pool, None, BEGIN).await.unwrap();
        assert!(has_marker(&mut tx).await, "the same connection");
        run(&mut tx, "insert into cases values (2)").await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count(&pool).await, 2, "both committed");
    }

    #[tokio::test]
    async fn a_connection_kept_past_the_pools_lifetime_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (_, options) = database(&dir).await;
        // A lifetime of zero: every kept connection is past it by its next transaction.
        let pool = SqlitePoolOptions::new()
            .max_lifetime(Duration::ZERO)
            .connect_with(options)
            .await
            .unwrap();

        // Whether the transaction begins later or at once.
        let kept = marked(&pool).await;
        let mut tx = kept.begin_later(&pool, BEGIN).await.unwrap();
        assert!(!has_marker(&mut tx).await, "a new connection");
        tx.commit().await.unwrap();
        let kept = marked(&pool).await;
        let mut tx = kept.begin(&pool, None, BEGIN).await.unwrap();
        assert!(!has_marker(&mut tx).await, "a new connection");
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_first_script_that_fails_leaves_nothing_written() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, _) = database(&dir).await;
        let kept = marked(&pool).await;

        let mut tx = kept.begin_later(&pool, BEGIN).await.unwrap();
        let failed = run(
            &mut tx,
            "insert into cases values (1); insert into missing values (2); COMMIT",
        )
        .await;
        assert!(failed.is_err(), "the script stops at the missing table");
        drop(tx);

        // The next transaction waits for the rollback, on the same connection.
        let mut tx = kept.begin(&pool, None, BEGIN).await.unwrap();
        assert!(has_marker(&mut tx).await, "the same connection");
        run(&mut tx, "insert into cases values (3)").await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count(&pool).await, 1, "only the later transaction's row");
    }

    #[tokio::test]
    async fn a_transaction_whose_begin_was_never_sent_ends_without_a_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, _) = database(&dir).await;
        let kept = marked(&pool).await;

        // A rollback with no transaction open fails, and would close the connection.
        drop(kept.begin_later(&pool, BEGIN).await.unwrap());
        let tx = kept.begin_later(&pool, BEGIN).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = kept.begin(&pool, None, BEGIN).await.unwrap();
        assert!(has_marker(&mut tx).await, "still the same connection");
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_connection_kept_from_before_the_database_moved_host_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, _) = database(&dir).await;
        let hosts = Hosts::parse("postgres://primary.example,standby.example/referrals").unwrap();
        let kept = marked(&pool).await;
        let mut tx = kept.begin(&pool, Some(&hosts), BEGIN).await.unwrap();
        assert!(
            has_marker(&mut tx).await,
            "no move yet: the same connection"
        );
        tx.commit().await.unwrap();

        // A failover: the kept connection is to the host the service left, which may still
        // accept writes.
        hosts.record_move();
        let mut tx = kept.begin(&pool, Some(&hosts), BEGIN).await.unwrap();
        assert!(
            !has_marker(&mut tx).await,
            "a connection taken after the move"
        );
        run(&mut tx, "create temp table marker (x)").await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = kept.begin(&pool, Some(&hosts), BEGIN).await.unwrap();
        assert!(has_marker(&mut tx).await, "the new connection is kept");
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_begin_refused_while_another_process_writes_fails_only_that_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, options) = database(&dir).await;
        let kept = KeptConnection::<Sqlite>::new(true, None);
        let mut other = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE; insert into cases values (1)")
            .execute(&mut other)
            .await
            .unwrap();

        // Kept: SQLite's answer says nothing against the connection.
        let refused = kept.begin(&pool, None, BEGIN).await;
        assert!(
            matches!(refused, Err(sqlx::Error::Database(_))),
            "busy: {:?}",
            refused.err()
        );
        // Begun later: the first script fails, and the rollback after it.
        let mut tx = kept.begin_later(&pool, BEGIN).await.unwrap();
        let refused = run(&mut tx, "insert into cases values (2)").await;
        assert!(refused.is_err(), "busy");
        drop(tx);

        sqlx::raw_sql("COMMIT").execute(&mut other).await.unwrap();
        let mut tx = kept.begin_later(&pool, BEGIN).await.unwrap();
        run(&mut tx, "insert into cases values (3); COMMIT")
            .await
            .unwrap();
        tx.committed();
        assert_eq!(
            count(&pool).await,
            2,
            "the other process's row and the last one"
        );
    }
}
