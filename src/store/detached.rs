//! Runs each call's database work in a task of its own, so that a caller that stops waiting (a
//! client's deadline or cancel, a stream ended, shutdown) never drops a transaction half way.
//!
//! A future dropped between sending `BEGIN` and reading its answer leaves the connection inside
//! a transaction that the driver does not know about (sqlx 0.9 raises its transaction depth only
//! after the answer, so its drop guard queues no rollback): the connection goes back to the pool
//! inside that transaction, and the next request's work runs in it. Here the transaction's whole
//! life — begin, statements, commit or rollback — belongs to a spawned task that no caller can
//! drop; a caller that goes away only stops waiting for the answer. The writer tasks already own
//! their transactions the same way, which is why the calls they alone make
//! ([`Store::record_intakes`], [`Store::change_case`], [`Store::append_audit`]) go straight
//! through.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ChainHead, DATABASE_WAIT, OpenDeadlines, PoolUse};
use super::{ChangeOutcome, Durability, IntakeOutcome, RoutingData, Store, reseal};
use super::{ChangePlanner, CrisisOutcome, CrisisPlanner, IntakePlanner};
use crate::domain::Error;
use crate::domain::case::{CaseFilter, CaseRecord, CaseSummary, PageRequest};
use crate::domain::change::CaseChange;
use crate::domain::event::{EventFilter, FeedEvent};
use crate::domain::intake::NewIntake;
use crate::domain::statistics::{Period, Statistics};
use crate::routing::crisis::{Crisis, CrisisRequest};
use crate::routing::directory::{DirectoryData, DirectoryUpdate};
use crate::routing::policy::PolicyDocument;

/// A store whose calls each run to completion in a task of their own.
///
/// It also keeps requests from waiting on a database that cannot answer: while the health
/// check finds the database unreachable ([`Store::mark_reachable`]), every call but the check
/// itself is refused at once with [`Error::Unavailable`]; and a request's read waits at most
/// [`DATABASE_WAIT`] for its answer (the work goes on in its task; only the wait ends).
pub(crate) struct Detached {
    store: Arc<dyn Store>,
    down: AtomicBool,
}

impl Detached {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            down: AtomicBool::new(false),
        }
    }

    /// Refuses at once while the database is known to be unreachable.
    fn check(&self) -> Result<(), Error> {
        if self.down.load(Ordering::Relaxed) {
            return Err(unreachable());
        }
        Ok(())
    }

    /// Runs a request's `work` with the store in a spawned task and waits for its answer at
    /// most [`DATABASE_WAIT`]; dropping the returned future, or the wait running out, leaves
    /// the task running to its end.
    async fn run<T, F, Fut>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(Arc<dyn Store>) -> Fut,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        self.check()?;
        match tokio::time::timeout(DATABASE_WAIT, self.spawned(work)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Unavailable(
                format!(
                    "the database did not answer within {} s",
                    DATABASE_WAIT.as_secs()
                )
                .into(),
            )),
        }
    }

    /// Runs `work` (maintenance and start-up: no bound on its wait) in a spawned task.
    async fn run_unbounded<T, F, Fut>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(Arc<dyn Store>) -> Fut,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        self.check()?;
        self.spawned(work).await
    }

    async fn spawned<T, F, Fut>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(Arc<dyn Store>) -> Fut,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        match tokio::spawn(work(self.store.clone())).await {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // Only a runtime shutting down cancels a spawned task.
            Err(error) => Err(Error::Unavailable(Box::new(error))),
        }
    }
}

/// The refusal while the database is unreachable.
fn unreachable() -> Error {
    Error::Unavailable(
        "the database is unreachable (the health check's write does not complete)".into(),
    )
}

#[async_trait]
impl Store for Detached {
    async fn record_intakes(
        &self,
        batch: &[NewIntake],
        planner: &mut IntakePlanner<'_>,
    ) -> Result<Vec<IntakeOutcome>, Error> {
        // Called only by the intake writer's task, which no request can drop.
        self.check()?;
        self.store.record_intakes(batch, planner).await
    }

    async fn change_case(
        &self,
        change: &CaseChange,
        planner: &mut ChangePlanner<'_>,
    ) -> Result<ChangeOutcome, Error> {
        // Called only by the change writer's task, which no request can drop.
        self.check()?;
        self.store.change_case(change, planner).await
    }

    async fn offer_team(
        &self,
        offer: &crate::domain::queue::TeamOffer,
        at: DateTime<Utc>,
        planner: &mut ChangePlanner<'_>,
    ) -> Result<Option<ChangeOutcome>, Error> {
        // Called only by the writer's task, as above.
        self.check()?;
        self.store.offer_team(offer, at, planner).await
    }

    async fn due_timers(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Uuid>, Error> {
        self.run(move |store| async move { store.due_timers(now, limit).await })
            .await
    }

    async fn chain_heads(&self) -> Result<Vec<ChainHead>, Error> {
        self.run_unbounded(move |store| async move { store.chain_heads().await })
            .await
    }

    async fn chain_hash_at(&self, chain: &str, number: i64) -> Result<Option<Vec<u8>>, Error> {
        let chain = chain.to_owned();
        self.run_unbounded(move |store| async move { store.chain_hash_at(&chain, number).await })
            .await
    }

    fn pool_use(&self) -> PoolUse {
        self.store.pool_use()
    }

    async fn open_deadlines(&self, now: DateTime<Utc>) -> Result<Vec<OpenDeadlines>, Error> {
        self.run(move |store| async move { store.open_deadlines(now).await })
            .await
    }

    async fn events(
        &self,
        filter: &EventFilter,
        after: i64,
        up_to: i64,
        limit: u32,
    ) -> Result<Vec<FeedEvent>, Error> {
        let filter = filter.clone();
        self.run(move |store| async move { store.events(&filter, after, up_to, limit).await })
            .await
    }

    async fn statistics(&self, period: &Period) -> Result<Statistics, Error> {
        let period = period.clone();
        self.run(move |store| async move { store.statistics(&period).await })
            .await
    }

    async fn last_event(&self) -> Result<i64, Error> {
        self.run(|store| async move { store.last_event().await })
            .await
    }

    async fn timeline(
        &self,
        case_id: Uuid,
        reach: &crate::domain::reach::Reach,
    ) -> Result<Option<Vec<FeedEvent>>, Error> {
        let reach = reach.clone();
        self.run(move |store| async move { store.timeline(case_id, &reach).await })
            .await
    }

    fn spawn_event_listener(
        &self,
        announcements: super::Announcements,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.store.spawn_event_listener(announcements, stop)
    }

    async fn load_routing(&self) -> Result<RoutingData, Error> {
        self.run_unbounded(|store| async move { store.load_routing().await })
            .await
    }

    async fn write_crisis(
        &self,
        request: &CrisisRequest,
        planner: &mut CrisisPlanner<'_>,
    ) -> Result<CrisisOutcome, Error> {
        // Called only by the writer's task, which no request can drop.
        self.check()?;
        self.store.write_crisis(request, planner).await
    }

    async fn crises(&self) -> Result<Vec<Crisis>, Error> {
        self.run(|store| async move { store.crises().await }).await
    }

    async fn upsert_directory(&self, data: &DirectoryData) -> Result<(), Error> {
        let data = data.clone();
        self.run_unbounded(move |store| async move { store.upsert_directory(&data).await })
            .await
    }

    async fn store_policy(
        &self,
        policy: &PolicyDocument,
        expected_version: Option<i64>,
    ) -> Result<i64, Error> {
        let policy = policy.clone();
        self.run_unbounded(move |store| async move {
            store.store_policy(&policy, expected_version).await
        })
        .await
    }

    async fn update_directory(
        &self,
        update: &DirectoryUpdate,
        key: Option<&(String, crate::domain::change::ChangeKey)>,
    ) -> Result<bool, Error> {
        let key = key.cloned();
        let update = update.clone();
        self.run_unbounded(move |store| async move {
            store.update_directory(&update, key.as_ref()).await
        })
        .await
    }

    async fn get_case(&self, case_id: Uuid) -> Result<Option<CaseRecord>, Error> {
        self.run(move |store| async move { store.get_case(case_id).await })
            .await
    }

    async fn list_cases(
        &self,
        filter: &CaseFilter,
        page: &PageRequest,
        reach: &crate::domain::reach::Reach,
    ) -> Result<Vec<CaseSummary>, Error> {
        let (filter, page, reach) = (filter.clone(), page.clone(), reach.clone());
        self.run(move |store| async move { store.list_cases(&filter, &page, &reach).await })
            .await
    }

    async fn append_audit(&self, entries: &[crate::audit::AuditEntry]) -> Result<(), Error> {
        // Called only by the audit writer's task, which no request can drop.
        self.check()?;
        self.store.append_audit(entries).await
    }

    async fn audit_trail(
        &self,
        query: &crate::audit::AuditQuery,
    ) -> Result<Vec<crate::audit::AuditRecord>, Error> {
        let query = query.clone();
        self.run(move |store| async move { store.audit_trail(&query).await })
            .await
    }

    async fn reseal(&self) -> Result<Vec<(String, reseal::ResealCount)>, Error> {
        self.run_unbounded(|store| async move { store.reseal().await })
            .await
    }

    async fn verify_chains(&self) -> Result<Vec<crate::audit::ChainReport>, Error> {
        self.run_unbounded(|store| async move { store.verify_chains().await })
            .await
    }

    /// The health check: never refused, so that it finds the database back.
    async fn ping(&self) -> Result<(), Error> {
        self.spawned(|store| async move { store.ping().await })
            .await
    }

    fn mark_reachable(&self, reachable: bool) {
        self.down.store(!reachable, Ordering::Relaxed);
    }

    fn reachable(&self) -> bool {
        !self.down.load(Ordering::Relaxed)
    }

    async fn durability(&self) -> Result<Durability, Error> {
        self.run_unbounded(|store| async move { store.durability().await })
            .await
    }

    async fn close(&self) {
        self.store.close().await;
    }
}
