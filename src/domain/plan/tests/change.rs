//! Planning changes.

use super::*;
use crate::domain::change::CaseOutcome;
use crate::domain::decision::DutyStatus;
use crate::domain::plan::change::{LoadedTeam, ReleasedTeam};
use crate::domain::queue::{self, Wait, WaitEnd};

fn loaded_case(priority: Priority, minors: bool) -> LoadedCase {
    LoadedCase {
        case_id: Uuid::now_v7(),
        line: Line::Emergency123,
        status: CaseStatus::Open,
        priority,
        outcome: None,
        primary_category: Category::ChildAbusePhysical,
        province: "IR-23".into(),
        county: "Tehran".into(),
        minors_involved: minors,
        version: 4,
        routing_status: RoutingStatus::Routed,
        recorded_by: "operator-7".into(),
    }
}

fn load(case: LoadedCase, target: Target) -> ChangeLoad {
    let intake = emergency("x", 1, None);
    ChangeLoad {
        case,
        target,
        active_dispatches: 1,
        pending_follow_ups: 0,
        teams: vec!["team-a".into()],
        service_points: vec!["centre-1".into()],
        details: Some(CaseDetails {
            intake: intake.intake,
            action: intake.action,
            assessment: intake.assessment,
        }),
        decisions: vec![(1, team_and_centre())],
        point_kind: None,
        prosecutor_timers: 0,
        priority_timers: vec![],
        breach_subject: None,
        // team-a: available with one case of its own, now carrying one dispatch.
        team: Some(LoadedTeam {
            team_id: "team-a".into(),
            status: DutyStatus::Busy,
            load: 2,
            open_dispatches: 1,
        }),
        wait: None,
    }
}

fn dispatch(case_id: Uuid, status: DispatchStatus) -> LoadedDispatch {
    LoadedDispatch {
        dispatch_id: Uuid::now_v7(),
        case_id,
        team_id: "team-a".into(),
        status,
        version: 2,
        updated_at: at(),
    }
}

fn referral(case_id: Uuid, status: ReferralStatus) -> LoadedReferral {
    LoadedReferral {
        referral_id: Uuid::now_v7(),
        case_id,
        service_point_id: "centre-1".into(),
        purpose: Purpose::Referral,
        status,
        version: 1,
        updated_at: at(),
    }
}

fn change(change: Change, role: ActorRole, requester: Requester) -> CaseChange {
    CaseChange {
        change,
        expected_version: None,
        actor: Actor {
            role,
            id: "someone".into(),
        },
        requester,
        at: at() + Duration::minutes(10),
        key: None,
        occurred_at: None,
    }
}

fn anyone() -> Requester {
    requester(Reach::Everywhere, Parts::Any)
}

/// Plans `change` with a router that offers `offer` and records what it was asked.
fn plan(
    change: &CaseChange,
    load: ChangeLoad,
    offer: Option<Destination>,
    asked: &mut Vec<(Action, HashSet<String>)>,
) -> Result<ChangePlan, Error> {
    let mut reroute = |ask: &RerouteAsk<'_>| {
        asked.push((ask.action.clone(), ask.tried.clone()));
        chosen(ask.action.clone(), offer.clone()).into()
    };
    plan_change(change, load, &SlaTargets::default(), &mut reroute)
}

#[test]
fn a_declined_dispatch_frees_its_team_and_sends_the_next_one() {
    let case = loaded_case(Priority::P0Immediate, true);
    let d = dispatch(case.case_id, DispatchStatus::Assigned);
    let declined = change(
        Change::Dispatch {
            dispatch_id: d.dispatch_id,
            to: DispatchStatus::Declined,
            reason: Some("another call".into()),
            position: None,
        },
        ActorRole::MobileTeam,
        requester(
            Reach::Team("team-a".into()),
            Parts::TeamDispatches("team-a".into()),
        ),
    );
    let mut asked = Vec::new();
    let plan = plan(
        &declined,
        load(case.clone(), Target::Dispatch(d.clone())),
        Some(team("team-b")),
        &mut asked,
    )
    .unwrap();
    // Routing is asked for the same action, leaving out every destination tried.
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].0, Action::DispatchMobileTeam);
    assert!(asked[0].1.contains("team-a") && asked[0].1.contains("centre-1"));
    let w = &plan.writes;
    let freed = ReleasedTeam {
        team_id: "team-a".into(),
        status: DutyStatus::Available,
        load: 1,
    };
    assert!(w.contains(&Write::Team(freed.clone())));
    assert!(w.contains(&Write::CancelTimers {
        of: Timers::Of(d.dispatch_id)
    }));
    assert!(
        w.iter()
            .any(|w| matches!(w, Write::Decision { decision_no: 2, .. }))
    );
    assert!(
        w.iter()
            .any(|w| matches!(w, Write::NewDispatch(n) if n.team_id == "team-b"))
    );
    let started: Vec<_> = w
        .iter()
        .filter_map(|w| match w {
            Write::StartTimer(t) => Some(t.kind),
            _ => None,
        })
        .collect();
    assert_eq!(started, [SlaKind::TeamAcknowledgement, SlaKind::OnScene]);
    assert!(plan.directory_moved);
    assert_eq!(plan.outcome.released_team, Some(freed));
    assert_eq!(plan.outcome.version, 3);
    assert_eq!(plan.outcome.case_version, 5);
    let kinds: Vec<_> = plan.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::DispatchDeclined,
            EventKind::CaseRerouted,
            EventKind::DispatchAssigned
        ]
    );
}

#[test]
fn a_rejected_referral_goes_to_the_next_centre_and_an_empty_directory_leaves_it_unrouted() {
    let case = loaded_case(Priority::P2Priority, false);
    let r = referral(case.case_id, ReferralStatus::Requested);
    let rejected = change(
        Change::Referral {
            referral_id: r.referral_id,
            to: ReferralStatus::Rejected,
            reason: Some("full".into()),
        },
        ActorRole::ReceivingCentre,
        requester(
            Reach::ServicePoint("centre-1".into()),
            Parts::ReferralsTo("centre-1".into()),
        ),
    );
    let next = point("centre-2", ServicePointKind::CrisisInterventionCentre);
    let mut asked = Vec::new();
    let routed = plan(
        &rejected,
        load(case.clone(), Target::Referral(r.clone())),
        Some(next),
        &mut asked,
    )
    .unwrap();
    assert!(
        routed
            .writes
            .iter()
            .any(|w| matches!(w, Write::NewReferral(n) if n.service_point_id == "centre-2"))
    );
    assert!(routed.writes.contains(&Write::CancelTimers {
        of: Timers::Of(r.referral_id)
    }));
    // A centre changes nothing of the teams.
    assert!(!routed.directory_moved);

    let unrouted = plan(&rejected, load(case, Target::Referral(r)), None, &mut asked).unwrap();
    assert!(unrouted.writes.contains(&Write::Case {
        status: CaseStatus::Open,
        priority: Priority::P2Priority,
        outcome: None,
        routing_status: RoutingStatus::Unrouted,
    }));
    assert!(
        unrouted
            .events
            .iter()
            .any(|e| e.kind == EventKind::CaseUnrouted)
    );
}

#[test]
fn a_team_that_never_acknowledged_is_called_off_and_replaced() {
    let case = loaded_case(Priority::P0Immediate, false);
    let d = dispatch(case.case_id, DispatchStatus::Assigned);
    let timer = LoadedTimer {
        timer_id: Uuid::now_v7(),
        case_id: case.case_id,
        kind: SlaKind::TeamAcknowledgement,
        subject: Some(d.dispatch_id),
        due: at() + Duration::minutes(3),
        started: at(),
        pending: true,
    };
    let breach = change(
        Change::SlaBreach {
            timer_id: timer.timer_id,
        },
        ActorRole::System,
        Requester::service("sla", "sla_breach"),
    );
    let mut loaded = load(case.clone(), Target::Timer(timer.clone()));
    loaded.breach_subject = Some(Target::Dispatch(d.clone()));
    let mut asked = Vec::new();
    let plan = plan(&breach, loaded, Some(team("team-b")), &mut asked).unwrap();
    let w = &plan.writes;
    assert_eq!(
        w[0],
        Write::BreachTimer {
            timer_id: timer.timer_id
        }
    );
    assert!(w.contains(&Write::Dispatch {
        dispatch_id: d.dispatch_id,
        to: DispatchStatus::Cancelled,
        reason: Some("team_acknowledgement deadline missed".into()),
    }));
    assert!(
        w.iter()
            .any(|w| matches!(w, Write::Team(t) if t.team_id == "team-a"))
    );
    assert!(
        w.iter()
            .any(|w| matches!(w, Write::NewDispatch(n) if n.team_id == "team-b"))
    );
    assert_eq!(plan.audit.action, "sla_breach");
    assert_eq!(plan.audit.role, "system");

    // A timer met or moved meanwhile is not breached.
    let mut late = load(
        case,
        Target::Timer(LoadedTimer {
            due: at() + Duration::hours(1),
            ..timer
        }),
    );
    late.breach_subject = Some(Target::Dispatch(d));
    assert!(matches!(
        super::change::plan_change(&breach, late, &SlaTargets::default(), &mut |ask| chosen(
            ask.action.clone(),
            None
        )
        .into()),
        Err(Error::FailedPrecondition(_))
    ));
}

#[test]
fn a_missed_deadline_with_nothing_to_call_off_alerts_the_supervisors() {
    let case = loaded_case(Priority::P1Urgent, false);
    let d = dispatch(case.case_id, DispatchStatus::EnRoute);
    let timer = LoadedTimer {
        timer_id: Uuid::now_v7(),
        case_id: case.case_id,
        kind: SlaKind::OnScene,
        subject: Some(d.dispatch_id),
        due: at(),
        started: at() - Duration::hours(1),
        pending: true,
    };
    let breach = change(
        Change::SlaBreach {
            timer_id: timer.timer_id,
        },
        ActorRole::System,
        Requester::service("sla", "sla_breach"),
    );
    let mut asked = Vec::new();
    let plan = plan(&breach, load(case, Target::Timer(timer)), None, &mut asked).unwrap();
    assert!(asked.is_empty());
    let kinds: Vec<_> = plan.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::SlaBreached, EventKind::SupervisorsAlerted]
    );
    assert!(!plan.directory_moved);
}

#[test]
fn a_child_taken_from_the_scene_starts_the_prosecutors_deadline_once() {
    let targets = SlaTargets::default();
    let transporting = |case: &LoadedCase, d: &LoadedDispatch| {
        change(
            Change::Dispatch {
                dispatch_id: d.dispatch_id,
                to: DispatchStatus::Transporting,
                reason: None,
                position: Some((35.7, 51.4)),
            },
            ActorRole::MobileTeam,
            requester(
                Reach::Area {
                    province: case.province.clone(),
                    county: None,
                },
                Parts::Any,
            ),
        )
    };
    let notice = |plan: &ChangePlan| {
        plan.writes
            .iter()
            .filter(|w| matches!(w, Write::StartTimer(t) if t.kind == SlaKind::ProsecutorNotice && t.subject.is_none()))
            .count()
    };
    let case = loaded_case(Priority::P0Immediate, true);
    let d = dispatch(case.case_id, DispatchStatus::OnScene);
    let mut asked = Vec::new();
    let first = plan(
        &transporting(&case, &d),
        load(case.clone(), Target::Dispatch(d.clone())),
        None,
        &mut asked,
    )
    .unwrap();
    assert_eq!(notice(&first), 1);
    let due = first.writes.iter().find_map(|w| match w {
        Write::StartTimer(t) if t.kind == SlaKind::ProsecutorNotice => Some(t.due),
        _ => None,
    });
    assert_eq!(
        due,
        targets.due(
            SlaKind::ProsecutorNotice,
            Priority::P0Immediate,
            at() + Duration::minutes(10)
        )
    );
    // The team's position goes to the sealed step, never into the event.
    assert!(first.writes.contains(&Write::DispatchStep {
        dispatch_id: d.dispatch_id,
        status: DispatchStatus::Transporting,
        position: Some((35.7, 51.4)),
    }));
    assert!(!first.events[0].data.to_string().contains("35.7"));

    let mut again = load(case.clone(), Target::Dispatch(d.clone()));
    again.prosecutor_timers = 1;
    assert_eq!(
        notice(&plan(&transporting(&case, &d), again, None, &mut asked).unwrap()),
        0
    );

    let adult = loaded_case(Priority::P0Immediate, false);
    let d = dispatch(adult.case_id, DispatchStatus::OnScene);
    let plan_adult = plan(
        &transporting(&adult, &d),
        load(adult.clone(), Target::Dispatch(d)),
        None,
        &mut asked,
    )
    .unwrap();
    assert_eq!(notice(&plan_adult), 0);
    assert!(asked.is_empty());
}

#[test]
fn the_prosecutor_taking_the_case_meets_its_notice_deadline() {
    let case = loaded_case(Priority::P0Immediate, true);
    let r = referral(case.case_id, ReferralStatus::Requested);
    let accepted = change(
        Change::Referral {
            referral_id: r.referral_id,
            to: ReferralStatus::Accepted,
            reason: None,
        },
        ActorRole::ReceivingCentre,
        anyone(),
    );
    let mut loaded = load(case.clone(), Target::Referral(r.clone()));
    loaded.point_kind = Some(ServicePointKind::ProsecutorChildProtection);
    let mut asked = Vec::new();
    let plan_ = plan(&accepted, loaded, None, &mut asked).unwrap();
    assert!(plan_.writes.contains(&Write::MeetTimers {
        of: Timers::OfCase,
        kind: SlaKind::ProsecutorNotice
    }));
    assert!(plan_.writes.contains(&Write::MeetTimers {
        of: Timers::Of(r.referral_id),
        kind: SlaKind::ReferralAcceptance
    }));

    let mut welfare = load(case, Target::Referral(r));
    welfare.point_kind = Some(ServicePointKind::CrisisInterventionCentre);
    let plan_ = plan(&accepted, welfare, None, &mut asked).unwrap();
    assert!(!plan_.writes.iter().any(|w| matches!(
        w,
        Write::MeetTimers {
            of: Timers::OfCase,
            ..
        }
    )));
}

#[test]
fn a_raised_priority_moves_pending_deadlines_from_when_each_started() {
    let targets = SlaTargets::default();
    let case = loaded_case(Priority::P2Priority, false);
    let started = at() - Duration::minutes(20);
    let timer = LoadedTimer {
        timer_id: Uuid::now_v7(),
        case_id: case.case_id,
        kind: SlaKind::OnScene,
        subject: Some(Uuid::now_v7()),
        due: started + Duration::hours(72),
        started,
        pending: true,
    };
    let raise = change(
        Change::Priority {
            case_id: case.case_id,
            to: Priority::P0Immediate,
            reason: Some("weapon seen".into()),
        },
        ActorRole::CallCentre,
        anyone(),
    );
    let mut loaded = load(case, Target::Case);
    loaded.priority_timers = vec![timer.clone()];
    let mut asked = Vec::new();
    let plan = plan(&raise, loaded, None, &mut asked).unwrap();
    assert_eq!(
        plan.writes[0],
        Write::RescheduleTimer {
            timer_id: timer.timer_id,
            due: targets
                .due(SlaKind::OnScene, Priority::P0Immediate, started)
                .unwrap(),
        }
    );
    assert!(matches!(
        plan.writes.last(),
        Some(Write::Case {
            priority: Priority::P0Immediate,
            ..
        })
    ));
}

#[test]
fn a_change_outside_the_requesters_reach_or_parts_is_refused() {
    let case = loaded_case(Priority::P1Urgent, false);
    let d = dispatch(case.case_id, DispatchStatus::Assigned);
    let ack = |requester| {
        change(
            Change::Dispatch {
                dispatch_id: d.dispatch_id,
                to: DispatchStatus::Acknowledged,
                reason: None,
                position: None,
            },
            ActorRole::MobileTeam,
            requester,
        )
    };
    let mut asked = Vec::new();
    // Another province's operator does not learn the dispatch exists.
    let elsewhere = ack(requester(
        Reach::Area {
            province: "IR-01".into(),
            county: None,
        },
        Parts::Any,
    ));
    assert!(matches!(
        plan(
            &elsewhere,
            load(case.clone(), Target::Dispatch(d.clone())),
            None,
            &mut asked
        ),
        Err(Error::NotFound("dispatch"))
    ));
    // A team on the case may not move another team's dispatch.
    let other_team = ack(requester(
        Reach::Team("team-a".into()),
        Parts::TeamDispatches("team-b".into()),
    ));
    assert!(matches!(
        plan(
            &other_team,
            load(case.clone(), Target::Dispatch(d.clone())),
            None,
            &mut asked
        ),
        Err(Error::PermissionDenied(_))
    ));
    // A stale version is refused before anything is planned.
    let mut stale = ack(anyone());
    stale.expected_version = Some(1);
    assert!(matches!(
        plan(&stale, load(case, Target::Dispatch(d)), None, &mut asked),
        Err(Error::Stale(_))
    ));
}

#[test]
fn a_team_with_no_open_dispatch_is_back_to_its_duty_state_whatever_the_sequence() {
    // A team's life under the service, as the store and the planner move it: taken by routing
    // (busy, one more case, one more open dispatch), freed when a dispatch ends (planned by
    // ReleasedTeam::after_release), and its own duty changes in between. Random sequences from
    // a seeded generator; whatever happened, a team left with no open dispatch is in the duty
    // state it last chose, carrying only its own cases.
    let mut seed = 0x5eed_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _ in 0..2_000 {
        let own_cases = next(3) as u32;
        let mut team = LoadedTeam {
            team_id: "t".into(),
            status: DutyStatus::Available,
            load: own_cases,
            open_dispatches: 0,
        };
        let mut chosen = DutyStatus::Available;
        for _ in 0..next(40) {
            match next(4) {
                // Routing takes only an available or busy team.
                0 | 1 if matches!(team.status, DutyStatus::Available | DutyStatus::Busy) => {
                    team.status = DutyStatus::Busy;
                    team.load += 1;
                    team.open_dispatches += 1;
                }
                2 if team.open_dispatches > 0 => {
                    let freed = ReleasedTeam::after_release(&team);
                    team.status = freed.status;
                    team.load = freed.load;
                    team.open_dispatches -= 1;
                }
                3 => {
                    // The team reports a duty status of its own.
                    chosen = [
                        DutyStatus::Available,
                        DutyStatus::OffDuty,
                        DutyStatus::OutOfService,
                    ][next(3) as usize];
                    team.status = chosen;
                }
                _ => {}
            }
        }
        while team.open_dispatches > 0 {
            let freed = ReleasedTeam::after_release(&team);
            team.status = freed.status;
            team.load = freed.load;
            team.open_dispatches -= 1;
        }
        assert_eq!(team.status, chosen, "{team:?}");
        assert_eq!(team.load, own_cases, "{team:?}");
    }
}

#[test]
fn a_referral_that_ends_gives_its_place_back() {
    let case = loaded_case(Priority::P2Priority, false);
    let mut asked = Vec::new();
    let move_to = |r: &LoadedReferral, to, reason: Option<&str>| {
        change(
            Change::Referral {
                referral_id: r.referral_id,
                to,
                reason: reason.map(str::to_owned),
            },
            ActorRole::ReceivingCentre,
            anyone(),
        )
    };
    let requested = referral(case.case_id, ReferralStatus::Requested);
    let accepted = plan(
        &move_to(&requested, ReferralStatus::Accepted, None),
        load(case.clone(), Target::Referral(requested.clone())),
        None,
        &mut asked,
    )
    .unwrap();
    assert_eq!(
        accepted.outcome.released_place, None,
        "an accepted referral still holds it"
    );
    for (from, to, reason) in [
        (
            ReferralStatus::Requested,
            ReferralStatus::Rejected,
            Some("full"),
        ),
        (ReferralStatus::InProgress, ReferralStatus::Completed, None),
        (
            ReferralStatus::InProgress,
            ReferralStatus::Failed,
            Some("left"),
        ),
    ] {
        let r = referral(case.case_id, from);
        let ended = plan(
            &move_to(&r, to, reason),
            load(case.clone(), Target::Referral(r.clone())),
            None,
            &mut asked,
        )
        .unwrap();
        assert_eq!(
            ended.outcome.released_place.as_deref(),
            Some("centre-1"),
            "{to:?}"
        );
    }
}

fn waiting(case: &LoadedCase, priority: Priority) -> Wait {
    Wait {
        wait_id: Uuid::now_v7(),
        case_id: case.case_id,
        province: case.province.clone(),
        rank: queue::rank(priority),
        since: at(),
    }
}

#[test]
fn a_p0_case_whose_team_declined_and_found_no_other_waits_for_the_next_free_one() {
    let case = loaded_case(Priority::P0Immediate, true);
    let d = dispatch(case.case_id, DispatchStatus::Assigned);
    let declined = change(
        Change::Dispatch {
            dispatch_id: d.dispatch_id,
            to: DispatchStatus::Declined,
            reason: Some("another call".into()),
            position: None,
        },
        ActorRole::MobileTeam,
        requester(
            Reach::Team("team-a".into()),
            Parts::TeamDispatches("team-a".into()),
        ),
    );
    let mut asked = Vec::new();
    let plan = plan(
        &declined,
        load(case.clone(), Target::Dispatch(d.clone())),
        None,
        &mut asked,
    )
    .unwrap();
    let starts: Vec<_> = plan
        .writes
        .iter()
        .filter_map(|w| match w {
            Write::StartWait { province, rank, .. } => Some((province.as_str(), *rank)),
            _ => None,
        })
        .collect();
    assert_eq!(starts, [("IR-23", 0)]);
    let decision = plan.outcome.reroute.expect("routed again");
    assert!(decision.notes.iter().any(|n| n.contains("team queue")));
    // The team that declined is free again and offered to the waiting cases.
    assert_eq!(plan.offer.map(|o| o.team_id).as_deref(), Some("team-a"));
}

#[test]
fn a_team_still_busy_elsewhere_is_not_offered() {
    let case = loaded_case(Priority::P0Immediate, true);
    let d = dispatch(case.case_id, DispatchStatus::OnScene);
    let cleared = change(
        Change::Dispatch {
            dispatch_id: d.dispatch_id,
            to: DispatchStatus::Cleared,
            reason: None,
            position: None,
        },
        ActorRole::MobileTeam,
        requester(
            Reach::Team("team-a".into()),
            Parts::TeamDispatches("team-a".into()),
        ),
    );
    let mut busy = load(case.clone(), Target::Dispatch(d.clone()));
    busy.team = Some(LoadedTeam {
        team_id: "team-a".into(),
        status: DutyStatus::Busy,
        load: 2,
        open_dispatches: 2,
    });
    let plan_busy = plan(&cleared, busy, None, &mut Vec::new()).unwrap();
    assert_eq!(plan_busy.offer, None);
    let plan_free = plan(
        &cleared,
        load(case, Target::Dispatch(d)),
        None,
        &mut Vec::new(),
    )
    .unwrap();
    assert_eq!(
        plan_free.offer.map(|o| o.team_id).as_deref(),
        Some("team-a")
    );
}

#[test]
fn an_offered_team_ends_the_wait_and_an_unreachable_one_is_refused() {
    let case = loaded_case(Priority::P1Urgent, false);
    let offer = change(
        Change::OfferTeam {
            case_id: case.case_id,
            team_id: "team-q".into(),
        },
        ActorRole::System,
        anyone(),
    );
    let mut with_wait = load(case.clone(), Target::Case);
    with_wait.case.routing_status = RoutingStatus::Unrouted;
    let wait = waiting(&case, Priority::P1Urgent);
    with_wait.wait = Some(wait.clone());
    let mut asked = Vec::new();
    let plan_sent = plan(&offer, with_wait.clone(), Some(team("team-q")), &mut asked).unwrap();
    let dispatch_id = plan_sent.writes.iter().find_map(|w| match w {
        Write::NewDispatch(d) => Some(d.dispatch_id),
        _ => None,
    });
    assert!(dispatch_id.is_some());
    assert!(plan_sent.writes.contains(&Write::EndWait {
        wait_id: wait.wait_id,
        by: WaitEnd::Team,
        dispatch_id,
    }));
    assert_eq!(asked[0].0, Action::DispatchMobileTeam);
    // Its team sent, the case is routed again.
    assert!(plan_sent.writes.iter().any(|w| matches!(
        w,
        Write::Case {
            routing_status: RoutingStatus::Routed,
            ..
        }
    )));
    // The team is out of the case's reach: nothing is planned.
    let refused = plan(&offer, with_wait, None, &mut Vec::new());
    assert!(matches!(refused, Err(Error::FailedPrecondition(_))));
    // A case no longer waiting is not offered a team.
    let refused = plan(
        &offer,
        load(case, Target::Case),
        Some(team("team-q")),
        &mut Vec::new(),
    );
    assert!(matches!(refused, Err(Error::FailedPrecondition(_))));
}

#[test]
fn closing_or_lowering_a_waiting_case_ends_its_wait_and_raising_it_moves_it_up() {
    let case = loaded_case(Priority::P1Urgent, false);
    let wait = waiting(&case, Priority::P1Urgent);
    let mut idle = load(case.clone(), Target::Case);
    idle.active_dispatches = 0;
    idle.wait = Some(wait.clone());
    let writes = |c: Change| {
        plan(
            &change(c, ActorRole::Supervisor, anyone()),
            idle.clone(),
            None,
            &mut Vec::new(),
        )
        .unwrap()
        .writes
    };
    let closed = writes(Change::Close {
        case_id: case.case_id,
        outcome: CaseOutcome::ResolvedByPhone,
        reason: None,
    });
    assert!(closed.contains(&Write::EndWait {
        wait_id: wait.wait_id,
        by: WaitEnd::Closed,
        dispatch_id: None,
    }));
    let lowered = writes(Change::Priority {
        case_id: case.case_id,
        to: Priority::P2Priority,
        reason: Some("the caller is safe now".into()),
    });
    assert!(lowered.contains(&Write::EndWait {
        wait_id: wait.wait_id,
        by: WaitEnd::Lowered,
        dispatch_id: None,
    }));
    let raised = writes(Change::Priority {
        case_id: case.case_id,
        to: Priority::P0Immediate,
        reason: None,
    });
    assert!(raised.contains(&Write::RankWait {
        wait_id: wait.wait_id,
        rank: 0,
    }));
    assert!(!raised.iter().any(|w| matches!(w, Write::EndWait { .. })));
}

#[test]
fn a_report_queued_on_a_phone_takes_the_time_it_happened_and_keeps_its_order() {
    let case = loaded_case(Priority::P0Immediate, true);
    let d = dispatch(case.case_id, DispatchStatus::Assigned);
    let mut report = change(
        Change::Dispatch {
            dispatch_id: d.dispatch_id,
            to: DispatchStatus::Acknowledged,
            reason: None,
            position: None,
        },
        ActorRole::MobileTeam,
        requester(
            Reach::Team("team-a".into()),
            Parts::TeamDispatches("team-a".into()),
        ),
    );
    // Acknowledged on the phone two minutes after the dispatch, sent eight minutes later.
    let happened = at() + Duration::minutes(2);
    report.occurred_at = Some(happened);
    let planned = plan(
        &report,
        load(case.clone(), Target::Dispatch(d.clone())),
        None,
        &mut Vec::new(),
    )
    .unwrap();
    assert_eq!(planned.at, happened);
    assert!(planned.events.iter().all(|e| e.occurred_at == happened));
    // The audit row keeps when the service was told.
    assert_eq!(planned.audit.at, report.at);

    // A report that happened before the dispatch's last step is out of order.
    report.occurred_at = Some(at() - Duration::minutes(1));
    let refused = plan(
        &report,
        load(case, Target::Dispatch(d)),
        None,
        &mut Vec::new(),
    );
    assert!(
        matches!(refused, Err(Error::FailedPrecondition(_))),
        "{refused:?}"
    );
}
