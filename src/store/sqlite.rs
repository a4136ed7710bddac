//! The embedded SQLite store: one file under the data directory, WAL, `synchronous=FULL`.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, Row as _, Sqlite, SqliteConnection, SqlitePool};

use super::Durability;
use super::batch::{IntakeRows, Lookups, SELECT_COUNTERS, SET_CASE_NUMBERS, SET_CHAINS};
use super::chain::Chained;
use super::db::{Bind, Query, Values, query};
use super::kept::{KeptConnection, KeptTx};
use super::map_sqlx_error;
use super::queue::INSERT_WAIT;
use super::schema::{self, Applied};
use super::statements::{
    ASSIGN_TEAM, BUMP_DIRECTORY, INSERT_CASES, INSERT_CATEGORIES, INSERT_CONTACTS,
    INSERT_DECISIONS, INSERT_DISPATCHES, INSERT_IDEMPOTENCY_KEYS, INSERT_REFERRALS, INSERT_STEPS,
    INSERT_TIMERS, ROWS_PER_INSERT,
};
use crate::domain::Error;
use crate::domain::intake::NewIntake;
use crate::domain::types::{CaseStatus, DispatchStatus, ReferralStatus};

/// How long a write waits for its turn (in this process) or for SQLite's write lock (held by
/// another process) before it is refused as unavailable.
const WAIT_TO_WRITE: Duration = Duration::from_secs(10);

/// A SQLite database: its pool and what only SQLite needs.
#[derive(Debug, Clone)]
pub(super) struct SqliteBackend {
    pool: SqlitePool,
    /// The database file, for a file database. SQLite goes on writing to a file that was deleted
    /// while open, and everything written after that is lost at the next start; the store
    /// checks that the file is still there before each write and in the health check.
    file: Option<PathBuf>,
    /// The connection every write of this process runs on, one after another in the order they
    /// asked ([`super::kept`]). SQLite has one writer at a time; without a queue here, writers
    /// of this process (the intake writer, the audit writer, changes, timers) would meet in
    /// SQLite's busy handler, which retries with sleeps growing to 100 ms and serves no one in
    /// order. Another process on the same file still waits there. On one connection, the pages
    /// a write reads stay in its cache for the next.
    writer: KeptConnection<Sqlite>,
}

/// A transaction: one that reads, on a connection from the pool, or one that writes, on the
/// writer's connection.
pub(super) enum Transaction {
    Read(sqlx::Transaction<'static, Sqlite>),
    Write(KeptTx<Sqlite>),
}

impl Transaction {
    pub(super) fn connection(&mut self) -> &mut SqliteConnection {
        match self {
            Self::Read(tx) => tx,
            Self::Write(tx) => tx.connection(),
        }
    }

    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Read(tx) => tx.commit().await,
            Self::Write(tx) => tx.commit().await,
        }
    }

    /// The `BEGIN` of a write taken with [`SqliteBackend::begin_intake_batch`], not sent yet.
    fn take_begin(&mut self) -> Option<&'static str> {
        match self {
            Self::Read(_) => None,
            Self::Write(tx) => tx.take_begin(),
        }
    }
}

/// The schema's migrations, applied only by `referrals migrate` (or `serve --migrate`).
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The connection options for the database `url` names: WAL, `synchronous=FULL`.
///
/// `temp_store=memory` keeps statement journals in memory. Each insert of a batch's rows may
/// fail half-way on a constraint, so SQLite keeps a statement journal to undo that statement
/// alone; past 64 KiB it spilled to a temporary file, created, written and deleted in each
/// large batch (11 % of the SQLite thread's time at 64 in flight; BENCHMARKS.md, session 17).
/// The journal undoes a statement inside an open transaction and is never read after a crash,
/// so where it lives changes nothing that is durable. Sorts and groupings live in memory too:
/// the largest, a statistics request's over the cases of its period, is of the order of the
/// rows that request already holds in memory.
fn options(url: &str) -> Result<SqliteConnectOptions, Error> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(Error::internal)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .pragma("temp_store", "memory")
        .busy_timeout(WAIT_TO_WRITE))
}

/// Whether `url` names an in-memory database, which lives only as long as a connection to it.
fn in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Creates the database file `url` names if it is missing and applies the migrations.
pub(super) async fn migrate(url: &str) -> Result<(), Error> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options(url)?.create_if_missing(true))
        .await
        .map_err(super::map_sqlx_error)?;
    let migrated = run_migrations(&pool).await;
    pool.close().await;
    migrated
}

/// The migrations the database holds; `None` when it has never been migrated.
async fn applied_migrations(pool: &SqlitePool) -> Result<Option<Vec<Applied>>, sqlx::Error> {
    let migrated: i64 = sqlx::query_scalar(
        "select count(*) from sqlite_master where type = 'table' and name = '_sqlx_migrations'",
    )
    .fetch_one(pool)
    .await?;
    if migrated == 0 {
        return Ok(None);
    }
    sqlx::query_as("select version, success, checksum from _sqlx_migrations order by version")
        .fetch_all(pool)
        .await
        .map(Some)
}

impl SqliteBackend {
    /// Opens the database `url` names and checks that its schema is this build's. An in-memory
    /// database, which nothing else can reach to migrate, is migrated here.
    pub(super) async fn connect(url: &str, max_connections: u32) -> Result<Self, Error> {
        let options = options(url)?;
        let in_memory = in_memory(url);
        let file = (!in_memory).then(|| options.get_filename().to_path_buf());
        if let Some(path) = file.as_ref().filter(|path| !path.exists()) {
            return Err(Error::FailedPrecondition(format!(
                "there is no database at {}: {}",
                path.display(),
                schema::RUN_MIGRATE
            )));
        }
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
        // A connection to a file has no far end that can hang up: sqlx's ping before each
        // acquire only woke the connection's thread, one more wait on every statement or
        // transaction. A connection that did fail fails its next statement, which writes
        // nothing, and sqlx still checks each connection as it is returned.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(super::map_sqlx_error)?;
        if in_memory {
            run_migrations(&pool).await?;
        } else {
            let applied = applied_migrations(&pool).await.map_err(map_sqlx_error)?;
            schema::check(applied.as_deref(), &MIGRATOR)?;
        }
        Ok(Self {
            pool,
            file,
            writer: KeptConnection::new(!in_memory, Some(WAIT_TO_WRITE)),
        })
    }

    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Starts a transaction that reads.
    pub(super) async fn begin_read(&self) -> Result<Transaction, sqlx::Error> {
        Ok(Transaction::Read(self.pool.begin().await?))
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

    /// Starts a write transaction on the writer's connection once this process's earlier ones
    /// have ended, in the order they asked. `BEGIN IMMEDIATE` takes the write lock at once, so
    /// a transaction never fails half-way on upgrading a read lock while another one writes.
    pub(super) async fn begin_write(&self) -> Result<Transaction, sqlx::Error> {
        self.check_file()?;
        let tx = self
            .writer
            .begin(&self.pool, None, "BEGIN IMMEDIATE")
            .await?;
        Ok(Transaction::Write(tx))
    }

    /// [`Self::begin_write`] for a batch of intakes, whose `BEGIN IMMEDIATE` goes at the head of
    /// the batch's lookups and its `COMMIT` at the end of its write: two calls on the
    /// connection's thread for the whole transaction.
    pub(super) async fn begin_intake_batch(&self) -> Result<Transaction, sqlx::Error> {
        self.check_file()?;
        let tx = self
            .writer
            .begin_later(&self.pool, "BEGIN IMMEDIATE")
            .await?;
        Ok(Transaction::Write(tx))
    }

    /// Closes the connections, the writer's once its transaction ends.
    pub(super) async fn close(&self) {
        self.writer.release().await;
        self.pool.close().await;
    }

    /// Writes and commits the health probe's row, in its turn among this process's writers.
    pub(super) async fn check_reachable(&self) -> Result<(), sqlx::Error> {
        self.check_file()?;
        let mut tx = self.begin_write().await?;
        query(super::statements::WRITE_HEALTH_PROBE)
            .bind(chrono::Utc::now().timestamp_micros())
            .execute(super::db::Ex::Sqlite(tx.connection()))
            .await?;
        tx.commit().await
    }

    pub(super) async fn check_durability(&self) -> Result<Durability, sqlx::Error> {
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
async fn run_migrations(pool: &SqlitePool) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut pause = Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        match MIGRATOR.run(pool).await {
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

/// The batch steps of intake. SQLite runs in this process, but sqlx runs each call on the
/// connection's own thread, and every call is a message there and back: the transaction's
/// `BEGIN IMMEDIATE` and the lookups are one script, the write (a multi-row insert per table)
/// and the `COMMIT` another, each one call.
impl SqliteBackend {
    /// The batch's stored idempotency keys, its callers' earlier contacts (by the keyed hashes
    /// `hashes`) and the counters; begins the transaction `tx` when its `BEGIN` is still to send
    /// ([`Self::begin_intake_batch`]).
    pub(super) async fn lookups(
        &self,
        tx: &mut Transaction,
        batch: &[NewIntake],
        hashes: &[&Vec<u8>],
    ) -> Result<Lookups, sqlx::Error> {
        // One script, one call on the connection's thread, as the batch's write is.
        enum Read {
            Begin,
            Keys,
            Contacts,
            Counters,
        }
        let mut script = Query::built(String::new());
        let mut reads = Vec::new();
        if let Some(begin) = tx.take_begin() {
            script.push_statement(begin, &[]);
            reads.push(Read::Begin);
        }
        for chunk in batch.chunks(500) {
            script.push_next().push(
                "select line, request_id, payload_hash, receipt from idempotency_keys \
                 where (line, request_id) in (",
            );
            script.push_values(chunk, |row, intake| {
                row.push_bind(intake.line().as_str())
                    .push_bind(intake.request_id.as_str());
            });
            script.push(")");
            reads.push(Read::Keys);
        }
        for chunk in hashes.chunks(500) {
            script
                .push_next()
                .push("select caller_hash, count(*) from contacts where caller_hash in (");
            for (n, hash) in chunk.iter().enumerate() {
                if n > 0 {
                    script.push(", ");
                }
                script.push_bind(*hash);
            }
            script.push(") group by caller_hash");
            reads.push(Read::Contacts);
        }
        script.push_statement(SELECT_COUNTERS, &[]);
        reads.push(Read::Counters);
        let results = script
            .fetch_each(tx.connection(), persistent(batch.len()))
            .await?;
        if results.len() != reads.len() {
            return Err(sqlx::Error::Protocol(format!(
                "the lookups' script answered for {} statements of {}",
                results.len(),
                reads.len()
            )));
        }
        let mut lookups = Lookups::default();
        for (read, rows) in reads.into_iter().zip(results) {
            for row in &rows {
                match read {
                    Read::Begin => {}
                    Read::Keys => lookups.keys.push(FromRow::from_row(row)?),
                    Read::Contacts => lookups.contacts.push(FromRow::from_row(row)?),
                    Read::Counters => lookups.counters.push(FromRow::from_row(row)?),
                }
            }
        }
        Ok(lookups)
    }

    /// Writes a batch's rows and commits them; returns the directory's new counter when a team
    /// was taken.
    ///
    /// Every statement goes in one script with the `COMMIT`, so the batch costs one call on the
    /// connection's thread however many tables it writes: each call is a wake-up of that thread
    /// and of the writer, which cost more than most of these statements' own work
    /// (BENCHMARKS.md). A statement that fails ends the script before the `COMMIT`, and the
    /// transaction rolls back when `tx` is dropped.
    pub(super) async fn write_intake_batch(
        &self,
        mut tx: KeptTx<Sqlite>,
        rows: &IntakeRows<'_>,
    ) -> Result<Option<i64>, Error> {
        let mut script = Query::built(String::new());
        script.push_statement(
            SET_CASE_NUMBERS,
            &[
                rows.last_case_numbers.0.arg(),
                rows.last_case_numbers.1.arg(),
            ],
        );
        push_rows(
            &mut script,
            INSERT_CASES,
            &rows.cases,
            |row, (intake, case)| {
                let assessment = &intake.assessment;
                let data = &intake.intake;
                row.push_bind(case.case_id)
                    .push_bind(&case.reference)
                    .push_bind(case.line)
                    .push_bind(CaseStatus::Open.as_str())
                    .push_bind(assessment.priority.as_str())
                    .push_bind(assessment.computed.as_str())
                    .push_bind(data.primary_category.as_str())
                    .push_bind(&data.location.province)
                    .push_bind(&data.location.county)
                    .push_bind(data.minors_involved())
                    .push_bind(case.receipt.version)
                    .push_bind(case.created_at)
                    .push_bind(case.created_at)
                    .push_bind(&case.details)
                    .push_bind(case.routing_status.as_str())
                    .push_bind(&intake.requester.subject);
            },
        );
        push_rows(
            &mut script,
            INSERT_DECISIONS,
            &rows.cases,
            |row, (_, case)| {
                row.push_bind(case.case_id)
                    .push_bind(1_i64)
                    .push_bind(case.decision.policy_version)
                    .push_bind(&case.decision.rule_id)
                    .push_bind(case.decision.unrouted())
                    .push_bind(&case.decision_json)
                    .push_bind(case.created_at);
            },
        );
        let requested = ReferralStatus::Requested.as_str();
        push_rows(
            &mut script,
            INSERT_REFERRALS,
            &rows.referrals,
            |row, (id, case_id, point, purpose, at)| {
                row.push_bind(*id)
                    .push_bind(*case_id)
                    .push_bind(point)
                    .push_bind(*purpose)
                    .push_bind(requested)
                    .push_bind(1_i64)
                    .push_bind(*at)
                    .push_bind(*at);
            },
        );
        let assigned = DispatchStatus::Assigned.as_str();
        push_rows(
            &mut script,
            INSERT_DISPATCHES,
            &rows.dispatches,
            |row, (id, case_id, team, at)| {
                row.push_bind(*id)
                    .push_bind(*case_id)
                    .push_bind(team)
                    .push_bind(assigned)
                    .push_bind(1_i64)
                    .push_bind(*at)
                    .push_bind(*at);
            },
        );
        push_rows(
            &mut script,
            INSERT_STEPS,
            &rows.dispatches,
            |row, (id, _, _, at)| {
                row.push_bind(*id)
                    .push_bind(assigned)
                    .push_bind(*at)
                    .push_bind(Option::<Vec<u8>>::None);
            },
        );
        for (_, _, team, at) in &rows.dispatches {
            script.push_statement(ASSIGN_TEAM, &[team.arg(), at.arg()]);
        }
        push_rows(
            &mut script,
            INSERT_TIMERS,
            &rows.timers,
            |row, (id, case_id, kind, subject, due, at)| {
                row.push_bind(*id)
                    .push_bind(*case_id)
                    .push_bind(*kind)
                    .push_bind(*subject)
                    .push_bind(*due)
                    .push_bind("pending")
                    .push_bind(*at);
            },
        );
        push_rows(
            &mut script,
            INSERT_CATEGORIES,
            &rows.categories,
            |row, (case_id, category, primary)| {
                row.push_bind(*case_id)
                    .push_bind(*category)
                    .push_bind(*primary);
            },
        );
        push_rows(
            &mut script,
            INSERT_CONTACTS,
            &rows.cases,
            |row, (intake, case)| {
                row.push_bind(case.contact_id)
                    .push_bind(case.case_id)
                    .push_bind(case.line)
                    .push_bind(&intake.intake.contact.external_call_id)
                    .push_bind(case.created_at)
                    .push_bind(&case.contact)
                    .push_bind(&case.caller_hash);
            },
        );
        push_rows(
            &mut script,
            INSERT_IDEMPOTENCY_KEYS,
            &rows.cases,
            |row, (intake, case)| {
                row.push_bind(case.line)
                    .push_bind(intake.request_id.as_str())
                    .push_bind(&intake.payload_hash[..])
                    .push_bind(case.case_id)
                    .push_bind(&case.receipt_json)
                    .push_bind(case.created_at);
            },
        );
        push_chained(
            &mut script,
            rows.first_event,
            &rows.events,
            &rows.event_hashes,
        );
        push_chained(
            &mut script,
            rows.first_audit,
            &rows.audit,
            &rows.audit_hashes,
        );
        let (last_event, last_audit) = rows.chain_ends();
        script.push_statement(
            SET_CHAINS,
            &[
                last_event.arg(),
                last_audit.arg(),
                rows.event_hashes.last().arg(),
                rows.audit_hashes.last().arg(),
            ],
        );
        let took_team = !rows.dispatches.is_empty();
        if took_team {
            // The script's only row: the directory's counter, moved by this statement.
            script.push_statement(BUMP_DIRECTORY, &[]);
        }
        for (wait_id, case_id, province, rank, since) in &rows.waits {
            script.push_statement(
                INSERT_WAIT,
                &[
                    wait_id.arg(),
                    case_id.arg(),
                    province.arg(),
                    rank.arg(),
                    since.arg(),
                ],
            );
        }
        script.push_statement("COMMIT", &[]);
        let results = script
            .fetch_each(tx.connection(), persistent(rows.cases.len()))
            .await
            .map_err(map_sqlx_error)?;
        tx.committed();
        if !took_team {
            return Ok(None);
        }
        match results.iter().flatten().collect::<Vec<_>>().as_slice() {
            [row] => Ok(Some(row.try_get(0).map_err(map_sqlx_error)?)),
            _ => Err(Error::internal("the directory's counter is missing")),
        }
    }
}

/// Whether a batch's script is kept prepared on its connection: only a batch of one intake's,
/// whose text comes again and again when calls come one at a time (preparing it each time
/// cost ~0.4 ms of a ~1.5 ms intake). A larger batch's script is rarely the same twice, and
/// kept, each held ~14 prepared statements with hundreds of values: sqlx's cache of 100
/// statements a connection grew the server by ~110 MiB at 64 intakes in flight.
fn persistent(intakes: usize) -> bool {
    intakes <= 1
}

/// Appends `rows` to `script` as inserts of [`ROWS_PER_INSERT`] rows at most (well inside
/// SQLite's limit on a statement's bound values): `push` binds one row's values, in the
/// columns' order.
fn push_rows<T>(
    script: &mut Query,
    head: &'static str,
    rows: &[T],
    mut push: impl FnMut(&mut Values<'_>, &T),
) {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        script.push_next().push(head).push_values(chunk, &mut push);
    }
}

/// Appends inserts of chained rows already numbered from `first` and hashed.
fn push_chained<T: Chained>(script: &mut Query, first: i64, rows: &[T], hashes: &[Vec<u8>]) {
    let numbered: Vec<_> = (first..).zip(rows).zip(hashes).collect();
    push_rows(
        script,
        T::INSERT,
        &numbered,
        |row, ((number, item), hash)| {
            item.push(row, *number, hash);
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both kinds of connection, the pool's and the writer's, keep temporary files in memory:
    /// 2 is `MEMORY` (0 is the build's default, a file).
    #[tokio::test]
    async fn every_connection_keeps_its_statement_journals_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("referrals.db").display());
        migrate(&url).await.unwrap();
        let backend = SqliteBackend::connect(&url, 2).await.unwrap();
        let mut read = backend.begin_read().await.unwrap();
        let mut write = backend.begin_write().await.unwrap();
        for (name, tx) in [("read", &mut read), ("write", &mut write)] {
            let store: i64 = sqlx::query_scalar("pragma temp_store")
                .fetch_one(&mut *tx.connection())
                .await
                .unwrap();
            assert_eq!(store, 2, "temp_store on the {name} connection");
        }
        drop((read, write));
        backend.close().await;
    }
}
