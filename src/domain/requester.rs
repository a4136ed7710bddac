//! Who asks for an intake or a change, as the domain records and checks it: a plain value the
//! edge builds from the caller's token (`access::Caller::requester`), so nothing below the edge
//! handles tokens. What the requester may reach and which parts of a case are theirs to move
//! are decided by `access` when it builds the value; the domain only applies them to the case
//! it loaded.

use super::Error;
use super::reach::Reach;

/// The parts of a case within reach that a requester may move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parts {
    /// Every part its role may change (call centres, supervisors).
    Any,
    /// Only this team's dispatches.
    TeamDispatches(String),
    /// Only the referrals addressed to this service point.
    ReferralsTo(String),
}

/// The requester of an intake or a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    /// Who: the token's subject. A case records who recorded it by this.
    pub subject: String,
    /// Their role's name, as the audit trail records it.
    pub role: &'static str,
    /// The operation asked for, as the audit trail names it.
    pub action: &'static str,
    /// The request's id (`x-request-id`, or one the server made up).
    pub request_id: String,
    /// The cases the requester may know exist.
    pub reach: Reach,
    /// The parts of a case within reach the requester may move.
    pub parts: Parts,
}

impl Requester {
    /// The service itself asking, for a change it makes on its own (a missed deadline's
    /// escalation): everywhere in reach, every part its own to move.
    pub fn service(id: &str, action: &'static str) -> Self {
        Self {
            subject: id.to_owned(),
            role: "system",
            action,
            request_id: String::new(),
            reach: Reach::Everywhere,
            parts: Parts::Any,
        }
    }
}

impl Parts {
    /// Refuses a change to a dispatch that is not the requesting team's own.
    pub fn check_dispatch_owner(&self, team_id: &str) -> Result<(), Error> {
        match self {
            Parts::TeamDispatches(own) if own != team_id => Err(Error::PermissionDenied(
                "the dispatch is assigned to another team".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Refuses a change to a referral that is not addressed to the requesting centre.
    pub fn check_referral_owner(&self, service_point_id: &str) -> Result<(), Error> {
        match self {
            Parts::ReferralsTo(own) if own != service_point_id => Err(Error::PermissionDenied(
                "the referral is addressed to another service point".into(),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requester(parts: Parts) -> Requester {
        Requester {
            subject: "someone".into(),
            role: "team",
            action: "transition_dispatch",
            request_id: "r".into(),
            reach: Reach::Everywhere,
            parts,
        }
    }

    #[test]
    fn a_requester_moves_only_the_parts_that_are_theirs() {
        let team = requester(Parts::TeamDispatches("team-a".into()));
        assert!(team.parts.check_dispatch_owner("team-a").is_ok());
        assert!(matches!(
            team.parts.check_dispatch_owner("team-b"),
            Err(Error::PermissionDenied(_))
        ));
        assert!(team.parts.check_referral_owner("centre-1").is_ok());

        let centre = requester(Parts::ReferralsTo("centre-1".into()));
        assert!(centre.parts.check_referral_owner("centre-1").is_ok());
        assert!(matches!(
            centre.parts.check_referral_owner("centre-2"),
            Err(Error::PermissionDenied(_))
        ));
        assert!(centre.parts.check_dispatch_owner("team-a").is_ok());

        let operator = requester(Parts::Any);
        assert!(operator.parts.check_dispatch_owner("team-b").is_ok());
        assert!(operator.parts.check_referral_owner("centre-2").is_ok());
    }
}
