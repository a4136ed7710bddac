//! The hash chains over events and audit rows, in the SQL both backends share: how a row is
//! hashed when written and checked again by `referrals audit verify`.

use uuid::Uuid;

use super::sql::{EventDbRow, EventRow, micros};
use crate::audit::{AuditEntry, ChainHasher};

/// Takes `$1` numbers of the chain `$2` and returns the last one with the hash to chain from.
pub(super) const ADVANCE_CHAIN: &str = "update sequences set last_value = last_value + $1 \
     where name = $2 returning last_value, hash";

/// Keeps the hash of the chain's last row beside its counter.
pub(super) const SET_CHAIN_HEAD: &str = "update sequences set hash = $1 where name = $2";

/// A chain's head: the last number taken and the last row's hash.
pub(super) const CHAIN_HEAD: &str = "select last_value, hash from sequences where name = $1";

pub(super) const INSERT_AUDIT: &str = "insert into audit_log (audit_id, at, subject, role, \
     action, case_id, outcome, request_id, hash) ";

pub(super) const AUDIT_COLUMNS: &str =
    "audit_id, at, subject, role, action, case_id, outcome, request_id";

/// Rows read per query while verifying.
pub(super) const VERIFY_PAGE: i64 = 2_000;

/// The columns of an event that its hash covers: all of them.
pub(super) struct EventColumns<'a> {
    pub(super) event_id: i64,
    pub(super) case_id: Uuid,
    pub(super) kind: &'a str,
    pub(super) actor: &'a str,
    pub(super) occurred_at: i64,
    pub(super) reason: Option<&'a str>,
    pub(super) data: &'a [u8],
    pub(super) line: &'a str,
    pub(super) province: &'a str,
    pub(super) county: &'a str,
    pub(super) priority: &'a str,
    pub(super) team_id: Option<&'a str>,
    pub(super) recorded_by: &'a str,
}

impl EventColumns<'_> {
    /// The row's hash, chained to `previous`.
    pub(super) fn hash(&self, previous: ChainHasher) -> Vec<u8> {
        previous
            .number(self.event_id)
            .bytes(self.case_id.as_bytes())
            .text(self.kind)
            .text(self.actor)
            .number(self.occurred_at)
            .optional(self.reason.map(str::as_bytes))
            .bytes(self.data)
            .text(self.line)
            .text(self.province)
            .text(self.county)
            .text(self.priority)
            .optional(self.team_id.map(str::as_bytes))
            .text(self.recorded_by)
            .finish()
    }
}

impl EventRow {
    /// The columns this event is written with under `event_id`.
    pub(super) fn columns(&self, event_id: i64) -> EventColumns<'_> {
        EventColumns {
            event_id,
            case_id: self.case_id,
            kind: &self.kind,
            actor: &self.actor,
            occurred_at: self.occurred_at,
            reason: self.reason.as_deref(),
            data: &self.data,
            line: self.line,
            province: &self.province,
            county: &self.county,
            priority: self.priority,
            team_id: self.team_id.as_deref(),
            recorded_by: &self.recorded_by,
        }
    }
}

impl EventDbRow {
    /// The columns as stored.
    pub(super) fn columns(&self) -> EventColumns<'_> {
        EventColumns {
            event_id: self.event_id,
            case_id: self.case_id,
            kind: &self.kind,
            actor: &self.actor,
            occurred_at: self.occurred_at,
            reason: self.reason.as_deref(),
            data: &self.data,
            line: &self.line,
            province: &self.province,
            county: &self.county,
            priority: &self.priority,
            team_id: self.team_id.as_deref(),
            recorded_by: &self.recorded_by,
        }
    }
}

/// An audit row's hash, chained to `previous`.
pub(super) fn audit_hash(previous: ChainHasher, audit_id: i64, entry: &AuditEntry) -> Vec<u8> {
    previous
        .number(audit_id)
        .number(micros(entry.at))
        .text(&entry.subject)
        .text(&entry.role)
        .text(&entry.action)
        .optional(entry.case_id.as_ref().map(|id| &id.as_bytes()[..]))
        .text(&entry.outcome)
        .text(&entry.request_id)
        .finish()
}

/// A stored audit row.
#[derive(sqlx::FromRow)]
pub(super) struct AuditDbRow {
    pub(super) audit_id: i64,
    pub(super) at: i64,
    pub(super) subject: String,
    pub(super) role: String,
    pub(super) action: String,
    pub(super) case_id: Option<Uuid>,
    pub(super) outcome: String,
    pub(super) request_id: String,
}

impl AuditDbRow {
    pub(super) fn into_record(self) -> Result<crate::audit::AuditRecord, crate::domain::Error> {
        Ok(crate::audit::AuditRecord {
            sequence: self.audit_id,
            entry: AuditEntry {
                at: super::sql::from_micros(self.at)?,
                subject: self.subject,
                role: self.role,
                action: self.action,
                case_id: self.case_id,
                outcome: self.outcome,
                request_id: self.request_id,
            },
        })
    }
}

/// Binds an audit row's values on `$row`, in `INSERT_AUDIT`'s column order.
macro_rules! push_audit {
    ($row:expr, $audit_id:expr, $entry:expr, $hash:expr) => {{
        let entry: &$crate::audit::AuditEntry = $entry;
        $row.push_bind($audit_id)
            .push_bind($crate::store::sql::micros(entry.at))
            .push_bind(&entry.subject)
            .push_bind(&entry.role)
            .push_bind(&entry.action)
            .push_bind(entry.case_id)
            .push_bind(&entry.outcome)
            .push_bind(&entry.request_id)
            .push_bind($hash);
    }};
}

pub(super) use push_audit;

/// Appends audit entries in a transaction, chained, under the trail's next numbers. The
/// trail's counter row stays locked until commit, so entries appear in number order.
macro_rules! write_audit {
    ($tx:expr, $entries:expr) => {{
        use $crate::store::chain::{ADVANCE_CHAIN, INSERT_AUDIT, SET_CHAIN_HEAD, audit_hash};
        let entries: &[$crate::audit::AuditEntry] = $entries;
        if !entries.is_empty() {
            let count = entries.len() as i64;
            let (last, mut previous): (i64, Option<Vec<u8>>) = sqlx::query_as(ADVANCE_CHAIN)
                .bind(count)
                .bind("audit")
                .fetch_one(&mut *$tx)
                .await
                .map_err($crate::store::map_sqlx_error)?;
            let mut rows = Vec::with_capacity(entries.len());
            for (audit_id, entry) in (last - count + 1..).zip(entries) {
                let hash = audit_hash(
                    $crate::audit::ChainHasher::new(previous.as_deref()),
                    audit_id,
                    entry,
                );
                previous = Some(hash.clone());
                rows.push((audit_id, entry, hash));
            }
            $crate::store::sql::insert_rows!($tx, INSERT_AUDIT, &rows, |row,
                                                                        (
                audit_id,
                entry,
                hash,
            )| {
                $crate::store::chain::push_audit!(row, *audit_id, entry, hash);
            });
            $crate::store::changes::exec!($tx, SET_CHAIN_HEAD, previous, "audit");
        }
    }};
}

pub(super) use write_audit;
