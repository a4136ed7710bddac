//! The recorded case as the read side sees it, and the filters a case list takes.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::change::CaseOutcome;
use super::decision::{Decision, Purpose, RoutingStatus};
use super::intake::{Contact, Intake};
use super::sensitive::Sensitive;
use super::triage::Assessment;
use super::types::{
    CaseStatus, Category, DispatchStatus, Line, Priority, ReferralStatus, RequestedAction,
};

/// The fields of a case a list shows; none of them is sensitive.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseSummary {
    /// Case identifier (UUIDv7, so it sorts by creation time).
    pub case_id: Uuid,
    /// Reference a person can read aloud.
    pub reference: String,
    /// Line the case came in on.
    pub line: Line,
    /// Lifecycle status.
    pub status: CaseStatus,
    /// Current priority.
    pub priority: Priority,
    /// Main problem.
    pub primary_category: Category,
    /// Province of the incident.
    pub province: String,
    /// County of the incident.
    pub county: String,
    /// True when a subject is a minor.
    pub minors_involved: bool,
    /// Version, raised by every change.
    pub version: i64,
    /// When the case was recorded.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A contact as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedContact {
    /// Contact identifier.
    pub contact_id: Uuid,
    /// Line it came in on.
    pub line: Line,
    /// The contact as reported.
    pub contact: Contact,
    /// When the service recorded it.
    pub recorded_at: DateTime<Utc>,
}

/// A referral as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedReferral {
    /// Referral identifier.
    pub referral_id: Uuid,
    /// The service point or outside body.
    pub service_point_id: String,
    /// Why it takes the case.
    pub purpose: Purpose,
    /// Where the referral stands.
    pub status: ReferralStatus,
    /// Version, raised by every change.
    pub version: i64,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Why it was last changed, when a reason was given.
    pub reason: Option<String>,
}

/// One status a dispatch went through.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchStep {
    /// The status.
    pub status: DispatchStatus,
    /// When the team reported it.
    pub occurred_at: DateTime<Utc>,
    /// Where the team was, when it sent its position.
    pub position: Option<(f64, f64)>,
}

/// A note on a case.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedNote {
    /// Note identifier.
    pub note_id: Uuid,
    /// Who wrote it.
    pub actor: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// The note.
    pub text: Sensitive<String>,
}

/// A scheduled follow-up.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedFollowUp {
    /// Follow-up identifier.
    pub follow_up_id: Uuid,
    /// When it is due.
    pub due_at: DateTime<Utc>,
    /// What it is for.
    pub reason: String,
    /// When it was done.
    pub done_at: Option<DateTime<Utc>>,
    /// What came of it.
    pub outcome: Option<Sensitive<String>>,
    /// The social-service base it was handed to.
    pub service_point_id: Option<String>,
}

/// A dispatch as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedDispatch {
    /// Dispatch identifier.
    pub dispatch_id: Uuid,
    /// The team.
    pub team_id: String,
    /// Where the dispatch stands.
    pub status: DispatchStatus,
    /// Version, raised by every change.
    pub version: i64,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Why it was declined or cancelled.
    pub reason: Option<String>,
    /// Every status it went through, in order.
    pub steps: Vec<DispatchStep>,
}

/// A case with its details.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRecord {
    /// List fields.
    pub summary: CaseSummary,
    /// The intake as recorded.
    pub intake: Intake,
    /// What the intake asked for.
    pub action: RequestedAction,
    /// Triage at intake.
    pub assessment: Assessment,
    /// Every contact, oldest first.
    pub contacts: Vec<RecordedContact>,
    /// How the case stands after routing.
    pub routing_status: RoutingStatus,
    /// The routing decision made at intake, with every candidate considered.
    pub routing: Option<Decision>,
    /// Re-routes after a destination turned the case down, oldest first.
    pub reroutes: Vec<Decision>,
    /// How the case ended, once closed.
    pub outcome: Option<CaseOutcome>,
    /// Notes, oldest first.
    pub notes: Vec<RecordedNote>,
    /// Follow-ups, oldest first.
    pub follow_ups: Vec<RecordedFollowUp>,
    /// Referrals, notifications and hand-overs, oldest first.
    pub referrals: Vec<RecordedReferral>,
    /// Mobile teams sent, oldest first.
    pub dispatches: Vec<RecordedDispatch>,
    /// The subject of the token that recorded the case.
    pub recorded_by: String,
}

impl CaseRecord {
    /// Decides whether `reach` covers this case.
    pub fn within(&self, reach: &crate::domain::reach::Reach) -> bool {
        let teams: Vec<String> = self.dispatches.iter().map(|d| d.team_id.clone()).collect();
        let points: Vec<String> = self
            .referrals
            .iter()
            .map(|r| r.service_point_id.clone())
            .collect();
        reach.covers(&crate::domain::reach::CaseParties {
            province: &self.summary.province,
            county: &self.summary.county,
            recorded_by: &self.recorded_by,
            teams: &teams,
            service_points: &points,
        })
    }
}

/// Filters of a case list; they combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CaseFilter {
    /// Only this line.
    pub line: Option<Line>,
    /// Only this priority.
    pub priority: Option<Priority>,
    /// Only cases with this category, primary or secondary.
    pub category: Option<Category>,
    /// Only this province.
    pub province: Option<String>,
    /// Only this county (with the province).
    pub county: Option<String>,
    /// Only this status.
    pub status: Option<CaseStatus>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
}

/// One page request of a case list, newest first by `(created_at, case_id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Largest number of cases to return.
    pub size: usize,
    /// Continue after this position (the last case of the previous page).
    pub after: Option<Cursor>,
}

/// A position in a case list: the list's sort key of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The case's creation time.
    pub created_at: DateTime<Utc>,
    /// The case's id, which breaks ties.
    pub case_id: Uuid,
}

impl From<&CaseSummary> for Cursor {
    fn from(case: &CaseSummary) -> Self {
        Self {
            created_at: case.created_at,
            case_id: case.case_id,
        }
    }
}

/// Page sizes a list accepts.
pub mod paging {
    /// Page size when the client sends none.
    pub const DEFAULT_PAGE_SIZE: usize = 50;
    /// Largest page size.
    pub const MAX_PAGE_SIZE: usize = 500;
}

/// What a case was recorded with: the intake, the action asked for and its triage (stored
/// sealed, as the case's `details`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CaseDetails {
    pub intake: Intake,
    pub action: RequestedAction,
    pub assessment: Assessment,
}
