//! Durable storage of cases and their events: data access only. One [`Store`] trait, implemented
//! once over both backends (SQLite, the embedded default; PostgreSQL, for production).
//!
//! A write loads what its plan needs, hands it to the planner the caller passed in
//! ([`IntakePlanner`], [`ChangePlanner`]: the domain's rules), and writes the plan in the same
//! transaction; the store decides nothing about cases, routing, deadlines, access or event
//! wording. Its parts: `db` runs a statement on either backend; `sql_store` implements the
//! trait, one module per topic (`intake` and `batch`, `changes`, `cases`, `events`,
//! `directory`, `chain`, `reseal`) with `rows`, `sealed` and `statements` shared among them;
//! `sqlite` and `postgres` hold what only one backend does (with `kept`, the connection the
//! PostgreSQL writes that take the directory's lock keep); `detached` keeps a caller that gives
//! up from dropping a transaction half way; `audit_writer` group-commits audit entries.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::Error;
use crate::domain::case::{CaseFilter, CaseRecord, CaseSummary, PageRequest};
use crate::domain::change::CaseChange;
use crate::domain::change::ChangeKey;
use crate::domain::event::{EventFilter, FeedEvent};
use crate::domain::intake::NewIntake;
use crate::domain::plan::change::{ChangeLoad, ChangePlan};
use crate::domain::plan::intake::{IntakeLoad, IntakePlan};
use crate::domain::statistics::{Period, Statistics};
use crate::routing::crisis::{Crisis, CrisisPlan, CrisisRequest};
use crate::routing::directory::{DirectoryData, DirectoryUpdate};
use crate::routing::policy::PolicyDocument;

pub mod audit_writer;
mod batch;
mod cases;
mod chain;
mod changes;
mod crises;
mod db;
mod detached;
mod directory;
mod events;
mod hosts;
mod intake;
mod kept;
mod postgres;
mod queue;
pub mod reseal;
mod rows;
mod schema;
mod sealed;
mod sql_store;
mod sqlite;
mod statements;

pub use reseal::ResealCount;

/// How long a request waits on the database for an answer before it is told UNAVAILABLE: a
/// read, an intake's or a change's commit, an audit entry's. The work itself is not abandoned —
/// a commit that completes later stands, and a retry with the same request id finds it.
pub const DATABASE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What an event listener tells of commits: the number of the last event committed that it
/// knows of, and a poke once it has raised that number.
#[derive(Clone, Default)]
pub struct Announcements {
    /// The highest number told since [`Announcements::take`] last read it; [`i64::MAX`] when
    /// a commit was missed or could not be read, so that whoever takes it reads the events.
    last: Arc<std::sync::atomic::AtomicI64>,
    poke: Arc<tokio::sync::Notify>,
}

impl Announcements {
    /// Tells that events up to `last` were committed.
    pub fn tell(&self, last: i64) {
        self.last
            .fetch_max(last, std::sync::atomic::Ordering::SeqCst);
        self.poke.notify_one();
    }

    /// Tells that events may have been committed without saying which (a notification lost
    /// while the listener reconnected, or one it could not read).
    pub fn tell_unknown(&self) {
        self.tell(i64::MAX);
    }

    /// Waits for a poke.
    pub async fn told(&self) {
        self.poke.notified().await;
    }

    /// The highest number told since the last take (0 if none).
    pub fn take(&self) -> i64 {
        self.last.swap(0, std::sync::atomic::Ordering::SeqCst)
    }
}

/// Plans a batch of intakes from what the store loaded for it (the application's planner,
/// [`crate::domain::plan::intake::plan_intakes`] with its routing).
pub type IntakePlanner<'a> =
    dyn FnMut(&[NewIntake], IntakeLoad) -> Result<IntakePlan, Error> + Send + 'a;

/// Plans a change from what the store loaded for it (the application's planner,
/// [`crate::domain::plan::change::plan_change`] with its routing).
pub type ChangePlanner<'a> =
    dyn FnMut(&CaseChange, ChangeLoad) -> Result<ChangePlan, Error> + Send + 'a;

pub use crate::domain::plan::change::ChangeOutcome;

/// Plans a crisis request against the declaration it changes and the others of its area, read
/// in the write's transaction.
pub type CrisisPlanner<'a> =
    dyn FnMut(&CrisisRequest, Option<&Crisis>, &[Crisis]) -> Result<CrisisPlan, Error> + Send + 'a;

/// What a crisis request came to.
#[derive(Debug, Clone, PartialEq)]
pub struct CrisisOutcome {
    /// The declaration as it now stands (for a retry: as it stands now).
    pub crisis: Crisis,
    /// The request id was seen before: nothing was written.
    pub replayed: bool,
}
pub use crate::domain::plan::intake::IntakeOutcome;

/// Which state of the directory this server's routing holds, as the `directory` counter of the
/// database numbers it. Every transaction that changes the directory's live state (a team taken
/// or freed, a duty status, an occupancy) or its entries moves the counter; a write transaction
/// first locks the counter and compares. When another server moved it, the write is refused
/// with [`Error::DirectoryMoved`] before anything is routed, and the writer reloads the
/// directory and tries again, so no case is routed on a stale view of which teams are free.
#[derive(Debug, Clone, Default)]
pub struct DirectoryWatermark(Arc<std::sync::atomic::AtomicI64>);

impl DirectoryWatermark {
    /// No directory read yet (at start, before the first load): nothing to compare with.
    const UNKNOWN: i64 = -1;

    pub(crate) fn get(&self) -> i64 {
        match self.0.load(std::sync::atomic::Ordering::SeqCst) {
            0 => Self::UNKNOWN,
            n => n - 1,
        }
    }

    pub(crate) fn set(&self, version: i64) {
        self.0
            .store(version + 1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Refuses a write when the routing state is older than the database's.
    pub(crate) fn check(&self, current: i64) -> Result<(), Error> {
        let seen = self.get();
        if seen != Self::UNKNOWN && seen != current {
            return Err(Error::DirectoryMoved);
        }
        Ok(())
    }
}

/// The routing state as stored.
#[derive(Debug, Clone, Default)]
pub struct RoutingData {
    /// The policy in force, with its version, if one was ever stored.
    pub policy: Option<(i64, PolicyDocument)>,
    /// The directory.
    pub directory: DirectoryData,
    /// Every crisis declaration.
    pub crises: Vec<Crisis>,
}

/// A hash chain's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// `event` or `audit`.
    pub chain: &'static str,
    /// The last number written.
    pub number: i64,
    /// The last row's hash; `None` before the first row.
    pub hash: Option<Vec<u8>>,
}

/// A connection pool's use at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// Connections open.
    pub open: u32,
    /// Of those, idle.
    pub idle: u32,
    /// The most the pool may open.
    pub max: u32,
}

/// The deadlines of one kind still running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenDeadlines {
    /// The kind, as the timers table names it.
    pub kind: String,
    /// Deadlines running.
    pub open: i64,
    /// Of those, already past (the escalation has yet to handle them).
    pub overdue: i64,
}

/// The durability settings a backend runs with, as read back from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durability {
    /// Settings that weaken durability, each described for the operator; empty when none does.
    pub weakened: Vec<String>,
}

/// Storage of cases. Both backends pass the same conformance suite (`tests/`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records a batch of intakes in one transaction, in order, and returns one outcome each.
    ///
    /// Inside the transaction the store loads what the batch needs ([`IntakeLoad`]), calls
    /// `planner` once, and writes the plan: new cases with their referrals, dispatches, timers,
    /// events and audit rows. The batch's request ids must be distinct; the writer guarantees
    /// this. An error means nothing of the batch was written.
    async fn record_intakes(
        &self,
        batch: &[NewIntake],
        planner: &mut IntakePlanner<'_>,
    ) -> Result<Vec<IntakeOutcome>, Error>;

    /// Applies a change to a case in one transaction: loads what the change needs
    /// ([`ChangeLoad`]), calls `planner` once, and writes the plan with its events and audit
    /// row.
    async fn change_case(
        &self,
        change: &CaseChange,
        planner: &mut ChangePlanner<'_>,
    ) -> Result<ChangeOutcome, Error>;

    /// Offers a team that became free outside a case change (its crew reported it available)
    /// to the waiting cases, in one transaction; returns what the first case that took it
    /// became, or `None` when none could.
    async fn offer_team(
        &self,
        offer: &crate::domain::queue::TeamOffer,
        at: DateTime<Utc>,
        planner: &mut ChangePlanner<'_>,
    ) -> Result<Option<ChangeOutcome>, Error>;

    /// Returns up to `limit` pending deadline timers due at or before `now`, earliest first.
    async fn due_timers(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Uuid>, Error>;

    /// Returns up to `limit` events numbered above `after` and at most `up_to` that pass
    /// `filter`, in order.
    async fn events(
        &self,
        filter: &EventFilter,
        after: i64,
        up_to: i64,
        limit: u32,
    ) -> Result<Vec<FeedEvent>, Error>;

    /// Counts the cases recorded in the period and measures the teams' response intervals
    /// from their events.
    async fn statistics(&self, period: &Period) -> Result<Statistics, Error>;

    /// Returns the number of the last committed event (0 when there is none).
    async fn last_event(&self) -> Result<i64, Error>;

    /// Returns a case's events in order, or `None` when there is no such case or `reach` does
    /// not cover it (decided without decrypting anything).
    async fn timeline(
        &self,
        case_id: Uuid,
        reach: &crate::domain::reach::Reach,
    ) -> Result<Option<Vec<FeedEvent>>, Error>;

    /// Starts a task that tells `announcements` whenever a server (this one too) commits
    /// events, for backends that can tell (PostgreSQL `LISTEN`); the task ends when `stop`
    /// fires. `None` when the backend cannot, and new events are found by polling.
    fn spawn_event_listener(
        &self,
        announcements: Announcements,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>>;

    /// Reads the policy in force (if any was stored), the whole directory and the crisis
    /// declarations.
    async fn load_routing(&self) -> Result<RoutingData, Error>;

    /// Declares, changes or ends a crisis as `planner` plans it, with its event and the
    /// caller's key, and moves the directory's counter; a retry of a request id answers with
    /// the declaration and writes nothing.
    async fn write_crisis(
        &self,
        request: &CrisisRequest,
        planner: &mut CrisisPlanner<'_>,
    ) -> Result<CrisisOutcome, Error>;

    /// Every crisis declaration, as stored now.
    async fn crises(&self) -> Result<Vec<Crisis>, Error>;

    /// Adds or updates directory entries (a seed file). Live state — occupancy, a team's duty
    /// status, load and position — is set only for entries that are new, so loading the same
    /// seed again changes nothing.
    async fn upsert_directory(&self, data: &DirectoryData) -> Result<(), Error>;

    /// Stores a policy as the next version and returns that version; refused with
    /// [`Error::Stale`] when `expected_version` is given and is not the latest version.
    async fn store_policy(
        &self,
        policy: &PolicyDocument,
        expected_version: Option<i64>,
    ) -> Result<i64, Error>;

    /// Records an owner's change to a team's duty status or a service point's occupancy;
    /// [`Error::NotFound`] when there is no such team or service point.
    /// Returns false when `key` was seen before with the same update (a retry: nothing is
    /// changed); a key seen with another update is refused.
    async fn update_directory(
        &self,
        update: &DirectoryUpdate,
        key: Option<&(String, ChangeKey)>,
    ) -> Result<bool, Error>;

    /// Returns a case with its details, or `None` when there is no such case.
    async fn get_case(&self, case_id: Uuid) -> Result<Option<CaseRecord>, Error>;

    /// Returns up to `page.size` case summaries matching `filter` within `reach`, newest
    /// first.
    async fn list_cases(
        &self,
        filter: &CaseFilter,
        page: &PageRequest,
        reach: &crate::domain::reach::Reach,
    ) -> Result<Vec<CaseSummary>, Error>;

    /// Appends entries to the audit trail, chained, in one transaction.
    async fn append_audit(&self, entries: &[crate::audit::AuditEntry]) -> Result<(), Error>;

    /// Reads the audit trail, oldest first.
    async fn audit_trail(
        &self,
        query: &crate::audit::AuditQuery,
    ) -> Result<Vec<crate::audit::AuditRecord>, Error>;

    /// Seals again, under the keyring's active key, every stored value sealed with another
    /// key, and seals values a database older than encryption at rest holds in clear;
    /// returns what was done, column by column.
    async fn reseal(&self) -> Result<Vec<(String, ResealCount)>, Error>;

    /// Walks the hash chains of the events and the audit trail against their heads.
    async fn verify_chains(&self) -> Result<Vec<crate::audit::ChainReport>, Error>;

    /// The heads of the two chains (`event`, `audit`): the last number and that row's hash.
    async fn chain_heads(&self) -> Result<Vec<ChainHead>, Error>;

    /// The stored hash of row `number` of `chain` (`event` or `audit`), if the row exists.
    async fn chain_hash_at(&self, chain: &str, number: i64) -> Result<Option<Vec<u8>>, Error>;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), Error>;

    /// Records what the health check found: while the database is unreachable, requests are
    /// refused at once rather than left waiting on it.
    fn mark_reachable(&self, _reachable: bool) {}

    /// What the health check last found.
    fn reachable(&self) -> bool {
        true
    }

    /// The pool's connections now.
    fn pool_use(&self) -> PoolUse;

    /// The deadlines running, by kind, with how many of them are past `now`.
    async fn open_deadlines(&self, now: DateTime<Utc>) -> Result<Vec<OpenDeadlines>, Error>;

    /// Reads the durability settings the database runs with.
    async fn durability(&self) -> Result<Durability, Error>;

    /// Closes the connections, waiting for those in use to be returned.
    async fn close(&self);
}

/// The two kinds of database a URL can name.
enum Kind {
    Sqlite,
    Postgres,
}

fn kind(database_url: &str) -> Result<Kind, Error> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Ok(Kind::Postgres)
    } else if database_url.starts_with("sqlite:") {
        Ok(Kind::Sqlite)
    } else {
        Err(Error::internal(format!(
            "unsupported database URL scheme (expected sqlite: or postgres://): {}",
            database_url.split(':').next().unwrap_or_default()
        )))
    }
}

/// Opens the store a database URL names, once its schema is found to be this build's (it
/// never changes the schema: see [`migrate`]); `cipher` seals and opens its sensitive columns.
pub async fn open(
    database_url: &str,
    max_connections: u32,
    cipher: Arc<crate::crypto::FieldCipher>,
) -> Result<Arc<dyn Store>, Error> {
    let backend = match kind(database_url)? {
        Kind::Postgres => db::Backend::Postgres(
            postgres::PostgresBackend::connect(database_url, max_connections).await?,
        ),
        Kind::Sqlite => db::Backend::Sqlite(
            sqlite::SqliteBackend::connect(database_url, max_connections).await?,
        ),
    };
    let store: Arc<dyn Store> = Arc::new(sql_store::SqlStore::new(backend, cipher));
    // A caller that stops waiting must not drop a transaction half way.
    Ok(Arc::new(detached::Detached::new(store)))
}

/// Brings the schema of the database a URL names up to this build's (creating a SQLite file
/// that is missing). Run it as the role that owns the tables.
pub async fn migrate(database_url: &str) -> Result<(), Error> {
    match kind(database_url)? {
        Kind::Postgres => postgres::migrate(database_url).await,
        Kind::Sqlite => sqlite::migrate(database_url).await,
    }
}

/// Gives the PostgreSQL role `role` exactly what the service needs on the tables (read and
/// append everywhere, change in place only outside the events and the audit trail, never
/// delete, truncate or alter) and takes away anything else it was given; run as the tables'
/// owner after [`migrate`]. SQLite has no roles: the file's permissions are its access control.
pub async fn grant(database_url: &str, role: &str) -> Result<(), Error> {
    match kind(database_url)? {
        Kind::Postgres => postgres::grant(database_url, role).await,
        Kind::Sqlite => Err(Error::FailedPrecondition(
            "SQLite has no roles to grant to; the database file's owner and mode decide who \
             may touch it"
                .into(),
        )),
    }
}

/// Maps a database driver error to the domain's, once, by kind.
pub(crate) fn map_sqlx_error(error: sqlx::Error) -> Error {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Error::Unavailable(Box::new(error)),
        // Connection exceptions (08), operator intervention such as a shutting-down server
        // (57P), a database that takes no writes (25006: a demoted primary, a standby, a proxy
        // switched early) and insufficient resources (53: disk full, too many connections).
        sqlx::Error::Database(ref db)
            if db.code().is_some_and(|code| {
                code.starts_with("08")
                    || code.starts_with("57P")
                    || code.starts_with("53")
                    || code == "25006"
            }) =>
        {
            Error::Unavailable(Box::new(error))
        }
        other => Error::Internal(Box::new(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::Announcements;

    #[tokio::test]
    async fn announcements_keep_the_highest_number_told_until_taken() {
        let announcements = Announcements::default();
        assert_eq!(announcements.take(), 0, "nothing told");
        announcements.tell(7);
        announcements.tell(5);
        // A poke waits for whoever listens; told once or twice, it is one.
        announcements.told().await;
        assert_eq!(announcements.take(), 7);
        assert_eq!(announcements.take(), 0, "taken once");
        announcements.tell(9);
        announcements.tell_unknown();
        announcements.tell(11);
        assert_eq!(announcements.take(), i64::MAX, "a missed commit is read");
    }
}
