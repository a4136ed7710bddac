//! Conversions of the tracking requests (case, referral and dispatch changes, watches) and of
//! the events they return.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tonic::Status;
use uuid::Uuid;

use super::{Violations, WireEnum, timestamp};
use crate::access::Caller;
use crate::domain::Error;
use crate::domain::change::{CaseChange, CaseOutcome, Change, ChangeKey};
use crate::domain::event::{EventFilter, EventKind, FeedEvent};
use crate::domain::intake::{RequestId, limits};
use crate::domain::province;
use crate::domain::sensitive::Sensitive;
use crate::domain::statistics::{Interval, Period, Statistics, within_target};
use crate::domain::types::{CaseStatus, Category, DispatchStatus, Line, Priority, ReferralStatus};
use crate::pb;
use crate::store::Store;
use crate::tracking::watch::WatchItem;

/// How far ahead of the server's clock a device's time may be (its clock's drift).
const OCCURRED_AHEAD: chrono::TimeDelta = chrono::TimeDelta::minutes(2);
/// How long a device may hold a report before it reaches the server (a day offline).
const OCCURRED_BEFORE: chrono::TimeDelta = chrono::TimeDelta::hours(24);

impl Violations {
    /// The version a change is based on.
    fn expected_version(&mut self, raw: i64) -> Option<i64> {
        if raw < 1 {
            self.add(
                "expected_version",
                "is required: the version the change is based on (1 or more)",
            );
            return None;
        }
        Some(raw)
    }

    /// The case version an addition is based on: 0 for none.
    fn optional_version(&mut self, raw: i64) -> Option<Option<i64>> {
        match raw {
            0 => Some(None),
            n if n > 0 => Some(Some(n)),
            _ => {
                self.add("expected_version", "must be 0 (no check) or a version");
                None
            }
        }
    }

    /// A reason, optional here (the lifecycle says when one is needed).
    fn reason(&mut self, field: &str, raw: String) -> Option<Option<String>> {
        let before = self.0.len();
        let text = self.text(field, raw, limits::MAX_REASON, true);
        (self.0.len() == before).then_some(text)
    }

    /// The client's key for a change, when it sent one: its request id with a hash of the
    /// whole request, so that a retry is recognised and a reused id with other content is not.
    pub(super) fn change_key(
        &mut self,
        raw: &impl prost::Message,
        request_id: &str,
    ) -> Option<ChangeKey> {
        if request_id.is_empty() {
            return None;
        }
        match RequestId::parse(request_id) {
            Ok(id) => Some(ChangeKey {
                request_id: id.as_str().to_owned(),
                payload_hash: Sha256::digest(raw.encode_to_vec()).to_vec(),
            }),
            Err(why) => {
                self.add("request_id", why);
                None
            }
        }
    }

    /// When a report happened on the device: within [`OCCURRED_BEFORE`] before `now` and
    /// [`OCCURRED_AHEAD`] after it.
    fn occurred_at(
        &mut self,
        raw: Option<prost_types::Timestamp>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let raw = raw?;
        let Some(at) = DateTime::<Utc>::from_timestamp(raw.seconds, raw.nanos.max(0) as u32) else {
            self.add("occurred_at", "is not a valid time");
            return None;
        };
        if at > now + OCCURRED_AHEAD {
            self.add(
                "occurred_at",
                "is more than 2 minutes ahead of the server's clock",
            );
            return None;
        }
        if at < now - OCCURRED_BEFORE {
            self.add(
                "occurred_at",
                "is more than 24 hours before the server's clock",
            );
            return None;
        }
        Some(at)
    }

    /// A required identifier.
    pub(super) fn uuid(&mut self, field: &str, raw: &str) -> Option<Uuid> {
        if raw.is_empty() {
            self.add(field, "is required");
            return None;
        }
        let id = Uuid::parse_str(raw).ok();
        if id.is_none() {
            self.add(field, "is not a UUID");
        }
        id
    }
}

fn change(
    v: Violations,
    change: Option<Change>,
    expected_version: Option<Option<i64>>,
    caller: &Caller,
    at: DateTime<Utc>,
    key: Option<ChangeKey>,
    occurred_at: Option<DateTime<Utc>>,
) -> Result<CaseChange, Error> {
    let parsed = match (change, expected_version) {
        (Some(change), Some(expected_version)) => Some(CaseChange {
            requester: caller.requester(crate::access::Operation::of(&change)),
            change,
            expected_version,
            actor: caller.actor(),
            at,
            key,
            occurred_at,
        }),
        _ => None,
    };
    v.finish(parsed)
}

/// Parses a referral transition.
pub(crate) fn referral_change(
    raw: pb::TransitionReferralRequest,
    at: DateTime<Utc>,
    caller: &Caller,
) -> Result<CaseChange, Error> {
    let mut v = Violations::default();
    let key = v.change_key(&raw, &raw.request_id);
    let occurred_at = v.occurred_at(raw.occurred_at, at);
    let id = v.uuid("referral_id", &raw.referral_id);
    let version = v.expected_version(raw.expected_version);
    let to = v.enumeration::<ReferralStatus>("status", raw.status);
    let reason = v.reason("reason", raw.reason);
    let parsed = match (id, to, reason) {
        (Some(referral_id), Some(to), Some(reason)) => Some(Change::Referral {
            referral_id,
            to,
            reason,
        }),
        _ => None,
    };
    change(v, parsed, version.map(Some), caller, at, key, occurred_at)
}

/// Parses a dispatch status report.
pub(crate) fn dispatch_change(
    raw: pb::ReportDispatchStatusRequest,
    at: DateTime<Utc>,
    caller: &Caller,
) -> Result<CaseChange, Error> {
    let mut v = Violations::default();
    let key = v.change_key(&raw, &raw.request_id);
    let occurred_at = v.occurred_at(raw.occurred_at, at);
    let id = v.uuid("dispatch_id", &raw.dispatch_id);
    let version = v.expected_version(raw.expected_version);
    let to = v.enumeration::<DispatchStatus>("status", raw.status);
    let reason = v.reason("reason", raw.reason);
    let position = match raw.position {
        None => Some(None),
        some => v.position("position", some).map(Some),
    };
    let parsed = match (id, to, reason, position) {
        (Some(dispatch_id), Some(to), Some(reason), Some(position)) => Some(Change::Dispatch {
            dispatch_id,
            to,
            reason,
            position,
        }),
        _ => None,
    };
    change(v, parsed, version.map(Some), caller, at, key, occurred_at)
}

/// Parses a priority change.
pub(crate) fn priority_change(
    raw: pb::ChangePriorityRequest,
    at: DateTime<Utc>,
    caller: &Caller,
) -> Result<CaseChange, Error> {
    let mut v = Violations::default();
    let key = v.change_key(&raw, &raw.request_id);
    let id = v.uuid("case_id", &raw.case_id);
    let version = v.expected_version(raw.expected_version);
    let to = v.enumeration::<Priority>("priority", raw.priority);
    let reason = v.reason("reason", raw.reason);
    let parsed = match (id, to, reason) {
        (Some(case_id), Some(to), Some(reason)) => Some(Change::Priority {
            case_id,
            to,
            reason,
        }),
        _ => None,
    };
    change(v, parsed, version.map(Some), caller, at, key, None)
}

/// Parses a closing.
pub(crate) fn close_change(
    raw: pb::CloseCaseRequest,
    at: DateTime<Utc>,
    caller: &Caller,
) -> Result<CaseChange, Error> {
    let mut v = Violations::default();
    let key = v.change_key(&raw, &raw.request_id);
    let id = v.uuid("case_id", &raw.case_id);
    let version = v.expected_version(raw.expected_version);
    let outcome = v.enumeration::<CaseOutcome>("outcome", raw.outcome);
    let reason = v.reason("reason", raw.reason);
    let parsed = match (id, outcome, reason) {
        (Some(case_id), Some(outcome), Some(reason)) => Some(Change::Close {
            case_id,
            outcome,
            reason,
        }),
        _ => None,
    };
    change(v, parsed, version.map(Some), caller, at, key, None)
}

/// Parses a reopening.
pub(crate) fn reopen_change(
    raw: pb::ReopenCaseRequest,
    at: DateTime<Utc>,
    caller: &Caller,
) -> Result<CaseChange, Error> {
    let mut v = Violations::default();
    let key = v.change_key(&raw, &raw.request_id);
    let id = v.uuid("case_id", &raw.case_id);
    let version = v.expected_version(raw.expected_version);
    let before = v.0.len();
    let reason = v.text("reason", raw.reason, limits::MAX_REASON, true);
    if reason.is_none() && v.0.len() == before {
        v.add("reason", "is required: say why the case is reopened");
    }
    let parsed = match (id, reason) {
        (Some(case_id), Some(reason)) => Some(Change::Reopen { case_id, reason }),
        _ => None,
    };
    change(v, parsed, version.map(Some), caller, at, key, None)
}

/// Parses a note.
pub(crate) fn note_change(
    raw: pb::AddNoteRequest,
    at: DateTime<Utc>,
    caller: &Caller,
) -> Result<CaseChange, Error> {
    let mut v = Violations::default();
    let key = v.change_key(&raw, &raw.request_id);
    let id = v.uuid("case_id", &raw.case_id);
    let missing = raw.text.trim().is_empty();
    let text = v.text("text", raw.text, limits::MAX_NARRATIVE, true);
    if missing {
        v.add("text", "is required");
    }
    let parsed = match (id, text) {
        (Some(case_id), Some(text)) => Some(Change::Note {
            case_id,
            text: Sensitive::new(text),
        }),
        _ => None,
    };
    let version = v.optional_version(raw.expected_version);
    change(v, parsed, version, caller, at, key, None)
}

/// Parses a follow-up to schedule. A due time in the past is refused.
pub(crate) fn schedule_change(
    raw: pb::ScheduleFollowUpRequest,
    at: DateTime<Utc>,
    caller: &Caller,
) -> Result<CaseChange, Error> {
    let mut v = Violations::default();
    let key = v.change_key(&raw, &raw.request_id);
    let id = v.uuid("case_id", &raw.case_id);
    let due_at = v.time("due_at", raw.due_at);
    if due_at.is_some_and(|due| due <= at) {
        v.add("due_at", "must be in the future");
    }
    let reason = v.required_text("reason", raw.reason, limits::MAX_REASON);
    let parsed = match (id, reason) {
        (Some(case_id), Some(reason)) => Some(Change::ScheduleFollowUp {
            case_id,
            due_at,
            reason,
            hand_to_base: raw.hand_to_neighbourhood_base,
        }),
        _ => None,
    };
    let version = v.optional_version(raw.expected_version);
    change(v, parsed, version, caller, at, key, None)
}

/// Parses a follow-up's outcome.
pub(crate) fn record_follow_up_change(
    raw: pb::RecordFollowUpRequest,
    at: DateTime<Utc>,
    caller: &Caller,
) -> Result<CaseChange, Error> {
    let mut v = Violations::default();
    let key = v.change_key(&raw, &raw.request_id);
    let id = v.uuid("follow_up_id", &raw.follow_up_id);
    let missing = raw.outcome.trim().is_empty();
    let outcome = v.text("outcome", raw.outcome, limits::MAX_REASON, true);
    if missing {
        v.add("outcome", "is required");
    }
    let parsed = match (id, outcome) {
        (Some(follow_up_id), Some(outcome)) => Some(Change::RecordFollowUp {
            follow_up_id,
            outcome,
        }),
        _ => None,
    };
    let version = v.optional_version(raw.expected_version);
    change(v, parsed, version, caller, at, key, None)
}

/// Parses a watch: its filter and where it starts.
pub(crate) fn watch_request(
    raw: pb::WatchCasesRequest,
) -> Result<(EventFilter, Option<i64>), Error> {
    let mut v = Violations::default();
    let after = v.after_sequence(raw.after_sequence);
    let province = if raw.province.is_empty() {
        Some(None)
    } else {
        v.province("province", raw.province).map(Some)
    };
    let county = v.text("county", raw.county, limits::MAX_SHORT_TEXT, false);
    if county.is_some() && matches!(province, Some(None)) {
        v.add("county", "needs province");
    }
    let priority = v.optional_enumeration::<Priority>("priority", raw.priority);
    let line = v.optional_enumeration::<Line>("line", raw.line);
    let parsed = match (after, province, priority, line) {
        (Some(after), Some(province), Some(priority), Some(line)) => Some((
            EventFilter {
                province,
                county,
                priority,
                line,
                team_id: None,
                recorded_by: None,
            },
            after,
        )),
        _ => None,
    };
    v.finish(parsed)
}

/// Parses a team's assignment stream request.
pub(crate) fn assignments_request(
    raw: pb::StreamAssignmentsRequest,
) -> Result<(EventFilter, Option<i64>), Error> {
    let mut v = Violations::default();
    let after = v.after_sequence(raw.after_sequence);
    let team = v.required_text("team_id", raw.team_id, limits::MAX_SHORT_TEXT);
    let parsed = match (after, team) {
        (Some(after), Some(team)) => Some((
            EventFilter {
                team_id: Some(team),
                ..EventFilter::default()
            },
            after,
        )),
        _ => None,
    };
    v.finish(parsed)
}

impl Violations {
    fn after_sequence(&mut self, raw: Option<i64>) -> Option<Option<i64>> {
        match raw {
            Some(n) if n < 0 => {
                self.add("after_sequence", "must be 0 or more");
                None
            }
            other => Some(other),
        }
    }
}

impl From<&FeedEvent> for pb::CaseEvent {
    fn from(e: &FeedEvent) -> Self {
        Self {
            sequence: e.sequence,
            case_id: e.case_id.map(|id| id.to_string()).unwrap_or_default(),
            kind: e.kind.as_str().to_owned(),
            actor: e.actor.clone(),
            occurred_at: Some(timestamp(e.occurred_at)),
            reason: e.reason.clone().unwrap_or_default(),
            data_json: e.data.clone(),
            line: e.line.map_or(0, |line| line.to_wire()),
            province: e.province.clone(),
            county: e.county.clone(),
            priority: e.priority.map_or(0, |priority| priority.to_wire()),
            team_id: e.team_id.clone().unwrap_or_default(),
        }
    }
}

/// A heartbeat on the wire.
pub(crate) fn heartbeat(sequence: i64, at: DateTime<Utc>) -> pb::Heartbeat {
    pb::Heartbeat {
        sequence,
        sent_at: Some(timestamp(at)),
    }
}

/// A watch message on the wire.
pub(crate) fn watch_response(item: WatchItem) -> pb::WatchCasesResponse {
    use pb::watch_cases_response::Message;
    pb::WatchCasesResponse {
        message: Some(match item {
            WatchItem::Event(event) => Message::Event(event.as_ref().into()),
            WatchItem::Heartbeat { sequence, at } => Message::Heartbeat(heartbeat(sequence, at)),
        }),
    }
}

/// An assignment-stream message on the wire. A new assignment carries where to go, read from
/// the case when the message is sent; every update carries the dispatch as it stands.
pub(crate) async fn assignment_response(
    store: &dyn Store,
    item: WatchItem,
) -> Result<pb::StreamAssignmentsResponse, Status> {
    use pb::stream_assignments_response::Message;
    let event = match item {
        WatchItem::Heartbeat { sequence, at } => {
            return Ok(pb::StreamAssignmentsResponse {
                message: Some(Message::Heartbeat(heartbeat(sequence, at))),
            });
        }
        WatchItem::Event(event) => event,
    };
    // A team's stream carries only its dispatches' events, each of a case.
    let case_id = event
        .case_id
        .ok_or_else(|| Error::internal("a team's stream was offered an event of no case"))?;
    let case = store
        .get_case(case_id)
        .await?
        .ok_or(Error::NotFound("case"))?;
    let dispatch_id = serde_json::from_str::<serde_json::Value>(&event.data)
        .ok()
        .and_then(|data| data.get("dispatch_id")?.as_str()?.parse::<Uuid>().ok());
    let dispatch = case
        .dispatches
        .iter()
        .find(|d| Some(d.dispatch_id) == dispatch_id)
        .cloned()
        .map(Into::into);
    let location =
        (event.kind == EventKind::DispatchAssigned).then(|| (&case.intake.location).into());
    Ok(pb::StreamAssignmentsResponse {
        message: Some(Message::Update(pb::AssignmentUpdate {
            event: Some(event.as_ref().into()),
            dispatch,
            reference: case.summary.reference.clone(),
            primary_category: case.summary.primary_category.to_wire(),
            location,
            risk_to_team: case.intake.risk.risk_to_team,
        })),
    })
}

/// Parses a statistics request: the period (by default the 24 hours before `now`, or before
/// `to` when only that is given), and the province if any.
pub(crate) fn statistics_request(
    raw: pb::GetStatisticsRequest,
    now: DateTime<Utc>,
) -> Result<Period, Error> {
    let mut v = Violations::default();
    let to = match raw.to {
        Some(to) => v.time("to", Some(to)),
        None => Some(now),
    };
    let from = match (raw.from, to) {
        (Some(from), _) => v.time("from", Some(from)),
        (None, Some(to)) => Some(to - chrono::Duration::hours(24)),
        (None, None) => None,
    };
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        v.add("to", "must be after from");
    }
    let province = if raw.province.is_empty() {
        Some(None)
    } else {
        v.province("province", raw.province).map(Some)
    };
    let parsed = match (from, to, province) {
        (Some(from), Some(to), Some(province)) => Some(Period {
            from,
            to,
            province,
            county: None,
        }),
        _ => None,
    };
    v.finish(parsed)
}

fn duration(d: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// Counts under the keys and labels `name` gives each stored value (the stored value itself,
/// unlabelled, for one it does not know).
fn counts(
    list: Vec<(String, u64)>,
    name: impl Fn(&str) -> Option<(&'static str, &'static str)>,
) -> Vec<pb::Count> {
    list.into_iter()
        .map(|(stored, count)| {
            let (key, label_fa) = match name(&stored) {
                Some((key, label)) => (key.to_owned(), label.to_owned()),
                None => (stored, String::new()),
            };
            pb::Count {
                key,
                label_fa,
                count: i64::try_from(count).unwrap_or(i64::MAX),
            }
        })
        .collect()
}

/// The period's figures for the contract; `p0_target` is the deployment's P0
/// team-acknowledgement target.
pub(crate) fn statistics_response(
    s: Statistics,
    p0_target: std::time::Duration,
) -> pb::GetStatisticsResponse {
    let interval = |i: Interval| pb::ResponseInterval {
        cases: i.count as i64,
        median: Some(duration(i.median)),
        p90: Some(duration(i.p90)),
    };
    // Keys as the contract names the values, with their Persian labels.
    fn named<T: WireEnum + std::str::FromStr>(
        list: Vec<(String, u64)>,
        label: fn(T) -> &'static str,
    ) -> Vec<pb::Count> {
        counts(list, |stored| {
            let value = stored.parse::<T>().ok()?;
            Some((value.wire_name(), label(value)))
        })
    }
    let (cases, met) = within_target(&s.p0_acknowledged, p0_target);
    pb::GetStatisticsResponse {
        total: i64::try_from(s.total).unwrap_or(i64::MAX),
        by_line: named::<Line>(s.by_line, Line::label_fa),
        by_category: named::<Category>(s.by_category, Category::label_fa),
        by_priority: named::<Priority>(s.by_priority, Priority::label_fa),
        by_status: named::<CaseStatus>(s.by_status, |status| status.label_fa()),
        by_province: counts(s.by_province, |code| {
            province::by_code(code).map(|p| (p.code, p.name_fa))
        }),
        intake_to_acknowledged: Some(interval(s.acknowledged)),
        intake_to_on_scene: Some(interval(s.on_scene)),
        intake_to_cleared: Some(interval(s.cleared)),
        p0_team_within_target: Some(pb::TargetShare {
            cases: cases as i64,
            met: met as i64,
            target: Some(duration(p0_target)),
        }),
        team_queue: Some(pb::TeamQueue {
            waited: i64::try_from(s.team_queue.waited).unwrap_or(i64::MAX),
            served: i64::try_from(s.team_queue.served).unwrap_or(i64::MAX),
            withdrawn: i64::try_from(s.team_queue.withdrawn).unwrap_or(i64::MAX),
            waiting: i64::try_from(s.team_queue.waiting).unwrap_or(i64::MAX),
            wait: Some(interval(s.team_queue.wait)),
        }),
    }
}

/// Parses a request for one more destination.
pub(crate) fn assignment_change(
    raw: pb::RequestAssignmentRequest,
    at: DateTime<Utc>,
    caller: &Caller,
) -> Result<CaseChange, Error> {
    use crate::domain::decision::Action;
    use crate::domain::decision::ServicePointKind;
    let mut v = Violations::default();
    let key = v.change_key(&raw, &raw.request_id);
    let id = v.uuid("case_id", &raw.case_id);
    let version = v.expected_version(raw.expected_version);
    let kind = || -> Option<ServicePointKind> { ServicePointKind::from_wire(raw.kind) };
    let action = match pb::ActionType::try_from(raw.action) {
        Ok(pb::ActionType::DispatchMobileTeam) => Some(Action::DispatchMobileTeam),
        Ok(pb::ActionType::HandOverTo123) => Some(Action::HandOverTo123),
        Ok(pb::ActionType::ReferTo) => match kind() {
            Some(kind) => Some(Action::ReferTo { kind, point: None }),
            None => {
                v.add("kind", "is required for REFER_TO");
                None
            }
        },
        Ok(pb::ActionType::Notify) => match kind() {
            Some(body) if body.is_outside_body() => Some(Action::Notify {
                body,
                only_if: Vec::new(),
            }),
            _ => {
                v.add("kind", "is required for NOTIFY and must be an outside body");
                None
            }
        },
        _ => {
            v.add(
                "action",
                "is required (the unspecified value is not accepted)",
            );
            None
        }
    };
    let reason = v.reason("reason", raw.reason);
    let parsed = match (id, action, reason) {
        (Some(case_id), Some(action), Some(reason)) => Some(Change::RequestAssignment {
            case_id,
            action,
            reason,
        }),
        _ => None,
    };
    change(v, parsed, version.map(Some), caller, at, key, None)
}
