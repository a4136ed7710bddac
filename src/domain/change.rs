//! Changes to a recorded case after intake: who makes them, what each needs, and the rules the
//! server holds them to (the case's own lifecycle here; referrals' and dispatches' in
//! [`super::lifecycle`]).
//!
//! Every change names the version it was based on — the case's for case changes, the referral's
//! or the dispatch's for theirs — and a change based on an old version is refused, so two people
//! acting on the same screen cannot overwrite each other unseen.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::lifecycle::{Side, TransitionError};
use super::sensitive::Sensitive;
use super::types::{CaseStatus, Category, DispatchStatus, Priority, ReferralStatus, domain_enum};
use super::{Error, FieldViolation};

domain_enum! {
    /// The part someone plays in a case.
    pub enum ActorRole {
        /// A 1480 counsellor or a 123 operator: the side that makes referrals and dispatches.
        CallCentre,
        /// A service point that received a referral.
        ReceivingCentre,
        /// A mobile emergency team.
        MobileTeam,
        /// A provincial supervisor.
        Supervisor,
        /// The service itself (SLA escalation).
        System,
    }
}

/// Who makes a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Their part.
    pub role: ActorRole,
    /// Their identifier (an operator id, a service point id, a team id).
    pub id: String,
}

impl Actor {
    /// The service itself.
    pub fn system(id: &str) -> Self {
        Self {
            role: ActorRole::System,
            id: id.to_owned(),
        }
    }

    /// The side of a referral or dispatch the actor is on.
    pub fn side(&self) -> Side {
        match self.role {
            ActorRole::CallCentre | ActorRole::Supervisor | ActorRole::System => Side::Requester,
            ActorRole::ReceivingCentre | ActorRole::MobileTeam => Side::Receiver,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.role.as_str(), self.id)
    }
}

domain_enum! {
    /// How a case ended.
    pub enum CaseOutcome {
        /// حل‌شده تلفنی.
        ResolvedByPhone,
        /// حل‌شده در محل.
        ResolvedOnScene,
        /// ارجاع و پذیرش.
        ReferredAndAccepted,
        /// پذیرش در مرکز.
        Admitted,
        /// بازگشت به خانواده.
        ReturnedToFamily,
        /// سپردن با حکم قضایی.
        JudicialPlacement,
        /// قطع ارتباط.
        LostContact,
        /// تکراری.
        Duplicate,
        /// خارج از شرح وظایف.
        NotInMandate,
        /// فوت.
        Death,
    }
}

/// A change to a case.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Moves a referral through its lifecycle.
    Referral {
        /// The referral.
        referral_id: Uuid,
        /// The status asked for.
        to: ReferralStatus,
        /// Why (required to reject or fail).
        reason: Option<String>,
    },
    /// Moves a dispatch through its lifecycle.
    Dispatch {
        /// The dispatch.
        dispatch_id: Uuid,
        /// The status asked for.
        to: DispatchStatus,
        /// Why (required to decline or cancel).
        reason: Option<String>,
        /// Where the team was, when it sent its position.
        position: Option<(f64, f64)>,
    },
    /// Closes the case.
    Close {
        /// The case.
        case_id: Uuid,
        /// How it ended.
        outcome: CaseOutcome,
        /// Anything the closer adds.
        reason: Option<String>,
    },
    /// Reopens a closed case.
    Reopen {
        /// The case.
        case_id: Uuid,
        /// Why it is reopened.
        reason: String,
    },
    /// Changes the case's priority: raising is free, lowering needs a reason.
    Priority {
        /// The case.
        case_id: Uuid,
        /// The new priority.
        to: Priority,
        /// Why.
        reason: Option<String>,
    },
    /// Adds a note.
    Note {
        /// The case.
        case_id: Uuid,
        /// The note. Sensitive: it is stored, never put in an event or a log.
        text: Sensitive<String>,
    },
    /// Schedules a follow-up; the case awaits it.
    ScheduleFollowUp {
        /// The case.
        case_id: Uuid,
        /// When it is due; `None` takes the default for the case's category and priority.
        due_at: Option<DateTime<Utc>>,
        /// What the follow-up is for.
        reason: String,
        /// Hand it to the social-service base of the incident's neighbourhood (allowed on a
        /// closed case, which stays closed).
        hand_to_base: bool,
    },
    /// Asks routing for one more destination: a team to send, a kind of centre to refer to, an
    /// outside body to tell. The directory chooses, as at intake, leaving out every destination
    /// the case was already sent to.
    RequestAssignment {
        /// The case.
        case_id: Uuid,
        /// What to find.
        action: crate::domain::decision::Action,
        /// Why.
        reason: Option<String>,
    },
    /// Handles a deadline that passed: the timer is marked breached and the case escalated.
    SlaBreach {
        /// The timer.
        timer_id: Uuid,
    },
    /// Offers a team that just became free to a case waiting in the team queue (the service's
    /// own change, made in the transaction that freed the team).
    OfferTeam {
        /// The waiting case.
        case_id: Uuid,
        /// The team.
        team_id: String,
    },
    /// Records how a follow-up went.
    RecordFollowUp {
        /// The follow-up.
        follow_up_id: Uuid,
        /// What came of it.
        outcome: String,
    },
}

impl Change {
    /// The case the change names, when it names one (rather than a referral, a dispatch, a
    /// follow-up or a timer of it).
    pub fn case_id(&self) -> Option<Uuid> {
        match self {
            Self::Close { case_id, .. }
            | Self::Reopen { case_id, .. }
            | Self::Priority { case_id, .. }
            | Self::Note { case_id, .. }
            | Self::ScheduleFollowUp { case_id, .. }
            | Self::RequestAssignment { case_id, .. }
            | Self::OfferTeam { case_id, .. } => Some(*case_id),
            Self::Referral { .. }
            | Self::Dispatch { .. }
            | Self::SlaBreach { .. }
            | Self::RecordFollowUp { .. } => None,
        }
    }
}

/// A change, with who makes it, when, and the version it was based on.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseChange {
    /// The change.
    pub change: Change,
    /// The version of the thing changed that the change was based on (the case's, for a note or
    /// a follow-up); `None` only for additions sent without one, which overwrite nothing.
    pub expected_version: Option<i64>,
    /// Who makes it, as the case's events record it.
    pub actor: Actor,
    /// Who asked for it: the change stays within their reach and parts, and writes their
    /// audit row (the service itself, for its own changes such as deadline escalation).
    pub requester: super::requester::Requester,
    /// When the service received it (the audit row's time).
    pub at: DateTime<Utc>,
    /// The client's key, when it sent one: a retry is answered with the first outcome.
    pub key: Option<ChangeKey>,
    /// When it happened on the device that reports it, if earlier than it arrived (a queued
    /// report from an offline phone): the step and its events take this time.
    pub occurred_at: Option<DateTime<Utc>>,
}

impl CaseChange {
    /// When the change happened: on the device, or else when it arrived.
    pub fn occurred(&self) -> DateTime<Utc> {
        self.occurred_at.unwrap_or(self.at)
    }
}

/// A client's key for a change: its request id, and a hash of the request that carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeKey {
    pub request_id: String,
    pub payload_hash: Vec<u8>,
}

/// What a case change leaves: the case's new status, priority and outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseState {
    /// Status.
    pub status: CaseStatus,
    /// Priority.
    pub priority: Priority,
    /// How it ended, once closed.
    pub outcome: Option<CaseOutcome>,
}

/// What a case-level change needs to know of the case besides its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CaseContext {
    /// Dispatches not yet cleared, cancelled or declined.
    pub active_dispatches: usize,
    /// Follow-ups not yet recorded.
    pub pending_follow_ups: usize,
}

/// Checks a case-level change against the case as it stands and returns how it will stand.
pub fn check_case_change(
    current: CaseState,
    context: CaseContext,
    change: &Change,
) -> Result<CaseState, Error> {
    let closed = current.status == CaseStatus::Closed;
    let refuse_closed = |what: &str| {
        Error::FailedPrecondition(format!("the case is closed; reopen it before {what}"))
    };
    match change {
        Change::Close { .. } if closed => Err(Error::FailedPrecondition(
            "the case is already closed".into(),
        )),
        Change::Close { outcome, .. } => {
            if context.active_dispatches > 0 {
                return Err(Error::FailedPrecondition(format!(
                    "the case is {} with {} dispatch(es) under way; clear or cancel them first",
                    current.status.as_str(),
                    context.active_dispatches
                )));
            }
            Ok(CaseState {
                status: CaseStatus::Closed,
                outcome: Some(*outcome),
                ..current
            })
        }
        Change::Reopen { reason, .. } => {
            if !closed {
                return Err(Error::FailedPrecondition(format!(
                    "the case is {}, not closed",
                    current.status.as_str()
                )));
            }
            require_reason("reason", Some(reason))?;
            Ok(CaseState {
                status: CaseStatus::Open,
                outcome: None,
                ..current
            })
        }
        Change::Priority { to, reason, .. } => {
            if closed {
                return Err(refuse_closed("changing its priority"));
            }
            if *to == current.priority {
                return Err(Error::FailedPrecondition(format!(
                    "the case is already {}",
                    to.code()
                )));
            }
            if current.priority.is_more_urgent_than(*to) {
                require_reason("reason", reason.as_ref()).map_err(|_| {
                    Error::invalid("reason", "lowering the priority needs a reason")
                })?;
            }
            Ok(CaseState {
                priority: *to,
                ..current
            })
        }
        Change::ScheduleFollowUp {
            reason,
            hand_to_base,
            ..
        } => {
            require_reason("reason", Some(reason))?;
            match (closed, hand_to_base) {
                // The base's follow-up: the case stays closed.
                (true, true) => Ok(current),
                (true, false) => Err(refuse_closed(
                    "scheduling a follow-up (or hand it to the neighbourhood's social-service base)",
                )),
                (false, _) => Ok(CaseState {
                    status: CaseStatus::AwaitingFollowUp,
                    ..current
                }),
            }
        }
        Change::RecordFollowUp { outcome, .. } => {
            require_reason("outcome", Some(outcome))?;
            // The case awaits follow-up while any is pending; recording the last one opens it.
            let status = if current.status == CaseStatus::AwaitingFollowUp
                && context.pending_follow_ups <= 1
            {
                CaseStatus::Open
            } else {
                current.status
            };
            Ok(CaseState { status, ..current })
        }
        Change::Note { text, .. } => {
            if text.expose().trim().is_empty() {
                return Err(Error::invalid("text", "must not be empty"));
            }
            Ok(current)
        }
        Change::SlaBreach { .. } => Ok(current),
        Change::Referral { .. }
        | Change::Dispatch { .. }
        | Change::RequestAssignment { .. }
        | Change::OfferTeam { .. } => {
            if closed {
                return Err(refuse_closed("changing its referrals or dispatches"));
            }
            Ok(current)
        }
    }
}

fn require_reason(field: &str, reason: Option<&String>) -> Result<(), Error> {
    if reason.is_none_or(|r| r.trim().is_empty()) {
        return Err(Error::invalid(field, "must not be empty"));
    }
    Ok(())
}

/// When a follow-up is due by default: suicide-related cases within 72 hours, otherwise by the
/// case's priority.
pub fn default_follow_up(
    category: Category,
    priority: Priority,
    from: DateTime<Utc>,
) -> DateTime<Utc> {
    let within = if matches!(
        category,
        Category::SuicideAttempt | Category::SuicidalThoughts
    ) {
        Duration::hours(72)
    } else {
        match priority {
            Priority::P0Immediate | Priority::P1Urgent => Duration::hours(24),
            Priority::P2Priority => Duration::hours(72),
            Priority::P3Routine | Priority::P4OutsideMandate => Duration::days(7),
        }
    };
    from + within
}

/// Turns a refused referral or dispatch transition into the domain's error, naming the thing
/// and its current status.
pub fn transition_error(what: &str, current: &str, error: TransitionError) -> Error {
    match error {
        TransitionError::NotAllowed { from, to } => Error::FailedPrecondition(format!(
            "the {what} is {from}; it cannot go from {from} to {to}"
        )),
        TransitionError::WrongSide { to, owner } => Error::PermissionDenied(format!(
            "the {what} is {current}; {to} is set by the {owner}"
        )),
        TransitionError::ReasonRequired { to } => {
            Error::InvalidArgument(vec![FieldViolation::new(
                "reason",
                format!("needed to set {to}"),
            )])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(priority: Priority) -> CaseState {
        CaseState {
            status: CaseStatus::Open,
            priority,
            outcome: None,
        }
    }

    fn closed() -> CaseState {
        CaseState {
            status: CaseStatus::Closed,
            priority: Priority::P2Priority,
            outcome: Some(CaseOutcome::ResolvedByPhone),
        }
    }

    const ID: Uuid = Uuid::nil();

    fn reason(text: &str) -> Option<String> {
        Some(text.into())
    }

    #[test]
    fn a_closed_case_takes_a_follow_up_only_when_it_is_handed_to_a_base_and_stays_closed() {
        let follow_up = |hand_to_base| Change::ScheduleFollowUp {
            case_id: ID,
            due_at: None,
            reason: "visit the family in a month".into(),
            hand_to_base,
        };
        let context = CaseContext::default();
        assert_eq!(
            check_case_change(closed(), context, &follow_up(true)).unwrap(),
            closed()
        );
        assert!(matches!(
            check_case_change(closed(), context, &follow_up(false)),
            Err(Error::FailedPrecondition(_))
        ));
        assert_eq!(
            check_case_change(open(Priority::P2Priority), context, &follow_up(true))
                .unwrap()
                .status,
            CaseStatus::AwaitingFollowUp
        );
    }

    #[test]
    fn case_changes_follow_the_case_lifecycle() {
        use CaseStatus::*;
        let none = CaseContext::default();
        let close = Change::Close {
            case_id: ID,
            outcome: CaseOutcome::Admitted,
            reason: None,
        };
        let reopen = |r: &str| Change::Reopen {
            case_id: ID,
            reason: r.into(),
        };
        let follow_up = Change::ScheduleFollowUp {
            case_id: ID,
            due_at: None,
            reason: "call back".into(),
            hand_to_base: false,
        };
        let record = Change::RecordFollowUp {
            follow_up_id: ID,
            outcome: "spoke to her".into(),
        };
        let awaiting = CaseState {
            status: AwaitingFollowUp,
            ..open(Priority::P2Priority)
        };
        // (case, context, change, resulting status or None when refused, what the row says)
        let one_pending = CaseContext {
            pending_follow_ups: 1,
            ..none
        };
        let two_pending = CaseContext {
            pending_follow_ups: 2,
            ..none
        };
        let busy = CaseContext {
            active_dispatches: 1,
            ..none
        };
        let table: Vec<(CaseState, CaseContext, Change, Option<CaseStatus>, &str)> = vec![
            (
                open(Priority::P1Urgent),
                none,
                close.clone(),
                Some(Closed),
                "an open case closes",
            ),
            (
                awaiting,
                none,
                close.clone(),
                Some(Closed),
                "a case awaiting follow-up closes",
            ),
            (
                closed(),
                none,
                close.clone(),
                None,
                "a closed case does not close again",
            ),
            (
                open(Priority::P1Urgent),
                busy,
                close.clone(),
                None,
                "not while a team is out",
            ),
            (
                closed(),
                none,
                reopen("new call"),
                Some(Open),
                "a closed case reopens",
            ),
            (
                closed(),
                none,
                reopen(" "),
                None,
                "reopening needs a reason",
            ),
            (
                open(Priority::P1Urgent),
                none,
                reopen("x"),
                None,
                "only a closed case reopens",
            ),
            (
                open(Priority::P2Priority),
                none,
                follow_up.clone(),
                Some(AwaitingFollowUp),
                "scheduling a follow-up makes the case wait for it",
            ),
            (
                closed(),
                none,
                follow_up,
                None,
                "no follow-up on a closed case",
            ),
            (
                awaiting,
                one_pending,
                record.clone(),
                Some(Open),
                "the last follow-up done opens the case",
            ),
            (
                awaiting,
                two_pending,
                record,
                Some(AwaitingFollowUp),
                "it waits while others are pending",
            ),
        ];
        for (state, context, change, expected, row) in table {
            let result = check_case_change(state, context, &change);
            assert_eq!(
                result.as_ref().ok().map(|s| s.status),
                expected,
                "{row}: {result:?}"
            );
        }
    }

    #[test]
    fn a_closed_case_keeps_its_outcome_until_reopened() {
        let closed_state = check_case_change(
            open(Priority::P1Urgent),
            CaseContext::default(),
            &Change::Close {
                case_id: ID,
                outcome: CaseOutcome::ReturnedToFamily,
                reason: None,
            },
        )
        .unwrap();
        assert_eq!(closed_state.outcome, Some(CaseOutcome::ReturnedToFamily));
        let reopened = check_case_change(
            closed_state,
            CaseContext::default(),
            &Change::Reopen {
                case_id: ID,
                reason: "she called again".into(),
            },
        )
        .unwrap();
        assert_eq!(reopened.outcome, None);
    }

    #[test]
    fn priority_is_raised_freely_and_lowered_only_with_a_reason() {
        let change = |to, reason| Change::Priority {
            case_id: ID,
            to,
            reason,
        };
        let ctx = CaseContext::default();
        let p2 = open(Priority::P2Priority);
        assert_eq!(
            check_case_change(p2, ctx, &change(Priority::P0Immediate, None))
                .unwrap()
                .priority,
            Priority::P0Immediate
        );
        let refused = check_case_change(p2, ctx, &change(Priority::P3Routine, None)).unwrap_err();
        assert!(matches!(refused, Error::InvalidArgument(ref v) if v[0].field == "reason"));
        assert_eq!(
            check_case_change(
                p2,
                ctx,
                &change(Priority::P3Routine, reason("counselling only"))
            )
            .unwrap()
            .priority,
            Priority::P3Routine
        );
        assert!(check_case_change(p2, ctx, &change(Priority::P2Priority, None)).is_err());
        assert!(check_case_change(closed(), ctx, &change(Priority::P0Immediate, None)).is_err());
    }

    #[test]
    fn follow_ups_default_to_72_hours_for_suicide_risk_and_by_priority_otherwise() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let due = |category, priority| default_follow_up(category, priority, at) - at;
        assert_eq!(
            due(Category::SuicidalThoughts, Priority::P3Routine),
            Duration::hours(72)
        );
        assert_eq!(
            due(Category::SuicideAttempt, Priority::P0Immediate),
            Duration::hours(72)
        );
        assert_eq!(
            due(Category::ChildNeglect, Priority::P1Urgent),
            Duration::hours(24)
        );
        assert_eq!(
            due(Category::AcuteFamilyConflict, Priority::P2Priority),
            Duration::hours(72)
        );
        assert_eq!(
            due(Category::Parenting, Priority::P3Routine),
            Duration::days(7)
        );
    }

    #[test]
    fn a_refused_transition_names_the_current_status_and_maps_to_the_right_error() {
        let error = transition_error(
            "referral",
            "completed",
            TransitionError::NotAllowed {
                from: "completed",
                to: "accepted",
            },
        );
        assert!(
            matches!(&error, Error::FailedPrecondition(m) if m.contains("the referral is completed")),
            "{error:?}"
        );
        let error = transition_error(
            "dispatch",
            "assigned",
            TransitionError::WrongSide {
                to: "cancelled",
                owner: "requesting side",
            },
        );
        assert!(matches!(error, Error::PermissionDenied(_)));
        let error = transition_error(
            "referral",
            "requested",
            TransitionError::ReasonRequired { to: "rejected" },
        );
        assert!(matches!(error, Error::InvalidArgument(_)));
    }

    #[test]
    fn call_centres_and_supervisors_request_and_centres_and_teams_receive() {
        let actor = |role| Actor {
            role,
            id: "x".into(),
        };
        assert_eq!(actor(ActorRole::CallCentre).side(), Side::Requester);
        assert_eq!(actor(ActorRole::Supervisor).side(), Side::Requester);
        assert_eq!(actor(ActorRole::ReceivingCentre).side(), Side::Receiver);
        assert_eq!(actor(ActorRole::MobileTeam).side(), Side::Receiver);
        assert_eq!(actor(ActorRole::MobileTeam).to_string(), "mobile_team:x");
    }
}
