//! The parts of a case a change moves: referrals, dispatches, and the timers a missed deadline
//! breaches.

use uuid::Uuid;

use super::{
    LoadedDispatch, LoadedReferral, LoadedTimer, Planner, ReleasedTeam, Target, Timers, Write,
    check_version,
};
use crate::domain::Error;
use crate::domain::change::transition_error;
use crate::domain::decision::ServicePointKind;
use crate::domain::event::EventKind;
use crate::domain::lifecycle::{check_dispatch, check_referral};
use crate::domain::plan::NewTimer;
use crate::domain::sla::SlaKind;
use crate::domain::types::{DispatchStatus, ReferralStatus};

impl Planner<'_> {
    pub(super) fn referral(
        &mut self,
        referral: &LoadedReferral,
        to: ReferralStatus,
        reason: Option<String>,
    ) -> Result<(), Error> {
        let change = self.change;
        check_version("referral", referral.version, change.expected_version)?;
        self.check_order("referral", referral.updated_at)?;
        let from = referral.status;
        check_referral(from, to, change.actor.side(), reason.as_deref())
            .map_err(|e| transition_error("referral", from.as_str(), e))?;
        self.writes.push(Write::Referral {
            referral_id: referral.referral_id,
            to,
            reason: reason.clone(),
        });
        self.version = Some(referral.version + 1);
        self.event(
            EventKind::referral(to),
            reason,
            serde_json::json!({
                "referral_id": referral.referral_id,
                "service_point_id": referral.service_point_id,
                "purpose": referral.purpose.as_str(),
                "from": from.as_str(),
                "to": to.as_str(),
            }),
            None,
        );
        match to {
            ReferralStatus::Accepted | ReferralStatus::InProgress | ReferralStatus::Completed => {
                self.writes.push(Write::MeetTimers {
                    of: Timers::Of(referral.referral_id),
                    kind: SlaKind::ReferralAcceptance,
                });
                // The child-protection prosecutor taking the case meets its notice deadline.
                if self.load.point_kind == Some(ServicePointKind::ProsecutorChildProtection) {
                    self.writes.push(Write::MeetTimers {
                        of: Timers::OfCase,
                        kind: SlaKind::ProsecutorNotice,
                    });
                }
            }
            ReferralStatus::Rejected | ReferralStatus::Cancelled | ReferralStatus::Failed => {
                self.writes.push(Write::CancelTimers {
                    of: Timers::Of(referral.referral_id),
                });
            }
            ReferralStatus::Requested | ReferralStatus::OnHold => {}
        }
        if to.is_terminal() {
            self.released_place = Some(referral.service_point_id.clone());
        }
        if to == ReferralStatus::Rejected {
            self.turned_down = Some(referral.service_point_id.clone());
        }
        Ok(())
    }

    pub(super) fn dispatch(
        &mut self,
        dispatch: &LoadedDispatch,
        to: DispatchStatus,
        reason: Option<String>,
        position: Option<(f64, f64)>,
    ) -> Result<(), Error> {
        let change = self.change;
        check_version("dispatch", dispatch.version, change.expected_version)?;
        self.check_order("dispatch", dispatch.updated_at)?;
        let from = dispatch.status;
        check_dispatch(from, to, change.actor.side(), reason.as_deref())
            .map_err(|e| transition_error("dispatch", from.as_str(), e))?;
        let id = dispatch.dispatch_id;
        self.writes.push(Write::Dispatch {
            dispatch_id: id,
            to,
            reason: reason.clone(),
        });
        self.version = Some(dispatch.version + 1);
        self.writes.push(Write::DispatchStep {
            dispatch_id: id,
            status: to,
            position,
        });
        if to.is_terminal() {
            self.release(&dispatch.team_id)?;
        }
        // The team's position is not in the event: it is where the person is.
        self.event(
            EventKind::dispatch(to),
            reason,
            serde_json::json!({
                "dispatch_id": id,
                "team_id": dispatch.team_id,
                "from": from.as_str(),
                "to": to.as_str(),
            }),
            Some(dispatch.team_id.clone()),
        );
        match to {
            DispatchStatus::Acknowledged => self.writes.push(Write::MeetTimers {
                of: Timers::Of(id),
                kind: SlaKind::TeamAcknowledgement,
            }),
            DispatchStatus::OnScene => self.writes.push(Write::MeetTimers {
                of: Timers::Of(id),
                kind: SlaKind::OnScene,
            }),
            // A child taken from the scene starts the prosecutor's 12 hours, once.
            DispatchStatus::Transporting if self.load.case.minors_involved => {
                if self.load.prosecutor_timers == 0
                    && let Some(due) =
                        self.targets
                            .due(SlaKind::ProsecutorNotice, self.next.priority, self.at())
                {
                    self.writes.push(Write::StartTimer(NewTimer {
                        timer_id: Uuid::now_v7(),
                        kind: SlaKind::ProsecutorNotice,
                        subject: None,
                        due,
                    }));
                }
            }
            DispatchStatus::Cleared | DispatchStatus::Cancelled | DispatchStatus::Declined => {
                self.writes.push(Write::CancelTimers { of: Timers::Of(id) });
            }
            _ => {}
        }
        if to == DispatchStatus::Declined {
            self.turned_down = Some(dispatch.team_id.clone());
        }
        Ok(())
    }

    /// A missed deadline: a team that never acknowledged is called off and a centre that never
    /// answered is withdrawn from, and the case routed again; any other missed deadline alerts
    /// the supervisors.
    pub(super) fn breach(&mut self, timer: &LoadedTimer) -> Result<(), Error> {
        if !timer.pending || timer.due > self.at() {
            return Err(Error::FailedPrecondition(
                "the timer is no longer pending, or not yet due".into(),
            ));
        }
        self.writes.push(Write::BreachTimer {
            timer_id: timer.timer_id,
        });
        let kind = timer.kind;
        self.breached = Some(kind);
        self.event(
            EventKind::SlaBreached,
            None,
            serde_json::json!({
                "timer_id": timer.timer_id,
                "kind": kind.as_str(),
                "due_at": timer.due.timestamp_micros(),
                "subject_id": timer.subject,
            }),
            None,
        );
        let why = format!("{} deadline missed", kind.as_str());
        let called_off = match (kind, &self.load.breach_subject) {
            (SlaKind::TeamAcknowledgement, Some(Target::Dispatch(dispatch)))
                if dispatch.status == DispatchStatus::Assigned =>
            {
                let (id, team) = (dispatch.dispatch_id, dispatch.team_id.clone());
                let cancelled = DispatchStatus::Cancelled;
                self.writes.extend([
                    Write::Dispatch {
                        dispatch_id: id,
                        to: cancelled,
                        reason: Some(why.clone()),
                    },
                    Write::DispatchStep {
                        dispatch_id: id,
                        status: cancelled,
                        position: None,
                    },
                    Write::CancelTimers { of: Timers::Of(id) },
                ]);
                self.release(&team)?;
                self.event(
                    EventKind::DispatchCancelled,
                    Some(why.clone()),
                    serde_json::json!({
                        "dispatch_id": id,
                        "team_id": team,
                        "from": DispatchStatus::Assigned.as_str(),
                        "to": cancelled.as_str(),
                    }),
                    Some(team.clone()),
                );
                Some(team)
            }
            (SlaKind::ReferralAcceptance, Some(Target::Referral(referral)))
                if referral.status == ReferralStatus::Requested =>
            {
                let id = referral.referral_id;
                let cancelled = ReferralStatus::Cancelled;
                self.writes.extend([
                    Write::Referral {
                        referral_id: id,
                        to: cancelled,
                        reason: Some(why.clone()),
                    },
                    Write::CancelTimers { of: Timers::Of(id) },
                ]);
                self.released_place = Some(referral.service_point_id.clone());
                self.event(
                    EventKind::ReferralCancelled,
                    Some(why.clone()),
                    serde_json::json!({
                        "referral_id": id,
                        "service_point_id": referral.service_point_id,
                        "purpose": referral.purpose.as_str(),
                        "from": ReferralStatus::Requested.as_str(),
                        "to": cancelled.as_str(),
                    }),
                    None,
                );
                Some(referral.service_point_id.clone())
            }
            _ => None,
        };
        match called_off {
            Some(destination) => self.turned_down = Some(destination),
            None => self.event(
                EventKind::SupervisorsAlerted,
                Some(why),
                serde_json::json!({ "timer_id": timer.timer_id, "kind": kind.as_str() }),
                None,
            ),
        }
        Ok(())
    }

    /// Frees the team of a dispatch that ended (see [`ReleasedTeam::after_release`]).
    fn release(&mut self, team_id: &str) -> Result<(), Error> {
        let team = self
            .load
            .team
            .as_ref()
            .filter(|team| team.team_id == team_id)
            .ok_or_else(|| Error::internal("a dispatch ended without its team loaded"))?;
        let released = ReleasedTeam::after_release(team);
        self.writes.push(Write::Team(released.clone()));
        self.released_team = Some(released);
        Ok(())
    }
}
