//! Table-driven tests of routing: every condition, every action, the cover chain, hours across
//! midnight, capacity, admissions, no destination, re-route, and the shipped policy's practice.

#![allow(clippy::type_complexity)] // The tables spell out their columns.

mod actions;
mod crisis;
mod shipped;

use std::collections::HashSet;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Asia::Tehran;

use super::directory::*;
use super::policy::*;
use super::*;
use crate::domain::decision::*;

/// 2026-11-21 is a Saturday; `day` 26 is a Thursday, 27 a Friday.
pub(super) fn tehran(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Tehran
        .with_ymd_and_hms(2026, 11, day, hour, minute, 0)
        .unwrap()
        .with_timezone(&Utc)
}

pub(super) fn county(name: &str, lat: f64, lon: f64, covered_by: Option<&str>) -> County {
    County {
        id: None,
        province: if name == "Tabriz" { "IR-03" } else { "IR-24" }.into(),
        name_en: name.into(),
        name_fa: format!("fa-{name}"),
        lat,
        lon,
        covered_by: covered_by.map(Into::into),
    }
}

pub(super) fn point(
    id: &str,
    kind: ServicePointKind,
    county: &str,
    lat: f64,
    lon: f64,
) -> ServicePoint {
    ServicePoint {
        id: id.into(),
        name: format!("{id} name"),
        kind,
        province: if county == "Tabriz" { "IR-03" } else { "IR-24" }.into(),
        county: county.into(),
        lat,
        lon,
        categories: vec![],
        hours: OpeningHours::AlwaysOpen,
        capacity: None,
        occupancy: 0,
        reserved: 0,
        admission: Admission::default(),
        neighbourhoods: Vec::new(),
    }
}

pub(super) fn team(
    id: &str,
    county: &str,
    status: DutyStatus,
    load: u32,
    position: (f64, f64),
) -> MobileTeam {
    MobileTeam {
        id: id.into(),
        name: format!("{id} name"),
        province: if county == "Tabriz" { "IR-03" } else { "IR-24" }.into(),
        base_county: county.into(),
        status,
        position: Some(position),
        load,
    }
}

/// Ardabil province: Ardabil (the seat), Namin (covered by Ardabil), Meshgin Shahr; Tabriz in
/// the neighbouring East Azerbaijan takes the overflow.
pub(super) fn small_directory(change: impl FnOnce(&mut DirectoryData)) -> Directory {
    use ServicePointKind as K;
    let mut data = DirectoryData {
        provinces: vec![
            ProvinceEntry {
                code: "IR-24".into(),
                neighbours: vec!["IR-03".into()],
            },
            ProvinceEntry {
                code: "IR-03".into(),
                neighbours: vec![],
            },
        ],
        counties: vec![
            county("Ardabil", 38.25, 48.29, None),
            county("Namin", 38.42, 48.48, Some("Ardabil")),
            county("Meshgin Shahr", 38.40, 47.68, None),
            county("Tabriz", 38.08, 46.29, None),
        ],
        service_points: vec![
            point(
                "ard-crisis",
                K::CrisisInterventionCentre,
                "Ardabil",
                38.25,
                48.29,
            ),
            point(
                "mgs-crisis",
                K::CrisisInterventionCentre,
                "Meshgin Shahr",
                38.40,
                47.68,
            ),
            point("ard-123", K::SocialEmergencyCentre, "Ardabil", 38.25, 48.29),
            point("ard-police", K::Police110, "Ardabil", 38.25, 48.29),
            point("nmn-police", K::Police110, "Namin", 38.42, 48.48),
            point("ard-ems", K::Ems115, "Ardabil", 38.25, 48.29),
            point(
                "ard-prosecutor",
                K::ProsecutorChildProtection,
                "Ardabil",
                38.25,
                48.29,
            ),
            point("tbz-safe", K::SafeHouse, "Tabriz", 38.08, 46.29),
        ],
        teams: vec![
            team(
                "ard-t1",
                "Ardabil",
                DutyStatus::Available,
                0,
                (38.25, 48.29),
            ),
            team(
                "mgs-t1",
                "Meshgin Shahr",
                DutyStatus::Available,
                0,
                (38.40, 47.68),
            ),
        ],
    };
    change(&mut data);
    Directory::new(data).unwrap()
}

pub(super) fn request(county: &str) -> RoutingRequest {
    RoutingRequest {
        line: Line::Emergency123,
        categories: vec![Category::SpouseAbuse],
        priority: Priority::P1Urgent,
        flags: vec![],
        subjects: vec![SubjectFacts {
            sex: Sex::Female,
            age_range: Some((30, 30)),
            minor: Some(false),
        }],
        province: "IR-24".into(),
        county: county.into(),
        position: None,
        neighbourhood: None,
        at: tehran(21, 10, 0),
    }
}

/// A policy of one rule with `when` (priority 10) and a default that goes nowhere.
pub(super) fn policy_with(when: Conditions, then: Vec<Action>) -> Policy {
    Policy::new(
        PolicyDocument::of(vec![
            Rule {
                id: "rule".into(),
                priority: 10,
                description: String::new(),
                when,
                then,
            },
            Rule {
                id: "default".into(),
                priority: 0,
                description: String::new(),
                when: Conditions::default(),
                then: vec![],
            },
        ]),
        1,
    )
    .unwrap()
}

pub(super) fn chosen(decision: &Decision, action: usize) -> Option<String> {
    decision.actions[action]
        .destination
        .as_ref()
        .map(|d| match d {
            Destination::Team { id, .. } | Destination::ServicePoint { id, .. } => id.clone(),
        })
}

pub(super) fn verdict_of(decision: &Decision, action: usize, id: &str) -> Verdict {
    decision.actions[action]
        .candidates
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("{id} was not looked at"))
        .verdict
        .clone()
}

#[test]
fn each_condition_decides_whether_its_rule_fires() {
    let window = |from: &str, to: &str| Window {
        days: vec![Day::Thursday],
        from: LocalTime::try_from(from.to_owned()).unwrap(),
        to: LocalTime::try_from(to.to_owned()).unwrap(),
    };
    let busy = |d: &mut DirectoryData| {
        for t in &mut d.teams {
            t.status = DutyStatus::Busy;
        }
    };
    type Tweak = Box<dyn Fn(&mut RoutingRequest)>;
    let keep: fn() -> Tweak = || Box::new(|_| {});
    let rows: Vec<(
        &str,
        Conditions,
        Tweak,
        Option<fn(&mut DirectoryData)>,
        bool,
    )> = vec![
        (
            "line matches",
            Conditions {
                lines: vec![Line::Emergency123],
                ..Default::default()
            },
            keep(),
            None,
            true,
        ),
        (
            "line differs",
            Conditions {
                lines: vec![Line::Hotline1480],
                ..Default::default()
            },
            keep(),
            None,
            false,
        ),
        (
            "category matches",
            Conditions {
                categories: vec![Category::SpouseAbuse],
                ..Default::default()
            },
            keep(),
            None,
            true,
        ),
        (
            "a secondary category matches",
            Conditions {
                categories: vec![Category::Homelessness],
                ..Default::default()
            },
            Box::new(|r| r.categories.push(Category::Homelessness)),
            None,
            true,
        ),
        (
            "category differs",
            Conditions {
                categories: vec![Category::Parenting],
                ..Default::default()
            },
            keep(),
            None,
            false,
        ),
        (
            "priority matches",
            Conditions {
                priorities: vec![Priority::P1Urgent],
                ..Default::default()
            },
            keep(),
            None,
            true,
        ),
        (
            "priority differs",
            Conditions {
                priorities: vec![Priority::P0Immediate],
                ..Default::default()
            },
            keep(),
            None,
            false,
        ),
        (
            "no minors, as wanted",
            Conditions {
                minors_involved: Some(false),
                ..Default::default()
            },
            keep(),
            None,
            true,
        ),
        (
            "minors, as wanted",
            Conditions {
                minors_involved: Some(true),
                ..Default::default()
            },
            Box::new(|r| r.flags.push(Flag::MinorsInvolved)),
            None,
            true,
        ),
        (
            "minors wanted, none",
            Conditions {
                minors_involved: Some(true),
                ..Default::default()
            },
            keep(),
            None,
            false,
        ),
        (
            "a flag holds",
            Conditions {
                any_flag: vec![Flag::WeaponPresent, Flag::ViolenceOngoing],
                ..Default::default()
            },
            Box::new(|r| r.flags.push(Flag::ViolenceOngoing)),
            None,
            true,
        ),
        (
            "no flag holds",
            Conditions {
                any_flag: vec![Flag::WeaponPresent],
                ..Default::default()
            },
            keep(),
            None,
            false,
        ),
        (
            "province matches",
            Conditions {
                provinces: vec!["IR-24".into()],
                ..Default::default()
            },
            keep(),
            None,
            true,
        ),
        (
            "province differs",
            Conditions {
                provinces: vec!["IR-23".into()],
                ..Default::default()
            },
            keep(),
            None,
            false,
        ),
        (
            "county matches",
            Conditions {
                counties: vec!["ardabil".into()],
                ..Default::default()
            },
            keep(),
            None,
            true,
        ),
        (
            "county differs",
            Conditions {
                counties: vec!["Namin".into()],
                ..Default::default()
            },
            keep(),
            None,
            false,
        ),
        (
            "in a window across midnight",
            Conditions {
                during: vec![window("20:00", "08:00")],
                ..Default::default()
            },
            Box::new(|r| r.at = tehran(27, 2, 0)),
            None,
            true,
        ),
        (
            "outside the window",
            Conditions {
                during: vec![window("20:00", "08:00")],
                ..Default::default()
            },
            Box::new(|r| r.at = tehran(27, 9, 0)),
            None,
            false,
        ),
        (
            "a team is available",
            Conditions {
                team_available: Some(true),
                ..Default::default()
            },
            keep(),
            None,
            true,
        ),
        (
            "no team is available",
            Conditions {
                team_available: Some(true),
                ..Default::default()
            },
            keep(),
            Some(busy),
            false,
        ),
        (
            "no team, as wanted",
            Conditions {
                team_available: Some(false),
                ..Default::default()
            },
            keep(),
            Some(busy),
            true,
        ),
        (
            "capacity is available",
            Conditions {
                capacity_available: Some(ServicePointKind::CrisisInterventionCentre),
                ..Default::default()
            },
            keep(),
            None,
            true,
        ),
        (
            "no place of that kind anywhere",
            Conditions {
                capacity_available: Some(ServicePointKind::ChildResidentialCentre),
                ..Default::default()
            },
            keep(),
            None,
            false,
        ),
    ];
    for (what, when, tweak, change, fires) in rows {
        let directory = small_directory(|d| {
            if let Some(change) = change {
                change(d);
            }
        });
        let mut r = request("Ardabil");
        tweak(&mut r);
        let decision = route(&policy_with(when, vec![]), &directory, &r);
        let expected = if fires { "rule" } else { "default" };
        assert_eq!(decision.rule_id, expected, "{what}");
    }
}
