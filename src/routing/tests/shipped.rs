//! The shipped policy over the seed directory, as the call centres will meet it.

use super::*;

fn seeded() -> (Policy, Directory) {
    let data: DirectoryData = toml::from_str(include_str!("../../../seed/directory.toml")).unwrap();
    (
        Policy::parse(SHIPPED_POLICY, 1).unwrap(),
        Directory::new(data).unwrap(),
    )
}

fn case(
    line: Line,
    province: &str,
    county: &str,
    category: Category,
    priority: Priority,
    flags: Vec<Flag>,
) -> RoutingRequest {
    let minors = flags.contains(&Flag::MinorsInvolved);
    RoutingRequest {
        line,
        categories: vec![category],
        priority,
        flags,
        subjects: vec![SubjectFacts {
            sex: Sex::Female,
            age_range: Some(if minors { (12, 12) } else { (30, 30) }),
            minor: Some(minors),
        }],
        province: province.into(),
        county: county.into(),
        position: None,
        neighbourhood: None,
        at: tehran(22, 10, 0),
    }
}

fn destinations(d: &Decision) -> Vec<String> {
    (0..d.actions.len()).filter_map(|i| chosen(d, i)).collect()
}

#[test]
fn the_seed_directory_and_the_shipped_policy_load() {
    let (policy, directory) = seeded();
    assert!(policy.rules().len() >= 10);
    for province in ["IR-23", "IR-24", "IR-09", "IR-26", "IR-16"] {
        assert!(!directory.counties_of(province).is_empty(), "{province}");
    }
    assert_eq!(
        directory
            .county("IR-09", "نیشابور")
            .map(|c| c.name_en.as_str()),
        Some("Neyshabur")
    );
    assert!(
        directory
            .data()
            .counties
            .iter()
            .any(|c| c.covered_by.is_some())
    );
}

#[test]
fn the_shipped_policy_encodes_the_lines_practice() {
    use Category as C;
    use Flag as F;
    use Line::*;
    use Priority::*;
    let (policy, directory) = seeded();
    let rows: Vec<(&str, RoutingRequest, &str, Vec<&str>)> = vec![
        (
            "a 1480 caller with a plan goes to the province's 123 centre",
            case(
                Hotline1480,
                "IR-23",
                "Tehran",
                C::SuicidalThoughts,
                P1Urgent,
                vec![],
            ),
            "hotline-acute-suicide-to-123",
            vec!["thr-123"],
        ),
        (
            "a 1480 attempt in progress also alerts EMS",
            case(
                Hotline1480,
                "IR-09",
                "Neyshabur",
                C::SuicideAttempt,
                P0Immediate,
                vec![F::AttemptInProgress],
            ),
            "hotline-acute-suicide-to-123",
            vec!["mhd-123", "mhd-neyshabur-ems"],
        ),
        (
            "a P0 123 child case with violence gets a team, the police and the prosecutor's unit",
            case(
                Emergency123,
                "IR-24",
                "Ardabil",
                C::ChildAbusePhysical,
                P0Immediate,
                vec![F::ViolenceOngoing, F::MinorsInvolved],
            ),
            "emergency-acute-team",
            vec!["ard-t1", "ard-ardabil-police", "ard-prosecutor"],
        ),
        (
            "an injury brings EMS",
            case(
                Emergency123,
                "IR-26",
                "Qazvin",
                C::SpouseAbuse,
                P0Immediate,
                vec![F::ViolenceOngoing, F::InjuryOrMedicalNeed],
            ),
            "emergency-acute-team",
            vec!["qzv-t1", "qzv-qazvin-police", "qzv-qazvin-ems"],
        ),
        (
            "with Ilam's only team busy, a P1 case goes to the crisis centre",
            case(
                Emergency123,
                "IR-16",
                "Ilam",
                C::RunawayOrExpelled,
                P1Urgent,
                vec![],
            ),
            "emergency-acute-no-team",
            vec!["ilm-crisis-1"],
        ),
        (
            "lower-risk suicidal thoughts go to a suicide-prevention centre",
            case(
                Hotline1480,
                "IR-23",
                "Tehran",
                C::SuicidalThoughts,
                P2Priority,
                vec![],
            ),
            "suicide-specialised",
            vec!["thr-suicide-1"],
        ),
        (
            "neglect of a child goes to the social-service base and the prosecutor's unit",
            case(
                Emergency123,
                "IR-09",
                "Mashhad",
                C::ChildNeglect,
                P2Priority,
                vec![F::MinorsInvolved],
            ),
            "child-p2-social-base",
            vec!["mhd-mashhad-base", "mhd-prosecutor"],
        ),
        (
            "counselling needs go to a counselling centre",
            case(
                Hotline1480,
                "IR-26",
                "Takestan",
                C::Parenting,
                P3Routine,
                vec![],
            ),
            "counselling",
            vec!["qzv-counsel-1"],
        ),
        (
            "an information call goes nowhere",
            case(
                Hotline1480,
                "IR-23",
                "Tehran",
                C::InformationOnly,
                P4OutsideMandate,
                vec![],
            ),
            "outside-mandate",
            vec![],
        ),
    ];
    for (what, request, rule, expected) in rows {
        let decision = route(&policy, &directory, &request);
        assert_eq!(decision.rule_id, rule, "{what}");
        assert_eq!(destinations(&decision), expected, "{what}");
        // With no team free, the decision keeps the team search and is unrouted for a team:
        // the supervisors are alerted, and the interim measures still go out.
        let no_team = rule == "emergency-acute-no-team";
        assert_eq!(decision.unrouted(), no_team, "{what}");
        if no_team {
            let search = &decision.actions[0];
            assert_eq!(search.action, Action::DispatchMobileTeam);
            assert!(search.destination.is_none());
            assert!(
                search
                    .candidates
                    .iter()
                    .any(|c| c.verdict == Verdict::Unavailable(DutyStatus::Busy)),
                "{what}: {:?}",
                search.candidates
            );
        }
    }
}
