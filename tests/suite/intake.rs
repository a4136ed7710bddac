//! Recording intakes: receipts, exactly-once under retries and concurrency, durability across a
//! restart, and the event each intake writes.

use crate::common::fixtures::{emergency, hotline};
use crate::common::{Backend, TestServer};
use referrals::domain::reference;
use referrals::pb::{GetCaseRequest, IntakeReceipt, Line, ListCasesRequest, Priority};
use tonic::Code;

fn parse_uuid(id: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(id).expect("case_id is a UUID")
}

async fn a_123_intake_returns_a_receipt_and_the_case_reads_back(backend: Backend) {
    let server = TestServer::start(backend).await;
    let receipt = server
        .emergency()
        .report_emergency(emergency("req-1"))
        .await
        .expect("intake accepted")
        .into_inner()
        .receipt
        .expect("receipt");

    assert_eq!(parse_uuid(&receipt.case_id).get_version_num(), 7);
    assert!(
        receipt.reference.starts_with("123-"),
        "{}",
        receipt.reference
    );
    assert!(reference::is_valid(&receipt.reference));
    assert_eq!(receipt.version, 1);
    assert!(!receipt.replayed);
    // A 14-year-old with physical abuse reported today: neglect and abuse rules give P2, and no
    // violence or injury is going on.
    assert_eq!(receipt.priority(), Priority::P2Priority);
    assert!(!receipt.triage_reasons.is_empty());

    let case = server
        .cases()
        .get_case(GetCaseRequest {
            case_id: receipt.case_id.clone(),
        })
        .await
        .expect("case found")
        .into_inner()
        .case
        .expect("case");
    let summary = case.summary.as_ref().expect("summary");
    assert_eq!(summary.reference, receipt.reference);
    assert_eq!(summary.line(), Line::Emergency123);
    assert_eq!(summary.province, "IR-23");
    assert!(summary.minors_involved);
    assert_eq!(
        case.intake,
        emergency("req-1").intake,
        "the intake reads back as sent"
    );
    assert_eq!(case.contacts.len(), 1);
    server.finish().await;
}

async fn a_1480_intake_gets_a_1480_reference(backend: Backend) {
    let server = TestServer::start(backend).await;
    let receipt = submit_hotline(&server, "h-1").await;
    assert!(
        receipt.reference.starts_with("1480-000001-"),
        "{}",
        receipt.reference
    );
    assert_eq!(receipt.priority(), Priority::P2Priority);
    let second = submit_hotline(&server, "h-2").await;
    assert!(
        second.reference.starts_with("1480-000002-"),
        "{}",
        second.reference
    );
    server.finish().await;
}

async fn submit_hotline(server: &TestServer, request_id: &str) -> IntakeReceipt {
    server
        .hotline()
        .submit_referral(hotline(request_id))
        .await
        .expect("intake accepted")
        .into_inner()
        .receipt
        .expect("receipt")
}

async fn a_retry_returns_the_original_receipt_and_writes_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let first = submit_hotline(&server, "retry-1").await;
    let counts = (
        server.db.count("cases").await,
        server.db.count("events").await,
    );

    let again = submit_hotline(&server, "retry-1").await;
    assert!(again.replayed);
    assert_eq!(
        IntakeReceipt {
            replayed: false,
            ..again
        },
        first
    );
    assert_eq!(
        (
            server.db.count("cases").await,
            server.db.count("events").await
        ),
        counts
    );
    server.finish().await;
}

async fn a_request_id_reused_for_another_intake_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    submit_hotline(&server, "dup-1").await;
    let mut changed = hotline("dup-1");
    changed.intake.as_mut().unwrap().narrative = "a different call".into();
    let status = server
        .hotline()
        .submit_referral(changed)
        .await
        .expect_err("conflict");
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(server.db.count("cases").await, 1);
    server.finish().await;
}

/// Sends `count` 123 intakes at once, the `i`th through `servers[i % len]` with request id
/// `request_id(i)`, and returns their receipts in order.
async fn report_concurrently(
    servers: &[&TestServer],
    count: usize,
    request_id: impl Fn(usize) -> String,
) -> Vec<IntakeReceipt> {
    let submissions = (0..count).map(|i| {
        let mut client = servers[i % servers.len()].emergency();
        let request = emergency(&request_id(i));
        tokio::spawn(async move { client.report_emergency(request).await })
    });
    futures::future::join_all(submissions)
        .await
        .into_iter()
        .map(|r| {
            r.expect("task")
                .expect("accepted")
                .into_inner()
                .receipt
                .expect("receipt")
        })
        .collect()
}

async fn twenty_concurrent_identical_intakes_create_one_case(backend: Backend) {
    let server = TestServer::start(backend).await;
    let receipts = report_concurrently(&[&server], 20, |_| "storm-1".into()).await;

    let case_ids: std::collections::HashSet<_> = receipts.iter().map(|r| &r.case_id).collect();
    assert_eq!(case_ids.len(), 1, "every retry names the same case");
    assert_eq!(receipts.iter().filter(|r| !r.replayed).count(), 1);
    assert_eq!(server.db.count("cases").await, 1);
    // One case_recorded and one routing event.
    assert_eq!(server.db.count("events").await, 2);
    assert_eq!(server.db.count("idempotency_keys").await, 1);
    server.finish().await;
}

async fn concurrent_distinct_intakes_each_get_a_case_and_gapless_numbers(backend: Backend) {
    let server = TestServer::start(backend).await;
    let receipts = report_concurrently(&[&server], 40, |i| format!("many-{i}")).await;

    let mut references: Vec<String> = receipts.iter().map(|r| r.reference.clone()).collect();
    references.sort();
    let expected: Vec<String> = (1..=40)
        .map(|n| reference::format(referrals::domain::types::Line::Emergency123, n))
        .collect();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(
        references, expected_sorted,
        "case numbers 1..=40, none twice"
    );
    assert_eq!(server.db.count("cases").await, 40);
    // Two events a case (recorded, routed), numbered without a gap.
    assert_eq!(server.db.event_ids().await, (1..=80).collect::<Vec<i64>>());
    server.finish().await;
}

async fn the_same_request_id_on_the_other_line_is_another_intake(backend: Backend) {
    let server = TestServer::start(backend).await;
    let on_1480 = submit_hotline(&server, "shared-id").await;
    let on_123 = server
        .emergency()
        .report_emergency(emergency("shared-id"))
        .await
        .expect("accepted")
        .into_inner()
        .receipt
        .expect("receipt");
    assert_ne!(on_1480.case_id, on_123.case_id);
    assert!(!on_123.replayed);
    server.finish().await;
}

async fn an_acknowledged_intake_survives_a_restart(backend: Backend) {
    let server = TestServer::start(backend).await;
    let receipt = submit_hotline(&server, "durable-1").await;
    let db = server.stop().await;

    let server = TestServer::start_on(db, |_| {}).await;
    let case = server
        .cases()
        .get_case(GetCaseRequest {
            case_id: receipt.case_id.clone(),
        })
        .await
        .expect("case still there")
        .into_inner();
    assert_eq!(
        case.case.unwrap().summary.unwrap().reference,
        receipt.reference
    );
    let again = submit_hotline(&server, "durable-1").await;
    assert!(again.replayed, "the idempotency key survives too");
    let next = submit_hotline(&server, "durable-2").await;
    assert!(
        next.reference.starts_with("1480-000002-"),
        "numbering continues"
    );
    server.finish().await;
}

backend_tests!(
    a_123_intake_returns_a_receipt_and_the_case_reads_back,
    a_1480_intake_gets_a_1480_reference,
    a_retry_returns_the_original_receipt_and_writes_nothing,
    a_request_id_reused_for_another_intake_is_refused,
    twenty_concurrent_identical_intakes_create_one_case,
    concurrent_distinct_intakes_each_get_a_case_and_gapless_numbers,
    the_same_request_id_on_the_other_line_is_another_intake,
    an_acknowledged_intake_survives_a_restart,
    two_servers_on_one_database_still_record_an_intake_once,
);

/// Two server processes on one database: a retry storm split across them still creates one case.
async fn two_servers_on_one_database_still_record_an_intake_once(backend: Backend) {
    let first = TestServer::start(backend).await;
    // The first server has seeded the directory once it answers.
    first
        .cases()
        .list_cases(ListCasesRequest::default())
        .await
        .expect("first server up");
    let second = TestServer::start_on(first.db.same_database(), |_| {}).await;
    let receipts = report_concurrently(&[&first, &second], 20, |_| "shared-storm".into()).await;
    let case_ids: std::collections::HashSet<_> = receipts.iter().map(|r| &r.case_id).collect();
    assert_eq!(case_ids.len(), 1);
    assert_eq!(first.db.count("cases").await, 1);
    second.stop().await;
    first.finish().await;
}
