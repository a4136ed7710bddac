//! Roles and jurisdictions: every role, in its province and in another, against every kind of
//! RPC. A case out of reach is NOT_FOUND (as if it did not exist); an operation the role never
//! has, or an area outside the token's, is PERMISSION_DENIED; and every refusal is on the audit
//! trail.

use crate::common::fixtures::{self, child_in_danger};
use crate::common::{Authed, Backend, TestDb, TestServer};
use referrals::auth::Role;
use referrals::pb::{
    self, audit_trail_client::AuditTrailClient, case_tracking_client::CaseTrackingClient,
    directory_client::DirectoryClient, dispatch_client::DispatchClient,
    emergency_intake_client::EmergencyIntakeClient, hotline_intake_client::HotlineIntakeClient,
};
use tonic::Code;

/// What the probes touch.
struct Cases {
    /// A 123 child-abuse case in Tehran (IR-23, county Tehran), recorded by the Tehran 123 centre,
    /// with team thr-t1 sent.
    emergency: String,
    /// A 1480 case in Tehran recorded by the Tehran 1480 centre, referred to a counselling centre.
    hotline: String,
    /// The 1480 case's referral and the centre it is addressed to.
    referral: String,
    centre: String,
    /// The 123 case's dispatch.
    dispatch: String,
}

fn short(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::NotFound => "nf",
        Code::PermissionDenied => "pd",
        Code::Aborted => "ab",
        Code::InvalidArgument => "ia",
        other => panic!("unexpected code {other:?}"),
    }
}

fn code<T>(result: Result<T, tonic::Status>) -> &'static str {
    short(result.err().map_or(Code::Ok, |s| s.code()))
}

/// The reads, in order: GetCase(123), GetCase(1480), GetTimeline(123), ListCases (which of the
/// two cases it shows), ListCases in another province, WatchCases, GetStatistics,
/// StreamAssignments(thr-t1), GetPolicy, ListAuditEntries.
async fn reads(channel: Authed, cases: &Cases) -> Vec<String> {
    let mut tracking = CaseTrackingClient::new(channel.clone());
    let get = |id: &str| pb::GetCaseRequest { case_id: id.into() };
    let mut out = vec![
        code(tracking.get_case(get(&cases.emergency)).await).to_owned(),
        code(tracking.get_case(get(&cases.hotline)).await).to_owned(),
        code(
            tracking
                .get_timeline(pb::GetTimelineRequest {
                    case_id: cases.emergency.clone(),
                })
                .await,
        )
        .to_owned(),
    ];
    out.push(
        match tracking.list_cases(pb::ListCasesRequest::default()).await {
            Ok(list) => {
                let ids: Vec<String> = list
                    .into_inner()
                    .cases
                    .into_iter()
                    .map(|c| c.case_id)
                    .collect();
                let mut seen = String::new();
                if ids.contains(&cases.emergency) {
                    seen.push('E');
                }
                if ids.contains(&cases.hotline) {
                    seen.push('H');
                }
                if seen.is_empty() {
                    seen.push('-');
                }
                seen
            }
            Err(status) => short(status.code()).to_owned(),
        },
    );
    out.push(
        code(
            tracking
                .list_cases(pb::ListCasesRequest {
                    province: "IR-07".into(),
                    ..Default::default()
                })
                .await,
        )
        .to_owned(),
    );
    out.push(code(tracking.watch_cases(pb::WatchCasesRequest::default()).await).to_owned());
    out.push(
        code(
            tracking
                .get_statistics(pb::GetStatisticsRequest {
                    from: Some(fixtures::timestamp(0)),
                    to: Some(fixtures::timestamp(4_000_000_000)),
                    province: String::new(),
                })
                .await,
        )
        .to_owned(),
    );
    out.push(
        code(
            DispatchClient::new(channel.clone())
                .stream_assignments(pb::StreamAssignmentsRequest {
                    team_id: "thr-t1".into(),
                    after_sequence: None,
                })
                .await,
        )
        .to_owned(),
    );
    out.push(
        code(
            DirectoryClient::new(channel.clone())
                .get_policy(pb::GetPolicyRequest {})
                .await,
        )
        .to_owned(),
    );
    out.push(
        code(
            AuditTrailClient::new(channel)
                .list_audit_entries(pb::ListAuditEntriesRequest::default())
                .await,
        )
        .to_owned(),
    );
    out
}

/// The changes, each sent against a version that is not current, so that one that gets past
/// role and reach is ABORTED and changes nothing: AddNote(123), CloseCase(123),
/// TransitionReferral(1480's), ReportDispatchStatus(123's); then an intake on each line (real:
/// recorded when allowed) and an empty UpsertTeam (INVALID_ARGUMENT when allowed).
async fn changes(channel: Authed, cases: &Cases, n: usize) -> Vec<String> {
    let mut tracking = CaseTrackingClient::new(channel.clone());
    let out = vec![
        code(
            tracking
                .add_note(pb::AddNoteRequest {
                    case_id: cases.emergency.clone(),
                    text: "a note".into(),
                    expected_version: 999,
                    ..Default::default()
                })
                .await,
        ),
        code(
            tracking
                .close_case(pb::CloseCaseRequest {
                    case_id: cases.emergency.clone(),
                    expected_version: 999,
                    outcome: pb::CaseOutcome::ResolvedByPhone as i32,
                    reason: String::new(),
                    ..Default::default()
                })
                .await,
        ),
        code(
            tracking
                .transition_referral(pb::TransitionReferralRequest {
                    referral_id: cases.referral.clone(),
                    expected_version: 999,
                    status: pb::ReferralStatus::Accepted as i32,
                    reason: String::new(),
                    ..Default::default()
                })
                .await,
        ),
        code(
            DispatchClient::new(channel.clone())
                .report_dispatch_status(pb::ReportDispatchStatusRequest {
                    dispatch_id: cases.dispatch.clone(),
                    expected_version: 999,
                    status: pb::DispatchStatus::Acknowledged as i32,
                    reason: String::new(),
                    position: None,
                    ..Default::default()
                })
                .await,
        ),
        code(
            HotlineIntakeClient::new(channel.clone())
                .submit_referral(fixtures::hotline(&format!("matrix-1480-{n}")))
                .await,
        ),
        code(
            EmergencyIntakeClient::new(channel.clone())
                .report_emergency(fixtures::emergency(&format!("matrix-123-{n}")))
                .await,
        ),
        code(
            DirectoryClient::new(channel)
                .upsert_team(pb::UpsertTeamRequest { team: None })
                .await,
        ),
    ];
    out.into_iter().map(str::to_owned).collect()
}

async fn every_role_reaches_what_it_may_and_nothing_else(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let tehran_123 = server.as_operator();
    let tehran_1480 = server.as_who("1480-tehran", Role::Hotline, "IR-23", None);
    let emergency = EmergencyIntakeClient::new(tehran_123.clone())
        .report_emergency(child_in_danger("matrix-e"))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap()
        .case_id;
    let hotline = HotlineIntakeClient::new(tehran_1480.clone())
        .submit_referral(fixtures::hotline("matrix-h"))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap()
        .case_id;
    let read = |id: &str| {
        let mut cases = server.cases();
        let id = id.to_owned();
        async move {
            cases
                .get_case(pb::GetCaseRequest { case_id: id })
                .await
                .unwrap()
                .into_inner()
                .case
                .unwrap()
        }
    };
    let e = read(&emergency).await;
    let h = read(&hotline).await;
    assert_eq!(e.dispatches[0].team_id, "thr-t1");
    let referral = h.referrals[0].clone();
    let cases = Cases {
        emergency,
        hotline,
        referral: referral.referral_id,
        centre: referral.service_point_id,
        dispatch: e.dispatches[0].dispatch_id.clone(),
    };

    let who = |subject: &str, role, province: &str, team: Option<&str>| {
        server.as_who(subject, role, province, team)
    };
    let county = server.with_token(&{
        let (keys, _) = referrals::auth::Keys::load_or_create(server.db.dir.path()).unwrap();
        keys.issue(&referrals::auth::claims(
            "123-ray",
            Role::Operator,
            "IR-23",
            Some("Ray".into()),
            None,
            chrono::Utc::now(),
            std::time::Duration::from_secs(3600),
        ))
        .unwrap()
    });
    // (caller, reads, changes, row). Reads: case 123, case 1480, timeline 123, list, list in
    // IR-07, watch, statistics, thr-t1's assignments, policy, audit trail. Changes: note,
    // close, referral, dispatch, 1480 intake, 123 intake, directory entry.
    let table = [
        (
            tehran_1480.clone(),
            "nf ok nf H pd ok pd pd ok pd",
            "nf pd pd pd ok pd pd",
            "1480 centre: reads what it recorded",
        ),
        (
            who("1480-fars", Role::Hotline, "IR-07", None),
            "nf nf nf - ok ok pd pd ok pd",
            "nf pd pd pd ok pd pd",
            "another 1480 centre: nothing of Tehran's",
        ),
        (
            tehran_123.clone(),
            "ok ok ok EH pd ok ok pd ok pd",
            "ab ab ab ab pd ok pd",
            "Tehran 123: its province",
        ),
        (
            who("123-fars", Role::Operator, "IR-07", None),
            "nf nf nf - ok ok ok pd ok pd",
            "nf nf nf nf pd pd pd",
            "Fars 123: not Tehran's cases, nor Tehran's calls",
        ),
        (
            county,
            "nf nf nf - pd ok ok pd ok pd",
            "nf nf nf nf pd pd pd",
            "a county's 123: not the province's other counties",
        ),
        (
            who("thr-t1", Role::Team, "IR-23", Some("thr-t1")),
            "ok nf ok E pd ok pd ok ok pd",
            "ab pd pd ab pd pd pd",
            "the team sent: its assignment",
        ),
        (
            who("thr-t2", Role::Team, "IR-23", Some("thr-t2")),
            "nf nf nf - pd ok pd pd ok pd",
            "nf pd pd nf pd pd pd",
            "another team: nothing",
        ),
        (
            server.as_centre(&cases.centre),
            "nf ok nf H pd pd pd pd ok pd",
            "nf pd ab pd pd pd pd",
            "the centre referred to: that case",
        ),
        (
            server.as_centre("some-other-centre"),
            "nf nf nf - pd pd pd pd ok pd",
            "nf pd nf pd pd pd pd",
            "another centre: nothing",
        ),
        (
            who("sup-tehran", Role::Supervisor, "IR-23", None),
            "ok ok ok EH pd ok ok pd ok pd",
            "ab ab ab ab ok ok pd",
            "Tehran's supervisor",
        ),
        (
            who("sup-fars", Role::Supervisor, "IR-07", None),
            "nf nf nf - ok ok ok pd ok pd",
            "nf nf nf nf pd pd pd",
            "Fars's supervisor: not Tehran's calls either",
        ),
        (
            who("sup-national", Role::Supervisor, "all", None),
            "ok ok ok EH ok ok ok pd ok pd",
            "ab ab ab ab ok ok pd",
            "a national supervisor",
        ),
        (
            server.as_admin(),
            "pd pd pd pd pd pd ok pd ok pd",
            "pd pd pd pd pd pd ia",
            "an administrator: the directory, never a case",
        ),
        (
            who("auditor", Role::Auditor, "all", None),
            "pd pd pd pd pd pd pd pd pd ok",
            "pd pd pd pd pd pd pd",
            "an auditor: the trail only",
        ),
    ];
    let mut refused = 0;
    let mut results = Vec::new();
    for (caller, _, _, _) in &table {
        results.push(reads(caller.clone(), &cases).await);
    }
    for (n, (caller, _, _, _)) in table.iter().enumerate() {
        results[n].extend(changes(caller.clone(), &cases, n).await);
    }
    for ((_, expected_reads, expected_changes, row), got) in table.iter().zip(&results) {
        let expected = format!("{expected_reads} {expected_changes}");
        assert_eq!(got.join(" "), expected, "{row}");
        refused += got.iter().filter(|c| *c == "pd" || *c == "nf").count();
    }

    // Every refusal is on the trail, with who asked.
    let mut trail = AuditTrailClient::new(server.as_who("auditor", Role::Auditor, "all", None));
    let mut on_trail = 0;
    for outcome in ["permission_denied", "not_found"] {
        let entries = trail
            .list_audit_entries(pb::ListAuditEntriesRequest {
                outcome: outcome.into(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .entries;
        on_trail += entries.len();
    }
    assert_eq!(on_trail, refused, "one audit entry per refusal");

    // Nothing the refused or stale changes asked for happened.
    let e = read(&cases.emergency).await;
    assert!(e.notes.is_empty());
    assert_eq!(e.summary.unwrap().status(), pb::CaseStatus::Open);
    assert_eq!(e.dispatches[0].status(), pb::DispatchStatus::Assigned);
    server.finish().await;
}

async fn an_administrator_manages_the_directory_and_a_team_its_own_duty_status(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let status = |team: &str| pb::UpdateTeamStatusRequest {
        team_id: team.into(),
        status: pb::DutyStatus::OffDuty as i32,
        position: None,
        ..Default::default()
    };
    let mut own = DirectoryClient::new(server.as_team("thr-t1"));
    assert!(own.update_team_status(status("thr-t1")).await.is_ok());
    let other = own.update_team_status(status("thr-t2")).await.unwrap_err();
    assert_eq!(other.code(), Code::PermissionDenied, "{other:?}");
    let fars = DirectoryClient::new(server.as_who("sup-fars", Role::Supervisor, "IR-07", None))
        .update_team_status(status("thr-t2"))
        .await
        .unwrap_err();
    assert_eq!(
        fars.code(),
        Code::PermissionDenied,
        "another province's team"
    );
    assert!(
        DirectoryClient::new(server.as_who("sup-tehran", Role::Supervisor, "IR-23", None))
            .update_team_status(status("thr-t2"))
            .await
            .is_ok()
    );
    let supervisor_policy = DirectoryClient::new(server.authed())
        .replace_policy(pb::ReplacePolicyRequest {
            policy_toml: "not toml".into(),
            expected_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(supervisor_policy.code(), Code::PermissionDenied);
    let admin_policy = server
        .directory()
        .replace_policy(pb::ReplacePolicyRequest {
            policy_toml: "not toml".into(),
            expected_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(
        admin_policy.code(),
        Code::InvalidArgument,
        "allowed, and read"
    );
    server.finish().await;
}

/// The case ids a watch carries, replayed from the start and then live, until it has been
/// quiet for a heartbeat.
async fn watched(channel: Authed) -> std::collections::BTreeSet<String> {
    let mut stream = CaseTrackingClient::new(channel)
        .watch_cases(pb::WatchCasesRequest {
            after_sequence: Some(0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(5), stream.message())
            .await
            .expect("a heartbeat at the latest")
            .unwrap()
            .unwrap();
        match message.message.unwrap() {
            pb::watch_cases_response::Message::Event(event) => {
                seen.insert(event.case_id);
            }
            pb::watch_cases_response::Message::Heartbeat(_) => return seen,
        }
    }
}

async fn watches_carry_only_what_the_caller_may_see(backend: Backend) {
    let server = TestServer::seeded_with(TestDb::new(backend).await, |c| {
        c.heartbeat_interval = std::time::Duration::from_millis(300);
    })
    .await;
    let tehran_1480 = server.as_who("1480-tehran", Role::Hotline, "IR-23", None);
    let own = HotlineIntakeClient::new(tehran_1480.clone())
        .submit_referral(fixtures::hotline("watch-own"))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap()
        .case_id;
    let other = EmergencyIntakeClient::new(server.as_operator())
        .report_emergency(child_in_danger("watch-other"))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap()
        .case_id;
    let both: std::collections::BTreeSet<String> = [own.clone(), other.clone()].into();
    assert_eq!(watched(tehran_1480).await, [own.clone()].into());
    assert_eq!(watched(server.as_operator()).await, both);
    assert_eq!(
        watched(server.as_who("123-fars", Role::Operator, "IR-07", None)).await,
        Default::default()
    );
    // The team sent to the 123 case sees that case's events about it, and nothing of the 1480.
    assert_eq!(
        watched(server.as_team("thr-t1")).await,
        [other.clone()].into()
    );
    assert_eq!(watched(server.as_team("thr-t2")).await, Default::default());
    server.finish().await;
}

async fn a_call_overflowed_from_a_neighbouring_province_is_recorded_there(backend: Backend) {
    // Alborz's lines are busy and its call overflows to the Tehran 123 centre, whose operator
    // records the incident in Karaj (Alborz, IR-30): the case is Alborz's.
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let mut tehran = EmergencyIntakeClient::new(server.as_operator());
    let call = |request_id: &str, province: &str, county: &str, overflow: &str| {
        let mut request = fixtures::emergency(request_id);
        let intake = request.intake.as_mut().unwrap();
        let location = intake.location.as_mut().unwrap();
        location.province = province.into();
        location.county = county.into();
        let contact = intake.contact.as_mut().unwrap();
        contact.answering_province = "IR-23".into();
        contact.overflow_from_province = overflow.into();
        request
    };

    let receipt = tehran
        .report_emergency(call("overflow-1", "IR-30", "Karaj", "IR-30"))
        .await
        .expect("an overflowed call is recorded by the centre that answered it")
        .into_inner()
        .receipt
        .unwrap();
    let case = server.case(&receipt.case_id).await;
    assert_eq!(case.summary.unwrap().province, "IR-30");

    // Not overflowed: another province's incident is not Tehran's to record.
    let refused = tehran
        .report_emergency(call("overflow-2", "IR-30", "Karaj", ""))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    // Overflowed from a province whose overflow Tehran does not take (Khorasan Razavi).
    let refused = tehran
        .report_emergency(call("overflow-3", "IR-09", "Mashhad", "IR-09"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    // Said to overflow from one province, about an incident in another.
    let refused = tehran
        .report_emergency(call("overflow-4", "IR-25", "Qom", "IR-30"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    server.finish().await;
}

backend_tests!(
    a_call_overflowed_from_a_neighbouring_province_is_recorded_there,
    watches_carry_only_what_the_caller_may_see,
    every_role_reaches_what_it_may_and_nothing_else,
    an_administrator_manages_the_directory_and_a_team_its_own_duty_status,
);
