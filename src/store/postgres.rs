//! The PostgreSQL store for production: `synchronous_commit=on`, `fsync` and full page writes.

use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool, Postgres};

use super::Durability;
use super::batch::NewCase;
use super::batch::{
    CategoryInsert, DispatchInsert, IntakeRows, Lookups, ReferralInsert, TimerInsert,
};
use super::hosts::Hosts;
use super::kept::{KeptConnection, KeptTx};
use super::map_sqlx_error;
use super::rows::{EventRow, KeyedIdempotencyRow};
use super::schema::{self, Applied};
use super::sealed::micros;
use crate::audit::AuditEntry;
use crate::domain::Error;
use crate::domain::intake::NewIntake;
use crate::domain::types::{CaseStatus, DispatchStatus, ReferralStatus};

/// How long the health check's write may take on the host in use before another host is
/// looked for.
const PROBE_WAIT: Duration = Duration::from_millis(800);

/// Tells every server listening on the database that events up to this number were
/// committed; PostgreSQL delivers it at commit, and not at all on rollback.
pub(super) const NOTIFY_EVENTS: &str = "select pg_notify('referral_events', $1)";

/// The directory counter's row lock. Every write that depends on what other servers wrote
/// takes it first, so the writes of all servers on a database are ordered (see
/// `DirectoryWatermark`).
macro_rules! lock_directory {
    () => {
        "update sequences set last_value = last_value where name = 'directory'"
    };
}

/// `BEGIN` and the directory counter's row lock, sent as one simple query: one round trip.
pub(super) const BEGIN_LOCKED: &str = concat!("begin; ", lock_directory!());

/// [`BEGIN_LOCKED`] for a batch of intakes, whose statements are planned without sequential
/// scans. The batch's lookup is prepared, and PostgreSQL plans a prepared statement once for
/// any arguments after its first five runs: on a new database, with a few rows in each table,
/// that plan scanned `idempotency_keys` and `contacts` whole, and went on doing so for every
/// batch as they grew (2.1 ms a lookup after 6,000 cases, against 0.06 ms by their indexes;
/// BENCHMARKS.md). Sent unprepared it was planned for each batch instead, at 0.2–0.25 ms.
pub(super) const BEGIN_INTAKE_BATCH: &str =
    concat!("begin; set local enable_seqscan = off; ", lock_directory!());

/// The schema's migrations, applied only by `referrals migrate` (or `serve --migrate`).
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// What the service's own role may do, and nothing more (`deploy/postgres-grants.sql`, with the
/// role as the psql variable `role`).
const GRANTS: &str = include_str!("../../deploy/postgres-grants.sql");

/// The migrations the database holds; `None` when it has never been migrated.
async fn applied_migrations(pool: &PgPool) -> Result<Option<Vec<Applied>>, sqlx::Error> {
    let migrated: bool = sqlx::query_scalar("select to_regclass('_sqlx_migrations') is not null")
        .fetch_one(pool)
        .await?;
    if !migrated {
        return Ok(None);
    }
    sqlx::query_as("select version, success, checksum from _sqlx_migrations order by version")
        .fetch_all(pool)
        .await
        .map(Some)
}

/// The options of the host of `url` that accepts writes (the only one, or the primary of
/// several).
async fn primary(url: &str) -> Result<sqlx::postgres::PgConnectOptions, Error> {
    let hosts = Hosts::parse(url)?;
    hosts.choose_primary().await?;
    Ok(hosts.options())
}

/// Applies the migrations to the database `url` names, as the role that owns (or is to own)
/// the tables; PostgreSQL serialises concurrent migrators with an advisory lock.
pub(super) async fn migrate(url: &str) -> Result<(), Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(primary(url).await?)
        .await
        .map_err(map_sqlx_error)?;
    let migrated = MIGRATOR.run(&pool).await.map_err(Error::internal);
    pool.close().await;
    migrated
}

/// Gives `role` what the service needs on the migrated tables and takes away the rest; run as
/// the tables' owner. Refuses a role that owns tables or is a superuser: least privilege would
/// be a fiction for it.
pub(super) async fn grant(url: &str, role: &str) -> Result<(), Error> {
    let mut connection = PgConnection::connect_with(&primary(url).await?)
        .await
        .map_err(map_sqlx_error)?;
    let found: Option<(bool, i64)> = sqlx::query_as(
        "select r.rolsuper, (select count(*) from pg_tables t \
         where t.schemaname = current_schema() and t.tableowner = r.rolname) \
         from pg_roles r where r.rolname = $1",
    )
    .bind(role)
    .fetch_optional(&mut connection)
    .await
    .map_err(map_sqlx_error)?;
    match found {
        None => {
            return Err(Error::FailedPrecondition(format!(
                "there is no role {role}: create it first (create role {role} login password '…')"
            )));
        }
        Some((true, _)) => {
            return Err(Error::FailedPrecondition(format!(
                "{role} is a superuser; the service's role must be an ordinary one"
            )));
        }
        Some((_, owned)) if owned > 0 => {
            return Err(Error::FailedPrecondition(format!(
                "{role} owns {owned} of the tables; the service's role must not own them (run \
                 the migrations as another role)"
            )));
        }
        Some(_) => {}
    }
    let quoted = format!("\"{}\"", role.replace('"', "\"\""));
    let grants = GRANTS.replace(":\"role\"", &quoted);
    // One simple query: PostgreSQL runs its statements as one transaction.
    sqlx::raw_sql(sqlx::AssertSqlSafe(grants))
        .execute(&mut connection)
        .await
        .map_err(map_sqlx_error)?;
    connection.close().await.map_err(map_sqlx_error)
}

/// A PostgreSQL database: its pool and what only PostgreSQL does.
#[derive(Clone)]
pub(super) struct PostgresBackend {
    pool: PgPool,
    /// The hosts the URL names, for failing over to a promoted standby.
    hosts: Arc<Hosts>,
    /// The connection the writes that take the directory's lock keep.
    kept: KeptConnection<Postgres>,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend").finish_non_exhaustive()
    }
}

impl PostgresBackend {
    /// Listens on the events channel and tells `announcements` the number each notification
    /// carries (the last event its transaction committed), and that it cannot tell after each
    /// reconnection, since notifications sent while disconnected are lost.
    pub(super) fn listen_for_events(
        &self,
        announcements: super::Announcements,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let pool = self.pool.clone();
        tokio::spawn(async move {
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
                announcements.tell_unknown();
                loop {
                    tokio::select! {
                        _ = stop.changed() => return,
                        received = listener.try_recv() => match received {
                            Ok(Some(notification)) => match notification.payload().parse() {
                                Ok(last) => announcements.tell(last),
                                Err(_) => announcements.tell_unknown(),
                            },
                            // The connection was lost; notifications may have been missed.
                            Ok(None) => announcements.tell_unknown(),
                            Err(error) => {
                                tracing::warn!(%error, "event listener failed; reconnecting");
                                announcements.tell_unknown();
                                break;
                            }
                        }
                    }
                }
            }
        })
    }

    /// Connects to the database `url` names and checks that its schema is this build's.
    pub(super) async fn connect(url: &str, max_connections: u32) -> Result<Self, Error> {
        let hosts = Arc::new(Hosts::parse(url)?);
        hosts.choose_primary().await?;
        let fresh = hosts.clone();
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            // A connection to the host the service failed over from is closed, not used.
            .before_acquire(move |_, meta| {
                let current = fresh.current_connection(meta.age);
                Box::pin(async move { Ok(current) })
            })
            .connect_with(hosts.options())
            .await
            .map_err(super::map_sqlx_error)?;
        let applied = applied_migrations(&pool)
            .await
            .map_err(|error| match &error {
                sqlx::Error::Database(db) if db.code().as_deref() == Some("42501") => {
                    Error::FailedPrecondition(
                        "this role may not read the schema's version (_sqlx_migrations): give it \
                     the service's privileges with `referrals migrate --grant-to ROLE`, as the \
                     tables' owner"
                            .into(),
                    )
                }
                _ => map_sqlx_error(error),
            })?;
        schema::check(applied.as_deref(), &MIGRATOR)?;
        Ok(Self {
            pool,
            hosts,
            kept: KeptConnection::new(true, None),
        })
    }

    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Starts a transaction with `begin` ([`BEGIN_LOCKED`] or [`BEGIN_INTAKE_BATCH`]) on the
    /// connection the writes that take the directory's lock keep ([`KeptConnection`]).
    pub(super) async fn begin_kept(
        &self,
        begin: &'static str,
    ) -> Result<KeptTx<Postgres>, sqlx::Error> {
        self.kept.begin(&self.pool, Some(&self.hosts), begin).await
    }

    /// Closes the connections, waiting for those in use to be returned.
    pub(super) async fn close(&self) {
        self.kept.release().await;
        self.pool.close().await;
    }

    /// Writes and commits the health probe's row: the database answers, accepts writes and
    /// completes a commit (with synchronous standbys, one of them has it too).
    /// With several hosts, a failed check looks for the one that accepts writes now and moves
    /// there (see [`Hosts`]).
    pub(super) async fn check_reachable(&self) -> Result<(), sqlx::Error> {
        // A host that is gone makes the pool retry its connection until the acquire timeout:
        // the check gives up sooner and looks for the primary.
        let checked = match tokio::time::timeout(PROBE_WAIT, self.probe()).await {
            Ok(checked) => checked,
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        };
        if checked.is_err() && self.hosts.fail_over(&self.pool).await {
            return self.probe().await;
        }
        checked
    }

    async fn probe(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(super::statements::WRITE_HEALTH_PROBE)
            .bind(chrono::Utc::now().timestamp_micros())
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    pub(super) async fn check_durability(&self) -> Result<Durability, sqlx::Error> {
        // Every setting in one round trip.
        let (commit, fsync, full_page_writes, standbys): (String, String, String, String) =
            sqlx::query_as(
                "select current_setting('synchronous_commit'), current_setting('fsync'), \
                 current_setting('full_page_writes'), \
                 current_setting('synchronous_standby_names')",
            )
            .fetch_one(&self.pool)
            .await?;
        let settings = [
            ("synchronous_commit", commit),
            ("fsync", fsync),
            ("full_page_writes", full_page_writes),
            ("synchronous_standby_names", standbys),
        ];
        Ok(Durability {
            weakened: weakened(&settings),
        })
    }
}

/// Each setting with the values that keep an acknowledged commit on disk.
const DURABILITY_SETTINGS: [(&str, &[&str]); 3] = [
    (
        "synchronous_commit",
        &["on", "remote_apply", "remote_write", "local"],
    ),
    ("fsync", &["on"]),
    ("full_page_writes", &["on"]),
];

/// What in `settings` (name, value) may lose an acknowledged commit, each said in words.
fn weakened(settings: &[(&str, String)]) -> Vec<String> {
    let value = |wanted: &str| {
        settings
            .iter()
            .find(|(name, _)| *name == wanted)
            .map_or("", |(_, value)| value.as_str())
    };
    let mut weakened: Vec<String> = DURABILITY_SETTINGS
        .iter()
        .filter(|(name, durable)| !durable.contains(&value(name)))
        .map(|(name, durable)| format!("{name} is {}, not {}", value(name), durable[0]))
        .collect();
    // With synchronous standbys, `local` acknowledges a commit before any standby has it: a
    // failover to one of them loses it.
    if value("synchronous_commit") == "local"
        && !value("synchronous_standby_names").trim().is_empty()
    {
        weakened.push(
            "synchronous_commit is local while synchronous standbys are configured \
             (synchronous_standby_names): a failover to a standby may lose acknowledged intakes"
                .to_owned(),
        );
    }
    weakened
}

/// The whole batch of new cases in one statement: each table's rows arrive as one array per
/// column and are inserted from `unnest`, so the statement's text is the same for every batch
/// (prepared once per connection) and the batch costs one round trip, whatever its size. The
/// teams taken, the chains' heads, the directory's counter and the feed's notification are
/// part of it.
const WRITE_INTAKES: &str = include_str!("sql/write_intakes.sql");

/// `lookups`: kind 0, a stored idempotency key (line, request id, payload hash, receipt);
/// kind 1, a caller hash and its stored contacts; kind 2, a counter of `SELECT_COUNTERS`, its
/// last number and its chain's hash, locked until commit (the audit trail's writer takes
/// numbers without the directory's lock; a locked row is read as last committed, whatever the
/// statement's snapshot).
const LOOKUPS: &str = include_str!("sql/lookups.sql");

/// The batch steps of intake, each one statement for the whole batch.
impl PostgresBackend {
    /// The batch's stored idempotency keys, its callers' earlier contacts (by the keyed hashes
    /// `hashes`) and the counters, in one statement: one round trip.
    pub(super) async fn lookups(
        &self,
        tx: &mut PgConnection,
        batch: &[NewIntake],
        hashes: &[&Vec<u8>],
    ) -> Result<Lookups, sqlx::Error> {
        let (lines, ids): (Vec<&str>, Vec<&str>) = batch
            .iter()
            .map(|intake| (intake.line().as_str(), intake.request_id.as_str()))
            .unzip();
        type LookupRow = (
            i32,
            Option<String>,
            Option<String>,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            Option<i64>,
        );
        // Prepared: its plan, made once in a transaction that takes no sequential scan
        // (BEGIN_INTAKE_BATCH), reads each table by its index whatever its size.
        let rows: Vec<LookupRow> = sqlx::query_as(LOOKUPS)
            .bind(lines)
            .bind(ids)
            .bind(hashes)
            .fetch_all(tx)
            .await?;
        let mut found = Lookups::default();
        let missing = |what: &str| sqlx::Error::Protocol(format!("lookup row without {what}"));
        for (kind, text, request_id, bytes, receipt, number) in rows {
            match kind {
                0 => found.keys.push(KeyedIdempotencyRow {
                    line: text.ok_or_else(|| missing("line"))?,
                    request_id: request_id.ok_or_else(|| missing("request id"))?,
                    payload_hash: bytes.ok_or_else(|| missing("payload hash"))?,
                    receipt: receipt.ok_or_else(|| missing("receipt"))?,
                }),
                1 => found.contacts.push((
                    bytes.ok_or_else(|| missing("caller hash"))?,
                    number.ok_or_else(|| missing("count"))?,
                )),
                _ => found.counters.push((
                    text.ok_or_else(|| missing("counter"))?,
                    number.ok_or_else(|| missing("number"))?,
                    bytes,
                )),
            }
        }
        Ok(found)
    }

    /// Writes a batch's rows; returns the directory's new counter when a team was taken.
    pub(super) async fn write_intake_rows(
        &self,
        tx: &mut PgConnection,
        rows: &IntakeRows<'_>,
    ) -> Result<Option<i64>, Error> {
        let mut q = sqlx::query_as::<_, (Option<i64>, Option<i64>)>(WRITE_INTAKES);
        // One array per column: `unnest` in WRITE_INTAKES turns them back into rows.
        macro_rules! bind_columns {
            ($rows:expr; $($value:expr),* $(,)?) => {
                $(q = q.bind($rows.iter().map($value).collect::<Vec<_>>());)*
            };
        }
        // $1: the cases.
        bind_columns!(rows.cases;
            |(_, c): &(&NewIntake, NewCase)| c.case_id,
            |(_, c): &(&NewIntake, NewCase)| c.reference.as_str(),
            |(_, c): &(&NewIntake, NewCase)| c.line,
            |(i, _): &(&NewIntake, NewCase)| i.assessment.priority.as_str(),
            |(i, _): &(&NewIntake, NewCase)| i.assessment.computed.as_str(),
            |(i, _): &(&NewIntake, NewCase)| i.intake.primary_category.as_str(),
            |(i, _): &(&NewIntake, NewCase)| i.intake.location.province.as_str(),
            |(i, _): &(&NewIntake, NewCase)| i.intake.location.county.as_str(),
            |(i, _): &(&NewIntake, NewCase)| i.intake.minors_involved(),
            |(_, c): &(&NewIntake, NewCase)| c.receipt.version,
            |(_, c): &(&NewIntake, NewCase)| c.created_at,
            |(_, c): &(&NewIntake, NewCase)| c.details.as_slice(),
            |(_, c): &(&NewIntake, NewCase)| c.routing_status.as_str(),
            |(i, _): &(&NewIntake, NewCase)| i.requester.subject.as_str(),
            // $15: the decisions.
            |(_, c): &(&NewIntake, NewCase)| c.decision.policy_version,
            |(_, c): &(&NewIntake, NewCase)| c.decision.rule_id.as_str(),
            |(_, c): &(&NewIntake, NewCase)| c.decision.unrouted(),
            |(_, c): &(&NewIntake, NewCase)| c.decision_json.as_str(),
            // $19: the contacts.
            |(_, c): &(&NewIntake, NewCase)| c.contact_id,
            |(i, _): &(&NewIntake, NewCase)| i.intake.contact.external_call_id.as_str(),
            |(_, c): &(&NewIntake, NewCase)| c.contact.as_slice(),
            |(_, c): &(&NewIntake, NewCase)| c.caller_hash.as_deref(),
            // $23: the idempotency keys.
            |(i, _): &(&NewIntake, NewCase)| i.request_id.as_str(),
            |(i, _): &(&NewIntake, NewCase)| &i.payload_hash[..],
            |(_, c): &(&NewIntake, NewCase)| c.receipt_json.as_slice(),
        );
        // $26: referrals.
        bind_columns!(rows.referrals;
            |r: &ReferralInsert| r.0, |r: &ReferralInsert| r.1, |r: &ReferralInsert| r.2.as_str(),
            |r: &ReferralInsert| r.3, |r: &ReferralInsert| r.4);
        // $31: dispatches.
        bind_columns!(rows.dispatches;
            |d: &DispatchInsert| d.0, |d: &DispatchInsert| d.1, |d: &DispatchInsert| d.2.as_str(),
            |d: &DispatchInsert| d.3);
        // $35: timers.
        bind_columns!(rows.timers;
            |t: &TimerInsert| t.0, |t: &TimerInsert| t.1, |t: &TimerInsert| t.2, |t: &TimerInsert| t.3,
            |t: &TimerInsert| t.4, |t: &TimerInsert| t.5);
        // $41: categories.
        bind_columns!(rows.categories;
            |c: &CategoryInsert| c.0, |c: &CategoryInsert| c.1, |c: &CategoryInsert| c.2);
        // $44: events.
        q = q.bind(
            (rows.first_event..)
                .take(rows.events.len())
                .collect::<Vec<i64>>(),
        );
        bind_columns!(rows.events;
            |e: &EventRow| e.case_id, |e: &EventRow| e.kind, |e: &EventRow| e.actor.as_str(),
            |e: &EventRow| e.occurred_at, |e: &EventRow| e.reason.as_deref(),
            |e: &EventRow| e.data.as_slice(), |e: &EventRow| e.line,
            |e: &EventRow| e.province.as_str(), |e: &EventRow| e.county.as_str(),
            |e: &EventRow| e.priority, |e: &EventRow| e.team_id.as_deref(),
            |e: &EventRow| e.recorded_by.as_str());
        q = q.bind(&rows.event_hashes);
        // $58: audit entries.
        q = q.bind(
            (rows.first_audit..)
                .take(rows.audit.len())
                .collect::<Vec<i64>>(),
        );
        bind_columns!(rows.audit;
            |a: &AuditEntry| micros(a.at), |a: &AuditEntry| a.subject.as_str(),
            |a: &AuditEntry| a.role.as_str(), |a: &AuditEntry| a.action.as_str(),
            |a: &AuditEntry| a.case_id, |a: &AuditEntry| a.outcome.as_str(),
            |a: &AuditEntry| a.request_id.as_str());
        q = q.bind(&rows.audit_hashes);
        let (last_event, last_audit) = rows.chain_ends();
        // $67: the chains' heads, the feed's notification and the statuses.
        let (directory, _): (Option<i64>, Option<i64>) = q
            .bind(rows.event_hashes.last())
            .bind(rows.audit_hashes.last())
            .bind(rows.last_event().map(|last| last.to_string()))
            .bind(CaseStatus::Open.as_str())
            .bind(ReferralStatus::Requested.as_str())
            .bind(DispatchStatus::Assigned.as_str())
            // $73: the case numbers.
            .bind(rows.last_case_numbers.0)
            .bind(rows.last_case_numbers.1)
            // $75: the chains' last numbers.
            .bind(last_event)
            .bind(last_audit)
            .fetch_one(tx)
            .await
            .map_err(map_sqlx_error)?;
        Ok(directory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(commit: &str, standbys: &str) -> Vec<(&'static str, String)> {
        vec![
            ("synchronous_commit", commit.to_owned()),
            ("fsync", "on".to_owned()),
            ("full_page_writes", "on".to_owned()),
            ("synchronous_standby_names", standbys.to_owned()),
        ]
    }

    #[test]
    fn local_commits_are_weak_only_with_synchronous_standbys() {
        assert!(weakened(&settings("on", "")).is_empty());
        assert!(weakened(&settings("on", "standby1")).is_empty());
        assert!(
            weakened(&settings("local", "")).is_empty(),
            "no standby to lose it to"
        );
        let weak = weakened(&settings("local", "FIRST 1 (standby1)"));
        assert_eq!(weak.len(), 1);
        assert!(
            weak[0].contains("a failover to a standby may lose"),
            "{weak:?}"
        );
        let off = weakened(&settings("off", ""));
        assert_eq!(off, ["synchronous_commit is off, not on"]);
    }
}
