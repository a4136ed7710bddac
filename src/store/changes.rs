//! Changes to recorded cases, load → plan → write in one transaction: the store loads what the
//! change needs ([`ChangeLoad`], as [`Needs`] says), the domain's planner decides everything
//! ([`crate::domain::plan::change`]), and the plan's writes become statements here, with its
//! events and audit row.

use uuid::Uuid;

use super::ChangePlanner;
use super::chain::write_audit;
use super::db::{Query, Tx, query, query_as, query_scalar};
use super::events::write_events;
use super::map_sqlx_error as db_error;
use super::queue::{END_WAIT, INSERT_WAIT, RANK_WAIT, case_wait};
use super::rows::{DecisionRow, DispatchRow, EventRow, ReferralRow};
use super::sealed::{
    DECISION, FOLLOW_UP_OUTCOME, NOTE_BODY, case_details, decision_of, decision_row, from_micros,
    micros, parse_enum, seal_position,
};
use super::sql_store::{SqlStore, bump_directory};
use super::statements::{
    ASSIGN_TEAM, INSERT_DECISION, INSERT_DISPATCH, INSERT_DISPATCH_STEP, INSERT_REFERRAL,
    SELECT_CASE_DECISIONS, SELECT_DISPATCH, SELECT_REFERRAL,
};
use crate::domain::Error;
use crate::domain::audit::{AuditEntry, OK};
use crate::domain::change::{CaseChange, Change, ChangeKey};
use crate::domain::plan::NewTimer;
use crate::domain::plan::change::{
    ChangeLoad, ChangeOutcome, ChangePlan, LoadedCase, LoadedFollowUp, LoadedTeam, LoadedTimer,
    Needs, Target, Timers, Write,
};
use crate::domain::sla::SlaKind;
use crate::domain::types::{DispatchStatus, ReferralStatus};

pub(super) const SELECT_CASE_STATE: &str = "select case_id, line, status, priority, outcome, \
     primary_category, province, county, minors_involved, version, routing_status, details, \
     recorded_by from cases where case_id = $1";

pub(super) const SELECT_FOLLOW_UP_STATE: &str = "select follow_up_id, case_id, done_at, service_point_id from follow_ups \
     where follow_up_id = $1";

pub(super) const COUNT_ACTIVE_DISPATCHES: &str = "select count(*) from dispatches \
     where case_id = $1 and status not in ('cleared', 'cancelled', 'declined')";

pub(super) const COUNT_PENDING_FOLLOW_UPS: &str =
    "select count(*) from follow_ups where case_id = $1 and done_at is null";

pub(super) const UPDATE_CASE: &str = "update cases set status = $2, priority = $3, outcome = $4, \
     routing_status = $5, version = version + 1, updated_at = $6 where case_id = $1";

pub(super) const UPDATE_REFERRAL: &str = "update referrals set status = $2, reason = $3, \
     version = version + 1, updated_at = $4 where referral_id = $1";

pub(super) const UPDATE_DISPATCH: &str = "update dispatches set status = $2, reason = $3, \
     version = version + 1, updated_at = $4 where dispatch_id = $1";

/// A team's state as a change reads it: its duty status and load, and how many of the
/// service's dispatches to it are open.
pub(super) const SELECT_TEAM_STATE: &str = "select team_id, status, load, \
     (select count(*) from dispatches d where d.team_id = $1 \
      and d.status not in ('cleared', 'cancelled', 'declined')) as open_dispatches \
     from teams where team_id = $1";

/// Sets a team's duty status and load, as a plan worked them out.
pub(super) const SET_TEAM_STATE: &str =
    "update teams set status = $2, load = $3, updated_at = $4 where team_id = $1";

pub(super) const INSERT_NOTE: &str = "insert into notes (note_id, case_id, actor, created_at, \
     body) values ($1, $2, $3, $4, $5)";

pub(super) const INSERT_FOLLOW_UP: &str = "insert into follow_ups (follow_up_id, case_id, due_at, \
     reason, created_at, service_point_id) values ($1, $2, $3, $4, $5, $6)";

pub(super) const RECORD_FOLLOW_UP: &str =
    "update follow_ups set outcome = $2, done_at = $3 where follow_up_id = $1";

/// The case's parties: every service point it was referred to (kind 0) and every team
/// dispatched to it (kind 1).
pub(super) const SELECT_PARTIES: &str = "select 0 as kind, service_point_id as id from referrals \
     where case_id = $1 union select 1, team_id from dispatches where case_id = $1";

pub(crate) const SELECT_DUE_TIMERS: &str = "select timer_id from sla_timers \
     where state = 'pending' and due_at <= $1 order by due_at, timer_id limit $2";

pub(super) const COUNT_OPEN_TIMERS: &str = "select kind, count(*), \
     count(*) filter (where due_at <= $1) from sla_timers where state = 'pending' group by kind \
     order by kind";

pub(super) const INSERT_TIMER: &str = "insert into sla_timers (timer_id, case_id, kind, \
     subject_id, due_at, state, created_at) values ($1, $2, $3, $4, $5, 'pending', $6)";

pub(super) const SELECT_TIMER: &str = "select timer_id, case_id, kind, subject_id, due_at, \
     created_at, state from sla_timers where timer_id = $1";

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
pub(super) const SELECT_PENDING_PRIORITY_TIMERS: &str = "select timer_id, case_id, kind, \
     subject_id, due_at, created_at, state from sla_timers where case_id = $1 and state = 'pending' \
     and kind in ('team_acknowledgement', 'on_scene', 'referral_acceptance')";

pub(super) const RESCHEDULE_TIMER: &str = "update sla_timers set due_at = $2 where timer_id = $1";

pub(super) const CANCEL_TIMER: &str = "update sla_timers set state = 'cancelled', \
     resolved_at = $2 where timer_id = $1";

pub(super) const COUNT_CASE_TIMERS: &str =
    "select count(*) from sla_timers where case_id = $1 and kind = $2";

pub(super) const SERVICE_POINT_KIND: &str =
    "select kind from service_points where service_point_id = $1";

pub(super) const SELECT_CHANGE_KEY: &str =
    "select payload_hash, outcome from change_keys where subject = $1 and request_id = $2";

pub(super) const INSERT_CHANGE_KEY: &str = "insert into change_keys (subject, request_id, \
     payload_hash, outcome, created_at) values ($1, $2, $3, $4, $5)";

const SELECT_DECISION: &str = "select case_id, decision_no, decision from routing_decisions \
     where case_id = $1 and decision_no = $2";

/// A change's answer as kept for its retries: the re-route by its number, since decisions are
/// sealed where they are stored.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeptOutcome {
    #[serde(flatten)]
    outcome: ChangeOutcome,
    reroute_no: Option<i64>,
}

/// A stored timer.
#[derive(sqlx::FromRow)]
struct TimerRow {
    timer_id: Uuid,
    case_id: Uuid,
    kind: String,
    subject_id: Option<Uuid>,
    due_at: i64,
    created_at: i64,
    state: String,
}

impl TimerRow {
    fn into_loaded(self) -> Result<LoadedTimer, Error> {
        Ok(LoadedTimer {
            timer_id: self.timer_id,
            case_id: self.case_id,
            kind: parse_enum("timer kind", &self.kind)?,
            subject: self.subject_id,
            due: from_micros(self.due_at)?,
            started: from_micros(self.created_at)?,
            pending: self.state == "pending",
        })
    }
}

/// A team as a change reads it.
#[derive(sqlx::FromRow)]
struct TeamStateRow {
    team_id: String,
    status: String,
    load: i64,
    open_dispatches: i64,
}

impl TeamStateRow {
    fn into_loaded(self) -> Result<LoadedTeam, Error> {
        Ok(LoadedTeam {
            team_id: self.team_id,
            status: parse_enum("duty status", &self.status)?,
            load: u32::try_from(self.load).unwrap_or(0),
            open_dispatches: usize::try_from(self.open_dispatches).unwrap_or(0),
        })
    }
}

/// A case as a change reads it.
#[derive(sqlx::FromRow)]
struct CaseStateRow {
    case_id: Uuid,
    line: String,
    status: String,
    priority: String,
    outcome: Option<String>,
    primary_category: String,
    province: String,
    county: String,
    minors_involved: bool,
    version: i64,
    routing_status: String,
    details: Vec<u8>,
    recorded_by: String,
}

impl CaseStateRow {
    fn to_loaded(&self) -> Result<LoadedCase, Error> {
        Ok(LoadedCase {
            case_id: self.case_id,
            line: parse_enum("line", &self.line)?,
            status: parse_enum("status", &self.status)?,
            priority: parse_enum("priority", &self.priority)?,
            outcome: self
                .outcome
                .as_deref()
                .map(|o| parse_enum("outcome", o))
                .transpose()?,
            primary_category: parse_enum("category", &self.primary_category)?,
            province: self.province.clone(),
            county: self.county.clone(),
            minors_involved: self.minors_involved,
            version: self.version,
            routing_status: parse_enum("routing status", &self.routing_status)?,
            recorded_by: self.recorded_by.clone(),
        })
    }
}

/// A follow-up as a change reads it.
#[derive(sqlx::FromRow)]
struct FollowUpStateRow {
    follow_up_id: Uuid,
    case_id: Uuid,
    done_at: Option<i64>,
    service_point_id: Option<String>,
}

impl SqlStore {
    /// Applies a change to a case in one transaction: load, plan (`planner`), write.
    #[tracing::instrument(skip_all)]
    pub(super) async fn apply_change(
        &self,
        change: &CaseChange,
        planner: &mut ChangePlanner<'_>,
    ) -> Result<ChangeOutcome, Error> {
        let (mut tx, mut directory) = self.begin_locked().await?;
        if let Some(key) = &change.key
            && let Some(kept) = self.kept_change(&mut tx, change, key).await?
        {
            write_audit(&mut tx, std::slice::from_ref(&kept.1)).await?;
            tx.commit().await.map_err(db_error)?;
            return Ok(kept.0);
        }
        let load = self.load_change(&mut tx, change).await?;
        let mut plan = planner(change, load)?;
        self.write_change(&mut tx, &plan).await?;
        // A team the change freed goes, in this transaction, to the first waiting case it
        // can serve.
        let offered = match &plan.offer {
            Some(offer) => self.offer_team(&mut tx, offer, change.at, planner).await?,
            None => None,
        };
        if let Some(offered) = offered {
            plan.outcome.offered_to = Some(offered.outcome.case_id);
            plan.directory_moved |= offered.directory_moved;
            plan.events.extend(offered.events);
            plan.audit_more.push(offered.audit);
        }
        if plan.directory_moved {
            directory = bump_directory(&mut tx).await?;
        }
        self.write_events_of(&mut tx, &mut plan).await?;
        if let Some(key) = &change.key {
            let reroute_no = plan.writes.iter().rev().find_map(|write| match write {
                Write::Decision { decision_no, .. } => Some(*decision_no),
                _ => None,
            });
            let kept = KeptOutcome {
                outcome: plan.outcome.clone(),
                reroute_no: reroute_no.filter(|_| plan.outcome.reroute.is_some()),
            };
            tx.run(
                query(INSERT_CHANGE_KEY)
                    .bind(&change.requester.subject)
                    .bind(&key.request_id)
                    .bind(&key.payload_hash)
                    .bind(serde_json::to_string(&kept).map_err(Error::internal)?)
                    .bind(micros(change.at)),
            )
            .await?;
        }
        let entries: Vec<_> = std::iter::once(plan.audit).chain(plan.audit_more).collect();
        write_audit(&mut tx, &entries).await?;
        tx.commit().await.map_err(db_error)?;
        self.directory.set(directory);
        Ok(plan.outcome)
    }

    /// Writes a plan's events under the feed's next numbers and notes the last in its outcome.
    pub(super) async fn write_events_of(
        &self,
        tx: &mut Tx,
        plan: &mut ChangePlan,
    ) -> Result<(), Error> {
        let events = plan
            .events
            .iter()
            .map(EventRow::of)
            .collect::<Result<Vec<_>, _>>()?;
        plan.outcome.last_event = write_events(self, tx, &events).await?;
        Ok(())
    }

    /// The answer a change sent before under the same key, with the audit row of its retry;
    /// refused when the key came with other content.
    async fn kept_change(
        &self,
        tx: &mut Tx,
        change: &CaseChange,
        key: &ChangeKey,
    ) -> Result<Option<(ChangeOutcome, AuditEntry)>, Error> {
        let found: Option<(Vec<u8>, String)> = query_as(SELECT_CHANGE_KEY)
            .bind(&change.requester.subject)
            .bind(&key.request_id)
            .fetch_optional(tx.ex())
            .await
            .map_err(db_error)?;
        let Some((hash, kept)) = found else {
            return Ok(None);
        };
        if hash != key.payload_hash {
            return Err(Error::IdempotencyConflict);
        }
        let kept: KeptOutcome = serde_json::from_str(&kept).map_err(Error::internal)?;
        let mut outcome = kept.outcome;
        if let Some(number) = kept.reroute_no {
            let row: Option<DecisionRow> = query_as(SELECT_DECISION)
                .bind(outcome.case_id)
                .bind(number)
                .fetch_optional(tx.ex())
                .await
                .map_err(db_error)?;
            outcome.reroute = row
                .map(|row| decision_of(&self.cipher, row.case_id, row.decision_no, &row.decision))
                .transpose()?;
        }
        // Nothing is freed or taken again.
        outcome.replayed = true;
        outcome.released_team = None;
        outcome.released_place = None;
        let audit = AuditEntry::requested(&change.requester, Some(outcome.case_id), OK, change.at);
        Ok(Some((outcome, audit)))
    }

    /// Reads what `change` names, its case, and what [`Needs::of`] the change asks for.
    pub(super) async fn load_change(
        &self,
        tx: &mut Tx,
        change: &CaseChange,
    ) -> Result<ChangeLoad, Error> {
        async fn one<R: super::db::Row>(
            tx: &mut Tx,
            sql: &'static str,
            id: Uuid,
        ) -> Result<Option<R>, Error> {
            query_as(sql)
                .bind(id)
                .fetch_optional(tx.ex())
                .await
                .map_err(db_error)
        }
        let target = match &change.change {
            Change::Referral { referral_id, .. } => Target::Referral(
                one::<ReferralRow>(tx, SELECT_REFERRAL, *referral_id)
                    .await?
                    .ok_or(Error::NotFound("referral"))?
                    .into_loaded()?,
            ),
            Change::Dispatch { dispatch_id, .. } => Target::Dispatch(
                one::<DispatchRow>(tx, SELECT_DISPATCH, *dispatch_id)
                    .await?
                    .ok_or(Error::NotFound("dispatch"))?
                    .into_loaded()?,
            ),
            Change::RecordFollowUp { follow_up_id, .. } => {
                let row = one::<FollowUpStateRow>(tx, SELECT_FOLLOW_UP_STATE, *follow_up_id)
                    .await?
                    .ok_or(Error::NotFound("follow-up"))?;
                Target::FollowUp(LoadedFollowUp {
                    follow_up_id: row.follow_up_id,
                    case_id: row.case_id,
                    done: row.done_at.is_some(),
                    service_point_id: row.service_point_id,
                })
            }
            Change::SlaBreach { timer_id } => Target::Timer(
                one::<TimerRow>(tx, SELECT_TIMER, *timer_id)
                    .await?
                    .ok_or(Error::NotFound("timer"))?
                    .into_loaded()?,
            ),
            _ => Target::Case,
        };
        let case_id = target
            .case_id(&change.change)
            .ok_or_else(|| Error::internal("a change without a case"))?;
        let row = one::<CaseStateRow>(tx, SELECT_CASE_STATE, case_id)
            .await?
            .ok_or(Error::NotFound("case"))?;
        let count = |sql: &'static str| query_scalar::<i64>(sql).bind(case_id);
        let active_dispatches = count(COUNT_ACTIVE_DISPATCHES)
            .fetch_one(tx.ex())
            .await
            .map_err(db_error)?;
        let pending_follow_ups = count(COUNT_PENDING_FOLLOW_UPS)
            .fetch_one(tx.ex())
            .await
            .map_err(db_error)?;
        let parties: Vec<(i32, String)> = query_as(SELECT_PARTIES)
            .bind(case_id)
            .fetch_all(tx.ex())
            .await
            .map_err(db_error)?;
        let (points, teams): (Vec<_>, Vec<_>) =
            parties.into_iter().partition(|(kind, _)| *kind == 0);
        let mut load = ChangeLoad {
            case: row.to_loaded()?,
            target,
            active_dispatches: active_dispatches as usize,
            pending_follow_ups: pending_follow_ups as usize,
            teams: teams.into_iter().map(|(_, id)| id).collect(),
            service_points: points.into_iter().map(|(_, id)| id).collect(),
            details: None,
            decisions: Vec::new(),
            point_kind: None,
            prosecutor_timers: 0,
            priority_timers: Vec::new(),
            breach_subject: None,
            team: None,
            wait: None,
        };
        let needs = Needs::of(&change.change);
        if needs.wait {
            load.wait = case_wait(tx, case_id).await?;
        }
        if needs.routing {
            load.details = Some(case_details(&self.cipher, case_id, &row.details)?);
            let rows: Vec<DecisionRow> = query_as(SELECT_CASE_DECISIONS)
                .bind(case_id)
                .fetch_all(tx.ex())
                .await
                .map_err(db_error)?;
            load.decisions = rows
                .into_iter()
                .map(|row| {
                    let decision =
                        decision_of(&self.cipher, row.case_id, row.decision_no, &row.decision)?;
                    Ok((row.decision_no, decision))
                })
                .collect::<Result<_, Error>>()?;
        }
        if let (true, Target::Referral(referral)) = (needs.point_kind, &load.target) {
            let kind: Option<String> = query_scalar(SERVICE_POINT_KIND)
                .bind(&referral.service_point_id)
                .fetch_optional(tx.ex())
                .await
                .map_err(db_error)?;
            load.point_kind = kind.as_deref().and_then(|k| k.parse().ok());
        }
        if needs.prosecutor_timers {
            load.prosecutor_timers = query_scalar::<i64>(COUNT_CASE_TIMERS)
                .bind(case_id)
                .bind(SlaKind::ProsecutorNotice.as_str())
                .fetch_one(tx.ex())
                .await
                .map_err(db_error)? as usize;
        }
        if needs.priority_timers {
            let rows: Vec<TimerRow> = query_as(SELECT_PENDING_PRIORITY_TIMERS)
                .bind(case_id)
                .fetch_all(tx.ex())
                .await
                .map_err(db_error)?;
            load.priority_timers = rows
                .into_iter()
                .map(TimerRow::into_loaded)
                .collect::<Result<_, _>>()?;
        }
        if let (true, Target::Timer(timer)) = (needs.breach_subject, &load.target)
            && let Some(subject) = timer.subject
        {
            load.breach_subject = match timer.kind {
                SlaKind::TeamAcknowledgement => one::<DispatchRow>(tx, SELECT_DISPATCH, subject)
                    .await?
                    .map(|row| row.into_loaded().map(Target::Dispatch))
                    .transpose()?,
                SlaKind::ReferralAcceptance => one::<ReferralRow>(tx, SELECT_REFERRAL, subject)
                    .await?
                    .map(|row| row.into_loaded().map(Target::Referral))
                    .transpose()?,
                _ => None,
            };
        }
        if needs.team {
            let team_id = match (&load.target, &load.breach_subject) {
                (Target::Dispatch(dispatch), _) | (_, Some(Target::Dispatch(dispatch))) => {
                    Some(dispatch.team_id.clone())
                }
                _ => None,
            };
            if let Some(team_id) = team_id {
                let row: Option<TeamStateRow> = query_as(SELECT_TEAM_STATE)
                    .bind(&team_id)
                    .fetch_optional(tx.ex())
                    .await
                    .map_err(db_error)?;
                load.team = row.map(TeamStateRow::into_loaded).transpose()?;
            }
        }
        Ok(load)
    }

    /// Turns a plan's writes into statements, in order.
    pub(super) async fn write_change(&self, tx: &mut Tx, plan: &ChangePlan) -> Result<(), Error> {
        let case_id = plan.outcome.case_id;
        let at = micros(plan.at);
        for write in &plan.writes {
            let statement = match write {
                Write::Referral {
                    referral_id,
                    to,
                    reason,
                } => query(UPDATE_REFERRAL)
                    .bind(referral_id)
                    .bind(to.as_str())
                    .bind(reason)
                    .bind(at),
                Write::Dispatch {
                    dispatch_id,
                    to,
                    reason,
                } => query(UPDATE_DISPATCH)
                    .bind(dispatch_id)
                    .bind(to.as_str())
                    .bind(reason)
                    .bind(at),
                Write::DispatchStep {
                    dispatch_id,
                    status,
                    position,
                } => query(INSERT_DISPATCH_STEP)
                    .bind(dispatch_id)
                    .bind(status.as_str())
                    .bind(at)
                    .bind(seal_position(
                        &self.cipher,
                        *dispatch_id,
                        status.as_str(),
                        *position,
                    )?),
                Write::Team(team) => query(SET_TEAM_STATE)
                    .bind(&team.team_id)
                    .bind(<&'static str>::from(team.status))
                    .bind(i64::from(team.load))
                    .bind(at),
                Write::MeetTimers {
                    of: Timers::Of(subject),
                    kind,
                } => query(MEET_SUBJECT_TIMERS)
                    .bind(subject)
                    .bind(kind.as_str())
                    .bind(at),
                Write::MeetTimers {
                    of: Timers::OfCase,
                    kind,
                } => query(MEET_CASE_TIMERS)
                    .bind(case_id)
                    .bind(kind.as_str())
                    .bind(at),
                Write::CancelTimers {
                    of: Timers::Of(subject),
                } => query(CANCEL_SUBJECT_TIMERS).bind(subject).bind(at),
                Write::CancelTimers { of: Timers::OfCase } => {
                    query(CANCEL_CASE_TIMERS).bind(case_id).bind(at)
                }
                Write::StartTimer(timer) => start_timer(case_id, timer, at),
                Write::RescheduleTimer { timer_id, due } => {
                    query(RESCHEDULE_TIMER).bind(timer_id).bind(micros(*due))
                }
                Write::CancelTimer { timer_id } => query(CANCEL_TIMER).bind(timer_id).bind(at),
                Write::BreachTimer { timer_id } => query(BREACH_TIMER).bind(timer_id).bind(at),
                Write::Note {
                    note_id,
                    actor,
                    text,
                } => query(INSERT_NOTE)
                    .bind(note_id)
                    .bind(case_id)
                    .bind(actor)
                    .bind(at)
                    .bind(NOTE_BODY.seal(
                        &self.cipher,
                        note_id.as_bytes(),
                        text.expose().as_bytes(),
                    )?),
                Write::FollowUp {
                    follow_up_id,
                    due,
                    reason,
                    service_point_id,
                } => query(INSERT_FOLLOW_UP)
                    .bind(follow_up_id)
                    .bind(case_id)
                    .bind(micros(*due))
                    .bind(reason)
                    .bind(at)
                    .bind(service_point_id.clone()),
                Write::FollowUpDone {
                    follow_up_id,
                    outcome,
                } => query(RECORD_FOLLOW_UP)
                    .bind(follow_up_id)
                    .bind(FOLLOW_UP_OUTCOME.seal_text(
                        &self.cipher,
                        follow_up_id.as_bytes(),
                        outcome,
                    )?)
                    .bind(at),
                Write::Decision {
                    decision_no,
                    decision,
                } => {
                    let json = serde_json::to_string(decision).map_err(Error::internal)?;
                    query(INSERT_DECISION)
                        .bind(case_id)
                        .bind(*decision_no)
                        .bind(decision.policy_version)
                        .bind(&decision.rule_id)
                        .bind(decision.unrouted())
                        .bind(DECISION.seal_text(
                            &self.cipher,
                            &decision_row(case_id, *decision_no),
                            &json,
                        )?)
                        .bind(at)
                }
                Write::NewReferral(referral) => query(INSERT_REFERRAL)
                    .bind(referral.referral_id)
                    .bind(case_id)
                    .bind(&referral.service_point_id)
                    .bind(referral.purpose.as_str())
                    .bind(ReferralStatus::Requested.as_str())
                    .bind(at),
                Write::NewDispatch(dispatch) => {
                    let assigned = DispatchStatus::Assigned.as_str();
                    tx.run(
                        query(INSERT_DISPATCH)
                            .bind(dispatch.dispatch_id)
                            .bind(case_id)
                            .bind(&dispatch.team_id)
                            .bind(assigned)
                            .bind(at),
                    )
                    .await?;
                    tx.run(
                        query(INSERT_DISPATCH_STEP)
                            .bind(dispatch.dispatch_id)
                            .bind(assigned)
                            .bind(at)
                            .bind(Option::<Vec<u8>>::None),
                    )
                    .await?;
                    query(ASSIGN_TEAM).bind(&dispatch.team_id).bind(at)
                }
                Write::StartWait {
                    wait_id,
                    province,
                    rank,
                } => query(INSERT_WAIT)
                    .bind(wait_id)
                    .bind(case_id)
                    .bind(province)
                    .bind(rank)
                    .bind(at),
                Write::EndWait {
                    wait_id,
                    by,
                    dispatch_id,
                } => query(END_WAIT)
                    .bind(wait_id)
                    .bind(at)
                    .bind(by.as_str())
                    .bind(*dispatch_id),
                Write::RankWait { wait_id, rank } => query(RANK_WAIT).bind(wait_id).bind(rank),
                Write::Case {
                    status,
                    priority,
                    outcome,
                    routing_status,
                } => query(UPDATE_CASE)
                    .bind(case_id)
                    .bind(status.as_str())
                    .bind(priority.as_str())
                    .bind(outcome.map(|o| o.as_str()))
                    .bind(routing_status.as_str())
                    .bind(at),
            };
            tx.run(statement).await?;
        }
        Ok(())
    }
}

/// The statement that starts a timer.
fn start_timer(case_id: Uuid, timer: &NewTimer, at: i64) -> Query {
    query(INSERT_TIMER)
        .bind(timer.timer_id)
        .bind(case_id)
        .bind(timer.kind.as_str())
        .bind(timer.subject)
        .bind(micros(timer.due))
        .bind(at)
}
