//! Routing on intake: the decision is made in the intake's transaction, its referrals and
//! dispatches are written with the case, and the receipt and the case show it.

use crate::common::fixtures::{child_in_danger, destinations, hotline};
use crate::common::{Backend, TestDb, TestServer};
use referrals::pb::{
    self, AssignmentPurpose, CandidateVerdict, CoverStep, DispatchStatus, GetCaseRequest,
    IntakeReceipt, ReferralStatus, RoutingStatus,
};

async fn seeded(backend: Backend) -> TestServer {
    TestServer::seeded_on(TestDb::new(backend).await).await
}

async fn report(server: &TestServer, request: pb::ReportEmergencyRequest) -> IntakeReceipt {
    server.report(request).await
}

async fn the_receipt_and_the_case_carry_the_routing_decision(backend: Backend) {
    let server = seeded(backend).await;
    let receipt = report(&server, child_in_danger("child-1")).await;
    assert_eq!(receipt.priority(), pb::Priority::P0Immediate);
    let routing = receipt.routing.as_ref().unwrap();
    assert_eq!(routing.rule_id, "emergency-acute-team");
    assert_eq!(routing.policy_version, 1);
    assert!(!routing.unrouted);
    use AssignmentPurpose::*;
    assert_eq!(
        destinations(&receipt),
        [
            (Dispatch, "thr-t1".to_owned()),
            (Notification, "thr-tehran-police".to_owned()),
            (Notification, "thr-prosecutor".to_owned()),
        ]
    );

    let case = server
        .cases()
        .get_case(GetCaseRequest {
            case_id: receipt.case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(case.routing_status(), RoutingStatus::Routed);
    let decision = case.routing.unwrap();
    assert_eq!(decision.rule_id, "emergency-acute-team");
    assert!(!decision.rule_description.is_empty());
    let team_candidates = &decision.actions[0].candidates;
    let verdict = |id: &str| {
        let c = team_candidates.iter().find(|c| c.id == id).unwrap();
        (c.verdict(), c.detail.clone(), c.cover_step())
    };
    assert_eq!(
        verdict("thr-t1"),
        (
            CandidateVerdict::Chosen,
            String::new(),
            CoverStep::IncidentCounty
        )
    );
    assert_eq!(
        verdict("thr-t2"),
        (
            CandidateVerdict::Unavailable,
            "busy".into(),
            CoverStep::IncidentCounty
        )
    );
    assert_eq!(verdict("thr-t3").0, CandidateVerdict::RankedLower);
    // The EMS notification did not apply: nobody is injured.
    assert!(
        decision
            .actions
            .iter()
            .any(|a| !a.not_applicable.is_empty())
    );

    assert_eq!(case.dispatches.len(), 1);
    assert_eq!(case.dispatches[0].team_id, "thr-t1");
    assert_eq!(case.dispatches[0].status(), DispatchStatus::Assigned);
    let referrals: Vec<(String, AssignmentPurpose, ReferralStatus)> = case
        .referrals
        .iter()
        .map(|r| (r.service_point_id.clone(), r.purpose(), r.status()))
        .collect();
    assert_eq!(
        referrals,
        [
            (
                "thr-tehran-police".to_owned(),
                Notification,
                ReferralStatus::Requested
            ),
            (
                "thr-prosecutor".to_owned(),
                Notification,
                ReferralStatus::Requested
            ),
        ]
    );
    assert_eq!(
        server.db.count("events where kind = 'case_routed'").await,
        1
    );
    server.finish().await;
}

async fn each_dispatch_takes_a_team_so_the_next_case_walks_further_down_the_cover_chain(
    backend: Backend,
) {
    let server = seeded(backend).await;
    let mut teams = Vec::new();
    for i in 0..4 {
        let receipt = report(&server, child_in_danger(&format!("chain-{i}"))).await;
        assert_eq!(
            receipt.routing.as_ref().unwrap().rule_id,
            "emergency-acute-team",
            "case {i}"
        );
        teams.push(destinations(&receipt)[0].1.clone());
    }
    // Tehran county's two free teams, then Rey in the province, then Karaj in Alborz next door.
    assert_eq!(teams, ["thr-t1", "thr-t3", "rey-t1", "krj-t1"]);

    // With no team left within reach, the case goes to a crisis centre with the notifications.
    let receipt = report(&server, child_in_danger("chain-4")).await;
    assert_eq!(
        receipt.routing.as_ref().unwrap().rule_id,
        "emergency-acute-no-team"
    );
    assert_eq!(
        destinations(&receipt)[0],
        (AssignmentPurpose::Referral, "thr-crisis-1".to_owned())
    );
    // It is no quiet fallback: the case is unrouted for a team (the supervisors' feed says so),
    // and the operator is told why no team was sent.
    let routing = receipt.routing.as_ref().unwrap();
    assert!(routing.unrouted);
    assert!(
        routing
            .requested_action_not_taken
            .starts_with("a mobile team was asked for, but none could take the case"),
        "{}",
        routing.requested_action_not_taken
    );
    assert_eq!(
        server.db.count("events where kind = 'case_unrouted'").await,
        1
    );

    // The teams are busy in the database too.
    assert_eq!(server.db.count("teams where status = 'busy'").await, 2 + 4);
    assert_eq!(server.db.count("dispatches").await, 4);
    server.finish().await;
}

async fn team_state_and_the_directory_survive_a_restart_and_a_second_seeding(backend: Backend) {
    let server = seeded(backend).await;
    let first = report(&server, child_in_danger("restart-1")).await;
    assert_eq!(destinations(&first)[0].1, "thr-t1");
    let points = server.db.count("service_points").await;
    let db = server.stop().await;

    // Seeding again changes nothing: thr-t1 stays busy, so the next case gets thr-t3.
    let server = TestServer::seeded_on(db).await;
    let second = report(&server, child_in_danger("restart-2")).await;
    assert_eq!(destinations(&second)[0].1, "thr-t3");
    assert_eq!(server.db.count("service_points").await, points);
    assert_eq!(
        server.db.count("policies").await,
        1,
        "the shipped policy is stored once"
    );
    server.finish().await;
}

async fn a_1480_caller_at_acute_risk_is_handed_to_the_provinces_123_centre(backend: Backend) {
    let server = seeded(backend).await;
    let mut request = hotline("acute-1");
    let screening = request
        .intake
        .as_mut()
        .unwrap()
        .risk
        .as_mut()
        .unwrap()
        .suicide_screening
        .as_mut()
        .unwrap();
    screening.intent = pb::Answer::Yes as i32;
    let receipt = server
        .hotline()
        .submit_referral(request)
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    assert_eq!(receipt.priority(), pb::Priority::P1Urgent);
    assert_eq!(
        receipt.routing.as_ref().unwrap().rule_id,
        "hotline-acute-suicide-to-123"
    );
    assert_eq!(
        destinations(&receipt),
        [(AssignmentPurpose::HandOver, "thr-123".to_owned())]
    );

    // Lower risk goes to the suicide-prevention centre instead.
    let receipt = server
        .hotline()
        .submit_referral(hotline("lower-1"))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    assert_eq!(
        destinations(&receipt),
        [(AssignmentPurpose::Referral, "thr-suicide-1".to_owned())]
    );
    server.finish().await;
}

async fn an_information_call_needs_no_destination(backend: Backend) {
    let server = seeded(backend).await;
    let mut request = hotline("info-1");
    let intake = request.intake.as_mut().unwrap();
    intake.primary_category = pb::Category::InformationOnly as i32;
    intake.secondary_categories.clear();
    intake.risk.as_mut().unwrap().suicide_screening = None;
    let receipt = server
        .hotline()
        .submit_referral(request)
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    assert_eq!(receipt.priority(), pb::Priority::P4OutsideMandate);
    let routing = receipt.routing.unwrap();
    assert_eq!(routing.rule_id, "outside-mandate");
    assert!(routing.assignments.is_empty());
    assert!(!routing.unrouted);
    let case = server
        .cases()
        .get_case(GetCaseRequest {
            case_id: receipt.case_id,
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(case.routing_status(), RoutingStatus::NoDestinationNeeded);
    server.finish().await;
}

async fn with_no_destination_the_case_is_unrouted_and_an_event_says_so(backend: Backend) {
    // No directory at all: nothing can take the case.
    let server = TestServer::start(backend).await;
    let receipt = report(&server, child_in_danger("lost-1")).await;
    let routing = receipt.routing.as_ref().unwrap();
    assert!(routing.unrouted);
    assert!(routing.assignments.is_empty());
    let case = server
        .cases()
        .get_case(GetCaseRequest {
            case_id: receipt.case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(case.routing_status(), RoutingStatus::Unrouted);
    assert_eq!(
        server.db.count("events where kind = 'case_unrouted'").await,
        1
    );
    // A replay returns the same decision and routes nothing again.
    let again = report(&server, child_in_danger("lost-1")).await;
    assert!(again.replayed);
    assert_eq!(again.routing, receipt.routing);
    assert_eq!(server.db.count("routing_decisions").await, 1);
    server.finish().await;
}

backend_tests!(
    the_receipt_and_the_case_carry_the_routing_decision,
    each_dispatch_takes_a_team_so_the_next_case_walks_further_down_the_cover_chain,
    team_state_and_the_directory_survive_a_restart_and_a_second_seeding,
    a_1480_caller_at_acute_risk_is_handed_to_the_provinces_123_centre,
    an_information_call_needs_no_destination,
    with_no_destination_the_case_is_unrouted_and_an_event_says_so,
    the_receipt_says_when_the_requested_action_was_not_taken,
    a_counselling_referral_at_night_waits_for_the_morning,
    a_case_goes_to_the_base_of_its_neighbourhood,
    a_closed_cases_follow_up_is_handed_to_the_base_of_its_neighbourhood,
);

/// The fixture's girl lives in Khavaran, which has a social-service base of its own: her P2
/// case is referred there rather than to the county's nearest base, and the decision says so.
async fn a_case_goes_to_the_base_of_its_neighbourhood(backend: Backend) {
    let server = seeded(backend).await;
    let receipt = report(&server, crate::common::fixtures::emergency("khavaran")).await;
    assert!(
        destinations(&receipt)
            .contains(&(AssignmentPurpose::Referral, "thr-base-khavaran".to_owned())),
        "{receipt:?}"
    );
    let case = server.case(&receipt.case_id).await;
    let decision = case.routing.unwrap();
    assert!(
        decision.notes.contains(
            &"the neighbourhood Khavaran is served by Khavaran social-service base".into()
        ),
        "{:?}",
        decision.notes
    );
    let base = decision
        .actions
        .iter()
        .flat_map(|a| &a.candidates)
        .find(|c| c.id == "thr-base-khavaran")
        .unwrap();
    assert_eq!(base.cover_step(), CoverStep::Neighbourhood);
    assert_eq!(base.cover_neighbourhood, "Khavaran");

    // Elsewhere in Tehran (no position: measured from the county seat), the nearest base.
    let mut elsewhere = crate::common::fixtures::emergency("elsewhere");
    let location = elsewhere
        .intake
        .as_mut()
        .unwrap()
        .location
        .as_mut()
        .unwrap();
    location.neighbourhood = "Somewhere Else".into();
    location.coordinates = None;
    let receipt = report(&server, elsewhere).await;
    assert!(
        destinations(&receipt)
            .contains(&(AssignmentPurpose::Referral, "thr-tehran-base".to_owned())),
        "{receipt:?}"
    );
    server.finish().await;
}

/// A 1480 parenting call at 01:00 (P3): the only counselling centre opens at 08:00. The referral
/// is made and waits for the opening, its 7-day acceptance deadline runs from then, and the case
/// is routed — no unrouted alert in the night.
async fn a_counselling_referral_at_night_waits_for_the_morning(backend: Backend) {
    let server = seeded(backend).await;
    // Sunday 2026-11-22, 01:00 in Tehran.
    let night = chrono::DateTime::parse_from_rfc3339("2026-11-21T21:30:00Z")
        .unwrap()
        .to_utc();
    let eight = chrono::DateTime::parse_from_rfc3339("2026-11-22T04:30:00Z")
        .unwrap()
        .to_utc();
    server.time.as_ref().unwrap().set(night);
    let mut request = hotline("night-parenting");
    let intake = request.intake.as_mut().unwrap();
    intake.primary_category = pb::Category::Parenting as i32;
    intake.secondary_categories.clear();
    intake.risk.as_mut().unwrap().suicide_screening = None;
    let contact = intake.contact.as_mut().unwrap();
    let started = night.timestamp() - 900;
    contact.started_at = Some(referrals::sample::timestamp(started));
    contact.answered_at = Some(referrals::sample::timestamp(started + 20));
    contact.ended_at = Some(referrals::sample::timestamp(started + 600));
    let receipt = server.submit(request).await;
    assert_eq!(receipt.priority(), pb::Priority::P3Routine);
    let routing = receipt.routing.as_ref().unwrap();
    assert!(!routing.unrouted, "{routing:?}");
    assert_eq!(routing.assignments.len(), 1, "{routing:?}");
    let assignment = &routing.assignments[0];
    assert_eq!(
        assignment.destination,
        Some(pb::assignment::Destination::ServicePointId(
            "thr-counsel-1".into()
        ))
    );
    assert_eq!(assignment.waits_until.unwrap().seconds, eight.timestamp());
    let case = server.case(&receipt.case_id).await;
    assert_eq!(case.routing_status(), RoutingStatus::Routed);
    assert_eq!(case.referrals[0].status(), ReferralStatus::Requested);
    // The acceptance deadline runs from the opening.
    let due = server
        .db
        .integers("select due_at from sla_timers where kind = 'referral_acceptance'")
        .await;
    assert_eq!(
        due,
        [(eight + chrono::Duration::days(7)).timestamp_micros()]
    );
    let kinds = server.event_kinds(&receipt.case_id).await;
    assert!(!kinds.iter().any(|k| k == "case_unrouted"), "{kinds:?}");
    server.finish().await;
}

/// The operator asked for a mobile team: when the decision sends one the receipt says nothing
/// more; when it does not, the receipt and the case's decision say why.
async fn the_receipt_says_when_the_requested_action_was_not_taken(backend: Backend) {
    let server = seeded(backend).await;
    let sent = report(&server, child_in_danger("asked-and-sent")).await;
    assert!(
        destinations(&sent)
            .iter()
            .any(|(purpose, _)| *purpose == AssignmentPurpose::Dispatch)
    );
    assert_eq!(sent.routing.unwrap().requested_action_not_taken, "");

    // The same girl, no violence going on: P2, and the policy sends a team only for P0 and P1.
    let receipt = report(
        &server,
        crate::common::fixtures::emergency("asked-not-sent"),
    )
    .await;
    assert!(
        !destinations(&receipt)
            .iter()
            .any(|(purpose, _)| *purpose == AssignmentPurpose::Dispatch),
        "{receipt:?}"
    );
    let routing = receipt.routing.as_ref().unwrap();
    let why = &routing.requested_action_not_taken;
    assert!(
        why.starts_with(&format!(
            "a mobile team was asked for, but rule {} (",
            routing.rule_id
        )),
        "{why}"
    );
    assert!(why.ends_with("does not send one for this case"), "{why}");
    let case = server.case(&receipt.case_id).await;
    assert_eq!(&case.routing.unwrap().requested_action_not_taken, why);
    // A retry's receipt is the original's, answer included.
    let replayed = report(
        &server,
        crate::common::fixtures::emergency("asked-not-sent"),
    )
    .await;
    assert_eq!(&replayed.routing.unwrap().requested_action_not_taken, why);
    server.finish().await;
}

/// The girl's case is closed; its follow-up is handed to the social-service base of Khavaran,
/// her neighbourhood — the base that had the case before, since the follow-up is its to make.
/// The case stays closed; the base is referred the case and records the follow-up; another
/// centre may not, and a closed case takes no follow-up that is not handed over.
async fn a_closed_cases_follow_up_is_handed_to_the_base_of_its_neighbourhood(backend: Backend) {
    use referrals::pb::{CaseOutcome, CaseStatus, CloseCaseRequest, RecordFollowUpRequest};
    let server = seeded(backend).await;
    let receipt = report(
        &server,
        crate::common::fixtures::emergency("follow-khavaran"),
    )
    .await;
    let version = server.case(&receipt.case_id).await.summary.unwrap().version;
    let closed = server
        .cases()
        .close_case(CloseCaseRequest {
            case_id: receipt.case_id.clone(),
            expected_version: version,
            outcome: CaseOutcome::ReturnedToFamily as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let schedule = |hand: bool| pb::ScheduleFollowUpRequest {
        case_id: receipt.case_id.clone(),
        reason: "a visit to the family in a month".into(),
        expected_version: closed.case_version,
        hand_to_neighbourhood_base: hand,
        ..Default::default()
    };
    let refused = server
        .cases()
        .schedule_follow_up(schedule(false))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    let handed = server
        .cases()
        .schedule_follow_up(schedule(true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(handed.service_point_id, "thr-base-khavaran");
    let decision = handed.decision.unwrap();
    assert_eq!(decision.rule_id, "follow_up_handover");
    assert!(
        decision.notes.contains(
            &"the neighbourhood Khavaran is served by Khavaran social-service base".into()
        ),
        "{:?}",
        decision.notes
    );
    let case = server.case(&receipt.case_id).await;
    assert_eq!(case.summary.as_ref().unwrap().status(), CaseStatus::Closed);
    assert_eq!(case.follow_ups[0].service_point_id, "thr-base-khavaran");
    let referrals: Vec<&str> = case
        .referrals
        .iter()
        .filter(|r| r.service_point_id == "thr-base-khavaran")
        .map(|r| r.referral_id.as_str())
        .collect();
    assert_eq!(
        referrals.len(),
        2,
        "the intake's referral and the follow-up's"
    );

    // Another centre that had the case may not record the base's follow-up; the base does.
    let record = RecordFollowUpRequest {
        follow_up_id: handed.follow_up_id.clone(),
        outcome: "the family is safe; the girl is back at school".into(),
        ..Default::default()
    };
    let other = case
        .referrals
        .iter()
        .find(|r| r.service_point_id != "thr-base-khavaran")
        .map(|r| r.service_point_id.clone())
        .expect("another centre on the case");
    let not_theirs = server
        .centre_cases(&other)
        .record_follow_up(record.clone())
        .await
        .unwrap_err();
    assert_eq!(
        not_theirs.code(),
        tonic::Code::PermissionDenied,
        "{not_theirs:?}"
    );
    server
        .centre_cases("thr-base-khavaran")
        .record_follow_up(record)
        .await
        .expect("the base records its follow-up");
    let case = server.case(&receipt.case_id).await;
    assert!(case.follow_ups[0].done_at.is_some());
    assert_eq!(case.summary.unwrap().status(), CaseStatus::Closed);
    server.finish().await;
}
