//! Test fixtures of the domain: one builder of intakes for every unit test that needs one.

use chrono::{TimeZone, Utc};
use chrono_tz::Asia::Tehran;

use super::intake::{
    Age, Contact, Intake, Location, Reporter, RiskFacts, Subject, SuicideScreening,
};
use super::sensitive::Sensitive;
use super::types::{
    AgeBand, Answer, Category, Channel, Disability, Language, Nationality, PlaceType, Recency,
    Relationship, Sex,
};

/// Builds an intake about one adult man, reported at 10:00 Tehran time, with no risk facts.
pub(crate) struct IntakeBuilder(Intake);

impl IntakeBuilder {
    pub(crate) fn new(primary: Category) -> Self {
        Self(Intake {
            contact: Contact {
                external_call_id: "call-1".into(),
                answering_province: "IR-23".into(),
                overflow_from_province: None,
                operator_id: "op-1".into(),
                channel: Channel::Voice,
                // 06:30 UTC is 10:00 in Tehran.
                started_at: Utc.with_ymd_and_hms(2026, 11, 22, 6, 30, 0).unwrap(),
                answered_at: None,
                ended_at: None,
                caller_number: None,
            },
            reporter: Reporter {
                relationship: Relationship::OneSelf,
                anonymous: true,
                name: None,
                callback_consent: false,
                callback_number: None,
            },
            subjects: vec![Subject {
                age: Age::Band(AgeBand::Adult),
                minor: Some(false),
                sex: Sex::Male,
                nationality: Nationality::Iranian,
                disability: Disability::NoneKnown,
                language: Language::Persian,
                pregnant: false,
                name: None,
                national_id: None,
            }],
            location: Location {
                province: "IR-23".into(),
                county: "Tehran".into(),
                district: None,
                neighbourhood: None,
                address: None,
                landmark: None,
                coordinates: None,
                place_type: PlaceType::Home,
            },
            primary_category: primary,
            secondary_categories: vec![],
            risk: RiskFacts::none_reported(),
            narrative: Sensitive::new(String::new()),
            priority_override: None,
            priority_override_reason: None,
        })
    }

    pub(crate) fn with(mut self, change: impl FnOnce(&mut Intake)) -> Self {
        change(&mut self.0);
        self
    }

    pub(crate) fn minor(self) -> Self {
        self.with(|i| {
            i.subjects[0].age = Age::Years(12);
            i.subjects[0].minor = Some(true);
        })
    }

    pub(crate) fn female(self) -> Self {
        self.with(|i| i.subjects[0].sex = Sex::Female)
    }

    pub(crate) fn at_tehran_hour(self, hour: u32) -> Self {
        // Tehran is UTC+03:30 all year since 2022.
        let utc = Tehran
            .with_ymd_and_hms(2026, 11, 22, hour, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        self.with(|i| i.contact.started_at = utc)
    }

    pub(crate) fn screening(self, answer: impl FnOnce(&mut SuicideScreening)) -> Self {
        let mut screening = SuicideScreening {
            wish_to_be_dead: Answer::No,
            suicidal_thoughts: Answer::No,
            method: Answer::No,
            intent: Answer::No,
            plan: Answer::No,
            behaviour_last_3_months: Answer::No,
        };
        answer(&mut screening);
        self.with(|i| i.risk.suicide_screening = Some(Sensitive::new(screening)))
    }

    pub(crate) fn recency(self, recency: Recency) -> Self {
        self.with(|i| i.risk.recency = recency)
    }

    pub(crate) fn build(self) -> Intake {
        self.0
    }
}
