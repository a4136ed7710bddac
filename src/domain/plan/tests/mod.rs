//! The planner's rules, without a database: what was loaded goes in, the plan comes out.

mod change;
mod intake;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::change::{
    ChangeLoad, ChangePlan, LoadedCase, LoadedDispatch, LoadedReferral, LoadedTimer, RerouteAsk,
    Target, Timers, Write, plan_change,
};
use super::intake::{IntakeLoad, IntakeOutcome, StoredIntake, plan_intakes};
use crate::domain::Error;
use crate::domain::case::CaseDetails;
use crate::domain::change::{Actor, ActorRole, CaseChange, Change};
use crate::domain::decision::{
    Action, ActionDecision, Decision, Destination, Purpose, RoutingStatus, ServicePointKind,
};
use crate::domain::event::EventKind;
use crate::domain::fixture::IntakeBuilder;
use crate::domain::intake::{NewIntake, RequestId};
use crate::domain::reach::Reach;
use crate::domain::reference;
use crate::domain::requester::{Parts, Requester};
use crate::domain::sensitive::Sensitive;
use crate::domain::sla::{SlaKind, SlaTargets};
use crate::domain::triage::assess;
use crate::domain::types::{
    CaseStatus, Category, DispatchStatus, EmergencyAction, HotlineAction, Line, Priority,
    ReferralStatus, RequestedAction,
};

pub(super) fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 6, 30, 0).unwrap()
}

pub(super) fn requester(reach: Reach, parts: Parts) -> Requester {
    Requester {
        subject: "operator-7".into(),
        role: "operator",
        action: "submit_emergency_intake",
        request_id: "req".into(),
        reach,
        parts,
    }
}

/// An emergency intake about a child at risk under `request_id`, with `payload` standing for
/// its bytes.
pub(super) fn emergency(request_id: &str, payload: u8, caller: Option<&str>) -> NewIntake {
    let intake = IntakeBuilder::new(Category::ChildAbusePhysical)
        .minor()
        .with(|i| i.contact.caller_number = caller.map(|n| Sensitive::new(n.to_owned())))
        .build();
    NewIntake {
        request_id: RequestId::parse(request_id).unwrap(),
        payload_hash: [payload; 32],
        action: RequestedAction::Emergency(EmergencyAction::MobileTeam),
        assessment: assess(&intake).unwrap(),
        intake,
        received_at: at(),
        requester: requester(Reach::Everywhere, Parts::Any),
    }
}

pub(super) fn hotline(request_id: &str) -> NewIntake {
    let intake = IntakeBuilder::new(Category::SuicidalThoughts).build();
    NewIntake {
        request_id: RequestId::parse(request_id).unwrap(),
        payload_hash: [9; 32],
        action: RequestedAction::Hotline(HotlineAction::CounsellingCentreReferral),
        assessment: assess(&intake).unwrap(),
        intake,
        received_at: at(),
        requester: requester(Reach::Everywhere, Parts::Any),
    }
}

pub(super) fn team(id: &str) -> Destination {
    Destination::Team {
        id: id.into(),
        name: id.into(),
    }
}

pub(super) fn point(id: &str, kind: ServicePointKind) -> Destination {
    Destination::ServicePoint {
        id: id.into(),
        name: id.into(),
        kind,
    }
}

pub(super) fn chosen(action: Action, destination: Option<Destination>) -> ActionDecision {
    ActionDecision {
        action,
        not_applicable: None,
        destination,
        candidates: vec![],
        waits_until: None,
    }
}

pub(super) fn decision(actions: Vec<ActionDecision>) -> Decision {
    Decision {
        policy_version: 3,
        rule_id: "child-at-risk".into(),
        rule_description: "a child at risk: a team and the welfare centre".into(),
        actions,
        notes: Vec::new(),
        unmet_request: None,
        crises: Vec::new(),
    }
}

/// Sends a team and refers to a crisis centre.
pub(super) fn team_and_centre() -> Decision {
    decision(vec![
        chosen(Action::DispatchMobileTeam, Some(team("team-a"))),
        chosen(
            Action::ReferTo {
                kind: ServicePointKind::CrisisInterventionCentre,
                point: None,
            },
            Some(point(
                "centre-1",
                ServicePointKind::CrisisInterventionCentre,
            )),
        ),
    ])
}

pub(super) fn fresh_load(batch: &[NewIntake]) -> IntakeLoad {
    IntakeLoad {
        stored: vec![None; batch.len()],
        callers: batch
            .iter()
            .map(|i| {
                i.intake
                    .contact
                    .caller_number
                    .as_ref()
                    .map(|n| n.expose().as_bytes().to_vec())
            })
            .collect(),
        contacts: HashMap::new(),
        last_numbers: HashMap::from([(Line::Hotline1480, 41), (Line::Emergency123, 900)]),
    }
}
