//! The team queue: a P0 or P1 case that finds no free mobile team waits for the next team that
//! becomes free in its cover chain, highest priority first and then the longest waiting, and is
//! sent it in the transaction that frees it; closing or lowering a case takes it out; the wait
//! is a statistic.

use crate::common::fixtures::{child_in_danger, destinations};
use crate::common::{Backend, TestDb, TestServer};
use referrals::pb::{
    self, AssignmentPurpose, CaseOutcome, ChangePriorityRequest, CloseCaseRequest, DispatchStatus,
    GetStatisticsRequest, Priority, ReportDispatchStatusRequest, UpdateTeamStatusRequest,
};

/// The case's dispatches, as (team, status).
async fn dispatches(server: &TestServer, case_id: &str) -> Vec<(String, DispatchStatus)> {
    let case = server.case(case_id).await;
    case.dispatches
        .iter()
        .map(|d| (d.team_id.clone(), d.status()))
        .collect()
}

/// A team takes its dispatch of `case_id` through to cleared.
async fn clear(server: &TestServer, case_id: &str) {
    let case = server.case(case_id).await;
    let dispatch = case.dispatches[0].clone();
    let mut team = server.team_dispatch(&dispatch.team_id);
    let mut version = dispatch.version;
    for status in [
        DispatchStatus::Acknowledged,
        DispatchStatus::EnRoute,
        DispatchStatus::OnScene,
        DispatchStatus::Cleared,
    ] {
        version = team
            .report_dispatch_status(ReportDispatchStatusRequest {
                dispatch_id: dispatch.dispatch_id.clone(),
                expected_version: version,
                status: status as i32,
                reason: String::new(),
                position: None,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .dispatch_version;
    }
}

async fn a_freed_team_goes_to_the_most_urgent_longest_waiting_case(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let time = server.time.clone().unwrap();
    // Tehran's free teams, then Rey's, then Karaj's next door: every team within reach is out.
    let mut first = Vec::new();
    for i in 0..4 {
        let receipt = server.report(child_in_danger(&format!("busy-{i}"))).await;
        first.push(receipt.case_id);
    }
    // Three more children in danger, a few seconds apart: no team is free for any of them.
    let mut waiting = Vec::new();
    for i in 0..3 {
        time.advance(chrono::Duration::seconds(5));
        let receipt = server.report(child_in_danger(&format!("wait-{i}"))).await;
        let routing = receipt.routing.as_ref().unwrap();
        assert!(routing.unrouted, "case {i}");
        assert!(
            routing
                .notes
                .iter()
                .any(|n| n.contains("waits in the team queue of IR-23")),
            "{:?}",
            routing.notes
        );
        // The interim measure still goes out.
        assert!(
            destinations(&receipt)
                .iter()
                .any(|(purpose, _)| *purpose == AssignmentPurpose::Referral)
        );
        waiting.push(receipt.case_id);
    }
    assert_eq!(
        server
            .db
            .count("team_waits where ended_at is null and rank = 0")
            .await,
        3
    );

    // The oldest is lowered to P1 (still a case that waits, now behind the P0s); the youngest
    // is closed and leaves the queue.
    let mut cases = server.cases();
    let case = server.case(&waiting[0]).await;
    cases
        .change_priority(ChangePriorityRequest {
            case_id: waiting[0].clone(),
            expected_version: case.summary.as_ref().unwrap().version,
            priority: Priority::P1Urgent as i32,
            reason: "the mother took the children to a neighbour".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let case = server.case(&waiting[2]).await;
    cases
        .close_case(CloseCaseRequest {
            case_id: waiting[2].clone(),
            expected_version: case.summary.as_ref().unwrap().version,
            outcome: CaseOutcome::Duplicate as i32,
            reason: "the same call as another".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        server
            .db
            .integers("select rank from team_waits where ended_at is null order by since")
            .await,
        [1, 0]
    );
    assert_eq!(
        server
            .db
            .count("team_waits where ended_by = 'closed'")
            .await,
        1
    );

    // Tehran team 1 clears its case: in that transaction it is sent to the P0 case, not to the
    // older P1 one.
    time.advance(chrono::Duration::seconds(60));
    clear(&server, &first[0]).await;
    assert_eq!(
        dispatches(&server, &waiting[1]).await,
        [("thr-t1".to_owned(), DispatchStatus::Assigned)]
    );
    assert!(dispatches(&server, &waiting[0]).await.is_empty());
    // Its team sent, the case is routed; the one still waiting is not.
    assert_eq!(
        server.case(&waiting[1]).await.routing_status(),
        pb::RoutingStatus::Routed
    );
    assert_eq!(
        server.case(&waiting[0]).await.routing_status(),
        pb::RoutingStatus::Unrouted
    );
    let kinds = server.event_kinds(&waiting[1]).await;
    assert!(kinds.iter().any(|k| k == "assignment_added"), "{kinds:?}");
    assert_eq!(
        server
            .db
            .count("routing_decisions where rule_id = 'team_queue'")
            .await,
        1
    );
    assert_eq!(
        server
            .db
            .count("team_waits where ended_by = 'team' and dispatch_id is not null")
            .await,
        1
    );
    // The team is busy again, with one case: never free in between for another to take.
    assert_eq!(
        server
            .db
            .count("teams where team_id = 'thr-t1' and status = 'busy' and load = 1")
            .await,
        1
    );

    // The Damavand team comes on duty: the P1 case, still waiting, gets it.
    time.advance(chrono::Duration::seconds(60));
    server
        .directory()
        .update_team_status(UpdateTeamStatusRequest {
            team_id: "dmv-t1".into(),
            status: pb::DutyStatus::Available as i32,
            position: None,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        dispatches(&server, &waiting[0]).await,
        [("dmv-t1".to_owned(), DispatchStatus::Assigned)]
    );
    assert_eq!(
        server.db.count("team_waits where ended_at is null").await,
        0
    );

    // The queue is a statistic: three waits, two served (after 65 s and 130 s), one withdrawn.
    let stats = server
        .cases()
        .get_statistics(GetStatisticsRequest {
            from: None,
            to: None,
            province: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let queue = stats.team_queue.unwrap();
    assert_eq!(
        (queue.waited, queue.served, queue.withdrawn, queue.waiting),
        (3, 2, 1, 0)
    );
    let wait = queue.wait.unwrap();
    assert_eq!(wait.cases, 2);
    assert_eq!(wait.median.unwrap().seconds, 65);
    assert_eq!(wait.p90.unwrap().seconds, 130);
    server.finish().await;
}

backend_tests!(a_freed_team_goes_to_the_most_urgent_longest_waiting_case);
