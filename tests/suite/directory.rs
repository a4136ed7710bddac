//! The Directory service: the policy read and replaced atomically, and owners' updates to team
//! status and occupancy taking effect on the next case routed.

use crate::common;

use crate::common::fixtures::{self, destinations, emergency, hotline};
use crate::common::{Backend, TestDb, TestServer};
use referrals::pb::directory_client::DirectoryClient;
use referrals::pb::{self, DutyStatus, ServicePointKind};
use tonic::Code;
use tonic_types::StatusExt;

fn directory(server: &TestServer) -> DirectoryClient<common::Authed> {
    server.directory()
}

fn first_destination(receipt: &pb::IntakeReceipt) -> String {
    destinations(receipt)[0].1.clone()
}

async fn child_in_danger(server: &TestServer, request_id: &str) -> pb::IntakeReceipt {
    server
        .emergency()
        .report_emergency(fixtures::child_in_danger(request_id))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap()
}

async fn the_policy_reads_back_and_replaces_atomically_with_a_new_version(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let mut client = directory(&server);
    let current = client
        .get_policy(pb::GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(current.version, 1);
    assert!(
        current
            .policy_toml
            .contains("id = \"hotline-acute-suicide-to-123\"")
    );

    // The TOML it returns is a policy it accepts.
    let replaced = client
        .replace_policy(pb::ReplacePolicyRequest {
            policy_toml: current.policy_toml.clone(),
            expected_version: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replaced.version, 2);

    // A policy without a default rule is refused, with the problem named, and version 2 stays.
    let without_default = "[[rules]]\nid = \"only\"\npriority = 1\nwhen = { lines = [\"hotline_1480\"] }\nthen = []\n".to_owned();
    let refused = client
        .replace_policy(pb::ReplacePolicyRequest {
            policy_toml: without_default,
            expected_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let details = refused.get_error_details();
    let violation = &details.bad_request().unwrap().field_violations[0];
    assert_eq!(violation.field, "policy_toml");
    assert!(
        violation.description.contains("no default rule"),
        "{}",
        violation.description
    );
    let unparsable = client
        .replace_policy(pb::ReplacePolicyRequest {
            policy_toml: "rules = [".into(),
            expected_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(unparsable.code(), Code::InvalidArgument);
    assert_eq!(
        client
            .get_policy(pb::GetPolicyRequest {})
            .await
            .unwrap()
            .into_inner()
            .version,
        2
    );

    // A change based on an old version is refused.
    let stale = client
        .replace_policy(pb::ReplacePolicyRequest {
            policy_toml: current.policy_toml,
            expected_version: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);

    let receipt = child_in_danger(&server, "after-replace").await;
    assert_eq!(receipt.routing.unwrap().policy_version, 2);
    server.finish().await;
}

/// Versions 2 to 6 rename every rule with their own suffix, so a decision that mixed two
/// versions would name a rule its version does not have.
async fn a_policy_replaced_under_concurrent_intakes_routes_each_case_by_one_whole_version(
    backend: Backend,
) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let shipped = directory(&server)
        .get_policy(pb::GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner()
        .policy_toml;
    let intakes: Vec<_> = (0..60)
        .map(|i| {
            let mut client = server.hotline();
            tokio::spawn(async move { client.submit_referral(hotline(&format!("race-{i}"))).await })
        })
        .collect();
    for version in 2..=6 {
        let renamed = shipped.replace("id = \"", &format!("id = \"v{version}-"));
        let replaced = directory(&server)
            .replace_policy(pb::ReplacePolicyRequest {
                policy_toml: renamed,
                expected_version: version - 1,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(replaced.version, version);
    }
    for intake in intakes {
        let routing = intake
            .await
            .unwrap()
            .unwrap()
            .into_inner()
            .receipt
            .unwrap()
            .routing
            .unwrap();
        let expected_prefix = format!("v{}-", routing.policy_version);
        if routing.policy_version == 1 {
            assert!(!routing.rule_id.starts_with('v'), "{routing:?}");
        } else {
            assert!(routing.rule_id.starts_with(&expected_prefix), "{routing:?}");
        }
    }
    let after = server
        .hotline()
        .submit_referral(hotline("race-after"))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    assert_eq!(after.routing.as_ref().unwrap().policy_version, 6);
    assert!(after.routing.unwrap().rule_id.starts_with("v6-"));
    server.finish().await;
}

async fn a_team_reporting_off_duty_is_passed_over_from_the_next_case_on(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let mut client = directory(&server);
    let team = client
        .update_team_status(pb::UpdateTeamStatusRequest {
            team_id: "thr-t1".into(),
            status: DutyStatus::OffDuty as i32,
            position: Some(pb::Coordinates {
                latitude: 35.70,
                longitude: 51.41,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap();
    assert_eq!(team.status(), DutyStatus::OffDuty);
    assert_eq!(team.position.unwrap().longitude, 51.41);
    assert_eq!(
        first_destination(&child_in_danger(&server, "after-off-duty").await),
        "thr-t3"
    );

    let listed = client
        .list_teams(pb::ListTeamsRequest {
            province: "IR-23".into(),
            county: "Tehran".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .teams;
    let statuses: Vec<(String, DutyStatus)> =
        listed.iter().map(|t| (t.id.clone(), t.status())).collect();
    assert_eq!(
        statuses,
        [
            ("thr-t1".to_owned(), DutyStatus::OffDuty),
            ("thr-t2".to_owned(), DutyStatus::Busy),
            ("thr-t3".to_owned(), DutyStatus::Busy),
        ]
    );

    let unknown = client
        .update_team_status(pb::UpdateTeamStatusRequest {
            team_id: "nobody".into(),
            status: DutyStatus::Available as i32,
            position: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let unspecified = client
        .update_team_status(pb::UpdateTeamStatusRequest {
            team_id: "thr-t1".into(),
            status: 0,
            position: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unspecified.code(), Code::InvalidArgument);

    // The report is durable: after a restart thr-t1 is still off duty.
    let db = server.stop().await;
    let server = TestServer::seeded_on(db).await;
    let team = directory(&server)
        .get_team(pb::GetTeamRequest {
            id: "thr-t1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap();
    assert_eq!(team.status(), DutyStatus::OffDuty);
    server.finish().await;
}

async fn a_full_centre_reported_by_its_owner_is_passed_over(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let mut client = directory(&server);
    let before = server
        .hotline()
        .submit_referral(hotline("before-full"))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    assert_eq!(first_destination(&before), "thr-suicide-1");

    let over = client
        .update_occupancy(pb::UpdateOccupancyRequest {
            service_point_id: "thr-suicide-1".into(),
            occupancy: 11,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::InvalidArgument);
    let point = client
        .update_occupancy(pb::UpdateOccupancyRequest {
            service_point_id: "thr-suicide-1".into(),
            occupancy: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .service_point
        .unwrap();
    assert_eq!((point.occupancy, point.capacity), (10, Some(10)));

    // With the suicide-prevention centre full, the next such caller goes to a crisis centre.
    let after = server
        .hotline()
        .submit_referral(hotline("after-full"))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    assert_eq!(
        after.routing.as_ref().unwrap().rule_id,
        "suicide-crisis-centre"
    );
    assert_eq!(first_destination(&after), "thr-crisis-1");

    let police: Vec<String> = client
        .list_service_points(pb::ListServicePointsRequest {
            province: "IR-24".into(),
            county: String::new(),
            kind: Some(ServicePointKind::Police110 as i32),
        })
        .await
        .unwrap()
        .into_inner()
        .service_points
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(
        police,
        [
            "ard-ardabil-police",
            "ard-meshgin-shahr-police",
            "ard-parsabad-police"
        ]
    );
    let missing = client
        .get_service_point(pb::GetServicePointRequest {
            id: "nowhere".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let bad_province = client
        .list_service_points(pb::ListServicePointsRequest {
            province: "IR-99".into(),
            county: String::new(),
            kind: None,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_province.code(), Code::InvalidArgument);
    server.finish().await;
}

async fn entries_added_through_the_directory_take_cases_and_survive_a_restart(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let mut client = directory(&server);
    let county = pb::County {
        province: "IR-23".into(),
        name_en: "Pardis".into(),
        name_fa: "پردیس".into(),
        seat: Some(pb::Coordinates {
            latitude: 35.74,
            longitude: 51.78,
        }),
        covered_by: "Tehran".into(),
        id: String::new(),
    };
    client
        .upsert_county(pb::UpsertCountyRequest {
            county: Some(county),
        })
        .await
        .unwrap();
    let team = pb::MobileTeam {
        id: "prd-t1".into(),
        name: "Pardis mobile team".into(),
        province: "IR-23".into(),
        base_county: "Pardis".into(),
        status: DutyStatus::Available as i32,
        position: Some(pb::Coordinates {
            latitude: 35.74,
            longitude: 51.78,
        }),
        load: 0,
    };
    client
        .upsert_team(pb::UpsertTeamRequest {
            team: Some(team.clone()),
        })
        .await
        .unwrap();

    let mut request = emergency("pardis-1");
    let intake = request.intake.as_mut().unwrap();
    intake.risk.as_mut().unwrap().violence_ongoing = true;
    intake.location.as_mut().unwrap().county = "پردیس".into();
    intake.location.as_mut().unwrap().coordinates = None;
    let receipt = server
        .emergency()
        .report_emergency(request)
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    assert_eq!(
        first_destination(&receipt),
        "prd-t1",
        "the new county's own team goes"
    );

    // Upserting the team again keeps its duty status, which the team reports itself.
    let again = pb::MobileTeam {
        status: DutyStatus::OutOfService as i32,
        ..team
    };
    let stored = client
        .upsert_team(pb::UpsertTeamRequest { team: Some(again) })
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap();
    assert_eq!(stored.status(), DutyStatus::Busy);

    // Changing a centre's capacity keeps its occupancy.
    let mut crisis = client
        .get_service_point(pb::GetServicePointRequest {
            id: "thr-crisis-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .service_point
        .unwrap();
    crisis.capacity = Some(30);
    crisis.occupancy = 0;
    let stored = client
        .upsert_service_point(pb::UpsertServicePointRequest {
            service_point: Some(crisis.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .service_point
        .unwrap();
    assert_eq!((stored.capacity, stored.occupancy), (Some(30), 12));

    // Entries that do not fit the directory are refused with every problem named.
    let orphan = pb::ServicePoint {
        id: "orphan".into(),
        county: "Atlantis".into(),
        ..crisis.clone()
    };
    let refused = client
        .upsert_service_point(pb::UpsertServicePointRequest {
            service_point: Some(orphan),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let details = refused.get_error_details();
    let violation = &details.bad_request().unwrap().field_violations[0];
    assert_eq!(violation.field, "service_point");
    assert!(
        violation.description.contains("unknown county Atlantis"),
        "{}",
        violation.description
    );
    let bad_hours = pb::ServicePoint {
        id: "bad-hours".into(),
        always_open: false,
        windows: vec![pb::OpeningWindow {
            days: vec![],
            from: "7:30".into(),
            to: "14:30".into(),
        }],
        ..crisis
    };
    let refused = client
        .upsert_service_point(pb::UpsertServicePointRequest {
            service_point: Some(bad_hours),
        })
        .await
        .unwrap_err();
    let details = refused.get_error_details();
    let fields: Vec<&str> = details
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "service_point.windows[0].days",
            "service_point.windows[0].from"
        ]
    );

    let db = server.stop().await;
    let server = TestServer::seeded_on(db).await;
    let counties: Vec<String> = directory(&server)
        .list_counties(pb::ListCountiesRequest {
            province: "IR-23".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .counties
        .into_iter()
        .map(|c| c.name_en)
        .collect();
    assert!(counties.contains(&"Pardis".to_owned()), "{counties:?}");
    let team = directory(&server)
        .get_team(pb::GetTeamRequest {
            id: "prd-t1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap();
    assert_eq!(team.status(), DutyStatus::Busy);
    server.finish().await;
}

backend_tests!(
    a_policy_replaced_through_one_server_is_used_by_the_other,
    entries_added_through_the_directory_take_cases_and_survive_a_restart,
    the_policy_reads_back_and_replaces_atomically_with_a_new_version,
    a_policy_replaced_under_concurrent_intakes_routes_each_case_by_one_whole_version,
    a_team_reporting_off_duty_is_passed_over_from_the_next_case_on,
    a_full_centre_reported_by_its_owner_is_passed_over,
);

/// Two servers on one database: a policy replaced through one routes the next case on the other.
async fn a_policy_replaced_through_one_server_is_used_by_the_other(backend: Backend) {
    let first = TestServer::seeded_on(TestDb::new(backend).await).await;
    let shipped = directory(&first)
        .get_policy(pb::GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner()
        .policy_toml;
    let second = TestServer::seeded_on(first.db.same_database()).await;
    let before = second
        .hotline()
        .submit_referral(hotline("two-1"))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    assert_eq!(before.routing.unwrap().policy_version, 1);

    let renamed = shipped.replace("id = \"", "id = \"v2-");
    directory(&first)
        .replace_policy(pb::ReplacePolicyRequest {
            policy_toml: renamed,
            expected_version: 1,
        })
        .await
        .unwrap();
    let after = second
        .hotline()
        .submit_referral(hotline("two-2"))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    let routing = after.routing.unwrap();
    assert_eq!(routing.policy_version, 2);
    assert!(routing.rule_id.starts_with("v2-"), "{}", routing.rule_id);
    second.stop().await;
    first.finish().await;
}

/// Two servers on one PostgreSQL database: the second takes a team off duty while the first
/// records an intake that would send it, and the change commits first. The intake is routed by
/// the directory as it is after the change, however far the first server had got with it: the
/// team is not sent. (A server that planned from what it read before the change and wrote
/// without checking it would send the team.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_team_another_server_takes_off_duty_is_not_sent_by_an_intake_waiting_behind_it()
{
    use sqlx::Connection;

    let first = TestServer::seeded_on(TestDb::new(Backend::Postgres).await).await;
    let second = TestServer::seeded_on(first.db.same_database()).await;

    // A transaction of the test's own holds the directory's lock, so that each server's write
    // waits for it where it takes that lock: the second's change first, then the first's
    // intake.
    let mut holder = sqlx::PgConnection::connect(&first.db.url).await.unwrap();
    sqlx::raw_sql("begin; select 1 from sequences where name = 'directory' for update")
        .execute(&mut holder)
        .await
        .unwrap();
    let mut change_client = directory(&second);
    let change = tokio::spawn(async move {
        change_client
            .update_team_status(pb::UpdateTeamStatusRequest {
                team_id: "thr-t1".into(),
                status: DutyStatus::OffDuty as i32,
                ..Default::default()
            })
            .await
    });
    waiting_for_the_lock(&mut holder, first.db.name(), 1).await;
    let intake = tokio::spawn({
        let mut emergency = first.emergency();
        async move {
            emergency
                .report_emergency(fixtures::child_in_danger("planned-before-off-duty"))
                .await
        }
    });
    waiting_for_the_lock(&mut holder, first.db.name(), 2).await;
    sqlx::raw_sql("rollback")
        .execute(&mut holder)
        .await
        .unwrap();

    change.await.unwrap().expect("the team goes off duty");
    let receipt = intake
        .await
        .unwrap()
        .expect("the intake is recorded")
        .into_inner()
        .receipt
        .unwrap();
    assert_eq!(first_destination(&receipt), "thr-t3");
    let store = first.db.store(1).await;
    for report in store.verify_chains().await.unwrap() {
        assert_eq!(report.problem, None, "{report:?}");
    }
    second.stop().await;
    first.finish().await;
}

/// Returns once `count` transactions on the database `name` wait for a lock.
async fn waiting_for_the_lock(conn: &mut sqlx::PgConnection, name: &str, count: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_locks l join pg_stat_activity a using (pid) \
             where not l.granted and a.datname = $1",
        )
        .bind(name)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        if waiting >= count {
            return;
        }
        // Asked again at once: each question is a round trip, and nothing tells of a wait.
        assert!(
            std::time::Instant::now() < deadline,
            "{waiting} of {count} transactions wait for the lock"
        );
    }
}
