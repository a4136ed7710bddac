//! Builders of valid intake requests; a test changes only what it is about.

use referral_pb::*;
use referrals::pb as referral_pb;
use referrals::sample::Sample;

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

#[allow(unused_imports)] // Not every test binary uses it.
pub use referrals::sample::timestamp;

/// A complete intake about a 14-year-old girl, with every optional field filled.
pub fn intake() -> Intake {
    Sample::child(CALL_TIME).build()
}

/// A 123 intake with a fresh request id.
pub fn emergency(request_id: &str) -> ReportEmergencyRequest {
    Sample::child(CALL_TIME).emergency(request_id, EmergencyAction::MobileTeam)
}

/// A 1480 intake about an adult man with suicidal thoughts.
pub fn hotline(request_id: &str) -> SubmitReferralRequest {
    Sample::child(CALL_TIME)
        .suicidal_adult()
        .hotline(request_id, HotlineAction::CounsellingCentreReferral)
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
