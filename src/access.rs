//! Who may do what, and to which cases: the one place roles and jurisdictions are decided.
//!
//! The rule, applied everywhere:
//! - an operation the caller's role never allows is `PERMISSION_DENIED`, whatever it names;
//! - a case outside the caller's reach is `NOT_FOUND`, exactly as a case that does not exist, so
//!   a caller cannot learn that a case exists by probing ids;
//! - a case the caller can see, but a part of it that is not theirs (another team's dispatch,
//!   a referral addressed to another centre), is `PERMISSION_DENIED`;
//! - a list, a watch or statistics asked for outside the caller's area (another province) is
//!   `PERMISSION_DENIED`: provinces are no secret; asked for without an area, they are narrowed
//!   to the caller's in the query itself.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::auth::{ALL_PROVINCES, Claims, Role};
use crate::domain::Error;
use crate::domain::audit::AuditEntry;
use crate::domain::change::{Actor, ActorRole};
use crate::domain::names::normalise;
use crate::domain::reach::Reach;
use crate::domain::requester::{Parts, Requester};

/// What a caller asks to do, one kind per group of RPCs that share a permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Record a 1480 intake.
    SubmitHotlineIntake,
    /// Record a 123 intake.
    SubmitEmergencyIntake,
    /// Read a case's details or its timeline.
    ReadCase,
    /// List cases.
    ListCases,
    /// Watch cases change.
    WatchCases,
    /// Read counts and response times.
    ReadStatistics,
    /// Move a referral through its lifecycle.
    TransitionReferral,
    /// Move a dispatch through its lifecycle.
    TransitionDispatch,
    /// Close, reopen, re-prioritise a case, or ask routing for one more destination.
    ManageCase,
    /// Add a note.
    AddNote,
    /// Schedule a follow-up or record how one went.
    FollowUp,
    /// Follow a team's assignments.
    StreamAssignments,
    /// Read the directory and the routing policy.
    ReadDirectory,
    /// Change the directory's entries or the policy.
    ManageDirectory,
    /// Set a team's duty status.
    UpdateTeamStatus,
    /// Set a service point's occupancy.
    UpdateOccupancy,
    /// Read the audit trail.
    ReadAudit,
    /// Declare, change or end a crisis.
    ManageCrisis,
    /// List the crisis declarations.
    ReadCrises,
}

impl Operation {
    /// Recording an intake of `line`.
    pub fn submit(line: crate::domain::types::Line) -> Self {
        match line {
            crate::domain::types::Line::Hotline1480 => Self::SubmitHotlineIntake,
            crate::domain::types::Line::Emergency123 => Self::SubmitEmergencyIntake,
        }
    }

    /// The operation a gRPC method (`/package.Service/Method`) asks for; `None` for a method
    /// that is not the service's own (health, reflection) or does not exist.
    pub fn of_method(path: &str) -> Option<Self> {
        let method = path.strip_prefix("/referral.v1.")?;
        Some(match method {
            "HotlineIntake/SubmitReferral" => Self::SubmitHotlineIntake,
            "EmergencyIntake/ReportEmergency" => Self::SubmitEmergencyIntake,
            "CaseTracking/GetCase" | "CaseTracking/GetTimeline" => Self::ReadCase,
            "CaseTracking/ListCases" => Self::ListCases,
            "CaseTracking/WatchCases" => Self::WatchCases,
            "CaseTracking/GetStatistics" => Self::ReadStatistics,
            "CaseTracking/TransitionReferral" => Self::TransitionReferral,
            "CaseTracking/ChangePriority"
            | "CaseTracking/CloseCase"
            | "CaseTracking/ReopenCase"
            | "CaseTracking/RequestAssignment" => Self::ManageCase,
            "CaseTracking/AddNote" => Self::AddNote,
            "CaseTracking/ScheduleFollowUp" | "CaseTracking/RecordFollowUp" => Self::FollowUp,
            "Dispatch/ReportDispatchStatus" => Self::TransitionDispatch,
            "Dispatch/StreamAssignments" => Self::StreamAssignments,
            "Directory/GetPolicy"
            | "Directory/ListServicePoints"
            | "Directory/GetServicePoint"
            | "Directory/ListTeams"
            | "Directory/GetTeam"
            | "Directory/ListCounties" => Self::ReadDirectory,
            "Directory/ReplacePolicy"
            | "Directory/UpsertCounty"
            | "Directory/UpsertServicePoint"
            | "Directory/UpsertTeam" => Self::ManageDirectory,
            "Directory/UpdateOccupancy" => Self::UpdateOccupancy,
            "Directory/UpdateTeamStatus" => Self::UpdateTeamStatus,
            "AuditTrail/ListAuditEntries" => Self::ReadAudit,
            "CrisisOperation/DeclareCrisis"
            | "CrisisOperation/ChangeCrisis"
            | "CrisisOperation/EndCrisis" => Self::ManageCrisis,
            "CrisisOperation/ListCrises" => Self::ReadCrises,
            "CrisisOperation/GetCrisisStatistics" => Self::ReadStatistics,
            _ => return None,
        })
    }

    /// The operation a change is.
    pub fn of(change: &crate::domain::change::Change) -> Self {
        use crate::domain::change::Change;
        match change {
            Change::Referral { .. } => Self::TransitionReferral,
            Change::Dispatch { .. } => Self::TransitionDispatch,
            Change::Close { .. }
            | Change::Reopen { .. }
            | Change::Priority { .. }
            | Change::RequestAssignment { .. }
            | Change::OfferTeam { .. }
            | Change::SlaBreach { .. } => Self::ManageCase,
            Change::Note { .. } => Self::AddNote,
            Change::ScheduleFollowUp { .. } | Change::RecordFollowUp { .. } => Self::FollowUp,
        }
    }

    /// Its name in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SubmitHotlineIntake => "submit_hotline_intake",
            Self::SubmitEmergencyIntake => "submit_emergency_intake",
            Self::ReadCase => "read_case",
            Self::ListCases => "list_cases",
            Self::WatchCases => "watch_cases",
            Self::ReadStatistics => "read_statistics",
            Self::TransitionReferral => "transition_referral",
            Self::TransitionDispatch => "transition_dispatch",
            Self::ManageCase => "manage_case",
            Self::AddNote => "add_note",
            Self::FollowUp => "follow_up",
            Self::StreamAssignments => "stream_assignments",
            Self::ReadDirectory => "read_directory",
            Self::ManageDirectory => "manage_directory",
            Self::UpdateTeamStatus => "update_team_status",
            Self::UpdateOccupancy => "update_occupancy",
            Self::ReadAudit => "read_audit",
            Self::ManageCrisis => "manage_crisis",
            Self::ReadCrises => "read_crises",
        }
    }
}

/// Which roles may ask for an operation at all (their reach decides which cases).
fn allowed(role: Role, operation: Operation) -> bool {
    use Operation::*;
    use Role::*;
    match operation {
        SubmitHotlineIntake => matches!(role, Hotline | Supervisor),
        SubmitEmergencyIntake => matches!(role, Operator | Supervisor),
        ReadCase | ListCases => matches!(role, Hotline | Operator | Team | Centre | Supervisor),
        WatchCases => matches!(role, Hotline | Operator | Team | Supervisor),
        ReadStatistics => matches!(role, Operator | Supervisor | Admin),
        TransitionReferral => matches!(role, Operator | Centre | Supervisor),
        TransitionDispatch => matches!(role, Operator | Team | Supervisor),
        ManageCase => matches!(role, Operator | Supervisor),
        AddNote => matches!(role, Hotline | Operator | Team | Centre | Supervisor),
        FollowUp => matches!(role, Hotline | Operator | Centre | Supervisor),
        StreamAssignments => matches!(role, Team),
        ReadDirectory => !matches!(role, Auditor),
        ManageDirectory => matches!(role, Admin),
        UpdateTeamStatus => matches!(role, Team | Supervisor | Admin),
        UpdateOccupancy => matches!(role, Centre | Supervisor | Admin),
        ReadAudit => matches!(role, Auditor),
        ManageCrisis => matches!(role, Supervisor),
        ReadCrises => !matches!(role, Auditor),
    }
}

/// Who is calling, as their token says, and the request id their audit rows carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's claims.
    pub claims: Claims,
    /// The request's id (`x-request-id`, or one the server made up).
    pub request_id: String,
}

/// How a call reached the centre that recorded it.
#[derive(Debug, Clone, Copy)]
pub struct CallRoute<'a> {
    /// The province whose centre answered.
    pub answering: &'a str,
    /// The province the call overflowed from, when it did.
    pub overflowed_from: Option<&'a str>,
    /// The answering province takes that province's overflow (its neighbour in the directory).
    pub takes_overflow: bool,
}

impl Caller {
    /// Refuses a team's duty status set by anyone but the team itself, a supervisor of the
    /// team's province (`province`) or an administrator.
    pub fn check_team_update(&self, team_id: &str, province: &str) -> Result<(), Error> {
        match self.role() {
            Role::Team => self.check_dispatch_owner(team_id),
            Role::Supervisor => self
                .narrow_area(Some(province.to_owned()), None)
                .map(|_| ()),
            _ => Ok(()),
        }
    }

    /// Refuses a service point's occupancy set by anyone but the service point itself, a
    /// supervisor of its province (`province`) or an administrator.
    pub fn check_occupancy_update(&self, point_id: &str, province: &str) -> Result<(), Error> {
        match self.role() {
            Role::Centre => self.check_referral_owner(point_id).map_err(|_| {
                Error::PermissionDenied("a centre sets its own occupancy only".into())
            }),
            Role::Supervisor => self
                .narrow_area(Some(province.to_owned()), None)
                .map(|_| ()),
            _ => Ok(()),
        }
    }
}

impl Caller {
    /// The audit entry of this caller asking for `operation` on `case_id`, with what came of
    /// it.
    pub fn audit_entry(
        &self,
        operation: Operation,
        case_id: Option<Uuid>,
        outcome: &str,
        at: DateTime<Utc>,
    ) -> AuditEntry {
        AuditEntry::of(
            &self.claims.sub,
            self.role().as_str(),
            operation.as_str(),
            &self.request_id,
            case_id,
            outcome,
            at,
        )
    }
}

impl Caller {
    /// The caller's role.
    pub fn role(&self) -> Role {
        self.claims.role
    }

    /// Refuses an operation the caller's role never allows.
    pub fn check(&self, operation: Operation) -> Result<(), Error> {
        if allowed(self.claims.role, operation) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "the {} role may not {}",
                self.claims.role.as_str(),
                operation.as_str().replace('_', " ")
            )))
        }
    }

    /// The cases the caller may know exist.
    pub fn reach(&self) -> Reach {
        let claims = &self.claims;
        match claims.role {
            Role::Hotline => Reach::RecordedBy(claims.sub.clone()),
            Role::Team => claims
                .team
                .clone()
                .map(Reach::Team)
                .unwrap_or(Reach::Nothing),
            Role::Centre => Reach::ServicePoint(claims.sub.clone()),
            Role::Operator | Role::Supervisor if claims.province == ALL_PROVINCES => {
                Reach::Everywhere
            }
            Role::Operator | Role::Supervisor => Reach::Area {
                province: claims.province.clone(),
                county: claims.county.clone(),
            },
            Role::Admin | Role::Auditor => Reach::Nothing,
        }
    }

    /// The area the caller holds for area-wide questions (lists, watches, statistics): `None`
    /// for national scope. Administrators' statistics follow their token's province.
    fn area(&self) -> Option<(String, Option<String>)> {
        let claims = &self.claims;
        (claims.province != ALL_PROVINCES).then(|| (claims.province.clone(), claims.county.clone()))
    }

    /// Refuses a crisis declared, changed or ended for an area the caller's token does not
    /// cover whole: a province's supervisor (not limited to a county) declares for its
    /// province, a national one (`all`) for any province or the whole country (`None`).
    pub fn check_crisis_area(&self, province: Option<&str>) -> Result<(), Error> {
        match (self.area(), province) {
            (None, _) => Ok(()),
            (Some((own, None)), Some(asked)) if own == asked => Ok(()),
            (Some(_), None) => Err(Error::PermissionDenied(
                "only a national supervisor (province all) declares a crisis for the whole country"
                    .into(),
            )),
            (Some((own, Some(_))), Some(asked)) if own == asked => Err(Error::PermissionDenied(
                "a supervisor limited to one county cannot declare a crisis for the province"
                    .into(),
            )),
            (Some(_), Some(_)) => Err(Error::PermissionDenied(
                "the province asked for is outside this token's jurisdiction".into(),
            )),
        }
    }

    /// Narrows a requested province and county to the caller's area: an absent request takes
    /// the caller's area; a request outside it is refused.
    pub fn narrow_area(
        &self,
        province: Option<String>,
        county: Option<String>,
    ) -> Result<(Option<String>, Option<String>), Error> {
        let Some((own_province, own_county)) = self.area() else {
            return Ok((province, county));
        };
        let outside = |what: &str| {
            Err(Error::PermissionDenied(format!(
                "the {what} asked for is outside this token's jurisdiction"
            )))
        };
        if province.as_ref().is_some_and(|p| *p != own_province) {
            return outside("province");
        }
        match (&own_county, &county) {
            (Some(own), Some(asked)) if normalise(own) != normalise(asked) => {
                return outside("county");
            }
            _ => {}
        }
        Ok((Some(own_province), county.or(own_county)))
    }

    /// Refuses an intake for a place outside the caller's area (a provincial 123 operator
    /// records its province's calls; a 1480 counsellor records any caller's). A provincial
    /// operator also records a call that overflowed to its centre from a province whose
    /// overflow its province takes (`call`): the case is the incident's province's.
    pub fn check_intake_area(
        &self,
        province: &str,
        county: &str,
        call: &CallRoute<'_>,
    ) -> Result<(), Error> {
        if self.claims.role == Role::Hotline {
            return Ok(());
        }
        if let Some((own_province, None)) = self.area()
            && own_province != province
            && call.overflowed_from == Some(province)
            && call.answering == own_province
            && call.takes_overflow
        {
            return Ok(());
        }
        self.narrow_area(Some(province.to_owned()), Some(county.to_owned()))
            .map(|_| ())
    }

    /// The actor a change by this caller is recorded as.
    pub fn actor(&self) -> Actor {
        let claims = &self.claims;
        let (role, id) = match claims.role {
            Role::Hotline | Role::Operator => (ActorRole::CallCentre, claims.sub.clone()),
            Role::Team => (
                ActorRole::MobileTeam,
                claims.team.clone().unwrap_or_else(|| claims.sub.clone()),
            ),
            Role::Centre => (ActorRole::ReceivingCentre, claims.sub.clone()),
            Role::Supervisor | Role::Admin | Role::Auditor => {
                (ActorRole::Supervisor, claims.sub.clone())
            }
        };
        Actor { role, id }
    }

    /// The token's subject: who the caller is.
    pub fn subject(&self) -> &str {
        &self.claims.sub
    }

    /// The requester an intake or a change by this caller carries below the edge: its
    /// subject, role, request id, reach, and the parts of a case it may move (a team its own
    /// dispatches, a centre the referrals addressed to it).
    pub fn requester(&self, operation: Operation) -> Requester {
        Requester {
            subject: self.claims.sub.clone(),
            role: self.claims.role.as_str(),
            action: operation.as_str(),
            request_id: self.request_id.clone(),
            reach: self.reach(),
            parts: self.parts(),
        }
    }

    /// The parts of a case within reach this caller may move.
    fn parts(&self) -> Parts {
        let claims = &self.claims;
        match (claims.role, &claims.team) {
            (Role::Team, Some(team)) => Parts::TeamDispatches(team.clone()),
            (Role::Centre, _) => Parts::ReferralsTo(claims.sub.clone()),
            _ => Parts::Any,
        }
    }

    /// Refuses a change to a dispatch that is not the calling team's own.
    pub fn check_dispatch_owner(&self, team_id: &str) -> Result<(), Error> {
        self.parts().check_dispatch_owner(team_id)
    }

    /// Refuses a change to a referral that is not addressed to the calling centre.
    pub fn check_referral_owner(&self, service_point_id: &str) -> Result<(), Error> {
        self.parts().check_referral_owner(service_point_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::reach::CaseParties;

    fn caller(role: Role, province: &str, county: Option<&str>, team: Option<&str>) -> Caller {
        Caller {
            claims: Claims {
                sub: "someone".into(),
                role,
                province: province.into(),
                county: county.map(Into::into),
                team: team.map(Into::into),
                iat: 0,
                exp: 1,
            },
            request_id: "r".into(),
        }
    }

    #[test]
    fn reach_follows_the_role_and_the_jurisdiction() {
        let teams = ["team-a".to_owned()];
        let points = ["someone".to_owned()];
        let case = CaseParties {
            province: "IR-23",
            county: "tehran",
            recorded_by: "counsellor-1",
            teams: &teams,
            service_points: &points,
        };
        let table = [
            (caller(Role::Operator, "IR-23", None, None), true),
            (caller(Role::Operator, "IR-23", Some("tehran"), None), true),
            (caller(Role::Operator, "IR-23", Some("ray"), None), false),
            (caller(Role::Operator, "IR-07", None, None), false),
            (caller(Role::Supervisor, "all", None, None), true),
            (caller(Role::Team, "IR-23", None, Some("team-a")), true),
            (caller(Role::Team, "IR-23", None, Some("team-b")), false),
            (caller(Role::Centre, "IR-23", None, None), true),
            (caller(Role::Hotline, "IR-23", None, None), false),
            (caller(Role::Admin, "all", None, None), false),
            (caller(Role::Auditor, "all", None, None), false),
        ];
        for (caller, expected) in table {
            assert_eq!(caller.reach().covers(&case), expected, "{caller:?}");
        }
    }

    #[test]
    fn an_area_question_is_narrowed_to_the_callers_area() {
        let tehran = caller(Role::Operator, "IR-23", None, None);
        assert_eq!(
            tehran.narrow_area(None, None).unwrap(),
            (Some("IR-23".into()), None)
        );
        assert!(matches!(
            tehran.narrow_area(Some("IR-07".into()), None),
            Err(Error::PermissionDenied(_))
        ));
        let county = caller(Role::Operator, "IR-23", Some("ray"), None);
        assert_eq!(
            county.narrow_area(None, None).unwrap(),
            (Some("IR-23".into()), Some("ray".into()))
        );
        assert!(county.narrow_area(None, Some("tehran".into())).is_err());
        let national = caller(Role::Supervisor, "all", None, None);
        assert_eq!(
            national.narrow_area(Some("IR-07".into()), None).unwrap(),
            (Some("IR-07".into()), None)
        );
    }

    #[test]
    fn administrators_and_auditors_read_no_case() {
        for role in [Role::Admin, Role::Auditor] {
            let caller = caller(role, "all", None, None);
            assert!(caller.check(Operation::ReadCase).is_err());
            assert!(caller.check(Operation::ListCases).is_err());
            assert!(caller.check(Operation::WatchCases).is_err());
        }
        assert!(
            caller(Role::Auditor, "all", None, None)
                .check(Operation::ReadAudit)
                .is_ok()
        );
        assert!(
            caller(Role::Admin, "all", None, None)
                .check(Operation::ReadAudit)
                .is_err()
        );
    }
}
