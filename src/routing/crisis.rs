//! Crisis operation: a supervisor's declaration that, while it is in force in a province (or the
//! whole country), opens service points of some kinds round the clock, puts rules of its own
//! before the policy's, raises the priority of some categories and sets its own deadline
//! targets.
//!
//! Nothing in the directory or the policy is edited. Routing asks which declarations are in
//! force in the incident's province when it routes a case, and the case's decision names them,
//! so a case routed in a crisis keeps saying so after the crisis ends, and nothing has to be
//! undone by hand when it does.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::directory::{Directory, ServicePoint};
use super::policy::{Policy, Rule};
use crate::domain::change::ChangeKey;
use crate::domain::decision::{CrisisRef, ServicePointKind};
use crate::domain::event::EventKind;
use crate::domain::intake::NewIntake;
use crate::domain::sla::SlaTargets;
use crate::domain::types::{Category, Priority, domain_enum};
use crate::domain::{Error, FieldViolation};

/// The longest name a crisis may have.
const NAME_LIMIT: usize = 120;

/// A category whose cases are raised to at least a priority while a crisis is in force. A
/// crisis never lowers a priority: lowering one takes a person and a reason, case by case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorityFloor {
    /// The category, primary or secondary.
    pub category: Category,
    /// The priority its cases get at least.
    pub at_least: Priority,
}

/// What changes while a crisis is in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Measures {
    /// Service points of these kinds in the crisis's area are open at any hour.
    pub round_the_clock: Vec<ServicePointKind>,
    /// These service points (ids, in the crisis's area) are open at any hour.
    pub round_the_clock_points: Vec<String>,
    /// Deadline targets, as `KIND:PRIORITY=DURATION` (the `--sla-target` format), applied on
    /// top of the deployment's for the cases routed in the crisis.
    pub targets: Vec<String>,
    /// Rules tried before the policy's, in the policy's format (no default rule needed).
    pub rules: Vec<Rule>,
    /// Categories raised to at least a priority.
    pub raise: Vec<PriorityFloor>,
}

domain_enum! {
    /// Where a declaration stands at a moment.
    pub enum CrisisStatus {
        /// Declared to start later.
        Scheduled,
        /// In force.
        InForce,
        /// Ended.
        Ended,
    }
}

impl CrisisStatus {
    /// The Persian name.
    pub fn label_fa(self) -> &'static str {
        match self {
            Self::Scheduled => "اعلام‌شده، هنوز آغاز نشده",
            Self::InForce => "برقرار",
            Self::Ended => "پایان‌یافته",
        }
    }
}

/// A crisis as declared, with its latest change.
#[derive(Debug, Clone, PartialEq)]
pub struct Crisis {
    pub crisis_id: Uuid,
    pub name: String,
    /// The province it covers; `None` for the whole country.
    pub province: Option<String>,
    pub starts_at: DateTime<Utc>,
    /// When it ends; `None` until an end is declared.
    pub ends_at: Option<DateTime<Utc>>,
    pub measures: Measures,
    /// Moved by every change.
    pub version: i64,
    /// Who declared it (the token's subject).
    pub declared_by: String,
    /// Who changed it last.
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

impl Crisis {
    /// Whether it is in force at `at`: from its start up to, not including, its end.
    pub fn in_force(&self, at: DateTime<Utc>) -> bool {
        self.starts_at <= at && self.ends_at.is_none_or(|end| at < end)
    }

    /// Whether it covers `province`.
    pub fn covers(&self, province: &str) -> bool {
        self.province.as_deref().is_none_or(|p| p == province)
    }

    /// Where it stands at `at`. One ended before it started never came into force.
    pub fn status(&self, at: DateTime<Utc>) -> CrisisStatus {
        if self
            .ends_at
            .is_some_and(|end| end <= self.starts_at || end <= at)
        {
            CrisisStatus::Ended
        } else if at < self.starts_at {
            CrisisStatus::Scheduled
        } else if self.in_force(at) {
            CrisisStatus::InForce
        } else {
            CrisisStatus::Ended
        }
    }

    /// How a decision names it.
    pub fn reference(&self) -> CrisisRef {
        CrisisRef {
            crisis_id: self.crisis_id,
            name: self.name.clone(),
            version: self.version,
        }
    }

    /// Whether its time overlaps `other`'s in a province both cover at the same level (two
    /// declarations for one province, or two national ones).
    pub fn overlaps(&self, other: &Crisis) -> bool {
        let ends_after =
            |end: Option<DateTime<Utc>>, start: DateTime<Utc>| end.is_none_or(|end| end > start);
        self.province == other.province
            && ends_after(self.ends_at, other.starts_at)
            && ends_after(other.ends_at, self.starts_at)
    }
}

/// A declaration or a change as asked for, before it is checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Declaration {
    pub name: String,
    pub province: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub measures: Measures,
}

impl Declaration {
    /// Checks everything a declaration can be refused for on its own, naming each field
    /// (`field` prefixes the measures' fields, as the request nests them).
    pub fn check(&self, field: &str) -> Result<(), Vec<FieldViolation>> {
        let mut problems = Vec::new();
        let at = |name: &str| format!("{field}.{name}");
        let name = self.name.trim();
        if name.is_empty() {
            problems.push(FieldViolation::new(at("name"), "is required"));
        } else if name.chars().count() > NAME_LIMIT {
            problems.push(FieldViolation::new(
                at("name"),
                format!("is longer than {NAME_LIMIT} characters"),
            ));
        }
        if let Some(province) = &self.province
            && crate::domain::province::by_code(province).is_none()
        {
            problems.push(FieldViolation::new(
                at("province"),
                format!("{province:?} is not a province code (IR-01 … IR-31), or empty for the whole country"),
            ));
        }
        if self.ends_at.is_some_and(|end| end <= self.starts_at) {
            problems.push(FieldViolation::new(at("ends_at"), "is not after starts_at"));
        }
        let m = &self.measures;
        for (i, kind) in m.round_the_clock.iter().enumerate() {
            if kind.is_outside_body() {
                problems.push(FieldViolation::new(
                    format!("{field}.round_the_clock[{i}]"),
                    format!(
                        "{} is an outside body, not a service point with hours",
                        kind.as_str()
                    ),
                ));
            } else if m.round_the_clock[..i].contains(kind) {
                problems.push(FieldViolation::new(
                    format!("{field}.round_the_clock[{i}]"),
                    "appears twice",
                ));
            }
        }
        let mut targets = SlaTargets::default();
        for (i, spec) in m.targets.iter().enumerate() {
            if let Err(bad) = targets.set(spec) {
                problems.push(FieldViolation::new(
                    format!("{field}.targets[{i}]"),
                    bad.to_string(),
                ));
            }
        }
        if let Err(refused) = Policy::extra(m.rules.clone()) {
            problems.extend(
                refused
                    .0
                    .into_iter()
                    .map(|problem| FieldViolation::new(at("policy_toml"), problem)),
            );
        }
        for (i, floor) in m.raise.iter().enumerate() {
            if m.raise[..i].iter().any(|f| f.category == floor.category) {
                problems.push(FieldViolation::new(
                    format!("{field}.raise[{i}]"),
                    format!("{} is raised twice", floor.category.as_str()),
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

impl Declaration {
    /// Checks what it names against the directory: the service points it opens round the
    /// clock are there and in its area, and the points its rules refer to are there and of
    /// their action's kind.
    pub fn check_against(
        &self,
        directory: &Directory,
        field: &str,
    ) -> Result<(), Vec<FieldViolation>> {
        let mut problems = Vec::new();
        for (i, id) in self.measures.round_the_clock_points.iter().enumerate() {
            let at = format!("{field}.round_the_clock_points[{i}]");
            match directory.service_point(id) {
                None => problems.push(FieldViolation::new(
                    at,
                    format!("{id:?} is not in the directory"),
                )),
                Some(point) if point.kind.is_outside_body() => problems.push(FieldViolation::new(
                    at,
                    format!("{id:?} is an outside body, not a service point with hours"),
                )),
                Some(point) if self.province.as_ref().is_some_and(|p| *p != point.province) => {
                    problems.push(FieldViolation::new(
                        at,
                        format!(
                            "{id:?} is in {}, outside the crisis's province",
                            point.province
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        problems.extend(
            super::policy::unknown_points(&self.measures.rules, directory)
                .into_iter()
                .map(|problem| FieldViolation::new(format!("{field}.policy_toml"), problem)),
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// A declaration as routing holds it: its rules checked once.
#[derive(Debug, Clone)]
struct Declared {
    crisis: Crisis,
    rules: Policy,
}

/// Every declaration this server knows, ended ones included (a case is routed by what was in
/// force at its own time, and statistics read them).
#[derive(Debug, Clone, Default)]
pub struct Crises {
    declared: Vec<Declared>,
}

impl Crises {
    /// Holds `crises`. One whose stored rules no longer pass their check (they passed when it
    /// was declared) keeps its other measures and is logged.
    pub fn new(crises: Vec<Crisis>) -> Self {
        let mut all = Self::default();
        for crisis in crises {
            all.put(crisis);
        }
        all
    }

    /// Adds a declaration, or puts a changed one in place of its earlier version.
    pub fn put(&mut self, crisis: Crisis) {
        let rules = Policy::extra(crisis.measures.rules.clone()).unwrap_or_else(|refused| {
            tracing::error!(crisis_id = %crisis.crisis_id, %refused, "a declared crisis's rules are refused; its other measures stand");
            Policy::extra(Vec::new()).unwrap_or_else(|_| unreachable!("no rules pass"))
        });
        match self
            .declared
            .iter_mut()
            .find(|d| d.crisis.crisis_id == crisis.crisis_id)
        {
            Some(held) if held.crisis.version <= crisis.version => {
                *held = Declared { crisis, rules };
            }
            Some(_) => {}
            None => self.declared.push(Declared { crisis, rules }),
        }
    }

    /// Every declaration, oldest start first.
    pub fn all(&self) -> impl Iterator<Item = &Crisis> {
        self.declared.iter().map(|d| &d.crisis)
    }

    /// The declaration with this id.
    pub fn get(&self, crisis_id: Uuid) -> Option<&Crisis> {
        self.all().find(|c| c.crisis_id == crisis_id)
    }

    /// What is in force in `province` at `at`: the province's own declaration before the
    /// country's.
    pub fn in_force(&self, province: &str, at: DateTime<Utc>) -> InForce<'_> {
        let mut found: Vec<&Declared> = self
            .declared
            .iter()
            .filter(|d| d.crisis.covers(province) && d.crisis.in_force(at))
            .collect();
        found.sort_by_key(|d| d.crisis.province.is_none());
        InForce { found }
    }
}

/// The declarations in force for one case.
#[derive(Debug, Clone, Default)]
pub struct InForce<'a> {
    found: Vec<&'a Declared>,
}

impl InForce<'_> {
    /// Nothing in force.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether nothing is in force.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// How the decision names them.
    pub fn references(&self) -> Vec<CrisisRef> {
        self.found.iter().map(|d| d.crisis.reference()).collect()
    }

    /// Whether a declaration covering the point's province opens points of its kind round the
    /// clock.
    pub fn opens(&self, point: &ServicePoint) -> bool {
        self.found.iter().any(|d| {
            let m = &d.crisis.measures;
            m.round_the_clock_points.contains(&point.id)
                || (d.crisis.covers(&point.province) && m.round_the_clock.contains(&point.kind))
        })
    }

    /// Their rules, the province's before the country's, each with its counties normalised.
    pub fn rules(&self) -> impl Iterator<Item = (&Rule, &[String])> {
        self.found
            .iter()
            .flat_map(|d| d.rules.rules_with_counties())
    }

    /// The deadline targets for a case routed now: `base` with the country's declaration's
    /// targets, then the province's, applied. `None` when no declaration sets any.
    pub fn targets(&self, base: &SlaTargets) -> Option<SlaTargets> {
        let specs: Vec<&String> = self
            .found
            .iter()
            .rev()
            .flat_map(|d| &d.crisis.measures.targets)
            .collect();
        if specs.is_empty() {
            return None;
        }
        let mut targets = base.clone();
        for spec in specs {
            // Checked when declared; one that no longer parses leaves that target as it was.
            let _ = targets.set(spec);
        }
        Some(targets)
    }

    /// Raises an intake's priority to the highest floor its categories have, saying why in its
    /// triage reasons.
    pub fn raise(&self, intake: &mut NewIntake) {
        let categories: Vec<Category> = intake.intake.categories().collect();
        let floor = self
            .found
            .iter()
            .flat_map(|d| d.crisis.measures.raise.iter().map(move |f| (d, f)))
            .filter(|(_, f)| categories.contains(&f.category))
            .min_by_key(|(_, f)| f.at_least);
        let Some((declared, floor)) = floor else {
            return;
        };
        let assessment = &mut intake.assessment;
        if floor.at_least < assessment.priority {
            assessment.priority = floor.at_least;
            assessment.computed = assessment.computed.min(floor.at_least);
            assessment.reasons.insert(
                0,
                format!(
                    "crisis «{}» in force: {} is at least {}",
                    declared.crisis.name,
                    floor.category.as_str(),
                    floor.at_least.as_str()
                ),
            );
        }
    }
}

/// How far ahead of the server's clock a time may be said to be "now" (a supervisor's clock
/// a little fast), and so how far back a start or an end may be without rewriting the past.
pub const CLOCK_SKEW: TimeDelta = TimeDelta::minutes(2);

/// What a supervisor asks of a declaration.
#[derive(Debug, Clone, PartialEq)]
pub enum CrisisAction {
    /// A new declaration.
    Declare(Declaration),
    /// New terms for a declaration that has not ended.
    Change {
        crisis_id: Uuid,
        expected_version: i64,
        declaration: Declaration,
    },
    /// Ends a declaration at `at` (now, when not given).
    End {
        crisis_id: Uuid,
        expected_version: i64,
        at: Option<DateTime<Utc>>,
    },
}

/// A supervisor's request, as the writer carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct CrisisRequest {
    pub action: CrisisAction,
    /// Who asks (the token's subject).
    pub actor: String,
    /// The caller's key for the request, when it sent one.
    pub key: Option<ChangeKey>,
    /// When the service received it.
    pub at: DateTime<Utc>,
}

impl CrisisRequest {
    /// The declaration it changes; `None` for a new one.
    pub fn crisis_id(&self) -> Option<Uuid> {
        match &self.action {
            CrisisAction::Declare(_) => None,
            CrisisAction::Change { crisis_id, .. } | CrisisAction::End { crisis_id, .. } => {
                Some(*crisis_id)
            }
        }
    }

    /// The province of the declaration it makes; the changed one's province is read with it.
    pub fn declared_province(&self) -> Option<Option<&str>> {
        match &self.action {
            CrisisAction::Declare(declaration) => Some(declaration.province.as_deref()),
            _ => None,
        }
    }
}

/// A declaration as it is to be stored, with the event that tells its province.
#[derive(Debug, Clone, PartialEq)]
pub struct CrisisPlan {
    pub crisis: Crisis,
    pub kind: EventKind,
    /// The event's facts: the declaration's terms, nothing sensitive.
    pub data: serde_json::Value,
}

/// Plans a request against the declaration it changes (`current`, read in the write's
/// transaction) and the other declarations of the same area (`same_area`), which it may not
/// overlap.
pub fn plan(
    request: &CrisisRequest,
    current: Option<&Crisis>,
    same_area: &[Crisis],
) -> Result<CrisisPlan, Error> {
    let now = request.at;
    let not_past = |at: DateTime<Utc>, field: &str, what: &str| {
        if at < now - CLOCK_SKEW {
            Err(Error::invalid(field, format!("is in the past: {what}")))
        } else {
            Ok(())
        }
    };
    let (crisis, kind) = match &request.action {
        CrisisAction::Declare(declaration) => {
            not_past(
                declaration.starts_at,
                "crisis.starts_at",
                "the cases routed since were routed without it; leave it unset to start now",
            )?;
            let crisis = Crisis {
                crisis_id: Uuid::now_v7(),
                name: declaration.name.trim().to_owned(),
                province: declaration.province.clone(),
                starts_at: declaration.starts_at,
                ends_at: declaration.ends_at,
                measures: declaration.measures.clone(),
                version: 1,
                declared_by: request.actor.clone(),
                updated_by: request.actor.clone(),
                updated_at: now,
            };
            (crisis, EventKind::CrisisDeclared)
        }
        CrisisAction::Change {
            expected_version,
            declaration,
            ..
        } => {
            let current = still_open(current, *expected_version, now)?;
            if declaration.province != current.province {
                return Err(Error::FailedPrecondition(
                    "a declaration's area cannot change: end it and declare one for the other area"
                        .into(),
                ));
            }
            if declaration.starts_at != current.starts_at {
                if current.starts_at <= now {
                    return Err(Error::FailedPrecondition(
                        "the crisis has started: its start cannot move".into(),
                    ));
                }
                not_past(
                    declaration.starts_at,
                    "crisis.starts_at",
                    "a declaration cannot start before it is made",
                )?;
            }
            if let Some(end) = declaration.ends_at {
                not_past(end, "crisis.ends_at", "end it from now on")?;
            }
            let crisis = Crisis {
                name: declaration.name.trim().to_owned(),
                starts_at: declaration.starts_at,
                ends_at: declaration.ends_at,
                measures: declaration.measures.clone(),
                version: current.version + 1,
                updated_by: request.actor.clone(),
                updated_at: now,
                ..current.clone()
            };
            (crisis, EventKind::CrisisChanged)
        }
        CrisisAction::End {
            expected_version,
            at,
            ..
        } => {
            let current = still_open(current, *expected_version, now)?;
            let end = at.unwrap_or(now);
            not_past(end, "ends_at", "cases routed since were routed under it")?;
            // A declaration ended before it started never comes into force.
            let end = end.max(current.starts_at);
            let crisis = Crisis {
                ends_at: Some(end),
                version: current.version + 1,
                updated_by: request.actor.clone(),
                updated_at: now,
                ..current.clone()
            };
            (crisis, EventKind::CrisisEnded)
        }
    };
    if let Some(other) = same_area
        .iter()
        .find(|other| other.crisis_id != crisis.crisis_id && other.overlaps(&crisis))
    {
        return Err(Error::FailedPrecondition(format!(
            "crisis «{}» ({}) is declared for {} at the same time: change it instead",
            other.name,
            other.crisis_id,
            other.province.as_deref().unwrap_or("the whole country"),
        )));
    }
    let data = serde_json::json!({
        "crisis_id": crisis.crisis_id,
        "name": crisis.name,
        "province": crisis.province,
        "starts_at": crisis.starts_at,
        "ends_at": crisis.ends_at,
        "version": crisis.version,
        "round_the_clock": crisis.measures.round_the_clock,
        "round_the_clock_points": crisis.measures.round_the_clock_points,
        "targets": crisis.measures.targets,
        "rules": crisis.measures.rules.iter().map(|r| &r.id).collect::<Vec<_>>(),
        "raise": crisis.measures.raise,
    });
    Ok(CrisisPlan { crisis, kind, data })
}

/// The declaration a change or an end is made to: it exists, is at the version the change
/// was based on, and has not ended.
fn still_open(
    current: Option<&Crisis>,
    expected_version: i64,
    now: DateTime<Utc>,
) -> Result<&Crisis, Error> {
    let current = current.ok_or(Error::NotFound("crisis"))?;
    if current.version != expected_version {
        return Err(Error::Stale(format!(
            "the declaration is at version {}, not {expected_version}; read it again",
            current.version
        )));
    }
    if current.status(now) == CrisisStatus::Ended {
        return Err(Error::FailedPrecondition(
            "the crisis has ended: declare a new one".into(),
        ));
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::fixture::IntakeBuilder;
    use crate::domain::intake::RequestId;
    use crate::domain::reach::Reach;
    use crate::domain::requester::{Parts, Requester};
    use crate::domain::triage::Assessment;
    use crate::domain::types::{HotlineAction, RequestedAction};

    /// A 1480 call about suicidal thoughts in `province`, triaged `priority`.
    fn suicidal(province: &str, priority: Priority) -> NewIntake {
        let intake = IntakeBuilder::new(Category::SuicidalThoughts)
            .with(|i| i.location.province = province.into())
            .build();
        NewIntake {
            request_id: RequestId::parse("r-1").unwrap(),
            payload_hash: [0; 32],
            action: RequestedAction::Hotline(HotlineAction::CounsellingCentreReferral),
            assessment: Assessment {
                computed: priority,
                priority,
                reasons: vec!["triage".into()],
            },
            intake,
            received_at: at(3),
            requester: Requester {
                subject: "counsellor-1".into(),
                role: "hotline",
                action: "submit_hotline_intake",
                request_id: "req".into(),
                reach: Reach::Everywhere,
                parts: Parts::Any,
            },
        }
    }

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0).unwrap()
    }

    fn declaration(province: Option<&str>, from: u32, to: Option<u32>) -> Declaration {
        Declaration {
            name: " Ilam earthquake ".into(),
            province: province.map(Into::into),
            starts_at: at(from),
            ends_at: to.map(at),
            measures: Measures::default(),
        }
    }

    fn request(action: CrisisAction, now: u32) -> CrisisRequest {
        CrisisRequest {
            action,
            actor: "sup-16".into(),
            key: None,
            at: at(now),
        }
    }

    fn declared(province: Option<&str>, from: u32, to: Option<u32>) -> Crisis {
        plan(
            &request(CrisisAction::Declare(declaration(province, from, to)), from),
            None,
            &[],
        )
        .unwrap()
        .crisis
    }

    #[test]
    fn a_crisis_is_in_force_from_its_start_up_to_its_end() {
        let c = declared(Some("IR-16"), 2, Some(5));
        assert_eq!(c.name, "Ilam earthquake");
        assert_eq!(c.status(at(1)), CrisisStatus::Scheduled);
        assert!(!c.in_force(at(1)));
        assert!(c.in_force(at(2)) && c.in_force(at(4)));
        assert_eq!(c.status(at(4)), CrisisStatus::InForce);
        assert!(!c.in_force(at(5)));
        assert_eq!(c.status(at(5)), CrisisStatus::Ended);
        assert!(c.covers("IR-16") && !c.covers("IR-23"));
        assert!(declared(None, 2, None).covers("IR-23"));
    }

    #[test]
    fn declarations_of_one_area_may_not_overlap_but_a_province_and_the_country_may() {
        let ilam = declared(Some("IR-16"), 2, Some(5));
        let again = request(
            CrisisAction::Declare(declaration(Some("IR-16"), 4, None)),
            3,
        );
        let refused = plan(&again, None, std::slice::from_ref(&ilam)).unwrap_err();
        assert!(
            matches!(refused, Error::FailedPrecondition(ref why) if why.contains("Ilam earthquake")),
            "{refused:?}"
        );
        // After it ends, another may be declared; and the country's never clashes with a province's.
        let later = request(
            CrisisAction::Declare(declaration(Some("IR-16"), 5, None)),
            3,
        );
        assert!(plan(&later, None, std::slice::from_ref(&ilam)).is_ok());
        let national = request(CrisisAction::Declare(declaration(None, 3, None)), 3);
        assert!(plan(&national, None, &[]).is_ok());
    }

    #[test]
    fn a_declaration_cannot_start_or_end_in_the_past() {
        let late = request(
            CrisisAction::Declare(declaration(Some("IR-16"), 2, None)),
            3,
        );
        assert!(matches!(
            plan(&late, None, &[]),
            Err(Error::InvalidArgument(_))
        ));
        let c = declared(Some("IR-16"), 2, None);
        let end = |when: u32| {
            request(
                CrisisAction::End {
                    crisis_id: c.crisis_id,
                    expected_version: 1,
                    at: Some(at(when)),
                },
                4,
            )
        };
        assert!(matches!(
            plan(&end(3), Some(&c), &[]),
            Err(Error::InvalidArgument(_))
        ));
        let ended = plan(&end(6), Some(&c), &[]).unwrap();
        assert_eq!(ended.kind, EventKind::CrisisEnded);
        assert_eq!(ended.crisis.ends_at, Some(at(6)));
        assert_eq!(ended.crisis.version, 2);
        assert_eq!(ended.crisis.updated_by, "sup-16");
    }

    #[test]
    fn a_change_needs_the_current_version_an_open_declaration_and_its_own_area() {
        let c = declared(Some("IR-16"), 2, None);
        let change = |version: i64, d: Declaration, now: u32| {
            request(
                CrisisAction::Change {
                    crisis_id: c.crisis_id,
                    expected_version: version,
                    declaration: d,
                },
                now,
            )
        };
        let mut longer = declaration(Some("IR-16"), 2, Some(9));
        longer.measures.targets = vec!["referral_acceptance:p2=2h".into()];
        let changed = plan(&change(1, longer.clone(), 3), Some(&c), &[]).unwrap();
        assert_eq!(changed.kind, EventKind::CrisisChanged);
        assert_eq!(changed.crisis.ends_at, Some(at(9)));
        assert_eq!(changed.crisis.declared_by, c.declared_by);
        assert!(matches!(
            plan(&change(2, longer.clone(), 3), Some(&c), &[]),
            Err(Error::Stale(_))
        ));
        assert!(matches!(
            plan(&change(1, longer.clone(), 3), None, &[]),
            Err(Error::NotFound(_))
        ));
        let moved = declaration(Some("IR-16"), 4, None);
        assert!(matches!(
            plan(&change(1, moved, 3), Some(&c), &[]),
            Err(Error::FailedPrecondition(_))
        ));
        let elsewhere = declaration(Some("IR-17"), 2, None);
        assert!(matches!(
            plan(&change(1, elsewhere, 3), Some(&c), &[]),
            Err(Error::FailedPrecondition(_))
        ));
        let over = plan(&change(1, longer.clone(), 3), Some(&c), &[])
            .unwrap()
            .crisis;
        assert!(
            matches!(plan(&change(2, longer, 10), Some(&over), &[]), Err(Error::FailedPrecondition(ref why)) if why.contains("ended"))
        );
    }

    #[test]
    fn a_declaration_ended_before_it_starts_never_comes_into_force() {
        let c = declared(Some("IR-16"), 5, None);
        let end = request(
            CrisisAction::End {
                crisis_id: c.crisis_id,
                expected_version: 1,
                at: None,
            },
            4,
        );
        let ended = plan(&end, Some(&c), &[]).unwrap().crisis;
        assert!((0..24).all(|h| !ended.in_force(at(h))));
        assert_eq!(ended.status(at(4)), CrisisStatus::Ended);
    }

    #[test]
    fn a_declaration_names_every_bad_field() {
        let mut d = declaration(Some("IR-99"), 3, Some(2));
        d.name = "  ".into();
        d.measures = Measures {
            round_the_clock_points: Vec::new(),
            round_the_clock: vec![
                ServicePointKind::Police110,
                ServicePointKind::SafeHouse,
                ServicePointKind::SafeHouse,
            ],
            targets: vec!["team_acknowledgement:p9=3m".into()],
            rules: vec![rule("a", 1), rule("a", 2)],
            raise: vec![
                PriorityFloor {
                    category: Category::SuicidalThoughts,
                    at_least: Priority::P1Urgent,
                },
                PriorityFloor {
                    category: Category::SuicidalThoughts,
                    at_least: Priority::P0Immediate,
                },
            ],
        };
        let fields: Vec<String> = d
            .check("crisis")
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            [
                "crisis.name",
                "crisis.province",
                "crisis.ends_at",
                "crisis.round_the_clock[0]",
                "crisis.round_the_clock[2]",
                "crisis.targets[0]",
                "crisis.policy_toml",
                "crisis.raise[1]",
            ]
        );
        // Rules need no default of their own: the policy has one.
        let mut fine = declaration(None, 3, None);
        fine.measures.rules = vec![rule("only", 1)];
        assert_eq!(fine.check("crisis"), Ok(()));
    }

    fn rule(id: &str, priority: i32) -> Rule {
        Rule {
            id: id.into(),
            priority,
            description: String::new(),
            when: crate::routing::policy::Conditions {
                lines: vec![crate::domain::types::Line::Hotline1480],
                ..Default::default()
            },
            then: vec![],
        }
    }

    #[test]
    fn the_province_first_then_the_country_raise_priorities_and_set_targets() {
        let mut ilam = declared(Some("IR-16"), 2, None);
        ilam.measures.raise = vec![PriorityFloor {
            category: Category::SuicidalThoughts,
            at_least: Priority::P1Urgent,
        }];
        ilam.measures.targets = vec!["team_acknowledgement:p0=5m".into()];
        let mut country = declared(None, 2, None);
        country.name = "war".into();
        country.measures.raise = vec![PriorityFloor {
            category: Category::SuicidalThoughts,
            at_least: Priority::P2Priority,
        }];
        country.measures.targets = vec![
            "team_acknowledgement:p0=10m".into(),
            "referral_acceptance:p2=2h".into(),
        ];
        let crises = Crises::new(vec![country.clone(), ilam.clone()]);
        let in_force = crises.in_force("IR-16", at(3));
        assert_eq!(
            in_force
                .references()
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            ["Ilam earthquake", "war"]
        );
        let targets = in_force.targets(&SlaTargets::default()).unwrap();
        let minutes = |kind, priority| targets.target(kind, priority).map(|d| d.as_secs() / 60);
        use crate::domain::sla::SlaKind;
        assert_eq!(
            minutes(SlaKind::TeamAcknowledgement, Priority::P0Immediate),
            Some(5)
        );
        assert_eq!(
            minutes(SlaKind::ReferralAcceptance, Priority::P2Priority),
            Some(120)
        );
        assert_eq!(minutes(SlaKind::OnScene, Priority::P0Immediate), Some(30));
        assert!(crises.in_force("IR-16", at(1)).is_empty());
        assert_eq!(
            crises
                .in_force("IR-16", at(1))
                .targets(&SlaTargets::default()),
            None
        );

        // A suicidal caller's P2 is raised to P1, with the reason first; a P0 is not lowered.
        let mut intake = suicidal("IR-16", Priority::P2Priority);
        in_force.raise(&mut intake);
        assert_eq!(intake.assessment.priority, Priority::P1Urgent);
        assert_eq!(
            intake.assessment.reasons[0],
            "crisis «Ilam earthquake» in force: suicidal_thoughts is at least p1_urgent"
        );
        let mut urgent = suicidal("IR-16", Priority::P0Immediate);
        in_force.raise(&mut urgent);
        assert_eq!(urgent.assessment.priority, Priority::P0Immediate);
        // Elsewhere only the country's floor holds.
        let mut elsewhere = suicidal("IR-23", Priority::P3Routine);
        crises.in_force("IR-23", at(3)).raise(&mut elsewhere);
        assert_eq!(elsewhere.assessment.priority, Priority::P2Priority);
    }

    #[test]
    fn a_later_version_replaces_the_one_held_and_an_earlier_one_does_not() {
        let c = declared(Some("IR-16"), 2, None);
        let mut crises = Crises::new(vec![c.clone()]);
        let mut ended = c.clone();
        ended.version = 2;
        ended.ends_at = Some(at(3));
        crises.put(ended.clone());
        crises.put(c.clone());
        assert_eq!(crises.get(c.crisis_id), Some(&ended));
        assert_eq!(crises.all().count(), 1);
    }
}
