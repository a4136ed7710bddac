//! Crisis operation: a supervisor declares a crisis in Ilam; while it is in force a 1480 call
//! at 02:00 is referred to the counselling centre at once, disaster psycho-social calls go
//! where the declaration's rule sends them, suicidal thoughts are raised to P1 and the
//! acceptance deadline is the declaration's; its events reach Ilam's watchers and no one
//! else's; once it ends, the same call at 02:00 waits for the morning, with nothing undone by
//! hand. Then the figures of a declaration's period beside the same span before it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use referrals::auth::Role;
use referrals::pb::{
    self, CaseEvent, Category, ChangeCrisisRequest, CrisisStatus, CrisisTerms,
    DeclareCrisisRequest, EndCrisisRequest, GetCrisisStatisticsRequest, HotlineAction,
    ListCrisesRequest, PriorityFloor, ServicePointKind, WatchCasesRequest, WatchCasesResponse,
    audit_trail_client::AuditTrailClient, case_tracking_client::CaseTrackingClient,
    crisis_operation_client::CrisisOperationClient, watch_cases_response::Message,
};
use referrals::sample::Sample;
use tonic::{Code, Streaming};

use crate::common::fixtures::CALL_TIME;
use crate::common::{Authed, Backend, TestDb, TestServer};

const HOUR: i64 = 3600;
/// Monday 2026-11-23, 02:00 in Tehran: the Ilam counselling centre (Saturday to Thursday,
/// 08:00–20:00) is closed, and opens at 08:00.
const MONDAY_2AM: i64 = CALL_TIME + 16 * HOUR;
const MONDAY_8AM: i64 = CALL_TIME + 22 * HOUR;
const TUESDAY_2AM: i64 = CALL_TIME + 40 * HOUR;
const TUESDAY_8AM: i64 = CALL_TIME + 46 * HOUR;

fn time(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn at(server: &TestServer, seconds: i64) {
    server.time.as_ref().unwrap().set(time(seconds));
}

async fn server_on(db: TestDb) -> TestServer {
    TestServer::seeded_with(db, |c| {
        c.heartbeat_interval = Duration::from_millis(200);
    })
    .await
}

fn supervisor(server: &TestServer, province: &str) -> CrisisOperationClient<Authed> {
    CrisisOperationClient::new(server.as_who(
        &format!("supervisor-{province}"),
        Role::Supervisor,
        province,
        None,
    ))
}

/// Declares the Ilam earthquake of [`earthquake`], starting now, under `request_id`.
async fn declare_earthquake(
    client: &CrisisOperationClient<Authed>,
    request_id: &str,
) -> Result<pb::DeclareCrisisResponse, tonic::Status> {
    client
        .clone()
        .declare_crisis(DeclareCrisisRequest {
            request_id: request_id.into(),
            crisis: Some(earthquake(None)),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// A 1480 call from Ilam that began five minutes before `now`: an adult in distress (P3, a
/// counselling need), nothing acute.
fn ilam_call(request_id: &str, now: i64, category: Category) -> pb::SubmitReferralRequest {
    Sample::child(now - 300)
        .suicidal_adult()
        .with(|i| {
            i.primary_category = category as i32;
            i.secondary_categories.clear();
            let screening = i.risk.as_mut().unwrap().suicide_screening.as_mut().unwrap();
            screening.wish_to_be_dead = pb::Answer::No as i32;
            screening.suicidal_thoughts = pb::Answer::No as i32;
            let location = i.location.as_mut().unwrap();
            location.province = "IR-16".into();
            location.county = "Ilam".into();
            location.district.clear();
            location.neighbourhood.clear();
            location.coordinates = None;
            i.contact.as_mut().unwrap().answering_province = "IR-16".into();
        })
        .hotline(request_id, HotlineAction::CounsellingCentreReferral)
}

/// The declaration the tests make: counselling centres open round the clock, disaster
/// psycho-social calls to a crisis-intervention centre, suicidal thoughts at least P1, and a
/// counselling referral accepted within 2 hours.
fn earthquake(starts_at: Option<i64>) -> CrisisTerms {
    CrisisTerms {
        name: "زلزله ایلام".into(),
        province: "IR-16".into(),
        starts_at: starts_at.map(referrals::sample::timestamp),
        ends_at: None,
        round_the_clock: vec![ServicePointKind::CounsellingCentre as i32],
        round_the_clock_points: Vec::new(),
        targets: vec!["referral_acceptance:p3=2h".into()],
        policy_toml: r#"
[[rules]]
id = "quake-psychosocial"
priority = 10
description = "Disaster psycho-social calls go to the Ilam crisis-intervention centre."
when = { categories = ["disaster_psychosocial"] }
then = [{ action = "refer_to", kind = "crisis_intervention_centre", point = "ilm-crisis-1" }]
"#
        .into(),
        raise: vec![PriorityFloor {
            category: Category::SuicidalThoughts as i32,
            at_least: pb::Priority::P1Urgent as i32,
            ..Default::default()
        }],
    }
}

fn assignment(receipt: &pb::IntakeReceipt) -> (String, Option<i64>) {
    let a = &receipt.routing.as_ref().unwrap().assignments[0];
    let id = match a.destination.as_ref().unwrap() {
        pb::assignment::Destination::TeamId(id)
        | pb::assignment::Destination::ServicePointId(id) => id.clone(),
    };
    (id, a.waits_until.map(|t| t.seconds))
}

/// How many referral-acceptance deadlines give `seconds` from when they were set.
async fn acceptance_deadlines_of(server: &TestServer, seconds: i64) -> i64 {
    server
        .db
        .integers(&format!(
            "select count(*) from sla_timers where kind = 'referral_acceptance' \
             and due_at - created_at = {}",
            seconds * 1_000_000
        ))
        .await[0]
}

/// Reads a watch until a heartbeat at or past `head`, returning the events seen.
async fn events_up_to(stream: &mut Streaming<WatchCasesResponse>, head: i64) -> Vec<CaseEvent> {
    let mut seen = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("the watch went silent")
            .unwrap()
            .unwrap();
        match message.message {
            Some(Message::Event(event)) => seen.push(event),
            Some(Message::Heartbeat(beat)) if beat.sequence >= head => return seen,
            _ => {}
        }
    }
}

async fn watch(client: Authed) -> Streaming<WatchCasesResponse> {
    CaseTrackingClient::new(client)
        .watch_cases(WatchCasesRequest {
            after_sequence: Some(0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// What Ilam's and Tehran's operators see of the crisis replaying their feeds from the start:
/// Ilam's the declaration and its change, with no case, line or priority; Tehran's nothing.
async fn watch_notices(server: &TestServer, crisis: &pb::Crisis) -> Vec<(i64, String)> {
    let ilam_watch = server.as_who("ilam-123", Role::Operator, "IR-16", None);
    let mut stream = watch(ilam_watch).await;
    let seen = events_up_to(&mut stream, 1).await;
    let notices: Vec<&CaseEvent> = seen.iter().filter(|e| e.case_id.is_empty()).collect();
    assert_eq!(
        notices.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["crisis_declared", "crisis_changed"]
    );
    assert!(
        notices
            .iter()
            .all(|e| e.province == "IR-16" && e.line == 0 && e.priority == 0)
    );
    assert!(notices[0].data_json.contains(&crisis.crisis_id));
    let last = seen.last().unwrap().sequence;
    let mut tehran_watch = watch(server.as_operator()).await;
    let tehran_seen = events_up_to(&mut tehran_watch, last).await;
    assert!(
        tehran_seen.iter().all(|e| !e.case_id.is_empty()),
        "{tehran_seen:?}"
    );
    notices
        .iter()
        .map(|e| (e.sequence, e.kind.clone()))
        .collect()
}

async fn a_crisis_changes_routing_while_in_force_and_nothing_once_it_ends(backend: Backend) {
    let mut server = server_on(TestDb::new(backend).await).await;
    at(&server, MONDAY_2AM);
    let ilam = supervisor(&server, "IR-16");

    // Before the declaration the call waits for the morning.
    let before = server
        .submit(ilam_call(
            "quake-0",
            MONDAY_2AM,
            Category::PsychologicalDistress,
        ))
        .await;
    assert_eq!(before.priority(), pb::Priority::P3Routine);
    assert_eq!(
        assignment(&before),
        ("ilm-counsel-1".into(), Some(MONDAY_8AM))
    );

    let declared = declare_earthquake(&ilam, "declare-1").await.unwrap();
    let crisis = declared.crisis.unwrap();
    assert!(!declared.replayed);
    assert_eq!(crisis.status(), CrisisStatus::InForce);
    assert_eq!(crisis.status_label_fa, "برقرار");
    assert_eq!(crisis.version, 1);
    let terms = crisis.terms.clone().unwrap();
    assert_eq!(terms.starts_at.unwrap().seconds, MONDAY_2AM);
    assert_eq!(terms.raise[0].category_label_fa, "افکار خودکشی");
    assert_eq!(terms.raise[0].priority_label_fa, "اضطراری");
    // A retry is the same declaration; another for the same time and place is refused.
    let again = declare_earthquake(&ilam, "declare-1").await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.crisis.unwrap().crisis_id, crisis.crisis_id);
    let overlap = declare_earthquake(&ilam, "declare-2").await.unwrap_err();
    assert_eq!(overlap.code(), Code::FailedPrecondition, "{overlap:?}");

    // In force: the counsellor on duty takes the call now, with the declaration's deadline.
    let during = server
        .submit(ilam_call(
            "quake-1",
            MONDAY_2AM,
            Category::PsychologicalDistress,
        ))
        .await;
    assert_eq!(assignment(&during), ("ilm-counsel-1".into(), None));
    // Its deadline is the declaration's 2 hours, not the 7 days of a P3 referral (the one
    // before waits 6 hours for the opening, then has its 7 days).
    let week = 7 * 24 * HOUR;
    assert_eq!(acceptance_deadlines_of(&server, 2 * HOUR).await, 1);
    assert_eq!(acceptance_deadlines_of(&server, 6 * HOUR + week).await, 1);
    let case = server.case(&during.case_id).await;
    let decision = case.routing.unwrap();
    assert_eq!(decision.rule_id, "counselling");
    assert_eq!(decision.crises.len(), 1);
    assert_eq!(decision.crises[0].crisis_id, crisis.crisis_id);
    assert_eq!(decision.crises[0].name, "زلزله ایلام");
    // The declaration's rule comes before the policy's.
    let psychosocial = server
        .submit(ilam_call(
            "quake-2",
            MONDAY_2AM,
            Category::DisasterPsychosocial,
        ))
        .await;
    assert_eq!(
        psychosocial.routing.as_ref().unwrap().rule_id,
        "quake-psychosocial"
    );
    assert_eq!(assignment(&psychosocial).0, "ilm-crisis-1");
    // Suicidal thoughts are raised to P1, saying why, and handed to 123.
    let thoughts = server
        .submit(ilam_call("quake-3", MONDAY_2AM, Category::SuicidalThoughts))
        .await;
    assert_eq!(thoughts.computed_priority(), pb::Priority::P1Urgent);
    assert_eq!(thoughts.priority(), pb::Priority::P1Urgent);
    assert_eq!(
        thoughts.triage_reasons[0],
        "crisis «زلزله ایلام» in force: suicidal_thoughts is at least p1_urgent"
    );
    assert_eq!(assignment(&thoughts).0, "ilm-123");
    // The same call from Tehran is routed as ever.
    let tehran = server
        .submit(
            Sample::child(MONDAY_2AM - 300)
                .suicidal_adult()
                .hotline("tehran-1", HotlineAction::CounsellingCentreReferral),
        )
        .await;
    assert_eq!(tehran.priority(), pb::Priority::P2Priority);
    assert!(
        server
            .case(&tehran.case_id)
            .await
            .routing
            .unwrap()
            .crises
            .is_empty()
    );

    // The supervisor sets its end for the morning; the change is versioned.
    let stale = ilam
        .clone()
        .end_crisis(EndCrisisRequest {
            crisis_id: crisis.crisis_id.clone(),
            expected_version: 7,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let mut shorter = earthquake(Some(MONDAY_2AM));
    shorter.ends_at = Some(referrals::sample::timestamp(MONDAY_8AM + 4 * HOUR));
    let changed = ilam
        .clone()
        .change_crisis(ChangeCrisisRequest {
            request_id: "change-1".into(),
            crisis_id: crisis.crisis_id.clone(),
            expected_version: 1,
            crisis: Some(shorter),
        })
        .await
        .unwrap()
        .into_inner()
        .crisis
        .unwrap();
    assert_eq!(changed.version, 2);
    at(&server, MONDAY_8AM + 4 * HOUR);
    let listed = ilam
        .clone()
        .list_crises(ListCrisesRequest {
            include_ended: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .crises;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status(), CrisisStatus::Ended);
    assert!(
        ilam.clone()
            .list_crises(ListCrisesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .crises
            .is_empty()
    );

    // The next night, nothing was undone by hand and the call waits for the morning again.
    at(&server, TUESDAY_2AM);
    let after = server
        .submit(ilam_call(
            "quake-4",
            TUESDAY_2AM,
            Category::PsychologicalDistress,
        ))
        .await;
    assert_eq!(
        assignment(&after),
        ("ilm-counsel-1".into(), Some(TUESDAY_8AM))
    );
    assert!(
        server
            .case(&after.case_id)
            .await
            .routing
            .unwrap()
            .crises
            .is_empty()
    );
    assert_eq!(acceptance_deadlines_of(&server, 6 * HOUR + week).await, 2);
    // The psycho-social call's referral had the declaration's deadline too.
    assert_eq!(acceptance_deadlines_of(&server, 2 * HOUR).await, 2);
    // The case routed in the crisis still says so.
    let kept = server.case(&during.case_id).await.routing.unwrap();
    assert_eq!(kept.crises[0].crisis_id, crisis.crisis_id);

    // Ilam's watchers saw the declaration and its change, with no case; Tehran's did not:
    // from the server's memory, and after a restart from the database.
    let (first, second) = (watch_notices(&server, &crisis).await, {
        let restarted = server_on(server.stop().await).await;
        let notices = watch_notices(&restarted, &crisis).await;
        server = restarted;
        notices
    });
    assert_eq!(first, second);

    // Each declaration, change and refusal is on the audit trail.
    let trail = AuditTrailClient::new(server.as_who("auditor", Role::Auditor, "all", None))
        .list_audit_entries(pb::ListAuditEntriesRequest {
            action: "manage_crisis".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let outcomes: Vec<&str> = trail.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "ok").count(),
        3,
        "{outcomes:?}"
    );
    assert!(outcomes.contains(&"failed_precondition") && outcomes.contains(&"aborted"));
    server.finish().await;
}

async fn only_a_supervisor_of_the_area_declares_and_bad_terms_are_named(backend: Backend) {
    let server = server_on(TestDb::new(backend).await).await;
    let declare = |terms: CrisisTerms| DeclareCrisisRequest {
        request_id: String::new(),
        crisis: Some(terms),
    };
    let refused = |client: Authed, terms: CrisisTerms| async move {
        CrisisOperationClient::new(client)
            .declare_crisis(declare(terms))
            .await
            .unwrap_err()
    };
    let tehran = server.as_who("sup-23", Role::Supervisor, "IR-23", None);
    assert_eq!(
        refused(tehran.clone(), earthquake(None)).await.code(),
        Code::PermissionDenied
    );
    let national = CrisisTerms {
        province: String::new(),
        ..earthquake(None)
    };
    assert_eq!(
        refused(tehran, national.clone()).await.code(),
        Code::PermissionDenied
    );
    assert_eq!(
        refused(
            server.as_who("op", Role::Operator, "IR-16", None),
            earthquake(None)
        )
        .await
        .code(),
        Code::PermissionDenied
    );
    let bad = CrisisTerms {
        name: " ".into(),
        round_the_clock: vec![ServicePointKind::Police110 as i32],
        targets: vec!["on_scene:p9=1h".into()],
        policy_toml: "[[rules]]\nid = 3".into(),
        ..earthquake(Some(CALL_TIME - 4 * HOUR))
    };
    let ilam = || server.as_who("sup-16", Role::Supervisor, "IR-16", None);
    let names_each = |status: tonic::Status, fields: &[&str]| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        for field in fields {
            assert!(status.message().contains(field), "{field}: {status:?}");
        }
    };
    names_each(
        refused(ilam(), bad).await,
        &[
            "crisis.name",
            "crisis.round_the_clock[0]",
            "crisis.targets[0]",
            "crisis.policy_toml",
        ],
    );
    // What the terms name must be in the directory, and in the crisis's area.
    let unknown = CrisisTerms {
        round_the_clock_points: vec!["thr-counsel-1".into(), "nowhere".into()],
        policy_toml: "[[rules]]\nid = \"x\"\npriority = 1\nthen = [{ action = \"refer_to\", \
                      kind = \"safe_house\", point = \"ilm-crisis-1\" }]"
            .into(),
        ..earthquake(None)
    };
    names_each(
        refused(ilam(), unknown).await,
        &[
            "crisis.round_the_clock_points[0]",
            "crisis.round_the_clock_points[1]",
            "crisis.policy_toml",
        ],
    );
    // So must a policy's.
    let policy = server
        .directory()
        .get_policy(pb::GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner();
    let shipped = include_str!("../../seed/policy.toml");
    let naming = shipped.replacen(
        "kind = \"crisis_intervention_centre\" }",
        "kind = \"crisis_intervention_centre\", point = \"no-such-centre\" }",
        1,
    );
    assert_ne!(naming, shipped);
    let status = server
        .directory()
        .replace_policy(pb::ReplacePolicyRequest {
            policy_toml: naming,
            expected_version: policy.version,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(format!("{status:?}").contains("no-such-centre"));
    // A national supervisor declares for the whole country.
    let declared = supervisor(&server, "all")
        .declare_crisis(declare(national))
        .await
        .unwrap()
        .into_inner()
        .crisis
        .unwrap();
    assert_eq!(declared.terms.unwrap().province, "");
    server.finish().await;
}

async fn a_crisis_period_is_counted_beside_the_same_span_before_it(backend: Backend) {
    let server = server_on(TestDb::new(backend).await).await;
    let ilam = supervisor(&server, "IR-16");
    // Two calls in the four hours before, three during the four hours of the crisis.
    at(&server, MONDAY_2AM - 3 * HOUR);
    for n in 0..2 {
        server
            .submit(ilam_call(
                &format!("pre-{n}"),
                MONDAY_2AM - 3 * HOUR,
                Category::PsychologicalDistress,
            ))
            .await;
    }
    at(&server, MONDAY_2AM);
    let crisis = declare_earthquake(&ilam, "stats")
        .await
        .unwrap()
        .crisis
        .unwrap();
    for (n, category) in [
        Category::PsychologicalDistress,
        Category::DisasterPsychosocial,
        Category::DisasterPsychosocial,
    ]
    .into_iter()
    .enumerate()
    {
        server
            .submit(ilam_call(&format!("in-{n}"), MONDAY_2AM, category))
            .await;
    }
    // A child in danger in Ilam: the Ilam team, back on duty, acknowledges two minutes later.
    let ilam_ops = server.as_who("ilam-123", Role::Operator, "IR-16", None);
    pb::directory_client::DirectoryClient::new(server.as_who(
        "supervisor-IR-16",
        Role::Supervisor,
        "IR-16",
        None,
    ))
    .update_team_status(pb::UpdateTeamStatusRequest {
        team_id: "ilm-t1".into(),
        status: pb::DutyStatus::Available as i32,
        ..Default::default()
    })
    .await
    .unwrap();
    let child = pb::emergency_intake_client::EmergencyIntakeClient::new(ilam_ops)
        .report_emergency(
            Sample::child(MONDAY_2AM - 300)
                .with(|i| {
                    let location = i.location.as_mut().unwrap();
                    location.province = "IR-16".into();
                    location.county = "Ilam".into();
                    location.neighbourhood.clear();
                    location.coordinates = None;
                    i.contact.as_mut().unwrap().answering_province = "IR-16".into();
                    i.risk.as_mut().unwrap().violence_ongoing = true;
                })
                .emergency("child-ilam", pb::EmergencyAction::MobileTeam),
        )
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    let dispatch = server.case(&child.case_id).await.dispatches[0].clone();
    assert_eq!(dispatch.team_id, "ilm-t1");
    at(&server, MONDAY_2AM + 120);
    server
        .team_dispatch("ilm-t1")
        .report_dispatch_status(pb::ReportDispatchStatusRequest {
            dispatch_id: dispatch.dispatch_id,
            expected_version: dispatch.version,
            status: pb::DispatchStatus::Acknowledged as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    // A Tehran call in the same hours is not Ilam's.
    server
        .submit(
            Sample::child(MONDAY_2AM - 300)
                .suicidal_adult()
                .hotline("tehran-2", HotlineAction::CounsellingCentreReferral),
        )
        .await;
    at(&server, MONDAY_2AM + 4 * HOUR);
    ilam.clone()
        .end_crisis(EndCrisisRequest {
            crisis_id: crisis.crisis_id.clone(),
            expected_version: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    at(&server, MONDAY_2AM + 9 * HOUR);
    let figures = ilam
        .clone()
        .get_crisis_statistics(GetCrisisStatisticsRequest {
            crisis_id: crisis.crisis_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(figures.from.unwrap().seconds, MONDAY_2AM);
    assert_eq!(figures.to.unwrap().seconds, MONDAY_2AM + 4 * HOUR);
    let during = figures.during.unwrap();
    let before = figures.before.unwrap();
    assert_eq!((during.total, before.total), (4, 2));
    let acknowledged = during.intake_to_acknowledged.unwrap();
    assert_eq!(acknowledged.cases, 1);
    assert_eq!(acknowledged.median.unwrap().seconds, 120);
    assert_eq!(before.intake_to_acknowledged.unwrap().cases, 0);
    let count = |s: &pb::GetStatisticsResponse, key: &str| {
        s.by_category
            .iter()
            .find(|c| c.key == key)
            .map_or(0, |c| c.count)
    };
    assert_eq!(count(&during, "CATEGORY_DISASTER_PSYCHOSOCIAL"), 2);
    assert_eq!(count(&before, "CATEGORY_DISASTER_PSYCHOSOCIAL"), 0);
    assert!(during.by_province.iter().all(|c| c.key == "IR-16"));
    // Another province's supervisor does not find Ilam's declaration.
    let hidden = supervisor(&server, "IR-23")
        .get_crisis_statistics(GetCrisisStatisticsRequest {
            crisis_id: crisis.crisis_id,
        })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    server.finish().await;
}

/// Two servers on one database: a crisis declared through one routes the next case on the
/// other.
async fn a_crisis_declared_through_one_server_routes_on_the_other(backend: Backend) {
    let first = server_on(TestDb::new(backend).await).await;
    let second = server_on(first.db.same_database()).await;
    for server in [&first, &second] {
        at(server, MONDAY_2AM);
    }
    let waiting = second
        .submit(ilam_call(
            "two-0",
            MONDAY_2AM,
            Category::PsychologicalDistress,
        ))
        .await;
    assert_eq!(assignment(&waiting).1, Some(MONDAY_8AM));
    declare_earthquake(&supervisor(&first, "IR-16"), "two")
        .await
        .unwrap();
    let now = second
        .submit(ilam_call(
            "two-1",
            MONDAY_2AM,
            Category::PsychologicalDistress,
        ))
        .await;
    assert_eq!(assignment(&now), ("ilm-counsel-1".into(), None));
    assert_eq!(
        second
            .case(&now.case_id)
            .await
            .routing
            .unwrap()
            .crises
            .len(),
        1
    );
    second.stop().await;
    first.finish().await;
}

crate::backend_tests!(
    a_crisis_changes_routing_while_in_force_and_nothing_once_it_ends,
    a_crisis_declared_through_one_server_routes_on_the_other,
    only_a_supervisor_of_the_area_declares_and_bad_terms_are_named,
    a_crisis_period_is_counted_beside_the_same_span_before_it,
);
