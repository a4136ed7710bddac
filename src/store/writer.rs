//! The group-commit writer: concurrent intakes wait in a bounded queue, and one task commits
//! whatever has gathered as a single transaction, answering each intake only after that commit.
//!
//! One fsync then covers many intakes, which is where a durable service's throughput comes from.
//! The writer also owns the routing state: it routes each new case inside the transaction that
//! records it, and keeps its copy of the directory in step with the dispatches it commits, so
//! two cases of one batch never take the same free team.
//! A batch that fails as a whole is retried one intake at a time, so one bad intake never fails
//! the others. Two intakes with the same request id never share a batch: the later one waits for
//! the next batch and then finds the first one's key, so a retry storm still creates one case.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{IntakeOutcome, Store};
use crate::domain::Error;
use crate::domain::intake::NewIntake;
use crate::domain::types::Line;
use crate::routing::directory::{Directory, TeamState};
use crate::routing::policy::Policy;
use crate::routing::{self, Decision, Destination, RoutingRequest};

/// What the writer routes with.
pub struct RoutingState {
    /// The policy in force.
    pub policy: Arc<Policy>,
    /// The writer's copy of the directory.
    pub directory: Directory,
}

impl RoutingState {
    /// Routes a new case and marks the teams it dispatches busy, noting how they were before.
    fn route(&mut self, intake: &NewIntake, undo: &mut Vec<TeamState>) -> Decision {
        let request = RoutingRequest::from_intake(intake, intake.received_at);
        let decision = routing::route(&self.policy, &self.directory, &request);
        for assignment in decision.assignments() {
            if let Destination::Team { id, .. } = &assignment.destination
                && let Some(before) = self.directory.assign_team(id)
            {
                undo.push(before);
            }
        }
        decision
    }

    /// Puts the teams back as they were before an uncommitted batch.
    fn undo(&mut self, undo: Vec<TeamState>) {
        for state in undo.into_iter().rev() {
            self.directory.restore_team(state);
        }
    }
}

/// How the writer batches and pushes back.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Most intakes waiting for the writer; past that, submitters wait.
    pub queue_capacity: usize,
    /// Most intakes in one transaction.
    pub max_batch: usize,
    /// How long a submitter waits for room in a full queue before it is told to retry.
    pub queue_timeout: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 4096,
            max_batch: 256,
            queue_timeout: Duration::from_secs(2),
        }
    }
}

struct Job {
    intake: NewIntake,
    reply: oneshot::Sender<Result<IntakeOutcome, Error>>,
}

impl Job {
    fn key(&self) -> (Line, &str) {
        (self.intake.line(), self.intake.request_id.as_str())
    }
}

/// The submitting side of the writer. Cloning it shares the queue.
#[derive(Clone)]
pub struct IntakeWriter {
    queue: mpsc::Sender<Job>,
    queue_timeout: Duration,
}

impl IntakeWriter {
    /// Starts the writer task over `store`, routing with `routing`.
    pub fn spawn(
        store: Arc<dyn Store>,
        routing: RoutingState,
        config: WriterConfig,
    ) -> (Self, WriterHandle) {
        let (queue, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let (stop, stop_signal) = oneshot::channel();
        let task = tokio::spawn(run(
            store,
            routing,
            receiver,
            stop_signal,
            config.max_batch.max(1),
        ));
        (
            Self {
                queue,
                queue_timeout: config.queue_timeout,
            },
            WriterHandle { stop, task },
        )
    }

    /// Queues an intake and waits until it is committed (or found to be a retry).
    ///
    /// Once queued, the intake is committed even if the caller stops waiting; a client that
    /// retries with the same request id then gets the original receipt.
    pub async fn submit(&self, intake: NewIntake) -> Result<IntakeOutcome, Error> {
        let (reply, answer) = oneshot::channel();
        match tokio::time::timeout(self.queue_timeout, self.queue.send(Job { intake, reply })).await
        {
            Err(_) => return Err(Error::Overloaded("intake queue is full; retry shortly")),
            Ok(Err(_)) => return Err(Error::Overloaded("the service is shutting down")),
            Ok(Ok(())) => {}
        }
        answer
            .await
            .map_err(|_| Error::internal("the intake writer stopped before answering"))?
    }
}

/// Stops the writer.
pub struct WriterHandle {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl WriterHandle {
    /// Closes the queue (later submissions are refused), commits everything already queued and
    /// waits for the writer to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        if self.task.await.is_err() {
            tracing::error!("intake writer panicked");
        }
    }
}

async fn run(
    store: Arc<dyn Store>,
    mut routing: RoutingState,
    mut receiver: mpsc::Receiver<Job>,
    mut stop: oneshot::Receiver<()>,
    max_batch: usize,
) {
    let mut pending: VecDeque<Job> = VecDeque::new();
    let mut stopping = false;
    loop {
        if pending.is_empty() {
            tokio::select! {
                job = receiver.recv() => match job {
                    Some(job) => pending.push_back(job),
                    // Closed and drained, or every submitter is gone.
                    None => break,
                },
                _ = &mut stop, if !stopping => {
                    // Refuse new intakes but keep what is queued: recv() drains it, then ends.
                    receiver.close();
                    stopping = true;
                    continue;
                }
            }
        }
        while pending.len() < max_batch {
            match receiver.try_recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => break,
            }
        }
        let batch = take_batch(&mut pending, max_batch);
        commit(store.as_ref(), &mut routing, batch).await;
    }
    tracing::debug!("intake writer stopped");
}

/// Takes up to `max` jobs with distinct keys from the front of the queue, keeping the order of
/// those left behind.
fn take_batch(pending: &mut VecDeque<Job>, max: usize) -> Vec<Job> {
    let mut batch = Vec::new();
    let mut rest = VecDeque::new();
    let mut keys = HashSet::new();
    for job in pending.drain(..) {
        if batch.len() < max && keys.insert((job.key().0, job.key().1.to_owned())) {
            batch.push(job);
        } else {
            rest.push_back(job);
        }
    }
    *pending = rest;
    batch
}

/// Records intakes in one transaction, routing the new ones; on failure the writer's directory
/// is put back as it was.
async fn record(
    store: &dyn Store,
    routing: &mut RoutingState,
    intakes: &[NewIntake],
) -> Result<Vec<IntakeOutcome>, Error> {
    let mut undo = Vec::new();
    let result = store
        .record_intakes(intakes, &mut |intake| routing.route(intake, &mut undo))
        .await;
    if result.is_err() {
        routing.undo(undo);
    }
    result
}

async fn commit(store: &dyn Store, routing: &mut RoutingState, batch: Vec<Job>) {
    let intakes: Vec<NewIntake> = batch.iter().map(|job| job.intake.clone()).collect();
    match record(store, routing, &intakes).await {
        Ok(outcomes) => {
            for (job, outcome) in batch.into_iter().zip(outcomes) {
                let _ = job.reply.send(Ok(outcome));
            }
        }
        Err(error @ Error::Unavailable(_)) => {
            tracing::warn!(batch = batch.len(), error = %error, "intake batch not written: database unavailable");
            for job in batch {
                let _ = job
                    .reply
                    .send(Err(Error::Unavailable("database unavailable".into())));
            }
        }
        Err(error) if batch.len() > 1 => {
            tracing::warn!(batch = batch.len(), error = %error, "intake batch failed; retrying one by one");
            for job in batch {
                let outcome = record(store, routing, std::slice::from_ref(&job.intake))
                    .await
                    .and_then(|mut outcomes| {
                        outcomes
                            .pop()
                            .ok_or_else(|| Error::internal("store returned no outcome"))
                    });
                let _ = job.reply.send(outcome);
            }
        }
        Err(error) => {
            for job in batch {
                let _ = job.reply.send(Err(Error::internal(error.to_string())));
            }
        }
    }
}
