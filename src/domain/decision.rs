//! A routing decision as a value: the policy's actions, the destinations they found, every
//! place looked at with what routing made of it, and the summary a receipt shows. Routing
//! (`crate::routing`) makes decisions; the domain keeps, explains and acts on them.

use serde::{Deserialize, Serialize};

use crate::domain::types::RequestedAction;

/// A fact about the case an action can depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// Violence is going on.
    ViolenceOngoing,
    /// A weapon or lethal means is present.
    WeaponPresent,
    /// Someone is injured or needs medical care.
    InjuryOrMedicalNeed,
    /// A suicide attempt is in progress.
    AttemptInProgress,
    /// The responding team may be at risk.
    RiskToTeam,
    /// A subject is a minor.
    MinorsInvolved,
}

/// What a rule does. A rule's actions run in order; each finds its own destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Send the nearest available mobile team.
    DispatchMobileTeam,
    /// Refer the case to a service point of a kind: the one `point` names when it can take
    /// the case, else the nearest eligible one along the cover chain.
    ReferTo {
        /// The kind of service point.
        kind: ServicePointKind,
        /// A service point of that kind the rule names (a crisis's field centre, say).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        point: Option<String>,
    },
    /// Tell an outside body (police 110, EMS 115, forensic medicine, the prosecutor's unit),
    /// when any of `only_if` holds (always, when empty).
    Notify {
        /// The outside body.
        body: ServicePointKind,
        /// Facts of which at least one must hold.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        only_if: Vec<Flag>,
    },
    /// Hand a 1480 case to the province's 123 centre.
    #[serde(rename = "hand_over_to_123")]
    HandOverTo123,
}

impl Action {
    /// Why the destination this action finds takes the case.
    pub fn purpose(&self) -> Purpose {
        match self {
            Self::DispatchMobileTeam => Purpose::Dispatch,
            Self::ReferTo { .. } => Purpose::Referral,
            Self::Notify { .. } => Purpose::Notification,
            Self::HandOverTo123 => Purpose::HandOver,
        }
    }
}

/// Kinds of service point.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ServicePointKind {
    /// مرکز اورژانس اجتماعی ۱۲۳ استان — the province's 123 centre, which takes hand-overs.
    SocialEmergencyCentre,
    /// مرکز مداخله در بحران — crisis-intervention centre.
    CrisisInterventionCentre,
    /// پایگاه خدمات اجتماعی — neighbourhood social-service base.
    SocialServiceBase,
    /// خانه امن — safe house.
    SafeHouse,
    /// مرکز مشاوره — counselling centre.
    CounsellingCentre,
    /// مرکز تخصصی پیشگیری از خودکشی — suicide-specialised centre.
    SuicideSpecialisedCentre,
    /// مرکز شبانه‌روزی کودکان — child residential centre.
    ChildResidentialCentre,
    /// پلیس ۱۱۰ — police.
    #[serde(rename = "police_110")]
    #[strum(serialize = "police_110")]
    Police110,
    /// اورژانس ۱۱۵ — emergency medical service.
    #[serde(rename = "ems_115")]
    #[strum(serialize = "ems_115")]
    Ems115,
    /// پزشکی قانونی — forensic medicine.
    ForensicMedicine,
    /// واحد حمایت از اطفال دادستانی — the prosecutor's child-protection unit.
    ProsecutorChildProtection,
}

impl ServicePointKind {
    /// Returns the stable name used in policies and storage.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// True for outside bodies, which are notified rather than asked to accept.
    pub fn is_outside_body(self) -> bool {
        matches!(
            self,
            Self::Police110
                | Self::Ems115
                | Self::ForensicMedicine
                | Self::ProsecutorChildProtection
        )
    }
}

/// A mobile team's duty status.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum DutyStatus {
    /// On shift and free.
    Available,
    /// On shift, on a case.
    Busy,
    /// Not on shift.
    OffDuty,
    /// Vehicle or crew out of service.
    OutOfService,
}

/// A step of the cover chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "step", content = "province")]
pub enum CoverStep {
    /// The incident's own county.
    IncidentCounty,
    /// The county designated to cover it (شهرستان معین).
    DesignatedCounty,
    /// The rest of the province.
    Province,
    /// A neighbouring province taking the overflow.
    NeighbouringProvince(String),
    /// The service points serving the incident's neighbourhood (محله), before its county.
    Neighbourhood(String),
}

/// What routing made of one place it looked at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict", content = "detail")]
pub enum Verdict {
    /// Chosen.
    Chosen,
    /// Eligible, but ranked below the chosen one.
    RankedLower,
    /// Closed at the time of routing.
    Closed,
    /// No free place.
    Full,
    /// Does not serve the case's categories.
    NotServingCategory,
    /// Does not admit a subject of the case.
    Ineligible(String),
    /// A team that is not available.
    Unavailable(DutyStatus),
    /// Left out on purpose (it declined or rejected the case before).
    Excluded,
}

impl Verdict {
    /// The verdict in a few words, for a summary of what was passed over.
    pub fn reason(&self) -> String {
        match self {
            Self::Chosen => "chosen".into(),
            Self::RankedLower => "ranked lower".into(),
            Self::Closed => "closed".into(),
            Self::Full => "full".into(),
            Self::NotServingCategory => "not serving the case's categories".into(),
            Self::Ineligible(why) => format!("not admitting the subject ({why})"),
            Self::Unavailable(status) => {
                let status: &'static str = status.into();
                status.replace('_', " ")
            }
            Self::Excluded => "declined before".into(),
        }
    }
}

/// One place routing looked at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Identifier of the team or service point.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The step of the cover chain it was found in.
    pub step: CoverStep,
    /// Distance from the incident, in kilometres (rounded to 0.1).
    pub distance_km: f64,
    /// What routing made of it.
    pub verdict: Verdict,
}

/// Where an action sends the case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Destination {
    /// A mobile team.
    Team {
        /// Team id.
        id: String,
        /// Team name.
        name: String,
    },
    /// A service point or outside body.
    ServicePoint {
        /// Service point id.
        id: String,
        /// Its name.
        name: String,
        /// Its kind.
        kind: ServicePointKind,
    },
}

/// The outcome of one action of the rule that fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionDecision {
    /// The action.
    pub action: Action,
    /// Why the action did not apply (a notification whose facts do not hold).
    pub not_applicable: Option<String>,
    /// Where the case goes; `None` when nothing qualified (or the action did not apply).
    pub destination: Option<Destination>,
    /// Every place looked at, in the order looked at.
    pub candidates: Vec<Candidate>,
    /// When the destination is a service point closed now that the case may wait for: its next
    /// opening, when the referral's acceptance deadline starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waits_until: Option<chrono::DateTime<chrono::Utc>>,
}

impl ActionDecision {
    /// What the search of the incident's neighbourhood came to, when it made one.
    pub fn neighbourhood_note(&self) -> Option<String> {
        let neighbourhood = self.candidates.iter().find_map(|c| match &c.step {
            CoverStep::Neighbourhood(name) => Some(name),
            _ => None,
        })?;
        let chosen = self
            .candidates
            .iter()
            .find(|c| c.verdict == Verdict::Chosen);
        Some(match chosen {
            Some(c) if matches!(c.step, CoverStep::Neighbourhood(_)) => {
                format!("the neighbourhood {neighbourhood} is served by {}", c.name)
            }
            _ => format!(
                "nothing serving the neighbourhood {neighbourhood} could take the case: the \
                 search went on along the cover chain"
            ),
        })
    }
}

/// A routing decision, with everything needed to explain it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Version of the policy that decided.
    pub policy_version: i64,
    /// The rule that fired.
    pub rule_id: String,
    /// What the rule says.
    pub rule_description: String,
    /// One entry per action of the rule.
    pub actions: Vec<ActionDecision>,
    /// What a reader should know about how the decision was reached (the incident's county
    /// unknown, say).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// When the intake's requested action was not taken: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmet_request: Option<String>,
    /// The crisis declarations in force in the incident's province when the case was routed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crises: Vec<CrisisRef>,
}

/// A crisis declaration, as a decision made while it was in force names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrisisRef {
    /// The declaration's id.
    pub crisis_id: uuid::Uuid,
    /// Its name.
    pub name: String,
    /// Its version at the time.
    pub version: i64,
}

/// Why a destination takes the case.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Purpose {
    /// A mobile team goes to the scene.
    Dispatch,
    /// A service point is asked to take the case.
    Referral,
    /// An outside body is told.
    Notification,
    /// The province's 123 centre takes a 1480 case.
    HandOver,
}

impl Purpose {
    /// Returns the stable name used in storage.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One destination of a decision, with why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Why the destination takes the case.
    pub purpose: Purpose,
    /// The destination.
    pub destination: Destination,
    /// When a service point closed now opens: the referral waits for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waits_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// What a receipt says of routing: the rule, the destinations and whether anything failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingSummary {
    /// Version of the policy that decided.
    pub policy_version: i64,
    /// The rule that fired.
    pub rule_id: String,
    /// Where the case went.
    pub assignments: Vec<Assignment>,
    /// True when an action found no destination.
    pub unrouted: bool,
    /// What a reader should know about how the decision was reached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// When the intake's requested action was not taken: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmet_request: Option<String>,
}

/// How a case stands after routing.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RoutingStatus {
    /// Every action found its destination.
    Routed,
    /// An action found no destination: supervisors must step in.
    Unrouted,
    /// The rule that fired sends the case nowhere (information, nuisance).
    NoDestinationNeeded,
}

impl RoutingStatus {
    /// Returns the stable name used in storage.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl Decision {
    /// True when an action that applied found no destination: supervisors must step in.
    pub fn unrouted(&self) -> bool {
        self.actions
            .iter()
            .any(|a| a.not_applicable.is_none() && a.destination.is_none())
    }

    /// Where the case goes, action by action.
    pub fn assignments(&self) -> Vec<Assignment> {
        self.actions
            .iter()
            .filter_map(|a| {
                a.destination.clone().map(|destination| Assignment {
                    purpose: a.action.purpose(),
                    destination,
                    waits_until: a.waits_until,
                })
            })
            .collect()
    }

    /// How the case stands after this decision.
    pub fn status(&self) -> RoutingStatus {
        if self.unrouted() {
            RoutingStatus::Unrouted
        } else if self.assignments().is_empty() {
            RoutingStatus::NoDestinationNeeded
        } else {
            RoutingStatus::Routed
        }
    }

    /// The summary a receipt shows.
    pub fn summary(&self) -> RoutingSummary {
        RoutingSummary {
            policy_version: self.policy_version,
            rule_id: self.rule_id.clone(),
            assignments: self.assignments(),
            unrouted: self.unrouted(),
            notes: self.notes.clone(),
            unmet_request: self.unmet_request.clone(),
        }
    }

    /// Why the action an intake asked for (`requested`) is not in this decision, or `None`
    /// when it is (or nothing in particular was asked): the rule that fired has no such action,
    /// or the action found no destination, with what was looked at.
    pub fn unmet(&self, requested: RequestedAction) -> Option<String> {
        use crate::domain::types::{EmergencyAction, HotlineAction};
        const PLACEMENTS: [ServicePointKind; 3] = [
            ServicePointKind::CrisisInterventionCentre,
            ServicePointKind::SafeHouse,
            ServicePointKind::ChildResidentialCentre,
        ];
        let (asked, wanted): (&str, &dyn Fn(&Action) -> bool) = match requested {
            RequestedAction::Emergency(EmergencyAction::ResolvedByPhone) => return None,
            RequestedAction::Emergency(EmergencyAction::MobileTeam) => ("a mobile team", &|a| {
                matches!(a, Action::DispatchMobileTeam)
            }),
            RequestedAction::Emergency(EmergencyAction::Placement) => (
                "a placement (crisis centre, safe house or residential centre)",
                &|a| matches!(a, Action::ReferTo { kind, .. } if PLACEMENTS.contains(kind)),
            ),
            RequestedAction::Hotline(HotlineAction::HandOverTo123) => {
                ("a hand-over to 123", &|a| {
                    matches!(a, Action::HandOverTo123)
                })
            }
            RequestedAction::Hotline(HotlineAction::CounsellingCentreReferral) => {
                ("a counselling centre", &|a| {
                    matches!(
                        a,
                        Action::ReferTo {
                            kind: ServicePointKind::CounsellingCentre,
                            ..
                        }
                    )
                })
            }
            RequestedAction::Hotline(HotlineAction::SpecialisedService) => {
                ("a specialised service", &|a| {
                    matches!(
                        a,
                        Action::ReferTo {
                            kind: ServicePointKind::SuicideSpecialisedCentre,
                            ..
                        }
                    )
                })
            }
        };
        let tried: Vec<&ActionDecision> =
            self.actions.iter().filter(|a| wanted(&a.action)).collect();
        if tried.is_empty() {
            let rule = match (self.rule_id.as_str(), self.rule_description.as_str()) {
                ("", _) => "no rule".to_owned(),
                (id, "") => format!("rule {id}"),
                (id, description) => format!("rule {id} ({description})"),
            };
            return Some(format!(
                "{asked} was asked for, but {rule} of policy {} does not send one for this case",
                self.policy_version
            ));
        }
        if tried.iter().any(|a| a.destination.is_some()) {
            return None;
        }
        let looked: Vec<&Candidate> = tried.iter().flat_map(|a| &a.candidates).collect();
        if looked.is_empty() {
            return Some(format!(
                "{asked} was asked for, but the cover chain has none"
            ));
        }
        let mut reasons: Vec<(String, usize)> = Vec::new();
        for candidate in &looked {
            let reason = candidate.verdict.reason();
            match reasons.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, count)) => *count += 1,
                None => reasons.push((reason, 1)),
            }
        }
        let reasons: Vec<String> = reasons
            .into_iter()
            .map(|(reason, count)| format!("{count} {reason}"))
            .collect();
        Some(format!(
            "{asked} was asked for, but none could take the case: {} looked at ({})",
            looked.len(),
            reasons.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::types::{EmergencyAction, HotlineAction};

    fn decision(actions: Vec<ActionDecision>) -> Decision {
        Decision {
            policy_version: 3,
            rule_id: "the-rule".into(),
            rule_description: String::new(),
            actions,
            notes: Vec::new(),
            unmet_request: None,
            crises: Vec::new(),
        }
    }

    fn team(id: &str, verdict: Verdict) -> Candidate {
        Candidate {
            id: id.into(),
            name: id.into(),
            step: CoverStep::IncidentCounty,
            distance_km: 1.0,
            verdict,
        }
    }

    fn dispatch(destination: Option<&str>, candidates: Vec<Candidate>) -> ActionDecision {
        ActionDecision {
            action: Action::DispatchMobileTeam,
            not_applicable: None,
            destination: destination.map(|id| Destination::Team {
                id: id.into(),
                name: id.into(),
            }),
            candidates,
            waits_until: None,
        }
    }

    const TEAM: RequestedAction = RequestedAction::Emergency(EmergencyAction::MobileTeam);

    #[test]
    fn a_request_the_decision_takes_is_met() {
        let sent = decision(vec![dispatch(
            Some("t1"),
            vec![team("t1", Verdict::Chosen)],
        )]);
        assert_eq!(sent.unmet(TEAM), None);
        let by_phone = RequestedAction::Emergency(EmergencyAction::ResolvedByPhone);
        assert_eq!(decision(Vec::new()).unmet(by_phone), None);
    }

    #[test]
    fn a_request_the_rule_has_no_action_for_names_the_rule() {
        let unmet = decision(Vec::new()).unmet(TEAM).unwrap();
        assert_eq!(
            unmet,
            "a mobile team was asked for, but rule the-rule of policy 3 does not send one for \
             this case"
        );
        let hand_over = RequestedAction::Hotline(HotlineAction::HandOverTo123);
        assert!(
            decision(Vec::new())
                .unmet(hand_over)
                .unwrap()
                .starts_with("a hand-over to 123")
        );
    }

    #[test]
    fn a_request_nothing_could_take_says_what_was_looked_at() {
        let none_free = decision(vec![dispatch(
            None,
            vec![
                team("t1", Verdict::Unavailable(DutyStatus::Busy)),
                team("t2", Verdict::Unavailable(DutyStatus::OffDuty)),
                team("t3", Verdict::Unavailable(DutyStatus::Busy)),
            ],
        )]);
        assert_eq!(
            none_free.unmet(TEAM).unwrap(),
            "a mobile team was asked for, but none could take the case: 3 looked at (2 busy, \
             1 off duty)"
        );
        let nowhere = decision(vec![dispatch(None, Vec::new())]);
        assert!(
            nowhere
                .unmet(TEAM)
                .unwrap()
                .ends_with("the cover chain has none")
        );
    }
}
