//! What the audit trail records of one access: the entry every read, change and refusal
//! appends. The trail's chaining, writing and reading are `crate::audit`'s and the store's.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::requester::Requester;

/// The outcome of a request that went through.
pub const OK: &str = "ok";

/// One access, as the trail records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who: the token's subject.
    pub subject: String,
    /// Their role.
    pub role: String,
    /// What they asked to do.
    pub action: String,
    /// The case concerned.
    pub case_id: Option<Uuid>,
    /// `ok`, or the refusal's code.
    pub outcome: String,
    /// The request's id.
    pub request_id: String,
}

impl AuditEntry {
    /// An entry for what `requester` asked for on `case_id`, with what came of it.
    pub fn requested(
        requester: &Requester,
        case_id: Option<Uuid>,
        outcome: &str,
        at: DateTime<Utc>,
    ) -> Self {
        let (subject, role, action) = (&requester.subject, requester.role, requester.action);
        Self::of(
            subject,
            role,
            action,
            &requester.request_id,
            case_id,
            outcome,
            at,
        )
    }

    pub(crate) fn of(
        subject: &str,
        role: &str,
        action: &str,
        request_id: &str,
        case_id: Option<Uuid>,
        outcome: &str,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            at,
            subject: subject.to_owned(),
            role: role.to_owned(),
            action: action.to_owned(),
            case_id,
            outcome: outcome.to_owned(),
            request_id: request_id.to_owned(),
        }
    }
}
