//! Listing cases: every filter, stable cursor pagination, bounded pages.

use crate::common;

use std::collections::BTreeSet;

use crate::common::fixtures::{emergency, hotline};
use crate::common::{Backend, TestServer};
use referrals::pb::{self, CaseStatus, Category, Line, ListCasesRequest, Priority};
use tonic::Code;
use tonic_types::StatusExt;

/// Records a mixed set of cases and returns their ids by what sets them apart.
struct Seeded {
    tehran_123: Vec<String>,
    ardabil_123: Vec<String>,
    hotline: Vec<String>,
}

async fn seed(server: &TestServer) -> Seeded {
    let mut tehran_123 = Vec::new();
    let mut ardabil_123 = Vec::new();
    let mut hotline_ids = Vec::new();
    for i in 0..3 {
        let r = server
            .emergency()
            .report_emergency(emergency(&format!("t-{i}")))
            .await
            .unwrap();
        tehran_123.push(r.into_inner().receipt.unwrap().case_id);
    }
    for i in 0..2 {
        let mut request = emergency(&format!("a-{i}"));
        let intake = request.intake.as_mut().unwrap();
        let location = intake.location.as_mut().unwrap();
        location.province = "IR-24".into();
        location.county = if i == 0 {
            "Ardabil"
        } else {
            "مشگین شهر"
        }
        .into();
        intake.risk.as_mut().unwrap().violence_ongoing = true;
        intake.primary_category = Category::SpouseAbuse as i32;
        intake.secondary_categories = vec![Category::AcuteFamilyConflict as i32];
        intake.subjects[0].age = Some(pb::subject::Age::AgeYears(32));
        intake.subjects[0].minor = None;
        let r = server.emergency().report_emergency(request).await.unwrap();
        ardabil_123.push(r.into_inner().receipt.unwrap().case_id);
    }
    for i in 0..2 {
        let r = server
            .hotline()
            .submit_referral(hotline(&format!("h-{i}")))
            .await
            .unwrap();
        hotline_ids.push(r.into_inner().receipt.unwrap().case_id);
    }
    Seeded {
        tehran_123,
        ardabil_123,
        hotline: hotline_ids,
    }
}

async fn list(server: &TestServer, request: ListCasesRequest) -> BTreeSet<String> {
    let response = server
        .cases()
        .list_cases(request)
        .await
        .expect("list")
        .into_inner();
    assert!(response.next_page_token.is_empty());
    response.cases.into_iter().map(|c| c.case_id).collect()
}

fn ids<'a>(groups: impl IntoIterator<Item = &'a Vec<String>>) -> BTreeSet<String> {
    groups.into_iter().flatten().cloned().collect()
}

async fn each_filter_selects_exactly_its_cases(backend: Backend) {
    let server = TestServer::start(backend).await;
    let s = seed(&server).await;
    let all = ids([&s.tehran_123, &s.ardabil_123, &s.hotline]);

    assert_eq!(list(&server, ListCasesRequest::default()).await, all);
    let rows: Vec<(&str, ListCasesRequest, BTreeSet<String>)> = vec![
        (
            "line 1480",
            ListCasesRequest {
                line: Some(Line::Hotline1480 as i32),
                ..Default::default()
            },
            ids([&s.hotline]),
        ),
        (
            "line 123",
            ListCasesRequest {
                line: Some(Line::Emergency123 as i32),
                ..Default::default()
            },
            ids([&s.tehran_123, &s.ardabil_123]),
        ),
        (
            "priority P1 (violence going on)",
            ListCasesRequest {
                priority: Some(Priority::P1Urgent as i32),
                ..Default::default()
            },
            ids([&s.ardabil_123]),
        ),
        (
            "primary category",
            ListCasesRequest {
                category: Some(Category::SpouseAbuse as i32),
                ..Default::default()
            },
            ids([&s.ardabil_123]),
        ),
        (
            "secondary category",
            ListCasesRequest {
                category: Some(Category::ChildNeglect as i32),
                ..Default::default()
            },
            ids([&s.tehran_123]),
        ),
        (
            "province",
            ListCasesRequest {
                province: "IR-24".into(),
                ..Default::default()
            },
            ids([&s.ardabil_123]),
        ),
        (
            "province and county",
            ListCasesRequest {
                province: "IR-24".into(),
                county: "مشگین‌شهر".into(),
                ..Default::default()
            },
            [s.ardabil_123[1].clone()].into(),
        ),
        (
            "status open",
            ListCasesRequest {
                status: Some(CaseStatus::Open as i32),
                ..Default::default()
            },
            all.clone(),
        ),
        (
            "status closed",
            ListCasesRequest {
                status: Some(CaseStatus::Closed as i32),
                ..Default::default()
            },
            BTreeSet::new(),
        ),
        (
            "line and province together",
            ListCasesRequest {
                line: Some(Line::Emergency123 as i32),
                province: "IR-23".into(),
                ..Default::default()
            },
            ids([&s.tehran_123]),
        ),
    ];
    for (what, request, expected) in rows {
        assert_eq!(list(&server, request).await, expected, "{what}");
    }
    server.finish().await;
}

async fn the_created_time_range_is_inclusive_from_and_exclusive_before(backend: Backend) {
    let server = TestServer::start(backend).await;
    seed(&server).await;
    let page = server
        .cases()
        .list_cases(ListCasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.cases.len(), 7);
    // Newest first: the fourth-newest case's creation time splits the list in two.
    let boundary = page.cases[3].created_at;
    let newer: BTreeSet<String> = page.cases[..4].iter().map(|c| c.case_id.clone()).collect();
    let older: BTreeSet<String> = page.cases[4..].iter().map(|c| c.case_id.clone()).collect();

    let from = ListCasesRequest {
        created_from: boundary,
        ..Default::default()
    };
    assert_eq!(
        list(&server, from).await,
        newer,
        "created_from is inclusive"
    );
    let before = ListCasesRequest {
        created_before: boundary,
        ..Default::default()
    };
    assert_eq!(
        list(&server, before).await,
        older,
        "created_before is exclusive"
    );
    let both = ListCasesRequest {
        created_from: page.cases[5].created_at,
        created_before: boundary,
        ..Default::default()
    };
    let middle: BTreeSet<String> = page.cases[4..6].iter().map(|c| c.case_id.clone()).collect();
    assert_eq!(list(&server, both).await, middle);
    server.finish().await;
}

async fn pages_walk_every_case_once_newest_first_while_new_cases_arrive(backend: Backend) {
    let server = TestServer::start(backend).await;
    let s = seed(&server).await;
    let all = ids([&s.tehran_123, &s.ardabil_123, &s.hotline]);

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let request = ListCasesRequest {
            page_size: 3,
            page_token: token.clone(),
            ..Default::default()
        };
        let page = server
            .cases()
            .list_cases(request)
            .await
            .unwrap()
            .into_inner();
        assert!(page.cases.len() <= 3);
        seen.extend(page.cases.into_iter().map(|c| {
            let at = c.created_at.unwrap();
            (at.seconds, at.nanos, c.case_id)
        }));
        pages += 1;
        // A case recorded mid-walk is newer than every page, so it never shifts the walk.
        server
            .hotline()
            .submit_referral(hotline(&format!("late-{pages}")))
            .await
            .unwrap();
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first by creation time, then id");
    let seen: Vec<String> = seen.into_iter().map(|(_, _, id)| id).collect();
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), all);
    assert_eq!(seen.len(), all.len(), "no case twice");
    server.finish().await;
}

async fn bad_list_requests_are_refused_with_the_field_named(backend: Backend) {
    let server = TestServer::start(backend).await;
    seed(&server).await;
    let page = server
        .cases()
        .list_cases(ListCasesRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let rows: Vec<(&str, ListCasesRequest, &str)> = vec![
        (
            "a page of 501",
            ListCasesRequest {
                page_size: 501,
                ..Default::default()
            },
            "page_size",
        ),
        (
            "a negative page size",
            ListCasesRequest {
                page_size: -1,
                ..Default::default()
            },
            "page_size",
        ),
        (
            "an unknown line",
            ListCasesRequest {
                line: Some(7),
                ..Default::default()
            },
            "line",
        ),
        (
            "an unspecified status",
            ListCasesRequest {
                status: Some(0),
                ..Default::default()
            },
            "status",
        ),
        (
            "an unknown province",
            ListCasesRequest {
                province: "IR-99".into(),
                ..Default::default()
            },
            "province",
        ),
        (
            "a county without a province",
            ListCasesRequest {
                county: "Tehran".into(),
                ..Default::default()
            },
            "county",
        ),
        (
            "an empty time range",
            ListCasesRequest {
                created_from: Some(common::fixtures::timestamp(100)),
                created_before: Some(common::fixtures::timestamp(100)),
                ..Default::default()
            },
            "created_before",
        ),
        (
            "a forged page token",
            ListCasesRequest {
                page_token: "bm90IGEgdG9rZW4".into(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            "a page token sent with other filters",
            ListCasesRequest {
                page_size: 2,
                page_token: page.next_page_token.clone(),
                line: Some(Line::Hotline1480 as i32),
                ..Default::default()
            },
            "page_token",
        ),
    ];
    for (what, request, field) in rows {
        let status = server.cases().list_cases(request).await.expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}");
        let details = status.get_error_details();
        let fields: Vec<&str> = details
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, [field], "{what}");
    }
    server.finish().await;
}

async fn a_page_size_of_zero_means_fifty(backend: Backend) {
    let server = TestServer::start(backend).await;
    for i in 0..51 {
        server
            .hotline()
            .submit_referral(hotline(&format!("n-{i}")))
            .await
            .unwrap();
    }
    let page = server
        .cases()
        .list_cases(ListCasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.cases.len(), 50);
    assert!(!page.next_page_token.is_empty());
    server.finish().await;
}

backend_tests!(
    each_filter_selects_exactly_its_cases,
    the_created_time_range_is_inclusive_from_and_exclusive_before,
    pages_walk_every_case_once_newest_first_while_new_cases_arrive,
    bad_list_requests_are_refused_with_the_field_named,
    a_page_size_of_zero_means_fifty,
);
