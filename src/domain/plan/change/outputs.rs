//! What a change's plan holds: its writes, events, audit row and outcome; and what routing is
//! asked when the case must go somewhere again.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::LoadedTeam;
use crate::domain::audit::AuditEntry;
use crate::domain::change::CaseOutcome;
use crate::domain::decision::{
    Action, ActionDecision, CrisisRef, Decision, DutyStatus, RoutingStatus,
};
use crate::domain::event::NewEvent;
use crate::domain::intake::Intake;
use crate::domain::plan::{NewDispatch, NewReferral, NewTimer};
use crate::domain::queue::{TeamOffer, WaitEnd};
use crate::domain::sensitive::Sensitive;
use crate::domain::sla::{SlaKind, SlaTargets};
use crate::domain::types::{CaseStatus, DispatchStatus, Line, Priority, ReferralStatus};

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
    /// A team's live state after one of the service's dispatches to it ended.
    Team(ReleasedTeam),
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
        /// The social-service base it is handed to.
        service_point_id: Option<String>,
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
    /// The case starts waiting in the team queue.
    StartWait {
        wait_id: Uuid,
        province: String,
        rank: i64,
    },
    /// The case's wait ends (a team sent: the dispatch).
    EndWait {
        wait_id: Uuid,
        by: WaitEnd,
        dispatch_id: Option<Uuid>,
    },
    /// The waiting case's priority moved within those that wait.
    RankWait {
        wait_id: Uuid,
        rank: i64,
    },
    /// The case's own columns (its version goes up by one).
    Case {
        status: CaseStatus,
        priority: Priority,
        outcome: Option<CaseOutcome>,
        routing_status: RoutingStatus,
    },
}

/// A team freed from a dispatch, as it stands after: one case less, and available again once
/// none of the service's dispatches to it is open (unless it went off duty or out of service
/// meanwhile).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReleasedTeam {
    pub team_id: String,
    pub status: DutyStatus,
    pub load: u32,
}

impl ReleasedTeam {
    /// `team` after one of its open dispatches ended.
    pub fn after_release(team: &LoadedTeam) -> Self {
        let open = team.open_dispatches.saturating_sub(1);
        let status = match team.status {
            DutyStatus::Busy if open == 0 => DutyStatus::Available,
            other => other,
        };
        Self {
            team_id: team.team_id.clone(),
            status,
            load: team.load.saturating_sub(1),
        }
    }
}

/// What a committed change did. Kept (without the re-route, which is sealed with the case's
/// decisions) for a retry sent with the same request id.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// A team freed by the change (its dispatch was cleared, cancelled or declined), as it now
    /// stands.
    pub released_team: Option<ReleasedTeam>,
    /// The service point whose place a referral that ended gives back.
    pub released_place: Option<String>,
    /// The re-route a rejection or a decline led to.
    #[serde(skip)]
    pub reroute: Option<Decision>,
    /// The waiting case the freed team was then sent to, in the same transaction.
    pub offered_to: Option<Uuid>,
    /// The kind of deadline a breach marked missed.
    pub breached: Option<SlaKind>,
    /// The number of the change's last event in the feed (set by the store when written).
    pub last_event: i64,
    /// A retry's answer: the change was made before, and nothing was changed now.
    #[serde(default)]
    pub replayed: bool,
}

/// Everything a change writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePlan {
    /// When the change happened: the time its rows and events carry.
    pub at: DateTime<Utc>,
    pub writes: Vec<Write>,
    pub events: Vec<NewEvent>,
    pub audit: AuditEntry,
    /// The audit rows of what the store did in the same transaction on the plan's account (a
    /// freed team sent to a waiting case).
    pub audit_more: Vec<AuditEntry>,
    /// A team was taken or freed: the directory's live state moved.
    pub directory_moved: bool,
    /// The team the change freed, to offer to the waiting cases (the application names the
    /// provinces whose cover chain reaches it).
    pub offer: Option<TeamOffer>,
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
    /// Only this team may be chosen (a freed team offered to a waiting case).
    pub only: Option<&'a str>,
    /// A referral may go to a point that is closed now, for its next opening.
    pub may_wait: bool,
}

/// What routing answers a [`RerouteAsk`]: the action carried out again, the crisis
/// declarations in force (the new decision names them) and the deadline targets that replace
/// the deployment's for what it sends, when one of them sets some.
#[derive(Debug, Clone, PartialEq)]
pub struct Rerouted {
    pub found: ActionDecision,
    pub crises: Vec<CrisisRef>,
    pub targets: Option<SlaTargets>,
}

impl From<ActionDecision> for Rerouted {
    fn from(found: ActionDecision) -> Self {
        Self {
            found,
            crises: Vec::new(),
            targets: None,
        }
    }
}

/// Routes a case again (the application's directory).
pub type RerouteFn<'a> = dyn FnMut(&RerouteAsk<'_>) -> Rerouted + Send + 'a;
