//! The SQL both backends share. It is written once, with `$n` placeholders that SQLite and
//! PostgreSQL both accept, and stamped onto each backend's store by [`impl_sql_store!`]; a backend
//! adds only how it connects, begins a write and checks its durability settings.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::crypto::{FieldCipher, Place, row_key};
use crate::domain::Error;
use crate::domain::case::{
    CaseRecord, CaseSummary, DispatchStep, RecordedContact, RecordedDispatch, RecordedFollowUp,
    RecordedNote, RecordedReferral,
};
use crate::domain::decision::{Decision, Destination, Purpose, RoutingStatus};
use crate::domain::intake::{Contact, Intake, NewIntake, Receipt};
use crate::domain::reference;
use crate::domain::sensitive::Sensitive;
use crate::domain::triage::Assessment;
use crate::domain::types::{DispatchStatus, Line, ReferralStatus, RequestedAction};
use crate::routing::directory::{
    Admission, County, DirectoryData, MobileTeam, OpeningHours, ProvinceEntry, ServicePoint,
};
use crate::routing::policy::PolicyDocument;

/// Locks the directory counter for the transaction and reads it (see `DirectoryWatermark`).
/// The health check's write: one row, stamped with the time of the check.
pub(super) const WRITE_HEALTH_PROBE: &str = "insert into health_probe (probe_id, at) values (1, $1) \
    on conflict (probe_id) do update set at = excluded.at";

pub(super) const LOCK_DIRECTORY: &str = "update sequences set last_value = last_value \
     where name = 'directory' returning last_value";

/// Moves the directory counter: this transaction changed the directory.
pub(super) const BUMP_DIRECTORY: &str = "update sequences set last_value = last_value + 1 \
     where name = 'directory' returning last_value";

pub(super) const DIRECTORY_VERSION: &str =
    "select last_value from sequences where name = 'directory'";

pub(super) const INSERT_DECISION: &str = "insert into routing_decisions (case_id, decision_no, \
     policy_version, rule_id, unrouted, decision, created_at) values ($1, $2, $3, $4, $5, $6, $7)";

pub(super) const INSERT_REFERRAL: &str = "insert into referrals (referral_id, case_id, \
     service_point_id, purpose, status, version, created_at, updated_at) \
     values ($1, $2, $3, $4, $5, 1, $6, $6)";

pub(super) const INSERT_DISPATCH: &str = "insert into dispatches (dispatch_id, case_id, team_id, \
     status, version, created_at, updated_at) values ($1, $2, $3, $4, 1, $5, $5)";

pub(super) const ASSIGN_TEAM: &str = "update teams set status = 'busy', load = load + 1, \
     updated_at = $2 where team_id = $1";

pub(super) const SELECT_CASE_DECISIONS: &str = "select case_id, decision_no, decision \
     from routing_decisions where case_id = $1 order by decision_no";

pub(super) const SELECT_DISPATCH_STEPS: &str = "select s.dispatch_id, s.status, s.occurred_at, \
     s.position from dispatch_steps s join dispatches d on d.dispatch_id = s.dispatch_id \
     where d.case_id = $1";

pub(super) const SELECT_NOTES: &str = "select note_id, actor, created_at, body from notes \
     where case_id = $1 order by note_id";

pub(super) const SELECT_FOLLOW_UPS: &str = "select follow_up_id, due_at, reason, outcome, done_at \
     from follow_ups where case_id = $1 order by follow_up_id";

pub(super) const SELECT_REFERRALS: &str = "select referral_id, service_point_id, purpose, status, \
     version, created_at, reason from referrals where case_id = $1 order by created_at, referral_id";

pub(super) const SELECT_DISPATCHES: &str = "select dispatch_id, team_id, status, version, \
     created_at, reason from dispatches where case_id = $1 order by created_at, dispatch_id";

pub(super) const UPSERT_PROVINCE: &str = "insert into provinces (province, neighbours) \
     values ($1, $2) on conflict (province) do update set neighbours = excluded.neighbours";

pub(super) const UPSERT_COUNTY: &str = "insert into counties (province, county, name_fa, lat, lon, \
     covered_by) values ($1, $2, $3, $4, $5, $6) on conflict (province, county) do update set \
     name_fa = excluded.name_fa, lat = excluded.lat, lon = excluded.lon, \
     covered_by = excluded.covered_by";

/// A seed never overwrites occupancy, which the centre itself keeps up to date.
pub(super) const UPSERT_SERVICE_POINT: &str = "insert into service_points (service_point_id, \
     kind, province, county, name, capacity, occupancy, details, updated_at) \
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9) on conflict (service_point_id) do update set \
     kind = excluded.kind, province = excluded.province, county = excluded.county, \
     name = excluded.name, capacity = excluded.capacity, details = excluded.details";

/// A seed never overwrites a team's duty status, load or position, which the team reports.
pub(super) const UPSERT_TEAM: &str = "insert into teams (team_id, province, base_county, name, \
     status, load, lat, lon, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     on conflict (team_id) do update set province = excluded.province, \
     base_county = excluded.base_county, name = excluded.name";

pub(super) const SELECT_PROVINCES: &str =
    "select province, neighbours from provinces order by province";
pub(super) const SELECT_COUNTIES: &str = "select province, county, name_fa, lat, lon, covered_by \
     from counties order by province, county";
pub(super) const SELECT_SERVICE_POINTS: &str = "select service_point_id, kind, province, county, \
     name, capacity, occupancy, details from service_points order by service_point_id";
pub(super) const SELECT_TEAMS: &str = "select team_id, province, base_county, name, status, load, \
     lat, lon from teams order by team_id";
pub(super) const SELECT_POLICY: &str = "select policy_version, document from policies \
     order by policy_version desc limit 1";
pub(super) const LATEST_POLICY_VERSION: &str =
    "select coalesce(max(policy_version), 0) from policies";
pub(super) const UPDATE_TEAM: &str = "update teams set status = $2, \
     lat = coalesce($3, lat), lon = coalesce($4, lon), updated_at = $5 where team_id = $1";
pub(super) const UPDATE_OCCUPANCY: &str = "update service_points set occupancy = $2, \
     updated_at = $3 where service_point_id = $1";
pub(super) const SELECT_POLICY_NEWER: &str = "select policy_version, document from policies \
     where policy_version > $1 order by policy_version desc limit 1";
pub(super) const INSERT_POLICY: &str = "insert into policies (policy_version, document, created_at) \
     select coalesce(max(policy_version), 0) + 1, $1, $2 from policies returning policy_version";

pub(super) const INSERT_EVENTS: &str = "insert into events (event_id, case_id, kind, actor, \
     occurred_at, reason, data, line, province, county, priority, team_id, recorded_by, hash) ";

pub(super) const INSERT_DISPATCH_STEP: &str = "insert into dispatch_steps (dispatch_id, status, \
     occurred_at, position) values ($1, $2, $3, $4)";

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

/// A stored idempotency key with its key columns, as a batch's lookup finds it.
#[derive(sqlx::FromRow)]
pub(super) struct KeyedIdempotencyRow {
    pub(super) line: String,
    pub(super) request_id: String,
    pub(super) payload_hash: Vec<u8>,
    pub(super) receipt: Vec<u8>,
}

/// The heads of a batch's multi-row inserts (`insert_rows!` adds the values).
pub(super) const INSERT_CASES: &str = "insert into cases (case_id, reference, line, status, \
     priority, computed_priority, primary_category, province, county, minors_involved, version, \
     created_at, updated_at, details, routing_status, recorded_by) ";
pub(super) const INSERT_DECISIONS: &str = "insert into routing_decisions (case_id, decision_no, \
     policy_version, rule_id, unrouted, decision, created_at) ";
pub(super) const INSERT_REFERRALS: &str = "insert into referrals (referral_id, case_id, \
     service_point_id, purpose, status, version, created_at, updated_at) ";
pub(super) const INSERT_DISPATCHES: &str = "insert into dispatches (dispatch_id, case_id, \
     team_id, status, version, created_at, updated_at) ";
pub(super) const INSERT_STEPS: &str =
    "insert into dispatch_steps (dispatch_id, status, occurred_at, position) ";
pub(super) const INSERT_TIMERS: &str = "insert into sla_timers (timer_id, case_id, kind, \
     subject_id, due_at, state, created_at) ";
pub(super) const INSERT_CATEGORIES: &str =
    "insert into case_categories (case_id, category, is_primary) ";
pub(super) const INSERT_CONTACTS: &str = "insert into contacts (contact_id, case_id, line, \
     external_call_id, recorded_at, details, caller_hash) ";
pub(super) const INSERT_IDEMPOTENCY_KEYS: &str = "insert into idempotency_keys (line, \
     request_id, payload_hash, case_id, receipt, created_at) ";

/// A stored routing decision.
#[derive(sqlx::FromRow)]
pub(super) struct DecisionRow {
    case_id: Uuid,
    decision_no: i64,
    decision: String,
}

/// A stored referral.
#[derive(sqlx::FromRow)]
pub(super) struct ReferralRow {
    referral_id: Uuid,
    service_point_id: String,
    purpose: String,
    status: String,
    version: i64,
    created_at: i64,
    reason: Option<String>,
}

/// A stored event.
#[derive(sqlx::FromRow)]
pub(super) struct EventDbRow {
    pub(super) event_id: i64,
    pub(super) case_id: Uuid,
    pub(super) kind: String,
    pub(super) actor: String,
    pub(super) occurred_at: i64,
    pub(super) reason: Option<String>,
    pub(super) data: Vec<u8>,
    pub(super) line: String,
    pub(super) province: String,
    pub(super) county: String,
    pub(super) priority: String,
    pub(super) team_id: Option<String>,
    pub(super) recorded_by: String,
}

impl EventDbRow {
    pub(super) fn into_event(self) -> Result<crate::domain::event::FeedEvent, Error> {
        Ok(crate::domain::event::FeedEvent {
            sequence: self.event_id,
            case_id: self.case_id,
            kind: self.kind,
            actor: self.actor,
            occurred_at: from_micros(self.occurred_at)?,
            reason: self.reason,
            data: String::from_utf8(self.data).map_err(Error::internal)?,
            line: parse_enum("line", &self.line)?,
            province: self.province,
            county: self.county,
            priority: parse_enum("priority", &self.priority)?,
            team_id: self.team_id,
            recorded_by: self.recorded_by,
        })
    }
}

pub(super) const EVENT_COLUMNS: &str = "event_id, case_id, kind, actor, occurred_at, reason, \
     data, line, province, county, priority, team_id, recorded_by";

pub(super) const LAST_EVENT: &str = "select last_value from sequences where name = 'event'";

pub(super) const SELECT_CASE_PARTIES: &str =
    "select province, county, recorded_by from cases where case_id = $1";

pub(super) const SELECT_CASE_TEAMS: &str = "select team_id from dispatches where case_id = $1";

pub(super) const SELECT_CASE_SERVICE_POINTS: &str =
    "select service_point_id from referrals where case_id = $1";

/// A stored dispatch step.
#[derive(sqlx::FromRow)]
pub(super) struct DispatchStepRow {
    dispatch_id: Uuid,
    status: String,
    occurred_at: i64,
    position: Option<Vec<u8>>,
}

/// A stored note.
#[derive(sqlx::FromRow)]
pub(super) struct NoteRow {
    note_id: Uuid,
    actor: String,
    created_at: i64,
    body: Vec<u8>,
}

/// A stored follow-up.
#[derive(sqlx::FromRow)]
pub(super) struct FollowUpRow {
    follow_up_id: Uuid,
    due_at: i64,
    reason: String,
    outcome: Option<String>,
    done_at: Option<i64>,
}

/// A stored dispatch.
#[derive(sqlx::FromRow)]
pub(super) struct DispatchRow {
    dispatch_id: Uuid,
    team_id: String,
    status: String,
    version: i64,
    created_at: i64,
    reason: Option<String>,
}

/// The rest of a case: routing, referrals and dispatches.
pub(super) struct CaseExtras {
    pub(super) routing_status: String,
    pub(super) contacts: Vec<ContactRow>,
    pub(super) decisions: Vec<DecisionRow>,
    pub(super) referrals: Vec<ReferralRow>,
    pub(super) dispatches: Vec<DispatchRow>,
    pub(super) steps: Vec<DispatchStepRow>,
    pub(super) notes: Vec<NoteRow>,
    pub(super) follow_ups: Vec<FollowUpRow>,
    pub(super) outcome: Option<String>,
    pub(super) recorded_by: String,
}

#[derive(sqlx::FromRow)]
pub(super) struct ProvinceRow {
    province: String,
    neighbours: String,
}

#[derive(sqlx::FromRow)]
pub(super) struct CountyRow {
    province: String,
    county: String,
    name_fa: String,
    lat: f64,
    lon: f64,
    covered_by: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(super) struct ServicePointRow {
    service_point_id: String,
    kind: String,
    province: String,
    county: String,
    name: String,
    capacity: Option<i64>,
    occupancy: i64,
    details: String,
}

#[derive(sqlx::FromRow)]
pub(super) struct TeamRow {
    team_id: String,
    province: String,
    base_county: String,
    name: String,
    status: String,
    load: i64,
    lat: Option<f64>,
    lon: Option<f64>,
}

#[derive(sqlx::FromRow)]
pub(super) struct PolicyRow {
    pub(super) policy_version: i64,
    document: String,
}

/// The parts of a service point kept as JSON.
#[derive(Serialize, Deserialize)]
pub(super) struct ServicePointDetails {
    lat: f64,
    lon: f64,
    categories: Vec<crate::domain::types::Category>,
    hours: OpeningHours,
    admission: Admission,
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

/// A case row with its routing status.
#[derive(sqlx::FromRow)]
pub(super) struct CaseWithRouting {
    #[sqlx(flatten)]
    pub(super) case: CaseDetailRow,
    pub(super) routing_status: String,
    pub(super) outcome: Option<String>,
    pub(super) recorded_by: String,
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
pub(super) struct CaseDetails {
    pub(super) intake: Intake,
    pub(super) action: RequestedAction,
    pub(super) assessment: Assessment,
}

/// An event to write: a change to a case, with what the feed's watchers filter on.
pub(super) struct EventRow {
    pub(super) case_id: Uuid,
    pub(super) kind: String,
    pub(super) actor: String,
    pub(super) occurred_at: i64,
    pub(super) reason: Option<String>,
    /// Non-sensitive facts of the change as JSON.
    pub(super) data: Vec<u8>,
    pub(super) line: &'static str,
    pub(super) province: String,
    pub(super) county: String,
    pub(super) priority: &'static str,
    /// The team the event concerns, for the team's assignment stream.
    pub(super) team_id: Option<String>,
    /// Who recorded the case, for the recording centre's stream.
    pub(super) recorded_by: String,
}

/// Writes events under the next numbers of the feed and returns the last number. Numbers are
/// taken last in a transaction: the counter row stays locked until commit, so the shorter the
/// stretch after this, the less concurrent writers wait; and a writer that takes numbers after
/// another has to wait for its commit, so numbers become visible in order with no gap.
macro_rules! write_events {
    ($store:ty, $tx:expr, $events:expr) => {{
        let events: &[$crate::store::sql::EventRow] = $events;
        let count = events.len() as i64;
        let (last, mut previous): (i64, Option<Vec<u8>>) =
            sqlx::query_as($crate::store::chain::ADVANCE_CHAIN)
                .bind(count)
                .bind("event")
                .fetch_one(&mut *$tx)
                .await
                .map_err($crate::store::map_sqlx_error)?;
        let mut rows = Vec::with_capacity(events.len());
        for (event_id, event) in (last - count + 1..).zip(events) {
            let hash = event
                .columns(event_id)
                .hash($crate::audit::ChainHasher::new(previous.as_deref()));
            previous = Some(hash.clone());
            rows.push((event_id, event, hash));
        }
        $crate::store::sql::insert_rows!(
            $tx,
            $crate::store::sql::INSERT_EVENTS,
            &rows,
            |row, (event_id, event, hash)| {
                $crate::store::sql::push_event!(row, *event_id, event, hash);
            }
        );
        sqlx::query($crate::store::chain::SET_CHAIN_HEAD)
            .bind(previous)
            .bind("event")
            .execute(&mut *$tx)
            .await
            .map_err($crate::store::map_sqlx_error)?;
        if let Some(notify) = <$store>::NOTIFY_EVENTS {
            sqlx::query(notify)
                .bind(last.to_string())
                .execute(&mut *$tx)
                .await
                .map_err($crate::store::map_sqlx_error)?;
        }
        last
    }};
}

/// Decides, inside transaction `$tx`, whether `$reach` covers the case whose province, county
/// and recorder are given; a case's teams or service points are read only for a reach that
/// turns on them. Evaluates to `Result<bool, sqlx::Error>`.
macro_rules! covers_case {
    ($tx:expr, $reach:expr, $case_id:expr, $province:expr, $county:expr, $recorded_by:expr) => {
        async {
            let reach: &$crate::domain::reach::Reach = $reach;
            let (mut teams, mut points) = (Vec::<String>::new(), Vec::<String>::new());
            match reach {
                $crate::domain::reach::Reach::Team(_) => {
                    teams = sqlx::query_scalar($crate::store::sql::SELECT_CASE_TEAMS)
                        .bind($case_id)
                        .fetch_all(&mut *$tx)
                        .await?;
                }
                $crate::domain::reach::Reach::ServicePoint(_) => {
                    points = sqlx::query_scalar($crate::store::sql::SELECT_CASE_SERVICE_POINTS)
                        .bind($case_id)
                        .fetch_all(&mut *$tx)
                        .await?;
                }
                _ => {}
            }
            Ok::<bool, sqlx::Error>(reach.covers(&$crate::domain::reach::CaseParties {
                province: $province,
                county: $county,
                recorded_by: $recorded_by,
                teams: &teams,
                service_points: &points,
            }))
        }
    };
}
pub(super) use covers_case;

/// Binds an event row's values on `$row`, in `INSERT_EVENTS`'s column order.
macro_rules! push_event {
    ($row:expr, $event_id:expr, $event:expr, $hash:expr) => {{
        let event: &$crate::store::sql::EventRow = $event;
        $row.push_bind($event_id)
            .push_bind(event.case_id)
            .push_bind(&event.kind)
            .push_bind(&event.actor)
            .push_bind(event.occurred_at)
            .push_bind(&event.reason)
            .push_bind(&event.data)
            .push_bind(event.line)
            .push_bind(&event.province)
            .push_bind(&event.county)
            .push_bind(event.priority)
            .push_bind(&event.team_id)
            .push_bind(&event.recorded_by)
            .push_bind($hash);
    }};
}

pub(super) use push_event;

/// Inserts rows with one statement per 500 (well inside both backends' limits on bound
/// values): `$push` binds one row's values, in the columns' order, on `$row`.
macro_rules! insert_rows {
    ($tx:expr, $head:expr, $rows:expr, |$row:ident, $item:pat_param| $push:block) => {{
        for chunk in $rows.chunks(500) {
            let mut query = sqlx::QueryBuilder::<Db>::new($head);
            query.push_values(chunk, |mut $row, $item| $push);
            query
                .build()
                .execute(&mut *$tx)
                .await
                .map_err($crate::store::map_sqlx_error)?;
        }
    }};
}

pub(super) use insert_rows;

pub(super) use write_events;

/// The rows one new case writes, worked out before the transaction touches them.
pub(super) struct NewCase {
    pub(super) case_id: Uuid,
    pub(super) contact_id: Uuid,
    pub(super) line: &'static str,
    pub(super) reference: String,
    pub(super) details: Vec<u8>,
    pub(super) contact: Vec<u8>,
    pub(super) caller_hash: Option<Vec<u8>>,
    pub(super) receipt: Receipt,
    pub(super) receipt_json: Vec<u8>,
    pub(super) created_at: i64,
    pub(super) routing_status: RoutingStatus,
    pub(super) decision: Decision,
    pub(super) decision_json: String,
    pub(super) referrals: Vec<(Uuid, String, Purpose)>,
    pub(super) dispatches: Vec<(Uuid, String)>,
    /// Recorded, routed (or unrouted), and one per team dispatched.
    pub(super) events: Vec<EventRow>,
}

/// The kind of the event a routing decision writes.
pub(super) fn routing_event_kind(status: RoutingStatus, first: bool) -> &'static str {
    match (status, first) {
        (RoutingStatus::Unrouted, _) => "case_unrouted",
        (_, true) => "case_routed",
        (_, false) => "case_rerouted",
    }
}

/// The facts of a routing decision every watcher may see: ids and purposes, no distances (they
/// could place the incident).
pub(super) fn routing_event_data(decision: &Decision) -> serde_json::Value {
    serde_json::json!({
        "status": decision.status().as_str(),
        "policy_version": decision.policy_version,
        "rule_id": decision.rule_id,
        "assignments": decision.assignments().iter().map(|a| {
            let (kind, id) = match &a.destination {
                Destination::Team { id, .. } => ("team", id),
                Destination::ServicePoint { id, .. } => ("service_point", id),
            };
            serde_json::json!({ "purpose": a.purpose.as_str(), "type": kind, "id": id })
        }).collect::<Vec<_>>(),
    })
}

/// Where a case's events are filed, for the watchers' filters.
#[derive(Clone)]
pub(super) struct EventPlace {
    pub(super) case_id: Uuid,
    pub(super) line: &'static str,
    pub(super) province: String,
    pub(super) county: String,
    pub(super) priority: &'static str,
    pub(super) recorded_by: String,
}

impl EventPlace {
    /// An event of this case.
    pub(super) fn event(
        &self,
        kind: impl Into<String>,
        actor: impl Into<String>,
        occurred_at: i64,
        reason: Option<String>,
        data: &serde_json::Value,
        team_id: Option<String>,
    ) -> Result<EventRow, Error> {
        Ok(EventRow {
            case_id: self.case_id,
            kind: kind.into(),
            actor: actor.into(),
            occurred_at,
            reason,
            data: to_json(data)?,
            line: self.line,
            province: self.province.clone(),
            county: self.county.clone(),
            priority: self.priority,
            team_id,
            recorded_by: self.recorded_by.clone(),
        })
    }
}

/// Microseconds since the Unix epoch, the stored form of a time.
pub(super) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(super) fn from_micros(micros: i64) -> Result<DateTime<Utc>, Error> {
    Utc.timestamp_micros(micros)
        .single()
        .ok_or_else(|| Error::internal(format!("stored time out of range: {micros}")))
}

/// Mints UUIDv7s stamped with one time that sort in the order they are minted, so a case's
/// referrals and dispatches list in the order routing made them.
struct Ids {
    context: uuid::ContextV7,
    seconds: u64,
    nanos: u32,
}

impl Ids {
    fn at(at: DateTime<Utc>) -> Self {
        Self {
            context: uuid::ContextV7::new(),
            seconds: u64::try_from(at.timestamp()).unwrap_or(0),
            nanos: at.timestamp_subsec_nanos(),
        }
    }

    fn next(&self) -> Uuid {
        Uuid::new_v7(uuid::Timestamp::from_unix(
            &self.context,
            self.seconds,
            self.nanos,
        ))
    }
}

/// The `sequences` row holding the last case number of `line`.
pub(super) fn case_sequence(line: Line) -> &'static str {
    match line {
        Line::Hotline1480 => "case_hotline_1480",
        Line::Emergency123 => "case_emergency_123",
    }
}

pub(super) fn to_json(value: &impl Serialize) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(Error::internal)
}

/// Decodes stored JSON. The error names only where decoding failed: serde's own message may
/// quote the stored value, which can be sensitive.
pub(super) fn from_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::internal(format!(
            "stored JSON does not decode ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

pub(super) fn parse_enum<T: std::str::FromStr>(column: &str, value: &str) -> Result<T, Error> {
    value
        .parse()
        .map_err(|_| Error::internal(format!("unknown {column} in storage: {value}")))
}

/// The audit row of an intake in a committed batch.
pub(super) fn intake_audit(
    intake: &NewIntake,
    outcome: &crate::store::IntakeOutcome,
) -> crate::audit::AuditEntry {
    use crate::store::IntakeOutcome;
    let (case_id, result) = match outcome {
        IntakeOutcome::Recorded(receipt) | IntakeOutcome::Replayed(receipt) => {
            (Some(receipt.case_id), crate::audit::OK)
        }
        IntakeOutcome::Conflict => (None, "already_exists"),
    };
    crate::audit::AuditEntry::requested(&intake.requester, case_id, result, intake.received_at)
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

/// Works out the rows of a new case numbered `number` on its line, routed by `decision`.
pub(super) fn prepare_case(
    intake: &NewIntake,
    number: u64,
    decision: Decision,
    cipher: &FieldCipher,
    caller: CallerLink,
) -> Result<NewCase, Error> {
    let line = intake.line();
    let ids = Ids::at(intake.received_at);
    let case_id = ids.next();
    let reference = reference::format(line, number);
    let summary = decision.summary();
    let receipt = Receipt {
        case_id,
        reference: reference.clone(),
        priority: intake.assessment.priority,
        computed_priority: intake.assessment.computed,
        triage_reasons: intake.assessment.reasons.clone(),
        version: 1,
        routing: Some(summary.clone()),
        replayed: false,
    };
    let mut referrals = Vec::new();
    let mut dispatches = Vec::new();
    for assignment in &summary.assignments {
        match &assignment.destination {
            Destination::Team { id, .. } => dispatches.push((ids.next(), id.clone())),
            Destination::ServicePoint { id, .. } => {
                referrals.push((ids.next(), id.clone(), assignment.purpose));
            }
        }
    }
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
        "earlier_contacts_from_caller": caller.earlier_contacts,
    });
    let role = match line {
        Line::Hotline1480 => "counsellor",
        Line::Emergency123 => "operator",
    };
    let created_at = micros(intake.received_at);
    let place = EventPlace {
        case_id,
        line: line.as_str(),
        province: intake.intake.location.province.clone(),
        county: intake.intake.location.county.clone(),
        priority: intake.assessment.priority.as_str(),
        recorded_by: intake.requester.subject.clone(),
    };
    let actor = format!("{role}:{}", intake.intake.contact.operator_id);
    let mut events = vec![
        place.event("case_recorded", actor, created_at, None, &event, None)?,
        place.event(
            routing_event_kind(decision.status(), true),
            "routing",
            created_at,
            None,
            &routing_event_data(&decision),
            None,
        )?,
    ];
    for (dispatch_id, team_id) in &dispatches {
        events.push(place.event(
            "dispatch_assigned",
            "routing",
            created_at,
            None,
            &serde_json::json!({ "dispatch_id": dispatch_id, "team_id": team_id }),
            Some(team_id.clone()),
        )?);
    }
    let contact_id = ids.next();
    let decision_json = serde_json::to_string(&decision).map_err(Error::internal)?;
    Ok(NewCase {
        case_id,
        contact_id,
        line: line.as_str(),
        reference,
        details: CASE_DETAILS.seal(cipher, case_id.as_bytes(), &to_json(&details)?)?,
        contact: CONTACT_DETAILS.seal(
            cipher,
            contact_id.as_bytes(),
            &to_json(&intake.intake.contact)?,
        )?,
        caller_hash: caller.hash,
        receipt_json: to_json(&receipt)?,
        receipt,
        created_at,
        routing_status: decision.status(),
        decision_json: DECISION.seal_text(cipher, &decision_row(case_id, 1), &decision_json)?,
        decision,
        referrals,
        dispatches,
        events,
    })
}

/// How a new contact's caller links to earlier calls: the keyed hash of the number, and how
/// many contacts before it came from the same number.
pub(super) struct CallerLink {
    pub(super) hash: Option<Vec<u8>>,
    pub(super) earlier_contacts: i64,
}

/// A sealed column: its table and name, which each value is bound to with its row's key.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sealed(pub(super) &'static str, pub(super) &'static str);

/// The intake, action and triage of a case.
pub(super) const CASE_DETAILS: Sealed = Sealed("cases", "details");
/// A contact, with the caller's number.
pub(super) const CONTACT_DETAILS: Sealed = Sealed("contacts", "details");
/// A note's text.
pub(super) const NOTE_BODY: Sealed = Sealed("notes", "body");
/// What came of a follow-up.
pub(super) const FOLLOW_UP_OUTCOME: Sealed = Sealed("follow_ups", "outcome");
/// A routing decision, whose candidates' distances place the incident.
pub(super) const DECISION: Sealed = Sealed("routing_decisions", "decision");
/// Where a team was at a step (at the scene: where the person is).
pub(super) const STEP_POSITION: Sealed = Sealed("dispatch_steps", "position");

impl Sealed {
    fn place<'a>(&self, row: &'a [u8]) -> Place<'a> {
        Place {
            table: self.0,
            column: self.1,
            row,
        }
    }

    pub(super) fn seal(
        &self,
        cipher: &FieldCipher,
        row: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, Error> {
        cipher.seal(self.place(row), plain)
    }

    pub(super) fn open(
        &self,
        cipher: &FieldCipher,
        row: &[u8],
        stored: &[u8],
    ) -> Result<Vec<u8>, Error> {
        cipher.open(self.place(row), stored)
    }

    pub(super) fn seal_text(
        &self,
        cipher: &FieldCipher,
        row: &[u8],
        plain: &str,
    ) -> Result<String, Error> {
        cipher.seal_text(self.place(row), plain)
    }

    pub(super) fn open_text(
        &self,
        cipher: &FieldCipher,
        row: &[u8],
        stored: &str,
    ) -> Result<String, Error> {
        cipher.open_text(self.place(row), stored)
    }
}

/// The row key of a routing decision.
pub(super) fn decision_row(case_id: Uuid, decision_no: i64) -> Vec<u8> {
    row_key(&case_id, &[&decision_no.to_be_bytes()])
}

/// The row key of a dispatch step.
pub(super) fn step_row(dispatch_id: Uuid, status: &str) -> Vec<u8> {
    row_key(&dispatch_id, &[status.as_bytes()])
}

/// Opens a case's sealed details.
pub(super) fn case_details(
    cipher: &FieldCipher,
    case_id: Uuid,
    stored: &[u8],
) -> Result<CaseDetails, Error> {
    from_json(&CASE_DETAILS.open(cipher, case_id.as_bytes(), stored)?)
}

/// Opens a sealed routing decision.
pub(super) fn decision_of(
    cipher: &FieldCipher,
    case_id: Uuid,
    decision_no: i64,
    stored: &str,
) -> Result<Decision, Error> {
    let json = DECISION.open_text(cipher, &decision_row(case_id, decision_no), stored)?;
    from_json(json.as_bytes())
}

/// Seals a team's position at a step.
pub(super) fn seal_position(
    cipher: &FieldCipher,
    dispatch_id: Uuid,
    status: &str,
    position: Option<(f64, f64)>,
) -> Result<Option<Vec<u8>>, Error> {
    position
        .map(|p| STEP_POSITION.seal(cipher, &step_row(dispatch_id, status), &to_json(&p)?))
        .transpose()
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
    pub(super) fn into_record(
        self,
        extras: CaseExtras,
        cipher: &FieldCipher,
    ) -> Result<CaseRecord, Error> {
        let details = case_details(cipher, self.summary.case_id, &self.details)?;
        let referrals = extras
            .referrals
            .into_iter()
            .map(|row| {
                Ok(RecordedReferral {
                    referral_id: row.referral_id,
                    service_point_id: row.service_point_id,
                    purpose: parse_enum("purpose", &row.purpose)?,
                    status: parse_enum::<ReferralStatus>("referral status", &row.status)?,
                    version: row.version,
                    created_at: from_micros(row.created_at)?,
                    reason: row.reason,
                })
            })
            .collect::<Result<_, Error>>()?;
        let mut steps: HashMap<Uuid, Vec<DispatchStep>> = HashMap::new();
        for row in extras.steps {
            steps
                .entry(row.dispatch_id)
                .or_default()
                .push(DispatchStep {
                    status: parse_enum("dispatch status", &row.status)?,
                    occurred_at: from_micros(row.occurred_at)?,
                    position: row
                        .position
                        .map(|sealed| {
                            let row_key = step_row(row.dispatch_id, &row.status);
                            from_json::<(f64, f64)>(&STEP_POSITION.open(cipher, &row_key, &sealed)?)
                        })
                        .transpose()?,
                });
        }
        let dispatches = extras
            .dispatches
            .into_iter()
            .map(|row| {
                Ok(RecordedDispatch {
                    dispatch_id: row.dispatch_id,
                    team_id: row.team_id,
                    status: parse_enum::<DispatchStatus>("dispatch status", &row.status)?,
                    version: row.version,
                    created_at: from_micros(row.created_at)?,
                    reason: row.reason,
                    // The lifecycle's statuses are declared in its order.
                    steps: {
                        let mut steps = steps.remove(&row.dispatch_id).unwrap_or_default();
                        steps.sort_by_key(|s| (s.status, s.occurred_at));
                        steps
                    },
                })
            })
            .collect::<Result<_, Error>>()?;
        let mut decisions = extras
            .decisions
            .into_iter()
            .map(|row| decision_of(cipher, row.case_id, row.decision_no, &row.decision));
        let routing = decisions.next().transpose()?;
        let reroutes = decisions.collect::<Result<Vec<_>, Error>>()?;
        let notes = extras
            .notes
            .into_iter()
            .map(|row| {
                Ok(RecordedNote {
                    note_id: row.note_id,
                    actor: row.actor,
                    created_at: from_micros(row.created_at)?,
                    text: Sensitive::new(
                        String::from_utf8(NOTE_BODY.open(
                            cipher,
                            row.note_id.as_bytes(),
                            &row.body,
                        )?)
                        .map_err(Error::internal)?,
                    ),
                })
            })
            .collect::<Result<_, Error>>()?;
        let follow_ups = extras
            .follow_ups
            .into_iter()
            .map(|row| {
                Ok(RecordedFollowUp {
                    follow_up_id: row.follow_up_id,
                    due_at: from_micros(row.due_at)?,
                    reason: row.reason,
                    done_at: row.done_at.map(from_micros).transpose()?,
                    outcome: row
                        .outcome
                        .map(|sealed| {
                            FOLLOW_UP_OUTCOME.open_text(
                                cipher,
                                row.follow_up_id.as_bytes(),
                                &sealed,
                            )
                        })
                        .transpose()?
                        .map(Sensitive::new),
                })
            })
            .collect::<Result<_, Error>>()?;
        let contacts = extras
            .contacts
            .into_iter()
            .map(|row| {
                Ok(RecordedContact {
                    contact_id: row.contact_id,
                    line: parse_enum("line", &row.line)?,
                    contact: from_json::<Contact>(&CONTACT_DETAILS.open(
                        cipher,
                        row.contact_id.as_bytes(),
                        &row.details,
                    )?)?,
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
            routing_status: parse_enum("routing status", &extras.routing_status)?,
            routing,
            reroutes,
            outcome: extras
                .outcome
                .as_deref()
                .map(|o| parse_enum("outcome", o))
                .transpose()?,
            notes,
            follow_ups,
            referrals,
            dispatches,
            recorded_by: extras.recorded_by,
        })
    }
}

/// Builds directory data from its stored rows.
pub(super) fn directory_from_rows(
    provinces: Vec<ProvinceRow>,
    counties: Vec<CountyRow>,
    points: Vec<ServicePointRow>,
    teams: Vec<TeamRow>,
) -> Result<DirectoryData, Error> {
    Ok(DirectoryData {
        provinces: provinces
            .into_iter()
            .map(|row| {
                Ok(ProvinceEntry {
                    code: row.province,
                    neighbours: from_json(row.neighbours.as_bytes())?,
                })
            })
            .collect::<Result<_, Error>>()?,
        counties: counties
            .into_iter()
            .map(|row| County {
                province: row.province,
                name_en: row.county,
                name_fa: row.name_fa,
                lat: row.lat,
                lon: row.lon,
                covered_by: row.covered_by,
            })
            .collect(),
        service_points: points
            .into_iter()
            .map(|row| {
                let details: ServicePointDetails = from_json(row.details.as_bytes())?;
                Ok(ServicePoint {
                    id: row.service_point_id,
                    name: row.name,
                    kind: parse_enum("service point kind", &row.kind)?,
                    province: row.province,
                    county: row.county,
                    lat: details.lat,
                    lon: details.lon,
                    categories: details.categories,
                    hours: details.hours,
                    capacity: row.capacity.map(|c| c as u32),
                    occupancy: row.occupancy as u32,
                    admission: details.admission,
                })
            })
            .collect::<Result<_, Error>>()?,
        teams: teams
            .into_iter()
            .map(|row| {
                Ok(MobileTeam {
                    id: row.team_id,
                    name: row.name,
                    province: row.province,
                    base_county: row.base_county,
                    status: parse_enum("duty status", &row.status)?,
                    position: row.lat.zip(row.lon),
                    load: row.load as u32,
                })
            })
            .collect::<Result<_, Error>>()?,
    })
}

/// The JSON column of a service point.
pub(super) fn service_point_details(point: &ServicePoint) -> Result<String, Error> {
    serde_json::to_string(&ServicePointDetails {
        lat: point.lat,
        lon: point.lon,
        categories: point.categories.clone(),
        hours: point.hours.clone(),
        admission: point.admission.clone(),
    })
    .map_err(Error::internal)
}

/// Decodes a stored policy.
pub(super) fn policy_from_row(row: PolicyRow) -> Result<(i64, PolicyDocument), Error> {
    Ok((row.policy_version, from_json(row.document.as_bytes())?))
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
                route: &mut $crate::store::RouteFn<'_>,
                targets: &$crate::domain::sla::SlaTargets,
            ) -> Result<Vec<$crate::store::IntakeOutcome>, $crate::domain::Error> {
                use $crate::store::map_sqlx_error as db_error;
                use $crate::store::sql::*;

                let mut tx = self.begin_write().await.map_err(db_error)?;
                // The directory's counter first: its row lock orders this batch after any other
                // server's batch in flight, so the lookups below see what that one committed.
                let directory: i64 = sqlx::query_scalar(LOCK_DIRECTORY)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_error)?;
                self.directory.check(directory)?;
                // Every caller number's keyed hash (a retry's goes unused), so that one
                // statement can look up the batch's stored keys, its callers' earlier contacts
                // and the case-number counters together. Every statement below covers the whole
                // batch, so a batch costs about as many round trips as a single intake.
                let all_hashes = batch
                    .iter()
                    .map(|intake| match &intake.intake.contact.caller_number {
                        Some(number) => self.cipher.caller_hash(number.expose()),
                        None => Ok(None),
                    })
                    .collect::<Result<Vec<_>, $crate::domain::Error>>()?;
                let distinct: Vec<&Vec<u8>> = {
                    let mut set: Vec<&Vec<u8>> = all_hashes.iter().flatten().collect();
                    set.sort();
                    set.dedup();
                    set
                };
                let lookups = self.lookups(&mut tx, batch, &distinct).await.map_err(db_error)?;

                // Retries first: a key seen before writes nothing.
                let mut seen: std::collections::HashMap<(String, String), IdempotencyRow> =
                    std::collections::HashMap::new();
                for row in lookups.keys {
                    seen.insert(
                        (row.line, row.request_id),
                        IdempotencyRow { payload_hash: row.payload_hash, receipt: row.receipt },
                    );
                }
                let known = batch
                    .iter()
                    .map(|intake| {
                        let key = (intake.line().as_str().to_owned(), intake.request_id.as_str().to_owned());
                        seen.remove(&key).map(|row| replay(row, intake)).transpose()
                    })
                    .collect::<Result<Vec<_>, $crate::domain::Error>>()?;

                let fresh = || {
                    batch
                        .iter()
                        .zip(&known)
                        .filter(|(_, k)| k.is_none())
                        .map(|(i, _)| i)
                };
                // Earlier contacts from each caller's number, by its keyed hash.
                let hashes: Vec<Option<Vec<u8>>> = all_hashes
                    .into_iter()
                    .zip(&known)
                    .filter(|(_, k)| k.is_none())
                    .map(|(hash, _)| hash)
                    .collect();
                let mut earlier: std::collections::HashMap<Vec<u8>, i64> =
                    lookups.contacts.into_iter().collect();

                // Each line's next case number, from its counter.
                let mut next_number = std::collections::HashMap::new();
                for (name, last) in &lookups.case_numbers {
                    for line in [$crate::domain::types::Line::Hotline1480, $crate::domain::types::Line::Emergency123] {
                        if case_sequence(line) == name {
                            next_number.insert(line, *last as u64 + 1);
                        }
                    }
                }

                let mut cases = Vec::new();
                for (intake, hash) in fresh().zip(hashes) {
                    let number = next_number
                        .get_mut(&intake.line())
                        .ok_or_else(|| $crate::domain::Error::internal("a line without a counter"))?;
                    let earlier_contacts = match &hash {
                        Some(hash) => {
                            // Earlier calls in this batch count too.
                            let count = earlier.entry(hash.clone()).or_insert(0);
                            *count += 1;
                            (*count - 1).min(100)
                        }
                        None => 0,
                    };
                    let link = CallerLink { hash, earlier_contacts };
                    let case = prepare_case(intake, *number, route(intake), &self.cipher, link)?;
                    *number += 1;
                    cases.push((intake, case));
                }

                let mut recorded = cases.iter().map(|(_, case)| case.receipt.clone());
                let outcomes = known
                    .into_iter()
                    .map(|known| match known {
                        Some(outcome) => Ok(outcome),
                        None => recorded
                            .next()
                            .map($crate::store::IntakeOutcome::Recorded)
                            .ok_or_else(|| $crate::domain::Error::internal("batch bookkeeping")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let audit: Vec<_> = batch
                    .iter()
                    .zip(&outcomes)
                    .map(|(intake, outcome)| intake_audit(intake, outcome))
                    .collect();
                // Each counter ends at the last number the batch gave.
                let last_number = |line| {
                    next_number
                        .get(&line)
                        .map(|next| *next as i64 - 1)
                        .ok_or_else(|| $crate::domain::Error::internal("a case-number counter is missing"))
                };
                let last_numbers = (
                    last_number($crate::domain::types::Line::Hotline1480)?,
                    last_number($crate::domain::types::Line::Emergency123)?,
                );
                let mut rows = $crate::store::batch::IntakeRows::new(cases, audit, last_numbers, targets);

                // Numbers on the two chains are taken last: their counters stay locked until
                // commit, and the shorter that stretch, the less another writer waits.
                let heads: Vec<(String, i64, Option<Vec<u8>>)> =
                    sqlx::query_as($crate::store::batch::ADVANCE_CHAINS)
                        .bind(rows.events.len() as i64)
                        .bind(rows.audit.len() as i64)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db_error)?;
                let head = |chain: &str| {
                    heads
                        .iter()
                        .find(|(name, _, _)| name == chain)
                        .map(|(_, last, hash)| (*last, hash.clone()))
                        .ok_or_else(|| $crate::domain::Error::internal("a chain counter is missing"))
                };
                rows.chain(head("event")?, head("audit")?);
                let directory = self.write_intake_rows(&mut tx, &rows).await?.unwrap_or(directory);
                tx.commit().await.map_err(db_error)?;
                self.directory.set(directory);
                Ok(outcomes)
            }

            async fn change_case(
                &self,
                change: &$crate::domain::change::CaseChange,
                reroute: &mut $crate::store::RerouteFn<'_>,
                targets: &$crate::domain::sla::SlaTargets,
            ) -> Result<$crate::store::ChangeOutcome, $crate::domain::Error> {
                self.apply_change(change, reroute, targets).await
            }

            async fn due_timers(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> Result<Vec<uuid::Uuid>, $crate::domain::Error> {
                sqlx::query_scalar($crate::store::changes::SELECT_DUE_TIMERS)
                    .bind($crate::store::sql::micros(now))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::map_sqlx_error)
            }

            async fn events(
                &self,
                filter: &$crate::domain::event::EventFilter,
                after: i64,
                up_to: i64,
                limit: u32,
            ) -> Result<Vec<$crate::domain::event::FeedEvent>, $crate::domain::Error> {
                use $crate::store::map_sqlx_error as db_error;
                use $crate::store::sql::*;

                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "select {EVENT_COLUMNS} from events where event_id > "
                ));
                q.push_bind(after).push(" and event_id <= ").push_bind(up_to);
                if let Some(province) = &filter.province {
                    q.push(" and province = ").push_bind(province.clone());
                }
                if let Some(county) = &filter.county {
                    q.push(" and county = ").push_bind(county.clone());
                }
                if let Some(priority) = filter.priority {
                    q.push(" and priority = ").push_bind(priority.as_str());
                }
                if let Some(line) = filter.line {
                    q.push(" and line = ").push_bind(line.as_str());
                }
                if let Some(recorded_by) = &filter.recorded_by {
                    q.push(" and recorded_by = ").push_bind(recorded_by.clone());
                }
                if let Some(team_id) = &filter.team_id {
                    q.push(" and team_id = ").push_bind(team_id.clone());
                }
                q.push(" order by event_id limit ").push_bind(i64::from(limit));
                let rows: Vec<EventDbRow> = q
                    .build_query_as()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                rows.into_iter().map(EventDbRow::into_event).collect()
            }

            async fn statistics(
                &self,
                period: &$crate::domain::statistics::Period,
            ) -> Result<$crate::domain::statistics::Statistics, $crate::domain::Error> {
                use $crate::store::map_sqlx_error as db_error;
                use $crate::store::sql::*;
                use $crate::domain::statistics::{intervals, CaseTimes, ResponseStep, Statistics, STEPS};

                let (from, to) = (micros(period.from), micros(period.to));
                let province = period.province.as_deref();
                // One read transaction: the counts and the intervals describe one moment.
                let mut tx = self.pool.begin().await.map_err(db_error)?;
                let mut counts = Vec::new();
                for column in ["line", "primary_category", "priority", "status", "province"] {
                    let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                        "select {column} as key, count(*) as n from cases where created_at >= "
                    ));
                    q.push_bind(from).push(" and created_at < ").push_bind(to);
                    if let Some(province) = province {
                        q.push(" and province = ").push_bind(province.to_owned());
                    }
                    if let Some(county) = &period.county {
                        q.push(" and county = ").push_bind(county.clone());
                    }
                    q.push(format!(" group by {column} order by n desc, {column}"));
                    let rows: Vec<(String, i64)> = q
                        .build_query_as()
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db_error)?;
                    counts.push(rows.into_iter().map(|(k, n)| (k, n as u64)).collect::<Vec<_>>());
                }
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "select e.case_id, e.kind, min(e.occurred_at) from events e \
                     join cases c on c.case_id = e.case_id where c.created_at >= ",
                );
                q.push_bind(from).push(" and c.created_at < ").push_bind(to);
                if let Some(province) = province {
                    q.push(" and c.province = ").push_bind(province.to_owned());
                }
                if let Some(county) = &period.county {
                    q.push(" and c.county = ").push_bind(county.clone());
                }
                q.push(" and e.kind in ('case_recorded'");
                for (_, kind) in STEPS {
                    q.push(", ").push_bind(kind);
                }
                q.push(") group by e.case_id, e.kind");
                let rows: Vec<(uuid::Uuid, String, i64)> = q
                    .build_query_as()
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;

                let mut times: std::collections::HashMap<uuid::Uuid, CaseTimes> = Default::default();
                for (case_id, kind, at) in rows {
                    let at = from_micros(at)?;
                    let case = times.entry(case_id).or_default();
                    if kind == "case_recorded" {
                        case.recorded = Some(at);
                    } else if let Some((step, _)) = STEPS.iter().find(|(_, k)| *k == kind) {
                        case.steps.insert(*step, at);
                    }
                }
                let measured = intervals(&times);
                let interval = |step| measured.get(&step).copied().unwrap_or_default();
                let mut counts = counts.into_iter();
                let mut next = || counts.next().unwrap_or_default();
                let by_line = next();
                Ok(Statistics {
                    total: by_line.iter().map(|(_, n)| n).sum(),
                    by_line,
                    by_category: next(),
                    by_priority: next(),
                    by_status: next(),
                    by_province: next(),
                    acknowledged: interval(ResponseStep::Acknowledged),
                    on_scene: interval(ResponseStep::OnScene),
                    cleared: interval(ResponseStep::Cleared),
                })
            }

            async fn last_event(&self) -> Result<i64, $crate::domain::Error> {
                sqlx::query_scalar($crate::store::sql::LAST_EVENT)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::store::map_sqlx_error)
            }

            async fn timeline(
                &self,
                case_id: uuid::Uuid,
                reach: &$crate::domain::reach::Reach,
            ) -> Result<Option<Vec<$crate::domain::event::FeedEvent>>, $crate::domain::Error> {
                use $crate::store::map_sqlx_error as db_error;
                use $crate::store::sql::*;

                // One read transaction: the case is judged in reach and its events read at
                // one moment. Nothing is decrypted to decide.
                let mut tx = self.pool.begin().await.map_err(db_error)?;
                let parties: Option<(String, String, String)> = sqlx::query_as(SELECT_CASE_PARTIES)
                    .bind(case_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
                let Some((province, county, recorded_by)) = parties else { return Ok(None) };
                if !covers_case!(tx, reach, case_id, &province, &county, &recorded_by)
                    .await
                    .map_err(db_error)?
                {
                    return Ok(None);
                }
                let query = format!(
                    "select {EVENT_COLUMNS} from events where case_id = $1 order by event_id"
                );
                let rows: Vec<EventDbRow> = sqlx::query_as(sqlx::AssertSqlSafe(query))
                    .bind(case_id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
                rows.into_iter().map(EventDbRow::into_event).collect::<Result<_, _>>().map(Some)
            }

            fn spawn_event_listener(
                &self,
                wake: std::sync::Arc<tokio::sync::Notify>,
                stop: tokio::sync::watch::Receiver<bool>,
            ) -> Option<tokio::task::JoinHandle<()>> {
                self.listen_for_events(wake, stop)
            }

            async fn get_case(
                &self,
                case_id: uuid::Uuid,
            ) -> Result<Option<$crate::domain::case::CaseRecord>, $crate::domain::Error> {
                use $crate::store::map_sqlx_error as db_error;
                use $crate::store::sql::*;

                let query = format!(
                    "select {SUMMARY_COLUMNS}, details, routing_status, outcome, recorded_by from cases \
                     where case_id = $1"
                );
                // One read transaction, so the case and its parts are seen at one moment.
                let mut tx = self.pool.begin().await.map_err(db_error)?;
                let row: Option<CaseWithRouting> = sqlx::query_as(sqlx::AssertSqlSafe(query))
                    .bind(case_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
                let Some(row) = row else { return Ok(None) };
                let extras = CaseExtras {
                    routing_status: row.routing_status,
                    contacts: sqlx::query_as(SELECT_CONTACTS)
                        .bind(case_id)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db_error)?,
                    decisions: sqlx::query_as(SELECT_CASE_DECISIONS)
                        .bind(case_id)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db_error)?,
                    steps: sqlx::query_as(SELECT_DISPATCH_STEPS)
                        .bind(case_id)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db_error)?,
                    notes: sqlx::query_as(SELECT_NOTES)
                        .bind(case_id)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db_error)?,
                    follow_ups: sqlx::query_as(SELECT_FOLLOW_UPS)
                        .bind(case_id)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db_error)?,
                    outcome: row.outcome,
                    recorded_by: row.recorded_by,
                    referrals: sqlx::query_as(SELECT_REFERRALS)
                        .bind(case_id)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db_error)?,
                    dispatches: sqlx::query_as(SELECT_DISPATCHES)
                        .bind(case_id)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db_error)?,
                };
                tx.commit().await.map_err(db_error)?;
                row.case.into_record(extras, &self.cipher).map(Some)
            }

            async fn list_cases(
                &self,
                filter: &$crate::domain::case::CaseFilter,
                page: &$crate::domain::case::PageRequest,
                reach: &$crate::domain::reach::Reach,
            ) -> Result<Vec<$crate::domain::case::CaseSummary>, $crate::domain::Error> {
                use $crate::domain::reach::Reach;
                use $crate::store::map_sqlx_error as db_error;
                use $crate::store::sql::*;

                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "select {SUMMARY_COLUMNS} from cases where true"
                ));
                // The caller's reach first: a list never shows a case its caller may not see.
                match reach {
                    Reach::Everywhere => {}
                    Reach::Area { province, county } => {
                        q.push(" and province = ").push_bind(province.clone());
                        if let Some(county) = county {
                            q.push(" and county = ").push_bind(county.clone());
                        }
                    }
                    Reach::RecordedBy(subject) => {
                        q.push(" and recorded_by = ").push_bind(subject.clone());
                    }
                    Reach::Team(team) => {
                        q.push(" and exists (select 1 from dispatches d \
                                where d.case_id = cases.case_id and d.team_id = ")
                            .push_bind(team.clone())
                            .push(")");
                    }
                    Reach::ServicePoint(point) => {
                        q.push(" and exists (select 1 from referrals r \
                                where r.case_id = cases.case_id and r.service_point_id = ")
                            .push_bind(point.clone())
                            .push(")");
                    }
                    Reach::Nothing => {
                        q.push(" and false");
                    }
                }
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

            async fn load_routing(&self) -> Result<$crate::store::RoutingData, $crate::domain::Error> {
                use $crate::store::map_sqlx_error as db_error;
                use $crate::store::sql::*;

                let mut tx = self.pool.begin().await.map_err(db_error)?;
                let policy: Option<PolicyRow> = sqlx::query_as(SELECT_POLICY)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
                let provinces = sqlx::query_as(SELECT_PROVINCES).fetch_all(&mut *tx).await.map_err(db_error)?;
                let counties = sqlx::query_as(SELECT_COUNTIES).fetch_all(&mut *tx).await.map_err(db_error)?;
                let points = sqlx::query_as(SELECT_SERVICE_POINTS).fetch_all(&mut *tx).await.map_err(db_error)?;
                let teams = sqlx::query_as(SELECT_TEAMS).fetch_all(&mut *tx).await.map_err(db_error)?;
                let directory: i64 = sqlx::query_scalar(DIRECTORY_VERSION)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
                // What the caller now holds is this state of the directory.
                self.directory.set(directory);
                Ok($crate::store::RoutingData {
                    policy: policy.map(policy_from_row).transpose()?,
                    directory: directory_from_rows(provinces, counties, points, teams)?,
                })
            }

            async fn upsert_directory(
                &self,
                data: &$crate::routing::directory::DirectoryData,
            ) -> Result<(), $crate::domain::Error> {
                use $crate::store::map_sqlx_error as db_error;
                use $crate::store::sql::*;

                let now = micros(chrono::Utc::now());
                let mut tx = self.begin_write().await.map_err(db_error)?;
                let seen: i64 = sqlx::query_scalar(LOCK_DIRECTORY)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_error)?;
                self.directory.check(seen)?;
                for province in &data.provinces {
                    let neighbours = serde_json::to_string(&province.neighbours)
                        .map_err($crate::domain::Error::internal)?;
                    sqlx::query(UPSERT_PROVINCE)
                        .bind(&province.code)
                        .bind(neighbours)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                }
                for county in &data.counties {
                    sqlx::query(UPSERT_COUNTY)
                        .bind(&county.province)
                        .bind(&county.name_en)
                        .bind(&county.name_fa)
                        .bind(county.lat)
                        .bind(county.lon)
                        .bind(&county.covered_by)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                }
                for point in &data.service_points {
                    sqlx::query(UPSERT_SERVICE_POINT)
                        .bind(&point.id)
                        .bind(point.kind.as_str())
                        .bind(&point.province)
                        .bind(&point.county)
                        .bind(&point.name)
                        .bind(point.capacity.map(i64::from))
                        .bind(i64::from(point.occupancy))
                        .bind(service_point_details(point)?)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                }
                for team in &data.teams {
                    let status: &'static str = team.status.into();
                    sqlx::query(UPSERT_TEAM)
                        .bind(&team.id)
                        .bind(&team.province)
                        .bind(&team.base_county)
                        .bind(&team.name)
                        .bind(status)
                        .bind(i64::from(team.load))
                        .bind(team.position.map(|p| p.0))
                        .bind(team.position.map(|p| p.1))
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                }
                let directory: i64 = sqlx::query_scalar(BUMP_DIRECTORY)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
                if seen == self.directory.get() {
                    self.directory.set(directory);
                }
                Ok(())
            }

            async fn store_policy(
                &self,
                policy: &$crate::routing::policy::PolicyDocument,
                expected_version: Option<i64>,
            ) -> Result<i64, $crate::domain::Error> {
                use $crate::store::map_sqlx_error as db_error;
                use $crate::store::sql::*;

                let document = serde_json::to_string(policy).map_err($crate::domain::Error::internal)?;
                let mut tx = self.begin_write().await.map_err(db_error)?;
                if let Some(expected) = expected_version {
                    let latest: i64 = sqlx::query_scalar(LATEST_POLICY_VERSION)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(db_error)?;
                    if latest != expected {
                        return Err($crate::domain::Error::Stale(format!(
                            "policy version {latest} is in force, not {expected}; read it again"
                        )));
                    }
                }
                // Two servers storing at once both see the same latest version; the second
                // insert then meets the first's key, and is as stale as a wrong expectation.
                let version: i64 = sqlx::query_scalar(INSERT_POLICY)
                    .bind(document)
                    .bind(micros(chrono::Utc::now()))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|error| match error {
                        sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                            $crate::domain::Error::Stale(
                                "another policy version was stored at the same moment; read it again".into(),
                            )
                        }
                        other => db_error(other),
                    })?;
                tx.commit().await.map_err(db_error)?;
                Ok(version)
            }

            async fn policy_newer_than(
                &self,
                version: i64,
            ) -> Result<Option<(i64, $crate::routing::policy::PolicyDocument)>, $crate::domain::Error> {
                use $crate::store::sql::*;

                let row: Option<PolicyRow> = sqlx::query_as(SELECT_POLICY_NEWER)
                    .bind(version)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::map_sqlx_error)?;
                row.map(policy_from_row).transpose()
            }

            async fn update_directory(
                &self,
                update: &$crate::routing::directory::DirectoryUpdate,
            ) -> Result<(), $crate::domain::Error> {
                use $crate::routing::directory::DirectoryUpdate;
                use $crate::store::map_sqlx_error as db_error;
                use $crate::store::sql::*;

                let now = micros(chrono::Utc::now());
                let (query, what) = match update {
                    DirectoryUpdate::Team { team_id, status, position } => {
                        let status: &'static str = (*status).into();
                        let query = sqlx::query(UPDATE_TEAM)
                            .bind(team_id.clone())
                            .bind(status)
                            .bind(position.map(|p| p.0))
                            .bind(position.map(|p| p.1))
                            .bind(now);
                        (query, "team")
                    }
                    DirectoryUpdate::Occupancy { service_point_id, occupancy } => {
                        let query = sqlx::query(UPDATE_OCCUPANCY)
                            .bind(service_point_id.clone())
                            .bind(i64::from(*occupancy))
                            .bind(now);
                        (query, "service point")
                    }
                };
                let mut tx = self.begin_write().await.map_err(db_error)?;
                let seen: i64 = sqlx::query_scalar(LOCK_DIRECTORY)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_error)?;
                self.directory.check(seen)?;
                let updated = query.execute(&mut *tx).await.map_err(db_error)?.rows_affected();
                if updated == 0 {
                    return Err($crate::domain::Error::NotFound(what));
                }
                let directory: i64 = sqlx::query_scalar(BUMP_DIRECTORY)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
                self.directory.set(directory);
                Ok(())
            }

            async fn append_audit(
                &self,
                entries: &[$crate::audit::AuditEntry],
            ) -> Result<(), $crate::domain::Error> {
                use $crate::store::map_sqlx_error as db_error;
                let mut tx = self.begin_write().await.map_err(db_error)?;
                $crate::store::chain::write_audit!(tx, entries);
                tx.commit().await.map_err(db_error)?;
                Ok(())
            }

            async fn audit_trail(
                &self,
                query: &$crate::audit::AuditQuery,
            ) -> Result<Vec<$crate::audit::AuditRecord>, $crate::domain::Error> {
                use $crate::store::chain::{AuditDbRow, AUDIT_COLUMNS};
                use $crate::store::map_sqlx_error as db_error;
                use $crate::store::sql::micros;

                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "select {AUDIT_COLUMNS} from audit_log where audit_id > "
                ));
                q.push_bind(query.after);
                if let Some(subject) = &query.subject {
                    q.push(" and subject = ").push_bind(subject.clone());
                }
                if let Some(case_id) = query.case_id {
                    q.push(" and case_id = ").push_bind(case_id);
                }
                if let Some(action) = &query.action {
                    q.push(" and action = ").push_bind(action.clone());
                }
                if let Some(outcome) = &query.outcome {
                    q.push(" and outcome = ").push_bind(outcome.clone());
                }
                if let Some(from) = query.from {
                    q.push(" and at >= ").push_bind(micros(from));
                }
                if let Some(before) = query.before {
                    q.push(" and at < ").push_bind(micros(before));
                }
                q.push(" order by audit_id limit ").push_bind(i64::from(query.limit));
                let rows: Vec<AuditDbRow> = q
                    .build_query_as()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                rows.into_iter().map(AuditDbRow::into_record).collect()
            }

            async fn reseal(
                &self,
            ) -> Result<Vec<(String, $crate::store::reseal::ResealCount)>, $crate::domain::Error> {
                use $crate::store::sql::{CASE_DETAILS, CONTACT_DETAILS, NOTE_BODY};
                let label = |c: $crate::store::sql::Sealed| format!("{}.{}", c.0, c.1);
                Ok(vec![
                    (label(CASE_DETAILS), self.reseal_column(CASE_DETAILS, "case_id", false).await?),
                    (label(CONTACT_DETAILS), self.reseal_column(CONTACT_DETAILS, "contact_id", true).await?),
                    (label(NOTE_BODY), self.reseal_column(NOTE_BODY, "note_id", false).await?),
                    ("follow_ups.outcome".into(), self.reseal_outcomes().await?),
                    ("routing_decisions.decision".into(), self.reseal_decisions().await?),
                    ("dispatch_steps.position".into(), self.reseal_positions().await?),
                ])
            }

            async fn verify_chains(
                &self,
            ) -> Result<Vec<$crate::audit::ChainReport>, $crate::domain::Error> {
                use $crate::audit::ChainCheck;
                use $crate::store::chain::*;
                use $crate::store::map_sqlx_error as db_error;
                use $crate::store::sql::*;

                #[derive(sqlx::FromRow)]
                struct Hashed<T> {
                    #[sqlx(flatten)]
                    row: T,
                    number: i64,
                    hash: Option<Vec<u8>>,
                }

                // Walks one chain: its head first, then every row up to it (rows after it are
                // newer writes, committed after the head was read), a page at a time.
                macro_rules! walk {
                    ($chain:expr, $select:expr, $row:ty, |$check:ident, $r:ident| $recompute:expr) => {{
                        let (head, head_hash): (i64, Option<Vec<u8>>) = sqlx::query_as(CHAIN_HEAD)
                            .bind($chain)
                            .fetch_one(&self.pool)
                            .await
                            .map_err(db_error)?;
                        let mut $check = ChainCheck::new($chain);
                        let mut after = 0_i64;
                        while !$check.broken() {
                            let rows: Vec<Hashed<$row>> = sqlx::query_as(sqlx::AssertSqlSafe($select.clone()))
                                .bind(after)
                                .bind(head)
                                .bind(VERIFY_PAGE)
                                .fetch_all(&self.pool)
                                .await
                                .map_err(db_error)?;
                            let Some(last) = rows.last() else { break };
                            after = last.number;
                            for $r in rows {
                                let recomputed = $recompute;
                                $check.row($r.number, $r.hash.as_deref(), recomputed);
                            }
                        }
                        $check.finish(head, head_hash.as_deref())
                    }};
                }

                let events = format!(
                    "select {EVENT_COLUMNS}, event_id as number, hash from events \
                     where event_id > $1 and event_id <= $2 order by event_id limit $3"
                );
                let audit = format!(
                    "select {AUDIT_COLUMNS}, audit_id as number, hash from audit_log \
                     where audit_id > $1 and audit_id <= $2 order by audit_id limit $3"
                );
                Ok(vec![
                    walk!("event", events, EventDbRow, |check, row| row.row.columns().hash(check.hasher())),
                    walk!("audit", audit, AuditDbRow, |check, row| {
                        audit_hash(check.hasher(), row.number, &row.row.into_record()?.entry)
                    }),
                ])
            }

            async fn ping(&self) -> Result<(), $crate::domain::Error> {
                self.check_reachable()
                    .await
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
