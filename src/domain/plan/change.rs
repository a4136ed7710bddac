//! Planning a change to a case: the lifecycles' checks, what the change writes (statuses,
//! steps, notes, follow-ups, the deadline timers it meets, cancels, moves or starts), its
//! events and audit row, and — when a destination turned the case down or a call centre asked
//! for one — routing again.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    NewDispatch, NewReferral, NewTimer, routing_event_data, routing_event_kind, timers_for,
};
use crate::domain::Error;
use crate::domain::audit::{AuditEntry, OK};
use crate::domain::case::CaseDetails;
use crate::domain::change::{
    CaseChange, CaseContext, CaseOutcome, CaseState, Change, check_case_change, default_follow_up,
    transition_error,
};
use crate::domain::decision::{
    Action, ActionDecision, Decision, Destination, Purpose, RoutingStatus, ServicePointKind,
};
use crate::domain::event::{EventKind, EventPlace, NewEvent};
use crate::domain::intake::Intake;
use crate::domain::lifecycle::{Side, check_dispatch, check_referral};
use crate::domain::reach::CaseParties;
use crate::domain::sensitive::Sensitive;
use crate::domain::sla::{SlaKind, SlaTargets};
use crate::domain::types::{CaseStatus, Category, DispatchStatus, Line, Priority, ReferralStatus};

/// A case as a change sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedCase {
    pub case_id: Uuid,
    pub line: Line,
    pub status: CaseStatus,
    pub priority: Priority,
    pub outcome: Option<CaseOutcome>,
    pub primary_category: Category,
    pub province: String,
    pub county: String,
    pub minors_involved: bool,
    pub version: i64,
    pub routing_status: RoutingStatus,
    pub recorded_by: String,
}

/// A referral as a change sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedReferral {
    pub referral_id: Uuid,
    pub case_id: Uuid,
    pub service_point_id: String,
    pub purpose: Purpose,
    pub status: ReferralStatus,
    pub version: i64,
}

/// A dispatch as a change sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedDispatch {
    pub dispatch_id: Uuid,
    pub case_id: Uuid,
    pub team_id: String,
    pub status: DispatchStatus,
    pub version: i64,
}

/// A follow-up as a change sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedFollowUp {
    pub follow_up_id: Uuid,
    pub case_id: Uuid,
    pub done: bool,
}

/// A deadline timer as a change sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedTimer {
    pub timer_id: Uuid,
    pub case_id: Uuid,
    pub kind: SlaKind,
    pub subject: Option<Uuid>,
    pub due: DateTime<Utc>,
    /// When it started: a new priority's target counts from here.
    pub started: DateTime<Utc>,
    /// Neither met, cancelled nor breached yet.
    pub pending: bool,
}

/// What a change names: the case itself, or one of its parts.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Case,
    Referral(LoadedReferral),
    Dispatch(LoadedDispatch),
    FollowUp(LoadedFollowUp),
    Timer(LoadedTimer),
}

impl Target {
    /// What the change names, as a refusal calls it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Case => "case",
            Self::Referral(_) => "referral",
            Self::Dispatch(_) => "dispatch",
            Self::FollowUp(_) => "follow-up",
            Self::Timer(_) => "timer",
        }
    }

    /// The case the target belongs to; for [`Target::Case`], the one the change names.
    pub fn case_id(&self, change: &Change) -> Option<Uuid> {
        match self {
            Self::Referral(row) => Some(row.case_id),
            Self::Dispatch(row) => Some(row.case_id),
            Self::FollowUp(row) => Some(row.case_id),
            Self::Timer(row) => Some(row.case_id),
            Self::Case => change.case_id(),
        }
    }
}

/// What a change's plan needs loaded besides the case, what it names, and the case's parties
/// and counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// The case's intake and its routing decisions: the change may route again.
    pub routing: bool,
    /// The kind of the referral's service point (meeting the prosecutor's deadline).
    pub point_kind: bool,
    /// How many prosecutor's-notice timers the case started (one at most).
    pub prosecutor_timers: bool,
    /// The pending timers whose target follows the priority.
    pub priority_timers: bool,
    /// The referral or dispatch a breached timer watches.
    pub breach_subject: bool,
}

impl Needs {
    pub fn of(change: &Change) -> Self {
        let mut needs = Self::default();
        match change {
            Change::Referral { .. } => {
                needs.routing = true;
                needs.point_kind = true;
            }
            Change::Dispatch { .. } => {
                needs.routing = true;
                needs.prosecutor_timers = true;
            }
            Change::RequestAssignment { .. } => needs.routing = true,
            Change::SlaBreach { .. } => {
                needs.routing = true;
                needs.breach_subject = true;
            }
            Change::Priority { .. } => needs.priority_timers = true,
            Change::Close { .. }
            | Change::Reopen { .. }
            | Change::Note { .. }
            | Change::ScheduleFollowUp { .. }
            | Change::RecordFollowUp { .. } => {}
        }
        needs
    }
}

/// What a change's plan is made from, read in the change's transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeLoad {
    pub case: LoadedCase,
    pub target: Target,
    /// Dispatches not yet cleared, cancelled or declined.
    pub active_dispatches: usize,
    /// Follow-ups not yet recorded.
    pub pending_follow_ups: usize,
    /// Every team ever dispatched to the case.
    pub teams: Vec<String>,
    /// Every service point the case was ever referred to.
    pub service_points: Vec<String>,
    /// The case's intake and triage ([`Needs::routing`]).
    pub details: Option<CaseDetails>,
    /// The case's routing decisions with their numbers, in order ([`Needs::routing`]).
    pub decisions: Vec<(i64, Decision)>,
    /// [`Needs::point_kind`].
    pub point_kind: Option<ServicePointKind>,
    /// [`Needs::prosecutor_timers`].
    pub prosecutor_timers: usize,
    /// [`Needs::priority_timers`].
    pub priority_timers: Vec<LoadedTimer>,
    /// [`Needs::breach_subject`]: a [`Target::Referral`] or [`Target::Dispatch`].
    pub breach_subject: Option<Target>,
}

/// Whose timers a write meets or cancels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timers {
    /// Those watching one referral, dispatch or follow-up.
    Of(Uuid),
    /// All of the case's.
    OfCase,
}

/// One thing a change writes, in the order the plan lists them.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A referral moves to `to` (its version goes up by one).
    Referral {
        referral_id: Uuid,
        to: ReferralStatus,
        reason: Option<String>,
    },
    /// A dispatch moves to `to` (its version goes up by one).
    Dispatch {
        dispatch_id: Uuid,
        to: DispatchStatus,
        reason: Option<String>,
    },
    /// A dispatch's step, with where the team was (sensitive: the person's whereabouts).
    DispatchStep {
        dispatch_id: Uuid,
        status: DispatchStatus,
        position: Option<(f64, f64)>,
    },
    /// A team carries one case less (and is available again when it carried one).
    ReleaseTeam {
        team_id: String,
    },
    MeetTimers {
        of: Timers,
        kind: SlaKind,
    },
    CancelTimers {
        of: Timers,
    },
    StartTimer(NewTimer),
    RescheduleTimer {
        timer_id: Uuid,
        due: DateTime<Utc>,
    },
    CancelTimer {
        timer_id: Uuid,
    },
    BreachTimer {
        timer_id: Uuid,
    },
    Note {
        note_id: Uuid,
        actor: String,
        text: Sensitive<String>,
    },
    FollowUp {
        follow_up_id: Uuid,
        due: DateTime<Utc>,
        reason: String,
    },
    /// What came of a follow-up (free text about the person: sealed when stored).
    FollowUpDone {
        follow_up_id: Uuid,
        outcome: String,
    },
    /// A routing decision, numbered after the case's earlier ones.
    Decision {
        decision_no: i64,
        decision: Decision,
    },
    NewReferral(NewReferral),
    /// A new dispatch with its first step; its team is taken.
    NewDispatch(NewDispatch),
    /// The case's own columns (its version goes up by one).
    Case {
        status: CaseStatus,
        priority: Priority,
        outcome: Option<CaseOutcome>,
        routing_status: RoutingStatus,
    },
}

/// What a committed change did.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeOutcome {
    /// The case changed.
    pub case_id: Uuid,
    /// The case's version after the change.
    pub case_version: i64,
    /// The version of what was changed: the referral, the dispatch, or the case.
    pub version: i64,
    /// What the change created: a note's or a follow-up's id.
    pub created: Option<Uuid>,
    /// When a scheduled follow-up is due.
    pub due_at: Option<DateTime<Utc>>,
    /// A team freed by the change (its dispatch was cleared, cancelled or declined).
    pub released_team: Option<String>,
    /// The re-route a rejection or a decline led to.
    pub reroute: Option<Decision>,
    /// The number of the change's last event in the feed (set by the store when written).
    pub last_event: i64,
}

/// Everything a change writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePlan {
    pub writes: Vec<Write>,
    pub events: Vec<NewEvent>,
    pub audit: AuditEntry,
    /// A team was taken or freed: the directory's live state moved.
    pub directory_moved: bool,
    pub outcome: ChangeOutcome,
}

/// What routing is asked when a case must go somewhere again: the action to serve, for the
/// case's intake at its current priority, leaving out every destination already tried.
pub struct RerouteAsk<'a> {
    pub intake: &'a Intake,
    pub line: Line,
    pub priority: Priority,
    pub at: DateTime<Utc>,
    pub action: &'a Action,
    pub tried: &'a HashSet<String>,
}

/// Routes a case again (the application's directory).
pub type RerouteFn<'a> = dyn FnMut(&RerouteAsk<'_>) -> ActionDecision + Send + 'a;

/// Refuses a change based on another version than the current one.
fn check_version(what: &str, current: i64, expected: Option<i64>) -> Result<(), Error> {
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
        turned_down: None,
        routing_status: case.routing_status,
    };
    plan.apply(current)?;
    let rerouted = plan.route_again(reroute)?;
    plan.finish(rerouted)
}

/// A plan being made.
struct Planner<'a> {
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
    released_team: Option<String>,
    /// The destination that turned the case down, to route again.
    turned_down: Option<String>,
    routing_status: RoutingStatus,
}

impl Planner<'_> {
    fn at(&self) -> DateTime<Utc> {
        self.change.at
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
                self.writes.push(Write::FollowUp {
                    follow_up_id,
                    due,
                    reason: reason.clone(),
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
            _ => Err(Error::internal("a change and its target do not match")),
        }
    }

    fn referral(
        &mut self,
        referral: &LoadedReferral,
        to: ReferralStatus,
        reason: Option<String>,
    ) -> Result<(), Error> {
        let change = self.change;
        check_version("referral", referral.version, change.expected_version)?;
        let from = referral.status;
        check_referral(from, to, change.actor.side(), reason.as_deref())
            .map_err(|e| transition_error("referral", from.as_str(), e))?;
        self.writes.push(Write::Referral {
            referral_id: referral.referral_id,
            to,
            reason: reason.clone(),
        });
        self.version = Some(referral.version + 1);
        self.event(
            EventKind::referral(to),
            reason,
            serde_json::json!({
                "referral_id": referral.referral_id,
                "service_point_id": referral.service_point_id,
                "purpose": referral.purpose.as_str(),
                "from": from.as_str(),
                "to": to.as_str(),
            }),
            None,
        );
        match to {
            ReferralStatus::Accepted | ReferralStatus::InProgress | ReferralStatus::Completed => {
                self.writes.push(Write::MeetTimers {
                    of: Timers::Of(referral.referral_id),
                    kind: SlaKind::ReferralAcceptance,
                });
                // The child-protection prosecutor taking the case meets its notice deadline.
                if self.load.point_kind == Some(ServicePointKind::ProsecutorChildProtection) {
                    self.writes.push(Write::MeetTimers {
                        of: Timers::OfCase,
                        kind: SlaKind::ProsecutorNotice,
                    });
                }
            }
            ReferralStatus::Rejected | ReferralStatus::Cancelled | ReferralStatus::Failed => {
                self.writes.push(Write::CancelTimers {
                    of: Timers::Of(referral.referral_id),
                });
            }
            ReferralStatus::Requested | ReferralStatus::OnHold => {}
        }
        if to == ReferralStatus::Rejected {
            self.turned_down = Some(referral.service_point_id.clone());
        }
        Ok(())
    }

    fn dispatch(
        &mut self,
        dispatch: &LoadedDispatch,
        to: DispatchStatus,
        reason: Option<String>,
        position: Option<(f64, f64)>,
    ) -> Result<(), Error> {
        let change = self.change;
        check_version("dispatch", dispatch.version, change.expected_version)?;
        let from = dispatch.status;
        check_dispatch(from, to, change.actor.side(), reason.as_deref())
            .map_err(|e| transition_error("dispatch", from.as_str(), e))?;
        let id = dispatch.dispatch_id;
        self.writes.push(Write::Dispatch {
            dispatch_id: id,
            to,
            reason: reason.clone(),
        });
        self.version = Some(dispatch.version + 1);
        self.writes.push(Write::DispatchStep {
            dispatch_id: id,
            status: to,
            position,
        });
        if to.is_terminal() {
            self.writes.push(Write::ReleaseTeam {
                team_id: dispatch.team_id.clone(),
            });
            self.released_team = Some(dispatch.team_id.clone());
        }
        // The team's position is not in the event: it is where the person is.
        self.event(
            EventKind::dispatch(to),
            reason,
            serde_json::json!({
                "dispatch_id": id,
                "team_id": dispatch.team_id,
                "from": from.as_str(),
                "to": to.as_str(),
            }),
            Some(dispatch.team_id.clone()),
        );
        match to {
            DispatchStatus::Acknowledged => self.writes.push(Write::MeetTimers {
                of: Timers::Of(id),
                kind: SlaKind::TeamAcknowledgement,
            }),
            DispatchStatus::OnScene => self.writes.push(Write::MeetTimers {
                of: Timers::Of(id),
                kind: SlaKind::OnScene,
            }),
            // A child taken from the scene starts the prosecutor's 12 hours, once.
            DispatchStatus::Transporting if self.load.case.minors_involved => {
                if self.load.prosecutor_timers == 0
                    && let Some(due) =
                        self.targets
                            .due(SlaKind::ProsecutorNotice, self.next.priority, self.at())
                {
                    self.writes.push(Write::StartTimer(NewTimer {
                        timer_id: Uuid::now_v7(),
                        kind: SlaKind::ProsecutorNotice,
                        subject: None,
                        due,
                    }));
                }
            }
            DispatchStatus::Cleared | DispatchStatus::Cancelled | DispatchStatus::Declined => {
                self.writes.push(Write::CancelTimers { of: Timers::Of(id) });
            }
            _ => {}
        }
        if to == DispatchStatus::Declined {
            self.turned_down = Some(dispatch.team_id.clone());
        }
        Ok(())
    }

    /// A missed deadline: a team that never acknowledged is called off and a centre that never
    /// answered is withdrawn from, and the case routed again; any other missed deadline alerts
    /// the supervisors.
    fn breach(&mut self, timer: &LoadedTimer) -> Result<(), Error> {
        if !timer.pending || timer.due > self.at() {
            return Err(Error::FailedPrecondition(
                "the timer is no longer pending, or not yet due".into(),
            ));
        }
        self.writes.push(Write::BreachTimer {
            timer_id: timer.timer_id,
        });
        let kind = timer.kind;
        self.event(
            EventKind::SlaBreached,
            None,
            serde_json::json!({
                "timer_id": timer.timer_id,
                "kind": kind.as_str(),
                "due_at": timer.due.timestamp_micros(),
                "subject_id": timer.subject,
            }),
            None,
        );
        let why = format!("{} deadline missed", kind.as_str());
        let called_off = match (kind, &self.load.breach_subject) {
            (SlaKind::TeamAcknowledgement, Some(Target::Dispatch(dispatch)))
                if dispatch.status == DispatchStatus::Assigned =>
            {
                let (id, team) = (dispatch.dispatch_id, dispatch.team_id.clone());
                let cancelled = DispatchStatus::Cancelled;
                self.writes.extend([
                    Write::Dispatch {
                        dispatch_id: id,
                        to: cancelled,
                        reason: Some(why.clone()),
                    },
                    Write::DispatchStep {
                        dispatch_id: id,
                        status: cancelled,
                        position: None,
                    },
                    Write::ReleaseTeam {
                        team_id: team.clone(),
                    },
                    Write::CancelTimers { of: Timers::Of(id) },
                ]);
                self.released_team = Some(team.clone());
                self.event(
                    EventKind::DispatchCancelled,
                    Some(why.clone()),
                    serde_json::json!({
                        "dispatch_id": id,
                        "team_id": team,
                        "from": DispatchStatus::Assigned.as_str(),
                        "to": cancelled.as_str(),
                    }),
                    Some(team.clone()),
                );
                Some(team)
            }
            (SlaKind::ReferralAcceptance, Some(Target::Referral(referral)))
                if referral.status == ReferralStatus::Requested =>
            {
                let id = referral.referral_id;
                let cancelled = ReferralStatus::Cancelled;
                self.writes.extend([
                    Write::Referral {
                        referral_id: id,
                        to: cancelled,
                        reason: Some(why.clone()),
                    },
                    Write::CancelTimers { of: Timers::Of(id) },
                ]);
                self.event(
                    EventKind::ReferralCancelled,
                    Some(why.clone()),
                    serde_json::json!({
                        "referral_id": id,
                        "service_point_id": referral.service_point_id,
                        "purpose": referral.purpose.as_str(),
                        "from": ReferralStatus::Requested.as_str(),
                        "to": cancelled.as_str(),
                    }),
                    None,
                );
                Some(referral.service_point_id.clone())
            }
            _ => None,
        };
        match called_off {
            Some(destination) => self.turned_down = Some(destination),
            None => self.event(
                EventKind::SupervisorsAlerted,
                Some(why),
                serde_json::json!({ "timer_id": timer.timer_id, "kind": kind.as_str() }),
                None,
            ),
        }
        Ok(())
    }

    /// Routes the case again when a destination turned it down (the same action, the next
    /// candidate) or a call centre asked for an action; returns the new decision.
    fn route_again(&mut self, reroute: &mut RerouteFn<'_>) -> Result<Option<Decision>, Error> {
        let decisions = &self.load.decisions;
        let job = match (&self.turned_down, &self.change.change) {
            (Some(declined_by), _) => action_for(decisions, declined_by).map(|previous| Job {
                action: previous.0.action.clone(),
                policy_version: previous.1.policy_version,
                rule_id: previous.1.rule_id.clone(),
                description: format!(
                    "re-route: {declined_by} turned the case down; the same action, the next candidate"
                ),
                requested: false,
            }),
            (None, Change::RequestAssignment { action, reason, .. }) => Some(Job {
                action: action.clone(),
                policy_version: decisions.last().map_or(0, |(_, d)| d.policy_version),
                rule_id: "requested".into(),
                description: match reason {
                    Some(reason) => format!("requested by {}: {reason}", self.actor),
                    None => format!("requested by {}", self.actor),
                },
                requested: true,
            }),
            _ => None,
        };
        let Some(job) = job else { return Ok(None) };
        let details = self
            .load
            .details
            .as_ref()
            .ok_or_else(|| Error::internal("routing again without the case's intake"))?;
        let tried: HashSet<String> = self
            .load
            .teams
            .iter()
            .chain(&self.load.service_points)
            .cloned()
            .collect();
        let found = reroute(&RerouteAsk {
            intake: &details.intake,
            line: self.load.case.line,
            priority: self.next.priority,
            at: self.at(),
            action: &job.action,
            tried: &tried,
        });
        let decision_no = decisions.last().map_or(0, |(no, _)| *no) + 1;
        let purpose = found.action.purpose();
        let decision = Decision {
            policy_version: job.policy_version,
            rule_id: job.rule_id,
            rule_description: job.description,
            actions: vec![found],
        };
        let kind = match (decision.status(), job.requested) {
            (RoutingStatus::Unrouted, _) | (_, false) => {
                routing_event_kind(decision.status(), false)
            }
            (_, true) => EventKind::AssignmentAdded,
        };
        let at = self.at();
        let event = self.place.event(
            kind,
            "routing",
            at,
            None,
            routing_event_data(&decision),
            None,
        );
        self.events.push(event);
        self.writes.push(Write::Decision {
            decision_no,
            decision: decision.clone(),
        });
        let ids = uuid::ContextV7::new();
        let priority = self.next.priority;
        for assignment in decision.assignments() {
            let id = Uuid::new_v7(uuid::Timestamp::now(&ids));
            match assignment.destination {
                Destination::Team { id: team_id, .. } => {
                    let event = self.place.event(
                        EventKind::DispatchAssigned,
                        "routing",
                        at,
                        None,
                        serde_json::json!({ "dispatch_id": id, "team_id": team_id }),
                        Some(team_id.clone()),
                    );
                    self.events.push(event);
                    self.writes.push(Write::NewDispatch(NewDispatch {
                        dispatch_id: id,
                        team_id,
                    }));
                    self.writes.extend(
                        timers_for(self.targets, priority, Purpose::Dispatch, id, at)
                            .into_iter()
                            .map(Write::StartTimer),
                    );
                }
                Destination::ServicePoint { id: point_id, .. } => {
                    self.writes.push(Write::NewReferral(NewReferral {
                        referral_id: id,
                        service_point_id: point_id,
                        purpose,
                    }));
                    self.writes.extend(
                        timers_for(self.targets, priority, purpose, id, at)
                            .into_iter()
                            .map(Write::StartTimer),
                    );
                }
            }
        }
        if decision.unrouted() {
            self.routing_status = RoutingStatus::Unrouted;
        }
        Ok(Some(decision))
    }

    /// The case's own columns, the audit row and the outcome.
    fn finish(mut self, reroute: Option<Decision>) -> Result<ChangePlan, Error> {
        let case = &self.load.case;
        self.writes.push(Write::Case {
            status: self.next.status,
            priority: self.next.priority,
            outcome: self.next.outcome,
            routing_status: self.routing_status,
        });
        let case_version = case.version + 1;
        let team_taken = reroute.as_ref().is_some_and(|d| {
            d.assignments()
                .iter()
                .any(|a| matches!(a.destination, Destination::Team { .. }))
        });
        Ok(ChangePlan {
            writes: self.writes,
            events: self.events,
            audit: AuditEntry::requested(
                &self.change.requester,
                Some(case.case_id),
                OK,
                self.change.at,
            ),
            directory_moved: self.released_team.is_some() || team_taken,
            outcome: ChangeOutcome {
                case_id: case.case_id,
                case_version,
                version: self.version.unwrap_or(case_version),
                created: self.created,
                due_at: self.due_at,
                released_team: self.released_team,
                reroute,
                last_event: 0,
            },
        })
    }
}

/// An action to route again within a change: the action a destination turned down, or one a
/// call centre asked for.
struct Job {
    action: Action,
    policy_version: i64,
    rule_id: String,
    description: String,
    /// Asked for, rather than a destination turned down.
    requested: bool,
}

/// Finds, among a case's decisions (latest first), the action a destination was chosen for.
fn action_for<'a>(
    decisions: &'a [(i64, Decision)],
    destination_id: &str,
) -> Option<(&'a ActionDecision, &'a Decision)> {
    decisions.iter().rev().find_map(|(_, decision)| {
        decision
            .actions
            .iter()
            .find(|a| {
                a.destination.as_ref().is_some_and(|d| match d {
                    Destination::Team { id, .. } | Destination::ServicePoint { id, .. } => {
                        id == destination_id
                    }
                })
            })
            .map(|action| (action, decision))
    })
}
