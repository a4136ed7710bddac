//! Authentication: every service but health needs a bearer token signed with the server's key
//! and not expired; anything else is UNAUTHENTICATED before a service sees the request.

use crate::common;

use std::time::Duration;

use crate::common::fixtures::{emergency, hotline};
use crate::common::{Backend, TestServer};
use referrals::auth::{Keys, Role, claims};
use referrals::pb::case_tracking_client::CaseTrackingClient;
use referrals::pb::directory_client::DirectoryClient;
use referrals::pb::dispatch_client::DispatchClient;
use referrals::pb::emergency_intake_client::EmergencyIntakeClient;
use referrals::pb::hotline_intake_client::HotlineIntakeClient;
use referrals::pb::{self};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

/// Calls one RPC of each service with `channel` and returns the codes.
async fn codes(channel: InterceptedService<Channel, common::Bearer>) -> Vec<(&'static str, Code)> {
    let code = |r: Result<(), tonic::Status>| r.err().map_or(Code::Ok, |s| s.code());
    let case_id = uuid::Uuid::now_v7().to_string();
    vec![
        (
            "SubmitReferral",
            code(
                HotlineIntakeClient::new(channel.clone())
                    .submit_referral(hotline(&uuid::Uuid::now_v7().to_string()))
                    .await
                    .map(drop),
            ),
        ),
        (
            "ReportEmergency",
            code(
                EmergencyIntakeClient::new(channel.clone())
                    .report_emergency(emergency(&uuid::Uuid::now_v7().to_string()))
                    .await
                    .map(drop),
            ),
        ),
        (
            "ListCases",
            code(
                CaseTrackingClient::new(channel.clone())
                    .list_cases(pb::ListCasesRequest::default())
                    .await
                    .map(drop),
            ),
        ),
        (
            "GetTimeline",
            code(
                CaseTrackingClient::new(channel.clone())
                    .get_timeline(pb::GetTimelineRequest { case_id })
                    .await
                    .map(drop),
            ),
        ),
        (
            "WatchCases",
            code(
                CaseTrackingClient::new(channel.clone())
                    .watch_cases(pb::WatchCasesRequest::default())
                    .await
                    .map(drop),
            ),
        ),
        (
            "StreamAssignments",
            code(
                DispatchClient::new(channel.clone())
                    .stream_assignments(pb::StreamAssignmentsRequest {
                        team_id: "thr-t1".into(),
                        after_sequence: None,
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "GetPolicy",
            code(
                DirectoryClient::new(channel.clone())
                    .get_policy(pb::GetPolicyRequest {})
                    .await
                    .map(drop),
            ),
        ),
    ]
}

async fn only_a_valid_token_of_this_server_gets_past_the_door(backend: Backend) {
    let server = TestServer::start(backend).await;
    let dir = server.db.dir.path();
    let national = |now: chrono::DateTime<chrono::Utc>, ttl| {
        claims("test", Role::Supervisor, "all", None, None, now, ttl)
    };
    let (keys, _) = Keys::load_or_create(dir).unwrap();
    let hour = Duration::from_secs(3600);
    let expired = keys
        .issue(&national(
            chrono::Utc::now() - chrono::Duration::hours(2),
            hour,
        ))
        .unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let (foreign_keys, _) = Keys::load_or_create(other_dir.path()).unwrap();
    let foreign = foreign_keys
        .issue(&national(chrono::Utc::now(), hour))
        .unwrap();
    let valid = keys.issue(&national(chrono::Utc::now(), hour)).unwrap();

    let mut missing = Vec::new();
    {
        // No header at all.
        let channel = server.channel();
        let code = |r: Result<(), tonic::Status>| r.err().map_or(Code::Ok, |s| s.code());
        missing.push(code(
            HotlineIntakeClient::new(channel.clone())
                .submit_referral(hotline("no-token"))
                .await
                .map(drop),
        ));
        missing.push(code(
            CaseTrackingClient::new(channel)
                .list_cases(pb::ListCasesRequest::default())
                .await
                .map(drop),
        ));
    }
    assert_eq!(missing, [Code::Unauthenticated, Code::Unauthenticated]);

    // (token, expected code of every RPC, row)
    let table = [
        ("not-a-jwt", Code::Unauthenticated, "malformed"),
        (expired.as_str(), Code::Unauthenticated, "expired"),
        (
            foreign.as_str(),
            Code::Unauthenticated,
            "signed by another key",
        ),
    ];
    for (token, expected, row) in table {
        for (rpc, code) in codes(server.with_token(token)).await {
            assert_eq!(code, expected, "{row}: {rpc}");
        }
    }
    for (rpc, code) in codes(server.with_token(&valid)).await {
        assert_ne!(code, Code::Unauthenticated, "a valid token: {rpc}");
    }
    assert_eq!(
        server.db.count("cases").await,
        2,
        "only the valid token's intakes were recorded"
    );

    // Health answers anyone: load balancers hold no token.
    let health = HealthClient::new(server.channel())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(health.is_ok(), "{health:?}");
    server.finish().await;
}

async fn each_caller_is_held_to_its_own_rate(backend: Backend) {
    let server = TestServer::start_on(common::TestDb::new(backend).await, |c| {
        c.rate_limit = 1;
        c.rate_burst = 3;
    })
    .await;
    let dir = server.db.dir.path();
    let (keys, _) = Keys::load_or_create(dir).unwrap();
    let token = |subject: &str| {
        let claims = claims(
            subject,
            Role::Operator,
            "IR-23",
            None,
            None,
            chrono::Utc::now(),
            Duration::from_secs(3600),
        );
        keys.issue(&claims).unwrap()
    };
    let list = |token: String| {
        let channel = server.with_token(&token);
        async move {
            CaseTrackingClient::new(channel)
                .list_cases(pb::ListCasesRequest::default())
                .await
                .err()
                .map_or(Code::Ok, |s| s.code())
        }
    };
    let mut busy = Vec::new();
    for _ in 0..4 {
        busy.push(list(token("op-busy")).await);
    }
    assert_eq!(
        busy,
        [Code::Ok, Code::Ok, Code::Ok, Code::ResourceExhausted],
        "a burst of 3, then refused"
    );
    // The refusal says when to retry, in google.rpc.RetryInfo as well as in words.
    let refused = CaseTrackingClient::new(server.with_token(&token("op-busy")))
        .list_cases(pb::ListCasesRequest::default())
        .await
        .unwrap_err();
    let delay = refused
        .get_error_details()
        .retry_info()
        .and_then(|info| info.retry_delay)
        .expect("RetryInfo with a delay");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(2),
        "{delay:?}"
    );
    // Another operator behind the same address is not held back by the first.
    assert_eq!(list(token("op-other")).await, Code::Ok);
    server.finish().await;
}

backend_tests!(
    only_a_valid_token_of_this_server_gets_past_the_door,
    each_caller_is_held_to_its_own_rate,
);
