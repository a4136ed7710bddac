//! Recording intakes: a batch in one transaction, retries answered from their stored receipts,
//! each new case numbered, routed and written with its referrals, dispatches, timers, events and
//! audit rows.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::IntakeOutcome;
use super::RouteFn;
use super::batch::{ADVANCE_CHAINS, IntakeRows};
use super::db::{query_as, query_scalar};
use super::events::{EventPlace, routing_event_data, routing_event_kind};
use super::map_sqlx_error as db_error;
use super::rows::{CaseDetails, EventRow, IdempotencyRow};
use super::sealed::{
    CASE_DETAILS, CONTACT_DETAILS, DECISION, decision_row, from_json, micros, to_json,
};
use super::sql_store::SqlStore;
use super::statements::LOCK_DIRECTORY;
use crate::crypto::FieldCipher;
use crate::domain::Error;
use crate::domain::decision::{Decision, Destination, Purpose, RoutingStatus};
use crate::domain::intake::{NewIntake, Receipt};
use crate::domain::reference;
use crate::domain::sla::SlaTargets;
use crate::domain::types::Line;

/// The rows one new case writes, worked out before the transaction touches them.
pub(super) struct NewCase {
    pub(super) case_id: Uuid,
    pub(super) contact_id: Uuid,
    pub(super) line: &'static str,
    pub(super) reference: String,
    pub(super) details: Vec<u8>,
    pub(super) contact: Vec<u8>,
    pub(super) caller_hash: Option<Vec<u8>>,
    pub(super) receipt: Receipt,
    pub(super) receipt_json: Vec<u8>,
    pub(super) created_at: i64,
    pub(super) routing_status: RoutingStatus,
    pub(super) decision: Decision,
    pub(super) decision_json: String,
    pub(super) referrals: Vec<(Uuid, String, Purpose)>,
    pub(super) dispatches: Vec<(Uuid, String)>,
    /// Recorded, routed (or unrouted), and one per team dispatched.
    pub(super) events: Vec<EventRow>,
}

/// Mints UUIDv7s stamped with one time that sort in the order they are minted, so a case's
/// referrals and dispatches list in the order routing made them.
struct Ids {
    context: uuid::ContextV7,
    seconds: u64,
    nanos: u32,
}

impl Ids {
    fn at(at: DateTime<Utc>) -> Self {
        Self {
            context: uuid::ContextV7::new(),
            seconds: u64::try_from(at.timestamp()).unwrap_or(0),
            nanos: at.timestamp_subsec_nanos(),
        }
    }

    fn next(&self) -> Uuid {
        Uuid::new_v7(uuid::Timestamp::from_unix(
            &self.context,
            self.seconds,
            self.nanos,
        ))
    }
}

/// The `sequences` row holding the last case number of `line`.
pub(super) fn case_sequence(line: Line) -> &'static str {
    match line {
        Line::Hotline1480 => "case_hotline_1480",
        Line::Emergency123 => "case_emergency_123",
    }
}

/// The audit row of an intake in a committed batch.
pub(super) fn intake_audit(
    intake: &NewIntake,
    outcome: &IntakeOutcome,
) -> crate::audit::AuditEntry {
    use IntakeOutcome;
    let (case_id, result) = match outcome {
        IntakeOutcome::Recorded(receipt) | IntakeOutcome::Replayed(receipt) => {
            (Some(receipt.case_id), crate::audit::OK)
        }
        IntakeOutcome::Conflict => (None, "already_exists"),
    };
    crate::audit::AuditEntry::requested(&intake.requester, case_id, result, intake.received_at)
}

/// Turns a stored idempotency key into the outcome of a retry.
pub(super) fn replay(
    row: IdempotencyRow,
    intake: &NewIntake,
) -> Result<super::IntakeOutcome, Error> {
    if row.payload_hash != intake.payload_hash {
        return Ok(super::IntakeOutcome::Conflict);
    }
    let mut receipt: Receipt = from_json(&row.receipt)?;
    receipt.replayed = true;
    Ok(super::IntakeOutcome::Replayed(receipt))
}

/// Works out the rows of a new case numbered `number` on its line, routed by `decision`.
pub(super) fn prepare_case(
    intake: &NewIntake,
    number: u64,
    decision: Decision,
    cipher: &FieldCipher,
    caller: CallerLink,
) -> Result<NewCase, Error> {
    let line = intake.line();
    let ids = Ids::at(intake.received_at);
    let case_id = ids.next();
    let reference = reference::format(line, number);
    let summary = decision.summary();
    let receipt = Receipt {
        case_id,
        reference: reference.clone(),
        priority: intake.assessment.priority,
        computed_priority: intake.assessment.computed,
        triage_reasons: intake.assessment.reasons.clone(),
        version: 1,
        routing: Some(summary.clone()),
        replayed: false,
    };
    let mut referrals = Vec::new();
    let mut dispatches = Vec::new();
    for assignment in &summary.assignments {
        match &assignment.destination {
            Destination::Team { id, .. } => dispatches.push((ids.next(), id.clone())),
            Destination::ServicePoint { id, .. } => {
                referrals.push((ids.next(), id.clone(), assignment.purpose));
            }
        }
    }
    let details = CaseDetails {
        intake: intake.intake.clone(),
        action: intake.action,
        assessment: intake.assessment.clone(),
    };
    // The event carries only what every watcher of the feed may see: no names, numbers,
    // addresses or narrative.
    let event = serde_json::json!({
        "reference": reference,
        "line": line.as_str(),
        "priority": intake.assessment.priority.as_str(),
        "computed_priority": intake.assessment.computed.as_str(),
        "primary_category": intake.intake.primary_category.as_str(),
        "province": intake.intake.location.province,
        "county": intake.intake.location.county,
        "minors_involved": intake.intake.minors_involved(),
        "request_id": intake.request_id.as_str(),
        "earlier_contacts_from_caller": caller.earlier_contacts,
    });
    let role = match line {
        Line::Hotline1480 => "counsellor",
        Line::Emergency123 => "operator",
    };
    let created_at = micros(intake.received_at);
    let place = EventPlace {
        case_id,
        line: line.as_str(),
        province: intake.intake.location.province.clone(),
        county: intake.intake.location.county.clone(),
        priority: intake.assessment.priority.as_str(),
        recorded_by: intake.requester.subject.clone(),
    };
    let actor = format!("{role}:{}", intake.intake.contact.operator_id);
    let mut events = vec![
        place.event("case_recorded", actor, created_at, None, &event, None)?,
        place.event(
            routing_event_kind(decision.status(), true),
            "routing",
            created_at,
            None,
            &routing_event_data(&decision),
            None,
        )?,
    ];
    for (dispatch_id, team_id) in &dispatches {
        events.push(place.event(
            "dispatch_assigned",
            "routing",
            created_at,
            None,
            &serde_json::json!({ "dispatch_id": dispatch_id, "team_id": team_id }),
            Some(team_id.clone()),
        )?);
    }
    let contact_id = ids.next();
    let decision_json = serde_json::to_string(&decision).map_err(Error::internal)?;
    Ok(NewCase {
        case_id,
        contact_id,
        line: line.as_str(),
        reference,
        details: CASE_DETAILS.seal(cipher, case_id.as_bytes(), &to_json(&details)?)?,
        contact: CONTACT_DETAILS.seal(
            cipher,
            contact_id.as_bytes(),
            &to_json(&intake.intake.contact)?,
        )?,
        caller_hash: caller.hash,
        receipt_json: to_json(&receipt)?,
        receipt,
        created_at,
        routing_status: decision.status(),
        decision_json: DECISION.seal_text(cipher, &decision_row(case_id, 1), &decision_json)?,
        decision,
        referrals,
        dispatches,
        events,
    })
}

/// How a new contact's caller links to earlier calls: the keyed hash of the number, and how
/// many contacts before it came from the same number.
pub(super) struct CallerLink {
    pub(super) hash: Option<Vec<u8>>,
    pub(super) earlier_contacts: i64,
}

impl SqlStore {
    pub(super) async fn record_intakes(
        &self,
        batch: &[NewIntake],
        route: &mut RouteFn<'_>,
        targets: &SlaTargets,
    ) -> Result<Vec<IntakeOutcome>, Error> {
        let mut tx = self.backend.begin_write().await.map_err(db_error)?;
        // The directory's counter first: its row lock orders this batch after any other
        // server's batch in flight, so the lookups below see what that one committed.
        let directory: i64 = query_scalar(LOCK_DIRECTORY)
            .fetch_one(tx.ex())
            .await
            .map_err(db_error)?;
        self.directory.check(directory)?;
        // Every caller number's keyed hash (a retry's goes unused), so that one
        // statement can look up the batch's stored keys, its callers' earlier contacts
        // and the case-number counters together. Every statement below covers the whole
        // batch, so a batch costs about as many round trips as a single intake.
        let all_hashes = batch
            .iter()
            .map(|intake| match &intake.intake.contact.caller_number {
                Some(number) => self.cipher.caller_hash(number.expose()),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let distinct: Vec<&Vec<u8>> = {
            let mut set: Vec<&Vec<u8>> = all_hashes.iter().flatten().collect();
            set.sort();
            set.dedup();
            set
        };
        let lookups = self
            .backend
            .lookups(&mut tx, batch, &distinct)
            .await
            .map_err(db_error)?;

        // Retries first: a key seen before writes nothing.
        let mut seen: HashMap<(String, String), IdempotencyRow> = std::collections::HashMap::new();
        for row in lookups.keys {
            seen.insert(
                (row.line, row.request_id),
                IdempotencyRow {
                    payload_hash: row.payload_hash,
                    receipt: row.receipt,
                },
            );
        }
        let known = batch
            .iter()
            .map(|intake| {
                let key = (
                    intake.line().as_str().to_owned(),
                    intake.request_id.as_str().to_owned(),
                );
                seen.remove(&key).map(|row| replay(row, intake)).transpose()
            })
            .collect::<Result<Vec<_>, Error>>()?;

        let fresh = || {
            batch
                .iter()
                .zip(&known)
                .filter(|(_, k)| k.is_none())
                .map(|(i, _)| i)
        };
        // Earlier contacts from each caller's number, by its keyed hash.
        let hashes: Vec<Option<Vec<u8>>> = all_hashes
            .into_iter()
            .zip(&known)
            .filter(|(_, k)| k.is_none())
            .map(|(hash, _)| hash)
            .collect();
        let mut earlier: HashMap<Vec<u8>, i64> = lookups.contacts.into_iter().collect();

        // Each line's next case number, from its counter.
        let mut next_number = std::collections::HashMap::new();
        for (name, last) in &lookups.case_numbers {
            for line in [Line::Hotline1480, Line::Emergency123] {
                if case_sequence(line) == name {
                    next_number.insert(line, *last as u64 + 1);
                }
            }
        }

        let mut cases = Vec::new();
        for (intake, hash) in fresh().zip(hashes) {
            let number = next_number
                .get_mut(&intake.line())
                .ok_or_else(|| Error::internal("a line without a counter"))?;
            let earlier_contacts = match &hash {
                Some(hash) => {
                    // Earlier calls in this batch count too.
                    let count = earlier.entry(hash.clone()).or_insert(0);
                    *count += 1;
                    (*count - 1).min(100)
                }
                None => 0,
            };
            let link = CallerLink {
                hash,
                earlier_contacts,
            };
            let case = prepare_case(intake, *number, route(intake), &self.cipher, link)?;
            *number += 1;
            cases.push((intake, case));
        }

        let mut recorded = cases.iter().map(|(_, case)| case.receipt.clone());
        let outcomes = known
            .into_iter()
            .map(|known| match known {
                Some(outcome) => Ok(outcome),
                None => recorded
                    .next()
                    .map(IntakeOutcome::Recorded)
                    .ok_or_else(|| Error::internal("batch bookkeeping")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let audit: Vec<_> = batch
            .iter()
            .zip(&outcomes)
            .map(|(intake, outcome)| intake_audit(intake, outcome))
            .collect();
        // Each counter ends at the last number the batch gave.
        let last_number = |line| {
            next_number
                .get(&line)
                .map(|next| *next as i64 - 1)
                .ok_or_else(|| Error::internal("a case-number counter is missing"))
        };
        let last_numbers = (
            last_number(Line::Hotline1480)?,
            last_number(Line::Emergency123)?,
        );
        let mut rows = IntakeRows::new(cases, audit, last_numbers, targets);

        // Numbers on the two chains are taken last: their counters stay locked until
        // commit, and the shorter that stretch, the less another writer waits.
        let heads: Vec<(String, i64, Option<Vec<u8>>)> = query_as(ADVANCE_CHAINS)
            .bind(rows.events.len() as i64)
            .bind(rows.audit.len() as i64)
            .fetch_all(tx.ex())
            .await
            .map_err(db_error)?;
        let head = |chain: &str| {
            heads
                .iter()
                .find(|(name, _, _)| name == chain)
                .map(|(_, last, hash)| (*last, hash.clone()))
                .ok_or_else(|| Error::internal("a chain counter is missing"))
        };
        rows.chain(head("event")?, head("audit")?);
        let directory = self
            .backend
            .write_intake_rows(&mut tx, &rows)
            .await?
            .unwrap_or(directory);
        tx.commit().await.map_err(db_error)?;
        self.directory.set(directory);
        Ok(outcomes)
    }
}
