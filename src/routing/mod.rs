//! Routing: which mobile team, service point or outside body takes a case, by explicit policy,
//! with the reasons kept (DESIGN §6).
//!
//! [`route`] finds the rule that fires and, for each of its actions, walks the cover chain — the
//! incident's county, its designated cover county, the rest of the province, then the
//! neighbouring provinces nearest first — and takes the best eligible place of the first step
//! that has one. Every place looked at is kept in the decision with its verdict. The same inputs
//! always give the same decision.

pub mod crisis;
pub mod directory;
pub mod geography;
pub mod policy;

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use self::crisis::InForce;
use self::directory::{CountyKey, Directory, LocalTime, ServicePoint, distance_km};
use self::policy::{Conditions, Policy};
use crate::domain::decision::{
    Action, ActionDecision, Candidate, CoverStep, Decision, Destination, DutyStatus, Flag,
    ServicePointKind, Verdict,
};
use crate::domain::intake::{Age, Intake, NewIntake};
use crate::domain::names::normalise;
use crate::domain::types::{AgeBand, Category, Line, Priority, Sex};

/// Kilometres a team's case in hand weighs against it: a team 15 km further away but free
/// ranks level with a nearer team already on a case.
const KM_PER_TEAM_CASE: f64 = 15.0;
/// Kilometres a full service point weighs against it, in proportion to its occupancy.
const KM_PER_FULL_OCCUPANCY: f64 = 30.0;

/// How far a point open sooner is preferred, per hour a case would wait for a closed one to
/// open: an hour's wait weighs like 10 km.
const KM_PER_HOUR_OF_WAITING: f64 = 10.0;

/// What routing needs to know of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectFacts {
    /// Sex as reported.
    pub sex: Sex,
    /// Youngest and oldest age the subject may be, when known.
    pub age_range: Option<(u32, u32)>,
    /// Whether the subject is a minor, when known.
    pub minor: Option<bool>,
}

/// The facts of a case routing weighs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingRequest {
    /// Line of origin.
    pub line: Line,
    /// Categories, primary first.
    pub categories: Vec<Category>,
    /// Priority.
    pub priority: Priority,
    /// Facts actions may depend on.
    pub flags: Vec<Flag>,
    /// The subjects.
    pub subjects: Vec<SubjectFacts>,
    /// Province code of the incident.
    pub province: String,
    /// County of the incident, as the intake named it.
    pub county: String,
    /// Position of the incident, when the caller gave it.
    pub position: Option<(f64, f64)>,
    /// Neighbourhood (محله) of the incident, when the caller named it.
    #[serde(default)]
    pub neighbourhood: Option<String>,
    /// When the case is routed.
    pub at: DateTime<Utc>,
}

fn age_range(age: Age) -> Option<(u32, u32)> {
    match age {
        Age::Years(years) => Some((years, years)),
        Age::Band(band) => match band {
            AgeBand::EarlyChildhood => Some((0, 5)),
            AgeBand::Child => Some((6, 11)),
            AgeBand::YoungAdolescent => Some((12, 14)),
            AgeBand::OlderAdolescent => Some((15, 17)),
            AgeBand::YoungAdult => Some((18, 29)),
            AgeBand::Adult => Some((30, 59)),
            AgeBand::OlderAdult => Some((60, 120)),
            AgeBand::Unknown => None,
        },
    }
}

impl RoutingRequest {
    /// The routing facts of an intake, routed at `at`.
    pub fn from_intake(new: &NewIntake, at: DateTime<Utc>) -> Self {
        Self::for_case(&new.intake, new.line(), new.assessment.priority, at)
    }

    /// The routing facts of a recorded case at its current priority, routed at `at`.
    pub fn for_case(intake: &Intake, line: Line, priority: Priority, at: DateTime<Utc>) -> Self {
        let risk = &intake.risk;
        let flags = [
            (risk.violence_ongoing, Flag::ViolenceOngoing),
            (risk.weapon_present, Flag::WeaponPresent),
            (risk.injury_or_medical_need, Flag::InjuryOrMedicalNeed),
            (risk.attempt_in_progress, Flag::AttemptInProgress),
            (risk.risk_to_team, Flag::RiskToTeam),
            (intake.minors_involved(), Flag::MinorsInvolved),
        ]
        .into_iter()
        .filter_map(|(holds, flag)| holds.then_some(flag))
        .collect();
        Self {
            line,
            categories: intake.categories().collect(),
            priority,
            flags,
            subjects: intake
                .subjects
                .iter()
                .map(|s| SubjectFacts {
                    sex: s.sex,
                    age_range: age_range(s.age),
                    minor: s.minor,
                })
                .collect(),
            province: intake.location.province.clone(),
            county: intake.location.county.clone(),
            position: intake
                .location
                .coordinates
                .as_ref()
                .map(|c| (c.expose().latitude, c.expose().longitude)),
            neighbourhood: intake.location.neighbourhood.clone(),
            at,
        }
    }

    fn has(&self, flag: Flag) -> bool {
        self.flags.contains(&flag)
    }
}

/// Decides where a case goes under `policy`.
pub fn route(policy: &Policy, directory: &Directory, request: &RoutingRequest) -> Decision {
    route_excluding(policy, directory, request, &HashSet::new())
}

/// Decides where a case goes, leaving out the teams and service points in `excluded` (those
/// that already declined or rejected it).
pub fn route_excluding(
    policy: &Policy,
    directory: &Directory,
    request: &RoutingRequest,
    excluded: &HashSet<String>,
) -> Decision {
    route_in(policy, &InForce::none(), directory, request, excluded)
}

/// Decides where a case goes while `crises` are in force in its province: their rules are
/// tried before the policy's, and the service points they open round the clock are open.
pub fn route_in(
    policy: &Policy,
    crises: &InForce<'_>,
    directory: &Directory,
    request: &RoutingRequest,
    excluded: &HashSet<String>,
) -> Decision {
    let router = Router {
        directory,
        request,
        excluded,
        may_wait_for_opening: policy.may_wait_for_opening(request.priority),
        county: normalise(&request.county),
        only_team: None,
        crises,
    };
    // The policy always has a default rule, so some rule fires.
    let rule = crises
        .rules()
        .chain(policy.rules_with_counties())
        .find(|(rule, counties)| router.holds(&rule.when, counties))
        .map(|(rule, _)| rule);
    let mut notes = router.notes();
    let Some(rule) = rule else {
        return Decision {
            policy_version: policy.version(),
            rule_id: String::new(),
            rule_description: "no rule matched".into(),
            actions: Vec::new(),
            notes,
            unmet_request: None,
            crises: crises.references(),
        };
    };
    let actions: Vec<ActionDecision> = rule.then.iter().map(|a| router.act(a)).collect();
    notes.extend(
        actions
            .iter()
            .filter_map(ActionDecision::neighbourhood_note),
    );
    Decision {
        policy_version: policy.version(),
        rule_id: rule.id.clone(),
        rule_description: rule.description.clone(),
        actions,
        notes,
        unmet_request: None,
        crises: crises.references(),
    }
}

/// Carries out one action again for a case whose destination turned it down, leaving out
/// `excluded` (every destination the case was already sent to). The policy is not consulted:
/// the action is the one the rule that fired chose, and only its destination changes. With
/// `only_team`, no other team is looked at (a freed team offered to a waiting case). A
/// re-routed referral (its first destination turned it down) does not wait: with every eligible
/// point closed the case is unrouted and the supervisors are alerted; a follow-up handed to a
/// base `may_wait` for its opening. The points `crises` open round the clock are open.
pub fn reroute(
    directory: &Directory,
    crises: &InForce<'_>,
    request: &RoutingRequest,
    action: &Action,
    excluded: &HashSet<String>,
    only_team: Option<&str>,
    may_wait: bool,
) -> ActionDecision {
    Router {
        directory,
        request,
        excluded,
        may_wait_for_opening: may_wait,
        county: normalise(&request.county),
        only_team,
        crises,
    }
    .act(action)
}

struct Router<'a> {
    directory: &'a Directory,
    request: &'a RoutingRequest,
    excluded: &'a HashSet<String>,
    /// The policy lets this case's referrals wait for a closed point's opening.
    may_wait_for_opening: bool,
    /// The request's county, normalised.
    county: String,
    /// Only this team is looked at.
    only_team: Option<&'a str>,
    /// The crisis declarations in force in the incident's province.
    crises: &'a InForce<'a>,
}

/// A place routing looks at: a team or a service point, with its verdict before ranking.
struct Looked {
    candidate: Candidate,
    score: f64,
    eligible: bool,
}

impl Router<'_> {
    /// What the decision should say about the request itself.
    fn notes(&self) -> Vec<String> {
        let r = self.request;
        if r.county.is_empty() {
            vec![format!(
                "the incident's county is unknown: the search started at the province ({})",
                r.province
            )]
        } else if self.directory.county(&r.province, &r.county).is_none() {
            vec![format!(
                "county {} is not in the directory of {}: the search started at the province",
                r.county, r.province
            )]
        } else {
            Vec::new()
        }
    }

    /// Whether a rule's conditions hold; `counties` are its counties normalised.
    fn holds(&self, when: &Conditions, counties: &[String]) -> bool {
        let r = self.request;
        let any =
            |list: &[Category]| list.is_empty() || r.categories.iter().any(|c| list.contains(c));
        (when.lines.is_empty() || when.lines.contains(&r.line))
            && any(&when.categories)
            && (when.priorities.is_empty() || when.priorities.contains(&r.priority))
            && when
                .minors_involved
                .is_none_or(|m| m == r.has(Flag::MinorsInvolved))
            && (when.any_flag.is_empty() || when.any_flag.iter().any(|f| r.has(*f)))
            && (when.provinces.is_empty() || when.provinces.contains(&r.province))
            && (counties.is_empty() || counties.contains(&self.county))
            && (when.during.is_empty() || {
                let (day, time) = LocalTime::in_tehran(r.at);
                when.during.iter().any(|w| w.contains(day, time))
            })
            && when
                .team_available
                .is_none_or(|wanted| self.team().destination.is_some() == wanted)
            && when
                .capacity_available
                .is_none_or(|kind| self.service_point(kind).destination.is_some())
    }

    fn act(&self, action: &Action) -> ActionDecision {
        let found = match action {
            Action::DispatchMobileTeam => self.team(),
            Action::ReferTo { kind, point } => {
                self.service_point_when(*kind, point.as_deref(), false)
            }
            Action::HandOverTo123 => self.service_point(ServicePointKind::SocialEmergencyCentre),
            Action::Notify { body, only_if } => {
                if !only_if.is_empty() && !only_if.iter().any(|f| self.request.has(*f)) {
                    return ActionDecision {
                        action: action.clone(),
                        not_applicable: Some("none of the facts it depends on was reported".into()),
                        destination: None,
                        candidates: Vec::new(),
                        waits_until: None,
                    };
                }
                self.service_point(*body)
            }
        };
        // Every eligible point is closed: a case that may wait is referred to the one that
        // takes it best once it opens.
        if let (Action::ReferTo { kind, point }, None, true) =
            (action, &found.destination, self.may_wait_for_opening)
            && let Some((later, opens)) = self.service_point_at_opening(*kind, point.as_deref())
        {
            return ActionDecision {
                action: action.clone(),
                not_applicable: None,
                destination: later.destination,
                candidates: later.candidates,
                waits_until: Some(opens),
            };
        }
        ActionDecision {
            action: action.clone(),
            not_applicable: None,
            destination: found.destination,
            candidates: found.candidates,
            waits_until: None,
        }
    }

    /// The incident's county and its designated cover county, when the directory knows them.
    fn own_counties(&self) -> (Option<CountyKey>, Option<CountyKey>) {
        let r = self.request;
        let Some(county) = self.directory.county(&r.province, &r.county) else {
            return (None, None);
        };
        let key = |name: &str| CountyKey {
            province: county.province.clone(),
            name: name.to_owned(),
        };
        (
            Some(key(&county.name_en)),
            county.covered_by.as_deref().map(key),
        )
    }

    /// Where distances are measured from: the caller's position, else the county seat, else
    /// the province's capital.
    fn origin(&self) -> (f64, f64) {
        let r = self.request;
        r.position
            .or_else(|| {
                self.directory
                    .county(&r.province, &r.county)
                    .map(|c| (c.lat, c.lon))
            })
            .or_else(|| {
                crate::domain::province::by_code(&r.province)
                    .map(|p| (p.capital_lat, p.capital_lon))
            })
            .unwrap_or((32.0, 53.0))
    }

    fn team(&self) -> Found {
        let origin = self.origin();
        self.walk(
            |step, county, looked| {
                let teams = self.directory.teams_in(county);
                for team in teams.filter(|t| self.only_team.is_none_or(|only| only == t.id)) {
                    let position = team
                        .position
                        .or_else(|| self.directory.county_by_key(county).map(|c| (c.lat, c.lon)));
                    let distance = position.map_or(f64::MAX, |p| distance_km(origin, p));
                    let verdict = if self.excluded.contains(&team.id) {
                        Verdict::Excluded
                    } else if team.status != DutyStatus::Available {
                        Verdict::Unavailable(team.status)
                    } else {
                        Verdict::RankedLower
                    };
                    looked.push(Looked {
                        eligible: verdict == Verdict::RankedLower,
                        score: distance + KM_PER_TEAM_CASE * f64::from(team.load),
                        candidate: Candidate {
                            id: team.id.clone(),
                            name: team.name.clone(),
                            step: step.clone(),
                            distance_km: round(distance),
                            verdict,
                        },
                    });
                }
            },
            |id, name| Destination::Team { id, name },
        )
    }

    fn service_point(&self, kind: ServicePointKind) -> Found {
        self.service_point_when(kind, None, false)
    }

    /// The point of `kind` that takes the case best at its next opening, when every eligible
    /// one is closed now; with that opening.
    fn service_point_at_opening(
        &self,
        kind: ServicePointKind,
        named: Option<&str>,
    ) -> Option<(Found, DateTime<Utc>)> {
        let found = self.service_point_when(kind, named, true);
        let opens = match &found.destination {
            Some(Destination::ServicePoint { id, .. }) => self
                .directory
                .service_point(id)?
                .hours
                .next_opening(self.request.at)?,
            _ => return None,
        };
        Some((found, opens))
    }

    /// Walks the cover chain for a point of `kind`; `at_opening` judges a closed point as it
    /// will be at its next opening, ranking it further by the wait. The point a rule `named`
    /// is taken when it can take the case, and listed first when it cannot.
    fn service_point_when(
        &self,
        kind: ServicePointKind,
        named: Option<&str>,
        at_opening: bool,
    ) -> Found {
        let origin = self.origin();
        let destination = move |id, name| Destination::ServicePoint { id, name, kind };
        let named = named
            .and_then(|id| self.directory.service_point(id))
            .filter(|point| point.kind == kind)
            .map(|point| self.look_at(point, &self.step_of(point), origin, at_opening));
        if let Some(looked) = &named
            && looked.eligible
        {
            let mut chosen = looked.candidate.clone();
            chosen.verdict = Verdict::Chosen;
            return Found {
                destination: Some(destination(chosen.id.clone(), chosen.name.clone())),
                candidates: vec![chosen],
            };
        }
        let mut found = self.service_point_found(kind, at_opening, origin, destination);
        if let Some(looked) = named {
            found.candidates.retain(|c| c.id != looked.candidate.id);
            found.candidates.insert(0, looked.candidate);
        }
        found
    }

    /// Where a point lies on the incident's cover chain.
    fn step_of(&self, point: &ServicePoint) -> CoverStep {
        let (own, designated) = self.own_counties();
        let key = point.county_key();
        if Some(&key) == own.as_ref() {
            CoverStep::IncidentCounty
        } else if Some(&key) == designated.as_ref() {
            CoverStep::DesignatedCounty
        } else if point.province == self.request.province {
            CoverStep::Province
        } else {
            CoverStep::NeighbouringProvince(point.province.clone())
        }
    }

    /// The neighbourhood's points of `kind`, then the cover chain's.
    fn service_point_found(
        &self,
        kind: ServicePointKind,
        at_opening: bool,
        origin: (f64, f64),
        destination: impl Fn(String, String) -> Destination,
    ) -> Found {
        // The points serving the incident's neighbourhood come first; the cover chain after,
        // leaving out what was looked at already.
        let nearby = self.neighbourhood_step(kind, at_opening, origin);
        if let Some(looked) = &nearby
            && let Some(chosen) = looked
                .iter()
                .find(|l| l.candidate.verdict == Verdict::Chosen)
        {
            return Found {
                destination: Some(destination(
                    chosen.candidate.id.clone(),
                    chosen.candidate.name.clone(),
                )),
                candidates: looked.iter().map(|l| l.candidate.clone()).collect(),
            };
        }
        let mut found = self.walk(
            |step, county, looked| {
                for point in self.directory.points_in(county, kind) {
                    looked.push(self.look_at(point, step, origin, at_opening));
                }
            },
            destination,
        );
        if let Some(looked) = nearby {
            let seen: HashSet<&str> = looked.iter().map(|l| l.candidate.id.as_str()).collect();
            found.candidates.retain(|c| !seen.contains(c.id.as_str()));
            let mut candidates: Vec<Candidate> =
                looked.iter().map(|l| l.candidate.clone()).collect();
            candidates.append(&mut found.candidates);
            found.candidates = candidates;
        }
        found
    }

    /// The points of `kind` serving the incident's neighbourhood in its county, ranked, the
    /// best eligible one marked chosen; `None` when the intake named no neighbourhood or no
    /// point serves it.
    fn neighbourhood_step(
        &self,
        kind: ServicePointKind,
        at_opening: bool,
        origin: (f64, f64),
    ) -> Option<Vec<Looked>> {
        let name = self.request.neighbourhood.as_deref()?.trim();
        let (own, _) = self.own_counties();
        let own = own?;
        let step = CoverStep::Neighbourhood(name.to_owned());
        let mut looked: Vec<Looked> = self
            .directory
            .points_serving(&own, name, kind)
            .map(|point| self.look_at(point, &step, origin, at_opening))
            .collect();
        if looked.is_empty() {
            return None;
        }
        rank(&mut looked);
        Some(looked)
    }

    /// What routing makes of one point: its verdict and its score (distance, how full it is,
    /// and, `at_opening`, how long until it opens).
    fn look_at(
        &self,
        point: &ServicePoint,
        step: &CoverStep,
        origin: (f64, f64),
        at_opening: bool,
    ) -> Looked {
        let at = self.request.at;
        let distance = distance_km(origin, (point.lat, point.lon));
        // Only a search at opening asks when a point opens: the usual search passes a closed
        // point over without working out its next window.
        let opens = if at_opening {
            point.hours.next_opening(at)
        } else {
            None
        };
        let verdict = match opens {
            Some(_) => self.judge_open_or_not(point),
            None => self.judge(point),
        };
        let waiting_hours = opens.map_or(0.0, |o| (o - at).num_minutes() as f64 / 60.0);
        let occupancy = point
            .capacity
            .filter(|&c| c > 0)
            .map_or(0.0, |c| f64::from(point.taken()) / f64::from(c));
        Looked {
            eligible: verdict == Verdict::RankedLower,
            score: distance
                + KM_PER_FULL_OCCUPANCY * occupancy
                + KM_PER_HOUR_OF_WAITING * waiting_hours,
            candidate: Candidate {
                id: point.id.clone(),
                name: point.name.clone(),
                step: step.clone(),
                distance_km: round(distance),
                verdict,
            },
        }
    }

    fn judge(&self, point: &ServicePoint) -> Verdict {
        if !point.hours.is_open(self.request.at)
            && !self.crises.opens(point)
            && !self.excluded.contains(&point.id)
        {
            return Verdict::Closed;
        }
        self.judge_open_or_not(point)
    }

    /// Judges a point on everything but its hours.
    fn judge_open_or_not(&self, point: &ServicePoint) -> Verdict {
        let r = self.request;
        if self.excluded.contains(&point.id) {
            return Verdict::Excluded;
        }
        // A place is taken by someone there or held by a referral still open.
        if point.capacity.is_some_and(|c| point.taken() >= c) {
            return Verdict::Full;
        }
        if !point.categories.is_empty()
            && !r.categories.iter().any(|c| point.categories.contains(c))
        {
            return Verdict::NotServingCategory;
        }
        match admission_problem(point, &r.subjects) {
            Some(why) => Verdict::Ineligible(why),
            None => Verdict::RankedLower,
        }
    }

    /// Walks the cover chain, stopping at the first step with an eligible place, and chooses
    /// the best-ranked one there. Later steps are not even listed: the cost of a decision
    /// follows the incident's surroundings, not the size of the directory.
    fn walk(
        &self,
        look: impl Fn(&CoverStep, &CountyKey, &mut Vec<Looked>),
        destination: impl Fn(String, String) -> Destination,
    ) -> Found {
        let mut candidates = Vec::new();
        let mut step = |step: CoverStep, counties: &mut dyn Iterator<Item = &CountyKey>| {
            let mut looked = Vec::new();
            for county in counties {
                look(&step, county, &mut looked);
            }
            let chosen = rank(&mut looked)
                .then(|| &looked[0].candidate)
                .map(|first| destination(first.id.clone(), first.name.clone()));
            candidates.extend(looked.into_iter().map(|l| l.candidate));
            chosen
        };
        let (own, designated) = self.own_counties();
        let province = &self.request.province;
        let chosen =
            own.as_ref()
                .and_then(|c| step(CoverStep::IncidentCounty, &mut std::iter::once(c)))
                .or_else(|| {
                    designated
                        .as_ref()
                        .and_then(|c| step(CoverStep::DesignatedCounty, &mut std::iter::once(c)))
                })
                .or_else(|| {
                    let mut rest =
                        self.directory.counties_of(province).iter().filter(|k| {
                            Some(*k) != own.as_ref() && Some(*k) != designated.as_ref()
                        });
                    step(CoverStep::Province, &mut rest)
                })
                .or_else(|| {
                    self.directory
                        .neighbours(province)
                        .iter()
                        .find_map(|neighbour| {
                            step(
                                CoverStep::NeighbouringProvince(neighbour.clone()),
                                &mut self.directory.counties_of(neighbour).iter(),
                            )
                        })
                });
        Found {
            destination: chosen,
            candidates,
        }
    }
}

/// Orders what was looked at, eligible first, then by score and id, and marks the first chosen
/// when it is eligible; true when one was.
fn rank(looked: &mut [Looked]) -> bool {
    looked.sort_by(|a, b| {
        b.eligible
            .cmp(&a.eligible)
            .then(a.score.total_cmp(&b.score))
            .then_with(|| a.candidate.id.cmp(&b.candidate.id))
    });
    match looked.first_mut().filter(|l| l.eligible) {
        Some(first) => {
            first.candidate.verdict = Verdict::Chosen;
            true
        }
        None => false,
    }
}

/// What a walk of the cover chain found: the destination, if any, and every place looked at.
struct Found {
    destination: Option<Destination>,
    candidates: Vec<Candidate>,
}

fn round(km: f64) -> f64 {
    if km == f64::MAX {
        km
    } else {
        (km * 10.0).round() / 10.0
    }
}

/// Why a service point cannot admit the case's subjects, if it cannot.
fn admission_problem(point: &ServicePoint, subjects: &[SubjectFacts]) -> Option<String> {
    let rules = &point.admission;
    let adult_woman = subjects
        .iter()
        .any(|s| s.sex == Sex::Female && s.minor == Some(false));
    for (i, s) in subjects.iter().enumerate() {
        // A woman's children come with her where the point says so.
        if rules.accepts_women_with_children && adult_woman && s.minor == Some(true) {
            continue;
        }
        if !rules.sexes.is_empty() && s.sex != Sex::Unknown && !rules.sexes.contains(&s.sex) {
            return Some(format!("subject {} is of a sex it does not admit", i + 1));
        }
        if rules.accepts_minors == Some(false) && s.minor == Some(true) {
            return Some(format!("subject {} is a minor", i + 1));
        }
        if let Some((youngest, oldest)) = s.age_range {
            if rules.min_age.is_some_and(|min| oldest < min) {
                return Some(format!("subject {} is under its minimum age", i + 1));
            }
            if rules.max_age.is_some_and(|max| youngest > max) {
                return Some(format!("subject {} is over its maximum age", i + 1));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
