//! Service-level targets: how long each step of a case may take, by priority, and what a
//! missed deadline leads to.
//!
//! The defaults are the design's (DESIGN §5): a P0 team acknowledges within 3 minutes and is on
//! scene within 30; P1 within the hour; P2 within 72 hours; P3 referrals accepted within 7 days;
//! and the prosecutor is told within 12 hours when a child is taken from danger. A deployment
//! changes any of them with `--sla-target`.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::decision::Purpose;
use super::types::{Priority, domain_enum};

domain_enum! {
    /// A deadline the service keeps.
    pub enum SlaKind {
        /// The dispatched team acknowledges.
        TeamAcknowledgement,
        /// The team is on scene.
        OnScene,
        /// The receiving centre accepts a referral.
        ReferralAcceptance,
        /// A scheduled follow-up is done.
        FollowUp,
        /// The prosecutor's child-protection unit takes notice of a child removed from danger.
        ProsecutorNotice,
    }
}

impl SlaKind {
    /// True when a missed deadline sends the case to the next candidate: the team or centre
    /// that did not answer is called off. Otherwise the province's supervisors are alerted.
    pub fn reroutes(self) -> bool {
        matches!(self, Self::TeamAcknowledgement | Self::ReferralAcceptance)
    }
}

/// The targets, per kind and priority; `None` where a priority has no target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaTargets {
    acknowledgement: [Option<Duration>; 5],
    on_scene: [Option<Duration>; 5],
    acceptance: [Option<Duration>; 5],
    prosecutor_notice: Duration,
}

const fn minutes(n: u64) -> Option<Duration> {
    Some(Duration::from_secs(n * 60))
}

const fn hours(n: u64) -> Option<Duration> {
    minutes(n * 60)
}

impl Default for SlaTargets {
    fn default() -> Self {
        Self {
            acknowledgement: [minutes(3), minutes(10), hours(1), None, None],
            on_scene: [minutes(30), minutes(60), hours(72), None, None],
            acceptance: [hours(1), hours(1), hours(72), hours(7 * 24), None],
            prosecutor_notice: Duration::from_secs(12 * 3600),
        }
    }
}

fn index(priority: Priority) -> usize {
    priority.level()
}

/// A `--sla-target` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0} (expected KIND:PRIORITY=DURATION, e.g. team_acknowledgement:p0=3m, or prosecutor_notice=12h; a duration of 0 removes the target)"
)]
pub struct BadTarget(String);

impl SlaTargets {
    /// When a deadline of `kind` started at `from` falls for a case of `priority`; `None` when
    /// the kind has no target at that priority.
    pub fn due(
        &self,
        kind: SlaKind,
        priority: Priority,
        from: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let target = self.target(kind, priority)?;
        let target = TimeDelta::from_std(target).unwrap_or(TimeDelta::MAX);
        Some(
            from.checked_add_signed(target)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }

    /// The deadlines a new dispatch or referral for `purpose` starts at `at`: a team's
    /// acknowledgement and arrival, a centre's acceptance; an outside body's notification has
    /// none.
    pub fn started_by(
        &self,
        purpose: Purpose,
        priority: Priority,
        at: DateTime<Utc>,
    ) -> Vec<(SlaKind, DateTime<Utc>)> {
        let kinds: &[SlaKind] = match purpose {
            Purpose::Dispatch => &[SlaKind::TeamAcknowledgement, SlaKind::OnScene],
            Purpose::Referral | Purpose::HandOver => &[SlaKind::ReferralAcceptance],
            Purpose::Notification => &[],
        };
        kinds
            .iter()
            .filter_map(|&kind| Some((kind, self.due(kind, priority, at)?)))
            .collect()
    }

    /// The target of `kind` for a case of `priority`. A follow-up's deadline is its own due time.
    pub fn target(&self, kind: SlaKind, priority: Priority) -> Option<Duration> {
        let i = index(priority);
        match kind {
            SlaKind::TeamAcknowledgement => self.acknowledgement[i],
            SlaKind::OnScene => self.on_scene[i],
            SlaKind::ReferralAcceptance => self.acceptance[i],
            SlaKind::ProsecutorNotice => Some(self.prosecutor_notice),
            SlaKind::FollowUp => None,
        }
    }

    /// Applies one `KIND:PRIORITY=DURATION` setting (or `prosecutor_notice=DURATION`).
    pub fn set(&mut self, spec: &str) -> Result<(), BadTarget> {
        let bad = |why: &str| BadTarget(format!("{spec:?}: {why}"));
        let (key, value) = spec.split_once('=').ok_or_else(|| bad("no '='"))?;
        let duration = humantime::parse_duration(value.trim()).map_err(|e| bad(&e.to_string()))?;
        let target = (!duration.is_zero()).then_some(duration);
        if key.trim() == SlaKind::ProsecutorNotice.as_str() {
            self.prosecutor_notice =
                target.ok_or_else(|| bad("the prosecutor notice needs a target"))?;
            return Ok(());
        }
        let (kind, priority) = key
            .split_once(':')
            .ok_or_else(|| bad("no ':' before the priority"))?;
        let kind: SlaKind = kind.trim().parse().map_err(|_| bad("unknown kind"))?;
        let priority = match priority.trim().to_ascii_lowercase().as_str() {
            "p0" => Priority::P0Immediate,
            "p1" => Priority::P1Urgent,
            "p2" => Priority::P2Priority,
            "p3" => Priority::P3Routine,
            "p4" => Priority::P4OutsideMandate,
            _ => return Err(bad("the priority is p0 to p4")),
        };
        let slot = match kind {
            SlaKind::TeamAcknowledgement => &mut self.acknowledgement,
            SlaKind::OnScene => &mut self.on_scene,
            SlaKind::ReferralAcceptance => &mut self.acceptance,
            SlaKind::FollowUp | SlaKind::ProsecutorNotice => {
                return Err(bad("this kind has no per-priority target"));
            }
        };
        slot[index(priority)] = target;
        Ok(())
    }

    /// The defaults with `specs` applied in order.
    pub fn with(specs: &[String]) -> Result<Self, BadTarget> {
        let mut targets = Self::default();
        for spec in specs {
            targets.set(spec)?;
        }
        Ok(targets)
    }
}

impl fmt::Display for SlaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_designs_targets() {
        let t = SlaTargets::default();
        let min = |n: u64| Some(Duration::from_secs(n * 60));
        use Priority::*;
        use SlaKind::*;
        let table = [
            (TeamAcknowledgement, P0Immediate, min(3)),
            (OnScene, P0Immediate, min(30)),
            (OnScene, P1Urgent, min(60)),
            (OnScene, P2Priority, min(72 * 60)),
            (ReferralAcceptance, P1Urgent, min(60)),
            (ReferralAcceptance, P3Routine, min(7 * 24 * 60)),
            (ReferralAcceptance, P4OutsideMandate, None),
            (ProsecutorNotice, P2Priority, min(12 * 60)),
            (FollowUp, P0Immediate, None),
        ];
        for (kind, priority, expected) in table {
            assert_eq!(t.target(kind, priority), expected, "{kind} {priority:?}");
        }
    }

    #[test]
    fn targets_are_set_per_kind_and_priority_and_bad_settings_say_why() {
        let t = SlaTargets::with(&[
            "team_acknowledgement:p0=90s".into(),
            "on_scene:P1=2h".into(),
            "referral_acceptance:p2=0s".into(),
            "prosecutor_notice=6h".into(),
        ])
        .unwrap();
        assert_eq!(
            t.target(SlaKind::TeamAcknowledgement, Priority::P0Immediate),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            t.target(SlaKind::OnScene, Priority::P1Urgent),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(
            t.target(SlaKind::ReferralAcceptance, Priority::P2Priority),
            None
        );
        assert_eq!(
            t.target(SlaKind::ProsecutorNotice, Priority::P0Immediate),
            Some(Duration::from_secs(6 * 3600))
        );
        for bad in [
            "on_scene:p9=1m",
            "nonsense:p0=1m",
            "on_scene=1m",
            "on_scene:p0",
            "follow_up:p0=1h",
            "on_scene:p0=soon",
        ] {
            assert!(SlaTargets::with(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_silent_team_or_centre_is_replaced() {
        assert!(SlaKind::TeamAcknowledgement.reroutes());
        assert!(SlaKind::ReferralAcceptance.reroutes());
        assert!(!SlaKind::OnScene.reroutes());
        assert!(!SlaKind::FollowUp.reroutes());
        assert!(!SlaKind::ProsecutorNotice.reroutes());
    }
}
