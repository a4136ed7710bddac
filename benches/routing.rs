//! The routing decision's cost over a large synthetic directory (issue: "Speed").
//!
//! The directory has 25 service points and 2.5 teams per county on average, in every kind, over
//! all 31 provinces; the policy has 200 rules, the default last. The decision is measured for
//! directories of 1,000, 10,000 and 100,000 service points at the same density, so the figures
//! show whether the cost follows the whole directory or only the incident's surroundings.
//!
//! The `national` group loads the national directory (`seed/national.toml` on the built-in
//! counties) and decides a P0 case in every province's capital county with the shipped policy.
//!
//! `cargo bench --bench routing`; results are in BENCHMARKS.md.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use referrals::domain::decision::{Action, DutyStatus, ServicePointKind};
use referrals::domain::types::{Category, Line, Priority, Sex};
use referrals::routing::directory::{
    Admission, County, Directory, DirectoryData, MobileTeam, OpeningHours, ProvinceEntry,
    ServicePoint,
};
use referrals::routing::policy::{Conditions, Policy, PolicyDocument, Rule};
use referrals::routing::{RoutingRequest, SubjectFacts, route};
use strum::VariantArray;

const POINTS_PER_COUNTY: usize = 25;

/// A deterministic spread of values, so runs compare.
fn jitter(i: usize) -> f64 {
    ((i * 7919) % 1000) as f64 / 1000.0
}

fn directory(points: usize) -> Directory {
    let provinces = referrals::domain::province::all();
    let counties_total = points / POINTS_PER_COUNTY;
    let mut data = DirectoryData::default();
    for (p, province) in provinces.iter().enumerate() {
        data.provinces.push(ProvinceEntry {
            code: province.code.into(),
            neighbours: vec![provinces[(p + 1) % provinces.len()].code.into()],
        });
    }
    for c in 0..counties_total {
        let province = &provinces[c % provinces.len()];
        data.counties.push(County {
            id: None,
            province: province.code.into(),
            name_en: format!("County {c}"),
            name_fa: format!("شهرستان {c}"),
            lat: province.capital_lat + jitter(c) - 0.5,
            lon: province.capital_lon + jitter(c + 1) - 0.5,
            covered_by: None,
        });
    }
    for i in 0..points {
        let county = &data.counties[i % counties_total];
        let kind = ServicePointKind::VARIANTS[i % ServicePointKind::VARIANTS.len()];
        data.service_points.push(ServicePoint {
            id: format!("sp-{i}"),
            name: format!("Service point {i}"),
            kind,
            province: county.province.clone(),
            county: county.name_en.clone(),
            lat: county.lat + jitter(i) / 10.0,
            lon: county.lon + jitter(i + 3) / 10.0,
            categories: vec![],
            hours: OpeningHours::AlwaysOpen,
            capacity: Some(20),
            occupancy: (i % 21) as u32,
            reserved: 0,
            admission: Admission::default(),
            neighbourhoods: Vec::new(),
        });
    }
    for t in 0..points / 10 {
        let county = &data.counties[t % counties_total];
        data.teams.push(MobileTeam {
            id: format!("team-{t}"),
            name: format!("Team {t}"),
            province: county.province.clone(),
            base_county: county.name_en.clone(),
            status: if t % 3 == 0 {
                DutyStatus::Busy
            } else {
                DutyStatus::Available
            },
            position: Some((county.lat + jitter(t) / 10.0, county.lon)),
            load: (t % 3) as u32,
        });
    }
    Directory::new(data).expect("valid synthetic directory")
}

/// 199 rules that do not match the benchmark's case (each tests a different county, as real
/// policies do), then one that does, then the default.
fn policy() -> Policy {
    let mut rules: Vec<Rule> = (0..198)
        .map(|i| Rule {
            id: format!("county-rule-{i}"),
            priority: 1000 - i,
            description: String::new(),
            when: Conditions {
                counties: vec![format!("Elsewhere {i}")],
                lines: vec![Line::Emergency123],
                ..Default::default()
            },
            then: vec![Action::ReferTo {
                kind: ServicePointKind::CounsellingCentre,
                point: None,
            }],
        })
        .collect();
    rules.push(Rule {
        id: "acute".into(),
        priority: 10,
        description: String::new(),
        when: Conditions {
            priorities: vec![Priority::P0Immediate],
            team_available: Some(true),
            ..Default::default()
        },
        then: vec![
            Action::DispatchMobileTeam,
            Action::ReferTo {
                kind: ServicePointKind::CrisisInterventionCentre,
                point: None,
            },
            Action::Notify {
                body: ServicePointKind::Police110,
                only_if: vec![],
            },
        ],
    });
    rules.push(Rule {
        id: "default".into(),
        priority: 0,
        description: String::new(),
        when: Conditions::default(),
        then: vec![Action::ReferTo {
            kind: ServicePointKind::CrisisInterventionCentre,
            point: None,
        }],
    });
    Policy::new(PolicyDocument::of(rules), 1).expect("valid policy")
}

fn request() -> RoutingRequest {
    RoutingRequest {
        line: Line::Emergency123,
        categories: vec![Category::ChildAbusePhysical],
        priority: Priority::P0Immediate,
        flags: vec![],
        subjects: vec![SubjectFacts {
            sex: Sex::Female,
            age_range: Some((9, 9)),
            minor: Some(true),
        }],
        // County 22 is in Tehran (IR-23) for every directory size.
        province: "IR-23".into(),
        county: "County 23".into(),
        position: None,
        neighbourhood: None,
        at: Utc.with_ymd_and_hms(2026, 11, 22, 7, 0, 0).unwrap(),
    }
}

fn decision(c: &mut Criterion) {
    let policy = policy();
    let request = request();
    let mut group = c.benchmark_group("routing_decision");
    for points in [1_000, 10_000, 100_000] {
        let directory = directory(points);
        let decision = route(&policy, &directory, &request);
        assert_eq!(
            decision.rule_id, "acute",
            "the benchmark measures the intended path"
        );
        assert!(!decision.unrouted());
        group.bench_with_input(
            BenchmarkId::new("service_points", points),
            &directory,
            |b, d| b.iter(|| route(black_box(&policy), black_box(d), black_box(&request))),
        );
    }
    group.finish();
}

/// The national directory a server loads with `--seed-directory seed/national.toml`: the
/// built-in 478 counties and the illustrative seed's 1,796 service points and 430 teams.
fn national_directory() -> Directory {
    let mut data: DirectoryData =
        toml::from_str(include_str!("../seed/national.toml")).expect("the national seed parses");
    data.merge(referrals::routing::geography::missing_from(&data));
    Directory::new(data).expect("the national directory is valid")
}

/// Loading the national directory (parsing the seed, adding the geography, indexing), and
/// deciding a P0 case in each province's capital county with it under the shipped policy.
fn national(c: &mut Criterion) {
    let mut group = c.benchmark_group("national");
    group.bench_function("load_directory", |b| b.iter(national_directory));
    let directory = national_directory();
    let policy = Policy::parse(referrals::routing::policy::SHIPPED_POLICY, 1).expect("policy");
    let requests: Vec<RoutingRequest> = referrals::domain::province::all()
        .iter()
        .map(|province| {
            let county = directory
                .counties_of(province.code)
                .iter()
                .filter_map(|key| directory.county_by_key(key))
                .min_by(|a, b| {
                    let d = |c: &County| {
                        (c.lat - province.capital_lat).powi(2)
                            + (c.lon - province.capital_lon).powi(2)
                    };
                    d(a).total_cmp(&d(b))
                })
                .expect("a county");
            RoutingRequest {
                province: province.code.into(),
                county: county.name_en.clone(),
                ..request()
            }
        })
        .collect();
    for request in &requests {
        let decision = route(&policy, &directory, request);
        assert!(!decision.unrouted(), "{}: {decision:?}", request.province);
    }
    group.bench_function("decide_p0_in_every_capital", |b| {
        b.iter(|| {
            for request in &requests {
                black_box(route(black_box(&policy), &directory, request));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, decision, national);
criterion_main!(benches);
