//! Bad bytes are the client's fault, whatever they are: every method of every service, unary and
//! streaming, gets random bodies and mutated valid ones (bit flips, truncation, wrong wire
//! types, other field numbers, invalid UTF-8, deep nesting), seeded and bounded; only the codes
//! a client can act on come back, never INTERNAL or UNKNOWN, and the server stays SERVING. A
//! request that does not decode is INVALID_ARGUMENT, and is on the audit trail as the caller's
//! refused operation.

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};
use prost::Message;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::common::fixtures::{emergency, hotline};
use crate::common::rng::Rng;
use crate::common::{Authed, Backend, TestServer};
use referrals::pb;

/// Every method of the service's own, with whether it streams its answer.
const METHODS: &[(&str, bool)] = &[
    ("/referral.v1.HotlineIntake/SubmitReferral", false),
    ("/referral.v1.EmergencyIntake/ReportEmergency", false),
    ("/referral.v1.CaseTracking/GetCase", false),
    ("/referral.v1.CaseTracking/ListCases", false),
    ("/referral.v1.CaseTracking/GetTimeline", false),
    ("/referral.v1.CaseTracking/WatchCases", true),
    ("/referral.v1.CaseTracking/TransitionReferral", false),
    ("/referral.v1.CaseTracking/ChangePriority", false),
    ("/referral.v1.CaseTracking/CloseCase", false),
    ("/referral.v1.CaseTracking/ReopenCase", false),
    ("/referral.v1.CaseTracking/AddNote", false),
    ("/referral.v1.CaseTracking/ScheduleFollowUp", false),
    ("/referral.v1.CaseTracking/RecordFollowUp", false),
    ("/referral.v1.CaseTracking/RequestAssignment", false),
    ("/referral.v1.CaseTracking/GetStatistics", false),
    ("/referral.v1.Dispatch/ReportDispatchStatus", false),
    ("/referral.v1.Dispatch/StreamAssignments", true),
    ("/referral.v1.Directory/GetPolicy", false),
    ("/referral.v1.Directory/ReplacePolicy", false),
    ("/referral.v1.Directory/ListServicePoints", false),
    ("/referral.v1.Directory/GetServicePoint", false),
    ("/referral.v1.Directory/UpdateOccupancy", false),
    ("/referral.v1.Directory/ListTeams", false),
    ("/referral.v1.Directory/GetTeam", false),
    ("/referral.v1.Directory/UpdateTeamStatus", false),
    ("/referral.v1.Directory/ListCounties", false),
    ("/referral.v1.Directory/UpsertCounty", false),
    ("/referral.v1.Directory/UpsertServicePoint", false),
    ("/referral.v1.Directory/UpsertTeam", false),
    ("/referral.v1.AuditTrail/ListAuditEntries", false),
];

/// The codes a client can act on; anything else (INTERNAL, UNKNOWN, …) is a server fault.
const ACCEPTABLE: &[Code] = &[
    Code::Ok,
    Code::InvalidArgument,
    Code::OutOfRange,
    Code::NotFound,
    Code::FailedPrecondition,
    Code::AlreadyExists,
    Code::Aborted,
    Code::PermissionDenied,
    Code::Unauthenticated,
];

/// Sends bytes as they are and reads none back: the request's body is whatever the test made.
#[derive(Clone, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = ();
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        buf.advance(buf.remaining());
        Ok(Some(()))
    }
}

/// A valid body to mutate: a full intake for the intake methods, a small request elsewhere.
fn valid_body(path: &str) -> Vec<u8> {
    if path.ends_with("SubmitReferral") {
        hotline("bytes-valid").encode_to_vec()
    } else if path.ends_with("ReportEmergency") {
        emergency("bytes-valid").encode_to_vec()
    } else {
        pb::GetCaseRequest {
            case_id: uuid::Uuid::now_v7().to_string(),
        }
        .encode_to_vec()
    }
}

/// One bad body: random bytes, or a valid body spoiled one way.
fn bad_body(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut body = valid.to_vec();
    match rng.below(8) {
        0 => {
            let n = rng.below(64) + 1;
            rng.bytes(n)
        }
        1 => {
            // Flip a few bits.
            for _ in 0..=rng.below(4) {
                let at = rng.below(body.len());
                body[at] ^= 1 << rng.below(8);
            }
            body
        }
        2 => {
            // Cut it short.
            body.truncate(rng.below(body.len()));
            body
        }
        3 => {
            // Field 1 as a fixed 32-bit value (wire type 5), where a string or message stands.
            let mut spoiled = vec![0x0d, 1, 2, 3, 4];
            spoiled.extend_from_slice(&body);
            spoiled
        }
        4 => {
            // Field 1 as a length-delimited value that is not UTF-8.
            let mut spoiled = vec![0x0a, 3, 0xff, 0xfe, 0xc3];
            spoiled.extend_from_slice(&body);
            spoiled
        }
        5 => {
            // A length running past the end.
            vec![0x0a, 0x7f, b'x']
        }
        6 => {
            // Nesting deeper than any decoder should follow.
            let mut nested = Vec::new();
            for _ in 0..200 {
                let mut outer = vec![0x0a];
                prost::encoding::encode_varint(nested.len() as u64, &mut outer);
                outer.extend_from_slice(&nested);
                nested = outer;
            }
            nested
        }
        _ => {
            // A field number renumbered, with its wire type kept.
            if let Some(first) = body.first_mut() {
                *first = (*first & 0x07) | (((rng.below(15) as u8) + 1) << 3);
            }
            body
        }
    }
}

async fn send(
    grpc: &mut tonic::client::Grpc<Authed>,
    path: &'static str,
    streaming: bool,
    body: Vec<u8>,
    request_id: &str,
) -> Code {
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(body);
    request
        .metadata_mut()
        .insert("x-request-id", request_id.parse().unwrap());
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    let answer = if streaming {
        // A stream that starts is dropped at once; only how it starts matters here.
        grpc.server_streaming(request, path, RawCodec)
            .await
            .map(drop)
    } else {
        grpc.unary(request, path, RawCodec).await.map(drop)
    };
    match answer {
        Ok(()) => Code::Ok,
        Err(status) => status.code(),
    }
}

async fn bad_bytes_get_answers_a_client_can_act_on(backend: Backend) {
    let db = crate::common::TestDb::new(backend).await;
    let server = TestServer::seeded_with(db, |config| {
        // Hundreds of requests from one caller: its rate limit is not what is tested.
        config.rate_limit = 100_000;
        config.rate_burst = 100_000;
    })
    .await;
    let mut grpc = tonic::client::Grpc::new(server.authed());
    let mut rng = Rng(0x0bad_b17e5);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0;
    for (path, streaming) in METHODS {
        let valid = valid_body(path);
        for round in 0..12 {
            if Instant::now() > deadline {
                break;
            }
            let body = bad_body(&mut rng, &valid);
            let shown = format!("{:02x?}", &body[..body.len().min(24)]);
            let code = send(&mut grpc, path, *streaming, body, &format!("bytes-{round}")).await;
            assert!(
                ACCEPTABLE.contains(&code),
                "{path} answered {code:?} to {shown}…"
            );
            sent += 1;
        }
    }
    assert!(
        sent >= METHODS.len() * 6,
        "only {sent} bad requests were sent"
    );

    let health = tonic_health::pb::health_client::HealthClient::new(server.channel())
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health answers")
        .into_inner();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    server.finish().await;
}

async fn an_undecodable_request_is_invalid_argument_and_audited(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut grpc = tonic::client::Grpc::new(server.authed());
    // A case id that is not UTF-8.
    let body = vec![0x0a, 3, 0xff, 0xfe, 0xc3];
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(body);
    request
        .metadata_mut()
        .insert("x-request-id", "undecodable-1".parse().unwrap());
    let status = grpc
        .unary(
            request,
            tonic::codegen::http::uri::PathAndQuery::from_static(
                "/referral.v1.CaseTracking/GetCase",
            ),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains("the request is not a valid message of this method"),
        "{status:?}"
    );
    assert_eq!(
        server
            .db
            .count(
                "audit_log where request_id = 'undecodable-1' and action = 'read_case' \
                 and outcome = 'invalid_argument' and subject = 'supervisor-national'"
            )
            .await,
        1,
        "the refusal is on the trail"
    );

    // Without a token, the door answers first and nothing is decoded.
    let mut anonymous = tonic::client::Grpc::new(server.channel());
    anonymous.ready().await.unwrap();
    let status = anonymous
        .unary(
            tonic::Request::new(vec![0x0a, 3, 0xff, 0xfe, 0xc3]),
            tonic::codegen::http::uri::PathAndQuery::from_static(
                "/referral.v1.CaseTracking/GetCase",
            ),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    server.finish().await;
}

backend_tests!(
    bad_bytes_get_answers_a_client_can_act_on,
    an_undecodable_request_is_invalid_argument_and_audited,
);
