//! Deadlines: timers kept in the database, met by the steps they wait for, and on breach an
//! event and an escalation (a silent team or centre replaced, or the supervisors alerted),
//! exactly at the deadline by the server's clock, also after a restart.

use std::time::Duration;

use crate::common::fixtures::{self, child_in_danger, sunday_morning};
use crate::common::{Backend, TestDb, TestServer};
use chrono::{DateTime, Utc};
use referrals::pb::{
    self, CaseEvent, DispatchStatus, ReferralStatus, ReportDispatchStatusRequest,
    TransitionReferralRequest, WatchCasesRequest, WatchCasesResponse,
    watch_cases_response::Message,
};
use tonic::Streaming;

const PATIENCE: Duration = Duration::from_secs(20);

async fn server_on(db: TestDb) -> TestServer {
    TestServer::seeded_with(db, |c| {
        c.sla_check_interval = Duration::from_millis(50);
    })
    .await
}

/// Watches everything from the next event on.
async fn watch(server: &TestServer) -> Streaming<WatchCasesResponse> {
    server
        .cases()
        .watch_cases(WatchCasesRequest::default())
        .await
        .unwrap()
        .into_inner()
}

/// Reads events until one of `kind` arrives, and returns it with those before it.
async fn until(stream: &mut Streaming<WatchCasesResponse>, kind: &str) -> Vec<CaseEvent> {
    let mut seen = Vec::new();
    loop {
        let message = tokio::time::timeout(PATIENCE, stream.message())
            .await
            .unwrap_or_else(|_| panic!("no {kind} event; saw {:?}", kinds(&seen)))
            .unwrap()
            .unwrap();
        if let Some(Message::Event(event)) = message.message {
            let done = event.kind == kind;
            seen.push(event);
            if done {
                return seen;
            }
        }
    }
}

fn kinds(events: &[CaseEvent]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

fn at(server: &TestServer, time: DateTime<Utc>) {
    server.time.as_ref().unwrap().set(time);
}

async fn get(server: &TestServer, case_id: &str) -> pb::Case {
    server.case(case_id).await
}

async fn report(server: &TestServer, request: pb::ReportEmergencyRequest) -> pb::IntakeReceipt {
    server.report(request).await
}

fn data(event: &CaseEvent) -> serde_json::Value {
    serde_json::from_str(&event.data_json).unwrap()
}

async fn ack(server: &TestServer, dispatch: &pb::TeamDispatch, status: DispatchStatus) -> i64 {
    server
        .team_dispatch(&dispatch.team_id)
        .report_dispatch_status(ReportDispatchStatusRequest {
            dispatch_id: dispatch.dispatch_id.clone(),
            expected_version: dispatch.version,
            status: status as i32,
            reason: String::new(),
            position: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .dispatch_version
}

async fn a_team_that_does_not_acknowledge_is_replaced_at_the_deadline_to_the_second(
    backend: Backend,
) {
    let server = server_on(TestDb::new(backend).await).await;
    let start = sunday_morning();
    let receipt = report(&server, child_in_danger("slow-team")).await;
    let first = get(&server, &receipt.case_id).await.dispatches[0].clone();
    let deadline = start + chrono::Duration::minutes(3);

    // The store's view, to the second: nothing is due a second before the P0 target, the team's
    // timer is due at it.
    let store = server.db.store(1).await;
    let one_second = chrono::Duration::seconds(1);
    assert!(
        store
            .due_timers(deadline - one_second, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.due_timers(deadline, 10).await.unwrap().len(), 1);
    store.close().await;

    let mut stream = watch(&server).await;
    at(&server, deadline);
    let events = until(&mut stream, "dispatch_assigned").await;
    let breach_at = events
        .iter()
        .position(|e| e.kind == "sla_breached")
        .unwrap();
    assert_eq!(
        kinds(&events[breach_at..]),
        [
            "sla_breached",
            "dispatch_cancelled",
            "case_rerouted",
            "dispatch_assigned"
        ]
    );
    let breach = &events[breach_at];
    assert_eq!(
        breach.occurred_at.as_ref().unwrap().seconds,
        deadline.timestamp()
    );
    assert_eq!(breach.actor, "system:sla");
    assert_eq!(data(breach)["kind"], "team_acknowledgement");
    assert_eq!(data(breach)["due_at"], deadline.timestamp_micros());
    let cancelled = &events[breach_at + 1];
    assert_eq!(cancelled.team_id, first.team_id);
    assert_eq!(cancelled.reason, "team_acknowledgement deadline missed");

    let case = get(&server, &receipt.case_id).await;
    assert_eq!(case.dispatches[0].status(), DispatchStatus::Cancelled);
    let next = &case.dispatches[1];
    assert_eq!(next.status(), DispatchStatus::Assigned);
    assert_ne!(next.team_id, first.team_id);
    assert_eq!(case.reroutes.len(), 1);
    server.finish().await;
}

async fn a_met_deadline_never_fires_and_a_missed_on_scene_alerts_supervisors(backend: Backend) {
    let server = server_on(TestDb::new(backend).await).await;
    let start = sunday_morning();
    let receipt = report(&server, child_in_danger("on-scene")).await;
    let dispatch = get(&server, &receipt.case_id).await.dispatches[0].clone();
    at(&server, start + chrono::Duration::minutes(2));
    ack(&server, &dispatch, DispatchStatus::Acknowledged).await;

    let mut stream = watch(&server).await;
    // Past the acknowledgement deadline, and then past on scene (30 minutes for P0).
    at(&server, start + chrono::Duration::minutes(10));
    at(&server, start + chrono::Duration::minutes(30));
    let events = until(&mut stream, "supervisors_alerted").await;
    let breaches: Vec<String> = events
        .iter()
        .filter(|e| e.kind == "sla_breached")
        .map(|e| data(e)["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        breaches,
        ["on_scene"],
        "the acknowledged team's timer was met"
    );
    let alert = events.last().unwrap();
    assert_eq!(
        alert.province, "IR-23",
        "the province's supervisors watch their feed"
    );
    assert_eq!(alert.reason, "on_scene deadline missed");
    let case = get(&server, &receipt.case_id).await;
    assert_eq!(
        case.dispatches.len(),
        1,
        "a team on its way is not replaced"
    );
    assert_eq!(case.dispatches[0].status(), DispatchStatus::Acknowledged);
    server.finish().await;
}

async fn deadlines_survive_a_restart(backend: Backend) {
    let server = server_on(TestDb::new(backend).await).await;
    let receipt = report(&server, child_in_danger("restart")).await;
    let db = server.stop().await;
    // The service was down when the deadline passed; it handles it when it is back.
    let server = server_on(db).await;
    let mut stream = watch(&server).await;
    at(&server, sunday_morning() + chrono::Duration::minutes(5));
    let events = until(&mut stream, "dispatch_assigned").await;
    assert!(
        events
            .iter()
            .any(|e| e.kind == "sla_breached" && e.case_id == receipt.case_id)
    );
    server.finish().await;
}

async fn a_referral_not_accepted_in_time_goes_to_the_next_centre(backend: Backend) {
    let server = server_on(TestDb::new(backend).await).await;
    // P2, resolved by phone: referred to a social-service base, to be accepted within 72 hours.
    let mut request = fixtures::emergency("slow-centre");
    request.action = pb::EmergencyAction::ResolvedByPhone as i32;
    let receipt = report(&server, request).await;
    let referral = get(&server, &receipt.case_id)
        .await
        .referrals
        .into_iter()
        .find(|r| r.purpose() == pb::AssignmentPurpose::Referral)
        .unwrap();
    let mut stream = watch(&server).await;
    at(&server, sunday_morning() + chrono::Duration::hours(72));
    let events = until(&mut stream, "case_rerouted").await;
    assert!(kinds(&events).ends_with(&["sla_breached", "referral_cancelled", "case_rerouted"]));
    let case = get(&server, &receipt.case_id).await;
    let old = case
        .referrals
        .iter()
        .find(|r| r.referral_id == referral.referral_id)
        .unwrap();
    assert_eq!(old.status(), ReferralStatus::Cancelled);
    let new = case.referrals.last().unwrap();
    assert_eq!(new.status(), ReferralStatus::Requested);
    assert_ne!(new.service_point_id, referral.service_point_id);

    // The new centre accepts in time: its timer is met, and nothing fires at its deadline.
    server
        .centre_cases(&new.service_point_id)
        .transition_referral(TransitionReferralRequest {
            referral_id: new.referral_id.clone(),
            expected_version: 1,
            status: ReferralStatus::Accepted as i32,
            reason: String::new(),
            ..Default::default()
        })
        .await
        .unwrap();
    let store = server.db.store(1).await;
    let far = sunday_morning() + chrono::Duration::days(30);
    assert!(store.due_timers(far, 10).await.unwrap().is_empty());
    store.close().await;
    server.finish().await;
}

async fn a_child_taken_from_danger_starts_the_prosecutors_twelve_hours(backend: Backend) {
    let server = server_on(TestDb::new(backend).await).await;
    let start = sunday_morning();
    let receipt = report(&server, child_in_danger("removed")).await;
    let mut dispatch = get(&server, &receipt.case_id).await.dispatches[0].clone();
    for status in [
        DispatchStatus::Acknowledged,
        DispatchStatus::EnRoute,
        DispatchStatus::OnScene,
        DispatchStatus::Transporting,
    ] {
        dispatch.version = ack(&server, &dispatch, status).await;
    }
    let mut stream = watch(&server).await;
    at(&server, start + chrono::Duration::hours(12));
    let events = until(&mut stream, "supervisors_alerted").await;
    let breach = events
        .iter()
        .rev()
        .find(|e| e.kind == "sla_breached")
        .unwrap();
    assert_eq!(data(breach)["kind"], "prosecutor_notice");
    assert_eq!(
        data(breach)["due_at"],
        start.timestamp_micros() + 12 * 3600 * 1_000_000
    );
    server.finish().await;
}

async fn a_follow_up_not_done_alerts_supervisors_and_closing_stops_every_timer(backend: Backend) {
    let server = server_on(TestDb::new(backend).await).await;
    let receipt = report(&server, child_in_danger("follow-up")).await;
    let dispatch = get(&server, &receipt.case_id).await.dispatches[0].clone();
    let due = sunday_morning() + chrono::Duration::hours(24);
    server
        .cases()
        .schedule_follow_up(pb::ScheduleFollowUpRequest {
            case_id: receipt.case_id.clone(),
            due_at: Some(fixtures::timestamp(due.timestamp())),
            reason: "check on the girl".into(),
            expected_version: 0,
            ..Default::default()
        })
        .await
        .unwrap();
    // The team is called off; its timers stop.
    server
        .dispatch()
        .report_dispatch_status(ReportDispatchStatusRequest {
            dispatch_id: dispatch.dispatch_id.clone(),
            expected_version: 1,
            status: DispatchStatus::Cancelled as i32,
            reason: "the police took the case".into(),
            position: None,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut stream = watch(&server).await;
    at(&server, due);
    let events = until(&mut stream, "supervisors_alerted").await;
    let breaches: Vec<String> = events
        .iter()
        .filter(|e| e.kind == "sla_breached")
        .map(|e| data(e)["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(breaches, ["follow_up"]);

    // A second follow-up, then the case is closed: nothing is left to fire.
    let version = get(&server, &receipt.case_id)
        .await
        .summary
        .unwrap()
        .version;
    server
        .cases()
        .schedule_follow_up(pb::ScheduleFollowUpRequest {
            case_id: receipt.case_id.clone(),
            due_at: Some(fixtures::timestamp(due.timestamp() + 3600)),
            reason: "again".into(),
            expected_version: 0,
            ..Default::default()
        })
        .await
        .unwrap();
    server
        .cases()
        .close_case(pb::CloseCaseRequest {
            case_id: receipt.case_id.clone(),
            expected_version: version + 1,
            outcome: pb::CaseOutcome::ReturnedToFamily as i32,
            reason: String::new(),
            ..Default::default()
        })
        .await
        .unwrap();
    let store = server.db.store(1).await;
    let far = sunday_morning() + chrono::Duration::days(30);
    assert!(store.due_timers(far, 10).await.unwrap().is_empty());
    store.close().await;
    server.finish().await;
}

async fn a_raised_priority_brings_its_deadlines_forward(backend: Backend) {
    let server = server_on(TestDb::new(backend).await).await;
    let start = sunday_morning();
    // P2: its referral is to be accepted within 72 hours.
    let receipt = report(&server, fixtures::emergency("raised")).await;
    assert_eq!(receipt.priority(), pb::Priority::P2Priority);
    assert!(!get(&server, &receipt.case_id).await.referrals.is_empty());
    let store = server.db.store(1).await;
    let one_hour = start + chrono::Duration::hours(1);
    assert!(store.due_timers(one_hour, 10).await.unwrap().is_empty());
    server
        .cases()
        .change_priority(pb::ChangePriorityRequest {
            case_id: receipt.case_id.clone(),
            expected_version: 1,
            priority: pb::Priority::P0Immediate as i32,
            reason: String::new(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Now P0: the referral is due an hour after it was made, to the second.
    let one_second = chrono::Duration::seconds(1);
    assert!(
        store
            .due_timers(one_hour - one_second, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.due_timers(one_hour, 10).await.unwrap().is_empty());
    store.close().await;
    server.finish().await;
}

backend_tests!(
    a_raised_priority_brings_its_deadlines_forward,
    a_team_that_does_not_acknowledge_is_replaced_at_the_deadline_to_the_second,
    a_met_deadline_never_fires_and_a_missed_on_scene_alerts_supervisors,
    deadlines_survive_a_restart,
    a_referral_not_accepted_in_time_goes_to_the_next_centre,
    a_child_taken_from_danger_starts_the_prosecutors_twelve_hours,
    a_follow_up_not_done_alerts_supervisors_and_closing_stops_every_timer,
);
