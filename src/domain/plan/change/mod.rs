//! Planning a change to a case: the lifecycles' checks, what the change writes (statuses,
//! steps, notes, follow-ups, the deadline timers it meets, cancels, moves or starts), its
//! events and audit row, and — when a destination turned the case down or a call centre asked
//! for one — routing again.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::NewTimer;
use crate::domain::Error;
use crate::domain::change::{
    CaseChange, CaseContext, CaseState, Change, check_case_change, default_follow_up,
};
use crate::domain::decision::{Action, RoutingStatus};
use crate::domain::event::{EventKind, EventPlace, NewEvent};
use crate::domain::lifecycle::Side;
use crate::domain::queue::{self, Wait, WaitEnd};
use crate::domain::reach::CaseParties;
use crate::domain::sla::{SlaKind, SlaTargets};

mod load;
mod outputs;
mod parts;
mod reroute;

pub use load::{
    ChangeLoad, LoadedCase, LoadedDispatch, LoadedFollowUp, LoadedReferral, LoadedTeam,
    LoadedTimer, Needs, Target,
};
pub use outputs::{
    ChangeOutcome, ChangePlan, ReleasedTeam, RerouteAsk, RerouteFn, Rerouted, Timers, Write,
};

/// Refuses a change based on another version than the current one.
pub(super) fn check_version(what: &str, current: i64, expected: Option<i64>) -> Result<(), Error> {
    match expected {
        Some(expected) if expected != current => Err(Error::Stale(format!(
            "the {what} is at version {current}, not {expected}; read it again"
        ))),
        _ => Ok(()),
    }
}

/// Plans `change` on the case as loaded.
pub fn plan_change(
    change: &CaseChange,
    load: ChangeLoad,
    targets: &SlaTargets,
    reroute: &mut RerouteFn<'_>,
) -> Result<ChangePlan, Error> {
    let case = &load.case;
    let requester = &change.requester;
    // A case out of the requester's reach is not found, as if it did not exist.
    let parties = CaseParties {
        province: &case.province,
        county: &case.county,
        recorded_by: &case.recorded_by,
        teams: &load.teams,
        service_points: &load.service_points,
    };
    if !requester.reach.covers(&parties) {
        return Err(Error::NotFound(load.target.name()));
    }
    match &load.target {
        Target::Dispatch(dispatch) => requester.parts.check_dispatch_owner(&dispatch.team_id)?,
        Target::Referral(referral) => requester
            .parts
            .check_referral_owner(&referral.service_point_id)?,
        // A follow-up handed to a base is that base's (or the requesting side's) to record.
        Target::FollowUp(follow_up) => {
            if let Some(base) = &follow_up.service_point_id {
                requester.parts.check_referral_owner(base)?;
            }
        }
        _ => {}
    }
    let current = CaseState {
        status: case.status,
        priority: case.priority,
        outcome: case.outcome,
    };
    if matches!(load.target, Target::Case | Target::FollowUp(_)) {
        check_version("case", case.version, change.expected_version)?;
    }
    let context = CaseContext {
        active_dispatches: load.active_dispatches,
        pending_follow_ups: load.pending_follow_ups,
    };
    let next = check_case_change(current, context, &change.change)?;
    let mut plan = Planner {
        change,
        load: &load,
        targets,
        next,
        place: EventPlace {
            case_id: case.case_id,
            line: case.line,
            province: case.province.clone(),
            county: case.county.clone(),
            priority: next.priority,
            recorded_by: case.recorded_by.clone(),
        },
        actor: change.actor.to_string(),
        writes: Vec::new(),
        events: Vec::new(),
        version: None,
        created: None,
        due_at: None,
        released_team: None,
        released_place: None,
        breached: None,
        turned_down: None,
        routing_status: case.routing_status,
        wait: load.wait.clone(),
    };
    plan.apply(current)?;
    let rerouted = plan.route_again(reroute)?;
    plan.finish(rerouted)
}

/// A plan being made.
pub(super) struct Planner<'a> {
    change: &'a CaseChange,
    load: &'a ChangeLoad,
    targets: &'a SlaTargets,
    /// How the case will stand.
    next: CaseState,
    place: EventPlace,
    actor: String,
    writes: Vec<Write>,
    events: Vec<NewEvent>,
    version: Option<i64>,
    created: Option<Uuid>,
    due_at: Option<DateTime<Utc>>,
    released_team: Option<ReleasedTeam>,
    released_place: Option<String>,
    breached: Option<SlaKind>,
    /// The destination that turned the case down, to route again.
    turned_down: Option<String>,
    routing_status: RoutingStatus,
    /// The case's open wait in the team queue, until a write of this plan ends it.
    wait: Option<Wait>,
}

impl Planner<'_> {
    /// When the change happened: the device's time for a queued report, else its arrival.
    fn at(&self) -> DateTime<Utc> {
        self.change.occurred()
    }

    /// A report that happened on a device is refused when it happened before the last step
    /// already recorded: a phone's queue is replayed in the order it happened.
    fn check_order(&self, what: &str, last: DateTime<Utc>) -> Result<(), Error> {
        match self.change.occurred_at {
            Some(at) if at < last => Err(Error::FailedPrecondition(format!(
                "the report happened at {at}, before the {what}'s last step at {last}; send \
                 queued reports in the order they happened"
            ))),
            _ => Ok(()),
        }
    }

    /// Ends the case's wait for a team, if it is waiting.
    /// A case sent its team is routed again, unless an earlier decision left another of its
    /// actions without a destination.
    fn end_wait(&mut self, by: WaitEnd, dispatch_id: Option<Uuid>) {
        if let Some(wait) = self.wait.take() {
            self.writes.push(Write::EndWait {
                wait_id: wait.wait_id,
                by,
                dispatch_id,
            });
            let other_unmet = self.load.decisions.iter().any(|(_, decision)| {
                decision.actions.iter().any(|a| {
                    a.action != Action::DispatchMobileTeam
                        && a.destination.is_none()
                        && a.not_applicable.is_none()
                })
            });
            if by == WaitEnd::Team && !other_unmet {
                self.routing_status = RoutingStatus::Routed;
            }
        }
    }

    fn event(
        &mut self,
        kind: EventKind,
        reason: Option<String>,
        data: serde_json::Value,
        team_id: Option<String>,
    ) {
        let event = self
            .place
            .event(kind, self.actor.clone(), self.at(), reason, data, team_id);
        self.events.push(event);
    }

    /// The change itself.
    fn apply(&mut self, current: CaseState) -> Result<(), Error> {
        let change = self.change;
        let at = self.at();
        match (&change.change, &self.load.target) {
            (Change::Referral { to, reason, .. }, Target::Referral(referral)) => {
                self.referral(referral, *to, reason.clone())
            }
            (
                Change::Dispatch {
                    to,
                    reason,
                    position,
                    ..
                },
                Target::Dispatch(dispatch),
            ) => self.dispatch(dispatch, *to, reason.clone(), *position),
            (
                Change::Close {
                    outcome, reason, ..
                },
                _,
            ) => {
                self.writes.push(Write::CancelTimers { of: Timers::OfCase });
                self.end_wait(WaitEnd::Closed, None);
                self.event(
                    EventKind::CaseClosed,
                    reason.clone(),
                    serde_json::json!({ "outcome": outcome.as_str() }),
                    None,
                );
                Ok(())
            }
            (Change::Reopen { reason, .. }, _) => {
                self.event(
                    EventKind::CaseReopened,
                    Some(reason.clone()),
                    serde_json::json!({ "outcome_was": current.outcome.map(|o| o.as_str()) }),
                    None,
                );
                Ok(())
            }
            (Change::Priority { to, reason, .. }, _) => {
                // The pending deadlines follow the new priority, counted from when each timer
                // started: a case raised to P0 gets P0's minutes.
                for timer in &self.load.priority_timers {
                    self.writes
                        .push(match self.targets.due(timer.kind, *to, timer.started) {
                            Some(due) => Write::RescheduleTimer {
                                timer_id: timer.timer_id,
                                due,
                            },
                            None => Write::CancelTimer {
                                timer_id: timer.timer_id,
                            },
                        });
                }
                if let Some(wait) = &self.wait {
                    if !queue::queues(*to) {
                        self.end_wait(WaitEnd::Lowered, None);
                    } else if queue::rank(*to) != wait.rank {
                        self.writes.push(Write::RankWait {
                            wait_id: wait.wait_id,
                            rank: queue::rank(*to),
                        });
                    }
                }
                self.event(
                    EventKind::PriorityChanged,
                    reason.clone(),
                    serde_json::json!({ "from": current.priority.as_str(), "to": to.as_str() }),
                    None,
                );
                Ok(())
            }
            (Change::Note { text, .. }, _) => {
                let note_id = Uuid::now_v7();
                self.writes.push(Write::Note {
                    note_id,
                    actor: self.actor.clone(),
                    text: text.clone(),
                });
                self.created = Some(note_id);
                // The note's text stays out of the feed.
                self.event(
                    EventKind::NoteAdded,
                    None,
                    serde_json::json!({ "note_id": note_id }),
                    None,
                );
                Ok(())
            }
            (Change::ScheduleFollowUp { due_at, reason, .. }, _) => {
                let due = due_at.unwrap_or_else(|| {
                    default_follow_up(self.load.case.primary_category, self.next.priority, at)
                });
                let follow_up_id = Uuid::now_v7();
                // A base it is handed to is found when routing (see `route_again`).
                self.writes.push(Write::FollowUp {
                    follow_up_id,
                    due,
                    reason: reason.clone(),
                    service_point_id: None,
                });
                self.writes.push(Write::StartTimer(NewTimer {
                    timer_id: Uuid::now_v7(),
                    kind: SlaKind::FollowUp,
                    subject: Some(follow_up_id),
                    due,
                }));
                self.created = Some(follow_up_id);
                self.due_at = Some(due);
                self.event(
                    EventKind::FollowUpScheduled,
                    Some(reason.clone()),
                    serde_json::json!({
                        "follow_up_id": follow_up_id,
                        "due_at": due.timestamp_micros(),
                    }),
                    None,
                );
                Ok(())
            }
            (
                Change::RecordFollowUp {
                    follow_up_id,
                    outcome,
                },
                Target::FollowUp(follow_up),
            ) => {
                if follow_up.done {
                    return Err(Error::FailedPrecondition(
                        "the follow-up is done; its outcome is already recorded".into(),
                    ));
                }
                self.writes.push(Write::FollowUpDone {
                    follow_up_id: *follow_up_id,
                    outcome: outcome.clone(),
                });
                self.writes.push(Write::MeetTimers {
                    of: Timers::Of(*follow_up_id),
                    kind: SlaKind::FollowUp,
                });
                // The outcome is free text about the person: kept out of the feed.
                self.event(
                    EventKind::FollowUpDone,
                    None,
                    serde_json::json!({ "follow_up_id": follow_up_id }),
                    None,
                );
                Ok(())
            }
            (Change::RequestAssignment { action, reason, .. }, _) => {
                if change.actor.side() != Side::Requester {
                    return Err(Error::PermissionDenied(
                        "assignments are asked for by the requesting side (a call centre or a supervisor)".into(),
                    ));
                }
                self.event(
                    EventKind::AssignmentRequested,
                    reason.clone(),
                    serde_json::json!({ "purpose": action.purpose().as_str() }),
                    None,
                );
                Ok(())
            }
            (Change::SlaBreach { .. }, Target::Timer(timer)) => self.breach(timer),
            // The team's dispatch is the change: routing again (restricted to the team) makes
            // it, and refuses when the team cannot serve the case.
            (Change::OfferTeam { .. }, _) => {
                if self.wait.is_none() {
                    return Err(Error::FailedPrecondition(
                        "the case is not waiting for a team".into(),
                    ));
                }
                Ok(())
            }
            _ => Err(Error::internal("a change and its target do not match")),
        }
    }
}
