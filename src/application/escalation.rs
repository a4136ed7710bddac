//! Deadline escalation: a task that looks for timers whose deadline has passed, by the
//! service's clock, and hands each to the writer as a breach. The breach is one transaction: the
//! timer is marked breached, an event says so, and the case is escalated (a silent team or
//! centre is called off and the case routed to the next candidate, or the province's
//! supervisors are alerted through the feed).
//!
//! Timers live in the database, so a deadline that passes while the service is down is handled
//! when it starts again. Several servers may race for one timer; the transaction that marks it
//! breached first wins and the others' changes are refused and dropped.

use std::sync::Arc;
use std::time::Duration;

use strum::VariantArray;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::writer::Writer;
use crate::clock::Clock;
use crate::domain::Error;
use crate::domain::change::{Actor, CaseChange, Change};
use crate::domain::requester::Requester;
use crate::domain::sla::SlaKind;
use crate::store::Store;

/// Timers handled per round.
const ROUND: u32 = 100;

/// The running escalation task.
pub struct Escalation {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Escalation {
    /// Starts checking deadlines every `interval` against `clock`; with `measure`, each round
    /// also sets the deadline and pool gauges (a count the database makes only when metrics are
    /// served).
    pub fn spawn(
        store: Arc<dyn Store>,
        writer: Writer,
        clock: Clock,
        interval: Duration,
        measure: bool,
    ) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let gauges = || async {
                if measure && let Err(error) = set_gauges(store.as_ref(), &clock).await {
                    tracing::debug!(%error, "cannot count the open deadlines");
                }
            };
            gauges().await;
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(interval) => {}
                }
                if let Err(error) = escalate_due(store.as_ref(), &writer, &clock).await {
                    tracing::warn!(%error, "cannot check deadlines; retrying");
                }
                gauges().await;
            }
        });
        Self { stop, task }
    }

    /// Stops the task.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Handles every timer due now.
pub async fn escalate_due(store: &dyn Store, writer: &Writer, clock: &Clock) -> Result<(), Error> {
    loop {
        let now = clock.now();
        let due = store.due_timers(now, ROUND).await?;
        let full = due.len() == ROUND as usize;
        for timer_id in due {
            let breach = CaseChange {
                change: Change::SlaBreach { timer_id },
                expected_version: None,
                actor: Actor::system("sla"),
                requester: Requester::service("sla", "sla_breach"),
                at: now,
                key: None,
                occurred_at: None,
            };
            match writer.change_case(breach).await {
                Ok(outcome) => {
                    if let Some(kind) = outcome.breached {
                        metrics::counter!(crate::metrics::DEADLINES_BREACHED, "kind" => kind.as_str())
                            .increment(1);
                    }
                    tracing::info!(
                        case_id = %outcome.case_id,
                        %timer_id,
                        rerouted = outcome.reroute.is_some(),
                        "deadline missed; case escalated"
                    )
                }
                // Met, cancelled or handled by another server in the meantime.
                Err(Error::FailedPrecondition(_)) => {}
                Err(error) => return Err(error),
            }
        }
        if !full {
            return Ok(());
        }
    }
}

/// Sets the gauges of the deadlines running and of the database pool.
async fn set_gauges(store: &dyn Store, clock: &Clock) -> Result<(), Error> {
    let pool = store.pool_use();
    let in_use = pool.open.saturating_sub(pool.idle);
    metrics::gauge!(crate::metrics::DB_CONNECTIONS, "state" => "in_use").set(f64::from(in_use));
    metrics::gauge!(crate::metrics::DB_CONNECTIONS, "state" => "idle").set(f64::from(pool.idle));
    metrics::gauge!(crate::metrics::DB_CONNECTIONS_MAX).set(f64::from(pool.max));
    let open = store.open_deadlines(clock.now()).await?;
    for &kind in SlaKind::VARIANTS {
        let counts = open.iter().find(|d| d.kind == kind.as_str());
        let (running, overdue) = counts.map_or((0, 0), |d| (d.open, d.overdue));
        let label = kind.as_str();
        metrics::gauge!(crate::metrics::DEADLINES_OPEN, "kind" => label, "overdue" => "false")
            .set((running - overdue) as f64);
        metrics::gauge!(crate::metrics::DEADLINES_OPEN, "kind" => label, "overdue" => "true")
            .set(overdue as f64);
    }
    Ok(())
}
