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
}

impl PostgresStore {
    /// Connects to the database `url` names and applies the migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, Error> {
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
        Ok(Self { pool })
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

impl_sql_store!(PostgresStore, Postgres);
