//! The planner: every write is decided here, in plain Rust, from what the store loaded and
//! what was asked, before anything is written.
//!
//! A write has one shape. The store **loads** what the decision needs (one read, inside the
//! write's transaction: [`intake::IntakeLoad`], [`change::ChangeLoad`]); the planner **plans**
//! — triage is already done, so replay, case numbers, routing and re-routing, deadline timers,
//! events, audit rows and the receipt ([`intake::plan_intakes`], [`change::plan_change`]); the
//! store **writes** the plan and knows none of the rules. Routing is asked through a function
//! the caller passes in (the application's directory), so the planner imports nothing but the
//! domain and its rules are unit-tested without a database.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::decision::{Decision, Destination, Purpose, RoutingStatus};
use super::event::{EventKind, EventPlace, NewEvent};
use super::sla::SlaKind;
use super::sla::SlaTargets;

/// What routing answers for a new case: the decision, and the deadline targets that replace
/// the deployment's for what it sends, while a crisis declaration that sets some is in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    pub decision: Decision,
    pub targets: Option<SlaTargets>,
}

impl From<Decision> for Routed {
    fn from(decision: Decision) -> Self {
        Self {
            decision,
            targets: None,
        }
    }
}

pub mod change;
pub mod intake;

#[cfg(test)]
mod tests;

/// A deadline timer a plan starts.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTimer {
    pub timer_id: Uuid,
    pub kind: SlaKind,
    /// The referral, dispatch or follow-up it watches; none for a deadline of the whole case
    /// (the prosecutor's notice).
    pub subject: Option<Uuid>,
    pub due: DateTime<Utc>,
}

/// A referral a plan makes: requested of a service point.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReferral {
    pub referral_id: Uuid,
    pub service_point_id: String,
    pub purpose: Purpose,
    /// The point's next opening, when it is closed now and the case waits for it.
    pub waits_until: Option<DateTime<Utc>>,
}

/// A dispatch a plan makes: a team assigned, and taken (busy, one more case).
#[derive(Debug, Clone, PartialEq)]
pub struct NewDispatch {
    pub dispatch_id: Uuid,
    pub team_id: String,
}

/// The timers `targets` start for a new referral or dispatch of a case of `priority`.
pub(crate) fn timers_for(
    targets: &SlaTargets,
    priority: super::types::Priority,
    purpose: Purpose,
    subject: Uuid,
    at: DateTime<Utc>,
) -> Vec<NewTimer> {
    targets
        .started_by(purpose, priority, at)
        .into_iter()
        .map(|(kind, due)| NewTimer {
            timer_id: Uuid::now_v7(),
            kind,
            subject: Some(subject),
            due,
        })
        .collect()
}

/// The kind of the event a routing decision writes: the case's first, or a later one.
pub(crate) fn routing_event_kind(status: RoutingStatus, first: bool) -> EventKind {
    match (status, first) {
        (RoutingStatus::Unrouted, _) => EventKind::CaseUnrouted,
        (_, true) => EventKind::CaseRouted,
        (_, false) => EventKind::CaseRerouted,
    }
}

/// The facts of a routing decision every watcher may see: ids and purposes, no distances (they
/// could place the incident).
pub(crate) fn routing_event_data(decision: &Decision) -> serde_json::Value {
    serde_json::json!({
        "status": decision.status().as_str(),
        "policy_version": decision.policy_version,
        "rule_id": decision.rule_id,
        "assignments": decision.assignments().iter().map(|a| {
            let (kind, id) = match &a.destination {
                Destination::Team { id, .. } => ("team", id),
                Destination::ServicePoint { id, .. } => ("service_point", id),
            };
            let mut assignment =
                serde_json::json!({ "purpose": a.purpose.as_str(), "type": kind, "id": id });
            if let Some(opens) = a.waits_until {
                assignment["waits_until"] = serde_json::json!(opens);
            }
            assignment
        }).collect::<Vec<_>>(),
    })
}

/// What a routing decision's assignments make: a referral or a dispatch each, the deadline
/// timers each starts, and for each team the event that tells it.
#[derive(Debug, Default)]
pub(crate) struct Assigned {
    pub(crate) referrals: Vec<NewReferral>,
    pub(crate) dispatches: Vec<NewDispatch>,
    pub(crate) timers: Vec<NewTimer>,
    pub(crate) events: Vec<NewEvent>,
}

/// Makes the referrals and dispatches of `decision` for the case `place` files, at `at`; `mint`
/// gives each its id, in assignment order.
pub(crate) fn assign(
    decision: &Decision,
    place: &EventPlace,
    targets: &SlaTargets,
    at: DateTime<Utc>,
    mut mint: impl FnMut() -> Uuid,
) -> Assigned {
    let mut made = Assigned::default();
    for assignment in decision.assignments() {
        let id = mint();
        match assignment.destination {
            Destination::Team { id: team_id, .. } => {
                made.events.push(place.event(
                    EventKind::DispatchAssigned,
                    "routing",
                    at,
                    None,
                    serde_json::json!({ "dispatch_id": id, "team_id": team_id }),
                    Some(team_id.clone()),
                ));
                made.dispatches.push(NewDispatch {
                    dispatch_id: id,
                    team_id,
                });
            }
            Destination::ServicePoint { id: point_id, .. } => made.referrals.push(NewReferral {
                referral_id: id,
                service_point_id: point_id,
                purpose: assignment.purpose,
                waits_until: assignment.waits_until,
            }),
        }
    }
    let priority = place.priority;
    for referral in &made.referrals {
        // A referral waiting for its point to open is judged from the opening.
        let timers = timers_for(
            targets,
            priority,
            referral.purpose,
            referral.referral_id,
            referral.waits_until.unwrap_or(at),
        );
        made.timers.extend(timers);
    }
    for dispatch in &made.dispatches {
        let timers = timers_for(
            targets,
            priority,
            Purpose::Dispatch,
            dispatch.dispatch_id,
            at,
        );
        made.timers.extend(timers);
    }
    made
}
