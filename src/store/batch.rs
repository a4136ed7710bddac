//! The rows a batch of new cases writes, worked out in full before any of them is written, so
//! that each backend writes them the way it writes fastest: SQLite, where a statement costs no
//! round trip, with one multi-row insert per table; PostgreSQL, where every statement waits for
//! the server, with a single statement for the whole batch.

use uuid::Uuid;

use super::chain::audit_hash;
use super::intake::NewCase;
use super::rows::EventRow;
use crate::audit::{AuditEntry, ChainHasher};
use crate::domain::decision::Purpose;
use crate::domain::intake::NewIntake;
use crate::domain::sla::SlaTargets;

/// The two lines' case-number counters. Only intake batches move them, and each holds the
/// directory's row lock first, so a batch reads them without locking and sets them as it
/// writes ([`SET_CASE_NUMBERS`]).
pub(super) const SELECT_CASE_NUMBERS: &str = "select name, last_value from sequences \
     where name in ('case_hotline_1480', 'case_emergency_123')";

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
    /// Each line's counter (`case_sequence` name) and the last number it gave.
    pub(super) case_numbers: Vec<(String, i64)>,
}

/// Takes `$1` numbers of the event chain and `$2` of the audit chain, returning each chain's
/// last number with the hash to chain from.
pub(super) const ADVANCE_CHAINS: &str = "update sequences set last_value = last_value + \
     case name when 'event' then $1 else $2 end where name in ('event', 'audit') \
     returning name, last_value, hash";

/// A referral a new case makes: id, case, service point, purpose, time.
pub(super) type ReferralRow = (Uuid, Uuid, String, &'static str, i64);
/// A dispatch a new case makes: id, case, team, time.
pub(super) type DispatchRow = (Uuid, Uuid, String, i64);
/// A deadline timer: id, case, kind, what it watches, due, created.
pub(super) type TimerRow = (Uuid, Uuid, &'static str, Uuid, i64, i64);
/// A category of a case: case, category, whether primary.
pub(super) type CategoryRow = (Uuid, &'static str, bool);

/// Everything one batch of intakes writes.
pub(super) struct IntakeRows<'a> {
    /// Each new case with the intake it came from.
    pub(super) cases: Vec<(&'a NewIntake, NewCase)>,
    pub(super) referrals: Vec<ReferralRow>,
    /// Each dispatch takes its team.
    pub(super) dispatches: Vec<DispatchRow>,
    pub(super) timers: Vec<TimerRow>,
    pub(super) categories: Vec<CategoryRow>,
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
    /// The rows of `cases` (their referrals, dispatches and events are taken out of them) and
    /// the batch's audit entries, not yet chained.
    pub(super) fn new(
        mut cases: Vec<(&'a NewIntake, NewCase)>,
        audit: Vec<AuditEntry>,
        last_case_numbers: (i64, i64),
        targets: &SlaTargets,
    ) -> Self {
        let mut rows = Self {
            cases: Vec::new(),
            referrals: Vec::new(),
            dispatches: Vec::new(),
            timers: Vec::new(),
            categories: Vec::new(),
            events: Vec::new(),
            event_hashes: Vec::new(),
            first_event: 0,
            audit,
            audit_hashes: Vec::new(),
            first_audit: 0,
            last_case_numbers,
        };
        for (intake, case) in &mut cases {
            let (case_id, at) = (case.case_id, case.created_at);
            let priority = intake.assessment.priority;
            let timers = &mut rows.timers;
            let mut timers_of = |purpose, subject: Uuid| {
                for (kind, due) in super::changes::timers_for(targets, priority, purpose, at) {
                    timers.push((Uuid::now_v7(), case_id, kind.as_str(), subject, due, at));
                }
            };
            for (referral_id, point_id, purpose) in std::mem::take(&mut case.referrals) {
                timers_of(purpose, referral_id);
                rows.referrals
                    .push((referral_id, case_id, point_id, purpose.as_str(), at));
            }
            for (dispatch_id, team_id) in std::mem::take(&mut case.dispatches) {
                timers_of(Purpose::Dispatch, dispatch_id);
                rows.dispatches.push((dispatch_id, case_id, team_id, at));
            }
            let primary = intake.intake.primary_category;
            rows.categories.extend(
                intake
                    .intake
                    .categories()
                    .map(|category| (case_id, category.as_str(), category == primary)),
            );
            rows.events.append(&mut case.events);
        }
        rows.cases = cases;
        rows
    }

    /// Numbers and hashes the events after `last_event` and the audit entries after
    /// `last_audit`, chaining each from the hash the chain ends with.
    pub(super) fn chain(
        &mut self,
        (last_event, event_head): (i64, Option<Vec<u8>>),
        (last_audit, audit_head): (i64, Option<Vec<u8>>),
    ) {
        self.first_event = last_event - self.events.len() as i64 + 1;
        let mut previous = event_head;
        self.event_hashes = (self.first_event..)
            .zip(&self.events)
            .map(|(event_id, event)| {
                let hash = event
                    .columns(event_id)
                    .hash(ChainHasher::new(previous.as_deref()));
                previous = Some(hash.clone());
                hash
            })
            .collect();
        self.first_audit = last_audit - self.audit.len() as i64 + 1;
        let mut previous = audit_head;
        self.audit_hashes = (self.first_audit..)
            .zip(&self.audit)
            .map(|(audit_id, entry)| {
                let hash = audit_hash(ChainHasher::new(previous.as_deref()), audit_id, entry);
                previous = Some(hash.clone());
                hash
            })
            .collect();
    }

    /// The number of the batch's last event, when it has any.
    pub(super) fn last_event(&self) -> Option<i64> {
        (!self.events.is_empty()).then(|| self.first_event + self.events.len() as i64 - 1)
    }
}
