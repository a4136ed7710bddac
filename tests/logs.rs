//! No sensitive field ever reaches a log line or an error message: sentinel values planted in
//! every sensitive field go through successful and failing RPCs with every crate logging at TRACE,
//! and none of them appears in the captured output.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::fixtures::{SENTINELS, emergency, hotline, plant};
use common::{Backend, TestDb, TestServer};
use referrals::config::{LogConfig, LogFormat};
use referrals::pb::{self, GetCaseRequest, ListCasesRequest};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs, once per test binary, a subscriber that captures every event of every crate.
fn captured_logs() -> Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = Capture::default();
            let writer = capture.clone();
            let config = LogConfig {
                log_format: LogFormat::Json,
                log: "trace".into(),
            };
            referrals::telemetry::init_with_writer(&config, move || writer.clone())
                .expect("subscriber installed");
            capture
        })
        .clone()
}

fn planted_emergency(request_id: &str) -> pb::ReportEmergencyRequest {
    let mut request = emergency(request_id);
    plant(request.intake.as_mut().unwrap());
    request
}

fn assert_clean(what: &str, text: &str) {
    for sentinel in SENTINELS {
        assert!(!text.contains(sentinel), "{what} contains {sentinel}");
    }
}

async fn no_sensitive_field_reaches_the_logs(backend: Backend) {
    let logs = captured_logs();
    let server = TestServer::start_on(TestDb::new(backend).await, |c| {
        c.max_message_bytes = 16 * 1024
    })
    .await;
    let mut errors = Vec::new();

    let receipt = server
        .emergency()
        .report_emergency(planted_emergency("s-1"))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    let mut h = hotline("s-2");
    plant(h.intake.as_mut().unwrap());
    server.hotline().submit_referral(h).await.unwrap();
    // A retry, and a conflicting reuse of the request id.
    server
        .emergency()
        .report_emergency(planted_emergency("s-1"))
        .await
        .unwrap();
    let mut conflicting = planted_emergency("s-1");
    conflicting.intake.as_mut().unwrap().narrative = format!("{} again", SENTINELS[8]);
    errors.push(
        server
            .emergency()
            .report_emergency(conflicting)
            .await
            .unwrap_err(),
    );

    // Rejections whose bad fields hold the sentinels themselves.
    let mut bad = planted_emergency("s-3");
    {
        let intake = bad.intake.as_mut().unwrap();
        intake.reporter.as_mut().unwrap().anonymous = true;
        intake.reporter.as_mut().unwrap().callback_consent = false;
        intake.location.as_mut().unwrap().address = SENTINELS[5].repeat(40);
        intake.subjects[0].name = format!("{}\u{1}", SENTINELS[3]);
        intake.subjects[0].national_id = format!("{}x", SENTINELS[4]);
        intake.contact.as_mut().unwrap().caller_number = format!("{}abc", SENTINELS[0]);
        intake.narrative = SENTINELS[8].repeat(600);
    }
    errors.push(server.emergency().report_emergency(bad).await.unwrap_err());
    let mut oversized = planted_emergency("s-4");
    oversized.intake.as_mut().unwrap().narrative = SENTINELS[8].repeat(1000);
    errors.push(
        server
            .emergency()
            .report_emergency(oversized)
            .await
            .unwrap_err(),
    );

    // Reads.
    server
        .cases()
        .get_case(GetCaseRequest {
            case_id: receipt.case_id.clone(),
        })
        .await
        .unwrap();
    server
        .cases()
        .list_cases(ListCasesRequest::default())
        .await
        .unwrap();
    let refused_id = format!("logs-refused-{backend:?}");
    let mut refused = tonic::Request::new(GetCaseRequest {
        case_id: SENTINELS[3].into(),
    });
    refused
        .metadata_mut()
        .insert("x-request-id", refused_id.parse().unwrap());
    errors.push(server.cases().get_case(refused).await.unwrap_err());
    // Changes that carry free text about the person, and the feed that reports them.
    let note = pb::AddNoteRequest {
        case_id: receipt.case_id.clone(),
        text: SENTINELS[10].into(),
        expected_version: 0,
        ..Default::default()
    };
    server.cases().add_note(note.clone()).await.unwrap();
    errors.push(
        server
            .cases()
            .add_note(pb::AddNoteRequest {
                text: SENTINELS[10].repeat(1000),
                ..note
            })
            .await
            .unwrap_err(),
    );
    let follow_up = server
        .cases()
        .schedule_follow_up(pb::ScheduleFollowUpRequest {
            case_id: receipt.case_id.clone(),
            due_at: None,
            reason: "safety check".into(),
            expected_version: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    server
        .cases()
        .record_follow_up(pb::RecordFollowUpRequest {
            follow_up_id: follow_up.follow_up_id,
            outcome: SENTINELS[11].into(),
            expected_version: 0,
            ..Default::default()
        })
        .await
        .unwrap();
    let timeline = server
        .cases()
        .get_timeline(pb::GetTimelineRequest {
            case_id: receipt.case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_clean("the timeline", &format!("{timeline:?}"));
    let mut watch = server
        .cases()
        .watch_cases(pb::WatchCasesRequest {
            after_sequence: Some(0),
            ..pb::WatchCasesRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut streamed = String::new();
    for _ in 0..timeline.events.len() {
        streamed.push_str(&format!("{:?}", watch.message().await.unwrap()));
    }
    assert_clean("the watch stream", &streamed);
    drop(watch);
    server.finish().await;

    for status in &errors {
        assert_clean("an error returned to the client", &format!("{status:?}"));
    }
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        text.contains("intake recorded"),
        "the capture holds the service's logs"
    );
    assert!(
        text.contains("\"level\":\"TRACE\""),
        "the capture runs at TRACE"
    );
    assert_clean("the logs", &text);
    // A refused request is logged at WARN, the default level's, naming its method and id.
    assert!(
        text.lines().any(|line| line.contains("\"level\":\"WARN\"")
            && line.contains("/referral.v1.CaseTracking/GetCase")
            && line.contains(&refused_id)),
        "no WARN line names the refused GetCase and its request id"
    );
}

backend_tests!(no_sensitive_field_reaches_the_logs);
