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
//!   (see [`Hosts`]).
//! - A transaction dropped without commit is rolled back on the connection before the next one
//!   can take it; a connection whose commit or rollback fails is closed.

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
        let lock = self.slot.clone().lock_owned();
        let mut slot = match self.wait {
            Some(wait) => tokio::time::timeout(wait, lock)
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?,
            None => lock.await,
        };
        if let Some(mut kept) = slot.take() {
            if hosts.is_some_and(|hosts| hosts.moved_since(kept.taken)) {
                kept.conn.close_on_drop();
            } else {
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
        }
        let mut conn = pool.acquire().await?;
        if let Err(error) = DB::run(&mut conn, begin).await {
            // Its transaction may have opened before the failure.
            conn.close_on_drop();
            return Err(error);
        }
        let kept = Kept {
            conn,
            taken: Instant::now(),
        };
        Ok(KeptTx::open(slot, kept, self.keep))
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
}

impl<DB: KeptBackend> KeptTx<DB> {
    fn open(slot: Slot<DB>, kept: Kept<DB>, keep: bool) -> Self {
        Self {
            open: Some((slot, kept)),
            keep,
        }
    }

    pub(super) fn connection(&mut self) -> &mut DB::Connection {
        match &mut self.open {
            Some((_, kept)) => &mut kept.conn,
            None => unreachable!("a transaction holds its connection until it ends"),
        }
    }

    pub(super) async fn commit(mut self) -> Result<(), sqlx::Error> {
        let Some((mut slot, mut kept)) = self.open.take() else {
            unreachable!("a transaction holds its connection until it ends")
        };
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
