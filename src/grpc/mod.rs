//! The gRPC front: thin services that parse a request into domain values, call the domain or the
//! store, and convert the answer back. Errors become statuses in `status.rs` only.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::clock::Clock;
use crate::domain::Error;
use crate::domain::change::CaseChange;
use crate::domain::intake::{NewIntake, Receipt};
use crate::store::writer::Writer;
use crate::store::{ChangeOutcome, IntakeOutcome, Store};
use crate::tracking::EventFilter;
use crate::tracking::feed::Feed;
use crate::tracking::watch::{WatchConfig, WatchItem};

pub mod auth;
pub mod case_tracking;
pub(crate) mod convert;
pub mod directory;
pub mod dispatch;
pub mod emergency;
pub mod hotline;
mod status;

/// Records an intake through the group-commit writer and returns its receipt.
async fn record_intake(writer: &Writer, intake: NewIntake) -> Result<Receipt, Status> {
    let line = intake.line();
    match writer.submit(intake).await? {
        IntakeOutcome::Recorded(receipt) => {
            tracing::info!(
                case_id = %receipt.case_id,
                reference = %receipt.reference,
                line = line.as_str(),
                priority = receipt.priority.as_str(),
                "intake recorded"
            );
            Ok(receipt)
        }
        IntakeOutcome::Replayed(receipt) => {
            tracing::info!(case_id = %receipt.case_id, line = line.as_str(), "intake replayed");
            Ok(receipt)
        }
        IntakeOutcome::Conflict => Err(Error::IdempotencyConflict.into()),
    }
}

/// What the tracking services share: the store to read, the writer to change cases through,
/// the feed to watch, and the signal that ends open streams at shutdown.
#[derive(Clone)]
pub struct Tracking {
    store: Arc<dyn Store>,
    writer: Writer,
    feed: Feed,
    clock: Clock,
    watch: WatchConfig,
    shutdown: watch::Receiver<bool>,
}

/// A server stream as the services return it.
type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl Tracking {
    /// Puts the parts together.
    pub fn new(
        store: Arc<dyn Store>,
        writer: Writer,
        feed: Feed,
        clock: Clock,
        watch: WatchConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            store,
            writer,
            feed,
            clock,
            watch,
            shutdown,
        }
    }

    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Applies a change through the writer.
    async fn change(&self, change: CaseChange) -> Result<ChangeOutcome, Status> {
        let outcome = self.writer.change_case(change).await?;
        tracing::info!(
            case_id = %outcome.case_id,
            case_version = outcome.case_version,
            sequence = outcome.last_event,
            rerouted = outcome.reroute.is_some(),
            "case changed"
        );
        Ok(outcome)
    }

    /// Starts a watch stream, converting each message with `convert`; a stream the server
    /// ends finishes with a status saying why and where to resume.
    async fn watch<T, F, Fut>(
        &self,
        filter: EventFilter,
        after: Option<i64>,
        convert: F,
    ) -> Result<BoxStream<T>, Status>
    where
        T: Send + 'static,
        F: FnMut(WatchItem) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Status>> + Send + 'static,
    {
        let watch = crate::tracking::watch::start(
            &self.feed,
            filter,
            after,
            self.watch,
            self.clock.clone(),
            self.shutdown.clone(),
        )
        .await
        .map_err(convert::watch_end)?;
        let items = ReceiverStream::new(watch.items).then(convert);
        let end = futures::stream::once(watch.end)
            .filter_map(|end| async move { end.ok().map(|end| Err(convert::watch_end(end))) });
        Ok(Box::pin(items.chain(end)))
    }
}
