//! The stored form of values: times as microseconds, JSON columns, and the sealed (encrypted)
//! columns with the row keys each value is bound to.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::crypto::{FieldCipher, Place, row_key};
use crate::domain::Error;
use crate::domain::case::CaseDetails;
use crate::domain::decision::Decision;

/// Microseconds since the Unix epoch, the stored form of a time.
pub(super) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(super) fn from_micros(micros: i64) -> Result<DateTime<Utc>, Error> {
    Utc.timestamp_micros(micros)
        .single()
        .ok_or_else(|| Error::internal(format!("stored time out of range: {micros}")))
}

pub(super) fn to_json(value: &impl Serialize) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(Error::internal)
}

/// Decodes stored JSON. The error names only where decoding failed: serde's own message may
/// quote the stored value, which can be sensitive.
pub(super) fn from_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::internal(format!(
            "stored JSON does not decode ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

pub(super) fn parse_enum<T: std::str::FromStr>(column: &str, value: &str) -> Result<T, Error> {
    value
        .parse()
        .map_err(|_| Error::internal(format!("unknown {column} in storage: {value}")))
}

/// A stored enum that may be empty (a crisis's event has no line or priority).
pub(super) fn optional_enum<T: std::str::FromStr>(
    column: &str,
    value: &str,
) -> Result<Option<T>, Error> {
    if value.is_empty() {
        return Ok(None);
    }
    parse_enum(column, value).map(Some)
}

/// A sealed column: its table and name, which each value is bound to with its row's key.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sealed(pub(super) &'static str, pub(super) &'static str);

/// The intake, action and triage of a case.
pub(super) const CASE_DETAILS: Sealed = Sealed("cases", "details");
/// A contact, with the caller's number.
pub(super) const CONTACT_DETAILS: Sealed = Sealed("contacts", "details");
/// A note's text.
pub(super) const NOTE_BODY: Sealed = Sealed("notes", "body");
/// What came of a follow-up.
pub(super) const FOLLOW_UP_OUTCOME: Sealed = Sealed("follow_ups", "outcome");
/// A routing decision, whose candidates' distances place the incident.
pub(super) const DECISION: Sealed = Sealed("routing_decisions", "decision");
/// Where a team was at a step (at the scene: where the person is).
pub(super) const STEP_POSITION: Sealed = Sealed("dispatch_steps", "position");

impl Sealed {
    fn place<'a>(&self, row: &'a [u8]) -> Place<'a> {
        Place {
            table: self.0,
            column: self.1,
            row,
        }
    }

    pub(super) fn seal(
        &self,
        cipher: &FieldCipher,
        row: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, Error> {
        cipher.seal(self.place(row), plain)
    }

    pub(super) fn open(
        &self,
        cipher: &FieldCipher,
        row: &[u8],
        stored: &[u8],
    ) -> Result<Vec<u8>, Error> {
        cipher.open(self.place(row), stored)
    }

    pub(super) fn seal_text(
        &self,
        cipher: &FieldCipher,
        row: &[u8],
        plain: &str,
    ) -> Result<String, Error> {
        cipher.seal_text(self.place(row), plain)
    }

    pub(super) fn open_text(
        &self,
        cipher: &FieldCipher,
        row: &[u8],
        stored: &str,
    ) -> Result<String, Error> {
        cipher.open_text(self.place(row), stored)
    }
}

/// The row key of a routing decision.
pub(super) fn decision_row(case_id: Uuid, decision_no: i64) -> Vec<u8> {
    row_key(&case_id, &[&decision_no.to_be_bytes()])
}

/// The row key of a dispatch step.
pub(super) fn step_row(dispatch_id: Uuid, status: &str) -> Vec<u8> {
    row_key(&dispatch_id, &[status.as_bytes()])
}

/// Opens a case's sealed details.
pub(super) fn case_details(
    cipher: &FieldCipher,
    case_id: Uuid,
    stored: &[u8],
) -> Result<CaseDetails, Error> {
    from_json(&CASE_DETAILS.open(cipher, case_id.as_bytes(), stored)?)
}

/// Opens a sealed routing decision.
pub(super) fn decision_of(
    cipher: &FieldCipher,
    case_id: Uuid,
    decision_no: i64,
    stored: &str,
) -> Result<Decision, Error> {
    let json = DECISION.open_text(cipher, &decision_row(case_id, decision_no), stored)?;
    from_json(json.as_bytes())
}

/// Seals a team's position at a step.
pub(super) fn seal_position(
    cipher: &FieldCipher,
    dispatch_id: Uuid,
    status: &str,
    position: Option<(f64, f64)>,
) -> Result<Option<Vec<u8>>, Error> {
    position
        .map(|p| STEP_POSITION.seal(cipher, &step_row(dispatch_id, status), &to_json(&p)?))
        .transpose()
}
