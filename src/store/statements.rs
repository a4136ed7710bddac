//! The statements several parts of the store share, in the SQL both backends accept (`$n`
//! placeholders). Statements only one part uses live beside it.

/// Rows per multi-row insert: well inside both backends' limits on bound values.
pub(super) const ROWS_PER_INSERT: usize = 500;

/// The health check's write: one row, stamped with the time of the check.
pub(super) const WRITE_HEALTH_PROBE: &str = "insert into health_probe (probe_id, at) values (1, $1) \
    on conflict (probe_id) do update set at = excluded.at";

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

pub(super) const SELECT_FOLLOW_UPS: &str = "select follow_up_id, due_at, reason, outcome, done_at, \
     service_point_id from follow_ups where case_id = $1 order by follow_up_id";

pub(super) const SELECT_REFERRALS: &str = "select referral_id, case_id, service_point_id, \
     purpose, status, version, created_at, updated_at, reason from referrals where case_id = $1 \
     order by created_at, referral_id";

pub(super) const SELECT_REFERRAL: &str = "select referral_id, case_id, service_point_id, \
     purpose, status, version, created_at, updated_at, reason from referrals where referral_id = $1";

pub(super) const SELECT_DISPATCHES: &str = "select dispatch_id, case_id, team_id, status, \
     version, created_at, updated_at, reason from dispatches where case_id = $1 \
     order by created_at, dispatch_id";

pub(super) const SELECT_DISPATCH: &str = "select dispatch_id, case_id, team_id, status, \
     version, created_at, updated_at, reason from dispatches where dispatch_id = $1";

pub(super) const UPSERT_PROVINCE: &str = "insert into provinces (province, neighbours) \
     values ($1, $2) on conflict (province) do update set neighbours = excluded.neighbours";

pub(super) const UPSERT_COUNTY: &str = "insert into counties (province, county, name_fa, lat, lon, \
     covered_by, county_id) values ($1, $2, $3, $4, $5, $6, $7) on conflict (province, county) \
     do update set name_fa = excluded.name_fa, lat = excluded.lat, lon = excluded.lon, \
     covered_by = excluded.covered_by, \
     county_id = coalesce(excluded.county_id, counties.county_id)";

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
pub(super) const SELECT_COUNTIES: &str = "select province, county, name_fa, lat, lon, covered_by, \
     county_id from counties order by province, county";
/// Every service point, with the places its open referrals hold (requested, accepted, in
/// progress or on hold).
pub(super) const SELECT_SERVICE_POINTS: &str = "select service_point_id, kind, province, county, \
     name, capacity, occupancy, details, \
     (select count(*) from referrals r where r.service_point_id = service_points.service_point_id \
      and r.status in ('requested', 'accepted', 'in_progress', 'on_hold')) as reserved \
     from service_points order by service_point_id";
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

/// The heads of a batch's multi-row inserts ([`super::db::Query::push_values`] adds the values).
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

pub(super) const EVENT_COLUMNS: &str = "event_id, case_id, kind, actor, occurred_at, reason, \
     data, line, province, county, priority, team_id, recorded_by";

pub(super) const LAST_EVENT: &str = "select last_value from sequences where name = 'event'";

pub(super) const SELECT_CASE_PARTIES: &str =
    "select province, county, recorded_by from cases where case_id = $1";

pub(super) const SELECT_CASE_TEAMS: &str = "select team_id from dispatches where case_id = $1";

pub(super) const SELECT_CASE_SERVICE_POINTS: &str =
    "select service_point_id from referrals where case_id = $1";
