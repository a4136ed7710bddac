//! Recording a batch of intakes, load → plan → write in one transaction: the store reads the
//! batch's stored request ids, its callers' earlier contacts and the case-number counters
//! ([`IntakeLoad`]); the domain's planner decides retries, numbers, routing, timers, events,
//! audit rows and receipts ([`crate::domain::plan::intake`]); the store seals, numbers and
//! chains what the plan holds and writes it, each backend its fastest way
//! ([`super::batch::IntakeRows`]).

use std::collections::HashMap;

use super::IntakePlanner;
use super::batch::IntakeRows;
use super::map_sqlx_error as db_error;
use super::sealed::from_json;
use super::sql_store::SqlStore;
use crate::domain::Error;
use crate::domain::intake::NewIntake;
use crate::domain::plan::intake::{IntakeLoad, IntakeOutcome, StoredIntake};
use crate::domain::types::Line;

/// The `sequences` row holding the last case number of `line`.
pub(super) fn case_sequence(line: Line) -> &'static str {
    match line {
        Line::Hotline1480 => "case_hotline_1480",
        Line::Emergency123 => "case_emergency_123",
    }
}

impl SqlStore {
    /// Records a batch of intakes in one transaction; see [`super::Store::record_intakes`].
    pub(super) async fn record_intakes(
        &self,
        batch: &[NewIntake],
        planner: &mut IntakePlanner<'_>,
    ) -> Result<Vec<IntakeOutcome>, Error> {
        // The directory's counter first: its row lock orders this batch after any other
        // server's batch in flight, so the lookup below sees what that one committed. A batch
        // is then four round trips on PostgreSQL, whatever its size: BEGIN with the lock, the
        // lookup, the write and COMMIT. On SQLite it is two calls on the connection's thread:
        // BEGIN with the lookups, the write with COMMIT.
        let mut tx = self.backend.begin_intake_batch().await.map_err(db_error)?;
        // Every caller number's keyed hash (a retry's goes unused), so that one statement can
        // look up the batch's stored keys, its callers' earlier contacts and the counters
        // together.
        let callers = batch
            .iter()
            .map(|intake| match &intake.intake.contact.caller_number {
                Some(number) => self.cipher.caller_hash(number.expose()),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let distinct: Vec<&Vec<u8>> = {
            let mut set: Vec<&Vec<u8>> = callers.iter().flatten().collect();
            set.sort();
            set.dedup();
            set
        };
        let lookups = self
            .backend
            .lookups(&mut tx, batch, &distinct)
            .await
            .map_err(db_error)?;
        let (directory, _) = lookups.counter("directory")?;
        self.directory.check(directory)?;
        let mut last_numbers = HashMap::new();
        for line in [Line::Hotline1480, Line::Emergency123] {
            last_numbers.insert(line, lookups.counter(case_sequence(line))?.0);
        }
        let chains = (lookups.counter("event")?, lookups.counter("audit")?);
        let mut stored: HashMap<(String, String), StoredIntake> = HashMap::new();
        for row in lookups.keys {
            stored.insert(
                (row.line, row.request_id),
                StoredIntake {
                    payload_hash: row.payload_hash,
                    receipt: from_json(&row.receipt)?,
                },
            );
        }
        let load = IntakeLoad {
            stored: batch
                .iter()
                .map(|intake| {
                    stored.remove(&(
                        intake.line().as_str().to_owned(),
                        intake.request_id.as_str().to_owned(),
                    ))
                })
                .collect(),
            callers,
            contacts: lookups.contacts.into_iter().collect(),
            last_numbers,
        };

        let mut plan = planner(batch, load)?;
        let outcomes = std::mem::take(&mut plan.outcomes);
        let mut rows = IntakeRows::new(batch, plan, &self.cipher)?;
        rows.chain(chains.0, chains.1);
        let directory = self
            .backend
            .write_intake_batch(tx, &rows)
            .await?
            .unwrap_or(directory);
        self.directory.set(directory);
        Ok(outcomes)
    }
}
