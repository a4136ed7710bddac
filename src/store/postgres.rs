//! The PostgreSQL store for production: `synchronous_commit=on`, `fsync` and full page writes.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};

use super::Durability;
use super::sql::impl_sql_store;
use crate::domain::Error;

/// Cases in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The directory state this server's routing holds.
    directory: super::DirectoryWatermark,
    /// Seals and opens the sensitive columns.
    cipher: std::sync::Arc<crate::crypto::FieldCipher>,
}

impl PostgresStore {
    /// Tells every server listening on the database that events up to this number were
    /// committed; PostgreSQL delivers it at commit, and not at all on rollback.
    pub(crate) const NOTIFY_EVENTS: Option<&'static str> =
        Some("select pg_notify('referral_events', $1)");

    /// Listens on the events channel and pokes `wake` on every notification, and once more
    /// after each reconnection, since notifications sent while disconnected are lost.
    fn listen_for_events(
        &self,
        wake: std::sync::Arc<tokio::sync::Notify>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let pool = self.pool.clone();
        Some(tokio::spawn(async move {
            let mut backoff = std::time::Duration::from_millis(100);
            loop {
                let listener = async {
                    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
                    listener.listen("referral_events").await?;
                    Ok::<_, sqlx::Error>(listener)
                };
                let mut listener = tokio::select! {
                    _ = stop.changed() => return,
                    listener = listener => match listener {
                        Ok(listener) => listener,
                        Err(error) => {
                            tracing::warn!(%error, "cannot listen for events; retrying");
                            tokio::select! {
                                _ = stop.changed() => return,
                                _ = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                            continue;
                        }
                    },
                };
                backoff = std::time::Duration::from_millis(100);
                // Whatever was committed before the listener was up is found by this poke.
                wake.notify_one();
                loop {
                    tokio::select! {
                        _ = stop.changed() => return,
                        received = listener.try_recv() => match received {
                            Ok(Some(_)) => wake.notify_one(),
                            // The connection was lost; notifications may have been missed.
                            Ok(None) => wake.notify_one(),
                            Err(error) => {
                                tracing::warn!(%error, "event listener failed; reconnecting");
                                wake.notify_one();
                                break;
                            }
                        }
                    }
                }
            }
        }))
    }

    /// Connects to the database `url` names and applies the migrations.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        cipher: std::sync::Arc<crate::crypto::FieldCipher>,
    ) -> Result<Self, Error> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(super::map_sqlx_error)?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(Error::internal)?;
        Ok(Self {
            pool,
            directory: super::DirectoryWatermark::default(),
            cipher,
        })
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    async fn check_reachable(&self) -> Result<(), sqlx::Error> {
        sqlx::query("select 1").execute(&self.pool).await.map(drop)
    }

    async fn check_durability(&self) -> Result<Durability, sqlx::Error> {
        let mut weakened = Vec::new();
        // Each setting with the values that keep an acknowledged commit on disk.
        let required: [(&str, &[&str]); 3] = [
            (
                "synchronous_commit",
                &["on", "remote_apply", "remote_write", "local"],
            ),
            ("fsync", &["on"]),
            ("full_page_writes", &["on"]),
        ];
        for (name, durable) in required {
            let value: String = sqlx::query_scalar("select current_setting($1)")
                .bind(name)
                .fetch_one(&self.pool)
                .await?;
            if !durable.contains(&value.as_str()) {
                weakened.push(format!("{name} is {value}, not {}", durable[0]));
            }
        }
        Ok(Durability { weakened })
    }
}

/// The driver the shared SQL's macros build queries for.
type Db = sqlx::Postgres;

super::changes::impl_changes!(PostgresStore);
super::reseal::impl_reseal!(PostgresStore);
impl_sql_store!(PostgresStore, Postgres);
