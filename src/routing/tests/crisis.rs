//! Routing while a crisis is declared: points opened round the clock, the declaration's rules
//! first, only in its area, and nothing left over once it ends.

use super::*;
use crate::routing::crisis::{Crises, Crisis, Measures};

/// Every point of the small directory (Ardabil and East Azerbaijan) keeps office hours,
/// Saturday to Wednesday 08:00–14:30.
fn office_hours() -> Directory {
    small_directory(|d| {
        for point in d.service_points.iter_mut() {
            point.hours = OpeningHours::Weekly(vec![Window {
                days: vec![
                    Day::Saturday,
                    Day::Sunday,
                    Day::Monday,
                    Day::Tuesday,
                    Day::Wednesday,
                ],
                from: LocalTime::try_from("08:00".to_owned()).unwrap(),
                to: LocalTime::try_from("14:30".to_owned()).unwrap(),
            }]);
        }
    })
}

/// One declaration, "earthquake", of `province` (`None`: the whole country), in force from
/// Saturday 00:00 to Sunday 20:00 in Tehran.
fn declared(province: Option<&str>, measures: Measures) -> Crises {
    let from = tehran(21, 0, 0);
    Crises::new(vec![Crisis {
        crisis_id: uuid::Uuid::now_v7(),
        name: "earthquake".into(),
        province: province.map(Into::into),
        starts_at: from,
        ends_at: Some(tehran(22, 20, 0)),
        measures,
        version: 1,
        declared_by: "sup-1".into(),
        updated_by: "sup-1".into(),
        updated_at: from,
    }])
}

/// Routes `r` with what `crises` have in force in its province at its time.
fn during(policy: &Policy, crises: &Crises, directory: &Directory, r: &RoutingRequest) -> Decision {
    route_in(
        policy,
        &crises.in_force(&r.province, r.at),
        directory,
        r,
        &HashSet::new(),
    )
}

fn refer(kind: ServicePointKind) -> Policy {
    policy_with(
        Conditions::default(),
        vec![Action::ReferTo { kind, point: None }],
    )
}

#[test]
fn a_crisis_opens_its_provinces_points_round_the_clock_while_it_is_in_force() {
    use ServicePointKind as K;
    let directory = office_hours();
    let policy = refer(K::CrisisInterventionCentre);
    let mut r = request("Ardabil");
    r.priority = Priority::P2Priority;
    r.at = tehran(22, 2, 0);
    let crises = declared(
        Some("IR-24"),
        Measures {
            round_the_clock: vec![K::CrisisInterventionCentre],
            ..Measures::default()
        },
    );
    let routed = |at: DateTime<Utc>| {
        let mut r = r.clone();
        r.at = at;
        during(&policy, &crises, &directory, &r)
    };

    // 02:00 in the crisis: the Ardabil centre takes the case now.
    let d = routed(tehran(22, 2, 0));
    assert_eq!(chosen(&d, 0).as_deref(), Some("ard-crisis"));
    assert_eq!(d.actions[0].waits_until, None);
    assert_eq!(d.crises.len(), 1);
    assert_eq!(d.crises[0].name, "earthquake");

    // 02:00 the next night, the crisis over: the case waits for the morning, as without it.
    let d = routed(tehran(23, 2, 0));
    assert_eq!(chosen(&d, 0).as_deref(), Some("ard-crisis"));
    assert_eq!(d.actions[0].waits_until, Some(tehran(23, 8, 0)));
    assert!(d.crises.is_empty());
    assert_eq!(
        d,
        route(&policy, &directory, &{
            let mut r = r.clone();
            r.at = tehran(23, 2, 0);
            r
        })
    );
}

#[test]
fn a_provinces_crisis_does_not_open_a_neighbouring_provinces_points() {
    use ServicePointKind as K;
    let directory = office_hours();
    let policy = refer(K::SafeHouse);
    let mut r = request("Ardabil");
    r.priority = Priority::P1Urgent;
    r.at = tehran(22, 2, 0);
    let in_ardabil = declared(
        Some("IR-24"),
        Measures {
            round_the_clock: vec![K::SafeHouse],
            ..Measures::default()
        },
    );
    // The only safe house is in Tabriz (IR-03): Ardabil's crisis leaves it closed.
    let d = during(&policy, &in_ardabil, &directory, &r);
    assert_eq!(chosen(&d, 0), None);
    assert_eq!(verdict_of(&d, 0, "tbz-safe"), Verdict::Closed);
    // A national crisis opens it.
    let national = declared(
        None,
        Measures {
            round_the_clock: vec![K::SafeHouse],
            ..Measures::default()
        },
    );
    let d = during(&policy, &national, &directory, &r);
    assert_eq!(chosen(&d, 0).as_deref(), Some("tbz-safe"));
}

#[test]
fn a_crisis_rule_is_tried_before_the_policy_and_only_in_its_area() {
    use ServicePointKind as K;
    let directory = small_directory(|_| {});
    let policy = refer(K::CrisisInterventionCentre);
    let rule = Rule {
        id: "quake-psychosocial".into(),
        priority: 5,
        description: "disaster psycho-social calls to the Meshgin Shahr centre".into(),
        when: Conditions {
            counties: vec!["Meshgin Shahr".into()],
            ..Conditions::default()
        },
        then: vec![Action::ReferTo {
            kind: K::CrisisInterventionCentre,
            point: None,
        }],
    };
    let crises = declared(
        Some("IR-24"),
        Measures {
            rules: vec![
                rule,
                Rule {
                    id: "quake-all".into(),
                    priority: 1,
                    description: "every other call to 123".into(),
                    when: Conditions::default(),
                    then: vec![Action::HandOverTo123],
                },
            ],
            ..Measures::default()
        },
    );
    let r = request("Ardabil");
    let d = during(&policy, &crises, &directory, &r);
    assert_eq!(d.rule_id, "quake-all");
    assert_eq!(chosen(&d, 0).as_deref(), Some("ard-123"));
    assert_eq!(d.policy_version, 1);
    let r = request("Meshgin Shahr");
    let d = during(&policy, &crises, &directory, &r);
    assert_eq!(d.rule_id, "quake-psychosocial");
    // A case of another province is routed by the policy alone.
    let mut r = request("Tabriz");
    r.province = "IR-03".into();
    let d = during(&policy, &crises, &directory, &r);
    assert_eq!(d.rule_id, "rule");
    assert!(d.crises.is_empty());
}

#[test]
fn a_rule_may_name_its_point_and_falls_back_along_the_chain_when_it_cannot_take_the_case() {
    use ServicePointKind as K;
    let named = |full: bool| {
        small_directory(|d| {
            if full {
                let point = d
                    .service_points
                    .iter_mut()
                    .find(|p| p.id == "mgs-crisis")
                    .unwrap();
                point.capacity = Some(4);
                point.occupancy = 4;
            }
        })
    };
    let policy = policy_with(
        Conditions::default(),
        vec![Action::ReferTo {
            kind: K::CrisisInterventionCentre,
            point: Some("mgs-crisis".into()),
        }],
    );
    let r = request("Ardabil");
    // Meshgin Shahr's centre is further than Ardabil's, but the rule names it.
    let d = route(&policy, &named(false), &r);
    assert_eq!(chosen(&d, 0).as_deref(), Some("mgs-crisis"));
    assert_eq!(d.actions[0].candidates.len(), 1);
    assert_eq!(d.actions[0].candidates[0].step, CoverStep::Province);
    // Full: it is listed first, as full, and the nearest other centre takes the case.
    let d = route(&policy, &named(true), &r);
    assert_eq!(chosen(&d, 0).as_deref(), Some("ard-crisis"));
    assert_eq!(d.actions[0].candidates[0].id, "mgs-crisis");
    assert_eq!(d.actions[0].candidates[0].verdict, Verdict::Full);
    // Once it turned the case down, a re-route goes past it.
    let tried: HashSet<String> = ["mgs-crisis".to_owned()].into();
    let d = route_excluding(&policy, &named(false), &r, &tried);
    assert_eq!(chosen(&d, 0).as_deref(), Some("ard-crisis"));
    // The directory must hold the point, of the kind its action refers to.
    let bad = vec![Rule {
        id: "quake".into(),
        priority: 1,
        description: String::new(),
        when: Conditions::default(),
        then: vec![
            Action::ReferTo {
                kind: K::SafeHouse,
                point: Some("mgs-crisis".into()),
            },
            Action::ReferTo {
                kind: K::SafeHouse,
                point: Some("nowhere".into()),
            },
        ],
    }];
    assert_eq!(unknown_points(&bad, &named(false)).len(), 2);
}

#[test]
fn a_crisis_may_open_single_points_round_the_clock() {
    use ServicePointKind as K;
    let directory = office_hours();
    let policy = refer(K::CrisisInterventionCentre);
    let mut r = request("Ardabil");
    r.priority = Priority::P1Urgent;
    r.at = tehran(22, 2, 0);
    let crises = declared(
        Some("IR-24"),
        Measures {
            round_the_clock_points: vec!["mgs-crisis".into()],
            ..Measures::default()
        },
    );
    let d = during(&policy, &crises, &directory, &r);
    assert_eq!(verdict_of(&d, 0, "ard-crisis"), Verdict::Closed);
    assert_eq!(chosen(&d, 0).as_deref(), Some("mgs-crisis"));
}
