//! The lifecycles the server enforces: a referral's (a subset of FHIR Task, as the SDOHCC
//! referral profile uses it) and a dispatch's (after NENA EIDO).
//!
//! A transition names the side that makes it. The side that sent a referral may only cancel it;
//! the receiving side moves it through the rest. A dispatch is moved by its team, and cancelled
//! by the dispatching centre.

use super::types::{DispatchStatus, ReferralStatus};

/// Who asks for a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The side that made the referral or the dispatch (the call centre, a supervisor).
    Requester,
    /// The side that received it (the service point, the mobile team).
    Receiver,
}

/// Why a transition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The transition does not exist from the current status.
    #[error("cannot go from {from} to {to}")]
    NotAllowed {
        /// The current status.
        from: &'static str,
        /// The status asked for.
        to: &'static str,
    },
    /// The transition exists, but belongs to the other side.
    #[error("{to} is set by the {owner}")]
    WrongSide {
        /// The status asked for.
        to: &'static str,
        /// Who may set it.
        owner: &'static str,
    },
    /// The transition needs a reason and none was given.
    #[error("{to} needs a reason")]
    ReasonRequired {
        /// The status asked for.
        to: &'static str,
    },
}

impl ReferralStatus {
    /// True once nothing more can happen to the referral. Until then it holds a place at its
    /// service point.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Rejected | Self::Completed | Self::Failed | Self::Cancelled
        )
    }
}

impl DispatchStatus {
    /// True once nothing more can happen to the dispatch.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Cleared | Self::Cancelled | Self::Declined)
    }

    /// True once the team is at the scene or beyond; a dispatch can no longer be cancelled.
    pub fn has_reached_scene(self) -> bool {
        matches!(self, Self::OnScene | Self::Transporting | Self::Cleared)
    }
}

/// Checks a referral transition.
pub fn check_referral(
    from: ReferralStatus,
    to: ReferralStatus,
    side: Side,
    reason: Option<&str>,
) -> Result<(), TransitionError> {
    use ReferralStatus::*;
    let not_allowed = || TransitionError::NotAllowed {
        from: from.as_str(),
        to: to.as_str(),
    };
    let allowed = match (from, to) {
        (f, Cancelled) => !f.is_terminal(),
        (Requested, Accepted | Rejected) => true,
        (Accepted, InProgress) => true,
        (InProgress, Completed | Failed | OnHold) => true,
        (OnHold, InProgress) => true,
        _ => false,
    };
    if !allowed {
        return Err(not_allowed());
    }
    check_side_and_reason(
        to.as_str(),
        to == Cancelled,
        matches!(to, Rejected | Failed),
        side,
        reason,
    )
}

/// Checks a dispatch transition.
pub fn check_dispatch(
    from: DispatchStatus,
    to: DispatchStatus,
    side: Side,
    reason: Option<&str>,
) -> Result<(), TransitionError> {
    use DispatchStatus::*;
    let allowed = match (from, to) {
        (f, Cancelled) => !f.is_terminal() && !f.has_reached_scene(),
        (Assigned, Acknowledged | Declined) => true,
        (Acknowledged, EnRoute) => true,
        (EnRoute, OnScene) => true,
        (OnScene, Transporting | Cleared) => true,
        (Transporting, Cleared) => true,
        _ => false,
    };
    if !allowed {
        return Err(TransitionError::NotAllowed {
            from: from.as_str(),
            to: to.as_str(),
        });
    }
    check_side_and_reason(
        to.as_str(),
        to == Cancelled,
        matches!(to, Declined | Cancelled),
        side,
        reason,
    )
}

/// Cancelling belongs to the requesting side and everything else to the receiving side; some
/// statuses need a reason.
fn check_side_and_reason(
    to: &'static str,
    cancelling: bool,
    needs_reason: bool,
    side: Side,
    reason: Option<&str>,
) -> Result<(), TransitionError> {
    let owner = if cancelling {
        Side::Requester
    } else {
        Side::Receiver
    };
    if side != owner {
        let owner = match owner {
            Side::Requester => "requesting side",
            Side::Receiver => "receiving side",
        };
        return Err(TransitionError::WrongSide { to, owner });
    }
    if needs_reason && reason.is_none_or(|r| r.trim().is_empty()) {
        return Err(TransitionError::ReasonRequired { to });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use strum::VariantArray;

    use super::*;

    /// Every referral transition the lifecycle allows, with the side that makes it.
    const REFERRAL_ALLOWED: &[(ReferralStatus, ReferralStatus, Side)] = {
        use ReferralStatus::*;
        use Side::*;
        &[
            (Requested, Accepted, Receiver),
            (Requested, Rejected, Receiver),
            (Accepted, InProgress, Receiver),
            (InProgress, Completed, Receiver),
            (InProgress, Failed, Receiver),
            (InProgress, OnHold, Receiver),
            (OnHold, InProgress, Receiver),
            (Requested, Cancelled, Requester),
            (Accepted, Cancelled, Requester),
            (InProgress, Cancelled, Requester),
            (OnHold, Cancelled, Requester),
        ]
    };

    const DISPATCH_ALLOWED: &[(DispatchStatus, DispatchStatus, Side)] = {
        use DispatchStatus::*;
        use Side::*;
        &[
            (Assigned, Acknowledged, Receiver),
            (Assigned, Declined, Receiver),
            (Acknowledged, EnRoute, Receiver),
            (EnRoute, OnScene, Receiver),
            (OnScene, Transporting, Receiver),
            (OnScene, Cleared, Receiver),
            (Transporting, Cleared, Receiver),
            (Assigned, Cancelled, Requester),
            (Acknowledged, Cancelled, Requester),
            (EnRoute, Cancelled, Requester),
        ]
    };

    #[test]
    fn exactly_the_listed_referral_transitions_are_allowed_and_only_to_their_side() {
        for &from in ReferralStatus::VARIANTS {
            for &to in ReferralStatus::VARIANTS {
                for side in [Side::Requester, Side::Receiver] {
                    let result = check_referral(from, to, side, Some("a reason"));
                    let listed = REFERRAL_ALLOWED.contains(&(from, to, side));
                    assert_eq!(
                        result.is_ok(),
                        listed,
                        "{from:?} -> {to:?} by {side:?}: {result:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn exactly_the_listed_dispatch_transitions_are_allowed_and_only_to_their_side() {
        for &from in DispatchStatus::VARIANTS {
            for &to in DispatchStatus::VARIANTS {
                for side in [Side::Requester, Side::Receiver] {
                    let result = check_dispatch(from, to, side, Some("a reason"));
                    let listed = DISPATCH_ALLOWED.contains(&(from, to, side));
                    assert_eq!(
                        result.is_ok(),
                        listed,
                        "{from:?} -> {to:?} by {side:?}: {result:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_refused_transition_names_the_current_status() {
        let error = check_referral(
            ReferralStatus::Completed,
            ReferralStatus::Accepted,
            Side::Receiver,
            None,
        )
        .unwrap_err();
        assert_eq!(error.to_string(), "cannot go from completed to accepted");
        let error = check_dispatch(
            DispatchStatus::OnScene,
            DispatchStatus::Cancelled,
            Side::Requester,
            Some("x"),
        )
        .unwrap_err();
        assert_eq!(error.to_string(), "cannot go from on_scene to cancelled");
    }

    #[test]
    fn rejection_failure_decline_and_cancellation_of_a_dispatch_need_a_reason() {
        use ReferralStatus as R;
        assert_eq!(
            check_referral(R::Requested, R::Rejected, Side::Receiver, Some("  ")),
            Err(TransitionError::ReasonRequired { to: "rejected" })
        );
        assert!(check_referral(R::InProgress, R::Failed, Side::Receiver, None).is_err());
        assert!(check_referral(R::Requested, R::Cancelled, Side::Requester, None).is_ok());
        use DispatchStatus as D;
        assert!(check_dispatch(D::Assigned, D::Declined, Side::Receiver, None).is_err());
        assert!(check_dispatch(D::Assigned, D::Cancelled, Side::Requester, None).is_err());
        assert!(check_dispatch(D::Assigned, D::Acknowledged, Side::Receiver, None).is_ok());
    }
}
