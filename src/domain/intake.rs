//! A validated intake: what one call established, ready to be triaged and recorded.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::sensitive::Sensitive;
use super::triage::Assessment;
use super::types::{
    AgeBand, Answer, Category, Channel, Disability, Language, Line, Nationality, PlaceType,
    Priority, Recency, Relationship, RequestedAction, Sex,
};

/// Limits on what one intake may hold. A request over them is refused with a message naming the
/// limit, so a runaway client cannot fill the database or the operators' screens.
pub mod limits {
    /// Most subjects one intake may name.
    pub const MAX_SUBJECTS: usize = 20;
    /// Most secondary categories.
    pub const MAX_SECONDARY_CATEGORIES: usize = 10;
    /// Longest request id, in bytes.
    pub const MAX_REQUEST_ID: usize = 128;
    /// Longest narrative, in characters.
    pub const MAX_NARRATIVE: usize = 8_000;
    /// Longest name, in characters.
    pub const MAX_NAME: usize = 200;
    /// Longest phone number, in characters.
    pub const MAX_PHONE: usize = 32;
    /// Longest address, in characters.
    pub const MAX_ADDRESS: usize = 500;
    /// Longest short text (identifiers, county, neighbourhood, landmark, reasons), in characters.
    pub const MAX_SHORT_TEXT: usize = 200;
    /// Longest reason for a priority override, in characters.
    pub const MAX_REASON: usize = 1_000;
    /// Oldest age accepted, in years.
    pub const MAX_AGE_YEARS: u32 = 120;
}

/// The client's idempotency key: 1 to 128 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestId(String);

impl RequestId {
    /// Parses a request id, or says what is wrong with it.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() {
            return Err("is required");
        }
        if raw.len() > limits::MAX_REQUEST_ID {
            return Err("is longer than 128 characters");
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be printable ASCII without spaces");
        }
        Ok(Self(raw.to_owned()))
    }

    /// Returns the key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One call or chat that touched a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// Identifier of the call in the call centre's system.
    pub external_call_id: String,
    /// Province whose centre answered.
    pub answering_province: String,
    /// Province the call overflowed from, if it did.
    pub overflow_from_province: Option<String>,
    /// Operator or counsellor who took the call.
    pub operator_id: String,
    /// How the contact reached the line.
    pub channel: Channel,
    /// When the call reached the line.
    pub started_at: DateTime<Utc>,
    /// When it was answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// The caller's number. Highly sensitive.
    pub caller_number: Option<Sensitive<String>>,
}

/// The person who called.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reporter {
    /// Relationship to the subject.
    pub relationship: Relationship,
    /// True when the reporter gave no name.
    pub anonymous: bool,
    /// Name. Highly sensitive.
    pub name: Option<Sensitive<String>>,
    /// Consent to be called back.
    pub callback_consent: bool,
    /// Callback number. Highly sensitive.
    pub callback_number: Option<Sensitive<String>>,
}

/// A subject's age as known at intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Age {
    /// Exact age in years.
    Years(u32),
    /// An age band.
    Band(AgeBand),
}

/// A person the case is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// Age, exact or banded.
    pub age: Age,
    /// Whether the subject is under 18, when known.
    pub minor: Option<bool>,
    /// Sex as reported.
    pub sex: Sex,
    /// Nationality or document status. Sensitive.
    pub nationality: Nationality,
    /// Disability. Sensitive.
    pub disability: Disability,
    /// Language spoken best.
    pub language: Language,
    /// Pregnancy. Sensitive.
    pub pregnant: bool,
    /// Name. Highly sensitive.
    pub name: Option<Sensitive<String>>,
    /// National ID. Highly sensitive.
    pub national_id: Option<Sensitive<String>>,
}

impl Subject {
    /// True when the subject is known to be under 18.
    pub fn is_minor(&self) -> bool {
        self.minor == Some(true)
    }
}

/// A WGS 84 position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Coordinates {
    /// Latitude in degrees.
    pub latitude: f64,
    /// Longitude in degrees.
    pub longitude: f64,
}

/// Where the incident is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// ISO 3166-2:IR code of the province.
    pub province: String,
    /// County: its canonical English name once recorded; empty when the caller could not say.
    pub county: String,
    /// District, city or village.
    pub district: Option<String>,
    /// Neighbourhood.
    pub neighbourhood: Option<String>,
    /// Street address. Highly sensitive.
    pub address: Option<Sensitive<String>>,
    /// Landmark.
    pub landmark: Option<String>,
    /// Position. Highly sensitive.
    pub coordinates: Option<Sensitive<Coordinates>>,
    /// Kind of place.
    pub place_type: PlaceType,
}

/// Answers to the suicide screening questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuicideScreening {
    /// Wished to be dead, past month.
    pub wish_to_be_dead: Answer,
    /// Suicidal thoughts, past month.
    pub suicidal_thoughts: Answer,
    /// Thought about a method.
    pub method: Answer,
    /// Some intention to act, past month.
    pub intent: Answer,
    /// A plan, past month.
    pub plan: Answer,
    /// Suicidal behaviour in the last 3 months.
    pub behaviour_last_3_months: Answer,
}

/// The safety facts triage weighs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskFacts {
    /// Screening answers, when screened. Highly sensitive.
    pub suicide_screening: Option<Sensitive<SuicideScreening>>,
    /// An attempt is in progress.
    pub attempt_in_progress: bool,
    /// Violence is going on.
    pub violence_ongoing: bool,
    /// A weapon or lethal means is present.
    pub weapon_present: bool,
    /// Someone is injured or needs medical care.
    pub injury_or_medical_need: bool,
    /// The alleged perpetrator is present.
    pub perpetrator_present: bool,
    /// The perpetrator's relationship to the subject. Highly sensitive.
    pub perpetrator_relationship: Option<Sensitive<String>>,
    /// Children live in the household.
    pub children_in_household: bool,
    /// The team may be at risk.
    pub risk_to_team: bool,
    /// Someone involved is intoxicated. Sensitive.
    pub intoxication: bool,
    /// How long ago the problem happened.
    pub recency: Recency,
}

impl RiskFacts {
    /// No risk fact reported, recency not known: what a call that gave none (a silent call, an
    /// information request) records.
    pub fn none_reported() -> Self {
        Self {
            suicide_screening: None,
            attempt_in_progress: false,
            violence_ongoing: false,
            weapon_present: false,
            injury_or_medical_need: false,
            perpetrator_present: false,
            perpetrator_relationship: None,
            children_in_household: false,
            risk_to_team: false,
            intoxication: false,
            recency: super::types::Recency::Unknown,
        }
    }
}

/// A validated intake of either line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intake {
    /// The call that brought the case.
    pub contact: Contact,
    /// Who called.
    pub reporter: Reporter,
    /// The people the case is about (at least one).
    pub subjects: Vec<Subject>,
    /// Where the incident is.
    pub location: Location,
    /// Main problem.
    pub primary_category: Category,
    /// Further problems, without repeats.
    pub secondary_categories: Vec<Category>,
    /// Safety facts.
    pub risk: RiskFacts,
    /// What the caller said. Highly sensitive.
    pub narrative: Sensitive<String>,
    /// The operator's priority, when they changed the computed one.
    pub priority_override: Option<Priority>,
    /// Why the operator changed it.
    pub priority_override_reason: Option<String>,
}

impl Intake {
    /// Returns the primary category followed by the secondary ones.
    pub fn categories(&self) -> impl Iterator<Item = Category> + '_ {
        std::iter::once(self.primary_category).chain(self.secondary_categories.iter().copied())
    }

    /// True when any category is `category`.
    pub fn has_category(&self, category: Category) -> bool {
        self.categories().any(|c| c == category)
    }

    /// True when at least one subject is known to be a minor.
    pub fn minors_involved(&self) -> bool {
        self.subjects.iter().any(Subject::is_minor)
    }
}

/// An intake ready for the store: validated, triaged and stamped.
#[derive(Debug, Clone)]
pub struct NewIntake {
    /// The client's idempotency key.
    pub request_id: RequestId,
    /// Digest of the request as received, to tell a retry from a different intake under the
    /// same key.
    pub payload_hash: [u8; 32],
    /// What the intake asks for (and so which line it came from).
    pub action: RequestedAction,
    /// The intake itself.
    pub intake: Intake,
    /// Triage's result.
    pub assessment: Assessment,
    /// When the service received it.
    pub received_at: DateTime<Utc>,
    /// Who sent it: the case records its subject, the audit trail the rest.
    pub requester: super::requester::Requester,
}

impl NewIntake {
    /// Returns the line the intake came in on.
    pub fn line(&self) -> Line {
        self.action.line()
    }
}

/// What an intake returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// Case identifier.
    pub case_id: uuid::Uuid,
    /// Reference a person can read aloud.
    pub reference: String,
    /// Priority the case got.
    pub priority: Priority,
    /// Priority triage computed.
    pub computed_priority: Priority,
    /// Why triage chose it.
    pub triage_reasons: Vec<String>,
    /// Case version after the intake.
    pub version: i64,
    /// What routing decided.
    #[serde(default)]
    pub routing: Option<crate::domain::decision::RoutingSummary>,
    /// True when this is the original receipt of an earlier request with the same id.
    #[serde(skip)]
    pub replayed: bool,
}
