//! The hash chains over events and audit rows: how a row is hashed when written, the audit
//! trail's writes and reads, and the walk `referrals audit verify` makes over both chains.

use uuid::Uuid;

use super::db::{Query, Row, Tx, Values, query, query_as};
use super::map_sqlx_error as db_error;
use super::rows::{EventDbRow, EventRow};
use super::sealed::{from_micros, micros};
use super::sql_store::SqlStore;
use super::statements::{EVENT_COLUMNS, ROWS_PER_INSERT};
use crate::audit::{AuditEntry, AuditQuery, AuditRecord, ChainCheck, ChainHasher, ChainReport};
use crate::domain::Error;

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
            kind: self.kind,
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
    pub(super) fn into_record(self) -> Result<AuditRecord, Error> {
        Ok(AuditRecord {
            sequence: self.audit_id,
            entry: AuditEntry {
                at: from_micros(self.at)?,
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

/// Binds an audit row's values on a `values` row, in `INSERT_AUDIT`'s column order.
pub(super) fn push_audit(row: &mut Values<'_>, audit_id: i64, entry: &AuditEntry, hash: &[u8]) {
    row.push_bind(audit_id)
        .push_bind(micros(entry.at))
        .push_bind(&entry.subject)
        .push_bind(&entry.role)
        .push_bind(&entry.action)
        .push_bind(entry.case_id)
        .push_bind(&entry.outcome)
        .push_bind(&entry.request_id)
        .push_bind(hash);
}

/// Appends audit entries in a transaction, chained, under the trail's next numbers. The
/// trail's counter row stays locked until commit, so entries appear in number order.
pub(super) async fn write_audit(tx: &mut Tx, entries: &[AuditEntry]) -> Result<(), Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let count = entries.len() as i64;
    let (last, mut previous): (i64, Option<Vec<u8>>) = query_as(ADVANCE_CHAIN)
        .bind(count)
        .bind("audit")
        .fetch_one(tx.ex())
        .await
        .map_err(db_error)?;
    let mut rows = Vec::with_capacity(entries.len());
    for (audit_id, entry) in (last - count + 1..).zip(entries) {
        let hash = audit_hash(ChainHasher::new(previous.as_deref()), audit_id, entry);
        previous = Some(hash.clone());
        rows.push((audit_id, entry, hash));
    }
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut insert = Query::built(INSERT_AUDIT);
        insert.push_values(chunk, |row, (audit_id, entry, hash)| {
            push_audit(row, *audit_id, entry, hash);
        });
        tx.run(insert).await?;
    }
    tx.run(query(SET_CHAIN_HEAD).bind(previous).bind("audit"))
        .await?;
    Ok(())
}

/// A row read with its chain number and stored hash.
#[derive(sqlx::FromRow)]
struct Hashed<T> {
    #[sqlx(flatten)]
    row: T,
    number: i64,
    hash: Option<Vec<u8>>,
}

impl SqlStore {
    pub(super) async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), Error> {
        let mut tx = self.backend.begin_write().await.map_err(db_error)?;
        write_audit(&mut tx, entries).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    pub(super) async fn audit_trail(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, Error> {
        let mut q = Query::built(format!(
            "select {AUDIT_COLUMNS} from audit_log where audit_id > "
        ));
        q.push_bind(query.after);
        if let Some(subject) = &query.subject {
            q.push(" and subject = ").push_bind(subject.clone());
        }
        if let Some(case_id) = query.case_id {
            q.push(" and case_id = ").push_bind(case_id);
        }
        if let Some(action) = &query.action {
            q.push(" and action = ").push_bind(action.clone());
        }
        if let Some(outcome) = &query.outcome {
            q.push(" and outcome = ").push_bind(outcome.clone());
        }
        if let Some(from) = query.from {
            q.push(" and at >= ").push_bind(micros(from));
        }
        if let Some(before) = query.before {
            q.push(" and at < ").push_bind(micros(before));
        }
        q.push(" order by audit_id limit ")
            .push_bind(i64::from(query.limit));
        let rows: Vec<AuditDbRow> = q
            .rows()
            .fetch_all(self.backend.ex())
            .await
            .map_err(db_error)?;
        rows.into_iter().map(AuditDbRow::into_record).collect()
    }

    pub(super) async fn verify_chains(&self) -> Result<Vec<ChainReport>, Error> {
        let events = format!(
            "select {EVENT_COLUMNS}, event_id as number, hash from events \
             where event_id > $1 and event_id <= $2 order by event_id limit $3"
        );
        let audit = format!(
            "select {AUDIT_COLUMNS}, audit_id as number, hash from audit_log \
             where audit_id > $1 and audit_id <= $2 order by audit_id limit $3"
        );
        Ok(vec![
            self.walk("event", &events, |check, row: Hashed<EventDbRow>| {
                Ok(row.row.columns().hash(check.hasher()))
            })
            .await?,
            self.walk("audit", &audit, |check, row: Hashed<AuditDbRow>| {
                let number = row.number;
                Ok(audit_hash(
                    check.hasher(),
                    number,
                    &row.row.into_record()?.entry,
                ))
            })
            .await?,
        ])
    }

    /// Walks one chain: its head first, then every row up to it (rows after it are newer
    /// writes, committed after the head was read), a page at a time; `recompute` hashes a row
    /// as it should be.
    async fn walk<T>(
        &self,
        chain: &'static str,
        select: &str,
        recompute: impl Fn(&ChainCheck, Hashed<T>) -> Result<Vec<u8>, Error>,
    ) -> Result<ChainReport, Error>
    where
        Hashed<T>: Row,
    {
        let (head, head_hash): (i64, Option<Vec<u8>>) = query_as(CHAIN_HEAD)
            .bind(chain)
            .fetch_one(self.backend.ex())
            .await
            .map_err(db_error)?;
        let mut check = ChainCheck::new(chain);
        let mut after = 0_i64;
        while !check.broken() {
            let rows: Vec<Hashed<T>> = Query::built(select)
                .bind(after)
                .bind(head)
                .bind(VERIFY_PAGE)
                .rows()
                .fetch_all(self.backend.ex())
                .await
                .map_err(db_error)?;
            let Some(last) = rows.last() else { break };
            after = last.number;
            for row in rows {
                let (number, hash) = (row.number, row.hash.clone());
                let recomputed = recompute(&check, row)?;
                check.row(number, hash.as_deref(), recomputed);
            }
        }
        Ok(check.finish(head, head_hash.as_deref()))
    }
}
