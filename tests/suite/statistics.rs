//! Statistics over a period: counts by line, category, priority, status and province, and the
//! teams' response intervals (median and 90th percentile) measured from the events.

use crate::common::fixtures::{self, child_in_danger, sunday_morning, timestamp};
use crate::common::{Backend, TestDb, TestServer};
use chrono::Duration;
use referrals::pb::{self, DispatchStatus, GetStatisticsRequest, ReportDispatchStatusRequest};
use tonic::Code;

async fn report(server: &TestServer, request: pb::ReportEmergencyRequest) -> String {
    server.report(request).await.case_id
}

async fn dispatch_of(server: &TestServer, case_id: &str) -> pb::TeamDispatch {
    server.case(case_id).await.dispatches.remove(0)
}

/// Moves a case's dispatch through `steps`, each at its minute after the start.
async fn respond(server: &TestServer, case_id: &str, steps: &[(DispatchStatus, i64)]) {
    let mut dispatch = dispatch_of(server, case_id).await;
    for (status, minute) in steps {
        server
            .time
            .as_ref()
            .unwrap()
            .set(sunday_morning() + Duration::minutes(*minute));
        dispatch.version = server
            .team_dispatch(&dispatch.team_id)
            .report_dispatch_status(ReportDispatchStatusRequest {
                dispatch_id: dispatch.dispatch_id.clone(),
                expected_version: dispatch.version,
                status: *status as i32,
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

fn period(from: i64, to: i64, province: &str) -> GetStatisticsRequest {
    let start = sunday_morning().timestamp();
    GetStatisticsRequest {
        from: Some(timestamp(start + from * 60)),
        to: Some(timestamp(start + to * 60)),
        province: province.into(),
    }
}

fn minutes(d: &Option<prost_types::Duration>) -> i64 {
    d.as_ref().unwrap().seconds / 60
}

async fn statistics_count_the_period_and_measure_the_response_from_events(backend: Backend) {
    let server = TestServer::seeded_with(TestDb::new(backend).await, |c| {
        // No deadline fires while the test moves the clock.
        c.sla_check_interval = std::time::Duration::from_secs(3600);
    })
    .await;
    use DispatchStatus::*;
    let a = report(&server, child_in_danger("a")).await;
    let b = report(&server, child_in_danger("b")).await;
    let c = report(&server, child_in_danger("c")).await;
    let mut ardabil = fixtures::emergency("ardabil");
    let location = ardabil.intake.as_mut().unwrap().location.as_mut().unwrap();
    location.province = "IR-24".into();
    location.county = "Ardabil".into();
    report(&server, ardabil).await;
    server
        .hotline()
        .submit_referral(fixtures::hotline("hotline"))
        .await
        .unwrap();
    respond(
        &server,
        &a,
        &[
            (Acknowledged, 2),
            (EnRoute, 5),
            (OnScene, 20),
            (Cleared, 60),
        ],
    )
    .await;
    respond(
        &server,
        &b,
        &[(Acknowledged, 4), (EnRoute, 6), (OnScene, 40)],
    )
    .await;
    respond(&server, &c, &[(Acknowledged, 6)]).await;

    let mut client = server.cases();
    let all = client
        .get_statistics(period(-60, 60, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.total, 5);
    let pairs = |list: &[pb::Count]| -> Vec<(String, i64)> {
        list.iter().map(|c| (c.key.clone(), c.count)).collect()
    };
    assert_eq!(
        pairs(&all.by_line),
        [
            ("LINE_EMERGENCY_123".into(), 4),
            ("LINE_HOTLINE_1480".into(), 1)
        ]
    );
    assert_eq!(all.by_line[0].label_fa, "اورژانس اجتماعی ۱۲۳");
    assert_eq!(
        pairs(&all.by_province),
        [("IR-23".into(), 4), ("IR-24".into(), 1)]
    );
    assert_eq!(all.by_province[1].label_fa, "اردبیل");
    assert_eq!(
        pairs(&all.by_category),
        [
            ("CATEGORY_CHILD_ABUSE_PHYSICAL".into(), 4),
            ("CATEGORY_SUICIDAL_THOUGHTS".into(), 1)
        ]
    );
    assert_eq!(all.by_category[0].label_fa, "کودک‌آزاری جسمی");
    assert_eq!(all.by_priority[0].key, "PRIORITY_P0_IMMEDIATE");
    assert_eq!(all.by_priority[0].count, 3);
    assert!(all.by_priority.iter().all(|c| !c.label_fa.is_empty()));
    assert_eq!(pairs(&all.by_status), [("CASE_STATUS_OPEN".into(), 5)]);
    assert_eq!(all.by_status[0].label_fa, "باز");
    // The three P0 cases' teams acknowledged after 2, 4 and 6 minutes: one within 3.
    let p0 = all.p0_team_within_target.unwrap();
    assert_eq!((p0.cases, p0.met), (3, 1));
    assert_eq!(p0.target.unwrap().seconds, 180);

    let ack = all.intake_to_acknowledged.unwrap();
    assert_eq!(
        (ack.cases, minutes(&ack.median), minutes(&ack.p90)),
        (3, 4, 6)
    );
    let scene = all.intake_to_on_scene.unwrap();
    assert_eq!(
        (scene.cases, minutes(&scene.median), minutes(&scene.p90)),
        (2, 20, 40)
    );
    let cleared = all.intake_to_cleared.unwrap();
    assert_eq!((cleared.cases, minutes(&cleared.median)), (1, 60));

    let ardabil_only = client
        .get_statistics(period(-60, 60, "IR-24"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ardabil_only.total, 1);
    assert_eq!(ardabil_only.intake_to_acknowledged.unwrap().cases, 0);
    let later = client
        .get_statistics(period(1, 120, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(later.total, 0, "the cases were recorded before the period");

    let backwards = client
        .get_statistics(period(60, -60, ""))
        .await
        .unwrap_err();
    assert_eq!(backwards.code(), Code::InvalidArgument);
    // A request without a period is no longer refused: see the next test.
    server.finish().await;
}

async fn without_a_period_statistics_cover_the_last_24_hours(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    report(&server, child_in_danger("day-1")).await;
    let total = |from: Option<i64>, to: Option<i64>| {
        let mut cases = server.cases();
        async move {
            cases
                .get_statistics(GetStatisticsRequest {
                    from: from.map(timestamp),
                    to: to.map(timestamp),
                    province: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
                .total
        }
    };
    let recorded = sunday_morning();
    let clock = server.time.as_ref().unwrap();
    clock.set(recorded + Duration::minutes(1));
    assert_eq!(
        total(None, None).await,
        1,
        "the last 24 hours hold the case"
    );
    let a_minute_on = (recorded + Duration::minutes(1)).timestamp();
    assert_eq!(
        total(None, Some(a_minute_on)).await,
        1,
        "the 24 hours before `to`"
    );
    clock.set(recorded + Duration::hours(25));
    assert_eq!(
        total(None, None).await,
        0,
        "a day later the case is out of the window"
    );
    server.finish().await;
}

backend_tests!(
    statistics_count_the_period_and_measure_the_response_from_events,
    without_a_period_statistics_cover_the_last_24_hours,
);
