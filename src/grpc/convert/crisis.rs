//! Crisis declarations on the wire: the terms a supervisor sends, checked field by field, and a
//! declaration as it stands, with its Persian labels.

use super::*;
use crate::domain::change::ChangeKey;
use crate::routing::crisis::{Crisis, CrisisAction, Declaration, Measures, PriorityFloor};
use crate::routing::policy::PolicyDocument;

/// The longest TOML a declaration's rules may be.
const MAX_POLICY_TOML: usize = 64 * 1024;

/// A declaration's terms; an unset start is `now`.
fn terms(
    v: &mut Violations,
    field: &str,
    raw: Option<pb::CrisisTerms>,
    now: DateTime<Utc>,
) -> Option<Declaration> {
    let raw = v.required(field, raw)?;
    let f = |name: &str| format!("{field}.{name}");
    let before = v.0.len();
    let province = match raw.province.trim() {
        "" => None,
        _ => v.province(&f("province"), raw.province),
    };
    let starts_at = v.time(&f("starts_at"), raw.starts_at).unwrap_or(now);
    let ends_at = v.time(&f("ends_at"), raw.ends_at);
    let round_the_clock = v.enumerations(&f("round_the_clock"), &raw.round_the_clock);
    let rules = if raw.policy_toml.trim().is_empty() {
        Some(Vec::new())
    } else if raw.policy_toml.len() > MAX_POLICY_TOML {
        v.add(
            f("policy_toml"),
            format!("is longer than {MAX_POLICY_TOML} bytes"),
        );
        None
    } else {
        match toml::from_str::<PolicyDocument>(&raw.policy_toml) {
            Ok(document) => Some(document.rules),
            Err(error) => {
                v.add(f("policy_toml"), error.message().to_owned());
                None
            }
        }
    };
    let raise: Vec<Option<PriorityFloor>> = raw
        .raise
        .iter()
        .enumerate()
        .map(|(i, floor)| {
            let category = v.enumeration(&format!("{field}.raise[{i}].category"), floor.category);
            let at_least = v.enumeration(&format!("{field}.raise[{i}].at_least"), floor.at_least);
            Some(PriorityFloor {
                category: category?,
                at_least: at_least?,
            })
        })
        .collect();
    // Whatever parsed is checked as a whole too, so one answer names every bad field.
    let parsed = v.0.len() == before;
    let declaration = Declaration {
        name: raw.name,
        province,
        starts_at,
        ends_at,
        measures: Measures {
            round_the_clock: round_the_clock.unwrap_or_default(),
            round_the_clock_points: raw
                .round_the_clock_points
                .into_iter()
                .map(|id| id.trim().to_owned())
                .collect(),
            targets: raw
                .targets
                .into_iter()
                .map(|t| t.trim().to_owned())
                .collect(),
            rules: rules.unwrap_or_default(),
            raise: raise.into_iter().flatten().collect(),
        },
    };
    if let Err(problems) = declaration.check(field) {
        v.0.extend(problems);
        return None;
    }
    if !parsed {
        return None;
    }
    Some(declaration)
}

/// A declaration asked for, with its key.
pub(crate) fn declare_crisis(
    raw: pb::DeclareCrisisRequest,
    now: DateTime<Utc>,
) -> Result<(CrisisAction, Option<ChangeKey>), Error> {
    let mut v = Violations::default();
    let key = v.change_key(&raw, &raw.request_id);
    let declaration = terms(&mut v, "crisis", raw.crisis, now);
    let action = declaration.map(CrisisAction::Declare);
    v.finish(action).map(|action| (action, key))
}

/// New terms asked for, with their key.
pub(crate) fn change_crisis(
    raw: pb::ChangeCrisisRequest,
    now: DateTime<Utc>,
) -> Result<(CrisisAction, Option<ChangeKey>), Error> {
    let mut v = Violations::default();
    let key = v.change_key(&raw, &raw.request_id);
    let crisis_id = v.uuid("crisis_id", &raw.crisis_id);
    let expected_version = version(&mut v, raw.expected_version);
    let declaration = terms(&mut v, "crisis", raw.crisis, now);
    let action = (|| {
        Some(CrisisAction::Change {
            crisis_id: crisis_id?,
            expected_version: expected_version?,
            declaration: declaration?,
        })
    })();
    v.finish(action).map(|action| (action, key))
}

/// An end asked for, with its key.
pub(crate) fn end_crisis(
    raw: pb::EndCrisisRequest,
) -> Result<(CrisisAction, Option<ChangeKey>), Error> {
    let mut v = Violations::default();
    let key = v.change_key(&raw, &raw.request_id);
    let crisis_id = v.uuid("crisis_id", &raw.crisis_id);
    let expected_version = version(&mut v, raw.expected_version);
    let at = v.time("ends_at", raw.ends_at);
    let action = (|| {
        Some(CrisisAction::End {
            crisis_id: crisis_id?,
            expected_version: expected_version?,
            at,
        })
    })();
    v.finish(action).map(|action| (action, key))
}

/// A declaration's id on its own.
pub(crate) fn crisis_id(raw: &str) -> Result<Uuid, Error> {
    let mut v = Violations::default();
    let id = v.uuid("crisis_id", raw);
    v.finish(id)
}

fn version(v: &mut Violations, raw: i64) -> Option<i64> {
    if raw < 1 {
        v.add(
            "expected_version",
            "is required: the version the change is based on",
        );
        return None;
    }
    Some(raw)
}

/// A declaration as it stands at `now`.
pub(crate) fn crisis(c: &Crisis, now: DateTime<Utc>) -> pb::Crisis {
    let status = c.status(now);
    let m = &c.measures;
    pb::Crisis {
        crisis_id: c.crisis_id.to_string(),
        version: c.version,
        terms: Some(pb::CrisisTerms {
            name: c.name.clone(),
            province: c.province.clone().unwrap_or_default(),
            starts_at: Some(timestamp(c.starts_at)),
            ends_at: c.ends_at.map(timestamp),
            round_the_clock: m.round_the_clock.iter().map(|k| k.to_wire()).collect(),
            round_the_clock_points: m.round_the_clock_points.clone(),
            targets: m.targets.clone(),
            policy_toml: if m.rules.is_empty() {
                String::new()
            } else {
                toml::to_string(&PolicyDocument::of(m.rules.clone())).unwrap_or_default()
            },
            raise: m
                .raise
                .iter()
                .map(|f| pb::PriorityFloor {
                    category: f.category.to_wire(),
                    at_least: f.at_least.to_wire(),
                    category_label_fa: f.category.label_fa().to_owned(),
                    priority_label_fa: f.at_least.label_fa().to_owned(),
                })
                .collect(),
        }),
        status: match status {
            crate::routing::crisis::CrisisStatus::Scheduled => pb::CrisisStatus::Scheduled,
            crate::routing::crisis::CrisisStatus::InForce => pb::CrisisStatus::InForce,
            crate::routing::crisis::CrisisStatus::Ended => pb::CrisisStatus::Ended,
        } as i32,
        status_label_fa: status.label_fa().to_owned(),
        declared_by: c.declared_by.clone(),
        updated_by: c.updated_by.clone(),
        updated_at: Some(timestamp(c.updated_at)),
    }
}
