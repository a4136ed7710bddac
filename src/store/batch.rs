//! The rows a batch of new cases writes, worked out in full before any of them is written, so
//! that each backend writes them the way it writes fastest: SQLite, in process, with one script
//! of a multi-row insert per table run in one call on the connection's thread; PostgreSQL, where
//! every statement waits for the server, with a single statement for the whole batch.

use uuid::Uuid;

use super::chain::link;
use super::rows::EventRow;
use super::sealed::{CASE_DETAILS, CONTACT_DETAILS, DECISION, decision_row, micros, to_json};
use crate::audit::AuditEntry;
use crate::crypto::FieldCipher;
use crate::domain::Error;
use crate::domain::decision::{Decision, RoutingStatus};
use crate::domain::intake::{NewIntake, Receipt};
use crate::domain::plan::intake::IntakePlan;
use crate::domain::types::Line;

/// The counters an intake batch reads after the directory's lock, each with the hash its
/// chain ends with (none for the others): the two lines' case numbers, which only intake
/// batches move, each holding that lock ([`SET_CASE_NUMBERS`]); the directory's own; the
/// event and audit chains' last numbers, set as the batch writes ([`SET_CHAINS`]). The audit
/// trail also takes numbers for reads without the directory's lock, so on PostgreSQL the
/// batch's lookup holds these rows until commit (`sql/lookups.sql`); on SQLite the write
/// transaction already holds the whole database.
pub(super) const SELECT_COUNTERS: &str = "select name, last_value, hash from sequences \
     where name in ('case_hotline_1480', 'case_emergency_123', 'directory', 'event', 'audit')";

/// Sets the last 1480 case number to `$1` and the last 123 case number to `$2`.
pub(super) const SET_CASE_NUMBERS: &str = "update sequences set last_value = \
     case name when 'case_hotline_1480' then $1 else $2 end \
     where name in ('case_hotline_1480', 'case_emergency_123')";

/// What a batch reads before it works out its rows, all after the directory's lock.
#[derive(Default)]
pub(super) struct Lookups {
    /// The stored idempotency keys among the batch's.
    pub(super) keys: Vec<super::rows::KeyedIdempotencyRow>,
    /// How many stored contacts came from each of the batch's caller-number hashes.
    pub(super) contacts: Vec<(Vec<u8>, i64)>,
    /// Each counter of [`SELECT_COUNTERS`]: its name, the last number it gave and, for a
    /// chain, the hash of its last row.
    pub(super) counters: Vec<(String, i64, Option<Vec<u8>>)>,
}

impl Lookups {
    /// The counter `name`'s last number and, for a chain, the hash of its last row.
    pub(super) fn counter(&self, name: &str) -> Result<(i64, Option<Vec<u8>>), Error> {
        self.counters
            .iter()
            .find(|(counter, _, _)| counter == name)
            .map(|(_, last, hash)| (*last, hash.clone()))
            .ok_or_else(|| Error::internal(format!("the counter {name} is missing")))
    }
}

/// Sets the event chain's last number to `$1` and the audit chain's to `$2`, and their heads'
/// hashes to `$3` and `$4` where the batch added rows.
pub(super) const SET_CHAINS: &str = "update sequences set \
     last_value = case name when 'event' then $1 else $2 end, \
     hash = case name when 'event' then coalesce($3, hash) else coalesce($4, hash) end \
     where name in ('event', 'audit')";

/// A referral a new case makes: id, case, service point, purpose, time.
pub(super) type ReferralInsert = (Uuid, Uuid, String, &'static str, i64);
/// A dispatch a new case makes: id, case, team, time.
pub(super) type DispatchInsert = (Uuid, Uuid, String, i64);
/// A deadline timer: id, case, kind, what it watches, due, created.
pub(super) type TimerInsert = (Uuid, Uuid, &'static str, Option<Uuid>, i64, i64);
/// A case that starts waiting for a team: (wait id, case id, province, rank, since).
pub(super) type WaitInsert = (Uuid, Uuid, String, i64, i64);
/// A category of a case: case, category, whether primary.
pub(super) type CategoryInsert = (Uuid, &'static str, bool);

/// The columns of one new case and its contact, sealed and encoded.
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
    /// The decision as sealed JSON.
    pub(super) decision_json: String,
}

/// Everything one batch of intakes writes.
pub(super) struct IntakeRows<'a> {
    /// Each new case with the intake it came from.
    pub(super) cases: Vec<(&'a NewIntake, NewCase)>,
    pub(super) referrals: Vec<ReferralInsert>,
    /// Each dispatch takes its team.
    pub(super) dispatches: Vec<DispatchInsert>,
    pub(super) timers: Vec<TimerInsert>,
    /// The cases that wait for a team (rare: written one by one).
    pub(super) waits: Vec<WaitInsert>,
    pub(super) categories: Vec<CategoryInsert>,
    /// The cases' events, numbered from `first_event`, each with its chain hash once chained.
    pub(super) events: Vec<EventRow>,
    pub(super) event_hashes: Vec<Vec<u8>>,
    pub(super) first_event: i64,
    /// One audit entry per intake of the batch (retries too), numbered from `first_audit`.
    pub(super) audit: Vec<AuditEntry>,
    pub(super) audit_hashes: Vec<Vec<u8>>,
    pub(super) first_audit: i64,
    /// The last 1480 and the last 123 case number once the batch is written.
    pub(super) last_case_numbers: (i64, i64),
}

impl<'a> IntakeRows<'a> {
    /// The rows of a batch's plan, sealed where sensitive; the events and audit entries are
    /// not yet numbered or chained.
    pub(super) fn new(
        batch: &'a [NewIntake],
        plan: IntakePlan,
        cipher: &FieldCipher,
    ) -> Result<Self, Error> {
        let last_number = |line| {
            plan.last_numbers
                .get(&line)
                .copied()
                .ok_or_else(|| Error::internal("a case-number counter is missing"))
        };
        let mut rows = Self {
            cases: Vec::with_capacity(plan.cases.len()),
            referrals: Vec::new(),
            dispatches: Vec::new(),
            timers: Vec::new(),
            waits: Vec::new(),
            categories: Vec::new(),
            events: Vec::new(),
            event_hashes: Vec::new(),
            first_event: 0,
            audit: plan.audit,
            audit_hashes: Vec::new(),
            first_audit: 0,
            last_case_numbers: (
                last_number(Line::Hotline1480)?,
                last_number(Line::Emergency123)?,
            ),
        };
        for case in plan.cases {
            let intake = batch
                .get(case.intake)
                .ok_or_else(|| Error::internal("a planned case without its intake"))?;
            let (case_id, at) = (case.case_id, micros(case.created_at));
            for referral in case.referrals {
                rows.referrals.push((
                    referral.referral_id,
                    case_id,
                    referral.service_point_id,
                    referral.purpose.as_str(),
                    at,
                ));
            }
            for dispatch in case.dispatches {
                rows.dispatches
                    .push((dispatch.dispatch_id, case_id, dispatch.team_id, at));
            }
            for timer in case.timers {
                rows.timers.push((
                    timer.timer_id,
                    case_id,
                    timer.kind.as_str(),
                    timer.subject,
                    micros(timer.due),
                    at,
                ));
            }
            if let Some(wait_id) = case.waits_for_team {
                rows.waits.push((
                    wait_id,
                    case_id,
                    intake.intake.location.province.clone(),
                    crate::domain::queue::rank(intake.assessment.priority),
                    at,
                ));
            }
            let primary = intake.intake.primary_category;
            rows.categories.extend(
                intake
                    .intake
                    .categories()
                    .map(|category| (case_id, category.as_str(), category == primary)),
            );
            for event in &case.events {
                rows.events.push(EventRow::of(event)?);
            }
            let decision_json = serde_json::to_string(&case.decision).map_err(Error::internal)?;
            let new = NewCase {
                case_id,
                contact_id: case.contact_id,
                line: intake.line().as_str(),
                reference: case.reference,
                details: CASE_DETAILS.seal(cipher, case_id.as_bytes(), &to_json(&case.details)?)?,
                contact: CONTACT_DETAILS.seal(
                    cipher,
                    case.contact_id.as_bytes(),
                    &to_json(&intake.intake.contact)?,
                )?,
                caller_hash: case.caller_hash,
                receipt_json: to_json(&case.receipt)?,
                receipt: case.receipt,
                created_at: at,
                routing_status: case.decision.status(),
                decision_json: DECISION.seal_text(
                    cipher,
                    &decision_row(case_id, 1),
                    &decision_json,
                )?,
                decision: case.decision,
            };
            rows.cases.push((intake, new));
        }
        Ok(rows)
    }

    /// Numbers and hashes the events after `last_event` and the audit entries after
    /// `last_audit`, chaining each from the hash the chain ends with.
    pub(super) fn chain(
        &mut self,
        (last_event, event_head): (i64, Option<Vec<u8>>),
        (last_audit, audit_head): (i64, Option<Vec<u8>>),
    ) {
        let end = |last: i64, rows: usize| last + rows as i64;
        (self.first_event, self.event_hashes) =
            link(&self.events, end(last_event, self.events.len()), event_head);
        (self.first_audit, self.audit_hashes) =
            link(&self.audit, end(last_audit, self.audit.len()), audit_head);
    }

    /// The last numbers of the event and audit chains once the batch is written.
    pub(super) fn chain_ends(&self) -> (i64, i64) {
        (
            self.first_event + self.events.len() as i64 - 1,
            self.first_audit + self.audit.len() as i64 - 1,
        )
    }

    /// The number of the batch's last event, when it has any.
    pub(super) fn last_event(&self) -> Option<i64> {
        (!self.events.is_empty()).then(|| self.first_event + self.events.len() as i64 - 1)
    }
}
