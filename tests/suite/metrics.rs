//! Metrics on a listener of their own, in the Prometheus text format: they move with the
//! suite's traffic, carry no case id, and the gRPC port does not serve them.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::fixtures::emergency;
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
        value(&open, "referrals_streams_open") >= 1.0,
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

backend_tests!(metrics_move_with_the_traffic_and_name_no_case);
