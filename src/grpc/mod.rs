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

use uuid::Uuid;

use crate::access::{CallRoute, Caller, Operation};
use crate::application::writer::Writer;
use crate::clock::Clock;
use crate::domain::Error;
use crate::domain::case::CaseRecord;
use crate::domain::change::CaseChange;
use crate::domain::error::FieldViolation;
use crate::domain::event::EventFilter;
use crate::domain::intake::{NewIntake, Receipt};
use crate::store::audit_writer::AuditWriter;
use crate::store::{ChangeOutcome, IntakeOutcome, Store};
use crate::tracking::feed::Feed;
use crate::tracking::watch::{StreamKind, WatchConfig, WatchItem};

pub mod audit;
pub mod auth;
pub mod case_tracking;
pub mod codec;
pub(crate) mod convert;
pub mod crisis;
pub mod directory;
pub mod dispatch;
pub mod emergency;
pub mod health_watch;
pub mod hotline;
pub mod request_id;
mod status;
pub(crate) mod undecodable;

/// The caller of a request, as the authentication interceptor left it.
fn caller<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| status::unauthenticated("missing bearer token"))
}

/// Writes the audit trail for the services: what a request did, or why it was refused.
#[derive(Clone)]
pub struct Guard {
    audit: AuditWriter,
    clock: Clock,
}

impl Guard {
    /// The services' time now.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Audits through `audit`, stamping entries with `clock`.
    pub fn new(audit: AuditWriter, clock: Clock) -> Self {
        Self { audit, clock }
    }

    /// Records that `caller`'s request came to `result`, and passes the result on. A read is
    /// answered only once its entry is stored: nothing is shown that leaves no trace.
    async fn audited<T>(
        &self,
        caller: &Caller,
        operation: Operation,
        case_id: Option<Uuid>,
        result: Result<T, Error>,
    ) -> Result<T, Status> {
        let entry = caller.audit_entry(
            operation,
            case_id,
            crate::audit::outcome(&result),
            self.clock.now(),
        );
        // A refusal because the database cannot answer is answered at once; its entry is
        // written when the database is back (or logged as lost).
        if let Err(Error::Unavailable(_) | Error::Overloaded(_)) = &result {
            self.audit.append_later(entry.clone());
        } else if let Err(error) = self.audit.append(entry.clone()).await {
            tracing::error!(%error, action = entry.action, "audit entry not written");
            // A refusal stays a refusal; a success cannot be answered untraced.
            result?;
            return Err(error.into());
        }
        if let Err(error) = &result {
            metrics::counter!(crate::metrics::REFUSALS, "reason" => crate::audit::error_code(error))
                .increment(1);
            tracing::warn!(
                action = entry.action,
                outcome = entry.outcome,
                role = entry.role,
                %error,
                "request refused"
            );
        }
        result.map_err(Into::into)
    }

    /// Records that `caller`'s request for `operation` was refused because it did not decode.
    async fn undecodable(&self, caller: &Caller, operation: Operation) {
        let refused = Error::invalid("request", "is not a valid message of this method");
        // The answer is already made; only the entry is written here.
        let _ = self
            .audited::<()>(caller, operation, None, Err(refused))
            .await;
    }

    /// Records a refused request and returns its status.
    async fn refuse(
        &self,
        caller: &Caller,
        operation: Operation,
        case_id: Option<Uuid>,
        error: Error,
    ) -> Status {
        match self
            .audited::<()>(caller, operation, case_id, Err(error))
            .await
        {
            Err(status) => status,
            Ok(()) => status::internal(),
        }
    }

    /// Checks that `caller`'s role allows `operation`, recording the refusal when not.
    async fn check(&self, caller: &Caller, operation: Operation) -> Result<(), Status> {
        match caller.check(operation) {
            Ok(()) => Ok(()),
            Err(error) => Err(self.refuse(caller, operation, None, error).await),
        }
    }
}

/// The canonical name of the county of `province` that `county` names (by id or any spelling
/// of its name); a name that matches none is a violation of `field` naming the closest ones.
fn canonical_county(
    writer: &Writer,
    field: &str,
    province: &str,
    county: &str,
) -> Result<String, Error> {
    let routing = writer.routing().read();
    let directory = &routing.directory;
    if let Some(found) = directory.county(province, county) {
        return Ok(found.name_en.clone());
    }
    let description = match directory.county_by_id(county) {
        Some(elsewhere) => format!(
            "county {} is {} ({}) of {}, not of {province}",
            county.trim(),
            elsewhere.name_en,
            elsewhere.name_fa,
            elsewhere.province
        ),
        None => {
            let closest: Vec<String> = directory
                .closest_counties(province, county, 3)
                .into_iter()
                .map(|c| {
                    format!(
                        "{} ({}, id {})",
                        c.name_en,
                        c.name_fa,
                        c.id.as_deref().unwrap_or("-")
                    )
                })
                .collect();
            if closest.is_empty() {
                format!("{province} has no counties in the directory")
            } else {
                format!(
                    "no county of {province} is called {:?}; the closest: {}; when the caller \
                     cannot say, leave it empty and set county_unknown",
                    county.trim(),
                    closest.join(", ")
                )
            }
        }
    };
    Err(Error::InvalidArgument(vec![FieldViolation::new(
        field,
        description,
    )]))
}

/// Makes a list or watch filter's county canonical, so that any spelling finds the cases.
fn canonical_filter_county(
    writer: &Writer,
    province: Option<&String>,
    county: &mut Option<String>,
) -> Result<(), Error> {
    if let (Some(province), Some(name)) = (province, county.as_mut()) {
        *name = canonical_county(writer, "county", province, name)?;
    }
    Ok(())
}

/// Records an intake through the group-commit writer and returns its receipt. The writer's
/// transaction writes its audit entry; a refusal is recorded here.
async fn record_intake(
    guard: &Guard,
    writer: &Writer,
    caller: &Caller,
    operation: Operation,
    intake: Result<NewIntake, Error>,
) -> Result<Receipt, Status> {
    let intake = match intake.and_then(|mut intake| {
        let location = &mut intake.intake.location;
        if !location.county.is_empty() {
            location.county = canonical_county(
                writer,
                "intake.location.county",
                &location.province,
                &location.county,
            )?;
        }
        let location = &intake.intake.location;
        let contact = &intake.intake.contact;
        let overflowed_from = contact.overflow_from_province.as_deref();
        let takes_overflow = overflowed_from.is_some_and(|from| {
            let routing = writer.routing().read();
            let neighbours = routing.directory.neighbours(from);
            neighbours.contains(&contact.answering_province)
        });
        let call = CallRoute {
            answering: &contact.answering_province,
            overflowed_from,
            takes_overflow,
        };
        caller.check_intake_area(&location.province, &location.county, &call)?;
        Ok(intake)
    }) {
        Ok(intake) => intake,
        Err(error) => return Err(guard.refuse(caller, operation, None, error).await),
    };
    let line = intake.line();
    let outcome = match writer.submit(intake).await {
        Ok(outcome) => outcome,
        Err(error) => return Err(guard.refuse(caller, operation, None, error).await),
    };
    match outcome {
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
    guard: Guard,
    store: Arc<dyn Store>,
    writer: Writer,
    feed: Feed,
    clock: Clock,
    watch: WatchConfig,
    shutdown: watch::Receiver<bool>,
    reads: ReadLimit,
}

/// How many reads of cases are served at once, and how long one waits for its turn before it
/// is shed: reads beyond it cannot take the database connections intake needs.
#[derive(Clone)]
pub struct ReadLimit {
    permits: Arc<tokio::sync::Semaphore>,
    wait: std::time::Duration,
    shed: Arc<crate::telemetry::RefusalCount>,
}

impl ReadLimit {
    /// `concurrent` reads at once (at least one); a read waits up to `wait`.
    pub fn new(concurrent: usize, wait: std::time::Duration) -> Self {
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(concurrent.max(1))),
            wait,
            shed: Arc::new(crate::telemetry::RefusalCount::new(
                "read shed: too many reads in progress",
            )),
        }
    }

    /// A turn to read, or RESOURCE_EXHAUSTED when none comes in time.
    async fn turn(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                self.shed.count();
                Err(status::read_shed())
            }
        }
    }
}

/// A server stream as the services return it.
type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl Tracking {
    /// Puts the parts together; the guard's clock is the services' clock.
    pub fn new(
        guard: Guard,
        store: Arc<dyn Store>,
        writer: Writer,
        feed: Feed,
        watch: WatchConfig,
        shutdown: watch::Receiver<bool>,
        reads: ReadLimit,
    ) -> Self {
        let clock = guard.clock.clone();
        Self {
            guard,
            store,
            writer,
            feed,
            clock,
            watch,
            shutdown,
            reads,
        }
    }

    /// Waits for a turn to read (see [`ReadLimit`]).
    async fn read_turn(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        self.reads.turn().await
    }

    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The P0 team-acknowledgement target the statistics judge cases by.
    fn p0_target(&self) -> std::time::Duration {
        self.writer
            .targets()
            .target(
                crate::domain::sla::SlaKind::TeamAcknowledgement,
                crate::domain::types::Priority::P0Immediate,
            )
            .unwrap_or(std::time::Duration::from_secs(180))
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Applies a change through the writer on `caller`'s behalf. The change's own transaction
    /// writes its audit entry; a refusal (by role here, by reach or lifecycle in the
    /// transaction) is recorded with the case it named.
    async fn change(
        &self,
        caller: &Caller,
        operation: Operation,
        parse: impl FnOnce(&Caller) -> Result<CaseChange, Error>,
    ) -> Result<ChangeOutcome, Status> {
        self.guard.check(caller, operation).await?;
        let change = match parse(caller) {
            Ok(change) => change,
            Err(error) => return Err(self.guard.refuse(caller, operation, None, error).await),
        };
        let case_id = change.change.case_id();
        let outcome = match self.writer.change_case(change).await {
            Ok(outcome) => outcome,
            Err(error) => return Err(self.guard.refuse(caller, operation, case_id, error).await),
        };
        tracing::info!(
            case_id = %outcome.case_id,
            case_version = outcome.case_version,
            sequence = outcome.last_event,
            rerouted = outcome.reroute.is_some(),
            "case changed"
        );
        Ok(outcome)
    }

    /// Reads a case for `caller`: out of reach is not found, as if it did not exist. Answered
    /// only once the read is in the audit trail.
    async fn read_case(&self, caller: &Caller, raw_id: &str) -> Result<CaseRecord, Status> {
        self.read_named_case(caller, raw_id, |case_id, reach| async move {
            let case = self.store.get_case(case_id).await?;
            Ok(case.filter(|case| case.within(&reach)))
        })
        .await
    }

    /// Reads a case's timeline for `caller`, under the same rule and audit as the case; the
    /// store decides reach without opening the case.
    async fn read_timeline(
        &self,
        caller: &Caller,
        raw_id: &str,
    ) -> Result<Vec<crate::domain::event::FeedEvent>, Status> {
        self.read_named_case(caller, raw_id, |case_id, reach| async move {
            self.store.timeline(case_id, &reach).await
        })
        .await
    }

    /// A read of the case `raw_id` names: in its turn, for a role that may read cases, with
    /// `load` given the case id and the caller's reach (`None` from it, like no such case, is
    /// not found); the case id, when one was named, goes with the result into the audit trail.
    async fn read_named_case<T, F, Fut>(
        &self,
        caller: &Caller,
        raw_id: &str,
        load: F,
    ) -> Result<T, Status>
    where
        F: FnOnce(Uuid, crate::domain::reach::Reach) -> Fut,
        Fut: Future<Output = Result<Option<T>, Error>>,
    {
        let _turn = self.read_turn().await?;
        self.guard.check(caller, Operation::ReadCase).await?;
        let (case_id, result) = match convert::case_id("case_id", raw_id) {
            Ok(case_id) => {
                tracing::Span::current().record("case_id", tracing::field::display(case_id));
                let found = load(case_id, caller.reach()).await;
                (
                    Some(case_id),
                    found.and_then(|found| found.ok_or(Error::NotFound("case"))),
                )
            }
            Err(error) => (None, Err(error)),
        };
        self.guard
            .audited(caller, Operation::ReadCase, case_id, result)
            .await
    }

    /// Starts a watch stream, converting each message with `convert`; a stream the server
    /// ends finishes with a status saying why and where to resume.
    async fn watch<T, F, Fut>(
        &self,
        kind: StreamKind,
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
            kind,
            filter,
            after,
            self.watch,
            self.clock.clone(),
            self.shutdown.clone(),
        )
        .await
        .map_err(status::watch_end)?;
        let items = ReceiverStream::new(watch.items).then(convert);
        let end = futures::stream::once(watch.end)
            .filter_map(|end| async move { end.ok().map(|end| Err(status::watch_end(end))) });
        Ok(Box::pin(items.chain(end)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_past_the_limit_is_shed_and_the_next_turn_is_served() {
        let limit = ReadLimit::new(1, std::time::Duration::from_millis(20));
        let first = limit.turn().await.unwrap_or_else(|_| panic!("a free turn"));
        let shed = limit.turn().await.err().map(|s| s.code());
        assert_eq!(shed, Some(tonic::Code::ResourceExhausted));
        drop(first);
        assert!(
            limit.turn().await.is_ok(),
            "served once the first read is done"
        );
    }
}
