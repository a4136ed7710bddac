//! The feed's events and the filters streams select them with: every change to a case is one
//! event in a global, gapless sequence. An event holds no sensitive field.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::types::{Line, Priority};

/// One event of the feed: a change to a case. It holds no sensitive field.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    /// Global sequence number, in commit order, with no gap.
    pub sequence: i64,
    /// The case changed.
    pub case_id: Uuid,
    /// What happened (`case_recorded`, `dispatch_acknowledged`, …).
    pub kind: String,
    /// Who did it, as `role:id`.
    pub actor: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Why, when a reason was given.
    pub reason: Option<String>,
    /// The change's facts as a JSON object.
    pub data: String,
    /// The case's line.
    pub line: Line,
    /// The case's province.
    pub province: String,
    /// The case's county.
    pub county: String,
    /// The case's priority when the event was written.
    pub priority: Priority,
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
    pub fn matches(&self, event: &FeedEvent) -> bool {
        self.province.as_ref().is_none_or(|p| *p == event.province)
            && self.county.as_ref().is_none_or(|c| *c == event.county)
            && self.priority.is_none_or(|p| p == event.priority)
            && self.line.is_none_or(|l| l == event.line)
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
