//! Changes to recorded cases, in the SQL both backends share: one transaction loads what the
//! change touches, holds it to the lifecycles in `domain/`, writes it with its events and, when a
//! destination turned the case down, routes it again before committing.

use std::collections::HashSet;

use uuid::Uuid;

use super::chain::write_audit;
use super::db::{Tx, query, query_as, query_scalar};
use super::events::{
    EventPlace, covers_case, routing_event_data, routing_event_kind, write_events,
};
use super::map_sqlx_error as db_error;
use super::rows::EventRow;
use super::sealed::{
    DECISION, FOLLOW_UP_OUTCOME, NOTE_BODY, case_details, decision_of, decision_row, micros,
    parse_enum, seal_position,
};
use super::sql_store::SqlStore;
use super::statements::{
    ASSIGN_TEAM, BUMP_DIRECTORY, INSERT_DECISION, INSERT_DISPATCH, INSERT_DISPATCH_STEP,
    INSERT_REFERRAL, LOCK_DIRECTORY,
};
use super::{ChangeOutcome, RerouteFn};
use crate::domain::Error;
use crate::domain::change::{CaseChange, Change};
use crate::domain::decision::{Decision, Destination, Purpose};
use crate::domain::sla::{SlaKind, SlaTargets};
use crate::domain::types::{DispatchStatus, Priority, ReferralStatus};

pub(super) const SELECT_CASE_STATE: &str = "select case_id, line, status, priority, outcome, \
     province, county, minors_involved, version, routing_status, details, recorded_by from cases \
     where case_id = $1";

pub(super) const SELECT_REFERRAL_STATE: &str = "select referral_id, case_id, service_point_id, \
     purpose, status, version from referrals where referral_id = $1";

pub(super) const SELECT_DISPATCH_STATE: &str = "select dispatch_id, case_id, team_id, status, \
     version from dispatches where dispatch_id = $1";

pub(super) const SELECT_FOLLOW_UP_STATE: &str =
    "select follow_up_id, case_id, done_at from follow_ups where follow_up_id = $1";

pub(super) const COUNT_ACTIVE_DISPATCHES: &str = "select count(*) from dispatches \
     where case_id = $1 and status not in ('cleared', 'cancelled', 'declined')";

pub(super) const COUNT_PENDING_FOLLOW_UPS: &str =
    "select count(*) from follow_ups where case_id = $1 and done_at is null";

pub(super) const UPDATE_CASE: &str = "update cases set status = $2, priority = $3, outcome = $4, \
     routing_status = $5, version = version + 1, updated_at = $6 where case_id = $1 \
     returning version";

pub(super) const UPDATE_REFERRAL: &str = "update referrals set status = $2, reason = $3, \
     version = version + 1, updated_at = $4 where referral_id = $1 returning version";

pub(super) const UPDATE_DISPATCH: &str = "update dispatches set status = $2, reason = $3, \
     version = version + 1, updated_at = $4 where dispatch_id = $1 returning version";

/// A team freed from an assignment carries one less; a busy team with none left is available.
/// A team that went off duty or out of service meanwhile stays so.
pub(super) const RELEASE_TEAM: &str = "update teams set \
     status = case when status = 'busy' and load <= 1 then 'available' else status end, \
     load = case when load > 0 then load - 1 else 0 end, updated_at = $2 where team_id = $1";

pub(super) const INSERT_NOTE: &str = "insert into notes (note_id, case_id, actor, created_at, \
     body) values ($1, $2, $3, $4, $5)";

pub(super) const INSERT_FOLLOW_UP: &str = "insert into follow_ups (follow_up_id, case_id, due_at, \
     reason, created_at) values ($1, $2, $3, $4, $5)";

pub(super) const RECORD_FOLLOW_UP: &str =
    "update follow_ups set outcome = $2, done_at = $3 where follow_up_id = $1";

pub(super) const SELECT_DECISIONS: &str = "select case_id, decision_no, decision from routing_decisions \
     where case_id = $1 order by decision_no";

pub(super) const SELECT_TRIED: &str = "select service_point_id from referrals where case_id = $1 \
     union select team_id from dispatches where case_id = $1";

pub(crate) const SELECT_DUE_TIMERS: &str = "select timer_id from sla_timers \
     where state = 'pending' and due_at <= $1 order by due_at, timer_id limit $2";

pub(super) const INSERT_TIMER: &str = "insert into sla_timers (timer_id, case_id, kind, \
     subject_id, due_at, state, created_at) values ($1, $2, $3, $4, $5, 'pending', $6)";

pub(super) const SELECT_TIMER: &str = "select timer_id, case_id, kind, subject_id, due_at \
     from sla_timers where timer_id = $1";

/// Marks a timer breached, only if it is still pending and due: of two servers racing for it,
/// one changes a row.
pub(super) const BREACH_TIMER: &str = "update sla_timers set state = 'breached', \
     resolved_at = $2 where timer_id = $1 and state = 'pending' and due_at <= $2";

pub(super) const MEET_SUBJECT_TIMERS: &str = "update sla_timers set state = 'met', \
     resolved_at = $3 where subject_id = $1 and kind = $2 and state = 'pending'";

pub(super) const CANCEL_SUBJECT_TIMERS: &str = "update sla_timers set state = 'cancelled', \
     resolved_at = $2 where subject_id = $1 and state = 'pending'";

pub(super) const MEET_CASE_TIMERS: &str = "update sla_timers set state = 'met', \
     resolved_at = $3 where case_id = $1 and kind = $2 and state = 'pending'";

pub(super) const CANCEL_CASE_TIMERS: &str = "update sla_timers set state = 'cancelled', \
     resolved_at = $2 where case_id = $1 and state = 'pending'";

/// The pending timers whose target depends on the case's priority, with when each started.
pub(super) const SELECT_PENDING_PRIORITY_TIMERS: &str = "select timer_id, kind, created_at \
     from sla_timers where case_id = $1 and state = 'pending' \
     and kind in ('team_acknowledgement', 'on_scene', 'referral_acceptance')";

pub(super) const RESCHEDULE_TIMER: &str = "update sla_timers set due_at = $2 where timer_id = $1";

pub(super) const CANCEL_TIMER: &str = "update sla_timers set state = 'cancelled', \
     resolved_at = $2 where timer_id = $1";

pub(super) const COUNT_CASE_TIMERS: &str =
    "select count(*) from sla_timers where case_id = $1 and kind = $2";

pub(super) const SERVICE_POINT_KIND: &str =
    "select kind from service_points where service_point_id = $1";

/// Writes a new referral, requested, with the deadline timers it starts.
#[allow(clippy::too_many_arguments)]
async fn insert_referral(
    tx: &mut Tx,
    targets: &SlaTargets,
    priority: Priority,
    case_id: Uuid,
    referral_id: Uuid,
    point_id: &str,
    purpose: Purpose,
    at: i64,
) -> Result<(), Error> {
    tx.run(
        query(INSERT_REFERRAL)
            .bind(referral_id)
            .bind(case_id)
            .bind(point_id)
            .bind(purpose.as_str())
            .bind(ReferralStatus::Requested.as_str())
            .bind(at),
    )
    .await?;
    for (kind, due) in timers_for(targets, priority, purpose, at) {
        tx.run(
            query(INSERT_TIMER)
                .bind(Uuid::now_v7())
                .bind(case_id)
                .bind(kind.as_str())
                .bind(Some(referral_id))
                .bind(due)
                .bind(at),
        )
        .await?;
    }
    Ok(())
}

/// Writes a new dispatch, assigned, with its first step, takes its team, and starts its
/// deadline timers.
async fn insert_dispatch(
    tx: &mut Tx,
    targets: &SlaTargets,
    priority: Priority,
    case_id: Uuid,
    dispatch_id: Uuid,
    team_id: &str,
    at: i64,
) -> Result<(), Error> {
    let assigned = DispatchStatus::Assigned.as_str();
    tx.run(
        query(INSERT_DISPATCH)
            .bind(dispatch_id)
            .bind(case_id)
            .bind(team_id)
            .bind(assigned)
            .bind(at),
    )
    .await?;
    tx.run(
        query(INSERT_DISPATCH_STEP)
            .bind(dispatch_id)
            .bind(assigned)
            .bind(at)
            .bind(Option::<Vec<u8>>::None),
    )
    .await?;
    tx.run(query(ASSIGN_TEAM).bind(team_id).bind(at)).await?;
    for (kind, due) in timers_for(targets, priority, Purpose::Dispatch, at) {
        tx.run(
            query(INSERT_TIMER)
                .bind(Uuid::now_v7())
                .bind(case_id)
                .bind(kind.as_str())
                .bind(Some(dispatch_id))
                .bind(due)
                .bind(at),
        )
        .await?;
    }
    Ok(())
}

/// The deadlines a new dispatch or referral starts, as (kind, due time in micros); a referral's
/// only when it asks a centre to take the case (an outside body's notification has none).
pub(super) fn timers_for(
    targets: &SlaTargets,
    priority: Priority,
    purpose: Purpose,
    at: i64,
) -> Vec<(SlaKind, i64)> {
    let kinds: &[SlaKind] = match purpose {
        Purpose::Dispatch => &[SlaKind::TeamAcknowledgement, SlaKind::OnScene],
        Purpose::Referral | Purpose::HandOver => &[SlaKind::ReferralAcceptance],
        Purpose::Notification => &[],
    };
    kinds
        .iter()
        .filter_map(|&kind| {
            let target = targets.target(kind, priority)?;
            Some((
                kind,
                at + i64::try_from(target.as_micros()).unwrap_or(i64::MAX / 2),
            ))
        })
        .collect()
}

/// A stored timer.
#[derive(sqlx::FromRow)]
pub(super) struct TimerRow {
    pub(super) timer_id: Uuid,
    pub(super) case_id: Uuid,
    pub(super) kind: String,
    pub(super) subject_id: Option<Uuid>,
    pub(super) due_at: i64,
}

/// A case as a change sees it.
#[derive(sqlx::FromRow)]
pub(super) struct CaseStateRow {
    pub(super) case_id: Uuid,
    pub(super) line: String,
    pub(super) status: String,
    pub(super) priority: String,
    pub(super) outcome: Option<String>,
    pub(super) province: String,
    pub(super) county: String,
    pub(super) minors_involved: bool,
    pub(super) version: i64,
    pub(super) routing_status: String,
    pub(super) details: Vec<u8>,
    pub(super) recorded_by: String,
}

/// A referral as a change sees it.
#[derive(sqlx::FromRow)]
pub(super) struct ReferralStateRow {
    pub(super) referral_id: Uuid,
    pub(super) case_id: Uuid,
    pub(super) service_point_id: String,
    pub(super) purpose: String,
    pub(super) status: String,
    pub(super) version: i64,
}

/// A dispatch as a change sees it.
#[derive(sqlx::FromRow)]
pub(super) struct DispatchStateRow {
    pub(super) dispatch_id: Uuid,
    pub(super) case_id: Uuid,
    pub(super) team_id: String,
    pub(super) status: String,
    pub(super) version: i64,
}

/// A follow-up as a change sees it.
#[derive(sqlx::FromRow)]
pub(super) struct FollowUpStateRow {
    pub(super) case_id: Uuid,
    pub(super) done_at: Option<i64>,
}

/// A stored routing decision with its number.
#[derive(sqlx::FromRow)]
pub(super) struct NumberedDecisionRow {
    pub(super) case_id: Uuid,
    pub(super) decision_no: i64,
    pub(super) decision: String,
}

/// What a change touches besides the case.
pub(super) enum Touched {
    Case,
    Referral(ReferralStateRow),
    Dispatch(DispatchStateRow),
    FollowUp(FollowUpStateRow),
    Timer(TimerRow),
}

impl Touched {
    /// What the change names, as a refusal calls it.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Self::Case => "case",
            Self::Referral(_) => "referral",
            Self::Dispatch(_) => "dispatch",
            Self::FollowUp(_) => "follow-up",
            Self::Timer(_) => "timer",
        }
    }

    pub(super) fn case_id(&self, change: &Change) -> Option<Uuid> {
        match (self, change) {
            (Self::Referral(row), _) => Some(row.case_id),
            (Self::Dispatch(row), _) => Some(row.case_id),
            (Self::FollowUp(row), _) => Some(row.case_id),
            (Self::Timer(row), _) => Some(row.case_id),
            (
                Self::Case,
                Change::Close { case_id, .. }
                | Change::Reopen { case_id, .. }
                | Change::Priority { case_id, .. }
                | Change::Note { case_id, .. }
                | Change::ScheduleFollowUp { case_id, .. }
                | Change::RequestAssignment { case_id, .. },
            ) => Some(*case_id),
            (Self::Case, _) => None,
        }
    }
}

/// Refuses a change based on another version than the current one.
pub(super) fn check_version(what: &str, current: i64, expected: Option<i64>) -> Result<(), Error> {
    match expected {
        Some(expected) if expected != current => Err(Error::Stale(format!(
            "the {what} is at version {current}, not {expected}; read it again"
        ))),
        _ => Ok(()),
    }
}

/// The event a referral or dispatch transition writes.
pub(super) fn transition_event(
    place: &EventPlace,
    change: &CaseChange,
    kind: String,
    data: serde_json::Value,
    team_id: Option<String>,
) -> Result<EventRow, Error> {
    let reason = match &change.change {
        Change::Referral { reason, .. } | Change::Dispatch { reason, .. } => reason.clone(),
        _ => None,
    };
    place.event(
        kind,
        change.actor.to_string(),
        micros(change.at),
        reason,
        &data,
        team_id,
    )
}

/// Where a case's events are filed.
pub(super) fn place_of(case: &CaseStateRow, priority: Priority) -> Result<EventPlace, Error> {
    let line: crate::domain::types::Line = parse_enum("line", &case.line)?;
    Ok(EventPlace {
        case_id: case.case_id,
        line: line.as_str(),
        province: case.province.clone(),
        county: case.county.clone(),
        priority: priority.as_str(),
        recorded_by: case.recorded_by.clone(),
    })
}

/// Finds, among a case's decisions (latest first), the action a destination was chosen for.
pub(super) fn action_for(
    cipher: &crate::crypto::FieldCipher,
    decisions: &[NumberedDecisionRow],
    destination_id: &str,
) -> Result<Option<(i64, Decision, usize)>, Error> {
    for row in decisions.iter().rev() {
        let decision = decision_of(cipher, row.case_id, row.decision_no, &row.decision)?;
        let index = decision.actions.iter().position(|a| {
            a.destination.as_ref().is_some_and(|d| match d {
                Destination::Team { id, .. } | Destination::ServicePoint { id, .. } => {
                    id == destination_id
                }
            })
        });
        if let Some(index) = index {
            return Ok(Some((row.decision_no, decision, index)));
        }
    }
    Ok(None)
}

/// An action to route again within a change: the action a destination turned down, or one a
/// call centre asked for.
pub(super) struct RoutingJob {
    pub(super) action: crate::domain::decision::Action,
    pub(super) policy_version: i64,
    pub(super) rule_id: String,
    pub(super) description: String,
    /// Asked for, rather than a destination turned down.
    pub(super) requested: bool,
}

/// What a re-route writes: the new decision, and the referral or dispatch it makes.
pub(super) struct Rerouted {
    pub(super) decision: Decision,
    pub(super) decision_json: String,
    pub(super) decision_no: i64,
    pub(super) referral: Option<(Uuid, String, Purpose)>,
    pub(super) dispatch: Option<(Uuid, String)>,
    pub(super) events: Vec<EventRow>,
}

/// Works out a re-route's rows from the action decision routing returned.
pub(super) fn rerouted(
    place: &EventPlace,
    job: RoutingJob,
    decision_no: i64,
    found: crate::domain::decision::ActionDecision,
    at: i64,
) -> Result<Rerouted, Error> {
    let purpose = found.action.purpose();
    let decision = Decision {
        policy_version: job.policy_version,
        rule_id: job.rule_id,
        rule_description: job.description,
        actions: vec![found],
    };
    let ids = uuid::ContextV7::new();
    let mut referral = None;
    let mut dispatch = None;
    let mut events = Vec::new();
    let kind = match (decision.status(), job.requested) {
        (crate::domain::decision::RoutingStatus::Unrouted, _) | (_, false) => {
            routing_event_kind(decision.status(), false)
        }
        (_, true) => "assignment_added",
    };
    events.push(place.event(
        kind,
        "routing",
        at,
        None,
        &routing_event_data(&decision),
        None,
    )?);
    for assignment in decision.assignments() {
        let id = Uuid::new_v7(uuid::Timestamp::now(&ids));
        match assignment.destination {
            Destination::Team { id: team_id, .. } => {
                events.push(place.event(
                    "dispatch_assigned",
                    "routing",
                    at,
                    None,
                    &serde_json::json!({ "dispatch_id": id, "team_id": team_id }),
                    Some(team_id.clone()),
                )?);
                dispatch = Some((id, team_id));
            }
            Destination::ServicePoint { id: point_id, .. } => {
                referral = Some((id, point_id, purpose));
            }
        }
    }
    Ok(Rerouted {
        decision_json: serde_json::to_string(&decision).map_err(Error::internal)?,
        decision,
        decision_no,
        referral,
        dispatch,
        events,
    })
}

/// The referral statuses after which the referral's destination no longer holds the case.
pub(super) fn turned_down_referral(status: ReferralStatus) -> bool {
    status == ReferralStatus::Rejected
}

/// The dispatch statuses after which the team no longer holds the case.
pub(super) fn frees_team(status: DispatchStatus) -> bool {
    status.is_terminal()
}

impl SqlStore {
    #[tracing::instrument(skip_all)]
    pub(super) async fn apply_change(
        &self,
        change: &CaseChange,
        reroute: &mut RerouteFn<'_>,
        targets: &SlaTargets,
    ) -> Result<ChangeOutcome, Error> {
        use crate::domain::change::{CaseContext, CaseState, Change, check_case_change};
        use crate::domain::decision::RoutingStatus;
        use crate::domain::lifecycle::{check_dispatch, check_referral};
        use crate::domain::types::{DispatchStatus, ReferralStatus};
        use crate::routing::RoutingRequest;
        use crate::store::changes::*;
        use Error;
        use SlaKind;

        let at = micros(change.at);
        let mut tx = self.backend.begin_write().await.map_err(db_error)?;
        let mut directory: i64 = query_scalar(LOCK_DIRECTORY)
            .fetch_one(tx.ex())
            .await
            .map_err(db_error)?;
        self.directory.check(directory)?;

        let touched = match &change.change {
            Change::Referral { referral_id, .. } => Touched::Referral(
                query_as(SELECT_REFERRAL_STATE)
                    .bind(referral_id)
                    .fetch_optional(tx.ex())
                    .await
                    .map_err(db_error)?
                    .ok_or(Error::NotFound("referral"))?,
            ),
            Change::Dispatch { dispatch_id, .. } => Touched::Dispatch(
                query_as(SELECT_DISPATCH_STATE)
                    .bind(dispatch_id)
                    .fetch_optional(tx.ex())
                    .await
                    .map_err(db_error)?
                    .ok_or(Error::NotFound("dispatch"))?,
            ),
            Change::RecordFollowUp { follow_up_id, .. } => Touched::FollowUp(
                query_as(SELECT_FOLLOW_UP_STATE)
                    .bind(follow_up_id)
                    .fetch_optional(tx.ex())
                    .await
                    .map_err(db_error)?
                    .ok_or(Error::NotFound("follow-up"))?,
            ),
            Change::SlaBreach { timer_id } => Touched::Timer(
                query_as(SELECT_TIMER)
                    .bind(timer_id)
                    .fetch_optional(tx.ex())
                    .await
                    .map_err(db_error)?
                    .ok_or(Error::NotFound("timer"))?,
            ),
            _ => Touched::Case,
        };
        let case_id = touched
            .case_id(&change.change)
            .ok_or_else(|| Error::internal("a change without a case"))?;
        let case: CaseStateRow = query_as(SELECT_CASE_STATE)
            .bind(case_id)
            .fetch_optional(tx.ex())
            .await
            .map_err(db_error)?
            .ok_or(Error::NotFound("case"))?;
        if let Some(requester) = &change.requester {
            // A case out of the requester's reach is not found, as if it did not exist.
            let reach = &requester.reach;
            let covered = covers_case(
                &mut tx,
                reach,
                case_id,
                &case.province,
                &case.county,
                &case.recorded_by,
            )
            .await
            .map_err(db_error)?;
            if !covered {
                return Err(Error::NotFound(touched.name()));
            }
            match &touched {
                Touched::Dispatch(dispatch) => {
                    requester.parts.check_dispatch_owner(&dispatch.team_id)?
                }
                Touched::Referral(referral) => requester
                    .parts
                    .check_referral_owner(&referral.service_point_id)?,
                _ => {}
            }
        }
        let active_dispatches: i64 = query_scalar(COUNT_ACTIVE_DISPATCHES)
            .bind(case_id)
            .fetch_one(tx.ex())
            .await
            .map_err(db_error)?;
        let pending_follow_ups: i64 = query_scalar(COUNT_PENDING_FOLLOW_UPS)
            .bind(case_id)
            .fetch_one(tx.ex())
            .await
            .map_err(db_error)?;
        let current = CaseState {
            status: parse_enum("status", &case.status)?,
            priority: parse_enum("priority", &case.priority)?,
            outcome: case
                .outcome
                .as_deref()
                .map(|o| parse_enum("outcome", o))
                .transpose()?,
        };
        if matches!(touched, Touched::Case | Touched::FollowUp(_)) {
            check_version("case", case.version, change.expected_version)?;
        }
        let context = CaseContext {
            active_dispatches: active_dispatches as usize,
            pending_follow_ups: pending_follow_ups as usize,
        };
        let next = check_case_change(current, context, &change.change)?;
        let place = place_of(&case, next.priority)?;
        let actor = change.actor.to_string();
        let mut routing_status: RoutingStatus = parse_enum("routing status", &case.routing_status)?;
        let mut events: Vec<EventRow> = Vec::new();
        let mut version = None;
        let mut created = None;
        let mut due_at = None;
        let mut released_team = None;
        // The destination that turned the case down, to route again.
        let mut turned_down: Option<String> = None;

        match (&change.change, &touched) {
            (Change::Referral { to, reason, .. }, Touched::Referral(referral)) => {
                check_version("referral", referral.version, change.expected_version)?;
                let from: ReferralStatus = parse_enum("referral status", &referral.status)?;
                check_referral(from, *to, change.actor.side(), reason.as_deref()).map_err(|e| {
                    crate::domain::change::transition_error("referral", from.as_str(), e)
                })?;
                let v: i64 = query_scalar(UPDATE_REFERRAL)
                    .bind(referral.referral_id)
                    .bind(to.as_str())
                    .bind(reason)
                    .bind(at)
                    .fetch_one(tx.ex())
                    .await
                    .map_err(db_error)?;
                version = Some(v);
                events.push(transition_event(
                    &place,
                    change,
                    format!("referral_{}", to.as_str()),
                    serde_json::json!({
                        "referral_id": referral.referral_id,
                        "service_point_id": referral.service_point_id,
                        "purpose": referral.purpose,
                        "from": from.as_str(),
                        "to": to.as_str(),
                    }),
                    None,
                )?);
                match to {
                    ReferralStatus::Accepted
                    | ReferralStatus::InProgress
                    | ReferralStatus::Completed => {
                        tx.run(
                            query(MEET_SUBJECT_TIMERS)
                                .bind(referral.referral_id)
                                .bind(SlaKind::ReferralAcceptance.as_str())
                                .bind(at),
                        )
                        .await?;
                        let kind: Option<String> = query_scalar(SERVICE_POINT_KIND)
                            .bind(&referral.service_point_id)
                            .fetch_optional(tx.ex())
                            .await
                            .map_err(db_error)?;
                        if kind.as_deref() == Some(crate::domain::decision::ServicePointKind::ProsecutorChildProtection.as_str()) {
                            tx.run(query(MEET_CASE_TIMERS).bind(case_id).bind(SlaKind::ProsecutorNotice.as_str()).bind(at)).await?;
                        }
                    }
                    ReferralStatus::Rejected
                    | ReferralStatus::Cancelled
                    | ReferralStatus::Failed => {
                        tx.run(
                            query(CANCEL_SUBJECT_TIMERS)
                                .bind(referral.referral_id)
                                .bind(at),
                        )
                        .await?;
                    }
                    ReferralStatus::Requested | ReferralStatus::OnHold => {}
                }
                if turned_down_referral(*to) {
                    turned_down = Some(referral.service_point_id.clone());
                }
            }
            (
                Change::Dispatch {
                    to,
                    reason,
                    position,
                    ..
                },
                Touched::Dispatch(dispatch),
            ) => {
                check_version("dispatch", dispatch.version, change.expected_version)?;
                let from: DispatchStatus = parse_enum("dispatch status", &dispatch.status)?;
                check_dispatch(from, *to, change.actor.side(), reason.as_deref()).map_err(|e| {
                    crate::domain::change::transition_error("dispatch", from.as_str(), e)
                })?;
                let v: i64 = query_scalar(UPDATE_DISPATCH)
                    .bind(dispatch.dispatch_id)
                    .bind(to.as_str())
                    .bind(reason)
                    .bind(at)
                    .fetch_one(tx.ex())
                    .await
                    .map_err(db_error)?;
                version = Some(v);
                query(INSERT_DISPATCH_STEP)
                    .bind(dispatch.dispatch_id)
                    .bind(to.as_str())
                    .bind(at)
                    .bind(seal_position(
                        &self.cipher,
                        dispatch.dispatch_id,
                        to.as_str(),
                        *position,
                    )?)
                    .execute(tx.ex())
                    .await
                    .map_err(db_error)?;
                if frees_team(*to) {
                    query(RELEASE_TEAM)
                        .bind(&dispatch.team_id)
                        .bind(at)
                        .execute(tx.ex())
                        .await
                        .map_err(db_error)?;
                    released_team = Some(dispatch.team_id.clone());
                }
                // The team's position is not in the event: it is where the person is.
                events.push(transition_event(
                    &place,
                    change,
                    format!("dispatch_{}", to.as_str()),
                    serde_json::json!({
                        "dispatch_id": dispatch.dispatch_id,
                        "team_id": dispatch.team_id,
                        "from": from.as_str(),
                        "to": to.as_str(),
                    }),
                    Some(dispatch.team_id.clone()),
                )?);
                match to {
                    DispatchStatus::Acknowledged => {
                        tx.run(
                            query(MEET_SUBJECT_TIMERS)
                                .bind(dispatch.dispatch_id)
                                .bind(SlaKind::TeamAcknowledgement.as_str())
                                .bind(at),
                        )
                        .await?;
                    }
                    DispatchStatus::OnScene => {
                        tx.run(
                            query(MEET_SUBJECT_TIMERS)
                                .bind(dispatch.dispatch_id)
                                .bind(SlaKind::OnScene.as_str())
                                .bind(at),
                        )
                        .await?;
                    }
                    // A child taken from the scene starts the prosecutor's 12 hours, once.
                    DispatchStatus::Transporting if case.minors_involved => {
                        let started: i64 = query_scalar(COUNT_CASE_TIMERS)
                            .bind(case_id)
                            .bind(SlaKind::ProsecutorNotice.as_str())
                            .fetch_one(tx.ex())
                            .await
                            .map_err(db_error)?;
                        if let (0, Some(target)) = (
                            started,
                            targets.target(SlaKind::ProsecutorNotice, next.priority),
                        ) {
                            let due =
                                at + i64::try_from(target.as_micros()).unwrap_or(i64::MAX / 2);
                            tx.run(
                                query(INSERT_TIMER)
                                    .bind(Uuid::now_v7())
                                    .bind(case_id)
                                    .bind(SlaKind::ProsecutorNotice.as_str())
                                    .bind(Option::<Uuid>::None)
                                    .bind(due)
                                    .bind(at),
                            )
                            .await?;
                        }
                    }
                    DispatchStatus::Cleared
                    | DispatchStatus::Cancelled
                    | DispatchStatus::Declined => {
                        tx.run(
                            query(CANCEL_SUBJECT_TIMERS)
                                .bind(dispatch.dispatch_id)
                                .bind(at),
                        )
                        .await?;
                    }
                    _ => {}
                }
                if *to == DispatchStatus::Declined {
                    turned_down = Some(dispatch.team_id.clone());
                }
            }
            (
                Change::Close {
                    outcome, reason, ..
                },
                _,
            ) => {
                tx.run(query(CANCEL_CASE_TIMERS).bind(case_id).bind(at))
                    .await?;
                events.push(place.event(
                    "case_closed",
                    actor.clone(),
                    at,
                    reason.clone(),
                    &serde_json::json!({ "outcome": outcome.as_str() }),
                    None,
                )?);
            }
            (Change::Reopen { reason, .. }, _) => {
                events.push(place.event(
                    "case_reopened",
                    actor.clone(),
                    at,
                    Some(reason.clone()),
                    &serde_json::json!({ "outcome_was": current.outcome.map(|o| o.as_str()) }),
                    None,
                )?);
            }
            (Change::Priority { to, reason, .. }, _) => {
                // The pending deadlines follow the new priority, counted from when each
                // timer started: a case raised to P0 gets P0's minutes.
                let pending: Vec<(Uuid, String, i64)> = query_as(SELECT_PENDING_PRIORITY_TIMERS)
                    .bind(case_id)
                    .fetch_all(tx.ex())
                    .await
                    .map_err(db_error)?;
                for (timer_id, kind, created_at) in pending {
                    let kind: SlaKind = parse_enum("timer kind", &kind)?;
                    match targets.target(kind, *to) {
                        Some(target) => {
                            let due = created_at
                                + i64::try_from(target.as_micros()).unwrap_or(i64::MAX / 2);
                            tx.run(query(RESCHEDULE_TIMER).bind(timer_id).bind(due))
                                .await?;
                        }
                        None => {
                            tx.run(query(CANCEL_TIMER).bind(timer_id).bind(at)).await?;
                        }
                    }
                }
                events.push(place.event(
                    "priority_changed",
                    actor.clone(),
                    at,
                    reason.clone(),
                    &serde_json::json!({ "from": current.priority.as_str(), "to": to.as_str() }),
                    None,
                )?);
            }
            (Change::Note { text, .. }, _) => {
                let note_id = Uuid::now_v7();
                query(INSERT_NOTE)
                    .bind(note_id)
                    .bind(case_id)
                    .bind(&actor)
                    .bind(at)
                    .bind(NOTE_BODY.seal(
                        &self.cipher,
                        note_id.as_bytes(),
                        text.expose().as_bytes(),
                    )?)
                    .execute(tx.ex())
                    .await
                    .map_err(db_error)?;
                created = Some(note_id);
                // The note's text stays out of the feed.
                events.push(place.event(
                    "note_added",
                    actor.clone(),
                    at,
                    None,
                    &serde_json::json!({ "note_id": note_id }),
                    None,
                )?);
            }
            (
                Change::ScheduleFollowUp {
                    due_at: due,
                    reason,
                    ..
                },
                _,
            ) => {
                let details = case_details(&self.cipher, case_id, &case.details)?;
                let due = due.unwrap_or_else(|| {
                    crate::domain::change::default_follow_up(
                        details.intake.primary_category,
                        next.priority,
                        change.at,
                    )
                });
                let follow_up_id = Uuid::now_v7();
                query(INSERT_FOLLOW_UP)
                    .bind(follow_up_id)
                    .bind(case_id)
                    .bind(micros(due))
                    .bind(reason)
                    .bind(at)
                    .execute(tx.ex())
                    .await
                    .map_err(db_error)?;
                created = Some(follow_up_id);
                due_at = Some(due);
                tx.run(
                    query(INSERT_TIMER)
                        .bind(Uuid::now_v7())
                        .bind(case_id)
                        .bind(SlaKind::FollowUp.as_str())
                        .bind(Some(follow_up_id))
                        .bind(micros(due))
                        .bind(at),
                )
                .await?;
                events.push(place.event(
                    "follow_up_scheduled",
                    actor.clone(),
                    at,
                    Some(reason.clone()),
                    &serde_json::json!({ "follow_up_id": follow_up_id, "due_at": micros(due) }),
                    None,
                )?);
            }
            (
                Change::RecordFollowUp {
                    follow_up_id,
                    outcome,
                },
                Touched::FollowUp(row),
            ) => {
                if row.done_at.is_some() {
                    return Err(Error::FailedPrecondition(
                        "the follow-up is done; its outcome is already recorded".into(),
                    ));
                }
                query(RECORD_FOLLOW_UP)
                    .bind(follow_up_id)
                    .bind(FOLLOW_UP_OUTCOME.seal_text(
                        &self.cipher,
                        follow_up_id.as_bytes(),
                        outcome,
                    )?)
                    .bind(at)
                    .execute(tx.ex())
                    .await
                    .map_err(db_error)?;
                tx.run(
                    query(MEET_SUBJECT_TIMERS)
                        .bind(follow_up_id)
                        .bind(SlaKind::FollowUp.as_str())
                        .bind(at),
                )
                .await?;
                // The outcome is free text about the person: kept out of the feed.
                events.push(place.event(
                    "follow_up_done",
                    actor.clone(),
                    at,
                    None,
                    &serde_json::json!({ "follow_up_id": follow_up_id }),
                    None,
                )?);
            }
            (Change::RequestAssignment { action, reason, .. }, _) => {
                if change.actor.side() != crate::domain::lifecycle::Side::Requester {
                    return Err(Error::PermissionDenied(
                        "assignments are asked for by the requesting side (a call centre or a supervisor)".into(),
                    ));
                }
                events.push(place.event(
                    "assignment_requested",
                    actor.clone(),
                    at,
                    reason.clone(),
                    &serde_json::json!({ "purpose": action.purpose().as_str() }),
                    None,
                )?);
            }
            (Change::SlaBreach { .. }, Touched::Timer(timer)) => {
                let breached = tx
                    .run(query(BREACH_TIMER).bind(timer.timer_id).bind(at))
                    .await?;
                if breached == 0 {
                    return Err(Error::FailedPrecondition(
                        "the timer is no longer pending, or not yet due".into(),
                    ));
                }
                let kind: SlaKind = parse_enum("timer kind", &timer.kind)?;
                events.push(place.event(
                    "sla_breached",
                    actor.clone(),
                    at,
                    None,
                    &serde_json::json!({
                        "timer_id": timer.timer_id,
                        "kind": kind.as_str(),
                        "due_at": timer.due_at,
                        "subject_id": timer.subject_id,
                    }),
                    None,
                )?);
                let why = format!("{} deadline missed", kind.as_str());
                let subject = timer.subject_id;
                let mut called_off = None;
                if kind == SlaKind::TeamAcknowledgement {
                    let dispatch: Option<DispatchStateRow> = query_as(SELECT_DISPATCH_STATE)
                        .bind(subject)
                        .fetch_optional(tx.ex())
                        .await
                        .map_err(db_error)?;
                    if let Some(dispatch) =
                        dispatch.filter(|d| d.status == DispatchStatus::Assigned.as_str())
                    {
                        tx.run(
                            query(UPDATE_DISPATCH)
                                .bind(dispatch.dispatch_id)
                                .bind(DispatchStatus::Cancelled.as_str())
                                .bind(&why)
                                .bind(at),
                        )
                        .await?;
                        tx.run(
                            query(INSERT_DISPATCH_STEP)
                                .bind(dispatch.dispatch_id)
                                .bind(DispatchStatus::Cancelled.as_str())
                                .bind(at)
                                .bind(Option::<Vec<u8>>::None),
                        )
                        .await?;
                        tx.run(query(RELEASE_TEAM).bind(&dispatch.team_id).bind(at))
                            .await?;
                        tx.run(
                            query(CANCEL_SUBJECT_TIMERS)
                                .bind(dispatch.dispatch_id)
                                .bind(at),
                        )
                        .await?;
                        released_team = Some(dispatch.team_id.clone());
                        events.push(place.event(
                            "dispatch_cancelled",
                            actor.clone(),
                            at,
                            Some(why.clone()),
                            &serde_json::json!({
                                "dispatch_id": dispatch.dispatch_id,
                                "team_id": dispatch.team_id,
                                "from": DispatchStatus::Assigned.as_str(),
                                "to": DispatchStatus::Cancelled.as_str(),
                            }),
                            Some(dispatch.team_id.clone()),
                        )?);
                        called_off = Some(dispatch.team_id);
                    }
                } else if kind == SlaKind::ReferralAcceptance {
                    let referral: Option<ReferralStateRow> = query_as(SELECT_REFERRAL_STATE)
                        .bind(subject)
                        .fetch_optional(tx.ex())
                        .await
                        .map_err(db_error)?;
                    if let Some(referral) =
                        referral.filter(|r| r.status == ReferralStatus::Requested.as_str())
                    {
                        tx.run(
                            query(UPDATE_REFERRAL)
                                .bind(referral.referral_id)
                                .bind(ReferralStatus::Cancelled.as_str())
                                .bind(&why)
                                .bind(at),
                        )
                        .await?;
                        tx.run(
                            query(CANCEL_SUBJECT_TIMERS)
                                .bind(referral.referral_id)
                                .bind(at),
                        )
                        .await?;
                        events.push(place.event(
                            "referral_cancelled",
                            actor.clone(),
                            at,
                            Some(why.clone()),
                            &serde_json::json!({
                                "referral_id": referral.referral_id,
                                "service_point_id": referral.service_point_id,
                                "purpose": referral.purpose,
                                "from": ReferralStatus::Requested.as_str(),
                                "to": ReferralStatus::Cancelled.as_str(),
                            }),
                            None,
                        )?);
                        called_off = Some(referral.service_point_id);
                    }
                }
                match called_off {
                    Some(destination) => turned_down = Some(destination),
                    None => events.push(place.event(
                        "supervisors_alerted",
                        actor.clone(),
                        at,
                        Some(why),
                        &serde_json::json!({ "timer_id": timer.timer_id, "kind": kind.as_str() }),
                        None,
                    )?),
                }
            }
            _ => return Err(Error::internal("a change and its target do not match")),
        }

        let mut reroute_decision = None;
        let requested = match &change.change {
            Change::RequestAssignment { action, reason, .. } => {
                Some((action.clone(), reason.clone()))
            }
            _ => None,
        };
        if turned_down.is_some() || requested.is_some() {
            let decisions: Vec<NumberedDecisionRow> = query_as(SELECT_DECISIONS)
                .bind(case_id)
                .fetch_all(tx.ex())
                .await
                .map_err(db_error)?;
            let last_no = decisions.last().map(|d| d.decision_no).unwrap_or(0);
            let job = match (&turned_down, requested) {
                (Some(declined_by), _) => action_for(&self.cipher, &decisions, declined_by)?.map(|(_, previous, index)| RoutingJob {
                    action: previous.actions[index].action.clone(),
                    policy_version: previous.policy_version,
                    rule_id: previous.rule_id.clone(),
                    description: format!(
                        "re-route: {declined_by} turned the case down; the same action, the next candidate"
                    ),
                    requested: false,
                }),
                (None, Some((action, reason))) => {
                    let policy_version = match decisions.last() {
                        Some(row) => decision_of(&self.cipher, case_id, row.decision_no, &row.decision)?.policy_version,
                        None => 0,
                    };
                    Some(RoutingJob {
                        action,
                        policy_version,
                        rule_id: "requested".into(),
                        description: match reason {
                            Some(reason) => format!("requested by {actor}: {reason}"),
                            None => format!("requested by {actor}"),
                        },
                        requested: true,
                    })
                }
                (None, None) => None,
            };
            if let Some(job) = job {
                let tried: Vec<String> = query_scalar(SELECT_TRIED)
                    .bind(case_id)
                    .fetch_all(tx.ex())
                    .await
                    .map_err(db_error)?;
                let tried: HashSet<String> = tried.into_iter().collect();
                let details = case_details(&self.cipher, case_id, &case.details)?;
                let request = RoutingRequest::for_case(
                    &details.intake,
                    parse_enum("line", &case.line)?,
                    next.priority,
                    change.at,
                );
                let found = reroute(&request, &job.action, &tried);
                let new = rerouted(&place, job, last_no + 1, found, at)?;
                query(INSERT_DECISION)
                    .bind(case_id)
                    .bind(new.decision_no)
                    .bind(new.decision.policy_version)
                    .bind(&new.decision.rule_id)
                    .bind(new.decision.unrouted())
                    .bind(DECISION.seal_text(
                        &self.cipher,
                        &decision_row(case_id, new.decision_no),
                        &new.decision_json,
                    )?)
                    .bind(at)
                    .execute(tx.ex())
                    .await
                    .map_err(db_error)?;
                if let Some((referral_id, point_id, purpose)) = &new.referral {
                    insert_referral(
                        &mut tx,
                        targets,
                        next.priority,
                        case_id,
                        *referral_id,
                        point_id,
                        *purpose,
                        at,
                    )
                    .await?;
                }
                if let Some((dispatch_id, team_id)) = &new.dispatch {
                    insert_dispatch(
                        &mut tx,
                        targets,
                        next.priority,
                        case_id,
                        *dispatch_id,
                        team_id,
                        at,
                    )
                    .await?;
                }
                if new.decision.unrouted() {
                    routing_status = RoutingStatus::Unrouted;
                }
                events.extend(new.events);
                reroute_decision = Some(new.decision);
            }
        }

        let case_version: i64 = query_scalar(UPDATE_CASE)
            .bind(case_id)
            .bind(next.status.as_str())
            .bind(next.priority.as_str())
            .bind(next.outcome.map(|o| o.as_str()))
            .bind(routing_status.as_str())
            .bind(at)
            .fetch_one(tx.ex())
            .await
            .map_err(db_error)?;
        let team_taken = reroute_decision.as_ref().is_some_and(|d: &Decision| {
            d.assignments()
                .iter()
                .any(|a| matches!(a.destination, Destination::Team { .. }))
        });
        if released_team.is_some() || team_taken {
            directory = query_scalar(BUMP_DIRECTORY)
                .fetch_one(tx.ex())
                .await
                .map_err(db_error)?;
        }
        let last_event = write_events(self, &mut tx, &events).await?;
        let audit = match &change.requester {
            Some(requester) => crate::audit::AuditEntry::requested(
                requester,
                Some(case_id),
                crate::audit::OK,
                change.at,
            ),
            None => crate::audit::AuditEntry::by_service(
                &change.actor.id,
                &change.change,
                case_id,
                change.at,
            ),
        };
        write_audit(&mut tx, std::slice::from_ref(&audit)).await?;
        tx.commit().await.map_err(db_error)?;
        self.directory.set(directory);
        Ok(ChangeOutcome {
            case_id,
            case_version,
            version: version.unwrap_or(case_version),
            created,
            due_at,
            released_team,
            reroute: reroute_decision,
            last_event,
        })
    }
}
