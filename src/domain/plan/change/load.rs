//! What a change's plan is made from: the case and its part as loaded, and what else a
//! change needs.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::case::CaseDetails;
use crate::domain::change::{CaseOutcome, Change};
use crate::domain::decision::{Decision, DutyStatus, Purpose, RoutingStatus, ServicePointKind};
use crate::domain::queue::Wait;
use crate::domain::sla::SlaKind;
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
    /// When its last step happened.
    pub updated_at: DateTime<Utc>,
}

/// A dispatch as a change sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedDispatch {
    pub dispatch_id: Uuid,
    pub case_id: Uuid,
    pub team_id: String,
    pub status: DispatchStatus,
    pub version: i64,
    /// When its last step happened.
    pub updated_at: DateTime<Utc>,
}

/// A follow-up as a change sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedFollowUp {
    pub follow_up_id: Uuid,
    pub case_id: Uuid,
    pub done: bool,
    /// The social-service base it was handed to.
    pub service_point_id: Option<String>,
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

/// The team of the dispatch a change moves, as the change sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedTeam {
    pub team_id: String,
    pub status: DutyStatus,
    pub load: u32,
    /// The service's dispatches to the team not yet cleared, cancelled or declined (the one
    /// the change moves among them).
    pub open_dispatches: usize,
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
    /// The team of the dispatch the change moves (or a breached timer watches).
    pub team: bool,
    /// The case's wait in the team queue, if it is waiting.
    pub wait: bool,
}

impl Needs {
    pub fn of(change: &Change) -> Self {
        let mut needs = Self::default();
        match change {
            Change::Referral { .. } => {
                needs.routing = true;
                needs.point_kind = true;
            }
            Change::Dispatch { to, .. } => {
                needs.routing = true;
                needs.prosecutor_timers = true;
                // Only a dispatch that ends frees its team.
                needs.team = to.is_terminal();
            }
            Change::RequestAssignment { .. } | Change::OfferTeam { .. } => needs.routing = true,
            Change::ScheduleFollowUp { hand_to_base, .. } => needs.routing = *hand_to_base,
            Change::SlaBreach { .. } => {
                needs.routing = true;
                needs.breach_subject = true;
                needs.team = true;
            }
            Change::Priority { .. } => needs.priority_timers = true,
            Change::Close { .. }
            | Change::Reopen { .. }
            | Change::Note { .. }
            | Change::RecordFollowUp { .. } => {}
        }
        // A change that may send a team, close the case or move its priority ends or moves
        // its wait.
        needs.wait =
            needs.routing || matches!(change, Change::Close { .. } | Change::Priority { .. });
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
    /// [`Needs::team`], when there is such a dispatch.
    pub team: Option<LoadedTeam>,
    /// [`Needs::wait`]: the case's open wait in the team queue.
    pub wait: Option<Wait>,
}
