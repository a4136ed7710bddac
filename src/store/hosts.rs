//! Several PostgreSQL hosts in one URL, as libpq writes them
//! (`postgres://user@primary:5432,standby:5432/referrals`): the service connects to the one that
//! accepts writes and, when its health check finds that host gone or read-only, looks for the
//! host that accepts writes now (a promoted standby) and moves its pool there by itself.
//!
//! sqlx takes one host per pool, so this is written by hand: the pool's connect options are
//! swapped for the new primary's, and every connection opened before the swap is closed the
//! next time it is taken from the pool.

use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

use crate::domain::Error;

/// How long a host has to answer whether it accepts writes.
const PROBE: Duration = Duration::from_secs(1);

/// The hosts a database URL names, and the one in use.
pub(super) struct Hosts {
    /// Each host's name (for logs) and options.
    candidates: Vec<(String, PgConnectOptions)>,
    current: AtomicUsize,
    /// When the pool last moved to another host.
    switched: Mutex<Option<Instant>>,
    /// One search for the primary at a time.
    searching: tokio::sync::Mutex<()>,
}

impl Hosts {
    /// The hosts of `url`, one or several.
    pub(super) fn parse(url: &str) -> Result<Self, Error> {
        let candidates = split(url)?
            .into_iter()
            .map(|(host, single)| {
                PgConnectOptions::from_str(&single)
                    .map(|options| (host, options))
                    .map_err(|e| Error::internal(format!("database URL: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            candidates,
            current: AtomicUsize::new(0),
            switched: Mutex::new(None),
            searching: tokio::sync::Mutex::new(()),
        })
    }

    /// More than one host: the service can fail over.
    pub(super) fn many(&self) -> bool {
        self.candidates.len() > 1
    }

    /// The options of the host in use.
    pub(super) fn options(&self) -> PgConnectOptions {
        self.candidates[self.current.load(Ordering::Relaxed)]
            .1
            .clone()
    }

    /// Finds the host that accepts writes and makes it the one in use; refused when none does.
    pub(super) async fn choose_primary(&self) -> Result<(), Error> {
        if !self.many() {
            return Ok(());
        }
        match self.find_primary().await {
            Some(index) => {
                self.current.store(index, Ordering::Relaxed);
                Ok(())
            }
            None => Err(Error::Unavailable(
                format!(
                    "none of the database's {} hosts accepts writes",
                    self.candidates.len()
                )
                .into(),
            )),
        }
    }

    /// After the host in use failed its health check: moves `pool` to the host that accepts
    /// writes now, if that is another one. Returns whether it moved.
    pub(super) async fn fail_over(&self, pool: &PgPool) -> bool {
        if !self.many() {
            return false;
        }
        // Another check is already searching.
        let Ok(_searching) = self.searching.try_lock() else {
            return false;
        };
        let Some(index) = self.find_primary().await else {
            return false;
        };
        let before = self.current.swap(index, Ordering::Relaxed);
        if before == index {
            return false;
        }
        pool.set_connect_options(self.candidates[index].1.clone());
        self.record_move();
        tracing::warn!(
            from = self.candidates[before].0,
            to = self.candidates[index].0,
            "the database's primary moved; connecting to the new one"
        );
        true
    }

    /// Records that the pool moves to another host now: connections taken before are to the
    /// host it leaves.
    pub(super) fn record_move(&self) {
        *self.switched.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// Whether a pooled connection `age` old was opened after the last move (older ones are
    /// to the host the service left).
    pub(super) fn current_connection(&self, age: Duration) -> bool {
        match *self.switched.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(at) => age < at.elapsed(),
            None => true,
        }
    }

    /// Whether the pool moved to another host after `at`: a connection taken from it before
    /// then is to the host the service left.
    pub(super) fn moved_since(&self, at: Instant) -> bool {
        matches!(*self.switched.lock().unwrap_or_else(|p| p.into_inner()), Some(switched) if switched > at)
    }

    /// The first host, in the URL's order, that answers and is not in recovery.
    async fn find_primary(&self) -> Option<usize> {
        let probes = self.candidates.iter().map(|(_, options)| async move {
            let probe = async {
                let mut conn = PgConnection::connect_with(options).await?;
                let (recovering, read_only): (bool, String) = sqlx::query_as(
                    "select pg_is_in_recovery(), current_setting('default_transaction_read_only')",
                )
                .fetch_one(&mut conn)
                .await?;
                let _ = conn.close().await;
                Ok::<_, sqlx::Error>(!recovering && read_only == "off")
            };
            matches!(tokio::time::timeout(PROBE, probe).await, Ok(Ok(true)))
        });
        let writable = futures::future::join_all(probes).await;
        writable.iter().position(|w| *w)
    }
}

/// Splits a URL naming several hosts (`host1:port1,host2:port2`) into one URL per host, each
/// with the host's name; a URL with one host is returned as it is.
pub(super) fn split(url: &str) -> Result<Vec<(String, String)>, Error> {
    let bad = |why: &str| Error::internal(format!("database URL: {why}"));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("no scheme (postgres://…)"))?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let hosts: Vec<&str> = hosts.split(',').collect();
    if hosts.iter().any(|h| h.is_empty()) {
        return Err(bad("an empty host in the host list"));
    }
    Ok(hosts
        .into_iter()
        .map(|host| {
            (
                host.to_owned(),
                format!("{scheme}://{userinfo}{host}{tail}"),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_several_hosts_is_one_url_per_host() {
        let hosts =
            split("postgres://svc:pw@db-a:5432,db-b:5433/referrals?sslmode=require").unwrap();
        assert_eq!(
            hosts,
            [
                (
                    "db-a:5432".to_owned(),
                    "postgres://svc:pw@db-a:5432/referrals?sslmode=require".to_owned()
                ),
                (
                    "db-b:5433".to_owned(),
                    "postgres://svc:pw@db-b:5433/referrals?sslmode=require".to_owned()
                ),
            ]
        );
        assert_eq!(
            split("postgres://db/referrals").unwrap(),
            [("db".to_owned(), "postgres://db/referrals".to_owned())]
        );
        assert_eq!(split("postgresql://u@h1,h2").unwrap().len(), 2);
        assert!(split("postgres://u@h1,,h2/db").is_err());
        assert!(split("db-a,db-b").is_err());
    }
}
