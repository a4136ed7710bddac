//! The store both backends share: [`SqlStore`] implements [`Store`] with the SQL both accept,
//! one topic per module (`intake`, `changes`, `cases`, `events`, `directory`, `chain`,
//! `reseal`); what only one backend does is [`Backend`]'s.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::db::{Backend, Tx, query_as, query_scalar};
use super::map_sqlx_error as db_error;
use super::statements::{BUMP_DIRECTORY, DIRECTORY_VERSION};
use super::{
    ChainHead, ChangeOutcome, ChangePlanner, CrisisOutcome, CrisisPlanner, DirectoryWatermark,
    Durability, IntakeOutcome, IntakePlanner, OpenDeadlines, PoolUse, ResealCount, RoutingData,
    Store,
};
use crate::audit::{AuditEntry, AuditQuery, AuditRecord, ChainReport};
use crate::crypto::FieldCipher;
use crate::domain::Error;
use crate::domain::case::{CaseFilter, CaseRecord, CaseSummary, PageRequest};
use crate::domain::change::CaseChange;
use crate::domain::event::{EventFilter, FeedEvent};
use crate::domain::intake::NewIntake;
use crate::domain::reach::Reach;
use crate::domain::statistics::{Period, Statistics};
use crate::routing::crisis::{Crisis, CrisisRequest};
use crate::routing::directory::{DirectoryData, DirectoryUpdate};
use crate::routing::policy::PolicyDocument;

/// Cases in a SQL database, on either backend.
#[derive(Debug, Clone)]
pub(super) struct SqlStore {
    pub(super) backend: Backend,
    /// The directory state this server's routing holds.
    pub(super) directory: DirectoryWatermark,
    /// Seals and opens the sensitive columns.
    pub(super) cipher: Arc<FieldCipher>,
}

impl SqlStore {
    pub(super) fn new(backend: Backend, cipher: Arc<FieldCipher>) -> Self {
        Self {
            backend,
            directory: DirectoryWatermark::default(),
            cipher,
        }
    }

    /// Begins a write transaction holding the directory's counter, which orders it after any
    /// other server's write in flight; refused with [`Error::DirectoryMoved`] when another
    /// server changed the directory since this one read it. Returns the counter.
    pub(super) async fn begin_locked(&self) -> Result<(Tx, i64), Error> {
        let mut tx = self.backend.begin_locked_write().await.map_err(db_error)?;
        let seen: i64 = query_scalar(DIRECTORY_VERSION)
            .fetch_one(tx.ex())
            .await
            .map_err(db_error)?;
        self.directory.check(seen)?;
        Ok((tx, seen))
    }
}

/// Moves the directory's counter: the transaction changed the directory or its live state.
pub(super) async fn bump_directory(tx: &mut Tx) -> Result<i64, Error> {
    query_scalar(BUMP_DIRECTORY)
        .fetch_one(tx.ex())
        .await
        .map_err(db_error)
}

#[async_trait]
impl Store for SqlStore {
    async fn record_intakes(
        &self,
        batch: &[NewIntake],
        planner: &mut IntakePlanner<'_>,
    ) -> Result<Vec<IntakeOutcome>, Error> {
        SqlStore::record_intakes(self, batch, planner).await
    }

    async fn change_case(
        &self,
        change: &CaseChange,
        planner: &mut ChangePlanner<'_>,
    ) -> Result<ChangeOutcome, Error> {
        self.apply_change(change, planner).await
    }

    async fn offer_team(
        &self,
        offer: &crate::domain::queue::TeamOffer,
        at: DateTime<Utc>,
        planner: &mut ChangePlanner<'_>,
    ) -> Result<Option<ChangeOutcome>, Error> {
        self.offer_freed_team(offer, at, planner).await
    }

    async fn due_timers(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Uuid>, Error> {
        query_scalar(super::changes::SELECT_DUE_TIMERS)
            .bind(super::sealed::micros(now))
            .bind(i64::from(limit))
            .fetch_all(self.backend.ex())
            .await
            .map_err(db_error)
    }

    fn pool_use(&self) -> PoolUse {
        self.backend.pool_use()
    }

    async fn chain_heads(&self) -> Result<Vec<ChainHead>, Error> {
        self.heads().await
    }

    async fn chain_hash_at(&self, chain: &str, number: i64) -> Result<Option<Vec<u8>>, Error> {
        self.hash_at(chain, number).await
    }

    async fn open_deadlines(&self, now: DateTime<Utc>) -> Result<Vec<OpenDeadlines>, Error> {
        let rows: Vec<(String, i64, i64)> = query_as(super::changes::COUNT_OPEN_TIMERS)
            .bind(super::sealed::micros(now))
            .fetch_all(self.backend.ex())
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|(kind, open, overdue)| OpenDeadlines {
                kind,
                open,
                overdue,
            })
            .collect())
    }

    async fn events(
        &self,
        filter: &EventFilter,
        after: i64,
        up_to: i64,
        limit: u32,
    ) -> Result<Vec<FeedEvent>, Error> {
        SqlStore::events(self, filter, after, up_to, limit).await
    }

    async fn statistics(&self, period: &Period) -> Result<Statistics, Error> {
        SqlStore::statistics(self, period).await
    }

    async fn last_event(&self) -> Result<i64, Error> {
        SqlStore::last_event(self).await
    }

    async fn timeline(
        &self,
        case_id: Uuid,
        reach: &Reach,
    ) -> Result<Option<Vec<FeedEvent>>, Error> {
        SqlStore::timeline(self, case_id, reach).await
    }

    fn spawn_event_listener(
        &self,
        announcements: super::Announcements,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(backend) => Some(backend.listen_for_events(announcements, stop)),
        }
    }

    async fn load_routing(&self) -> Result<RoutingData, Error> {
        SqlStore::load_routing(self).await
    }

    async fn upsert_directory(&self, data: &DirectoryData) -> Result<(), Error> {
        SqlStore::upsert_directory(self, data).await
    }

    async fn write_crisis(
        &self,
        request: &CrisisRequest,
        planner: &mut CrisisPlanner<'_>,
    ) -> Result<CrisisOutcome, Error> {
        SqlStore::write_crisis(self, request, planner).await
    }

    async fn crises(&self) -> Result<Vec<Crisis>, Error> {
        SqlStore::crises(self).await
    }

    async fn store_policy(
        &self,
        policy: &PolicyDocument,
        expected_version: Option<i64>,
    ) -> Result<i64, Error> {
        SqlStore::store_policy(self, policy, expected_version).await
    }

    async fn update_directory(
        &self,
        update: &DirectoryUpdate,
        key: Option<&(String, crate::domain::change::ChangeKey)>,
    ) -> Result<bool, Error> {
        SqlStore::update_directory(self, update, key).await
    }

    async fn get_case(&self, case_id: Uuid) -> Result<Option<CaseRecord>, Error> {
        SqlStore::get_case(self, case_id).await
    }

    async fn list_cases(
        &self,
        filter: &CaseFilter,
        page: &PageRequest,
        reach: &Reach,
    ) -> Result<Vec<CaseSummary>, Error> {
        SqlStore::list_cases(self, filter, page, reach).await
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), Error> {
        SqlStore::append_audit(self, entries).await
    }

    async fn audit_trail(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, Error> {
        SqlStore::audit_trail(self, query).await
    }

    async fn reseal(&self) -> Result<Vec<(String, ResealCount)>, Error> {
        SqlStore::reseal(self).await
    }

    async fn verify_chains(&self) -> Result<Vec<ChainReport>, Error> {
        SqlStore::verify_chains(self).await
    }

    async fn ping(&self) -> Result<(), Error> {
        match &self.backend {
            Backend::Sqlite(backend) => backend.check_reachable().await,
            Backend::Postgres(backend) => backend.check_reachable().await,
        }
        .map_err(db_error)
    }

    async fn durability(&self) -> Result<Durability, Error> {
        match &self.backend {
            Backend::Sqlite(backend) => backend.check_durability().await,
            Backend::Postgres(backend) => backend.check_durability().await,
        }
        .map_err(db_error)
    }

    async fn close(&self) {
        self.backend.close().await;
    }
}
