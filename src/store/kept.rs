//! The connection the writer keeps on PostgreSQL from one of its transactions to the next.
//!
//! A pooled connection costs two round trips a transaction that do no work: sqlx pings it when
//! it is taken from the pool and again when it is returned. With one intake in flight, each
//! intake pays for a whole batch transaction, so the writes that take the directory's lock
//! (intake batches, case changes, directory and crisis updates: one at a time anyway, since
//! they all wait for that lock) run on one connection kept out of the pool instead. What the
//! pings guarded against is handled here:
//!
//! - A kept connection that broke since its last transaction fails its `BEGIN`, which writes
//!   nothing: it is closed, and the `BEGIN` is sent once more on a connection from the pool.
//! - A kept connection opened before the service moved to another host is closed, not used
//!   (see [`Hosts`]).
//! - A transaction dropped without commit is rolled back on the connection before the next one
//!   can take it; a connection whose commit or rollback fails is closed.

use std::sync::Arc;
use std::time::Instant;

use sqlx::pool::PoolConnection;
use sqlx::{Executor, PgConnection, PgPool, Postgres};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::hosts::Hosts;

/// The writer's connection, between its transactions; none until the first one.
#[derive(Clone, Default)]
pub(super) struct KeptConnection {
    slot: Arc<Mutex<Option<Kept>>>,
}

struct Kept {
    conn: PoolConnection<Postgres>,
    /// When it was taken from the pool, which checked then that it was to the host in use.
    taken: Instant,
}

impl KeptConnection {
    /// Opens a transaction with `begin` (one simple query that starts with `BEGIN`) on the kept
    /// connection, or on one taken from `pool` when there is none or the kept one failed; waits
    /// while another transaction has it.
    pub(super) async fn begin(
        &self,
        pool: &PgPool,
        hosts: &Hosts,
        begin: &'static str,
    ) -> Result<KeptTx, sqlx::Error> {
        let mut slot = self.slot.clone().lock_owned().await;
        if let Some(mut kept) = slot.take() {
            if hosts.moved_since(kept.taken) {
                kept.conn.close_on_drop();
            } else {
                match kept.conn.execute(begin).await {
                    Ok(_) => return Ok(KeptTx::open(slot, kept)),
                    Err(error) => {
                        tracing::info!(%error, "the writer's connection failed; taking another");
                        kept.conn.close_on_drop();
                    }
                }
            }
        }
        let mut conn = pool.acquire().await?;
        if let Err(error) = conn.execute(begin).await {
            // Its transaction may have opened before the failure.
            conn.close_on_drop();
            return Err(error);
        }
        let kept = Kept {
            conn,
            taken: Instant::now(),
        };
        Ok(KeptTx::open(slot, kept))
    }

    /// Gives the kept connection back to the pool, after any transaction on it ends, so that
    /// closing the pool does not wait for it.
    pub(super) async fn release(&self) {
        drop(self.slot.lock().await.take());
    }
}

/// A transaction on the kept connection. Dropped without [`KeptTx::commit`], it rolls back.
pub(super) struct KeptTx {
    /// The empty slot, held until the transaction ends, and the connection it came from; `None`
    /// only once the transaction has ended.
    open: Option<(OwnedMutexGuard<Option<Kept>>, Kept)>,
}

impl KeptTx {
    fn open(slot: OwnedMutexGuard<Option<Kept>>, kept: Kept) -> Self {
        Self {
            open: Some((slot, kept)),
        }
    }

    pub(super) fn connection(&mut self) -> &mut PgConnection {
        match &mut self.open {
            Some((_, kept)) => &mut kept.conn,
            None => unreachable!("a transaction holds its connection until it ends"),
        }
    }

    pub(super) async fn commit(mut self) -> Result<(), sqlx::Error> {
        let Some((mut slot, mut kept)) = self.open.take() else {
            unreachable!("a transaction holds its connection until it ends")
        };
        match kept.conn.execute("commit").await {
            Ok(_) => {
                *slot = Some(kept);
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

impl Drop for KeptTx {
    fn drop(&mut self) {
        let Some((mut slot, mut kept)) = self.open.take() else {
            return;
        };
        // The rollback holds the slot, so the next transaction waits for it.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    match kept.conn.execute("rollback").await {
                        Ok(_) => *slot = Some(kept),
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
