//! Planning a batch of intakes: which are retries (answered from their stored receipts), and
//! for each new case its number, routing, referrals, dispatches, deadline timers, events and
//! receipt; one audit row per intake.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    NewDispatch, NewReferral, NewTimer, Routed, assign, routing_event_data, routing_event_kind,
};
use crate::domain::Error;
use crate::domain::audit::{AuditEntry, OK};
use crate::domain::case::CaseDetails;
use crate::domain::decision::Decision;
use crate::domain::event::{EventKind, EventPlace, NewEvent};
use crate::domain::intake::{NewIntake, Receipt};
use crate::domain::sla::SlaTargets;
use crate::domain::types::Line;
use crate::domain::{queue, reference};

/// How many earlier contacts from the same number an event reports, at most.
const EARLIER_CONTACTS_SHOWN: i64 = 100;

/// A request id seen before: what its payload hashed to and the receipt it was answered with.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredIntake {
    pub payload_hash: Vec<u8>,
    pub receipt: Receipt,
}

/// What a batch's plan needs, read in the batch's transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntakeLoad {
    /// For each intake of the batch, in order: its request id's stored answer, if seen before.
    pub stored: Vec<Option<StoredIntake>>,
    /// For each intake: the keyed hash of the caller's number, when one was given.
    pub callers: Vec<Option<Vec<u8>>>,
    /// How many stored contacts came from each of those hashes.
    pub contacts: HashMap<Vec<u8>, i64>,
    /// Each line's last case number.
    pub last_numbers: HashMap<Line, i64>,
}

/// What became of one intake in a committed batch.
#[derive(Debug, Clone, PartialEq)]
pub enum IntakeOutcome {
    /// A new case was recorded.
    Recorded(Receipt),
    /// The request id was seen before with the same payload; this is the original receipt.
    Replayed(Receipt),
    /// The request id was seen before with a different payload.
    Conflict,
}

/// A new case, as the plan writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedCase {
    /// The intake it records: its index in the batch.
    pub intake: usize,
    pub case_id: Uuid,
    pub contact_id: Uuid,
    pub reference: String,
    pub receipt: Receipt,
    pub details: CaseDetails,
    /// The keyed hash of the caller's number, linking later calls from it.
    pub caller_hash: Option<Vec<u8>>,
    pub decision: Decision,
    pub referrals: Vec<NewReferral>,
    pub dispatches: Vec<NewDispatch>,
    pub timers: Vec<NewTimer>,
    /// Recorded, routed (or unrouted), and one per team dispatched.
    pub events: Vec<NewEvent>,
    pub created_at: DateTime<Utc>,
    /// No team was free for this P0 or P1 case: it waits in the team queue (the wait's id).
    pub waits_for_team: Option<Uuid>,
}

/// Everything a batch writes.
#[derive(Debug, Clone, PartialEq)]
pub struct IntakePlan {
    /// One per intake, in batch order.
    pub outcomes: Vec<IntakeOutcome>,
    pub cases: Vec<PlannedCase>,
    /// One per intake (retries too), in batch order.
    pub audit: Vec<AuditEntry>,
    /// Each line's last case number once the batch is written.
    pub last_numbers: HashMap<Line, i64>,
}

/// Plans a batch. `route` decides where each new case goes; it is called once per new case, in
/// batch order. A retry is not routed and records nothing new.
pub fn plan_intakes(
    batch: &[NewIntake],
    load: IntakeLoad,
    route: &mut dyn FnMut(&NewIntake) -> Routed,
    targets: &SlaTargets,
) -> Result<IntakePlan, Error> {
    if load.stored.len() != batch.len() || load.callers.len() != batch.len() {
        return Err(Error::internal("a batch's lookups do not match it"));
    }
    let mut contacts = load.contacts;
    let mut last_numbers = load.last_numbers;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut cases = Vec::new();
    for (index, ((intake, stored), caller)) in
        batch.iter().zip(load.stored).zip(load.callers).enumerate()
    {
        if let Some(stored) = stored {
            outcomes.push(replay(stored, intake));
            continue;
        }
        let number = last_numbers
            .get_mut(&intake.line())
            .ok_or_else(|| Error::internal("a line without a case-number counter"))?;
        *number += 1;
        let earlier_contacts = match &caller {
            Some(hash) => {
                // Earlier calls in this batch count too.
                let count = contacts.entry(hash.clone()).or_insert(0);
                *count += 1;
                (*count - 1).min(EARLIER_CONTACTS_SHOWN)
            }
            None => 0,
        };
        let case = plan_case(
            index,
            intake,
            *number as u64,
            route(intake),
            caller,
            earlier_contacts,
            targets,
        )?;
        outcomes.push(IntakeOutcome::Recorded(case.receipt.clone()));
        cases.push(case);
    }
    let audit = batch
        .iter()
        .zip(&outcomes)
        .map(|(intake, outcome)| intake_audit(intake, outcome))
        .collect();
    Ok(IntakePlan {
        outcomes,
        cases,
        audit,
        last_numbers,
    })
}

/// The answer to a retry: the original receipt when the payload is the same, a conflict when
/// it is not.
pub fn replay(stored: StoredIntake, intake: &NewIntake) -> IntakeOutcome {
    if stored.payload_hash != intake.payload_hash {
        return IntakeOutcome::Conflict;
    }
    let mut receipt = stored.receipt;
    receipt.replayed = true;
    IntakeOutcome::Replayed(receipt)
}

/// The audit row of an intake.
fn intake_audit(intake: &NewIntake, outcome: &IntakeOutcome) -> AuditEntry {
    let (case_id, result) = match outcome {
        IntakeOutcome::Recorded(receipt) | IntakeOutcome::Replayed(receipt) => {
            (Some(receipt.case_id), OK)
        }
        IntakeOutcome::Conflict => (None, "already_exists"),
    };
    AuditEntry::requested(&intake.requester, case_id, result, intake.received_at)
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

/// Plans the new case of `intake`, numbered `number` on its line and routed by `routed`; the
/// deadlines are `routed`'s targets where a crisis set them, else `targets`.
fn plan_case(
    index: usize,
    intake: &NewIntake,
    number: u64,
    routed: Routed,
    caller_hash: Option<Vec<u8>>,
    earlier_contacts: i64,
    targets: &SlaTargets,
) -> Result<PlannedCase, Error> {
    let line = intake.line();
    let at = intake.received_at;
    let priority = intake.assessment.priority;
    let ids = Ids::at(at);
    let case_id = ids.next();
    let reference = reference::format(line, number);
    let Routed {
        mut decision,
        targets: in_crisis,
    } = routed;
    let targets = in_crisis.as_ref().unwrap_or(targets);
    decision.unmet_request = decision.unmet(intake.action);
    let waits_for_team = queue::starts_waiting(&decision, priority).then(|| ids.next());
    if waits_for_team.is_some() {
        decision
            .notes
            .push(queue::waiting_note(&intake.intake.location.province));
    }
    let summary = decision.summary();
    let receipt = Receipt {
        case_id,
        reference: reference.clone(),
        priority,
        computed_priority: intake.assessment.computed,
        triage_reasons: intake.assessment.reasons.clone(),
        version: 1,
        routing: Some(summary.clone()),
        replayed: false,
    };
    let place = EventPlace {
        case_id,
        line,
        province: intake.intake.location.province.clone(),
        county: intake.intake.location.county.clone(),
        priority,
        recorded_by: intake.requester.subject.clone(),
    };
    let role = match line {
        Line::Hotline1480 => "counsellor",
        Line::Emergency123 => "operator",
    };
    // The event carries only what every watcher of the feed may see: no names, numbers,
    // addresses or narrative.
    let recorded = serde_json::json!({
        "reference": reference,
        "line": line.as_str(),
        "priority": priority.as_str(),
        "computed_priority": intake.assessment.computed.as_str(),
        "primary_category": intake.intake.primary_category.as_str(),
        "province": intake.intake.location.province,
        "county": intake.intake.location.county,
        "minors_involved": intake.intake.minors_involved(),
        "request_id": intake.request_id.as_str(),
        "earlier_contacts_from_caller": earlier_contacts,
    });
    let actor = format!("{role}:{}", intake.intake.contact.operator_id);
    let mut events = vec![
        place.event(EventKind::CaseRecorded, actor, at, None, recorded, None),
        place.event(
            routing_event_kind(decision.status(), true),
            "routing",
            at,
            None,
            routing_event_data(&decision),
            None,
        ),
    ];
    let assigned = assign(&decision, &place, targets, at, || ids.next());
    events.extend(assigned.events);
    Ok(PlannedCase {
        intake: index,
        case_id,
        contact_id: ids.next(),
        reference,
        receipt,
        details: CaseDetails {
            intake: intake.intake.clone(),
            action: intake.action,
            assessment: intake.assessment.clone(),
        },
        caller_hash,
        decision,
        referrals: assigned.referrals,
        dispatches: assigned.dispatches,
        timers: assigned.timers,
        events,
        created_at: at,
        waits_for_team,
    })
}
