//! Every answer carries the request's id (`x-request-id`): the client's when it is a sensible
//! one, else one the server made, and the audit trail records the same id.

use crate::common::fixtures::emergency;
use crate::common::{Backend, TestServer};
use referrals::pb::GetCaseRequest;
use tonic::Code;

fn with_id<T>(message: T, id: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(id) = id {
        request
            .metadata_mut()
            .insert("x-request-id", id.parse().unwrap());
    }
    request
}

fn echoed(metadata: &tonic::metadata::MetadataMap) -> String {
    metadata
        .get("x-request-id")
        .expect("the answer carries x-request-id")
        .to_str()
        .unwrap()
        .to_owned()
}

async fn every_answer_carries_the_request_id_the_trail_records(backend: Backend) {
    let server = TestServer::start(backend).await;
    let case_id = server
        .emergency()
        .report_emergency(with_id(emergency("ids-1"), Some("intake-id-1")))
        .await
        .map(|response| {
            assert_eq!(echoed(response.metadata()), "intake-id-1");
            response.into_inner().receipt.unwrap().case_id
        })
        .expect("intake");

    // The client's own id comes back, and is the one on the trail.
    let read = server
        .cases()
        .get_case(with_id(
            GetCaseRequest {
                case_id: case_id.clone(),
            },
            Some("read-id-1"),
        ))
        .await
        .expect("read");
    assert_eq!(echoed(read.metadata()), "read-id-1");

    // Without one, the server makes one, says it, and records it.
    let read = server
        .cases()
        .get_case(with_id(
            GetCaseRequest {
                case_id: case_id.clone(),
            },
            None,
        ))
        .await
        .expect("read");
    let made = echoed(read.metadata());
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");

    // One that is not sensible (too long) is replaced, and the replacement is what is recorded.
    let too_long = "x".repeat(200);
    let read = server
        .cases()
        .get_case(with_id(GetCaseRequest { case_id }, Some(&too_long)))
        .await
        .expect("read");
    let replaced = echoed(read.metadata());
    assert_ne!(replaced, too_long);

    // A refusal carries it too.
    let refused = server
        .cases()
        .get_case(with_id(
            GetCaseRequest {
                case_id: uuid::Uuid::now_v7().to_string(),
            },
            Some("missing-id-1"),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    assert_eq!(echoed(refused.metadata()), "missing-id-1");

    for id in [
        "intake-id-1",
        "read-id-1",
        made.as_str(),
        replaced.as_str(),
        "missing-id-1",
    ] {
        assert_eq!(
            server
                .db
                .count(&format!("audit_log where request_id = '{id}'"))
                .await,
            1,
            "{id} is on the trail once"
        );
    }
    server.finish().await;
}

backend_tests!(every_answer_carries_the_request_id_the_trail_records);
