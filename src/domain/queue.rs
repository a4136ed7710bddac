//! The team queue: a P0 or P1 case that found no free mobile team is not left with its interim
//! measures alone. It waits, in the queue of its province, for the next team that becomes free
//! in its cover chain; the transaction that frees a team offers it to the waiting cases in
//! order (highest priority first, then the longest waiting) and the first one the team can
//! serve gets it. A wait ends when a team is sent, or the case is closed or lowered below P1.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::decision::{Action, Decision, Destination};
use super::types::{Priority, domain_enum};

/// Whether a case of `priority` waits for a team when none is free.
pub fn queues(priority: Priority) -> bool {
    matches!(priority, Priority::P0Immediate | Priority::P1Urgent)
}

/// Where a waiting case of `priority` stands in the queue: lower is served first.
pub fn rank(priority: Priority) -> i64 {
    priority.level() as i64
}

/// Whether `decision` looked for a team and found none (a rule that sends no team is not a
/// wait: the policy chose not to send one).
pub fn team_wanted(decision: &Decision) -> bool {
    decision.actions.iter().any(|a| {
        a.action == Action::DispatchMobileTeam
            && a.destination.is_none()
            && a.not_applicable.is_none()
    })
}

/// Whether `decision` sends a team.
pub fn team_sent(decision: &Decision) -> bool {
    decision
        .assignments()
        .iter()
        .any(|a| matches!(a.destination, Destination::Team { .. }))
}

/// Whether a case of `priority` routed by `decision` starts waiting for a team.
pub fn starts_waiting(decision: &Decision, priority: Priority) -> bool {
    queues(priority) && team_wanted(decision)
}

/// What the decision of a case that starts waiting says.
pub fn waiting_note(province: &str) -> String {
    format!(
        "no mobile team is free: the case waits in the team queue of {province} and is offered the \
         next team that becomes free in its cover chain"
    )
}

domain_enum! {
    /// How a wait for a team ended.
    pub enum WaitEnd {
        /// A team was sent.
        Team,
        /// The case was closed.
        Closed,
        /// The case was lowered below P1.
        Lowered,
    }
}

/// A case waiting for a team, as the queue holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub wait_id: Uuid,
    pub case_id: Uuid,
    pub province: String,
    pub rank: i64,
    pub since: DateTime<Utc>,
}

/// Puts `waits` in the order a freed team is offered to them: highest priority first, then
/// the longest waiting (the wait's id, a v7 uuid, breaks ties in the order they began).
pub fn serve_order(waits: &mut [Wait]) {
    waits.sort_by_key(|w| (w.rank, w.since, w.wait_id));
}

/// A team that became free, to offer to the waiting cases of `provinces` (its own, and those
/// whose cover chain reaches it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamOffer {
    pub team_id: String,
    pub provinces: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::decision::{ActionDecision, ServicePointKind};

    fn decision(actions: Vec<ActionDecision>) -> Decision {
        Decision {
            policy_version: 1,
            rule_id: "r".into(),
            rule_description: String::new(),
            actions,
            notes: Vec::new(),
            unmet_request: None,
            crises: Vec::new(),
        }
    }

    fn action(action: Action, destination: Option<Destination>) -> ActionDecision {
        ActionDecision {
            action,
            not_applicable: None,
            destination,
            candidates: Vec::new(),
            waits_until: None,
        }
    }

    #[test]
    fn only_p0_and_p1_cases_that_looked_for_a_team_and_found_none_wait() {
        let none = decision(vec![action(Action::DispatchMobileTeam, None)]);
        assert!(starts_waiting(&none, Priority::P0Immediate));
        assert!(starts_waiting(&none, Priority::P1Urgent));
        assert!(!starts_waiting(&none, Priority::P2Priority));
        let team = Destination::Team {
            id: "t".into(),
            name: "t".into(),
        };
        let sent = decision(vec![action(Action::DispatchMobileTeam, Some(team))]);
        assert!(!starts_waiting(&sent, Priority::P0Immediate));
        assert!(team_sent(&sent));
        // A rule that sends only a centre asked for no team.
        let centre = decision(vec![action(
            Action::ReferTo {
                kind: ServicePointKind::CrisisInterventionCentre,
                point: None,
            },
            None,
        )]);
        assert!(!starts_waiting(&centre, Priority::P0Immediate));
    }

    #[test]
    fn the_queue_serves_the_highest_priority_first_then_the_longest_waiting() {
        let at = |minute: i64| DateTime::<Utc>::from_timestamp(minute * 60, 0).unwrap();
        let wait = |n: u128, rank, minute| Wait {
            wait_id: Uuid::from_u128(n),
            case_id: Uuid::from_u128(100 + n),
            province: "IR-23".into(),
            rank,
            since: at(minute),
        };
        let mut waits = vec![
            wait(1, 1, 0),
            wait(2, 0, 10),
            wait(3, 0, 5),
            wait(5, 1, 0),
            wait(4, 0, 5),
        ];
        serve_order(&mut waits);
        let order: Vec<u128> = waits.iter().map(|w| w.wait_id.as_u128()).collect();
        assert_eq!(order, [3, 4, 2, 1, 5]);
    }
}
