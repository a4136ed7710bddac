//! The SQL both backends share. It is written once, with `$n` placeholders that SQLite and
//! PostgreSQL both accept, and stamped onto each backend's store by [`impl_sql_store!`]; a backend
//! adds only how it connects, begins a write and checks its durability settings.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::Error;
use crate::domain::case::{CaseRecord, CaseSummary, RecordedContact};
use crate::domain::intake::{Contact, Intake, NewIntake, Receipt};
use crate::domain::reference;
use crate::domain::triage::Assessment;
use crate::domain::types::{Line, RequestedAction};

pub(super) const FIND_IDEMPOTENCY_KEY: &str = "select payload_hash, receipt from idempotency_keys \
     where line = $1 and request_id = $2";

pub(super) const ADVANCE_SEQUENCE: &str = "update sequences set last_value = last_value + $1 \
     where name = $2 returning last_value";

pub(super) const INSERT_CASE: &str = "insert into cases (case_id, reference, line, status, \
     priority, computed_priority, primary_category, province, county, minors_involved, version, \
     created_at, updated_at, details) \
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

pub(super) const INSERT_CASE_CATEGORY: &str =
    "insert into case_categories (case_id, category, is_primary) values ($1, $2, $3)";

pub(super) const INSERT_CONTACT: &str = "insert into contacts (contact_id, case_id, line, \
     external_call_id, recorded_at, details) values ($1, $2, $3, $4, $5, $6)";

pub(super) const INSERT_IDEMPOTENCY_KEY: &str = "insert into idempotency_keys (line, request_id, \
     payload_hash, case_id, receipt, created_at) values ($1, $2, $3, $4, $5, $6)";

pub(super) const INSERT_EVENT: &str = "insert into events (event_id, case_id, kind, actor, \
     occurred_at, reason, data) values ($1, $2, $3, $4, $5, $6, $7)";

pub(super) const SUMMARY_COLUMNS: &str = "case_id, reference, line, status, priority, \
     primary_category, province, county, minors_involved, version, created_at, updated_at";

pub(super) const SELECT_CONTACTS: &str = "select contact_id, line, recorded_at, details \
     from contacts where case_id = $1 order by contact_id";

/// A stored idempotency key.
#[derive(sqlx::FromRow)]
pub(super) struct IdempotencyRow {
    pub(super) payload_hash: Vec<u8>,
    pub(super) receipt: Vec<u8>,
}

/// The list columns of a case.
#[derive(sqlx::FromRow)]
pub(super) struct CaseRow {
    case_id: Uuid,
    reference: String,
    line: String,
    status: String,
    priority: String,
    primary_category: String,
    province: String,
    county: String,
    minors_involved: bool,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

/// A case with its details column.
#[derive(sqlx::FromRow)]
pub(super) struct CaseDetailRow {
    #[sqlx(flatten)]
    summary: CaseRow,
    details: Vec<u8>,
}

/// A stored contact.
#[derive(sqlx::FromRow)]
pub(super) struct ContactRow {
    contact_id: Uuid,
    line: String,
    recorded_at: i64,
    details: Vec<u8>,
}

/// What the `details` column of a case holds.
#[derive(Serialize, Deserialize)]
struct CaseDetails {
    intake: Intake,
    action: RequestedAction,
    assessment: Assessment,
}

/// The rows one new case writes, worked out before the transaction touches them.
pub(super) struct NewCase {
    pub(super) case_id: Uuid,
    pub(super) contact_id: Uuid,
    pub(super) line: &'static str,
    pub(super) reference: String,
    pub(super) details: Vec<u8>,
    pub(super) contact: Vec<u8>,
    pub(super) receipt: Receipt,
    pub(super) receipt_json: Vec<u8>,
    pub(super) event: Vec<u8>,
    pub(super) actor: String,
    pub(super) created_at: i64,
}

/// Microseconds since the Unix epoch, the stored form of a time.
pub(super) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn from_micros(micros: i64) -> Result<DateTime<Utc>, Error> {
    Utc.timestamp_micros(micros)
        .single()
        .ok_or_else(|| Error::internal(format!("stored time out of range: {micros}")))
}

fn uuid_v7_at(at: DateTime<Utc>) -> Uuid {
    let seconds = u64::try_from(at.timestamp()).unwrap_or(0);
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        seconds,
        at.timestamp_subsec_nanos(),
    ))
}

/// The `sequences` row holding the last case number of `line`.
pub(super) fn case_sequence(line: Line) -> &'static str {
    match line {
        Line::Hotline1480 => "case_hotline_1480",
        Line::Emergency123 => "case_emergency_123",
    }
}

fn to_json(value: &impl Serialize) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(Error::internal)
}

fn from_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(Error::internal)
}

fn parse_enum<T: std::str::FromStr>(column: &str, value: &str) -> Result<T, Error> {
    value
        .parse()
        .map_err(|_| Error::internal(format!("unknown {column} in storage: {value}")))
}

/// Turns a stored idempotency key into the outcome of a retry.
pub(super) fn replay(
    row: IdempotencyRow,
    intake: &NewIntake,
) -> Result<super::IntakeOutcome, Error> {
    if row.payload_hash != intake.payload_hash {
        return Ok(super::IntakeOutcome::Conflict);
    }
    let mut receipt: Receipt = from_json(&row.receipt)?;
    receipt.replayed = true;
    Ok(super::IntakeOutcome::Replayed(receipt))
}

/// Works out the rows of a new case numbered `number` on its line.
pub(super) fn prepare_case(intake: &NewIntake, number: u64) -> Result<NewCase, Error> {
    let line = intake.line();
    let case_id = uuid_v7_at(intake.received_at);
    let reference = reference::format(line, number);
    let receipt = Receipt {
        case_id,
        reference: reference.clone(),
        priority: intake.assessment.priority,
        computed_priority: intake.assessment.computed,
        triage_reasons: intake.assessment.reasons.clone(),
        version: 1,
        replayed: false,
    };
    let details = CaseDetails {
        intake: intake.intake.clone(),
        action: intake.action,
        assessment: intake.assessment.clone(),
    };
    // The event carries only what every watcher of the feed may see: no names, numbers,
    // addresses or narrative.
    let event = serde_json::json!({
        "reference": reference,
        "line": line.as_str(),
        "priority": intake.assessment.priority.as_str(),
        "computed_priority": intake.assessment.computed.as_str(),
        "primary_category": intake.intake.primary_category.as_str(),
        "province": intake.intake.location.province,
        "county": intake.intake.location.county,
        "minors_involved": intake.intake.minors_involved(),
        "request_id": intake.request_id.as_str(),
    });
    let role = match line {
        Line::Hotline1480 => "counsellor",
        Line::Emergency123 => "operator",
    };
    Ok(NewCase {
        case_id,
        contact_id: uuid_v7_at(intake.received_at),
        line: line.as_str(),
        reference,
        details: to_json(&details)?,
        contact: to_json(&intake.intake.contact)?,
        receipt_json: to_json(&receipt)?,
        receipt,
        event: to_json(&event)?,
        actor: format!("{role}:{}", intake.intake.contact.operator_id),
        created_at: micros(intake.received_at),
    })
}

/// Counts the new cases of each line, to take their numbers in one step per line.
pub(super) fn count_by_line<'a>(
    intakes: impl Iterator<Item = &'a NewIntake>,
) -> HashMap<Line, u64> {
    let mut counts = HashMap::new();
    for intake in intakes {
        *counts.entry(intake.line()).or_insert(0) += 1;
    }
    counts
}

impl CaseRow {
    pub(super) fn into_summary(self) -> Result<CaseSummary, Error> {
        Ok(CaseSummary {
            case_id: self.case_id,
            reference: self.reference,
            line: parse_enum("line", &self.line)?,
            status: parse_enum("status", &self.status)?,
            priority: parse_enum("priority", &self.priority)?,
            primary_category: parse_enum("category", &self.primary_category)?,
            province: self.province,
            county: self.county,
            minors_involved: self.minors_involved,
            version: self.version,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
        })
    }
}

impl CaseDetailRow {
    pub(super) fn into_record(self, contacts: Vec<ContactRow>) -> Result<CaseRecord, Error> {
        let details: CaseDetails = from_json(&self.details)?;
        let contacts = contacts
            .into_iter()
            .map(|row| {
                Ok(RecordedContact {
                    contact_id: row.contact_id,
                    line: parse_enum("line", &row.line)?,
                    contact: from_json::<Contact>(&row.details)?,
                    recorded_at: from_micros(row.recorded_at)?,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(CaseRecord {
            summary: self.summary.into_summary()?,
            intake: details.intake,
            action: details.action,
            assessment: details.assessment,
            contacts,
        })
    }
}

/// Implements [`super::Store`] for a backend's store with the shared SQL.
///
/// The store type must have a `pool` field and a `begin_write` method that starts a write
/// transaction, plus `check_durability` for its own settings.
macro_rules! impl_sql_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn record_intakes(
                &self,
                batch: &[$crate::domain::intake::NewIntake],
            ) -> Result<Vec<$crate::store::IntakeOutcome>, $crate::domain::Error> {
                use $crate::store::map_sqlx_error as db_error;
                use $crate::store::sql::*;

                let mut tx = self.begin_write().await.map_err(db_error)?;

                // Retries first: a key seen before writes nothing.
                let mut known = Vec::with_capacity(batch.len());
                for intake in batch {
                    let row: Option<IdempotencyRow> = sqlx::query_as(FIND_IDEMPOTENCY_KEY)
                        .bind(intake.line().as_str())
                        .bind(intake.request_id.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_error)?;
                    known.push(row.map(|row| replay(row, intake)).transpose()?);
                }

                // Case numbers, one step per line.
                let fresh = || {
                    batch
                        .iter()
                        .zip(&known)
                        .filter(|(_, k)| k.is_none())
                        .map(|(i, _)| i)
                };
                let mut next_number = std::collections::HashMap::new();
                for (line, count) in count_by_line(fresh()) {
                    let last: i64 = sqlx::query_scalar(ADVANCE_SEQUENCE)
                        .bind(count as i64)
                        .bind(case_sequence(line))
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(db_error)?;
                    next_number.insert(line, last as u64 - count + 1);
                }

                let mut cases = Vec::new();
                for intake in fresh() {
                    let number = next_number.entry(intake.line()).or_insert(1);
                    let case = prepare_case(intake, *number)?;
                    *number += 1;
                    let assessment = &intake.assessment;
                    let data = &intake.intake;
                    sqlx::query(INSERT_CASE)
                        .bind(case.case_id)
                        .bind(&case.reference)
                        .bind(case.line)
                        .bind($crate::domain::types::CaseStatus::Open.as_str())
                        .bind(assessment.priority.as_str())
                        .bind(assessment.computed.as_str())
                        .bind(data.primary_category.as_str())
                        .bind(&data.location.province)
                        .bind(&data.location.county)
                        .bind(data.minors_involved())
                        .bind(case.receipt.version)
                        .bind(case.created_at)
                        .bind(case.created_at)
                        .bind(&case.details)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                    for category in data.categories() {
                        sqlx::query(INSERT_CASE_CATEGORY)
                            .bind(case.case_id)
                            .bind(category.as_str())
                            .bind(category == data.primary_category)
                            .execute(&mut *tx)
                            .await
                            .map_err(db_error)?;
                    }
                    sqlx::query(INSERT_CONTACT)
                        .bind(case.contact_id)
                        .bind(case.case_id)
                        .bind(case.line)
                        .bind(&data.contact.external_call_id)
                        .bind(case.created_at)
                        .bind(&case.contact)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                    sqlx::query(INSERT_IDEMPOTENCY_KEY)
                        .bind(case.line)
                        .bind(intake.request_id.as_str())
                        .bind(&intake.payload_hash[..])
                        .bind(case.case_id)
                        .bind(&case.receipt_json)
                        .bind(case.created_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                    cases.push(case);
                }

                // Event numbers last: the sequence row stays locked until commit, so the shorter
                // the stretch after this, the less concurrent writers wait.
                if !cases.is_empty() {
                    let count = cases.len() as i64;
                    let last: i64 = sqlx::query_scalar(ADVANCE_SEQUENCE)
                        .bind(count)
                        .bind("event")
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(db_error)?;
                    for (event_id, case) in (last - count + 1..).zip(&cases) {
                        sqlx::query(INSERT_EVENT)
                            .bind(event_id)
                            .bind(case.case_id)
                            .bind("case_recorded")
                            .bind(&case.actor)
                            .bind(case.created_at)
                            .bind(Option::<&str>::None)
                            .bind(&case.event)
                            .execute(&mut *tx)
                            .await
                            .map_err(db_error)?;
                    }
                }
                tx.commit().await.map_err(db_error)?;

                let mut recorded = cases.into_iter();
                known
                    .into_iter()
                    .map(|known| match known {
                        Some(outcome) => Ok(outcome),
                        None => recorded
                            .next()
                            .map(|case| $crate::store::IntakeOutcome::Recorded(case.receipt))
                            .ok_or_else(|| $crate::domain::Error::internal("batch bookkeeping")),
                    })
                    .collect()
            }

            async fn get_case(
                &self,
                case_id: uuid::Uuid,
            ) -> Result<Option<$crate::domain::case::CaseRecord>, $crate::domain::Error> {
                use $crate::store::map_sqlx_error as db_error;
                use $crate::store::sql::*;

                let query =
                    format!("select {SUMMARY_COLUMNS}, details from cases where case_id = $1");
                let row: Option<CaseDetailRow> = sqlx::query_as(sqlx::AssertSqlSafe(query))
                    .bind(case_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_error)?;
                let Some(row) = row else { return Ok(None) };
                let contacts: Vec<ContactRow> = sqlx::query_as(SELECT_CONTACTS)
                    .bind(case_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                row.into_record(contacts).map(Some)
            }

            async fn list_cases(
                &self,
                filter: &$crate::domain::case::CaseFilter,
                page: &$crate::domain::case::PageRequest,
            ) -> Result<Vec<$crate::domain::case::CaseSummary>, $crate::domain::Error> {
                use $crate::store::map_sqlx_error as db_error;
                use $crate::store::sql::*;

                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "select {SUMMARY_COLUMNS} from cases where true"
                ));
                if let Some(line) = filter.line {
                    q.push(" and line = ").push_bind(line.as_str());
                }
                if let Some(priority) = filter.priority {
                    q.push(" and priority = ").push_bind(priority.as_str());
                }
                if let Some(status) = filter.status {
                    q.push(" and status = ").push_bind(status.as_str());
                }
                if let Some(province) = &filter.province {
                    q.push(" and province = ").push_bind(province.clone());
                }
                if let Some(county) = &filter.county {
                    q.push(" and county = ").push_bind(county.clone());
                }
                if let Some(category) = filter.category {
                    q.push(
                        " and exists (select 1 from case_categories cc \
                         where cc.case_id = cases.case_id and cc.category = ",
                    )
                    .push_bind(category.as_str())
                    .push(")");
                }
                if let Some(from) = filter.created_from {
                    q.push(" and created_at >= ").push_bind(micros(from));
                }
                if let Some(before) = filter.created_before {
                    q.push(" and created_at < ").push_bind(micros(before));
                }
                if let Some(after) = page.after {
                    q.push(" and (created_at, case_id) < (")
                        .push_bind(micros(after.created_at))
                        .push(", ")
                        .push_bind(after.case_id)
                        .push(")");
                }
                q.push(" order by created_at desc, case_id desc limit ")
                    .push_bind(page.size as i64);
                let rows: Vec<CaseRow> = q
                    .build_query_as()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                rows.into_iter().map(CaseRow::into_summary).collect()
            }

            async fn ping(&self) -> Result<(), $crate::domain::Error> {
                sqlx::query("select 1")
                    .execute(&self.pool)
                    .await
                    .map(drop)
                    .map_err($crate::store::map_sqlx_error)
            }

            async fn durability(&self) -> Result<$crate::store::Durability, $crate::domain::Error> {
                self.check_durability()
                    .await
                    .map_err($crate::store::map_sqlx_error)
            }

            async fn close(&self) {
                self.pool.close().await;
            }
        }
    };
}

pub(super) use impl_sql_store;
