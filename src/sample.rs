//! Sample intake requests: one builder for the demo, the load program and the test suite.
//!
//! [`Sample::child`] is a complete, valid intake (a 14-year-old girl hurt at home in Tehran,
//! reported by her teacher, every optional field filled); each user changes only what it is
//! about. Names, numbers and addresses in it are invented.

use crate::pb;

/// A call's time as protobuf carries it.
pub fn timestamp(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

/// An intake being built.
#[derive(Debug, Clone)]
pub struct Sample(pb::Intake);

impl Sample {
    /// A complete intake about a 14-year-old girl, whose call started at `started` (seconds
    /// since the epoch) and lasted ten minutes.
    pub fn child(started: i64) -> Self {
        use pb::*;
        Self(Intake {
            contact: Some(Contact {
                external_call_id: "call-0001".into(),
                answering_province: "IR-23".into(),
                overflow_from_province: String::new(),
                operator_id: "op-17".into(),
                channel: Channel::Voice as i32,
                started_at: Some(timestamp(started)),
                answered_at: Some(timestamp(started + 20)),
                ended_at: Some(timestamp(started + 600)),
                caller_number: "09121234567".into(),
            }),
            reporter: Some(Reporter {
                relationship: Relationship::Teacher as i32,
                anonymous: false,
                name: "Reporter Name".into(),
                callback_consent: true,
                callback_number: "+989121234567".into(),
            }),
            subjects: vec![Subject {
                age: Some(subject::Age::AgeYears(14)),
                minor: Some(true),
                sex: Sex::Female as i32,
                nationality: Nationality::Iranian as i32,
                disability: Disability::NoneKnown as i32,
                language: Language::Persian as i32,
                pregnant: false,
                name: "Subject Name".into(),
                national_id: "0012345678".into(),
            }],
            location: Some(Location {
                province: "IR-23".into(),
                county: "Tehran".into(),
                district: "District 15".into(),
                neighbourhood: "Khavaran".into(),
                address: "Street 4, No. 12".into(),
                landmark: "next to the school".into(),
                coordinates: Some(Coordinates {
                    latitude: 35.64,
                    longitude: 51.47,
                }),
                place_type: PlaceType::Home as i32,
                county_unknown: false,
            }),
            primary_category: Category::ChildAbusePhysical as i32,
            secondary_categories: vec![Category::ChildNeglect as i32],
            risk: Some(RiskFacts {
                suicide_screening: Some(SuicideScreening {
                    wish_to_be_dead: Answer::No as i32,
                    suicidal_thoughts: Answer::No as i32,
                    method: Answer::No as i32,
                    intent: Answer::No as i32,
                    plan: Answer::No as i32,
                    behaviour_last_3_months: Answer::Unknown as i32,
                }),
                attempt_in_progress: false,
                violence_ongoing: false,
                weapon_present: false,
                injury_or_medical_need: false,
                perpetrator_present: false,
                perpetrator_relationship: "stepfather".into(),
                children_in_household: true,
                risk_to_team: false,
                intoxication: false,
                recency: Recency::Last24Hours as i32,
            }),
            narrative: "The teacher saw bruises on the girl's arms.".into(),
            priority_override: None,
            priority_override_reason: String::new(),
        })
    }

    /// Changes anything of the intake.
    pub fn with(mut self, change: impl FnOnce(&mut pb::Intake)) -> Self {
        change(&mut self.0);
        self
    }

    /// The call: its id at the call centre, the operator who took it, the caller's number.
    pub fn call(self, call_id: &str, operator_id: &str, caller_number: &str) -> Self {
        self.with(|i| {
            let contact = i.contact.get_or_insert_default();
            contact.external_call_id = call_id.into();
            contact.operator_id = operator_id.into();
            contact.caller_number = caller_number.into();
        })
    }

    /// The one person the intake is about.
    pub fn subject(self, change: impl FnOnce(&mut pb::Subject)) -> Self {
        self.with(|i| change(&mut i.subjects[0]))
    }

    /// The risk facts.
    pub fn risk(self, change: impl FnOnce(&mut pb::RiskFacts)) -> Self {
        self.with(|i| change(i.risk.get_or_insert_default()))
    }

    /// A young man who calls 1480 himself with suicidal thoughts (a wish to be dead and
    /// thoughts of suicide, no method, intent or plan), in distress.
    pub fn suicidal_adult(self) -> Self {
        use pb::*;
        self.with(|i| {
            i.subjects[0].age = Some(subject::Age::AgeBand(AgeBand::YoungAdult as i32));
            i.subjects[0].minor = None;
            i.subjects[0].sex = Sex::Male as i32;
            i.reporter.get_or_insert_default().relationship = Relationship::Self_ as i32;
            i.primary_category = Category::SuicidalThoughts as i32;
            i.secondary_categories = vec![Category::PsychologicalDistress as i32];
            i.risk.get_or_insert_default().suicide_screening = Some(SuicideScreening {
                wish_to_be_dead: Answer::Yes as i32,
                suicidal_thoughts: Answer::Yes as i32,
                method: Answer::No as i32,
                intent: Answer::No as i32,
                plan: Answer::No as i32,
                behaviour_last_3_months: Answer::No as i32,
            });
        })
    }

    /// A silent, nuisance or information-only call: its contact and `category`, nothing else.
    pub fn minimal(self, category: pb::Category) -> Self {
        self.with(|i| {
            i.reporter = None;
            i.subjects.clear();
            i.location = None;
            i.risk = None;
            i.narrative.clear();
            i.primary_category = category as i32;
            i.secondary_categories.clear();
        })
    }

    /// The intake.
    pub fn build(self) -> pb::Intake {
        self.0
    }

    /// The intake as a 123 report under `request_id`, asking for `action`.
    pub fn emergency(
        self,
        request_id: impl Into<String>,
        action: pb::EmergencyAction,
    ) -> pb::ReportEmergencyRequest {
        pb::ReportEmergencyRequest {
            request_id: request_id.into(),
            intake: Some(self.0),
            action: action as i32,
        }
    }

    /// The intake as a 1480 referral under `request_id`, asking for `action`.
    pub fn hotline(
        self,
        request_id: impl Into<String>,
        action: pb::HotlineAction,
    ) -> pb::SubmitReferralRequest {
        pb::SubmitReferralRequest {
            request_id: request_id.into(),
            intake: Some(self.0),
            action: action as i32,
        }
    }
}
