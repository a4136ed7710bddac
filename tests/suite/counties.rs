//! Counties are identities: every county of the country is known (the built-in geography), any
//! spelling of a name or the county's id records the canonical county, an unknown name is refused
//! naming the closest ones, a county the caller cannot name is recorded and routed as such, and
//! with the national directory a call from any province is routed.

use crate::common::fixtures::{child_in_danger, destinations};
use crate::common::rng::Rng;
use crate::common::{Backend, TestDb, TestServer};
use referrals::pb::{
    self, AssignmentPurpose, ListCasesRequest, ListCountiesRequest, ReportEmergencyRequest,
};
use tonic::Code;
use tonic_types::StatusExt;

backend_tests!(
    any_spelling_or_the_id_records_the_canonical_county,
    an_unknown_county_is_refused_naming_the_closest_ones,
    a_county_the_caller_cannot_name_is_recorded_and_routed_across_the_province,
    every_county_of_the_country_is_listed_in_both_languages,
    a_p0_call_from_any_province_gets_a_team_with_the_national_directory,
);

fn in_county(request_id: &str, province: &str, county: &str) -> ReportEmergencyRequest {
    let mut request = child_in_danger(request_id);
    let location = request.intake.as_mut().unwrap().location.as_mut().unwrap();
    location.province = province.into();
    location.county = county.into();
    // No caller's position: routing measures from the county seat.
    location.coordinates = None;
    request
}

async fn any_spelling_or_the_id_records_the_canonical_county(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let spellings = [
        "Tehran",
        " tehran ",
        "TEHRAN County",
        "تهران",
        "شهرستان تهران",
        "شهرستان‌تهران",
        "6554970",
    ];
    for (n, spelling) in spellings.iter().enumerate() {
        let receipt = server
            .emergency()
            .report_emergency(in_county(&format!("spelling-{n}"), "IR-23", spelling))
            .await
            .unwrap_or_else(|e| panic!("{spelling}: {e:?}"))
            .into_inner()
            .receipt
            .unwrap();
        let case = server.case(&receipt.case_id).await;
        let location = case.intake.unwrap().location.unwrap();
        assert_eq!(location.county, "Tehran", "{spelling}");
        assert!(!location.county_unknown);
    }
    // Arabic letters and a joiner, as phone systems send them: Kermanshah, Meshkinshahr.
    for (province, spelling, canonical) in [
        ("IR-05", "كرمانشاه", "Kermanshah"),
        ("IR-24", "مشگين‌شهر", "Meshkinshahr"),
    ] {
        let receipt = server
            .report(in_county(&format!("arabic-{province}"), province, spelling))
            .await;
        let case = server.case(&receipt.case_id).await;
        assert_eq!(case.intake.unwrap().location.unwrap().county, canonical);
    }
    // Lists by county find every one of them, however the filter is spelled.
    for filter in ["Tehran", "تهران", "6554970"] {
        let listed = server
            .cases()
            .list_cases(ListCasesRequest {
                province: "IR-23".into(),
                county: filter.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.cases.len(), spellings.len(), "{filter}");
    }
    server.finish().await;
}

async fn an_unknown_county_is_refused_naming_the_closest_ones(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let refusal = |request| {
        let server = &server;
        async move {
            let status = server
                .emergency()
                .report_emergency(request)
                .await
                .expect_err("refused");
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            let violations = status
                .get_error_details()
                .bad_request()
                .expect("BadRequest details")
                .field_violations
                .clone();
            assert_eq!(violations.len(), 1, "{violations:?}");
            assert_eq!(violations[0].field, "intake.location.county");
            violations[0].description.clone()
        }
    };
    let atlantis = refusal(in_county("atlantis", "IR-23", "Atlantis")).await;
    assert!(
        atlantis.contains("no county of IR-23 is called \"Atlantis\""),
        "{atlantis}"
    );
    assert!(atlantis.contains("county_unknown"), "{atlantis}");
    let misspelt = refusal(in_county("tehrn", "IR-23", "Tehrn")).await;
    let closest = misspelt.split("the closest: ").nth(1).unwrap();
    assert!(
        closest.starts_with("Tehran (تهران, id 6554970)"),
        "{misspelt}"
    );
    // Ardabil's id, sent with Tehran's province.
    let elsewhere = refusal(in_county("elsewhere", "IR-23", "6554871")).await;
    assert!(elsewhere.contains("is Ardabil"), "{elsewhere}");
    assert!(elsewhere.contains("of IR-24, not of IR-23"), "{elsewhere}");
    // Both a name and "unknown" contradict each other.
    let mut both = in_county("both", "IR-23", "Tehran");
    let location = both.intake.as_mut().unwrap().location.as_mut().unwrap();
    location.county_unknown = true;
    let status = server.emergency().report_emergency(both).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("intake.location.county"),
        "{status:?}"
    );
    assert_eq!(server.db.count("cases").await, 0);
    // A filter that names no county is refused the same way.
    let status = server
        .cases()
        .list_cases(ListCasesRequest {
            province: "IR-23".into(),
            county: "Atlantis".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    server.finish().await;
}

async fn a_county_the_caller_cannot_name_is_recorded_and_routed_across_the_province(
    backend: Backend,
) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let mut request = in_county("unknown-county", "IR-23", "");
    let location = request.intake.as_mut().unwrap().location.as_mut().unwrap();
    location.county_unknown = true;
    let receipt = server.report(request).await;
    // A team of the province is sent: the search covered all of it.
    let sent: Vec<String> = destinations(&receipt)
        .into_iter()
        .filter(|(purpose, _)| *purpose == AssignmentPurpose::Dispatch)
        .map(|(_, id)| id)
        .collect();
    assert_eq!(sent.len(), 1, "{receipt:?}");
    assert!(sent[0].starts_with("thr-"), "{sent:?}");
    let case = server.case(&receipt.case_id).await;
    let location = case.intake.as_ref().unwrap().location.as_ref().unwrap();
    assert!(location.county_unknown);
    assert_eq!(location.county, "");
    let notes = &case.routing.as_ref().unwrap().notes;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("county is unknown"), "{notes:?}");
    // A case whose county is known has no such note.
    let known = server
        .report(in_county("known-county", "IR-23", "Tehran"))
        .await;
    let case = server.case(&known.case_id).await;
    assert!(case.routing.unwrap().notes.is_empty());
    server.finish().await;
}

async fn every_county_of_the_country_is_listed_in_both_languages(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let list = |province: &str| {
        let mut directory = server.directory();
        let province = province.to_owned();
        async move {
            directory
                .list_counties(ListCountiesRequest { province })
                .await
                .unwrap()
                .into_inner()
                .counties
        }
    };
    let all = list("").await;
    assert_eq!(all.len(), 478);
    assert!(
        all.iter()
            .all(|c| !c.name_en.is_empty() && !c.name_fa.is_empty() && !c.id.is_empty())
    );
    let provinces: std::collections::BTreeSet<&str> =
        all.iter().map(|c| c.province.as_str()).collect();
    assert_eq!(provinces.len(), 31);
    let east_azerbaijan = list("IR-03").await;
    let tabriz = east_azerbaijan
        .iter()
        .find(|c| c.name_en == "Tabriz")
        .expect("Tabriz");
    assert_eq!(tabriz.name_fa, "تبریز");
    assert_eq!(tabriz.id, "6554961");
    // The seed's own counties keep their seat and cover, gain their ids, and are not doubled.
    let ardabil = list("IR-24").await;
    assert_eq!(ardabil.len(), 12);
    let namin = ardabil.iter().find(|c| c.name_en == "Namin").unwrap();
    assert_eq!(namin.covered_by, "Ardabil");
    assert_eq!(namin.id, "6555238");
    assert_eq!(namin.seat.unwrap().latitude, 38.42, "the seed's seat");
    server.finish().await;
}

/// With the national directory (seed/national.toml), a P0 call from a random county of each of
/// the 31 provinces gets a mobile team of its own province.
async fn a_p0_call_from_any_province_gets_a_team_with_the_national_directory(backend: Backend) {
    let national = concat!(env!("CARGO_MANIFEST_DIR"), "/seed/national.toml");
    let server = TestServer::seeded_with(TestDb::new(backend).await, |c| {
        c.seed_directory = Some(national.into());
    })
    .await;
    let counties = server
        .directory()
        .list_counties(ListCountiesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .counties;
    let mut rng = Rng(1480);
    for province in referrals::domain::province::all() {
        let here: Vec<&pb::County> = counties
            .iter()
            .filter(|c| c.province == province.code)
            .collect();
        let county = here[rng.below(here.len())];
        let receipt = server
            .report(in_county(
                &format!("national-{}", province.code),
                province.code,
                &county.name_fa,
            ))
            .await;
        let routing = receipt.routing.as_ref().unwrap();
        assert!(
            !routing.unrouted,
            "{} {}: {routing:?}",
            province.code, county.name_en
        );
        let prefix = province.code.to_lowercase().replace('-', "");
        let teams: Vec<String> = destinations(&receipt)
            .into_iter()
            .filter(|(purpose, _)| *purpose == AssignmentPurpose::Dispatch)
            .map(|(_, id)| id)
            .collect();
        assert_eq!(teams.len(), 1, "{} {}", province.code, county.name_en);
        assert!(
            teams[0].starts_with(&format!("{prefix}-t")),
            "{} {}: {teams:?}",
            province.code,
            county.name_en
        );
        let case = server.case(&receipt.case_id).await;
        assert_eq!(
            case.intake.unwrap().location.unwrap().county,
            county.name_en,
            "recorded under its canonical name"
        );
    }
    server.finish().await;
}
