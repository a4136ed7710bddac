//! Every change is safe to retry: a change sent again with the same `request_id` and the same
//! content gets the first answer and changes nothing twice; the same id with other content is
//! ALREADY_EXISTS. A team's or centre's report queued on an offline phone carries when it
//! happened (`occurred_at`): accepted within stated bounds, in order, and the steps, events and
//! response intervals keep the device's times.

use chrono::Duration;
use tonic::Code;

use crate::common::fixtures::child_in_danger;
use crate::common::{Backend, TestDb, TestServer};
use referrals::pb::{
    self, ActionType, AddNoteRequest, ChangePriorityRequest, DispatchStatus, GetStatisticsRequest,
    Priority, ReportDispatchStatusRequest, RequestAssignmentRequest, ScheduleFollowUpRequest,
    UpdateTeamStatusRequest,
};
use referrals::sample::timestamp;

async fn a_retried_change_gets_its_first_answer_and_changes_nothing_twice(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let receipt = server.report(child_in_danger("retried")).await;
    let case = server.case(&receipt.case_id).await;
    let dispatch = case.dispatches[0].clone();
    let mut team = server.team_dispatch(&dispatch.team_id);

    // The team acknowledges; the answer is lost and the phone sends the report again.
    let report = ReportDispatchStatusRequest {
        dispatch_id: dispatch.dispatch_id.clone(),
        expected_version: dispatch.version,
        status: DispatchStatus::Acknowledged as i32,
        request_id: "ack-1".into(),
        ..Default::default()
    };
    let first = team
        .report_dispatch_status(report.clone())
        .await
        .unwrap()
        .into_inner();
    let again = team
        .report_dispatch_status(report.clone())
        .await
        .expect("a retry of a report that was made is not ABORTED")
        .into_inner();
    assert_eq!(again, first);
    let steps = server.case(&receipt.case_id).await.dispatches[0]
        .steps
        .len();
    assert_eq!(steps, 2, "assigned, acknowledged: once");
    // The same id with another report is refused.
    let other = team
        .report_dispatch_status(ReportDispatchStatusRequest {
            status: DispatchStatus::EnRoute as i32,
            expected_version: first.dispatch_version,
            ..report.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::AlreadyExists, "{other:?}");
    // Another caller's id is its own: the same id from a call centre is a new change.
    let mut cases = server.cases();
    let note = AddNoteRequest {
        case_id: receipt.case_id.clone(),
        text: "the mother called back".into(),
        request_id: "ack-1".into(),
        ..Default::default()
    };
    let noted = cases.add_note(note.clone()).await.unwrap().into_inner();
    let noted_again = cases.add_note(note).await.unwrap().into_inner();
    assert_eq!(noted_again, noted, "the same note, not a second one");
    assert_eq!(server.db.count("notes").await, 1);

    // A follow-up, a priority change and a requested assignment: each retry is the first
    // answer, and each happened once.
    let version = noted.case_version;
    let follow_up = ScheduleFollowUpRequest {
        case_id: receipt.case_id.clone(),
        reason: "check on the girl at school".into(),
        expected_version: version,
        request_id: "follow-1".into(),
        ..Default::default()
    };
    let scheduled = cases
        .schedule_follow_up(follow_up.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        cases
            .schedule_follow_up(follow_up)
            .await
            .unwrap()
            .into_inner(),
        scheduled
    );
    assert_eq!(server.db.count("follow_ups").await, 1);
    let lower = ChangePriorityRequest {
        case_id: receipt.case_id.clone(),
        expected_version: scheduled.case_version,
        priority: Priority::P1Urgent as i32,
        reason: "the stepfather has left".into(),
        request_id: "lower-1".into(),
    };
    let lowered = cases
        .change_priority(lower.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        cases.change_priority(lower).await.unwrap().into_inner(),
        lowered,
        "not ABORTED for its own write"
    );
    let ask = RequestAssignmentRequest {
        case_id: receipt.case_id.clone(),
        expected_version: lowered.case_version,
        action: ActionType::ReferTo as i32,
        kind: pb::ServicePointKind::CrisisInterventionCentre as i32,
        reason: "a place for the night".into(),
        request_id: "ask-1".into(),
    };
    let asked = cases
        .request_assignment(ask.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(asked.decision.is_some());
    assert_eq!(
        cases.request_assignment(ask).await.unwrap().into_inner(),
        asked,
        "the same decision, routed once"
    );
    assert_eq!(
        server
            .db
            .count("routing_decisions where rule_id = 'requested'")
            .await,
        1
    );

    // A team's duty status sent twice is one change.
    let mut directory = pb::directory_client::DirectoryClient::new(server.as_team("dmv-t1"));
    let duty = UpdateTeamStatusRequest {
        team_id: "dmv-t1".into(),
        status: pb::DutyStatus::Available as i32,
        request_id: "duty-1".into(),
        ..Default::default()
    };
    directory.update_team_status(duty.clone()).await.unwrap();
    directory.update_team_status(duty.clone()).await.unwrap();
    let reused = directory
        .update_team_status(UpdateTeamStatusRequest {
            status: pb::DutyStatus::OffDuty as i32,
            ..duty
        })
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists);
    server.finish().await;
}

async fn an_offline_phones_reports_keep_the_times_they_happened(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let time = server.time.clone().unwrap();
    let assigned_at = time.now();
    let receipt = server.report(child_in_danger("offline")).await;
    let dispatch = server.case(&receipt.case_id).await.dispatches[0].clone();
    let mut team = server.team_dispatch(&dispatch.team_id);
    let report = |status: DispatchStatus, version: i64, minutes: i64, id: &str| {
        ReportDispatchStatusRequest {
            dispatch_id: dispatch.dispatch_id.clone(),
            expected_version: version,
            status: status as i32,
            request_id: id.into(),
            occurred_at: Some(timestamp(
                (assigned_at + Duration::minutes(minutes)).timestamp(),
            )),
            ..Default::default()
        }
    };
    // The phone lost its signal: it acknowledged a minute in and set off a minute later; the
    // reports reach the server two and a half minutes in.
    time.advance(Duration::seconds(150));

    // Out of bounds: a day and more ago, or ahead of the server's clock.
    for (minutes, what) in [(-24 * 60 - 1, "24 hours"), (5, "2 minutes ahead")] {
        let refused = team
            .report_dispatch_status(report(DispatchStatus::Acknowledged, 1, minutes, "bad"))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(
            refused.message().contains("occurred_at"),
            "{what}: {refused:?}"
        );
    }
    let acknowledged = team
        .report_dispatch_status(report(DispatchStatus::Acknowledged, 1, 1, "q-1"))
        .await
        .unwrap()
        .into_inner();
    // Out of order: the en-route report says it happened before the acknowledgement.
    let early = team
        .report_dispatch_status(ReportDispatchStatusRequest {
            occurred_at: Some(timestamp(assigned_at.timestamp() + 30)),
            ..report(
                DispatchStatus::EnRoute,
                acknowledged.dispatch_version,
                0,
                "q-0",
            )
        })
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition, "{early:?}");
    team.report_dispatch_status(report(
        DispatchStatus::EnRoute,
        acknowledged.dispatch_version,
        2,
        "q-2",
    ))
    .await
    .unwrap();

    // The steps and the events carry the phone's times; the interval is the real one.
    let case = server.case(&receipt.case_id).await;
    let times: Vec<i64> = case.dispatches[0]
        .steps
        .iter()
        .map(|s| s.occurred_at.unwrap().seconds - assigned_at.timestamp())
        .collect();
    assert_eq!(times, [0, 60, 120]);
    let stats = server
        .cases()
        .get_statistics(GetStatisticsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let acknowledged = stats.intake_to_acknowledged.unwrap();
    assert_eq!(acknowledged.cases, 1);
    assert_eq!(acknowledged.median.unwrap().seconds, 60);
    server.finish().await;
}

backend_tests!(
    a_retried_change_gets_its_first_answer_and_changes_nothing_twice,
    an_offline_phones_reports_keep_the_times_they_happened,
);
