//! Builders of valid intake requests; a test changes only what it is about.

use referral_pb::*;
use referrals::pb as referral_pb;

/// Seconds since the epoch of a fixed call time: 2026-11-22 10:00 in Tehran (06:30 UTC).
pub const CALL_TIME: i64 = 1_795_329_000;

/// Sunday 2026-11-22, 10:15 in Tehran: a quarter of an hour after the fixtures' call began,
/// in the centres' office hours.
pub fn sunday_morning() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(CALL_TIME + 900, 0).unwrap()
}

/// A 123 report of a 14-year-old girl beaten right now, in Tehran: P0.
pub fn child_in_danger(request_id: &str) -> ReportEmergencyRequest {
    let mut request = emergency(request_id);
    request
        .intake
        .as_mut()
        .unwrap()
        .risk
        .as_mut()
        .unwrap()
        .violence_ongoing = true;
    request
}

/// The destinations of a receipt's routing, as (purpose, team or service point id).
pub fn destinations(receipt: &IntakeReceipt) -> Vec<(AssignmentPurpose, String)> {
    receipt
        .routing
        .as_ref()
        .unwrap()
        .assignments
        .iter()
        .map(|a| {
            let id = match a.destination.as_ref().unwrap() {
                assignment::Destination::TeamId(id)
                | assignment::Destination::ServicePointId(id) => id.clone(),
            };
            (a.purpose(), id)
        })
        .collect()
}

pub fn timestamp(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

/// A complete intake about a 14-year-old girl, with every optional field filled.
pub fn intake() -> Intake {
    Intake {
        contact: Some(Contact {
            external_call_id: "call-0001".into(),
            answering_province: "IR-23".into(),
            overflow_from_province: String::new(),
            operator_id: "op-17".into(),
            channel: Channel::Voice as i32,
            started_at: Some(timestamp(CALL_TIME)),
            answered_at: Some(timestamp(CALL_TIME + 20)),
            ended_at: Some(timestamp(CALL_TIME + 600)),
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
    }
}

/// A 123 intake with a fresh request id.
pub fn emergency(request_id: &str) -> ReportEmergencyRequest {
    ReportEmergencyRequest {
        request_id: request_id.into(),
        intake: Some(intake()),
        action: EmergencyAction::MobileTeam as i32,
    }
}

/// A 1480 intake about an adult man with suicidal thoughts.
pub fn hotline(request_id: &str) -> SubmitReferralRequest {
    let mut intake = intake();
    intake.subjects[0].age = Some(subject::Age::AgeBand(AgeBand::YoungAdult as i32));
    intake.subjects[0].minor = None;
    intake.subjects[0].sex = Sex::Male as i32;
    intake.reporter.as_mut().unwrap().relationship = Relationship::Self_ as i32;
    intake.primary_category = Category::SuicidalThoughts as i32;
    intake.secondary_categories = vec![Category::PsychologicalDistress as i32];
    intake.risk.as_mut().unwrap().suicide_screening = Some(SuicideScreening {
        wish_to_be_dead: Answer::Yes as i32,
        suicidal_thoughts: Answer::Yes as i32,
        method: Answer::No as i32,
        intent: Answer::No as i32,
        plan: Answer::No as i32,
        behaviour_last_3_months: Answer::No as i32,
    });
    SubmitReferralRequest {
        request_id: request_id.into(),
        intake: Some(intake),
        action: HotlineAction::CounsellingCentreReferral as i32,
    }
}

/// Values planted in every sensitive field, to be looked for where they must not be.
pub const SENTINELS: [&str; 12] = [
    "09990001111",
    "SentinelReporterName",
    "09990002222",
    "SentinelSubjectName",
    "9990003333",
    "SentinelAddress",
    "35.123456789",
    "51.987654321",
    "SentinelNarrative",
    "SentinelPerpetrator",
    "SentinelNote",
    "SentinelFollowUpOutcome",
];

/// Plants [`SENTINELS`] in an intake's sensitive fields.
pub fn plant(intake: &mut Intake) {
    let contact = intake.contact.as_mut().unwrap();
    contact.caller_number = SENTINELS[0].into();
    let reporter = intake.reporter.as_mut().unwrap();
    reporter.name = SENTINELS[1].into();
    reporter.callback_number = SENTINELS[2].into();
    let subject = &mut intake.subjects[0];
    subject.name = SENTINELS[3].into();
    subject.national_id = SENTINELS[4].into();
    let location = intake.location.as_mut().unwrap();
    location.address = SENTINELS[5].into();
    location.coordinates = Some(Coordinates {
        latitude: 35.123456789,
        longitude: 51.987654321,
    });
    intake.narrative = SENTINELS[8].into();
    intake.risk.as_mut().unwrap().perpetrator_relationship = SENTINELS[9].into();
}
