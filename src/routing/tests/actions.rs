//! Each action's destinations: the cover chain, opening hours, capacity, admissions, no
//! destination, re-routes, ranking, and the policy checks.

#![allow(clippy::type_complexity)] // The tables spell out their columns.

use super::*;

#[test]
fn each_action_finds_its_kind_of_destination() {
    use ServicePointKind as K;
    let directory = small_directory(|_| {});
    let rows: Vec<(&str, Action, Vec<Flag>, Option<&str>, bool)> = vec![
        (
            "dispatch sends the nearest team",
            Action::DispatchMobileTeam,
            vec![],
            Some("ard-t1"),
            false,
        ),
        (
            "refer_to finds a point of the kind",
            Action::ReferTo {
                kind: K::CrisisInterventionCentre,
                point: None,
            },
            vec![],
            Some("ard-crisis"),
            false,
        ),
        (
            "hand_over_to_123 finds the 123 centre",
            Action::HandOverTo123,
            vec![],
            Some("ard-123"),
            false,
        ),
        (
            "notify without conditions",
            Action::Notify {
                body: K::Ems115,
                only_if: vec![],
            },
            vec![],
            Some("ard-ems"),
            false,
        ),
        (
            "notify when a fact holds",
            Action::Notify {
                body: K::Police110,
                only_if: vec![Flag::WeaponPresent],
            },
            vec![Flag::WeaponPresent],
            Some("ard-police"),
            false,
        ),
        (
            "notify is skipped when no fact holds",
            Action::Notify {
                body: K::Police110,
                only_if: vec![Flag::WeaponPresent],
            },
            vec![],
            None,
            true,
        ),
    ];
    for (what, action, flags, expected, not_applicable) in rows {
        let mut r = request("Ardabil");
        r.flags = flags;
        let decision = route(
            &policy_with(Conditions::default(), vec![action.clone()]),
            &directory,
            &r,
        );
        assert_eq!(decision.actions[0].action, action, "{what}");
        assert_eq!(chosen(&decision, 0).as_deref(), expected, "{what}");
        assert_eq!(
            decision.actions[0].not_applicable.is_some(),
            not_applicable,
            "{what}"
        );
        assert!(
            !decision.unrouted(),
            "{what}: a skipped notification is not a failure"
        );
    }
}

#[test]
fn the_cover_chain_goes_county_then_designated_county_then_province_then_neighbour() {
    use ServicePointKind as K;
    let dispatch = policy_with(Conditions::default(), vec![Action::DispatchMobileTeam]);
    let police = policy_with(
        Conditions::default(),
        vec![Action::Notify {
            body: K::Police110,
            only_if: vec![],
        }],
    );
    let safe_house = policy_with(
        Conditions::default(),
        vec![Action::ReferTo {
            kind: K::SafeHouse,
            point: None,
        }],
    );
    let directory = small_directory(|_| {});

    // Namin has its own police station.
    let d = route(&police, &directory, &request("Namin"));
    assert_eq!(chosen(&d, 0).as_deref(), Some("nmn-police"));
    assert_eq!(d.actions[0].candidates[0].step, CoverStep::IncidentCounty);

    // Namin has no team: its designated county, Ardabil, sends one.
    let d = route(&dispatch, &directory, &request("Namin"));
    assert_eq!(chosen(&d, 0).as_deref(), Some("ard-t1"));
    assert_eq!(d.actions[0].candidates[0].step, CoverStep::DesignatedCounty);

    // Ardabil's team is busy: the rest of the province (Meshgin Shahr) is next.
    let busy = small_directory(|d| d.teams[0].status = DutyStatus::Busy);
    let d = route(&dispatch, &busy, &request("Namin"));
    assert_eq!(chosen(&d, 0).as_deref(), Some("mgs-t1"));
    assert_eq!(
        verdict_of(&d, 0, "ard-t1"),
        Verdict::Unavailable(DutyStatus::Busy)
    );
    let step = d.actions[0]
        .candidates
        .iter()
        .find(|c| c.id == "mgs-t1")
        .unwrap()
        .step
        .clone();
    assert_eq!(step, CoverStep::Province);

    // No safe house in the province: the neighbouring province takes the overflow.
    let d = route(&safe_house, &directory, &request("Ardabil"));
    assert_eq!(chosen(&d, 0).as_deref(), Some("tbz-safe"));
    assert_eq!(
        d.actions[0].candidates[0].step,
        CoverStep::NeighbouringProvince("IR-03".into())
    );

    // A county the directory does not know starts at the province.
    let d = route(&dispatch, &directory, &request("Nowhere"));
    assert_eq!(d.actions[0].candidates[0].step, CoverStep::Province);
    assert!(chosen(&d, 0).is_some());
}

#[test]
fn a_centre_open_overnight_is_chosen_after_midnight_and_passed_over_in_the_morning() {
    use ServicePointKind as K;
    let overnight = |d: &mut DirectoryData| {
        d.service_points[0].hours = OpeningHours::Weekly(vec![Window {
            days: vec![Day::Thursday],
            from: LocalTime::try_from("20:00".to_owned()).unwrap(),
            to: LocalTime::try_from("08:00".to_owned()).unwrap(),
        }]);
    };
    let directory = small_directory(overnight);
    let policy = policy_with(
        Conditions::default(),
        vec![Action::ReferTo {
            kind: K::CrisisInterventionCentre,
            point: None,
        }],
    );
    let mut r = request("Ardabil");
    r.at = tehran(27, 1, 30);
    assert_eq!(
        chosen(&route(&policy, &directory, &r), 0).as_deref(),
        Some("ard-crisis")
    );
    r.at = tehran(27, 9, 0);
    let d = route(&policy, &directory, &r);
    assert_eq!(verdict_of(&d, 0, "ard-crisis"), Verdict::Closed);
    assert_eq!(chosen(&d, 0).as_deref(), Some("mgs-crisis"));
}

/// With every crisis centre closed at night (office hours 08:00–14:30), a P3 case's referral
/// waits for the one that takes it best at its opening; a P1 case cannot wait and is unrouted.
#[test]
fn a_case_that_may_wait_is_referred_to_a_closed_point_until_it_opens() {
    use ServicePointKind as K;
    let directory = small_directory(|d| {
        for point in d.service_points.iter_mut() {
            point.hours = OpeningHours::Weekly(vec![Window {
                days: vec![Day::Saturday, Day::Sunday],
                from: LocalTime::try_from("08:00".to_owned()).unwrap(),
                to: LocalTime::try_from("14:30".to_owned()).unwrap(),
            }]);
        }
    });
    let policy = policy_with(
        Conditions::default(),
        vec![Action::ReferTo {
            kind: K::CrisisInterventionCentre,
            point: None,
        }],
    );
    let mut r = request("Ardabil");
    r.at = tehran(22, 1, 0);
    r.priority = Priority::P3Routine;
    let d = route(&policy, &directory, &r);
    assert_eq!(chosen(&d, 0).as_deref(), Some("ard-crisis"));
    assert_eq!(d.actions[0].waits_until, Some(tehran(22, 8, 0)));
    assert_eq!(d.status(), RoutingStatus::Routed);
    assert_eq!(d.assignments()[0].waits_until, Some(tehran(22, 8, 0)));

    r.priority = Priority::P1Urgent;
    let d = route(&policy, &directory, &r);
    assert_eq!(chosen(&d, 0), None);
    assert_eq!(d.actions[0].waits_until, None);
    assert_eq!(verdict_of(&d, 0, "ard-crisis"), Verdict::Closed);
    assert_eq!(d.status(), RoutingStatus::Unrouted);

    // Open now: no wait, whatever the priority.
    r.priority = Priority::P3Routine;
    r.at = tehran(22, 9, 0);
    let d = route(&policy, &directory, &r);
    assert_eq!(chosen(&d, 0).as_deref(), Some("ard-crisis"));
    assert_eq!(d.actions[0].waits_until, None);
}

/// A case in a neighbourhood with its own social-service base goes there, even past a nearer
/// base; when that base cannot take it the search goes on along the cover chain; the decision
/// says which.
#[test]
fn the_base_of_the_incidents_neighbourhood_comes_first() {
    use ServicePointKind as K;
    let bases = |full: bool| {
        small_directory(move |d| {
            let mut near = point(
                "ard-base-centre",
                K::SocialServiceBase,
                "Ardabil",
                38.25,
                48.29,
            );
            near.neighbourhoods = vec!["Sarcheshmeh".into()];
            let mut kalkhoran = point(
                "ard-base-kalkhoran",
                K::SocialServiceBase,
                "Ardabil",
                38.29,
                48.24,
            );
            kalkhoran.neighbourhoods = vec!["Kalkhoran".into(), "کلخوران".into()];
            if full {
                kalkhoran.capacity = Some(1);
                kalkhoran.occupancy = 1;
            }
            d.service_points.push(near);
            d.service_points.push(kalkhoran);
        })
    };
    let policy = policy_with(
        Conditions::default(),
        vec![Action::ReferTo {
            kind: K::SocialServiceBase,
            point: None,
        }],
    );
    let mut r = request("Ardabil");
    r.position = Some((38.25, 48.29));
    // No neighbourhood named: the nearest base.
    let d = route(&policy, &bases(false), &r);
    assert_eq!(chosen(&d, 0).as_deref(), Some("ard-base-centre"));
    assert!(d.notes.is_empty());

    r.neighbourhood = Some(" كلخوران ".into());
    let d = route(&policy, &bases(false), &r);
    assert_eq!(chosen(&d, 0).as_deref(), Some("ard-base-kalkhoran"));
    assert_eq!(
        d.actions[0].candidates[0].step,
        CoverStep::Neighbourhood("كلخوران".into())
    );
    assert_eq!(
        d.notes,
        ["the neighbourhood كلخوران is served by ard-base-kalkhoran name"]
    );

    let d = route(&policy, &bases(true), &r);
    assert_eq!(chosen(&d, 0).as_deref(), Some("ard-base-centre"));
    assert_eq!(verdict_of(&d, 0, "ard-base-kalkhoran"), Verdict::Full);
    let looked: Vec<&str> = d.actions[0]
        .candidates
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(
        looked,
        ["ard-base-kalkhoran", "ard-base-centre"],
        "each once"
    );
    assert!(
        d.notes[0].starts_with("nothing serving the neighbourhood"),
        "{:?}",
        d.notes
    );
}

#[test]
fn a_full_centre_is_passed_over() {
    use ServicePointKind as K;
    let directory = small_directory(|d| {
        d.service_points[0].capacity = Some(10);
        d.service_points[0].occupancy = 10;
    });
    let policy = policy_with(
        Conditions::default(),
        vec![Action::ReferTo {
            kind: K::CrisisInterventionCentre,
            point: None,
        }],
    );
    let d = route(&policy, &directory, &request("Ardabil"));
    assert_eq!(verdict_of(&d, 0, "ard-crisis"), Verdict::Full);
    assert_eq!(chosen(&d, 0).as_deref(), Some("mgs-crisis"));
}

#[test]
fn places_held_by_open_referrals_count_against_capacity() {
    use ServicePointKind as K;
    let policy = policy_with(
        Conditions::default(),
        vec![Action::ReferTo {
            kind: K::CrisisInterventionCentre,
            point: None,
        }],
    );
    // Two people there and eight referrals waiting for an answer fill ten places.
    let full = small_directory(|d| {
        d.service_points[0].capacity = Some(10);
        d.service_points[0].occupancy = 2;
        d.service_points[0].reserved = 8;
    });
    let d = route(&policy, &full, &request("Ardabil"));
    assert_eq!(verdict_of(&d, 0, "ard-crisis"), Verdict::Full);
    // One referral fewer, and the centre takes the case.
    let mut directory = small_directory(|d| {
        d.service_points[0].capacity = Some(10);
        d.service_points[0].occupancy = 2;
        d.service_points[0].reserved = 7;
    });
    let d = route(&policy, &directory, &request("Ardabil"));
    assert_eq!(chosen(&d, 0).as_deref(), Some("ard-crisis"));
    // Holding the place routing took fills it; giving it back frees it.
    directory.reserve_place("ard-crisis");
    let d = route(&policy, &directory, &request("Ardabil"));
    assert_eq!(verdict_of(&d, 0, "ard-crisis"), Verdict::Full);
    directory.release_place("ard-crisis");
    let d = route(&policy, &directory, &request("Ardabil"));
    assert_eq!(chosen(&d, 0).as_deref(), Some("ard-crisis"));
}

#[test]
fn admission_limits_decide_who_a_safe_house_takes() {
    use ServicePointKind as K;
    let directory = small_directory(|d| {
        d.service_points[7].admission = Admission {
            sexes: vec![Sex::Female],
            min_age: Some(18),
            max_age: None,
            accepts_minors: Some(false),
            accepts_women_with_children: true,
        };
    });
    let policy = policy_with(
        Conditions::default(),
        vec![Action::ReferTo {
            kind: K::SafeHouse,
            point: None,
        }],
    );
    let adult = |sex| SubjectFacts {
        sex,
        age_range: Some((30, 30)),
        minor: Some(false),
    };
    let child = SubjectFacts {
        sex: Sex::Male,
        age_range: Some((6, 11)),
        minor: Some(true),
    };
    let rows: Vec<(&str, Vec<SubjectFacts>, bool)> = vec![
        ("a woman", vec![adult(Sex::Female)], true),
        (
            "a woman with her son",
            vec![adult(Sex::Female), child],
            true,
        ),
        ("a man", vec![adult(Sex::Male)], false),
        ("a boy alone", vec![child], false),
        (
            "a girl of 15 alone",
            vec![SubjectFacts {
                sex: Sex::Female,
                age_range: Some((15, 15)),
                minor: Some(true),
            }],
            false,
        ),
    ];
    for (what, subjects, admitted) in rows {
        let mut r = request("Ardabil");
        r.subjects = subjects;
        let d = route(&policy, &directory, &r);
        assert_eq!(chosen(&d, 0).is_some(), admitted, "{what}");
        if !admitted {
            assert!(
                matches!(verdict_of(&d, 0, "tbz-safe"), Verdict::Ineligible(_)),
                "{what}"
            );
        }
    }

    // A centre serving other categories is passed over too.
    let specialised =
        small_directory(|d| d.service_points[7].categories = vec![Category::Homelessness]);
    let d = route(&policy, &specialised, &request("Ardabil"));
    assert_eq!(verdict_of(&d, 0, "tbz-safe"), Verdict::NotServingCategory);
}

#[test]
fn with_nothing_eligible_anywhere_the_case_is_unrouted_and_every_candidate_says_why() {
    let directory = small_directory(|d| {
        d.teams[0].status = DutyStatus::OffDuty;
        d.teams[1].status = DutyStatus::OutOfService;
    });
    let d = route(
        &policy_with(Conditions::default(), vec![Action::DispatchMobileTeam]),
        &directory,
        &request("Ardabil"),
    );
    assert!(d.unrouted());
    assert_eq!(chosen(&d, 0), None);
    assert_eq!(
        verdict_of(&d, 0, "ard-t1"),
        Verdict::Unavailable(DutyStatus::OffDuty)
    );
    assert_eq!(
        verdict_of(&d, 0, "mgs-t1"),
        Verdict::Unavailable(DutyStatus::OutOfService)
    );
}

#[test]
fn a_reroute_leaves_out_who_declined_and_takes_the_next_candidate() {
    let directory = small_directory(|_| {});
    let policy = policy_with(Conditions::default(), vec![Action::DispatchMobileTeam]);
    let first = route(&policy, &directory, &request("Ardabil"));
    assert_eq!(chosen(&first, 0).as_deref(), Some("ard-t1"));
    let declined: HashSet<String> = ["ard-t1".to_owned()].into();
    let second = route_excluding(&policy, &directory, &request("Ardabil"), &declined);
    assert_eq!(chosen(&second, 0).as_deref(), Some("mgs-t1"));
    assert_eq!(verdict_of(&second, 0, "ard-t1"), Verdict::Excluded);
    let everyone: HashSet<String> = ["ard-t1".to_owned(), "mgs-t1".to_owned()].into();
    assert!(route_excluding(&policy, &directory, &request("Ardabil"), &everyone).unrouted());
}

#[test]
fn a_reroute_repeats_only_the_action_that_was_turned_down() {
    let directory = small_directory(|_| {});
    let ids = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<HashSet<_>>();
    let crisis = Action::ReferTo {
        kind: ServicePointKind::CrisisInterventionCentre,
        point: None,
    };
    // (action, already tried, expected destination, row)
    let table: Vec<(Action, HashSet<String>, Option<&str>, &str)> = vec![
        (
            Action::DispatchMobileTeam,
            ids(&["ard-t1"]),
            Some("mgs-t1"),
            "the next team",
        ),
        (
            Action::DispatchMobileTeam,
            ids(&["ard-t1", "mgs-t1"]),
            None,
            "no team left",
        ),
        (
            crisis.clone(),
            ids(&[]),
            Some("ard-crisis"),
            "nothing tried yet",
        ),
        (
            crisis.clone(),
            ids(&["ard-crisis"]),
            Some("mgs-crisis"),
            "the next centre",
        ),
        (
            crisis.clone(),
            ids(&["ard-crisis", "mgs-crisis"]),
            None,
            "every centre rejected",
        ),
    ];
    for (action, tried, expected, row) in table {
        let found = reroute(
            &directory,
            &InForce::none(),
            &request("Ardabil"),
            &action,
            &tried,
            None,
            false,
        );
        let destination = found.destination.as_ref().map(|d| match d {
            Destination::Team { id, .. } | Destination::ServicePoint { id, .. } => id.as_str(),
        });
        assert_eq!(destination, expected, "{row}");
        assert_eq!(found.action, action, "{row}: the same action");
        for id in &tried {
            let verdict = found
                .candidates
                .iter()
                .find(|c| &c.id == id)
                .map(|c| &c.verdict);
            assert_eq!(verdict, Some(&Verdict::Excluded), "{row}: {id}");
        }
    }
}

#[test]
fn ranking_weighs_distance_against_load() {
    let policy = policy_with(Conditions::default(), vec![Action::DispatchMobileTeam]);
    let two_teams = |near_load: u32| {
        small_directory(move |d| {
            d.teams = vec![
                team(
                    "near",
                    "Ardabil",
                    DutyStatus::Available,
                    near_load,
                    (38.25, 48.29),
                ),
                // About 11 km away.
                team("far", "Ardabil", DutyStatus::Available, 0, (38.35, 48.29)),
            ];
        })
    };
    assert_eq!(
        chosen(&route(&policy, &two_teams(0), &request("Ardabil")), 0).as_deref(),
        Some("near")
    );
    let d = route(&policy, &two_teams(1), &request("Ardabil"));
    assert_eq!(
        chosen(&d, 0).as_deref(),
        Some("far"),
        "a case in hand outweighs 11 km"
    );
    assert_eq!(verdict_of(&d, 0, "near"), Verdict::RankedLower);
}

#[test]
fn the_same_inputs_give_the_same_decision_whatever_the_file_order() {
    let policy = Policy::parse(SHIPPED_POLICY, 1).unwrap();
    let seed: DirectoryData = toml::from_str(include_str!("../../../seed/directory.toml")).unwrap();
    let mut reversed = seed.clone();
    reversed.counties.reverse();
    reversed.service_points.reverse();
    reversed.teams.reverse();
    let (a, b) = (
        Directory::new(seed).unwrap(),
        Directory::new(reversed).unwrap(),
    );
    let mut r = request("Tehran");
    r.province = "IR-23".into();
    r.priority = Priority::P0Immediate;
    r.flags = vec![Flag::ViolenceOngoing, Flag::MinorsInvolved];
    assert_eq!(route(&policy, &a, &r), route(&policy, &b, &r));
    assert_eq!(route(&policy, &a, &r), route(&policy, &a, &r));
}

#[test]
fn bad_policies_are_refused_with_every_problem_named() {
    let rule = |id: &str, priority: i32, when: Conditions, then: Vec<Action>| Rule {
        id: id.into(),
        priority,
        description: String::new(),
        when,
        then,
    };
    let conditional = Conditions {
        lines: vec![Line::Hotline1480],
        ..Default::default()
    };
    let rows: Vec<(&str, Vec<Rule>, &str)> = vec![
        (
            "no default rule",
            vec![rule("a", 1, conditional.clone(), vec![])],
            "no default rule",
        ),
        (
            "a repeated id",
            vec![
                rule("a", 1, conditional.clone(), vec![]),
                rule("a", 0, Conditions::default(), vec![]),
            ],
            "appears twice",
        ),
        (
            "a shared priority",
            vec![
                rule("a", 0, conditional.clone(), vec![]),
                rule("b", 0, Conditions::default(), vec![]),
            ],
            "shares priority 0",
        ),
        (
            "notifying a centre",
            vec![rule(
                "a",
                0,
                Conditions::default(),
                vec![Action::Notify {
                    body: ServicePointKind::SafeHouse,
                    only_if: vec![],
                }],
            )],
            "not an outside body",
        ),
        (
            "referring to the police",
            vec![rule(
                "a",
                0,
                Conditions::default(),
                vec![Action::ReferTo {
                    kind: ServicePointKind::Police110,
                    point: None,
                }],
            )],
            "use notify",
        ),
        (
            "an unknown province",
            vec![
                rule(
                    "a",
                    1,
                    Conditions {
                        provinces: vec!["IR-99".into()],
                        ..Default::default()
                    },
                    vec![],
                ),
                rule("b", 0, Conditions::default(), vec![]),
            ],
            "unknown province IR-99",
        ),
    ];
    for (what, rules, message) in rows {
        let error = Policy::new(PolicyDocument::of(rules), 1).expect_err(what);
        assert!(error.to_string().contains(message), "{what}: {error}");
    }
    for (what, text) in [
        ("not TOML", "rules = ["),
        (
            "an unknown condition",
            "[[rules]]\nid = \"a\"\npriority = 0\nwhen = { colour = \"red\" }\n",
        ),
        (
            "an unknown action",
            "[[rules]]\nid = \"a\"\npriority = 0\nthen = [{ action = \"pray\" }]\n",
        ),
    ] {
        assert!(Policy::parse(text, 1).is_err(), "{what}");
    }
}

#[test]
fn a_freed_team_offered_to_a_waiting_case_is_the_only_one_looked_at() {
    let directory = small_directory(|d| {
        d.teams = vec![
            team("near", "Ardabil", DutyStatus::Available, 0, (38.25, 48.29)),
            team(
                "freed",
                "Meshgin Shahr",
                DutyStatus::Available,
                0,
                (38.40, 47.68),
            ),
        ];
    });
    let none = HashSet::new();
    let action = Action::DispatchMobileTeam;
    let found = reroute(
        &directory,
        &InForce::none(),
        &request("Ardabil"),
        &action,
        &none,
        Some("freed"),
        false,
    );
    let id = |found: &ActionDecision| {
        found.destination.as_ref().map(|d| match d {
            Destination::Team { id, .. } | Destination::ServicePoint { id, .. } => id.clone(),
        })
    };
    // The nearer free team is not even listed: the offer is of the freed one.
    assert_eq!(id(&found).as_deref(), Some("freed"));
    assert!(found.candidates.iter().all(|c| c.id == "freed"));
    // A freed team this case already tried is not offered to it again.
    let tried: HashSet<String> = ["freed".to_owned()].into();
    let found = reroute(
        &directory,
        &InForce::none(),
        &request("Ardabil"),
        &action,
        &tried,
        Some("freed"),
        false,
    );
    assert_eq!(id(&found), None);
    // Without the restriction the nearer team is chosen.
    let found = reroute(
        &directory,
        &InForce::none(),
        &request("Ardabil"),
        &action,
        &none,
        None,
        false,
    );
    assert_eq!(id(&found).as_deref(), Some("near"));
}
