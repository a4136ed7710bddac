//! Routing a case again within a change, and the plan's last writes.

use std::collections::HashSet;

use uuid::Uuid;

use super::{ChangeOutcome, ChangePlan, Planner, RerouteAsk, RerouteFn, Rerouted, Write};
use crate::domain::Error;
use crate::domain::audit::{AuditEntry, OK};
use crate::domain::change::Change;
use crate::domain::decision::{
    Action, ActionDecision, Decision, Destination, DutyStatus, RoutingStatus, ServicePointKind,
};
use crate::domain::event::EventKind;
use crate::domain::plan::{assign, routing_event_data, routing_event_kind};
use crate::domain::queue::{self, TeamOffer, WaitEnd};
use crate::domain::types::CaseStatus;

impl Planner<'_> {
    /// Routes the case again when a destination turned it down (the same action, the next
    /// candidate) or a call centre asked for an action; returns the new decision.
    pub(super) fn route_again(
        &mut self,
        reroute: &mut RerouteFn<'_>,
    ) -> Result<Option<Decision>, Error> {
        let (change, load) = (self.change, self.load);
        let decisions = &load.decisions;
        let job = match (&self.turned_down, &change.change) {
            (Some(declined_by), _) => action_for(decisions, declined_by).map(|previous| Job {
                action: previous.0.action.clone(),
                policy_version: previous.1.policy_version,
                rule_id: previous.1.rule_id.clone(),
                description: format!(
                    "re-route: {declined_by} turned the case down; the same action, the next candidate"
                ),
                requested: false,
                only: None,
                any_point: false,
            }),
            (None, Change::RequestAssignment { action, reason, .. }) => Some(Job {
                action: action.clone(),
                policy_version: decisions.last().map_or(0, |(_, d)| d.policy_version),
                rule_id: "requested".into(),
                description: match reason {
                    Some(reason) => format!("requested by {}: {reason}", self.actor),
                    None => format!("requested by {}", self.actor),
                },
                requested: true,
                only: None,
                any_point: false,
            }),
            (
                None,
                Change::ScheduleFollowUp {
                    hand_to_base: true,
                    reason,
                    ..
                },
            ) => Some(Job {
                action: Action::ReferTo {
                    kind: ServicePointKind::SocialServiceBase,
                    point: None,
                },
                policy_version: decisions.last().map_or(0, |(_, d)| d.policy_version),
                rule_id: "follow_up_handover".into(),
                description: format!(
                    "follow-up handed by {} to the social-service base of the incident's \
                     neighbourhood: {reason}",
                    self.actor
                ),
                requested: true,
                only: None,
                any_point: true,
            }),
            (None, Change::OfferTeam { team_id, .. }) => Some(Job {
                action: Action::DispatchMobileTeam,
                policy_version: decisions.last().map_or(0, |(_, d)| d.policy_version),
                rule_id: "team_queue".into(),
                description: format!(
                    "the team queue: {team_id} became free and this case was the first waiting \
                     in its cover chain"
                ),
                requested: true,
                only: Some(team_id.as_str()),
                any_point: false,
            }),
            _ => None,
        };
        let Some(job) = job else { return Ok(None) };
        let details = self
            .load
            .details
            .as_ref()
            .ok_or_else(|| Error::internal("routing again without the case's intake"))?;
        let tried: HashSet<String> = if job.any_point {
            HashSet::new()
        } else {
            self.load
                .teams
                .iter()
                .chain(&self.load.service_points)
                .cloned()
                .collect()
        };
        let Rerouted {
            found,
            crises,
            targets,
        } = reroute(&RerouteAsk {
            intake: &details.intake,
            line: self.load.case.line,
            priority: self.next.priority,
            at: self.at(),
            action: &job.action,
            tried: &tried,
            only: job.only,
            may_wait: job.any_point,
        });
        if job.any_point && found.destination.is_none() {
            return Err(Error::FailedPrecondition(
                "no social-service base along the case's cover chain can take the follow-up; \
                 schedule it without handing it over"
                    .into(),
            ));
        }
        if job.only.is_some() && found.destination.is_none() {
            return Err(Error::FailedPrecondition(
                "the freed team is not in the case's cover chain, or was tried before".into(),
            ));
        }
        let decision_no = decisions.last().map_or(0, |(no, _)| *no) + 1;
        let mut decision = Decision {
            policy_version: job.policy_version,
            rule_id: job.rule_id,
            rule_description: job.description,
            notes: found.neighbourhood_note().into_iter().collect(),
            actions: vec![found],
            unmet_request: None,
            crises,
        };
        let starts_waiting = self.wait.is_none()
            && self.load.case.status != CaseStatus::Closed
            && queue::starts_waiting(&decision, self.next.priority);
        if starts_waiting {
            decision
                .notes
                .push(queue::waiting_note(&self.load.case.province));
        }
        let kind = match (decision.status(), job.requested) {
            (RoutingStatus::Unrouted, _) | (_, false) => {
                routing_event_kind(decision.status(), false)
            }
            (_, true) => EventKind::AssignmentAdded,
        };
        let at = self.at();
        let event = self.place.event(
            kind,
            "routing",
            at,
            None,
            routing_event_data(&decision),
            None,
        );
        self.events.push(event);
        self.writes.push(Write::Decision {
            decision_no,
            decision: decision.clone(),
        });
        let ids = uuid::ContextV7::new();
        let targets = targets.as_ref().unwrap_or(self.targets);
        let assigned = assign(&decision, &self.place, targets, at, || {
            Uuid::new_v7(uuid::Timestamp::now(&ids))
        });
        if job.any_point
            && let Some(referral) = assigned.referrals.first()
        {
            for write in &mut self.writes {
                if let Write::FollowUp {
                    service_point_id, ..
                } = write
                {
                    *service_point_id = Some(referral.service_point_id.clone());
                }
            }
        }
        if let Some(dispatch) = assigned.dispatches.first() {
            self.end_wait(WaitEnd::Team, Some(dispatch.dispatch_id));
        } else if starts_waiting {
            self.writes.push(Write::StartWait {
                wait_id: Uuid::new_v7(uuid::Timestamp::now(&ids)),
                province: self.load.case.province.clone(),
                rank: queue::rank(self.next.priority),
            });
        }
        self.events.extend(assigned.events);
        self.writes.extend(
            (assigned.referrals.into_iter().map(Write::NewReferral))
                .chain(assigned.dispatches.into_iter().map(Write::NewDispatch))
                .chain(assigned.timers.into_iter().map(Write::StartTimer)),
        );
        if decision.unrouted() {
            self.routing_status = RoutingStatus::Unrouted;
        }
        Ok(Some(decision))
    }

    /// The case's own columns, the audit row and the outcome.
    pub(super) fn finish(mut self, reroute: Option<Decision>) -> Result<ChangePlan, Error> {
        let case = &self.load.case;
        self.writes.push(Write::Case {
            status: self.next.status,
            priority: self.next.priority,
            outcome: self.next.outcome,
            routing_status: self.routing_status,
        });
        let case_version = case.version + 1;
        let team_taken = reroute.as_ref().is_some_and(|d| {
            d.assignments()
                .iter()
                .any(|a| matches!(a.destination, Destination::Team { .. }))
        });
        Ok(ChangePlan {
            at: self.change.occurred(),
            writes: self.writes,
            events: self.events,
            audit: AuditEntry::requested(
                &self.change.requester,
                Some(case.case_id),
                OK,
                self.change.at,
            ),
            audit_more: Vec::new(),
            directory_moved: self.released_team.is_some() || team_taken,
            // A freed team is offered to the waiting cases only when it is free for a case
            // (not still busy with another, nor off duty).
            offer: self
                .released_team
                .as_ref()
                .filter(|team| team.status == DutyStatus::Available)
                .map(|team| TeamOffer {
                    team_id: team.team_id.clone(),
                    provinces: Vec::new(),
                }),
            outcome: ChangeOutcome {
                case_id: case.case_id,
                case_version,
                version: self.version.unwrap_or(case_version),
                created: self.created,
                due_at: self.due_at,
                released_team: self.released_team,
                released_place: self.released_place,
                reroute,
                offered_to: None,
                breached: self.breached,
                last_event: 0,
                replayed: false,
            },
        })
    }
}

/// An action to route again within a change: the action a destination turned down, or one a
/// call centre asked for.
struct Job<'a> {
    action: Action,
    policy_version: i64,
    rule_id: String,
    description: String,
    /// Asked for, rather than a destination turned down.
    requested: bool,
    /// Only this team may be chosen.
    only: Option<&'a str>,
    /// A follow-up handed to a base: no destination is left out (the base that took the case
    /// before is the one to follow it up), and a closed base is taken at its next opening.
    any_point: bool,
}

/// Finds, among a case's decisions (latest first), the action a destination was chosen for.
fn action_for<'a>(
    decisions: &'a [(i64, Decision)],
    destination_id: &str,
) -> Option<(&'a ActionDecision, &'a Decision)> {
    decisions.iter().rev().find_map(|(_, decision)| {
        decision
            .actions
            .iter()
            .find(|a| {
                a.destination.as_ref().is_some_and(|d| match d {
                    Destination::Team { id, .. } | Destination::ServicePoint { id, .. } => {
                        id == destination_id
                    }
                })
            })
            .map(|action| (action, decision))
    })
}
