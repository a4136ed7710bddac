//! The lifecycles the server enforces after intake: a dispatch moved by its team, a referral by
//! its centre, the case closed, reopened and re-prioritised, notes and follow-ups; and re-routing
//! when a team declines or a centre rejects, in the same transaction.

use crate::common::fixtures::{self, child_in_danger};
use crate::common::{Backend, TestDb, TestServer};
use referrals::pb::{
    self, AddNoteRequest, CandidateVerdict, ChangePriorityRequest, CloseCaseRequest,
    DispatchStatus, GetTeamRequest, GetTimelineRequest, IntakeReceipt, RecordFollowUpRequest,
    ReferralStatus, ReopenCaseRequest, ReportDispatchStatusRequest, ScheduleFollowUpRequest,
    TransitionReferralRequest,
};
use tonic::Code;

async fn seeded(backend: Backend) -> TestServer {
    TestServer::seeded_on(TestDb::new(backend).await).await
}

async fn report(server: &TestServer, request: pb::ReportEmergencyRequest) -> IntakeReceipt {
    server.report(request).await
}

async fn team_state(server: &TestServer, id: &str) -> (pb::DutyStatus, u32) {
    let team = server
        .directory()
        .get_team(GetTeamRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap();
    (team.status(), team.load)
}

async fn kinds(server: &TestServer, case_id: &str) -> Vec<String> {
    server.event_kinds(case_id).await
}

fn report_status(
    dispatch: &pb::TeamDispatch,
    version: i64,
    status: DispatchStatus,
    reason: &str,
) -> ReportDispatchStatusRequest {
    ReportDispatchStatusRequest {
        dispatch_id: dispatch.dispatch_id.clone(),
        expected_version: version,
        status: status as i32,
        reason: reason.into(),
        position: None,
        ..Default::default()
    }
}

async fn a_team_moves_its_dispatch_to_cleared_and_every_step_keeps_its_time(backend: Backend) {
    let server = seeded(backend).await;
    let receipt = report(&server, child_in_danger("steps")).await;
    let dispatch = server.case(&receipt.case_id).await.dispatches[0].clone();
    assert_eq!(dispatch.team_id, "thr-t1");
    assert_eq!(
        team_state(&server, "thr-t1").await,
        (pb::DutyStatus::Busy, 1),
        "a team is busy while assigned"
    );

    let mut version = dispatch.version;
    for status in [
        DispatchStatus::Acknowledged,
        DispatchStatus::EnRoute,
        DispatchStatus::OnScene,
        DispatchStatus::Transporting,
        DispatchStatus::Cleared,
    ] {
        let mut request = report_status(&dispatch, version, status, "");
        request.position = Some(pb::Coordinates {
            latitude: 35.65,
            longitude: 51.46,
        });
        let answer = server
            .team_dispatch(&dispatch.team_id)
            .report_dispatch_status(request)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.dispatch_version, version + 1, "{status:?}");
        assert!(answer.reroute.is_none());
        version = answer.dispatch_version;
    }

    let case = server.case(&receipt.case_id).await;
    let dispatch = &case.dispatches[0];
    assert_eq!(dispatch.status(), DispatchStatus::Cleared);
    let steps: Vec<DispatchStatus> = dispatch.steps.iter().map(|s| s.status()).collect();
    assert_eq!(
        steps,
        [
            DispatchStatus::Assigned,
            DispatchStatus::Acknowledged,
            DispatchStatus::EnRoute,
            DispatchStatus::OnScene,
            DispatchStatus::Transporting,
            DispatchStatus::Cleared,
        ]
    );
    assert!(dispatch.steps.iter().all(|s| s.occurred_at.is_some()));
    assert!(dispatch.steps[0].position.is_none());
    assert_eq!(dispatch.steps[3].position.as_ref().unwrap().latitude, 35.65);
    assert_eq!(
        team_state(&server, "thr-t1").await,
        (pb::DutyStatus::Available, 0),
        "a cleared team is available again"
    );
    let kinds = kinds(&server, &receipt.case_id).await;
    assert_eq!(
        &kinds[kinds.len() - 5..],
        [
            "dispatch_acknowledged",
            "dispatch_en_route",
            "dispatch_on_scene",
            "dispatch_transporting",
            "dispatch_cleared"
        ]
    );
    server.finish().await;
}

async fn refused_transitions_say_why_with_the_right_code(backend: Backend) {
    let server = seeded(backend).await;
    let receipt = report(&server, child_in_danger("refusals")).await;
    let dispatch = server.case(&receipt.case_id).await.dispatches[0].clone();
    let team = server.team_dispatch(&dispatch.team_id);
    let operator = pb::dispatch_client::DispatchClient::new(server.as_operator());

    // (who, request, code, words the message must hold, row)
    let table = [
        (
            &team,
            report_status(&dispatch, 1, DispatchStatus::OnScene, ""),
            Code::FailedPrecondition,
            "the dispatch is assigned",
            "a skipped step",
        ),
        (
            &team,
            report_status(&dispatch, 7, DispatchStatus::Acknowledged, ""),
            Code::Aborted,
            "version 1",
            "a stale version",
        ),
        (
            &team,
            report_status(&dispatch, 1, DispatchStatus::Declined, ""),
            Code::InvalidArgument,
            "reason",
            "a decline without a reason",
        ),
        (
            &team,
            report_status(&dispatch, 1, DispatchStatus::Cancelled, "not needed"),
            Code::PermissionDenied,
            "requesting side",
            "a team cancelling",
        ),
        (
            &operator,
            report_status(&dispatch, 1, DispatchStatus::Acknowledged, ""),
            Code::PermissionDenied,
            "receiving side",
            "an operator acknowledging",
        ),
        (
            &team,
            report_status(&dispatch, 0, DispatchStatus::Acknowledged, ""),
            Code::InvalidArgument,
            "expected_version",
            "no version",
        ),
    ];
    for (client, request, code, words, row) in table {
        let status = client
            .clone()
            .report_dispatch_status(request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{row}: {status:?}");
        assert!(
            status.message().contains(words),
            "{row}: {}",
            status.message()
        );
    }
    let unchanged = server.case(&receipt.case_id).await;
    assert_eq!(
        unchanged.dispatches[0].version, 1,
        "refusals change nothing"
    );
    assert_eq!(unchanged.summary.unwrap().version, 1);

    let missing = team
        .clone()
        .report_dispatch_status(ReportDispatchStatusRequest {
            dispatch_id: uuid::Uuid::now_v7().to_string(),
            ..report_status(&dispatch, 1, DispatchStatus::Acknowledged, "")
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    server.finish().await;
}

async fn a_declined_dispatch_goes_to_the_next_team_in_the_same_change(backend: Backend) {
    let server = seeded(backend).await;
    let receipt = report(&server, child_in_danger("decline")).await;
    let first = server.case(&receipt.case_id).await.dispatches[0].clone();
    let answer = server
        .team_dispatch(&first.team_id)
        .report_dispatch_status(report_status(
            &first,
            1,
            DispatchStatus::Declined,
            "vehicle broke down",
        ))
        .await
        .unwrap()
        .into_inner();
    let reroute = answer.reroute.expect("a decline routes the case again");
    assert!(!reroute.unrouted);
    assert_eq!(reroute.rule_id, "emergency-acute-team");
    let action = &reroute.actions[0];
    assert_eq!(action.action(), pb::ActionType::DispatchMobileTeam);
    let chosen = action.assignment.as_ref().unwrap();
    let Some(pb::assignment::Destination::TeamId(next)) = &chosen.destination else {
        panic!("a team: {chosen:?}")
    };
    assert_ne!(next, "thr-t1");
    let verdict_of = |id: &str| {
        action
            .candidates
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.verdict())
    };
    assert_eq!(verdict_of("thr-t1"), Some(CandidateVerdict::Excluded));
    assert_eq!(verdict_of(next), Some(CandidateVerdict::Chosen));

    let case = server.case(&receipt.case_id).await;
    assert_eq!(
        case.reroutes.len(),
        1,
        "the case keeps the re-route's record"
    );
    assert_eq!(case.reroutes[0], reroute);
    let statuses: Vec<(String, DispatchStatus)> = case
        .dispatches
        .iter()
        .map(|d| (d.team_id.clone(), d.status()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("thr-t1".to_owned(), DispatchStatus::Declined),
            (next.clone(), DispatchStatus::Assigned)
        ]
    );
    assert_eq!(case.dispatches[0].reason, "vehicle broke down");
    assert_eq!(
        team_state(&server, "thr-t1").await,
        (pb::DutyStatus::Available, 0)
    );
    assert_eq!(team_state(&server, next).await.0, pb::DutyStatus::Busy);
    let kinds = kinds(&server, &receipt.case_id).await;
    assert_eq!(
        &kinds[kinds.len() - 3..],
        ["dispatch_declined", "case_rerouted", "dispatch_assigned"]
    );

    // The next case does not get the team that was just given this one.
    let other = report(&server, child_in_danger("decline-2")).await;
    let other_team = &case_of(&server, &other).await.dispatches[0].team_id;
    assert_ne!(other_team, next);
    server.finish().await;
}

async fn case_of(server: &TestServer, receipt: &IntakeReceipt) -> pb::Case {
    server.case(&receipt.case_id).await
}

async fn when_every_team_has_declined_the_case_is_unrouted(backend: Backend) {
    let server = seeded(backend).await;
    let receipt = report(&server, child_in_danger("all-decline")).await;
    let mut declined = Vec::new();
    let last = loop {
        let case = server.case(&receipt.case_id).await;
        let dispatch = case
            .dispatches
            .iter()
            .find(|d| d.status() == DispatchStatus::Assigned)
            .cloned()
            .expect("an assigned dispatch");
        declined.push(dispatch.team_id.clone());
        let answer = server
            .team_dispatch(&dispatch.team_id)
            .report_dispatch_status(report_status(
                &dispatch,
                dispatch.version,
                DispatchStatus::Declined,
                "on another call",
            ))
            .await
            .unwrap()
            .into_inner();
        let reroute = answer.reroute.unwrap();
        if reroute.unrouted {
            break reroute;
        }
        assert!(declined.len() < 30, "re-routing must run out of teams");
    };
    // Every team that declined is passed over, and nobody is chosen.
    for id in &declined {
        let verdict = last.actions[0]
            .candidates
            .iter()
            .find(|c| &c.id == id)
            .map(|c| c.verdict());
        assert_eq!(verdict, Some(CandidateVerdict::Excluded), "{id}");
    }
    assert!(last.actions[0].assignment.is_none());
    let case = server.case(&receipt.case_id).await;
    assert_eq!(case.routing_status(), pb::RoutingStatus::Unrouted);
    assert_eq!(
        kinds(&server, &receipt.case_id).await.last().unwrap(),
        "case_unrouted"
    );
    server.finish().await;
}

async fn a_rejected_referral_goes_to_the_next_service_point(backend: Backend) {
    let server = seeded(backend).await;
    // A 123 case the operator resolved by phone, about neglect: referred to a social-service base.
    let mut request = fixtures::emergency("reject");
    request.action = pb::EmergencyAction::ResolvedByPhone as i32;
    let receipt = report(&server, request).await;
    let case = case_of(&server, &receipt).await;
    let referral = case
        .referrals
        .iter()
        .find(|r| r.purpose() == pb::AssignmentPurpose::Referral)
        .cloned()
        .expect("a referral");
    let transition = |status: ReferralStatus, reason: &str| TransitionReferralRequest {
        referral_id: referral.referral_id.clone(),
        expected_version: 1,
        status: status as i32,
        reason: reason.into(),
        ..Default::default()
    };
    let mut client = server.centre_cases(&referral.service_point_id);
    let refused = client
        .transition_referral(transition(ReferralStatus::Rejected, ""))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::InvalidArgument,
        "a rejection needs a reason"
    );
    let answer = client
        .transition_referral(transition(ReferralStatus::Rejected, "no free place"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.referral_version, 2);
    let reroute = answer.reroute.unwrap();
    let action = &reroute.actions[0];
    let next = match action
        .assignment
        .as_ref()
        .and_then(|a| a.destination.clone())
    {
        Some(pb::assignment::Destination::ServicePointId(id)) => id,
        other => panic!("a service point: {other:?}"),
    };
    assert_ne!(next, referral.service_point_id);
    assert!(action.candidates.iter().any(|c| c.id == referral.service_point_id
        && c.verdict() == CandidateVerdict::Excluded));

    let after = case_of(&server, &receipt).await;
    let rejected = after
        .referrals
        .iter()
        .find(|r| r.referral_id == referral.referral_id)
        .unwrap();
    assert_eq!(rejected.status(), ReferralStatus::Rejected);
    assert_eq!(rejected.reason, "no free place");
    let new = after
        .referrals
        .iter()
        .find(|r| r.service_point_id == next)
        .unwrap();
    assert_eq!(new.status(), ReferralStatus::Requested);
    assert_eq!(new.purpose(), referral.purpose());

    // The new centre accepts and works the case; the old one can no longer touch its referral.
    let accept = TransitionReferralRequest {
        referral_id: new.referral_id.clone(),
        ..transition(ReferralStatus::Accepted, "")
    };
    assert_eq!(
        server
            .centre_cases(&next)
            .transition_referral(accept)
            .await
            .unwrap()
            .into_inner()
            .referral_version,
        2
    );
    let again = client
        .transition_referral(TransitionReferralRequest {
            expected_version: 2,
            ..transition(ReferralStatus::Accepted, "")
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert!(
        again.message().contains("the referral is rejected"),
        "{}",
        again.message()
    );
    server.finish().await;
}

async fn a_case_closes_with_an_outcome_reopens_with_a_reason_and_changes_priority(
    backend: Backend,
) {
    let server = seeded(backend).await;
    let receipt = report(&server, child_in_danger("close")).await;
    let dispatch = case_of(&server, &receipt).await.dispatches[0].clone();
    let mut cases = server.operator_cases();
    let close = |version| CloseCaseRequest {
        case_id: receipt.case_id.clone(),
        expected_version: version,
        outcome: pb::CaseOutcome::ResolvedOnScene as i32,
        reason: String::new(),
        ..Default::default()
    };
    let busy = cases.close_case(close(1)).await.unwrap_err();
    assert_eq!(busy.code(), Code::FailedPrecondition);
    assert!(busy.message().contains("dispatch"), "{}", busy.message());

    // The operator calls the team off; the case moves on to version 2.
    let cancel = report_status(&dispatch, 1, DispatchStatus::Cancelled, "resolved by phone");
    let cancelled = pb::dispatch_client::DispatchClient::new(server.as_operator())
        .report_dispatch_status(cancel)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.case_version, 2);
    assert_eq!(
        cases.close_case(close(1)).await.unwrap_err().code(),
        Code::Aborted,
        "closing from a stale screen"
    );
    let closed = cases.close_case(close(2)).await.unwrap().into_inner();
    assert_eq!(closed.case_version, 3);
    let case = case_of(&server, &receipt).await;
    assert_eq!(
        case.summary.as_ref().unwrap().status(),
        pb::CaseStatus::Closed
    );
    assert_eq!(case.outcome(), pb::CaseOutcome::ResolvedOnScene);
    let again = cases.close_case(close(3)).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);

    let lower = |version, reason: &str| ChangePriorityRequest {
        case_id: receipt.case_id.clone(),
        expected_version: version,
        priority: pb::Priority::P2Priority as i32,
        reason: reason.into(),
        ..Default::default()
    };
    assert_eq!(
        cases
            .change_priority(lower(3, "x"))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition,
        "a closed case keeps its priority"
    );
    let reopen = |reason: &str| ReopenCaseRequest {
        case_id: receipt.case_id.clone(),
        expected_version: 3,
        reason: reason.into(),
        ..Default::default()
    };
    assert_eq!(
        cases.reopen_case(reopen("")).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    cases
        .reopen_case(reopen("the girl called again"))
        .await
        .unwrap();
    let case = case_of(&server, &receipt).await;
    assert_eq!(
        case.summary.as_ref().unwrap().status(),
        pb::CaseStatus::Open
    );
    assert_eq!(case.outcome(), pb::CaseOutcome::Unspecified);

    let no_reason = cases.change_priority(lower(4, "")).await.unwrap_err();
    assert_eq!(no_reason.code(), Code::InvalidArgument);
    assert_eq!(
        cases
            .change_priority(lower(4, "the stepfather left the home"))
            .await
            .unwrap()
            .into_inner()
            .case_version,
        5
    );
    let raise = ChangePriorityRequest {
        priority: pb::Priority::P1Urgent as i32,
        ..lower(5, "")
    };
    cases.change_priority(raise).await.unwrap();
    let summary = case_of(&server, &receipt).await.summary.unwrap();
    assert_eq!(summary.priority(), pb::Priority::P1Urgent);
    assert_eq!(summary.version, 6);

    let timeline = cases
        .get_timeline(GetTimelineRequest {
            case_id: receipt.case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let tail: Vec<(&str, &str, &str)> = timeline[timeline.len() - 5..]
        .iter()
        .map(|e| (e.kind.as_str(), e.actor.as_str(), e.reason.as_str()))
        .collect();
    assert_eq!(
        tail,
        [
            (
                "dispatch_cancelled",
                "call_centre:123-tehran",
                "resolved by phone"
            ),
            ("case_closed", "call_centre:123-tehran", ""),
            (
                "case_reopened",
                "call_centre:123-tehran",
                "the girl called again"
            ),
            (
                "priority_changed",
                "call_centre:123-tehran",
                "the stepfather left the home"
            ),
            ("priority_changed", "call_centre:123-tehran", ""),
        ]
    );
    assert!(
        timeline.windows(2).all(|w| w[0].sequence < w[1].sequence),
        "the timeline is in sequence order"
    );
    server.finish().await;
}

async fn notes_and_follow_ups_are_kept_and_the_case_awaits_its_follow_up(backend: Backend) {
    let server = seeded(backend).await;
    let receipt = server
        .hotline()
        .submit_referral(fixtures::hotline("follow-up"))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    let mut cases = server.cases();
    let note = cases
        .add_note(AddNoteRequest {
            case_id: receipt.case_id.clone(),
            text: "He agreed to call back tomorrow evening.".into(),
            expected_version: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let empty = cases
        .add_note(AddNoteRequest {
            case_id: receipt.case_id.clone(),
            text: "  ".into(),
            expected_version: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    // A note sent with the version it was written against is refused once the case moved on.
    let stale = cases
        .add_note(AddNoteRequest {
            case_id: receipt.case_id.clone(),
            text: "written against the first version".into(),
            expected_version: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    assert_eq!(note.case_version, 2);

    let scheduled = cases
        .schedule_follow_up(ScheduleFollowUpRequest {
            case_id: receipt.case_id.clone(),
            due_at: None,
            reason: "safety check".into(),
            expected_version: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // Suicide-related: due 72 hours after it was scheduled (the server's clock).
    let due = scheduled.due_at.unwrap().seconds;
    assert_eq!(due, fixtures::sunday_morning().timestamp() + 72 * 3600);
    let case = case_of(&server, &receipt).await;
    assert_eq!(
        case.summary.as_ref().unwrap().status(),
        pb::CaseStatus::AwaitingFollowUp
    );
    assert_eq!(case.notes.len(), 1);
    assert_eq!(case.notes[0].note_id, note.note_id);
    assert_eq!(
        case.notes[0].text,
        "He agreed to call back tomorrow evening."
    );
    assert_eq!(case.follow_ups[0].reason, "safety check");
    assert!(case.follow_ups[0].done_at.is_none());

    let record = || RecordFollowUpRequest {
        follow_up_id: scheduled.follow_up_id.clone(),
        outcome: "spoke to him; safe, sleeping better".into(),
        expected_version: 0,
        ..Default::default()
    };
    cases.record_follow_up(record()).await.unwrap();
    let twice = cases.record_follow_up(record()).await.unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);
    let case = case_of(&server, &receipt).await;
    assert_eq!(
        case.summary.as_ref().unwrap().status(),
        pb::CaseStatus::Open
    );
    assert!(case.follow_ups[0].done_at.is_some());
    assert_eq!(
        case.follow_ups[0].outcome,
        "spoke to him; safe, sleeping better"
    );

    // Neither the note nor the outcome reaches the feed.
    let timeline = cases
        .get_timeline(GetTimelineRequest {
            case_id: receipt.case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let text: String = timeline
        .iter()
        .map(|e| format!("{} {} {}", e.kind, e.reason, e.data_json))
        .collect();
    assert!(text.contains("note_added") && text.contains("follow_up_done"));
    assert!(!text.contains("call back tomorrow") && !text.contains("sleeping better"));

    let past = cases
        .schedule_follow_up(ScheduleFollowUpRequest {
            case_id: receipt.case_id.clone(),
            due_at: Some(fixtures::timestamp(fixtures::CALL_TIME)),
            reason: "too late".into(),
            expected_version: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(past.code(), Code::InvalidArgument);
    server.finish().await;
}

/// A 1480 call with acute suicide risk: intent and a plan.
fn acute_hotline(request_id: &str) -> pb::SubmitReferralRequest {
    let mut request = fixtures::hotline(request_id);
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
    screening.plan = pb::Answer::Yes as i32;
    request
}

async fn a_call_centre_asks_for_a_team_and_a_centre_and_routing_chooses_them(backend: Backend) {
    let server = seeded(backend).await;
    let receipt = server
        .hotline()
        .submit_referral(acute_hotline("handed-over"))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    let routing = receipt.routing.as_ref().unwrap();
    assert_eq!(routing.rule_id, "hotline-acute-suicide-to-123");
    assert!(case_of(&server, &receipt).await.dispatches.is_empty());

    let mut cases = server.operator_cases();
    let ask = |version, action: pb::ActionType, kind: pb::ServicePointKind| {
        pb::RequestAssignmentRequest {
            case_id: receipt.case_id.clone(),
            expected_version: version,
            action: action as i32,
            kind: kind as i32,
            reason: "the 123 centre took the case over".into(),
            ..Default::default()
        }
    };
    use pb::{ActionType, ServicePointKind};
    let refused = pb::case_tracking_client::CaseTrackingClient::new(server.as_team("thr-t1"))
        .request_assignment(ask(
            1,
            ActionType::DispatchMobileTeam,
            ServicePointKind::Unspecified,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::PermissionDenied,
        "a team does not send itself"
    );
    let no_kind = cases
        .request_assignment(ask(1, ActionType::ReferTo, ServicePointKind::Unspecified))
        .await
        .unwrap_err();
    assert_eq!(no_kind.code(), Code::InvalidArgument);

    let sent = cases
        .request_assignment(ask(
            1,
            ActionType::DispatchMobileTeam,
            ServicePointKind::Unspecified,
        ))
        .await
        .unwrap()
        .into_inner();
    let decision = sent.decision.unwrap();
    assert_eq!(decision.rule_id, "requested");
    assert!(decision.rule_description.contains("call_centre:123-tehran"));
    assert_eq!(sent.case_version, 2);
    let referred = cases
        .request_assignment(ask(
            2,
            ActionType::ReferTo,
            ServicePointKind::CrisisInterventionCentre,
        ))
        .await
        .unwrap()
        .into_inner();
    let centre_id = match referred.decision.unwrap().actions[0]
        .assignment
        .as_ref()
        .and_then(|a| a.destination.clone())
    {
        Some(pb::assignment::Destination::ServicePointId(id)) => id,
        other => panic!("a centre: {other:?}"),
    };
    let case = case_of(&server, &receipt).await;
    assert_eq!(case.dispatches.len(), 1);
    assert_eq!(case.dispatches[0].status(), DispatchStatus::Assigned);
    assert!(
        case.referrals
            .iter()
            .any(|r| r.service_point_id == centre_id
                && r.purpose() == pb::AssignmentPurpose::Referral)
    );
    assert_eq!(
        case.reroutes.len(),
        2,
        "each request keeps its decision record"
    );
    let kinds = kinds(&server, &receipt.case_id).await;
    assert_eq!(
        &kinds[kinds.len() - 5..],
        [
            "assignment_requested",
            "assignment_added",
            "dispatch_assigned",
            "assignment_requested",
            "assignment_added"
        ]
    );
    server.finish().await;
}

async fn servers_sharing_a_database_never_take_a_team_another_has_taken(backend: Backend) {
    let one = seeded(backend).await;
    let other = TestServer::seeded_on(one.db.same_database()).await;
    // Through the first server: thr-t1 goes out.
    let first = report(&one, child_in_danger("one-1")).await;
    let t1 = one.case(&first.case_id).await.dispatches[0].clone();
    assert_eq!(t1.team_id, "thr-t1");
    // The second server started when thr-t1 was free; it must not send it again.
    let second = report(&other, child_in_danger("other-1")).await;
    let taken = other.case(&second.case_id).await.dispatches[0]
        .team_id
        .clone();
    assert_ne!(
        taken, "thr-t1",
        "a team busy on another server is not free here"
    );
    // thr-t1 clears through the first server; the second sees it free again.
    let mut version = t1.version;
    for status in [
        DispatchStatus::Acknowledged,
        DispatchStatus::EnRoute,
        DispatchStatus::OnScene,
        DispatchStatus::Cleared,
    ] {
        version = one
            .team_dispatch(&t1.team_id)
            .report_dispatch_status(report_status(&t1, version, status, ""))
            .await
            .unwrap()
            .into_inner()
            .dispatch_version;
    }
    let third = report(&other, child_in_danger("other-2")).await;
    assert_eq!(
        other.case(&third.case_id).await.dispatches[0].team_id,
        "thr-t1",
        "a team freed on another server is free here"
    );
    other.stop().await;
    one.finish().await;
}

/// A change refused inside its transaction (a stale version, found once the dispatch is
/// loaded) leaves no lock behind: another server on the same database records an intake at
/// once, and this server's next change goes through.
async fn a_refused_change_holds_no_lock_another_server_waits_for(backend: Backend) {
    let one = seeded(backend).await;
    let first = report(&one, child_in_danger("refused-one")).await;
    let dispatch = one.case(&first.case_id).await.dispatches[0].clone();
    let other = TestServer::seeded_on(one.db.same_database()).await;
    let team = one.team_dispatch(&dispatch.team_id);
    let stale = team
        .clone()
        .report_dispatch_status(report_status(
            &dispatch,
            7,
            DispatchStatus::Acknowledged,
            "",
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    let recorded = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        other.report(child_in_danger("refused-other")),
    )
    .await
    .expect("the other server records an intake within 3 s of the refusal");
    assert!(
        recorded.reference.starts_with("123-000002-"),
        "{recorded:?}"
    );
    team.clone()
        .report_dispatch_status(report_status(
            &dispatch,
            1,
            DispatchStatus::Acknowledged,
            "",
        ))
        .await
        .expect("the refused change's server goes on changing cases");
    other.stop().await;
    one.finish().await;
}

async fn a_referral_goes_through_its_lifecycle_and_only_its_own_side_moves_it(backend: Backend) {
    let server = seeded(backend).await;
    let mut request = fixtures::emergency("referral-steps");
    request.action = pb::EmergencyAction::ResolvedByPhone as i32;
    let receipt = report(&server, request).await;
    let referral = case_of(&server, &receipt)
        .await
        .referrals
        .into_iter()
        .find(|r| r.purpose() == pb::AssignmentPurpose::Referral)
        .unwrap();
    let receiver = server.centre_cases(&referral.service_point_id);
    let operator = server.operator_cases();
    use ReferralStatus::*;
    // (status, reason, who, expected code or None when it goes through, row)
    let table: Vec<(ReferralStatus, &str, &_, Option<Code>, &str)> = vec![
        (
            InProgress,
            "",
            &receiver,
            Some(Code::FailedPrecondition),
            "not before it is accepted",
        ),
        (
            Accepted,
            "",
            &operator,
            Some(Code::PermissionDenied),
            "the requester does not accept",
        ),
        (Accepted, "", &receiver, None, "the centre accepts"),
        (InProgress, "", &receiver, None, "and starts"),
        (OnHold, "", &receiver, None, "pauses"),
        (
            Completed,
            "",
            &receiver,
            Some(Code::FailedPrecondition),
            "not from on hold",
        ),
        (InProgress, "", &receiver, None, "resumes"),
        (
            Failed,
            "",
            &receiver,
            Some(Code::InvalidArgument),
            "failing needs a reason",
        ),
        (
            Cancelled,
            "",
            &receiver,
            Some(Code::PermissionDenied),
            "the centre does not cancel",
        ),
        (Completed, "", &receiver, None, "completes"),
        (
            Cancelled,
            "no longer needed",
            &operator,
            Some(Code::FailedPrecondition),
            "nothing after completed",
        ),
    ];
    let mut version = 1;
    for (status, reason, client, expected, row) in table {
        let result = client
            .clone()
            .transition_referral(TransitionReferralRequest {
                referral_id: referral.referral_id.clone(),
                expected_version: version,
                status: status as i32,
                reason: reason.into(),
                ..Default::default()
            })
            .await;
        match (result, expected) {
            (Ok(answer), None) => version = answer.into_inner().referral_version,
            (Err(status), Some(code)) => assert_eq!(status.code(), code, "{row}: {status:?}"),
            (other, _) => panic!("{row}: {other:?}"),
        }
    }
    let done = case_of(&server, &receipt)
        .await
        .referrals
        .into_iter()
        .find(|r| r.referral_id == referral.referral_id)
        .unwrap();
    assert_eq!(done.status(), Completed);
    assert_eq!(done.version, 6, "five moves went through");
    server.finish().await;
}

async fn a_team_carrying_a_case_of_its_own_is_free_again_once_its_dispatch_ends(backend: Backend) {
    // thr-t3 is on duty and available with one case of its own (the seed's load of 1). A national
    // day once lost such a team: it came back busy from its first dispatch and was never routed
    // again. The other Tehran teams go off duty, so the case can only go to thr-t3.
    let server = seeded(backend).await;
    for team in ["thr-t1", "rey-t1"] {
        server
            .directory()
            .update_team_status(pb::UpdateTeamStatusRequest {
                team_id: team.into(),
                status: pb::DutyStatus::OffDuty as i32,
                position: None,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    assert_eq!(
        team_state(&server, "thr-t3").await,
        (pb::DutyStatus::Available, 1)
    );
    for round in 0..2 {
        let receipt = report(&server, child_in_danger(&format!("own-case-{round}"))).await;
        let dispatch = server.case(&receipt.case_id).await.dispatches[0].clone();
        assert_eq!(dispatch.team_id, "thr-t3", "round {round}");
        assert_eq!(
            team_state(&server, "thr-t3").await,
            (pb::DutyStatus::Busy, 2)
        );
        let mut version = dispatch.version;
        for status in [
            DispatchStatus::Acknowledged,
            DispatchStatus::EnRoute,
            DispatchStatus::OnScene,
            DispatchStatus::Cleared,
        ] {
            version = server
                .team_dispatch("thr-t3")
                .report_dispatch_status(report_status(&dispatch, version, status, ""))
                .await
                .unwrap()
                .into_inner()
                .dispatch_version;
        }
        assert_eq!(
            team_state(&server, "thr-t3").await,
            (pb::DutyStatus::Available, 1),
            "a team whose dispatch cleared is free again, with its own case (round {round})"
        );
    }
    // The database holds the same: a server started on it now sees thr-t3 free.
    let restarted = TestServer::seeded_on(server.db.same_database()).await;
    assert_eq!(
        team_state(&restarted, "thr-t3").await,
        (pb::DutyStatus::Available, 1)
    );
    restarted.finish().await;
    server.finish().await;
}

/// The referral of a 1480 call from a man with suicidal thoughts (to a suicide-prevention
/// centre where one has a place).
async fn placed(server: &TestServer, request_id: &str) -> (IntakeReceipt, pb::Referral) {
    let receipt = server
        .hotline()
        .submit_referral(fixtures::hotline(request_id))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    let referral = case_of(server, &receipt)
        .await
        .referrals
        .into_iter()
        .find(|r| r.purpose() == pb::AssignmentPurpose::Referral)
        .expect("a referral");
    (receipt, referral)
}

async fn a_referral_holds_a_place_until_it_ends(backend: Backend) {
    // A national day sent 176 referrals to a centre with 8 free places: referrals waiting for
    // acceptance did not count. Now each open referral holds a place.
    let server = seeded(backend).await;
    let (_, first) = placed(&server, "place-1").await;
    let point = first.service_point_id.clone();
    let capacity = server
        .directory()
        .get_service_point(pb::GetServicePointRequest { id: point.clone() })
        .await
        .unwrap()
        .into_inner()
        .service_point
        .unwrap()
        .capacity
        .expect("a placement goes where places are counted");
    // Two places left besides the people there; the first referral holds one of them.
    server
        .directory()
        .update_occupancy(pb::UpdateOccupancyRequest {
            service_point_id: point.clone(),
            occupancy: capacity - 2,
            ..Default::default()
        })
        .await
        .unwrap();
    let (_, second) = placed(&server, "place-2").await;
    assert_eq!(second.service_point_id, point, "the last free place");
    let (_, third) = placed(&server, "place-3").await;
    assert_ne!(third.service_point_id, point, "no place is left");

    // The centre turns the second down: its place is free again.
    server
        .centre_cases(&point)
        .transition_referral(TransitionReferralRequest {
            referral_id: second.referral_id.clone(),
            expected_version: 1,
            status: ReferralStatus::Rejected as i32,
            reason: "no staff tonight".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (_, fourth) = placed(&server, "place-4").await;
    assert_eq!(
        fourth.service_point_id, point,
        "a rejection gives the place back"
    );

    // The held places are counted from the referrals themselves: a server started on the same
    // database finds the centre full too.
    let restarted = TestServer::seeded_on(server.db.same_database()).await;
    let (_, fifth) = placed(&restarted, "place-5").await;
    assert_ne!(fifth.service_point_id, point);
    restarted.finish().await;
    server.finish().await;
}

/// Every Tehran team, as the directory answers for it (status and load).
async fn tehran_teams(server: &TestServer) -> Vec<(String, pb::DutyStatus, u32)> {
    server
        .directory()
        .list_teams(pb::ListTeamsRequest {
            province: "IR-23".into(),
            county: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .teams
        .into_iter()
        .map(|t| (t.id.clone(), t.status(), t.load))
        .collect()
}

async fn teams_come_back_to_their_duty_state_through_any_sequence_of_dispatches(backend: Backend) {
    // Random sequences, from a seeded generator, of new P0 cases (each sends a free team) and
    // dispatch moves: acknowledge, decline (the case goes to the next team in the same change),
    // cancel by the call centre, on the way, at the scene, transporting, cleared; and time
    // passing, so that teams that did not acknowledge within the P0 target are called off by
    // the deadline escalation and replaced. Whatever the sequence, once every dispatch has
    // ended each team is as the seed left it, in memory and in the database (a server started
    // afterwards reads the same).
    let server = TestServer::seeded_with(TestDb::new(backend).await, |c| {
        c.sla_check_interval = std::time::Duration::from_millis(50);
    })
    .await;
    let mut now = fixtures::sunday_morning();
    let seeded_teams = tehran_teams(&server).await;
    let mut rng = crate::common::rng::Rng(0x7ea3_5eed);
    let mut cases = Vec::new();
    // Moves one open dispatch one step: forwards by its team, or cancelled by a supervisor.
    async fn step(
        server: &TestServer,
        dispatch: &pb::TeamDispatch,
        to: DispatchStatus,
    ) -> Result<(), tonic::Status> {
        let reason = match to {
            DispatchStatus::Declined | DispatchStatus::Cancelled => "random walk",
            _ => "",
        };
        let request = report_status(dispatch, dispatch.version, to, reason);
        match to {
            DispatchStatus::Cancelled => server.dispatch().report_dispatch_status(request).await,
            _ => {
                server
                    .team_dispatch(&dispatch.team_id)
                    .report_dispatch_status(request)
                    .await
            }
        }
        .map(|_| ())
    }
    async fn open_dispatches(server: &TestServer, cases: &[String]) -> Vec<pb::TeamDispatch> {
        let mut open = Vec::new();
        for case_id in cases {
            open.extend(
                server
                    .case(case_id)
                    .await
                    .dispatches
                    .into_iter()
                    .filter(|d| {
                        !matches!(
                            d.status(),
                            DispatchStatus::Cleared
                                | DispatchStatus::Cancelled
                                | DispatchStatus::Declined
                        )
                    }),
            );
        }
        open
    }
    for n in 0..40 {
        let open = open_dispatches(&server, &cases).await;
        if rng.below(6) == 0 {
            // Four minutes pass: every team still only assigned missed its three minutes, and
            // the escalation calls each off; its breach event is awaited on a watch.
            now += chrono::Duration::minutes(4);
            let due = (now - chrono::Duration::minutes(3)).timestamp();
            let missed = open
                .iter()
                .filter(|d| {
                    d.status() == DispatchStatus::Assigned
                        && d.created_at.as_ref().unwrap().seconds <= due
                })
                .count();
            let mut events = server
                .cases()
                .watch_cases(pb::WatchCasesRequest::default())
                .await
                .unwrap()
                .into_inner();
            server.time.as_ref().unwrap().set(now);
            let mut breaches = 0;
            while breaches < missed {
                let message =
                    tokio::time::timeout(std::time::Duration::from_secs(20), events.message())
                        .await
                        .expect("the escalation did not run")
                        .unwrap()
                        .expect("the watch ended");
                if let Some(pb::watch_cases_response::Message::Event(event)) = message.message
                    && event.kind == "sla_breached"
                    && event.data_json.contains("team_acknowledgement")
                {
                    breaches += 1;
                }
            }
            continue;
        }
        if open.is_empty() || rng.below(3) == 0 {
            let receipt = report(&server, child_in_danger(&format!("walk-{n}"))).await;
            cases.push(receipt.case_id);
            continue;
        }
        let dispatch = &open[rng.below(open.len())];
        let choices: &[DispatchStatus] = match dispatch.status() {
            DispatchStatus::Assigned => &[
                DispatchStatus::Acknowledged,
                DispatchStatus::Declined,
                DispatchStatus::Cancelled,
            ],
            DispatchStatus::Acknowledged => &[DispatchStatus::EnRoute, DispatchStatus::Cancelled],
            DispatchStatus::EnRoute => &[DispatchStatus::OnScene, DispatchStatus::Cancelled],
            DispatchStatus::OnScene => &[DispatchStatus::Transporting, DispatchStatus::Cleared],
            _ => &[DispatchStatus::Cleared],
        };
        let to = choices[rng.below(choices.len())];
        step(&server, dispatch, to)
            .await
            .unwrap_or_else(|e| panic!("{:?} → {to:?}: {e:?}", dispatch.status()));
    }
    // The walk went down the paths it is about.
    let mut seen = std::collections::BTreeSet::new();
    for case_id in &cases {
        seen.extend(kinds(&server, case_id).await);
    }
    for kind in [
        "sla_breached",
        "dispatch_declined",
        "dispatch_cancelled",
        "dispatch_cleared",
    ] {
        assert!(seen.contains(kind), "no {kind} in the walk: {seen:?}");
    }
    // End every dispatch still open: cancelled before the scene, cleared after.
    loop {
        let open = open_dispatches(&server, &cases).await;
        let Some(dispatch) = open.first() else { break };
        let to = match dispatch.status() {
            DispatchStatus::OnScene | DispatchStatus::Transporting => DispatchStatus::Cleared,
            _ => DispatchStatus::Cancelled,
        };
        step(&server, dispatch, to).await.unwrap();
    }
    assert_eq!(
        tehran_teams(&server).await,
        seeded_teams,
        "with no dispatch open, every team is as it was"
    );
    let restarted = TestServer::seeded_on(server.db.same_database()).await;
    assert_eq!(
        tehran_teams(&restarted).await,
        seeded_teams,
        "and the database says so too"
    );
    restarted.finish().await;
    server.finish().await;
}

backend_tests!(
    teams_come_back_to_their_duty_state_through_any_sequence_of_dispatches,
    a_referral_holds_a_place_until_it_ends,
    a_team_carrying_a_case_of_its_own_is_free_again_once_its_dispatch_ends,
    a_referral_goes_through_its_lifecycle_and_only_its_own_side_moves_it,
    servers_sharing_a_database_never_take_a_team_another_has_taken,
    a_refused_change_holds_no_lock_another_server_waits_for,
    a_call_centre_asks_for_a_team_and_a_centre_and_routing_chooses_them,
    a_team_moves_its_dispatch_to_cleared_and_every_step_keeps_its_time,
    refused_transitions_say_why_with_the_right_code,
    a_declined_dispatch_goes_to_the_next_team_in_the_same_change,
    when_every_team_has_declined_the_case_is_unrouted,
    a_rejected_referral_goes_to_the_next_service_point,
    a_case_closes_with_an_outcome_reopens_with_a_reason_and_changes_priority,
    notes_and_follow_ups_are_kept_and_the_case_awaits_its_follow_up,
);
