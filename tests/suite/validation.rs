//! Bad input: every bad field is named in `google.rpc.BadRequest`, and nothing is written.

use crate::common;

use crate::common::fixtures::{emergency, timestamp};
use crate::common::{Backend, TestServer};
use referrals::pb::{self, ReportEmergencyRequest, subject};
use tonic::Code;
use tonic_types::StatusExt;

type Change = Box<dyn Fn(&mut ReportEmergencyRequest)>;

fn change(f: impl Fn(&mut ReportEmergencyRequest) + 'static) -> Change {
    Box::new(f)
}

fn intake(r: &mut ReportEmergencyRequest) -> &mut pb::Intake {
    r.intake.as_mut().unwrap()
}

/// Each row: what is wrong, how the request is spoiled, and the fields the answer must name.
fn bad_requests() -> Vec<(&'static str, Change, Vec<&'static str>)> {
    vec![
        (
            "an empty request id",
            change(|r| r.request_id.clear()),
            vec!["request_id"],
        ),
        (
            "a request id with a space",
            change(|r| r.request_id = "a b".into()),
            vec!["request_id"],
        ),
        (
            "a request id over 128 characters",
            change(|r| r.request_id = "x".repeat(129)),
            vec!["request_id"],
        ),
        ("no intake", change(|r| r.intake = None), vec!["intake"]),
        (
            "an unspecified action",
            change(|r| r.action = 0),
            vec!["action"],
        ),
        (
            "an unknown action number",
            change(|r| r.action = 99),
            vec!["action"],
        ),
        (
            "no contact",
            change(|r| intake(r).contact = None),
            vec!["intake.contact"],
        ),
        (
            "a pre-2020 province code",
            change(|r| intake(r).contact.as_mut().unwrap().answering_province = "IR-32".into()),
            vec!["intake.contact.answering_province"],
        ),
        (
            "an unspecified channel",
            change(|r| intake(r).contact.as_mut().unwrap().channel = 0),
            vec!["intake.contact.channel"],
        ),
        (
            "no start time",
            change(|r| intake(r).contact.as_mut().unwrap().started_at = None),
            vec!["intake.contact.started_at"],
        ),
        (
            "a start time an hour ahead",
            change(|r| {
                let soon = chrono::Utc::now().timestamp() + 3600;
                intake(r).contact.as_mut().unwrap().started_at = Some(timestamp(soon));
                intake(r).contact.as_mut().unwrap().answered_at = None;
                intake(r).contact.as_mut().unwrap().ended_at = None;
            }),
            vec!["intake.contact.started_at"],
        ),
        (
            "an end before the start",
            change(|r| intake(r).contact.as_mut().unwrap().ended_at = Some(timestamp(0))),
            vec!["intake.contact.ended_at"],
        ),
        (
            "a timestamp with negative nanos",
            change(|r| {
                intake(r).contact.as_mut().unwrap().answered_at = Some(prost_types::Timestamp {
                    seconds: 1,
                    nanos: -1,
                })
            }),
            vec!["intake.contact.answered_at"],
        ),
        (
            "a caller number with letters",
            change(|r| intake(r).contact.as_mut().unwrap().caller_number = "0912abc".into()),
            vec!["intake.contact.caller_number"],
        ),
        (
            "an anonymous reporter with a name",
            change(|r| intake(r).reporter.as_mut().unwrap().anonymous = true),
            vec!["intake.reporter.name"],
        ),
        (
            "a callback number without consent",
            change(|r| intake(r).reporter.as_mut().unwrap().callback_consent = false),
            vec!["intake.reporter.callback_number"],
        ),
        (
            "an unknown relationship",
            change(|r| intake(r).reporter.as_mut().unwrap().relationship = 42),
            vec!["intake.reporter.relationship"],
        ),
        (
            "no subjects",
            change(|r| intake(r).subjects.clear()),
            vec!["intake.subjects"],
        ),
        (
            "21 subjects",
            change(|r| {
                let one = intake(r).subjects[0].clone();
                intake(r).subjects = vec![one; 21];
            }),
            vec!["intake.subjects"],
        ),
        (
            "a subject without an age",
            change(|r| intake(r).subjects[0].age = None),
            vec!["intake.subjects[0].age"],
        ),
        (
            "an age of 130",
            change(|r| intake(r).subjects[0].age = Some(subject::Age::AgeYears(130))),
            vec!["intake.subjects[0].age_years"],
        ),
        (
            "a 30-year-old marked as a minor",
            change(|r| intake(r).subjects[0].age = Some(subject::Age::AgeYears(30))),
            vec!["intake.subjects[0].minor"],
        ),
        (
            "an unspecified sex on the second subject",
            change(|r| {
                let mut second = intake(r).subjects[0].clone();
                second.sex = 0;
                intake(r).subjects.push(second);
            }),
            vec!["intake.subjects[1].sex"],
        ),
        (
            "a national id with letters",
            change(|r| intake(r).subjects[0].national_id = "00123X".into()),
            vec!["intake.subjects[0].national_id"],
        ),
        (
            "no location",
            change(|r| intake(r).location = None),
            vec!["intake.location"],
        ),
        (
            "an empty province",
            change(|r| intake(r).location.as_mut().unwrap().province.clear()),
            vec!["intake.location.province"],
        ),
        (
            "an empty county",
            change(|r| intake(r).location.as_mut().unwrap().county = "  ".into()),
            vec!["intake.location.county"],
        ),
        (
            "a county with a control character",
            change(|r| intake(r).location.as_mut().unwrap().county = "Teh\u{7}ran".into()),
            vec!["intake.location.county"],
        ),
        (
            "a latitude of 91",
            change(|r| {
                intake(r)
                    .location
                    .as_mut()
                    .unwrap()
                    .coordinates
                    .as_mut()
                    .unwrap()
                    .latitude = 91.0
            }),
            vec!["intake.location.coordinates.latitude"],
        ),
        (
            "an address of 501 characters",
            change(|r| intake(r).location.as_mut().unwrap().address = "a".repeat(501)),
            vec!["intake.location.address"],
        ),
        (
            "a narrative of 8001 characters",
            change(|r| intake(r).narrative = "ن".repeat(8001)),
            vec!["intake.narrative"],
        ),
        (
            "an unspecified primary category",
            change(|r| intake(r).primary_category = 0),
            vec!["intake.primary_category"],
        ),
        (
            "a secondary category repeating the primary",
            change(|r| {
                intake(r).secondary_categories = vec![pb::Category::ChildAbusePhysical as i32]
            }),
            vec!["intake.secondary_categories[0]"],
        ),
        (
            "a repeated secondary category",
            change(|r| {
                intake(r).secondary_categories = vec![
                    pb::Category::ChildNeglect as i32,
                    pb::Category::ChildNeglect as i32,
                ]
            }),
            vec!["intake.secondary_categories[1]"],
        ),
        (
            "an unknown secondary category",
            change(|r| intake(r).secondary_categories = vec![999]),
            vec!["intake.secondary_categories[0]"],
        ),
        (
            "no risk facts",
            change(|r| intake(r).risk = None),
            vec!["intake.risk"],
        ),
        (
            "an unanswered screening question",
            change(|r| {
                intake(r)
                    .risk
                    .as_mut()
                    .unwrap()
                    .suicide_screening
                    .as_mut()
                    .unwrap()
                    .plan = 0
            }),
            vec!["intake.risk.suicide_screening.plan"],
        ),
        (
            "an unspecified recency",
            change(|r| intake(r).risk.as_mut().unwrap().recency = 0),
            vec!["intake.risk.recency"],
        ),
        (
            "a lowered priority without a reason",
            change(|r| intake(r).priority_override = Some(pb::Priority::P4OutsideMandate as i32)),
            vec!["intake.priority_override_reason"],
        ),
        (
            "an unspecified priority override",
            change(|r| intake(r).priority_override = Some(0)),
            vec!["intake.priority_override"],
        ),
        (
            "an override reason without an override",
            change(|r| intake(r).priority_override_reason = "because".into()),
            vec!["intake.priority_override_reason"],
        ),
        (
            "several bad fields at once",
            change(|r| {
                r.request_id.clear();
                r.action = 0;
                intake(r).location.as_mut().unwrap().county.clear();
                intake(r).subjects[0].sex = 0;
            }),
            vec![
                "request_id",
                "intake.subjects[0].sex",
                "intake.location.county",
                "action",
            ],
        ),
    ]
}

async fn every_bad_field_is_named_and_nothing_is_written(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut client = server.emergency();
    for (what, spoil, fields) in bad_requests() {
        let mut request = emergency("bad-1");
        spoil(&mut request);
        let status = client.report_emergency(request).await.expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        let details = status.get_error_details();
        let named: Vec<&str> = details
            .bad_request()
            .unwrap_or_else(|| panic!("{what}: no BadRequest details"))
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(named, fields, "{what}");
        for field in fields {
            assert!(
                status.message().contains(field),
                "{what}: message names {field}"
            );
        }
    }
    assert_eq!(server.db.count("cases").await, 0);
    assert_eq!(server.db.count("events").await, 0);
    assert_eq!(server.db.count("idempotency_keys").await, 0);

    // The same request id still works once the request is right: a rejection leaves no key.
    client
        .report_emergency(emergency("bad-1"))
        .await
        .expect("the corrected request is accepted");
    server.finish().await;
}

async fn limits_are_stated_in_the_violation(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut request = emergency("limits-1");
    let one = request.intake.as_ref().unwrap().subjects[0].clone();
    request.intake.as_mut().unwrap().subjects = vec![one; 21];
    let status = server
        .emergency()
        .report_emergency(request)
        .await
        .unwrap_err();
    let details = status.get_error_details();
    let violation = &details.bad_request().unwrap().field_violations[0];
    assert_eq!(violation.description, "has more than 20 subjects");
    server.finish().await;
}

async fn a_message_over_the_size_limit_is_refused(backend: Backend) {
    let db = common::TestDb::new(backend).await;
    let server = TestServer::start_on(db, |config| config.max_message_bytes = 4096).await;
    let mut request = emergency("big-1");
    request.intake.as_mut().unwrap().narrative = "x".repeat(6000);
    let status = server
        .emergency()
        .report_emergency(request)
        .await
        .unwrap_err();
    // tonic refuses an over-long message before decoding it, with OUT_OF_RANGE.
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains("the limit is: 4096 bytes"),
        "{status:?}"
    );
    assert_eq!(server.db.count("cases").await, 0);

    // A request under the limit still goes through.
    server
        .emergency()
        .report_emergency(emergency("small-1"))
        .await
        .expect("a small request is accepted");
    server.finish().await;
}

async fn a_blank_caller_number_is_a_withheld_one(backend: Backend) {
    let server = TestServer::start(backend).await;
    // What phone systems send for a withheld number: the intake is recorded without one.
    for (n, blank) in [" ", "\t", " \t  "].into_iter().enumerate() {
        let mut request = emergency(&format!("withheld-{n}"));
        intake(&mut request).contact.as_mut().unwrap().caller_number = blank.into();
        intake(&mut request)
            .reporter
            .as_mut()
            .unwrap()
            .callback_number = blank.into();
        let receipt = server
            .emergency()
            .report_emergency(request)
            .await
            .unwrap_or_else(|status| panic!("caller number {blank:?}: {status:?}"))
            .into_inner()
            .receipt
            .unwrap();
        let case = server
            .cases()
            .get_case(pb::GetCaseRequest {
                case_id: receipt.case_id,
            })
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap();
        let intake = case.intake.unwrap();
        assert_eq!(intake.contact.unwrap().caller_number, "");
        assert_eq!(intake.reporter.unwrap().callback_number, "");
    }
    server.finish().await;
}

async fn a_request_breaking_every_rule_gets_a_short_answer(backend: Backend) {
    let server = TestServer::start(backend).await;
    // Twenty subjects with nothing filled in, and every other field spoiled: hundreds of rules
    // broken by a small request.
    let mut request = emergency("");
    {
        let intake = intake(&mut request);
        intake.subjects = vec![pb::Subject::default(); 20];
        intake.contact = Some(pb::Contact::default());
        intake.reporter = Some(pb::Reporter::default());
        intake.risk = Some(pb::RiskFacts::default());
        intake.primary_category = 0;
        intake.secondary_categories = vec![-1; 10];
    }
    let status = server
        .emergency()
        .report_emergency(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let listed = status
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .len();
    assert_eq!(listed, 20, "{status:?}");
    assert!(
        status.message().contains("more, not listed"),
        "the message says how many were left out: {}",
        status.message()
    );
    let size = status.message().len() + status.details().len();
    assert!(size < 8 * 1024, "message and details take {size} bytes");
    assert_eq!(server.db.count("cases").await, 0);
    server.finish().await;
}

backend_tests!(
    every_bad_field_is_named_and_nothing_is_written,
    limits_are_stated_in_the_violation,
    a_message_over_the_size_limit_is_refused,
    a_blank_caller_number_is_a_withheld_one,
    a_request_breaking_every_rule_gets_a_short_answer,
    a_silent_call_is_recorded_with_its_contact_and_category_alone,
    unknown_is_a_value_and_minor_is_required_when_the_age_does_not_say,
);

/// A 123 call with its contact and a category, and nothing else.
fn minimal(request_id: &str, category: pb::Category) -> ReportEmergencyRequest {
    referrals::sample::Sample::child(common::fixtures::CALL_TIME)
        .minimal(category)
        .emergency(request_id, pb::EmergencyAction::ResolvedByPhone)
}

async fn a_silent_call_is_recorded_with_its_contact_and_category_alone(backend: Backend) {
    let server = TestServer::start(backend).await;
    for (n, category) in [
        pb::Category::NuisanceOrSilent,
        pb::Category::InformationOnly,
    ]
    .into_iter()
    .enumerate()
    {
        let receipt = server
            .emergency()
            .report_emergency(minimal(&format!("minimal-{n}"), category))
            .await
            .unwrap_or_else(|e| panic!("{category:?}: {e:?}"))
            .into_inner()
            .receipt
            .unwrap();
        assert_eq!(receipt.priority(), pb::Priority::P4OutsideMandate);
        assert!(receipt.routing.unwrap().assignments.is_empty());
        let case = server.case(&receipt.case_id).await;
        let intake = case.intake.unwrap();
        assert!(intake.subjects.is_empty());
        let reporter = intake.reporter.unwrap();
        assert_eq!(reporter.relationship(), pb::Relationship::Unknown);
        assert!(reporter.anonymous);
        let location = intake.location.unwrap();
        assert_eq!(
            location.province, "IR-23",
            "the answering centre's province"
        );
        assert!(location.county_unknown);
        assert_eq!(intake.risk.unwrap().recency(), pb::Recency::Unknown);
    }
    // Anything more than a minimal call still needs all of it.
    let mut with_secondary = minimal("minimal-secondary", pb::Category::InformationOnly);
    intake(&mut with_secondary).secondary_categories =
        vec![pb::Category::ChildAbusePhysical as i32];
    let mut child_abuse = minimal("minimal-child", pb::Category::ChildAbusePhysical);
    child_abuse.action = pb::EmergencyAction::MobileTeam as i32;
    let mut no_contact = minimal("minimal-no-contact", pb::Category::NuisanceOrSilent);
    intake(&mut no_contact).contact = None;
    for (request, fields) in [
        (
            with_secondary,
            &[
                "intake.reporter",
                "intake.subjects",
                "intake.location",
                "intake.risk",
            ][..],
        ),
        (
            child_abuse,
            &[
                "intake.reporter",
                "intake.subjects",
                "intake.location",
                "intake.risk",
            ][..],
        ),
        (no_contact, &["intake.contact"][..]),
    ] {
        let status = server
            .emergency()
            .report_emergency(request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        let named: Vec<String> = status
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect();
        assert_eq!(named, fields);
    }
    assert_eq!(server.db.count("cases").await, 2);
    server.finish().await;
}

async fn unknown_is_a_value_and_minor_is_required_when_the_age_does_not_say(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut unknown = emergency("disability-unknown");
    intake(&mut unknown).subjects[0].disability = pb::Disability::Unknown as i32;
    server
        .emergency()
        .report_emergency(unknown)
        .await
        .expect("an unknown disability is a value");

    let age_unknown = |id: &str, minor: Option<bool>| {
        let mut request = emergency(id);
        let subject = &mut intake(&mut request).subjects[0];
        subject.age = Some(subject::Age::AgeBand(pb::AgeBand::Unknown as i32));
        subject.minor = minor;
        request
    };
    let status = server
        .emergency()
        .report_emergency(age_unknown("minor-omitted", None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let violation = status
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations[0]
        .clone();
    assert_eq!(violation.field, "intake.subjects[0].minor");
    assert!(
        violation.description.contains("is required"),
        "{violation:?}"
    );
    server
        .emergency()
        .report_emergency(age_unknown("minor-given", Some(true)))
        .await
        .expect("minor given with an unknown age");
    server.finish().await;
}
