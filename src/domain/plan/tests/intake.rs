//! Planning intakes.

use super::*;

#[test]
fn new_cases_are_numbered_per_line_routed_once_each_and_given_their_timers() {
    let batch = vec![
        emergency("a", 1, None),
        hotline("b"),
        emergency("c", 3, None),
    ];
    let mut routed = Vec::new();
    let mut route = |intake: &NewIntake| {
        routed.push(intake.request_id.as_str().to_owned());
        team_and_centre().into()
    };
    let plan = plan_intakes(
        &batch,
        fresh_load(&batch),
        &mut route,
        &SlaTargets::default(),
    )
    .unwrap();
    assert_eq!(routed, ["a", "b", "c"]);
    let references: Vec<_> = plan.cases.iter().map(|c| c.reference.clone()).collect();
    assert_eq!(
        references,
        [
            reference::format(Line::Emergency123, 901),
            reference::format(Line::Hotline1480, 42),
            reference::format(Line::Emergency123, 902),
        ]
    );
    assert_eq!(plan.last_numbers[&Line::Emergency123], 902);
    assert_eq!(plan.last_numbers[&Line::Hotline1480], 42);

    let case = &plan.cases[0];
    assert_eq!(case.dispatches.len(), 1);
    assert_eq!(case.referrals.len(), 1);
    // A team's acknowledgement and arrival, a centre's acceptance.
    let mut kinds: Vec<_> = case.timers.iter().map(|t| t.kind).collect();
    kinds.sort();
    let mut expected = vec![
        SlaKind::TeamAcknowledgement,
        SlaKind::OnScene,
        SlaKind::ReferralAcceptance,
    ];
    expected.sort();
    assert_eq!(kinds, expected);
    let kinds: Vec<_> = case.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::CaseRecorded,
            EventKind::CaseRouted,
            EventKind::DispatchAssigned
        ]
    );
    assert_eq!(plan.audit.len(), 3);
    assert!(
        plan.outcomes
            .iter()
            .all(|o| matches!(o, IntakeOutcome::Recorded(_)))
    );
}

#[test]
fn a_retry_is_answered_from_its_receipt_and_a_changed_payload_is_a_conflict() {
    let batch = vec![
        emergency("same", 1, None),
        emergency("changed", 2, None),
        emergency("new", 3, None),
    ];
    let mut first = plan_intakes(
        &batch[..1],
        fresh_load(&batch[..1]),
        &mut |_| team_and_centre().into(),
        &SlaTargets::default(),
    )
    .unwrap();
    let receipt = first.cases.remove(0).receipt;
    let mut load = fresh_load(&batch);
    load.stored[0] = Some(StoredIntake {
        payload_hash: vec![1; 32],
        receipt: receipt.clone(),
    });
    load.stored[1] = Some(StoredIntake {
        payload_hash: vec![7; 32],
        receipt: receipt.clone(),
    });
    let mut routed = 0;
    let plan = plan_intakes(
        &batch,
        load,
        &mut |_| {
            routed += 1;
            team_and_centre().into()
        },
        &SlaTargets::default(),
    )
    .unwrap();
    // Neither retry is routed, numbered or recorded again.
    assert_eq!(routed, 1);
    assert_eq!(plan.cases.len(), 1);
    assert_eq!(plan.last_numbers[&Line::Emergency123], 901);
    match &plan.outcomes[0] {
        IntakeOutcome::Replayed(replayed) => {
            assert!(replayed.replayed);
            assert_eq!(replayed.case_id, receipt.case_id);
        }
        other => panic!("expected a replay, got {other:?}"),
    }
    assert_eq!(plan.outcomes[1], IntakeOutcome::Conflict);
    // Every intake is audited, the conflict as refused.
    let outcomes: Vec<_> = plan.audit.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["ok", "already_exists", "ok"]);
}

#[test]
fn earlier_calls_from_a_number_count_across_the_database_and_the_batch() {
    let batch = vec![
        emergency("a", 1, Some("+98 912 000 0000")),
        emergency("b", 2, Some("+98 912 000 0000")),
        emergency("c", 3, None),
    ];
    let mut load = fresh_load(&batch);
    load.contacts.insert(b"+98 912 000 0000".to_vec(), 2);
    let plan = plan_intakes(
        &batch,
        load,
        &mut |_| team_and_centre().into(),
        &SlaTargets::default(),
    )
    .unwrap();
    let earlier: Vec<_> = plan
        .cases
        .iter()
        .map(|c| {
            c.events[0].data["earlier_contacts_from_caller"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(earlier, [2, 3, 0]);
    // The recorded event holds nothing that names or places the person.
    let recorded = plan.cases[0].events[0].data.to_string();
    assert!(!recorded.contains("912"));
}
