//! Metrics on a listener of their own, in the Prometheus text format: they move with the
//! suite's traffic, carry no case id, and the gRPC port does not serve them.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use std::time::Duration;

use crate::common::fixtures::{child_in_danger, emergency};
use crate::common::{Backend, TestDb, TestServer};
use referrals::pb::GetCaseRequest;

/// `GET path` over HTTP/1.1 on `addr`; the whole answer as text.
async fn get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

/// The value of the series `series` (name and labels as rendered), 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

const INTAKES_OK: &str = r#"referrals_rpc_requests_total{method="/referral.v1.EmergencyIntake/ReportEmergency",code="OK"}"#;
const REFUSED_NOT_FOUND: &str = r#"referrals_refusals_total{reason="not_found"}"#;
const READS_NOT_FOUND: &str =
    r#"referrals_rpc_requests_total{method="/referral.v1.CaseTracking/GetCase",code="NOT_FOUND"}"#;

async fn metrics_move_with_the_traffic_and_name_no_case(backend: Backend) {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let server = TestServer::start_on(TestDb::new(backend).await, |c| {
        c.metrics_listen = Some(addr)
    })
    .await;
    let before = get(addr, "/metrics").await.expect("metrics are served");
    assert!(before.starts_with("HTTP/1.1 200"), "{before}");

    let receipt = server
        .emergency()
        .report_emergency(emergency("metrics-1"))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    let missing = server
        .cases()
        .get_case(GetCaseRequest {
            case_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let after = get(addr, "/metrics").await.unwrap();
    assert!(
        value(&after, INTAKES_OK) >= value(&before, INTAKES_OK) + 1.0,
        "{after}"
    );
    assert!(value(&after, READS_NOT_FOUND) >= value(&before, READS_NOT_FOUND) + 1.0);
    // The case that was not found is a refusal the edge audited, counted by its reason.
    assert!(value(&after, REFUSED_NOT_FOUND) >= value(&before, REFUSED_NOT_FOUND) + 1.0);
    // A watch being open is counted while it is.
    let watch = server
        .cases()
        .watch_cases(referrals::pb::WatchCasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    // Counted from before the stream's first message: no waiting needed.
    let open = get(addr, "/metrics").await.unwrap();
    assert!(
        value(&open, STREAMS_OPEN_CASES) >= 1.0,
        "no open stream counted:\n{open}"
    );
    drop(watch);
    for name in [
        "referrals_rpc_duration_seconds_bucket",
        "referrals_intake_batch_size_bucket",
        "referrals_intake_commit_seconds_bucket",
        "referrals_intake_queue_depth",
        "referrals_build_info{version=",
    ] {
        assert!(after.contains(name), "{name} is missing:\n{after}");
    }
    assert!(
        !after.contains(&receipt.case_id),
        "a case id is in the metrics"
    );
    // The gRPC port serves gRPC only.
    let on_grpc = get(server.addr, "/metrics").await.unwrap_or_default();
    assert!(!on_grpc.contains("referrals_rpc_requests_total"));
    server.finish().await;
}

const STREAMS_OPEN_CASES: &str = r#"referrals_streams_open{kind="watch_cases"}"#;
const LAG_COUNT_CASES: &str = r#"referrals_stream_lag_events_count{kind="watch_cases"}"#;
const ACKS_RUNNING: &str =
    r#"referrals_deadlines_open{kind="team_acknowledgement",overdue="false"}"#;
const ACKS_BREACHED: &str = r#"referrals_deadlines_breached_total{kind="team_acknowledgement"}"#;

/// Scrapes until `ready` holds (the gauges move on the deadline check's rounds).
async fn scrape_until(addr: std::net::SocketAddr, ready: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = get(addr, "/metrics").await.unwrap();
        if ready(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the metrics never got there:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The figures an operator watches beside the requests: how far streams lag, the deadlines
/// running and missed by kind, and the database pool.
async fn streams_deadlines_and_the_pool_are_measured(backend: Backend) {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let server = TestServer::seeded_with(TestDb::new(backend).await, |c| {
        c.metrics_listen = Some(addr);
        c.sla_check_interval = Duration::from_millis(50);
    })
    .await;
    let before = get(addr, "/metrics").await.unwrap();
    let mut watch = server
        .cases()
        .watch_cases(referrals::pb::WatchCasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    server
        .emergency()
        .report_emergency(child_in_danger("metrics-deadline"))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(20), watch.message())
        .await
        .unwrap()
        .unwrap();
    assert!(first.is_some(), "the case's first event reaches the watch");

    // A team was sent: its acknowledgement deadline runs.
    // The gauges move on the deadline check's rounds, which may have begun before the
    // process's recorder was installed: wait for a round that counted both.
    let running = scrape_until(addr, |text| {
        value(text, ACKS_RUNNING) >= 1.0 && value(text, "referrals_db_connections_max") >= 1.0
    })
    .await;
    assert!(
        value(&running, LAG_COUNT_CASES) >= value(&before, LAG_COUNT_CASES) + 1.0,
        "the delivered event's lag is measured:\n{running}"
    );
    assert!(
        value(&running, "referrals_db_connections_max") >= 1.0,
        "{running}"
    );
    assert!(running.contains(r#"referrals_db_connections{state="idle"}"#));
    assert!(running.contains(r#"referrals_db_connections{state="in_use"}"#));

    // The team never acknowledges: the missed deadline is counted by its kind.
    let breached_before = value(&running, ACKS_BREACHED);
    server
        .time
        .as_ref()
        .unwrap()
        .advance(chrono::TimeDelta::minutes(4));
    scrape_until(addr, |text| {
        value(text, ACKS_BREACHED) >= breached_before + 1.0
    })
    .await;
    drop(watch);
    server.finish().await;
}

backend_tests!(
    metrics_move_with_the_traffic_and_name_no_case,
    streams_deadlines_and_the_pool_are_measured,
);
