//! Statistics over a period: how many cases by line, category, priority, status and province,
//! and how fast the mobile teams responded, measured from the event feed.
//!
//! A response interval runs from the case's `case_recorded` event to the first event of the
//! step (`dispatch_acknowledged`, `dispatch_on_scene`, `dispatch_cleared`). Percentiles use the
//! nearest-rank method, so every figure is an interval that actually happened.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The steps whose delay from intake is measured, with the event kind that marks each.
pub const STEPS: [(ResponseStep, &str); 3] = [
    (ResponseStep::Acknowledged, "dispatch_acknowledged"),
    (ResponseStep::OnScene, "dispatch_on_scene"),
    (ResponseStep::Cleared, "dispatch_cleared"),
];

/// The cases statistics are taken over: those recorded in `[from, to)`, in `province` if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// Start, included.
    pub from: DateTime<Utc>,
    /// End, excluded.
    pub to: DateTime<Utc>,
    /// Only this province.
    pub province: Option<String>,
    /// Only this county (with the province).
    pub county: Option<String>,
}

/// A step of the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseStep {
    /// The team acknowledged.
    Acknowledged,
    /// The team reached the scene.
    OnScene,
    /// The team cleared.
    Cleared,
}

/// The delay from intake to one step, over the cases that reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interval {
    /// Cases that reached the step.
    pub count: usize,
    /// Median delay.
    pub median: Duration,
    /// 90th percentile.
    pub p90: Duration,
}

/// One case's times, as the feed recorded them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseTimes {
    /// Its priority now.
    pub priority: Option<crate::domain::types::Priority>,
    /// When the case was recorded.
    pub recorded: Option<DateTime<Utc>>,
    /// The first time each step was reached.
    pub steps: HashMap<ResponseStep, DateTime<Utc>>,
}

/// Counts and response intervals over a period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statistics {
    /// Cases recorded in the period.
    pub total: u64,
    /// By line (storage name), largest first.
    pub by_line: Vec<(String, u64)>,
    /// By primary category.
    pub by_category: Vec<(String, u64)>,
    /// By current priority.
    pub by_priority: Vec<(String, u64)>,
    /// By current status.
    pub by_status: Vec<(String, u64)>,
    /// By province.
    pub by_province: Vec<(String, u64)>,
    /// Intake to acknowledgement.
    pub acknowledged: Interval,
    /// Intake to on scene.
    pub on_scene: Interval,
    /// Intake to cleared.
    pub cleared: Interval,
    /// Each P0 case's delay from intake to its team's first acknowledgement (`None` when no
    /// team acknowledged).
    pub p0_acknowledged: Vec<Option<Duration>>,
    /// The waits for a team that began in the period.
    pub team_queue: QueueFigures,
}

/// How cases waited for a mobile team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueFigures {
    /// Waits that began.
    pub waited: u64,
    /// Ended with a team sent.
    pub served: u64,
    /// Ended because the case was closed or lowered.
    pub withdrawn: u64,
    /// Not yet ended.
    pub waiting: u64,
    /// From a wait's start to its team, over the served waits.
    pub wait: Interval,
}

/// One wait for a team: when it began, and when and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitTimes {
    pub since: DateTime<Utc>,
    pub ended: Option<(DateTime<Utc>, crate::domain::queue::WaitEnd)>,
}

/// The queue's figures over `waits`.
pub fn queue_figures(waits: &[WaitTimes]) -> QueueFigures {
    use crate::domain::queue::WaitEnd;
    let mut figures = QueueFigures {
        waited: waits.len() as u64,
        ..QueueFigures::default()
    };
    let mut served = Vec::new();
    for wait in waits {
        match wait.ended {
            Some((at, WaitEnd::Team)) => {
                served.push((at - wait.since).to_std().unwrap_or(Duration::ZERO))
            }
            Some(_) => figures.withdrawn += 1,
            None => figures.waiting += 1,
        }
    }
    served.sort_unstable();
    figures.served = served.len() as u64;
    figures.wait = Interval {
        count: served.len(),
        median: percentile(&served, 50),
        p90: percentile(&served, 90),
    };
    figures
}

/// Each P0 case's delay from intake to its team's first acknowledgement, `None` when no team
/// acknowledged (cases whose intake event is missing are left out).
pub fn p0_acknowledgements(times: &HashMap<Uuid, CaseTimes>) -> Vec<Option<Duration>> {
    times
        .values()
        .filter(|case| case.priority == Some(crate::domain::types::Priority::P0Immediate))
        .filter_map(|case| {
            let recorded = case.recorded?;
            Some(
                case.steps
                    .get(&ResponseStep::Acknowledged)
                    .map(|at| (*at - recorded).to_std().unwrap_or(Duration::ZERO)),
            )
        })
        .collect()
}

/// Of `delays`, how many are within `target`: (cases, met).
pub fn within_target(delays: &[Option<Duration>], target: Duration) -> (usize, usize) {
    let met = delays
        .iter()
        .filter(|d| d.is_some_and(|d| d <= target))
        .count();
    (delays.len(), met)
}

/// The `p`-th percentile (0 < p ≤ 100) of `sorted` by nearest rank.
pub fn percentile(sorted: &[Duration], p: u32) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (u64::from(p) * sorted.len() as u64).div_ceil(100).max(1) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// The intervals of every case, step by step.
pub fn intervals(times: &HashMap<Uuid, CaseTimes>) -> HashMap<ResponseStep, Interval> {
    let mut delays: HashMap<ResponseStep, Vec<Duration>> = HashMap::new();
    for case in times.values() {
        let Some(recorded) = case.recorded else {
            continue;
        };
        for (step, at) in &case.steps {
            // A clock that disagreed cannot make a response faster than instant.
            let delay = (*at - recorded).to_std().unwrap_or(Duration::ZERO);
            delays.entry(*step).or_default().push(delay);
        }
    }
    delays
        .into_iter()
        .map(|(step, mut list)| {
            list.sort_unstable();
            let interval = Interval {
                count: list.len(),
                median: percentile(&list, 50),
                p90: percentile(&list, 90),
            };
            (step, interval)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(list: &[u64]) -> Vec<Duration> {
        list.iter().map(|m| Duration::from_secs(m * 60)).collect()
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let ten = minutes(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        // (values, percentile, expected minutes)
        let table: [(&[Duration], u32, u64); 7] = [
            (&ten, 50, 5),
            (&ten, 90, 9),
            (&ten, 100, 10),
            (&ten[..1], 50, 1),
            (&ten[..1], 90, 1),
            (&ten[..3], 50, 2),
            (&ten[..3], 90, 3),
        ];
        for (values, p, expected) in table {
            assert_eq!(
                percentile(values, p),
                Duration::from_secs(expected * 60),
                "p{p} of {}",
                values.len()
            );
        }
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }

    #[test]
    fn p0_cases_meet_the_target_when_a_team_acknowledged_within_it() {
        use crate::domain::types::Priority;
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let at = |m: i64| t0 + chrono::Duration::minutes(m);
        let case = |priority, ack: Option<i64>| CaseTimes {
            priority: Some(priority),
            recorded: Some(t0),
            steps: ack
                .map(|m| HashMap::from([(ResponseStep::Acknowledged, at(m))]))
                .unwrap_or_default(),
        };
        let times: HashMap<Uuid, CaseTimes> = [
            case(Priority::P0Immediate, Some(2)),
            case(Priority::P0Immediate, Some(3)),
            case(Priority::P0Immediate, Some(5)),
            case(Priority::P0Immediate, None),
            case(Priority::P1Urgent, Some(1)),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, c)| (Uuid::from_u128(i as u128), c))
        .collect();
        let delays = p0_acknowledgements(&times);
        assert_eq!(delays.len(), 4, "P0 cases only");
        assert_eq!(within_target(&delays, Duration::from_secs(180)), (4, 2));
        assert_eq!(within_target(&[], Duration::from_secs(180)), (0, 0));
    }

    #[test]
    fn the_queue_counts_each_wait_once_and_times_only_those_a_team_ended() {
        use crate::domain::queue::WaitEnd;
        let at = |minute: i64| DateTime::<Utc>::from_timestamp(minute * 60, 0).unwrap();
        let waits = [
            WaitTimes {
                since: at(0),
                ended: Some((at(4), WaitEnd::Team)),
            },
            WaitTimes {
                since: at(1),
                ended: Some((at(11), WaitEnd::Team)),
            },
            WaitTimes {
                since: at(2),
                ended: Some((at(3), WaitEnd::Closed)),
            },
            WaitTimes {
                since: at(5),
                ended: None,
            },
        ];
        let figures = queue_figures(&waits);
        assert_eq!(
            (
                figures.waited,
                figures.served,
                figures.withdrawn,
                figures.waiting
            ),
            (4, 2, 1, 1)
        );
        assert_eq!(figures.wait.count, 2);
        assert_eq!(figures.wait.median, Duration::from_secs(4 * 60));
        assert_eq!(figures.wait.p90, Duration::from_secs(10 * 60));
    }

    #[test]
    fn intervals_run_from_intake_to_each_step_over_the_cases_that_reached_it() {
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let at = |m: i64| t0 + chrono::Duration::minutes(m);
        let mut times = HashMap::new();
        for (i, (ack, scene)) in [(2, Some(20)), (4, Some(40)), (6, None)].iter().enumerate() {
            let mut steps = HashMap::from([(ResponseStep::Acknowledged, at(*ack))]);
            if let Some(scene) = scene {
                steps.insert(ResponseStep::OnScene, at(*scene));
            }
            times.insert(
                Uuid::from_u128(i as u128),
                CaseTimes {
                    priority: None,
                    recorded: Some(t0),
                    steps,
                },
            );
        }
        // A case whose intake event is missing is left out rather than guessed.
        times.insert(
            Uuid::from_u128(99),
            CaseTimes {
                priority: None,
                recorded: None,
                steps: HashMap::from([(ResponseStep::Acknowledged, at(1))]),
            },
        );
        let result = intervals(&times);
        let ack = result[&ResponseStep::Acknowledged];
        assert_eq!(ack.count, 3);
        assert_eq!(ack.median, Duration::from_secs(4 * 60));
        assert_eq!(ack.p90, Duration::from_secs(6 * 60));
        let scene = result[&ResponseStep::OnScene];
        assert_eq!(
            (scene.count, scene.median),
            (2, Duration::from_secs(20 * 60))
        );
        assert_eq!(scene.p90, Duration::from_secs(40 * 60));
        assert!(!result.contains_key(&ResponseStep::Cleared));
    }
}
