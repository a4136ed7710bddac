//! The group-commit writer: concurrent intakes wait in a bounded queue, and one task commits
//! whatever has gathered as a single transaction, answering each intake only after that commit.
//!
//! One fsync then covers many intakes, which is where a durable service's throughput comes from.
//! A batch that fails as a whole is retried one intake at a time, so one bad intake never fails
//! the others. Two intakes with the same request id never share a batch: the later one waits for
//! the next batch and then finds the first one's key, so a retry storm still creates one case.
//!
//! The writer also owns the routing state. It routes each new case inside the transaction that
//! records it and keeps the directory in step with the dispatches it commits, so two cases never
//! take the same free team. Policy replacements and directory updates go through the same queue
//! and are applied between batches, so no case is ever routed by a half-applied change.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::domain::Error;
use crate::domain::change::{CaseChange, ChangeKey};
use crate::domain::decision::{Destination, DutyStatus};
use crate::domain::intake::NewIntake;
use crate::domain::plan::Routed;
use crate::domain::plan::change::{ChangePlan, RerouteAsk, Rerouted, plan_change};
use crate::domain::plan::intake::plan_intakes;
use crate::domain::queue::TeamOffer;
use crate::domain::sla::SlaTargets;
use crate::domain::types::Line;
use crate::routing::crisis::{self, Crises, CrisisRequest};
use crate::routing::directory::{Directory, DirectoryData, DirectoryUpdate, Taken, TeamState};
use crate::routing::policy::{Policy, PolicyDocument};
use crate::routing::{self, RoutingRequest};
use crate::store::{ChangeOutcome, CrisisOutcome, DATABASE_WAIT, IntakeOutcome, Store};

/// What the writer routes with.
pub struct RoutingState {
    /// The policy in force.
    pub policy: Arc<Policy>,
    /// The directory, with the live state the writer keeps.
    pub directory: Directory,
    /// Every crisis declaration, ended ones too.
    pub crises: Crises,
}

impl RoutingState {
    /// Raises an intake's priority where a crisis in force in its province says to.
    fn raise(&self, intake: &mut NewIntake) {
        self.crises
            .in_force(&intake.intake.location.province, intake.received_at)
            .raise(intake);
    }

    /// Routes a new case and takes what it sends the case to: each team busy, a place held at
    /// each service point; `undo` notes what was taken. The crises in force in the incident's
    /// province at the intake's time take part, and their deadline targets replace `targets`.
    fn route(&mut self, intake: &NewIntake, targets: &SlaTargets, undo: &mut Vec<Taken>) -> Routed {
        let request = RoutingRequest::from_intake(intake, intake.received_at);
        let crises = self.crises.in_force(&request.province, request.at);
        let decision = routing::route_in(
            &self.policy,
            &crises,
            &self.directory,
            &request,
            &HashSet::new(),
        );
        let targets = crises.targets(targets);
        for assignment in decision.assignments() {
            self.take(&assignment.destination, undo);
        }
        Routed { decision, targets }
    }

    /// Routes a case again for a change (a destination turned it down, or a call centre asked)
    /// and takes what it sends the case to.
    fn reroute(
        &mut self,
        ask: &RerouteAsk<'_>,
        targets: &SlaTargets,
        undo: &mut Vec<Taken>,
    ) -> Rerouted {
        let request = RoutingRequest::for_case(ask.intake, ask.line, ask.priority, ask.at);
        let crises = self.crises.in_force(&request.province, request.at);
        let found = routing::reroute(
            &self.directory,
            &crises,
            &request,
            ask.action,
            ask.tried,
            ask.only,
            ask.may_wait,
        );
        let rerouted = Rerouted {
            crises: crises.references(),
            targets: crises.targets(targets),
            found,
        };
        if let Some(destination) = &rerouted.found.destination {
            self.take(destination, undo);
        }
        rerouted
    }

    fn take(&mut self, destination: &Destination, undo: &mut Vec<Taken>) {
        let taken = match destination {
            Destination::Team { id, .. } => self.directory.assign_team(id).map(Taken::Team),
            Destination::ServicePoint { id, .. } => self.directory.reserve_place(id),
        };
        undo.extend(taken);
    }

    /// Frees, in memory, the team a change's plan released, noting how it stood for `undo`;
    /// names the provinces whose waiting cases the freed team is offered to.
    fn release(&mut self, plan: &mut ChangePlan, undo: &mut Vec<Taken>) {
        let Some(team) = &plan.outcome.released_team else {
            return;
        };
        if let Some(before) = self.directory.team(&team.team_id) {
            undo.push(Taken::Team(TeamState {
                team_id: before.id.clone(),
                status: before.status,
                load: before.load,
            }));
        }
        self.directory.restore_team(TeamState {
            team_id: team.team_id.clone(),
            status: team.status,
            load: team.load,
        });
        if let Some(offer) = &mut plan.offer {
            offer.provinces = self
                .directory
                .team(&offer.team_id)
                .map(|t| self.directory.provinces_reaching(&t.province))
                .unwrap_or_default();
        }
    }

    /// Puts back what an uncommitted write took.
    fn undo(&mut self, undo: Vec<Taken>) {
        for taken in undo.into_iter().rev() {
            self.directory.restore(taken);
        }
    }
}

/// The routing state, shared between the writer (the only one that changes it) and the readers
/// of the directory and the policy.
#[derive(Clone)]
pub struct SharedRouting(Arc<RwLock<RoutingState>>);

impl SharedRouting {
    /// Shares `state`.
    pub fn new(state: RoutingState) -> Self {
        Self(Arc::new(RwLock::new(state)))
    }

    /// Reads the state. A reader never waits for a transaction: the writer holds the lock only
    /// while it routes one case or applies one change in memory.
    pub fn read(&self) -> RwLockReadGuard<'_, RoutingState> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, RoutingState> {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How the writer batches and pushes back.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Most intakes waiting for the writer; past that, submitters wait.
    pub queue_capacity: usize,
    /// Most intakes in one transaction.
    pub max_batch: usize,
    /// How long a submitter waits for room in a full queue before it is told to retry.
    pub queue_timeout: Duration,
    /// The deadlines the cases' timers are set by.
    pub targets: SlaTargets,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 4096,
            max_batch: 256,
            queue_timeout: Duration::from_secs(2),
            targets: SlaTargets::default(),
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// How long an administrator's policy or directory change waits for its commit.
const ADMIN_WAIT: Duration = Duration::from_secs(60);

enum Command {
    Intake {
        intake: Box<NewIntake>,
        reply: Reply<IntakeOutcome>,
    },
    ReplacePolicy {
        document: PolicyDocument,
        expected_version: Option<i64>,
        reply: Reply<i64>,
    },
    UpdateDirectory {
        update: DirectoryUpdate,
        /// The caller's key for the update, when it sent one.
        key: Option<(String, ChangeKey)>,
        at: DateTime<Utc>,
        reply: Reply<()>,
    },
    UpsertDirectory {
        entries: DirectoryData,
        field: &'static str,
        reply: Reply<()>,
    },
    Change {
        change: Box<CaseChange>,
        reply: Reply<ChangeOutcome>,
    },
    Crisis {
        request: Box<CrisisRequest>,
        reply: Reply<CrisisOutcome>,
    },
}

impl Command {
    fn intake_key(&self) -> Option<(Line, &str)> {
        match self {
            Self::Intake { intake, .. } => Some((intake.line(), intake.request_id.as_str())),
            _ => None,
        }
    }
}

/// The submitting side of the writer. Cloning it shares the queue.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Command>,
    queue_timeout: Duration,
    /// The deadline targets, for readers (statistics judge cases by them).
    targets: SlaTargets,
    routing: SharedRouting,
    full: Arc<crate::telemetry::RefusalCount>,
    /// Asked whether the database is reachable before anything is queued.
    store: Arc<dyn Store>,
}

impl Writer {
    /// Starts the writer task over `store`, routing with `routing`.
    pub fn spawn(
        store: Arc<dyn Store>,
        routing: RoutingState,
        config: WriterConfig,
        committed: Arc<Notify>,
    ) -> (Self, WriterHandle) {
        let (queue, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let (stop, stop_signal) = oneshot::channel();
        let routing = SharedRouting::new(routing);
        let task = tokio::spawn(run(
            store.clone(),
            routing.clone(),
            receiver,
            stop_signal,
            config.max_batch.max(1),
            committed,
            config.targets.clone(),
        ));
        (
            Self {
                queue,
                queue_timeout: config.queue_timeout,
                targets: config.targets,
                routing,
                full: Arc::new(crate::telemetry::RefusalCount::new(
                    "the write queue is full",
                )),
                store,
            },
            WriterHandle { stop, task },
        )
    }

    /// The routing state, for readers.
    pub fn routing(&self) -> &SharedRouting {
        &self.routing
    }

    /// The deadline targets this deployment runs with.
    pub fn targets(&self) -> &SlaTargets {
        &self.targets
    }

    /// Queues a command and waits for its answer, at most [`DATABASE_WAIT`] once queued: a
    /// commit that takes longer (a stalled database) is answered UNAVAILABLE, and stands if it
    /// completes later. While the database is known to be unreachable nothing is queued.
    async fn send<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, Error> {
        self.send_within(DATABASE_WAIT, command).await
    }

    /// As [`Writer::send`], waiting up to `wait` for the answer (an administrator's policy or
    /// directory change, which may be large, waits longer).
    async fn send_within<T>(
        &self,
        wait: Duration,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, Error> {
        if !self.store.reachable() {
            return Err(Error::Unavailable(
                "the database is unreachable (the health check's write does not complete)".into(),
            ));
        }
        let (reply, answer) = oneshot::channel();
        match tokio::time::timeout(self.queue_timeout, self.queue.send(command(reply))).await {
            Err(_) => {
                self.full.count();
                return Err(Error::Overloaded("the write queue is full; retry shortly"));
            }
            Ok(Err(_)) => return Err(Error::Overloaded("the service is shutting down")),
            Ok(Ok(())) => {}
        }
        metrics::gauge!(crate::metrics::INTAKE_QUEUE_DEPTH)
            .set((self.queue.max_capacity() - self.queue.capacity()) as f64);
        match tokio::time::timeout(wait, answer).await {
            Ok(answer) => {
                answer.map_err(|_| Error::internal("the writer stopped before answering"))?
            }
            Err(_) => Err(Error::Unavailable(
                format!(
                    "the database did not confirm the write within {} s; it stands if it \
                     completes: retry with the same request id",
                    wait.as_secs()
                )
                .into(),
            )),
        }
    }

    /// Queues an intake and waits until it is committed (or found to be a retry).
    ///
    /// Once queued, the intake is committed even if the caller stops waiting; a client that
    /// retries with the same request id then gets the original receipt.
    pub async fn submit(&self, intake: NewIntake) -> Result<IntakeOutcome, Error> {
        self.send(|reply| Command::Intake {
            intake: Box::new(intake),
            reply,
        })
        .await
    }

    /// Stores `document` as the next policy version and puts it in force for every case routed
    /// after it; refused with [`Error::Stale`] when `expected_version` is not the version in
    /// force.
    pub async fn replace_policy(
        &self,
        document: PolicyDocument,
        expected_version: Option<i64>,
    ) -> Result<i64, Error> {
        self.send_within(ADMIN_WAIT, |reply| Command::ReplacePolicy {
            document,
            expected_version,
            reply,
        })
        .await
    }

    /// Adds or updates directory entries. Refused, naming `field`, when the directory they
    /// would make is inconsistent (an unknown county, a repeated id).
    pub async fn upsert_directory(
        &self,
        entries: DirectoryData,
        field: &'static str,
    ) -> Result<(), Error> {
        self.send_within(ADMIN_WAIT, |reply| Command::UpsertDirectory {
            entries,
            field,
            reply,
        })
        .await
    }

    /// Applies a change to a case and waits until it is committed. A rejected referral or a
    /// declined dispatch is routed again in the same transaction, and a team freed by its
    /// dispatch becomes available to the next case.
    pub async fn change_case(&self, change: CaseChange) -> Result<ChangeOutcome, Error> {
        self.send(|reply| Command::Change {
            change: Box::new(change),
            reply,
        })
        .await
    }

    /// Declares, changes or ends a crisis; every case routed after the answer is routed with
    /// it as it now stands.
    pub async fn crisis(&self, request: CrisisRequest) -> Result<CrisisOutcome, Error> {
        self.send(|reply| Command::Crisis {
            request: Box::new(request),
            reply,
        })
        .await
    }

    /// Records an owner's change to the directory's live state, made at `at`. A team reported
    /// available is then offered to the cases waiting for one.
    pub async fn update_directory(
        &self,
        update: DirectoryUpdate,
        key: Option<(String, ChangeKey)>,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.send(|reply| Command::UpdateDirectory {
            update,
            key,
            at,
            reply,
        })
        .await
    }
}

/// Stops the writer.
pub struct WriterHandle {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl WriterHandle {
    /// Closes the queue (later submissions are refused), carries out everything already queued
    /// and waits for the writer to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        if self.task.await.is_err() {
            tracing::error!("writer panicked");
        }
    }
}

async fn run(
    store: Arc<dyn Store>,
    routing: SharedRouting,
    mut receiver: mpsc::Receiver<Command>,
    mut stop: oneshot::Receiver<()>,
    max_batch: usize,
    committed: Arc<Notify>,
    targets: SlaTargets,
) {
    let mut pending: VecDeque<Command> = VecDeque::new();
    let mut stopping = false;
    loop {
        if pending.is_empty() {
            tokio::select! {
                command = receiver.recv() => match command {
                    Some(command) => pending.push_back(command),
                    // Closed and drained, or every submitter is gone.
                    None => break,
                },
                _ = &mut stop, if !stopping => {
                    // Refuse new work but keep what is queued: recv() drains it, then ends.
                    receiver.close();
                    stopping = true;
                    continue;
                }
            }
        }
        while pending.len() < max_batch {
            match receiver.try_recv() {
                Ok(command) => pending.push_back(command),
                Err(_) => break,
            }
        }
        match pending.front() {
            Some(Command::Intake { .. }) => {
                let batch = take_batch(&mut pending, max_batch);
                commit(store.as_ref(), &routing, batch, &targets).await;
            }
            Some(_) => {
                if let Some(command) = pending.pop_front() {
                    apply(store.as_ref(), &routing, command, &targets).await;
                }
            }
            None => {}
        }
        // The feed reads what was just committed (a failed write pokes it for nothing).
        committed.notify_one();
    }
    tracing::debug!("writer stopped");
}

/// Takes up to `max` intakes with distinct keys from the front of the queue, up to the first
/// other command, keeping the order of everything left behind.
fn take_batch(
    pending: &mut VecDeque<Command>,
    max: usize,
) -> Vec<(NewIntake, Reply<IntakeOutcome>)> {
    let mut batch = Vec::new();
    let mut rest = VecDeque::new();
    let mut keys = HashSet::new();
    let mut open = true;
    for command in pending.drain(..) {
        let fits = open
            && batch.len() < max
            && command
                .intake_key()
                .is_some_and(|(line, id)| keys.insert((line, id.to_owned())));
        match command {
            Command::Intake { intake, reply } if fits => batch.push((*intake, reply)),
            other => {
                // A policy or directory change closes the batch: what comes after it is
                // routed with the change applied.
                if other.intake_key().is_none() {
                    open = false;
                }
                rest.push_back(other);
            }
        }
    }
    *pending = rest;
    batch
}

/// Records intakes in one transaction, planned with this server's routing; on failure the
/// directory is put back as it was.
async fn record(
    store: &dyn Store,
    routing: &SharedRouting,
    intakes: &[NewIntake],
    targets: &SlaTargets,
) -> Result<Vec<IntakeOutcome>, Error> {
    let mut reloads = Reloads::default();
    loop {
        let mut undo = Vec::new();
        let result = store
            .record_intakes(intakes, &mut |batch, load| {
                let mut route =
                    |intake: &NewIntake| routing.write().route(intake, targets, &mut undo);
                plan_intakes(batch, load, &mut route, targets)
            })
            .await;
        if let Some(outcomes) = reloads.settle(store, routing, undo, result).await? {
            return Ok(outcomes);
        }
    }
}

async fn commit(
    store: &dyn Store,
    routing: &SharedRouting,
    batch: Vec<(NewIntake, Reply<IntakeOutcome>)>,
    targets: &SlaTargets,
) {
    let (mut intakes, replies): (Vec<NewIntake>, Vec<Reply<IntakeOutcome>>) =
        batch.into_iter().unzip();
    {
        let state = routing.read();
        for intake in &mut intakes {
            state.raise(intake);
        }
    }
    metrics::histogram!(crate::metrics::INTAKE_BATCH_SIZE).record(intakes.len() as f64);
    let started = std::time::Instant::now();
    let recorded = record(store, routing, &intakes, targets).await;
    metrics::histogram!(crate::metrics::INTAKE_COMMIT_SECONDS)
        .record(started.elapsed().as_secs_f64());
    match recorded {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(error @ Error::Unavailable(_)) => {
            tracing::warn!(batch = intakes.len(), error = %error, "intake batch not written: database unavailable");
            for reply in replies {
                let _ = reply.send(Err(Error::Unavailable("database unavailable".into())));
            }
        }
        Err(error) if intakes.len() > 1 => {
            tracing::warn!(batch = intakes.len(), error = %error, "intake batch failed; retrying one by one");
            for (intake, reply) in intakes.iter().zip(replies) {
                let outcome = record(store, routing, std::slice::from_ref(intake), targets)
                    .await
                    .and_then(|mut outcomes| {
                        outcomes
                            .pop()
                            .ok_or_else(|| Error::internal("store returned no outcome"))
                    });
                let _ = reply.send(outcome);
            }
        }
        Err(error) => {
            for reply in replies {
                let _ = reply.send(Err(Error::internal(error.to_string())));
            }
        }
    }
}

/// Carries out a policy or directory change: in the database first, then in memory.
async fn apply(store: &dyn Store, routing: &SharedRouting, command: Command, targets: &SlaTargets) {
    match command {
        Command::ReplacePolicy {
            document,
            expected_version,
            reply,
        } => {
            let result = async {
                let mut reloads = Reloads::default();
                let version = loop {
                    let result = store.store_policy(&document, expected_version).await;
                    if let Some(version) =
                        reloads.settle(store, routing, Vec::new(), result).await?
                    {
                        break version;
                    }
                };
                let policy = Policy::new(document, version).map_err(|e| {
                    Error::internal(format!("a checked policy failed its check: {e}"))
                })?;
                routing.write().policy = Arc::new(policy);
                tracing::info!(policy_version = version, "routing policy replaced");
                Ok(version)
            }
            .await;
            let _ = reply.send(result);
        }
        Command::UpdateDirectory {
            update,
            key,
            at,
            reply,
        } => {
            let result = async {
                let mut reloads = Reloads::default();
                loop {
                    let result = store.update_directory(&update, key.as_ref()).await;
                    if let Some(changed) =
                        reloads.settle(store, routing, Vec::new(), result).await?
                    {
                        // A retry changed nothing: the first update is already in memory.
                        return Ok(changed);
                    }
                }
            }
            .await;
            if let Ok(true) = result {
                routing.write().directory.apply(&update);
            }
            let result = result.map(|_| ());
            if let (
                Ok(()),
                DirectoryUpdate::Team {
                    team_id,
                    status: DutyStatus::Available,
                    ..
                },
            ) = (&result, &update)
            {
                // The update is committed whatever comes of the offer; the answer waits for
                // it, so that the team's state it reports includes the case it was sent to.
                if let Err(error) = offer_team(store, routing, team_id, at, targets).await {
                    tracing::warn!(%team_id, %error, "a team reported available was not offered to the waiting cases");
                }
            }
            let _ = reply.send(result);
        }
        Command::UpsertDirectory {
            entries,
            field,
            reply,
        } => {
            let result = async {
                let mut reloads = Reloads::default();
                loop {
                    let mut merged = routing.read().directory.data().clone();
                    merged.merge(entries.clone());
                    let directory = Directory::new(merged).map_err(|refused| {
                        Error::InvalidArgument(
                            refused
                                .0
                                .into_iter()
                                .map(|problem| crate::domain::FieldViolation::new(field, problem))
                                .collect(),
                        )
                    })?;
                    let result = store.upsert_directory(&entries).await;
                    if reloads
                        .settle(store, routing, Vec::new(), result)
                        .await?
                        .is_some()
                    {
                        routing.write().directory = directory;
                        return Ok(());
                    }
                }
            }
            .await;
            let _ = reply.send(result);
        }
        Command::Change { change, reply } => {
            let result = change_case(store, routing, &change, targets).await;
            let _ = reply.send(result);
        }
        Command::Crisis { request, reply } => {
            let result = async {
                let mut reloads = Reloads::default();
                loop {
                    let result = store
                        .write_crisis(&request, &mut |request, current, same_area| {
                            crisis::plan(request, current, same_area)
                        })
                        .await;
                    if let Some(outcome) =
                        reloads.settle(store, routing, Vec::new(), result).await?
                    {
                        routing.write().crises.put(outcome.crisis.clone());
                        return Ok(outcome);
                    }
                }
            }
            .await;
            let _ = reply.send(result);
        }
        Command::Intake { mut intake, reply } => {
            routing.read().raise(&mut intake);
            let outcome = record(store, routing, std::slice::from_ref(&intake), targets)
                .await
                .and_then(|mut outcomes| {
                    outcomes
                        .pop()
                        .ok_or_else(|| Error::internal("store returned no outcome"))
                });
            let _ = reply.send(outcome);
        }
    }
}

/// Applies a change, planned with this server's routing.
async fn change_case(
    store: &dyn Store,
    routing: &SharedRouting,
    change: &CaseChange,
    targets: &SlaTargets,
) -> Result<ChangeOutcome, Error> {
    let mut reloads = Reloads::default();
    loop {
        let mut undo = Vec::new();
        let result = store
            .change_case(change, &mut |change, load| {
                let mut reroute =
                    |ask: &RerouteAsk<'_>| routing.write().reroute(ask, targets, &mut undo);
                let mut plan = plan_change(change, load, targets, &mut reroute)?;
                // The freed team is free in memory before the waiting cases are offered it;
                // if the write does not commit, `undo` puts it back.
                routing.write().release(&mut plan, &mut undo);
                Ok(plan)
            })
            .await;
        if let Some(outcome) = reloads.settle(store, routing, undo, result).await? {
            if let Some(point) = &outcome.released_place {
                routing.write().directory.release_place(point);
            }
            if let Some(case_id) = outcome.offered_to {
                tracing::info!(%case_id, "a freed team was sent to a case waiting for one");
            }
            return Ok(outcome);
        }
    }
}

/// Offers a team its crew reported available to the cases waiting for one (a transaction of
/// its own, right after the report's).
async fn offer_team(
    store: &dyn Store,
    routing: &SharedRouting,
    team_id: &str,
    at: DateTime<Utc>,
    targets: &SlaTargets,
) -> Result<(), Error> {
    let mut reloads = Reloads::default();
    loop {
        let offer = {
            let state = routing.read();
            match state.directory.team(team_id) {
                Some(team) if team.status == DutyStatus::Available => TeamOffer {
                    team_id: team_id.to_owned(),
                    provinces: state.directory.provinces_reaching(&team.province),
                },
                _ => return Ok(()),
            }
        };
        let mut undo = Vec::new();
        let result = store
            .offer_team(&offer, at, &mut |change, load| {
                let mut reroute =
                    |ask: &RerouteAsk<'_>| routing.write().reroute(ask, targets, &mut undo);
                plan_change(change, load, targets, &mut reroute)
            })
            .await;
        if let Some(outcome) = reloads.settle(store, routing, undo, result).await? {
            if let Some(outcome) = outcome {
                tracing::info!(case_id = %outcome.case_id, %team_id, "a team reported available was sent to a case waiting for one");
            }
            return Ok(());
        }
    }
}

/// How many times a write refused for a moved directory is retried on a fresh copy. Each retry
/// follows a reload, so only a directory that changes faster than it can be read runs out.
const RELOADS: u32 = 5;

/// Reads the directory again, after another server changed it.
async fn reload_directory(store: &dyn Store, routing: &SharedRouting) -> Result<(), Error> {
    let data = store.load_routing().await?;
    let directory = Directory::new(data.directory)
        .map_err(|e| Error::internal(format!("stored directory refused: {e}")))?;
    let policy = match data.policy {
        Some((version, document)) if version != routing.read().policy.version() => Some(
            Policy::new(document, version)
                .map_err(|e| Error::internal(format!("stored policy {version} refused: {e}")))?,
        ),
        _ => None,
    };
    let mut state = routing.write();
    state.directory = directory;
    state.crises = Crises::new(data.crises);
    if let Some(policy) = policy {
        tracing::info!(
            policy_version = policy.version(),
            "routing policy taken up from the database"
        );
        state.policy = Arc::new(policy);
    }
    tracing::debug!("directory reloaded: another server changed it");
    Ok(())
}

/// The one way a write made with this server's view of the directory is retried. When another
/// server moved the directory first, what the attempt took in memory (the teams it marked busy)
/// is put back, the directory read again and the write tried again, up to [`RELOADS`] times;
/// any other failure puts back what the attempt took and ends the write.
#[derive(Default)]
struct Reloads(u32);

impl Reloads {
    /// Settles one attempt: `Some` when the write is done, `None` to try it again.
    async fn settle<T>(
        &mut self,
        store: &dyn Store,
        routing: &SharedRouting,
        undo: Vec<Taken>,
        result: Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        match result {
            Ok(done) => Ok(Some(done)),
            Err(Error::DirectoryMoved) if self.0 < RELOADS => {
                routing.write().undo(undo);
                self.0 += 1;
                reload_directory(store, routing).await?;
                Ok(None)
            }
            Err(error) => {
                routing.write().undo(undo);
                Err(error)
            }
        }
    }
}
