//! Triage: the priority a case gets from the facts of its intake (DESIGN §5).
//!
//! Each rule names the level it sets and says why in words an operator understands. Every rule
//! that matches is reported; the most urgent level wins. The operator may raise the result freely;
//! lowering it needs a reason, which is kept with the case.

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Asia::Tehran;
use serde::{Deserialize, Serialize};

use super::error::FieldViolation;
use super::intake::Intake;
use super::types::{Answer, Category, Priority, Recency, Sex};

/// Triage's result for one intake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// The level the rules computed.
    pub computed: Priority,
    /// The level the case gets: the computed one, or the operator's override.
    pub priority: Priority,
    /// Why, one line per matching rule, most urgent first.
    pub reasons: Vec<String>,
}

/// The facts the rules read, worked out once from the intake.
struct Facts<'a> {
    intake: &'a Intake,
    minors: bool,
    female_subject: bool,
    at_night: bool,
    high_suicide_risk: bool,
    suicidal_ideation: bool,
}

impl<'a> Facts<'a> {
    fn new(intake: &'a Intake) -> Self {
        let screening = intake.risk.suicide_screening.as_ref().map(|s| *s.expose());
        let yes = |answer: Answer| answer == Answer::Yes;
        Self {
            intake,
            minors: intake.minors_involved(),
            female_subject: intake.subjects.iter().any(|s| s.sex == Sex::Female),
            at_night: is_night_in_tehran(intake.contact.started_at),
            // Columbia screener: intent or a plan in the past month, or any suicidal behaviour in
            // the last three months, is high risk.
            high_suicide_risk: screening
                .is_some_and(|s| yes(s.intent) || yes(s.plan) || yes(s.behaviour_last_3_months)),
            suicidal_ideation: screening.is_some_and(|s| {
                yes(s.wish_to_be_dead) || yes(s.suicidal_thoughts) || yes(s.method)
            }),
        }
    }

    fn has(&self, category: Category) -> bool {
        self.intake.has_category(category)
    }

    fn any(&self, categories: &[Category]) -> bool {
        categories.iter().any(|&c| self.has(c))
    }

    fn recent(&self) -> bool {
        matches!(
            self.intake.risk.recency,
            Recency::Ongoing | Recency::Last24Hours
        )
    }
}

/// Night for the "expelled at night" rule: 20:00 to 06:00 in Tehran, where the centres are.
fn is_night_in_tehran(at: DateTime<Utc>) -> bool {
    let hour = at.with_timezone(&Tehran).hour();
    !(6..20).contains(&hour)
}

/// One triage rule.
struct Rule {
    level: Priority,
    reason: &'static str,
    applies: fn(&Facts<'_>) -> bool,
}

const ABUSE_WITH_VIOLENCE: &[Category] = &[
    Category::ChildAbusePhysical,
    Category::ChildAbuseSexual,
    Category::ChildAtRisk,
];

const COUNSELLING: &[Category] = &[
    Category::DivorceCrisis,
    Category::Addiction,
    Category::PsychologicalDistress,
    Category::MarriageAndPremarital,
    Category::Parenting,
    Category::Educational,
    Category::DisasterPsychosocial,
];

const SOCIAL_RISK: &[Category] = &[
    Category::WomenAndGirlsAtRisk,
    Category::StreetAndWorkingChildren,
    Category::Homelessness,
    Category::RunawayOrExpelled,
    Category::ChildAtRisk,
    Category::ChronicMentalIllnessCrisis,
];

/// The rules, most urgent first. Every rule is covered by a row of the table test below.
const RULES: &[Rule] = &[
    // P0 immediate: life at risk now.
    Rule {
        level: Priority::P0Immediate,
        reason: "suicide attempt in progress",
        applies: |f| {
            f.intake.risk.attempt_in_progress
                || (f.has(Category::SuicideAttempt) && f.intake.risk.recency == Recency::Ongoing)
        },
    },
    Rule {
        level: Priority::P0Immediate,
        reason: "violence going on with injury",
        applies: |f| f.intake.risk.violence_ongoing && f.intake.risk.injury_or_medical_need,
    },
    Rule {
        level: Priority::P0Immediate,
        reason: "weapon or lethal means present",
        applies: |f| f.intake.risk.weapon_present,
    },
    Rule {
        level: Priority::P0Immediate,
        reason: "child in severe and imminent danger",
        applies: |f| {
            f.minors
                && (f.intake.risk.violence_ongoing
                    || (f.intake.risk.injury_or_medical_need && f.any(ABUSE_WITH_VIOLENCE)))
        },
    },
    // P1 urgent: high risk, not yet in progress.
    Rule {
        level: Priority::P1Urgent,
        reason: "high suicide risk on screening (intent, plan or recent behaviour)",
        applies: |f| f.high_suicide_risk,
    },
    Rule {
        level: Priority::P1Urgent,
        reason: "suicide attempt in the last week",
        applies: |f| {
            f.has(Category::SuicideAttempt)
                && matches!(
                    f.intake.risk.recency,
                    Recency::Last24Hours | Recency::LastWeek | Recency::Unknown
                )
        },
    },
    Rule {
        level: Priority::P1Urgent,
        reason: "violence going on",
        applies: |f| f.intake.risk.violence_ongoing,
    },
    Rule {
        level: Priority::P1Urgent,
        reason: "injury or medical need",
        applies: |f| f.intake.risk.injury_or_medical_need,
    },
    Rule {
        level: Priority::P1Urgent,
        reason: "abuse likely to recur today: alleged perpetrator present",
        applies: |f| {
            f.intake.risk.perpetrator_present && f.intake.categories().any(Category::is_abuse)
        },
    },
    Rule {
        level: Priority::P1Urgent,
        reason: "sexual abuse of a child",
        applies: |f| f.has(Category::ChildAbuseSexual),
    },
    Rule {
        level: Priority::P1Urgent,
        reason: "runaway or expelled minor",
        applies: |f| f.has(Category::RunawayOrExpelled) && f.minors,
    },
    Rule {
        level: Priority::P1Urgent,
        reason: "woman or girl expelled or at risk at night",
        applies: |f| {
            f.any(&[Category::RunawayOrExpelled, Category::WomenAndGirlsAtRisk])
                && f.female_subject
                && f.at_night
        },
    },
    Rule {
        level: Priority::P1Urgent,
        reason: "child at risk now",
        applies: |f| f.has(Category::ChildAtRisk) && f.minors && f.recent(),
    },
    // P2 priority: needs a visit, an appointment or a call within days.
    Rule {
        level: Priority::P2Priority,
        reason: "suicidal thoughts without intent, plan or recent behaviour",
        applies: |f| f.has(Category::SuicidalThoughts) || f.suicidal_ideation,
    },
    Rule {
        level: Priority::P2Priority,
        reason: "earlier suicide attempt",
        applies: |f| f.has(Category::SuicideAttempt),
    },
    Rule {
        level: Priority::P2Priority,
        reason: "suspected neglect",
        applies: |f| f.has(Category::ChildNeglect),
    },
    Rule {
        level: Priority::P2Priority,
        reason: "abuse or family dispute without violence now",
        applies: |f| {
            f.has(Category::AcuteFamilyConflict) || f.intake.categories().any(Category::is_abuse)
        },
    },
    Rule {
        level: Priority::P2Priority,
        reason: "person in a risky social situation",
        applies: |f| f.any(SOCIAL_RISK),
    },
    // P3 routine: counselling needs.
    Rule {
        level: Priority::P3Routine,
        reason: "counselling need",
        applies: |f| f.any(COUNSELLING),
    },
    // P4 outside the mandate: recorded for statistics only.
    Rule {
        level: Priority::P4OutsideMandate,
        reason: "information only or nuisance call",
        applies: |f| f.any(&[Category::InformationOnly, Category::NuisanceOrSilent]),
    },
];

/// Assesses an intake and applies the operator's override, if any.
///
/// Fails when the operator lowers the priority without a reason, or gives a reason for no override.
pub fn assess(intake: &Intake) -> Result<Assessment, FieldViolation> {
    let facts = Facts::new(intake);
    let matched: Vec<&Rule> = RULES.iter().filter(|rule| (rule.applies)(&facts)).collect();
    // Every category has a rule, so something always matches; P3 is the safe fallback.
    let computed = matched
        .iter()
        .map(|rule| rule.level)
        .min()
        .unwrap_or(Priority::P3Routine);
    let reasons = matched
        .iter()
        .map(|rule| format!("{}: {}", rule.level.code(), rule.reason))
        .collect();

    let priority = match (intake.priority_override, &intake.priority_override_reason) {
        (None, None) => computed,
        (None, Some(_)) => {
            return Err(FieldViolation::new(
                "intake.priority_override_reason",
                "is given but priority_override is not",
            ));
        }
        (Some(wanted), None) if computed.is_more_urgent_than(wanted) => {
            return Err(FieldViolation::new(
                "intake.priority_override_reason",
                format!(
                    "is required to lower the priority from {} to {}",
                    computed.code(),
                    wanted.code()
                ),
            ));
        }
        (Some(wanted), _) => wanted,
    };
    Ok(Assessment {
        computed,
        priority,
        reasons,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::fixture::IntakeBuilder;
    use crate::domain::intake::Intake;

    use Category as C;
    use Priority::*;

    #[test]
    fn each_rule_sets_its_level_and_says_why() {
        let cases: Vec<(&str, Intake, Priority, &str)> = vec![
            (
                "an attempt in progress is P0",
                IntakeBuilder::new(C::SuicidalThoughts)
                    .with(|i| i.risk.attempt_in_progress = true)
                    .build(),
                P0Immediate,
                "suicide attempt in progress",
            ),
            (
                "an attempt category that is ongoing is P0",
                IntakeBuilder::new(C::SuicideAttempt)
                    .recency(Recency::Ongoing)
                    .build(),
                P0Immediate,
                "suicide attempt in progress",
            ),
            (
                "violence with injury is P0",
                IntakeBuilder::new(C::SpouseAbuse)
                    .with(|i| {
                        i.risk.violence_ongoing = true;
                        i.risk.injury_or_medical_need = true;
                    })
                    .build(),
                P0Immediate,
                "violence going on with injury",
            ),
            (
                "a weapon is P0",
                IntakeBuilder::new(C::AcuteFamilyConflict)
                    .with(|i| i.risk.weapon_present = true)
                    .build(),
                P0Immediate,
                "weapon or lethal means present",
            ),
            (
                "a child with violence going on is P0",
                IntakeBuilder::new(C::ChildAbuseEmotional)
                    .minor()
                    .with(|i| i.risk.violence_ongoing = true)
                    .build(),
                P0Immediate,
                "child in severe and imminent danger",
            ),
            (
                "an injured child in a physical-abuse case is P0",
                IntakeBuilder::new(C::ChildAbusePhysical)
                    .minor()
                    .with(|i| i.risk.injury_or_medical_need = true)
                    .build(),
                P0Immediate,
                "child in severe and imminent danger",
            ),
            (
                "intent on screening is P1",
                IntakeBuilder::new(C::PsychologicalDistress)
                    .screening(|s| s.intent = Answer::Yes)
                    .build(),
                P1Urgent,
                "high suicide risk on screening",
            ),
            (
                "a plan on screening is P1",
                IntakeBuilder::new(C::SuicidalThoughts)
                    .screening(|s| s.plan = Answer::Yes)
                    .build(),
                P1Urgent,
                "high suicide risk on screening",
            ),
            (
                "recent suicidal behaviour on screening is P1",
                IntakeBuilder::new(C::SuicidalThoughts)
                    .screening(|s| s.behaviour_last_3_months = Answer::Yes)
                    .build(),
                P1Urgent,
                "high suicide risk on screening",
            ),
            (
                "an attempt in the last day is P1",
                IntakeBuilder::new(C::SuicideAttempt)
                    .recency(Recency::Last24Hours)
                    .build(),
                P1Urgent,
                "suicide attempt in the last week",
            ),
            (
                "violence going on without injury is P1",
                IntakeBuilder::new(C::SpouseAbuse)
                    .with(|i| i.risk.violence_ongoing = true)
                    .build(),
                P1Urgent,
                "violence going on",
            ),
            (
                "an injury alone is P1",
                IntakeBuilder::new(C::ElderAbuse)
                    .with(|i| i.risk.injury_or_medical_need = true)
                    .build(),
                P1Urgent,
                "injury or medical need",
            ),
            (
                "abuse with the perpetrator present is P1",
                IntakeBuilder::new(C::SpouseAbuse)
                    .with(|i| i.risk.perpetrator_present = true)
                    .build(),
                P1Urgent,
                "alleged perpetrator present",
            ),
            (
                "sexual abuse of a child is P1",
                IntakeBuilder::new(C::ChildAbuseSexual)
                    .minor()
                    .recency(Recency::Older)
                    .build(),
                P1Urgent,
                "sexual abuse of a child",
            ),
            (
                "a runaway minor is P1",
                IntakeBuilder::new(C::RunawayOrExpelled).minor().build(),
                P1Urgent,
                "runaway or expelled minor",
            ),
            (
                "a woman expelled at 23:00 is P1",
                IntakeBuilder::new(C::RunawayOrExpelled)
                    .female()
                    .at_tehran_hour(23)
                    .build(),
                P1Urgent,
                "woman or girl expelled or at risk at night",
            ),
            (
                "a woman at risk at 05:00 is P1",
                IntakeBuilder::new(C::WomenAndGirlsAtRisk)
                    .female()
                    .at_tehran_hour(5)
                    .build(),
                P1Urgent,
                "woman or girl expelled or at risk at night",
            ),
            (
                "a child at risk today is P1",
                IntakeBuilder::new(C::ChildAtRisk)
                    .minor()
                    .recency(Recency::Last24Hours)
                    .build(),
                P1Urgent,
                "child at risk now",
            ),
            (
                "suicidal thoughts without intent are P2",
                IntakeBuilder::new(C::SuicidalThoughts).build(),
                P2Priority,
                "suicidal thoughts without intent",
            ),
            (
                "a wish to be dead on screening is P2",
                IntakeBuilder::new(C::PsychologicalDistress)
                    .screening(|s| s.wish_to_be_dead = Answer::Yes)
                    .build(),
                P2Priority,
                "suicidal thoughts without intent",
            ),
            (
                "an attempt long ago is P2",
                IntakeBuilder::new(C::SuicideAttempt)
                    .recency(Recency::Older)
                    .build(),
                P2Priority,
                "earlier suicide attempt",
            ),
            (
                "neglect is P2",
                IntakeBuilder::new(C::ChildNeglect).minor().build(),
                P2Priority,
                "suspected neglect",
            ),
            (
                "a family dispute without violence is P2",
                IntakeBuilder::new(C::AcuteFamilyConflict).build(),
                P2Priority,
                "abuse or family dispute without violence now",
            ),
            (
                "a woman expelled in daytime is P2",
                IntakeBuilder::new(C::RunawayOrExpelled)
                    .female()
                    .at_tehran_hour(14)
                    .build(),
                P2Priority,
                "person in a risky social situation",
            ),
            (
                "homelessness is P2",
                IntakeBuilder::new(C::Homelessness).build(),
                P2Priority,
                "person in a risky social situation",
            ),
            (
                "parenting advice is P3",
                IntakeBuilder::new(C::Parenting).build(),
                P3Routine,
                "counselling need",
            ),
            (
                "an information call is P4",
                IntakeBuilder::new(C::InformationOnly).build(),
                P4OutsideMandate,
                "information only or nuisance call",
            ),
            (
                "a silent call is P4",
                IntakeBuilder::new(C::NuisanceOrSilent).build(),
                P4OutsideMandate,
                "information only or nuisance call",
            ),
            (
                "a nuisance call that reports a weapon is still P0",
                IntakeBuilder::new(C::NuisanceOrSilent)
                    .with(|i| i.risk.weapon_present = true)
                    .build(),
                P0Immediate,
                "weapon or lethal means present",
            ),
            (
                "a secondary category counts like a primary one",
                IntakeBuilder::new(C::Parenting)
                    .with(|i| i.secondary_categories = vec![C::ChildAbuseSexual])
                    .build(),
                P1Urgent,
                "sexual abuse of a child",
            ),
        ];
        for (name, intake, expected, reason) in cases {
            let assessment = assess(&intake).unwrap();
            assert_eq!(assessment.computed, expected, "{name}");
            assert_eq!(assessment.priority, expected, "{name}");
            assert!(
                assessment.reasons.iter().any(|r| r.contains(reason)),
                "{name}: expected a reason containing {reason:?}, got {:?}",
                assessment.reasons
            );
        }
    }

    #[test]
    fn every_rule_is_exercised_by_the_table() {
        // The table above names each rule's reason; this keeps the two in step when a rule is added.
        let table_reasons = [
            "suicide attempt in progress",
            "violence going on with injury",
            "weapon or lethal means present",
            "child in severe and imminent danger",
            "high suicide risk on screening (intent, plan or recent behaviour)",
            "suicide attempt in the last week",
            "violence going on",
            "injury or medical need",
            "abuse likely to recur today: alleged perpetrator present",
            "sexual abuse of a child",
            "runaway or expelled minor",
            "woman or girl expelled or at risk at night",
            "child at risk now",
            "suicidal thoughts without intent, plan or recent behaviour",
            "earlier suicide attempt",
            "suspected neglect",
            "abuse or family dispute without violence now",
            "person in a risky social situation",
            "counselling need",
            "information only or nuisance call",
        ];
        let rule_reasons: Vec<&str> = RULES.iter().map(|r| r.reason).collect();
        assert_eq!(rule_reasons, table_reasons);
    }

    #[test]
    fn every_category_gets_a_priority_from_some_rule() {
        use strum::VariantArray;
        for &category in Category::VARIANTS {
            let intake = IntakeBuilder::new(category).build();
            let facts = Facts::new(&intake);
            assert!(
                RULES.iter().any(|rule| (rule.applies)(&facts)),
                "{category:?} matches no rule"
            );
        }
    }

    #[test]
    fn reasons_list_every_matching_rule_most_urgent_first() {
        let intake = IntakeBuilder::new(C::SpouseAbuse)
            .with(|i| {
                i.risk.violence_ongoing = true;
                i.risk.injury_or_medical_need = true;
            })
            .build();
        let reasons = assess(&intake).unwrap().reasons;
        assert_eq!(reasons[0], "P0: violence going on with injury");
        assert!(reasons.contains(&"P1: violence going on".to_string()));
        assert!(reasons.contains(&"P2: abuse or family dispute without violence now".to_string()));
    }

    #[test]
    fn the_operator_may_raise_the_priority_without_a_reason() {
        let intake = IntakeBuilder::new(C::Parenting)
            .with(|i| i.priority_override = Some(P1Urgent))
            .build();
        let assessment = assess(&intake).unwrap();
        assert_eq!(assessment.computed, P3Routine);
        assert_eq!(assessment.priority, P1Urgent);
    }

    #[test]
    fn lowering_the_priority_needs_a_reason() {
        let without = IntakeBuilder::new(C::SuicidalThoughts)
            .with(|i| i.priority_override = Some(P3Routine))
            .build();
        let violation = assess(&without).unwrap_err();
        assert_eq!(violation.field, "intake.priority_override_reason");
        assert!(violation.description.contains("from P2 to P3"));

        let with = IntakeBuilder::new(C::SuicidalThoughts)
            .with(|i| {
                i.priority_override = Some(P3Routine);
                i.priority_override_reason = Some("known caller, in weekly therapy".into());
            })
            .build();
        assert_eq!(assess(&with).unwrap().priority, P3Routine);
    }

    #[test]
    fn a_reason_without_an_override_is_refused() {
        let intake = IntakeBuilder::new(C::Parenting)
            .with(|i| i.priority_override_reason = Some("because".into()))
            .build();
        assert_eq!(
            assess(&intake).unwrap_err().field,
            "intake.priority_override_reason"
        );
    }

    #[test]
    fn night_runs_from_20_to_06_tehran_time() {
        let at = |hour| {
            Tehran
                .with_ymd_and_hms(2026, 6, 1, hour, 0, 0)
                .unwrap()
                .with_timezone(&Utc)
        };
        assert!(is_night_in_tehran(at(20)));
        assert!(is_night_in_tehran(at(0)));
        assert!(is_night_in_tehran(at(5)));
        assert!(!is_night_in_tehran(at(6)));
        assert!(!is_night_in_tehran(at(19)));
    }
}
