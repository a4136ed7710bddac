//! The routing policy: an ordered set of rules after NENA i3 policy routing. The rule with the
//! highest priority whose conditions all hold fires; a rule without conditions is the default.
//! Policies are data (TOML), checked as a whole before they replace the one in force.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::directory::{Directory, Window};
use crate::domain::decision::{Action, Flag, ServicePointKind};
use crate::domain::types::{Category, Line, Priority};

/// Conditions of a rule; each present condition must hold. Lists match when the case has any of
/// their values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Conditions {
    /// The case came in on one of these lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<Line>,
    /// The case has one of these categories, primary or secondary.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<Category>,
    /// The case has one of these priorities.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub priorities: Vec<Priority>,
    /// Whether a subject is a minor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minors_involved: Option<bool>,
    /// Whether any of these facts holds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub any_flag: Vec<Flag>,
    /// The incident is in one of these provinces.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub provinces: Vec<String>,
    /// The incident is in one of these counties (English names).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub counties: Vec<String>,
    /// The call comes in during one of these weekly windows (Tehran time).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub during: Vec<Window>,
    /// Whether an available mobile team is within the cover chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_available: Option<bool>,
    /// A service point of this kind with a free place is open within the cover chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_available: Option<ServicePointKind>,
}

impl Conditions {
    /// True when the rule has no condition at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Identifier, unique in the policy; kept with every decision it makes.
    pub id: String,
    /// Higher fires first; unique in the policy so the order is never ambiguous.
    pub priority: i32,
    /// What the rule says, for people reading a decision.
    #[serde(default)]
    pub description: String,
    /// Conditions; none makes the rule a default.
    #[serde(default)]
    pub when: Conditions,
    /// Actions; none means the case goes nowhere (information, nuisance).
    #[serde(default)]
    pub then: Vec<Action>,
}

/// A policy as a file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// The rules, in any order.
    pub rules: Vec<Rule>,
    /// Priorities whose referrals may wait for a service point's next opening when every
    /// eligible one is closed: the referral is made, its acceptance deadline starts at the
    /// opening, and the case is routed rather than unrouted. Other priorities cannot wait: with
    /// every eligible point closed the case is unrouted and supervisors are alerted.
    #[serde(default = "PolicyDocument::default_wait_for_opening")]
    pub wait_for_opening: Vec<Priority>,
}

impl PolicyDocument {
    /// P2 (a visit within 72 hours), P3 (accepted within 7 days) and P4 may wait; P0 and P1 not.
    pub fn default_wait_for_opening() -> Vec<Priority> {
        vec![
            Priority::P2Priority,
            Priority::P3Routine,
            Priority::P4OutsideMandate,
        ]
    }

    /// A document of these rules, with the default waiting priorities.
    pub fn of(rules: Vec<Rule>) -> Self {
        Self {
            rules,
            wait_for_opening: Self::default_wait_for_opening(),
        }
    }
}

/// A checked policy: rules sorted by priority, highest first, with a default at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    version: i64,
    rules: Vec<Rule>,
    wait_for_opening: Vec<Priority>,
    /// Each rule's counties, normalised once (`crate::domain::names::normalise`), so that any
    /// spelling in the policy matches the case's county.
    rule_counties: Vec<Vec<String>>,
}

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy refused: {}", .0.join("; "))]
pub struct PolicyError(pub Vec<String>);

impl Policy {
    /// Parses and checks a TOML policy; `version` is the one it will be stored under.
    pub fn parse(toml_text: &str, version: i64) -> Result<Self, PolicyError> {
        let document: PolicyDocument =
            toml::from_str(toml_text).map_err(|e| PolicyError(vec![e.message().to_owned()]))?;
        Self::new(document, version)
    }

    /// Checks a policy document.
    pub fn new(document: PolicyDocument, version: i64) -> Result<Self, PolicyError> {
        Self::checked(document, version, true)
    }

    /// Checks the rules a crisis declaration puts before the policy's. They need no default
    /// rule: when none of them holds, the policy decides.
    pub fn extra(rules: Vec<Rule>) -> Result<Self, PolicyError> {
        Self::checked(PolicyDocument::of(rules), 0, false)
    }

    fn checked(
        document: PolicyDocument,
        version: i64,
        needs_default: bool,
    ) -> Result<Self, PolicyError> {
        let mut problems = Vec::new();
        let mut ids = HashSet::new();
        let mut priorities = HashSet::new();
        for rule in &document.rules {
            if rule.id.trim().is_empty() {
                problems.push("a rule has an empty id".to_owned());
            }
            if !ids.insert(rule.id.as_str()) {
                problems.push(format!("rule id {:?} appears twice", rule.id));
            }
            if !priorities.insert(rule.priority) {
                problems.push(format!(
                    "rule {:?} shares priority {} with another rule",
                    rule.id, rule.priority
                ));
            }
            for province in &rule.when.provinces {
                if crate::domain::province::by_code(province).is_none() {
                    problems.push(format!(
                        "rule {:?} names unknown province {province}",
                        rule.id
                    ));
                }
            }
            for action in &rule.then {
                match action {
                    Action::Notify { body, .. } if !body.is_outside_body() => {
                        problems.push(format!(
                            "rule {:?} notifies {}, which is not an outside body",
                            rule.id,
                            body.as_str()
                        ))
                    }
                    Action::ReferTo { kind, .. } if kind.is_outside_body() => {
                        problems.push(format!(
                            "rule {:?} refers to {}, an outside body: use notify",
                            rule.id,
                            kind.as_str()
                        ))
                    }
                    _ => {}
                }
            }
        }
        if needs_default && !document.rules.iter().any(|r| r.when.is_empty()) {
            problems.push("no default rule (a rule without conditions)".to_owned());
        }
        if !problems.is_empty() {
            return Err(PolicyError(problems));
        }
        let mut rules = document.rules;
        rules.sort_by_key(|rule| std::cmp::Reverse(rule.priority));
        let rule_counties = rules
            .iter()
            .map(|rule| {
                rule.when
                    .counties
                    .iter()
                    .map(|c| crate::domain::names::normalise(c))
                    .collect()
            })
            .collect();
        Ok(Self {
            version,
            rules,
            wait_for_opening: document.wait_for_opening,
            rule_counties,
        })
    }

    /// The version this policy is stored under.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The rules, highest priority first.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rules, highest priority first, each with its counties normalised.
    pub fn rules_with_counties(&self) -> impl Iterator<Item = (&Rule, &[String])> {
        self.rules
            .iter()
            .zip(self.rule_counties.iter().map(Vec::as_slice))
    }

    /// The policy as a document again.
    pub fn document(&self) -> PolicyDocument {
        PolicyDocument {
            rules: self.rules.clone(),
            wait_for_opening: self.wait_for_opening.clone(),
        }
    }

    /// Whether a referral of a case of `priority` may wait for a closed point's opening.
    pub fn may_wait_for_opening(&self, priority: Priority) -> bool {
        self.wait_for_opening.contains(&priority)
    }
}

/// What is wrong with the service points `rules` name (`refer_to` with a `point`), against
/// the directory: each must be there and of the kind its action refers to.
pub fn unknown_points(rules: &[Rule], directory: &Directory) -> Vec<String> {
    let mut problems = Vec::new();
    for rule in rules {
        for action in &rule.then {
            if let Action::ReferTo {
                kind,
                point: Some(id),
            } = action
            {
                match directory.service_point(id) {
                    None => problems.push(format!(
                        "rule {:?} refers to service point {id:?}, which is not in the directory",
                        rule.id
                    )),
                    Some(point) if point.kind != *kind => problems.push(format!(
                        "rule {:?} refers to {id:?} as a {}, but it is a {}",
                        rule.id,
                        kind.as_str(),
                        point.kind.as_str()
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    problems
}

/// The policy that ships with the service (`seed/policy.toml`).
pub const SHIPPED_POLICY: &str = include_str!("../../seed/policy.toml");
