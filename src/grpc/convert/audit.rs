//! Reads of the audit trail and the entries they return.

use super::*;

/// Page sizes of the audit trail.
const AUDIT_PAGE: (i32, i32) = (100, 1_000);

/// Parses a read of the audit trail.
pub(crate) fn audit_request(
    raw: pb::ListAuditEntriesRequest,
) -> Result<crate::audit::AuditQuery, Error> {
    let mut v = Violations::default();
    let text = |v: &mut Violations, field: &str, raw: String| {
        v.text(field, raw, limits::MAX_SHORT_TEXT, false)
    };
    let subject = text(&mut v, "subject", raw.subject);
    let action = text(&mut v, "action", raw.action);
    let outcome = text(&mut v, "outcome", raw.outcome);
    let case_id = if raw.case_id.is_empty() {
        None
    } else {
        case_id("case_id", &raw.case_id)
            .map_err(|_| v.add("case_id", "is not a UUID"))
            .ok()
    };
    let from = v.time("from", raw.from);
    let before = v.time("before", raw.before);
    let limit = match raw.page_size {
        0 => Some(AUDIT_PAGE.0),
        n if (1..=AUDIT_PAGE.1).contains(&n) => Some(n),
        _ => {
            v.add("page_size", format!("must be 0 to {}", AUDIT_PAGE.1));
            None
        }
    };
    let after = if raw.page_token.is_empty() {
        Some(0)
    } else {
        let after = raw.page_token.parse::<i64>().ok().filter(|n| *n > 0);
        if after.is_none() {
            v.add("page_token", "is not a token this service issued");
        }
        after
    };
    let parsed = match (limit, after) {
        (Some(limit), Some(after)) => Some(crate::audit::AuditQuery {
            subject,
            case_id,
            action,
            outcome,
            from,
            before,
            after,
            limit: limit as u32,
        }),
        _ => None,
    };
    v.finish(parsed)
}

impl From<crate::audit::AuditRecord> for pb::AuditEntry {
    fn from(record: crate::audit::AuditRecord) -> Self {
        let entry = record.entry;
        Self {
            sequence: record.sequence,
            at: Some(timestamp(entry.at)),
            subject: entry.subject,
            role: entry.role,
            action: entry.action,
            case_id: entry.case_id.map(|id| id.to_string()).unwrap_or_default(),
            outcome: entry.outcome,
            request_id: entry.request_id,
        }
    }
}
