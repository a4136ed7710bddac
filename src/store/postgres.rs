//! The PostgreSQL store for production: `synchronous_commit=on`, `fsync` and full page writes.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::Durability;
use super::batch::{CategoryRow, DispatchRow, IntakeRows, Lookups, ReferralRow, TimerRow};
use super::map_sqlx_error;
use super::sql::{EventRow, KeyedIdempotencyRow, NewCase, impl_sql_store, micros};
use crate::audit::AuditEntry;
use crate::domain::Error;
use crate::domain::intake::NewIntake;
use crate::domain::types::{CaseStatus, DispatchStatus, ReferralStatus};

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

    /// Writes and commits the health probe's row: the database answers, accepts writes and
    /// completes a commit (with synchronous standbys, one of them has it too).
    async fn check_reachable(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(super::sql::WRITE_HEALTH_PROBE)
            .bind(chrono::Utc::now().timestamp_micros())
            .execute(&mut *tx)
            .await?;
        tx.commit().await
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

/// The whole batch of new cases in one statement: each table's rows arrive as one array per
/// column and are inserted from `unnest`, so the statement's text is the same for every batch
/// (prepared once per connection) and the batch costs one round trip, whatever its size. The
/// teams taken, the chains' heads, the directory's counter and the feed's notification are
/// part of it.
const WRITE_INTAKES: &str = "with \
    new_cases as (insert into cases (case_id, reference, line, status, priority, \
        computed_priority, primary_category, province, county, minors_involved, version, \
        created_at, updated_at, details, routing_status, recorded_by) \
        select case_id, reference, line, $70, priority, computed, category, province, county, \
            minors, version, at, at, details, routing, recorded_by \
        from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
            $7::text[], $8::text[], $9::bool[], $10::bigint[], $11::bigint[], $12::bytea[], \
            $13::text[], $14::text[]) \
            as c(case_id, reference, line, priority, computed, category, province, county, \
                minors, version, at, details, routing, recorded_by)), \
    new_decisions as (insert into routing_decisions (case_id, decision_no, policy_version, \
        rule_id, unrouted, decision, created_at) \
        select case_id, 1, policy_version, rule_id, unrouted, decision, at \
        from unnest($1::uuid[], $15::bigint[], $16::text[], $17::bool[], $18::text[], \
            $11::bigint[]) as d(case_id, policy_version, rule_id, unrouted, decision, at)), \
    new_contacts as (insert into contacts (contact_id, case_id, line, external_call_id, \
        recorded_at, details, caller_hash) \
        select * from unnest($19::uuid[], $1::uuid[], $3::text[], $20::text[], $11::bigint[], \
            $21::bytea[], $22::bytea[])), \
    new_keys as (insert into idempotency_keys (line, request_id, payload_hash, case_id, \
        receipt, created_at) \
        select * from unnest($3::text[], $23::text[], $24::bytea[], $1::uuid[], $25::bytea[], \
            $11::bigint[])), \
    new_referrals as (insert into referrals (referral_id, case_id, service_point_id, purpose, \
        status, version, created_at, updated_at) \
        select referral_id, case_id, point, purpose, $71, 1, at, at \
        from unnest($26::uuid[], $27::uuid[], $28::text[], $29::text[], $30::bigint[]) \
            as r(referral_id, case_id, point, purpose, at)), \
    new_dispatches as (insert into dispatches (dispatch_id, case_id, team_id, status, version, \
        created_at, updated_at) \
        select dispatch_id, case_id, team_id, $72, 1, at, at \
        from unnest($31::uuid[], $32::uuid[], $33::text[], $34::bigint[]) \
            as d(dispatch_id, case_id, team_id, at)), \
    new_steps as (insert into dispatch_steps (dispatch_id, status, occurred_at) \
        select dispatch_id, $72, at from unnest($31::uuid[], $34::bigint[]) as s(dispatch_id, at)), \
    taken as (update teams set status = 'busy', load = load + t.n, updated_at = t.at \
        from (select team_id, count(*) as n, max(at) as at \
              from unnest($33::text[], $34::bigint[]) as d(team_id, at) group by team_id) t \
        where teams.team_id = t.team_id), \
    new_timers as (insert into sla_timers (timer_id, case_id, kind, subject_id, due_at, state, \
        created_at) \
        select timer_id, case_id, kind, subject_id, due_at, 'pending', at \
        from unnest($35::uuid[], $36::uuid[], $37::text[], $38::uuid[], $39::bigint[], \
            $40::bigint[]) as t(timer_id, case_id, kind, subject_id, due_at, at)), \
    new_categories as (insert into case_categories (case_id, category, is_primary) \
        select * from unnest($41::uuid[], $42::text[], $43::bool[])), \
    new_events as (insert into events (event_id, case_id, kind, actor, occurred_at, reason, \
        data, line, province, county, priority, team_id, recorded_by, hash) \
        select * from unnest($44::bigint[], $45::uuid[], $46::text[], $47::text[], \
            $48::bigint[], $49::text[], $50::bytea[], $51::text[], $52::text[], $53::text[], \
            $54::text[], $55::text[], $56::text[], $57::bytea[])), \
    new_audit as (insert into audit_log (audit_id, at, subject, role, action, case_id, outcome, \
        request_id, hash) \
        select * from unnest($58::bigint[], $59::bigint[], $60::text[], $61::text[], \
            $62::text[], $63::uuid[], $64::text[], $65::text[], $66::bytea[])), \
    heads as (update sequences set hash = case name when 'event' then coalesce($67, hash) \
        else coalesce($68, hash) end where name in ('event', 'audit')), \
    directory as (update sequences set last_value = last_value + 1 \
        where name = 'directory' and cardinality($31::uuid[]) > 0 returning last_value), \
    notified as (select pg_notify('referral_events', $69) where $69 is not null), \
    numbers as (update sequences set last_value = \
        case name when 'case_hotline_1480' then $73::bigint else $74::bigint end \
        where name in ('case_hotline_1480', 'case_emergency_123')) \
    select (select last_value from directory), (select count(*) from notified)";

/// `lookups`: kind 0, a stored idempotency key (line, request id, payload hash, receipt);
/// kind 1, a caller hash and its stored contacts; kind 2, a case-number counter and its last
/// number. The counters need no lock: see `SELECT_CASE_NUMBERS`.
const LOOKUPS: &str = "\
    select 0, line, request_id, payload_hash, receipt, null::bigint from idempotency_keys \
        where (line, request_id) in (select * from unnest($1::text[], $2::text[])) \
    union all \
    select 1, null, null, caller_hash, null, count(*) from contacts \
        where caller_hash = any($3::bytea[]) group by caller_hash \
    union all \
    select 2, name, null, null, null, last_value from sequences \
        where name in ('case_hotline_1480', 'case_emergency_123')";

/// The batch steps of intake, each one statement for the whole batch.
impl PostgresStore {
    /// The batch's stored idempotency keys, its callers' earlier contacts (by the keyed hashes
    /// `hashes`) and the case-number counters, in one statement: one round trip.
    async fn lookups(
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
                _ => found.case_numbers.push((
                    text.ok_or_else(|| missing("counter"))?,
                    number.ok_or_else(|| missing("number"))?,
                )),
            }
        }
        Ok(found)
    }

    /// Writes a batch's rows; returns the directory's new counter when a team was taken.
    async fn write_intake_rows(
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
            |r: &ReferralRow| r.0, |r: &ReferralRow| r.1, |r: &ReferralRow| r.2.as_str(),
            |r: &ReferralRow| r.3, |r: &ReferralRow| r.4);
        // $31: dispatches.
        bind_columns!(rows.dispatches;
            |d: &DispatchRow| d.0, |d: &DispatchRow| d.1, |d: &DispatchRow| d.2.as_str(),
            |d: &DispatchRow| d.3);
        // $35: timers.
        bind_columns!(rows.timers;
            |t: &TimerRow| t.0, |t: &TimerRow| t.1, |t: &TimerRow| t.2, |t: &TimerRow| t.3,
            |t: &TimerRow| t.4, |t: &TimerRow| t.5);
        // $41: categories.
        bind_columns!(rows.categories;
            |c: &CategoryRow| c.0, |c: &CategoryRow| c.1, |c: &CategoryRow| c.2);
        // $44: events.
        q = q.bind(
            (rows.first_event..)
                .take(rows.events.len())
                .collect::<Vec<i64>>(),
        );
        bind_columns!(rows.events;
            |e: &EventRow| e.case_id, |e: &EventRow| e.kind.as_str(), |e: &EventRow| e.actor.as_str(),
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
            .fetch_one(tx)
            .await
            .map_err(map_sqlx_error)?;
        Ok(directory)
    }
}

/// The driver the shared SQL's macros build queries for.
type Db = sqlx::Postgres;

super::changes::impl_changes!(PostgresStore);
super::reseal::impl_reseal!(PostgresStore);
impl_sql_store!(PostgresStore, Postgres);
