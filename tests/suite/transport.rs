//! The transport for mobile networks: gzip both ways, a bound on streams per connection, and
//! the retry policy the shipped `service-config.json` gives clients.

use std::time::Duration;

use tonic::codec::CompressionEncoding::Gzip;

use crate::common::fixtures::emergency;
use crate::common::{Backend, TestDb, TestServer};
use referrals::pb::emergency_intake_client::EmergencyIntakeClient;
use referrals::pb::{GetCaseRequest, WatchCasesRequest};

async fn a_gzip_request_is_accepted_and_answered_in_gzip(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut client = EmergencyIntakeClient::new(server.authed())
        .send_compressed(Gzip)
        .accept_compressed(Gzip);
    let answer = client
        .report_emergency(emergency("gzip-1"))
        .await
        .expect("a gzip request is accepted");
    assert_eq!(
        answer
            .metadata()
            .get("grpc-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip"),
        "the answer is compressed for a client that accepts gzip"
    );
    server.finish().await;
}

async fn a_connection_holds_at_most_the_configured_streams(backend: Backend) {
    let server =
        TestServer::start_on(TestDb::new(backend).await, |c| c.max_concurrent_streams = 2).await;
    // Two watches take both places on the harness's connection.
    let mut watches = Vec::new();
    for _ in 0..2 {
        watches.push(
            server
                .cases()
                .watch_cases(WatchCasesRequest::default())
                .await
                .expect("watch"),
        );
    }
    let read = || {
        let mut cases = server.cases();
        async move {
            cases
                .get_case(GetCaseRequest {
                    case_id: uuid::Uuid::now_v7().to_string(),
                })
                .await
        }
    };
    assert!(
        tokio::time::timeout(Duration::from_millis(500), read())
            .await
            .is_err(),
        "a third request on the same connection waits for a place"
    );
    // Another connection has places of its own.
    let other = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut elsewhere = referrals::pb::case_tracking_client::CaseTrackingClient::new(
        tonic::service::interceptor::InterceptedService::new(
            other,
            crate::common::Bearer::new(&crate::common::token_for(
                server.db.dir.path(),
                "supervisor-national",
                referrals::auth::Role::Supervisor,
                "all",
                None,
            )),
        ),
    );
    let status = elsewhere
        .get_case(GetCaseRequest {
            case_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    // A place freed is a place taken.
    watches.pop();
    let status = tokio::time::timeout(Duration::from_secs(5), read())
        .await
        .expect("the waiting request goes through once a stream closes")
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    drop(watches);
    server.finish().await;
}

backend_tests!(
    a_gzip_request_is_accepted_and_answered_in_gzip,
    a_connection_holds_at_most_the_configured_streams,
);

#[test]
fn the_shipped_service_config_retries_only_what_is_safe_to_retry() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/service-config.json"))
        .expect("service-config.json ships at the top");
    let config: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    // Intakes and changes carry their request_id and reads change nothing: retrying them cannot
    // make a second case or a second change. Policy and directory entries, written by an
    // administrator, are not retried by the client library.
    let safe = [
        "HotlineIntake/SubmitReferral",
        "EmergencyIntake/ReportEmergency",
        "CaseTracking/GetCase",
        "CaseTracking/ListCases",
        "CaseTracking/GetTimeline",
        "CaseTracking/GetStatistics",
        "Directory/GetPolicy",
        "Directory/ListServicePoints",
        "Directory/GetServicePoint",
        "Directory/ListTeams",
        "Directory/GetTeam",
        "Directory/ListCounties",
        "AuditTrail/ListAuditEntries",
        "CaseTracking/TransitionReferral",
        "CaseTracking/RequestAssignment",
        "CaseTracking/ChangePriority",
        "CaseTracking/CloseCase",
        "CaseTracking/ReopenCase",
        "CaseTracking/AddNote",
        "CaseTracking/ScheduleFollowUp",
        "CaseTracking/RecordFollowUp",
        "Dispatch/ReportDispatchStatus",
        "Directory/UpdateOccupancy",
        "Directory/UpdateTeamStatus",
    ];
    let mut retried = 0;
    for method_config in config["methodConfig"].as_array().expect("methodConfig") {
        let Some(policy) = method_config.get("retryPolicy") else {
            continue;
        };
        for code in policy["retryableStatusCodes"].as_array().unwrap() {
            assert!(
                ["UNAVAILABLE", "RESOURCE_EXHAUSTED"].contains(&code.as_str().unwrap()),
                "{code} is not a code to retry on"
            );
        }
        for name in method_config["name"].as_array().unwrap() {
            let service = name["service"].as_str().unwrap();
            let method = name["method"]
                .as_str()
                .expect("a retry policy names each method");
            let full = format!("{}/{method}", service.trim_start_matches("referral.v1."));
            assert!(safe.contains(&full.as_str()), "{full} is retried");
            retried += 1;
        }
    }
    assert_eq!(
        retried,
        safe.len(),
        "every safe method has the retry policy"
    );
}
