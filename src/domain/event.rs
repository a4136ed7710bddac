//! The feed's events and the filters streams select them with: every change to a case is one
//! event in a global, gapless sequence. An event holds no sensitive field.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::types::{DispatchStatus, Line, Priority, ReferralStatus, domain_enum};

domain_enum! {
    /// What an event records. The stored and streamed name is the snake_case one
    /// (`case_recorded`, `dispatch_on_scene`, …).
    pub enum EventKind {
        /// A case was recorded from an intake.
        CaseRecorded,
        /// Routing chose the case's destinations.
        CaseRouted,
        /// A destination turned the case down and routing chose another.
        CaseRerouted,
        /// Routing found no destination: supervisors must act.
        CaseUnrouted,
        /// A call centre asked for another destination.
        AssignmentRequested,
        /// Routing added the destination a call centre asked for.
        AssignmentAdded,
        /// A mobile team was sent.
        DispatchAssigned,
        DispatchAcknowledged,
        DispatchEnRoute,
        DispatchOnScene,
        DispatchTransporting,
        DispatchCleared,
        DispatchCancelled,
        DispatchDeclined,
        ReferralRequested,
        ReferralAccepted,
        ReferralRejected,
        ReferralInProgress,
        ReferralOnHold,
        ReferralCompleted,
        ReferralFailed,
        ReferralCancelled,
        NoteAdded,
        FollowUpScheduled,
        FollowUpDone,
        PriorityChanged,
        CaseClosed,
        CaseReopened,
        /// A deadline passed.
        SlaBreached,
        /// A missed deadline had nothing to call off: supervisors were alerted.
        SupervisorsAlerted,
        /// A crisis was declared for the province (or the country). No case.
        CrisisDeclared,
        /// A crisis declaration was changed. No case.
        CrisisChanged,
        /// A crisis was ended. No case.
        CrisisEnded,
    }
}

impl EventKind {
    /// The event a dispatch moving to `status` writes.
    pub fn dispatch(status: DispatchStatus) -> Self {
        match status {
            DispatchStatus::Assigned => Self::DispatchAssigned,
            DispatchStatus::Acknowledged => Self::DispatchAcknowledged,
            DispatchStatus::EnRoute => Self::DispatchEnRoute,
            DispatchStatus::OnScene => Self::DispatchOnScene,
            DispatchStatus::Transporting => Self::DispatchTransporting,
            DispatchStatus::Cleared => Self::DispatchCleared,
            DispatchStatus::Cancelled => Self::DispatchCancelled,
            DispatchStatus::Declined => Self::DispatchDeclined,
        }
    }

    /// The event a referral moving to `status` writes.
    pub fn referral(status: ReferralStatus) -> Self {
        match status {
            ReferralStatus::Requested => Self::ReferralRequested,
            ReferralStatus::Accepted => Self::ReferralAccepted,
            ReferralStatus::Rejected => Self::ReferralRejected,
            ReferralStatus::InProgress => Self::ReferralInProgress,
            ReferralStatus::OnHold => Self::ReferralOnHold,
            ReferralStatus::Completed => Self::ReferralCompleted,
            ReferralStatus::Failed => Self::ReferralFailed,
            ReferralStatus::Cancelled => Self::ReferralCancelled,
        }
    }

    /// The Persian name, for timelines people read.
    pub fn label_fa(self) -> &'static str {
        match self {
            Self::CaseRecorded => "ثبت پرونده",
            Self::CaseRouted => "مسیریابی",
            Self::CaseRerouted => "مسیریابی دوباره",
            Self::CaseUnrouted => "بدون مقصد — هشدار به ناظر",
            Self::AssignmentRequested => "درخواست مقصد",
            Self::AssignmentAdded => "مقصد تازه",
            Self::DispatchAssigned => "اعزام تیم سیار",
            Self::DispatchAcknowledged => "تأیید تیم",
            Self::DispatchEnRoute => "در راه",
            Self::DispatchOnScene => "در محل",
            Self::DispatchTransporting => "انتقال",
            Self::DispatchCleared => "پایان مأموریت",
            Self::DispatchCancelled => "لغو اعزام",
            Self::DispatchDeclined => "رد اعزام",
            Self::ReferralRequested => "درخواست ارجاع",
            Self::ReferralAccepted => "پذیرش ارجاع",
            Self::ReferralRejected => "رد ارجاع",
            Self::ReferralInProgress => "در حال انجام",
            Self::ReferralOnHold => "ارجاع در انتظار",
            Self::ReferralCompleted => "انجام ارجاع",
            Self::ReferralFailed => "ناکامی ارجاع",
            Self::ReferralCancelled => "لغو ارجاع",
            Self::NoteAdded => "یادداشت",
            Self::FollowUpScheduled => "برنامه پیگیری",
            Self::FollowUpDone => "انجام پیگیری",
            Self::PriorityChanged => "تغییر اولویت",
            Self::CaseClosed => "بستن پرونده",
            Self::CaseReopened => "بازگشایی پرونده",
            Self::SlaBreached => "گذشتن از مهلت",
            Self::SupervisorsAlerted => "هشدار به ناظر",
            Self::CrisisDeclared => "اعلام وضعیت بحران",
            Self::CrisisChanged => "تغییر وضعیت بحران",
            Self::CrisisEnded => "پایان وضعیت بحران",
        }
    }
}

/// Where a case's events are filed, for the watchers' filters: the same for every event of
/// the case but its priority, which is the case's when the event is written.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPlace {
    pub case_id: Uuid,
    pub line: Line,
    pub province: String,
    pub county: String,
    pub priority: Priority,
    pub recorded_by: String,
}

impl EventPlace {
    /// An event of this case. `data` holds only what every watcher may see.
    pub fn event(
        &self,
        kind: EventKind,
        actor: impl Into<String>,
        occurred_at: DateTime<Utc>,
        reason: Option<String>,
        data: serde_json::Value,
        team_id: Option<String>,
    ) -> NewEvent {
        NewEvent {
            place: self.clone(),
            kind,
            actor: actor.into(),
            occurred_at,
            reason,
            data,
            team_id,
        }
    }
}

/// An event a plan writes; the store numbers and chains it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub place: EventPlace,
    pub kind: EventKind,
    pub actor: String,
    pub occurred_at: DateTime<Utc>,
    pub reason: Option<String>,
    /// The change's facts every watcher may see, as a JSON object.
    pub data: serde_json::Value,
    /// The team the event concerns, for the team's assignment stream.
    pub team_id: Option<String>,
}

/// One event of the feed: a change to a case, or a crisis declared, changed or ended in a
/// province (no case, line or priority; no province for the whole country). It holds no
/// sensitive field.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    /// Global sequence number, in commit order, with no gap.
    pub sequence: i64,
    /// The case changed; `None` for a crisis's event.
    pub case_id: Option<Uuid>,
    /// What happened.
    pub kind: EventKind,
    /// Who did it, as `role:id`.
    pub actor: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Why, when a reason was given.
    pub reason: Option<String>,
    /// The change's facts as a JSON object.
    pub data: String,
    /// The case's line.
    pub line: Option<Line>,
    /// The case's province (a crisis's; empty for the whole country).
    pub province: String,
    /// The case's county.
    pub county: String,
    /// The case's priority when the event was written.
    pub priority: Option<Priority>,
    /// The team the event concerns.
    pub team_id: Option<String>,
    /// Who recorded the case (the subject of the intake's token).
    pub recorded_by: String,
}

/// Which events a stream carries; the conditions combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this province.
    pub province: Option<String>,
    /// Only this county (with the province).
    pub county: Option<String>,
    /// Only this priority.
    pub priority: Option<Priority>,
    /// Only this line.
    pub line: Option<Line>,
    /// Only events about this team.
    pub team_id: Option<String>,
    /// Only events of cases this subject recorded.
    pub recorded_by: Option<String>,
}

impl EventFilter {
    /// True when `event` passes the filter. The store applies the same conditions in SQL.
    ///
    /// A crisis's event reaches every stream of its province (every stream, for the whole
    /// country) whatever its county, priority, line or recorder: those narrow the cases
    /// watched, and a crisis changes how all of them are routed. A team's stream carries its
    /// assignments only.
    pub fn matches(&self, event: &FeedEvent) -> bool {
        if event.case_id.is_none() {
            return self.team_id.is_none()
                && (event.province.is_empty()
                    || self.province.as_ref().is_none_or(|p| *p == event.province));
        }
        self.province.as_ref().is_none_or(|p| *p == event.province)
            && self.county.as_ref().is_none_or(|c| *c == event.county)
            && self.priority.is_none_or(|p| Some(p) == event.priority)
            && self.line.is_none_or(|l| Some(l) == event.line)
            && self
                .team_id
                .as_ref()
                .is_none_or(|t| event.team_id.as_ref() == Some(t))
            && self
                .recorded_by
                .as_ref()
                .is_none_or(|r| *r == event.recorded_by)
    }
}
