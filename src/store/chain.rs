//! The hash chains over events and audit rows: how a row is hashed when written, the audit
//! trail's writes and reads, and the walk `referrals audit verify` makes over both chains.

use uuid::Uuid;

use super::ChainHead;
use super::db::{Query, Row, Tx, Values, query, query_as, query_scalar};
use super::map_sqlx_error as db_error;
use super::rows::{EventDbRow, EventRow};
use super::sealed::{from_micros, micros};
use super::sql_store::SqlStore;
use super::statements::{EVENT_COLUMNS, INSERT_EVENTS as EVENT_INSERT, ROWS_PER_INSERT};
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
    pub(super) case_id: Option<Uuid>,
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
            // A crisis's event has no case: no bytes, where a case's id has 16.
            .bytes(
                self.case_id
                    .as_ref()
                    .map_or(&[][..], |id| &id.as_bytes()[..]),
            )
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

/// A row of one of the two chains: numbered, hashed over its columns and the row before it, and
/// written with its number and hash.
pub(super) trait Chained {
    /// The insert's head, without its values.
    const INSERT: &'static str;

    /// The row's hash under `number`, chained to `previous`.
    fn hash(&self, previous: ChainHasher, number: i64) -> Vec<u8>;

    /// Binds the row's values under `number` with `hash`, in the insert's column order.
    fn push(&self, row: &mut Values<'_>, number: i64, hash: &[u8]);
}

impl Chained for EventRow {
    const INSERT: &'static str = EVENT_INSERT;

    fn hash(&self, previous: ChainHasher, number: i64) -> Vec<u8> {
        self.columns(number).hash(previous)
    }

    fn push(&self, row: &mut Values<'_>, number: i64, hash: &[u8]) {
        EventRow::push(self, row, number, hash);
    }
}

impl Chained for AuditEntry {
    const INSERT: &'static str = INSERT_AUDIT;

    fn hash(&self, previous: ChainHasher, number: i64) -> Vec<u8> {
        audit_hash(previous, number, self)
    }

    fn push(&self, row: &mut Values<'_>, number: i64, hash: &[u8]) {
        row.push_bind(number)
            .push_bind(micros(self.at))
            .push_bind(&self.subject)
            .push_bind(&self.role)
            .push_bind(&self.action)
            .push_bind(self.case_id)
            .push_bind(&self.outcome)
            .push_bind(&self.request_id)
            .push_bind(hash);
    }
}

/// Numbers `rows` as the last of a chain that now ends at `last` and hashes each from the one
/// before, the first from `head` (the hash the chain ended with before them). Returns the first
/// row's number and the hashes, in order.
pub(super) fn link<T: Chained>(
    rows: &[T],
    last: i64,
    head: Option<Vec<u8>>,
) -> (i64, Vec<Vec<u8>>) {
    let first = last - rows.len() as i64 + 1;
    let mut previous = head;
    let hashes = (first..)
        .zip(rows)
        .map(|(number, row)| {
            let hash = row.hash(ChainHasher::new(previous.as_deref()), number);
            previous = Some(hash.clone());
            hash
        })
        .collect();
    (first, hashes)
}

/// Appends `rows` to the chain named `chain` in a transaction, under its next numbers, and
/// returns the last number. The chain's counter row stays locked until commit: rows appear in
/// number order with no gap, and the shorter the stretch after this, the less another writer
/// waits.
pub(super) async fn append<T: Chained>(
    tx: &mut Tx,
    chain: &'static str,
    rows: &[T],
) -> Result<i64, Error> {
    let (last, head): (i64, Option<Vec<u8>>) = query_as(ADVANCE_CHAIN)
        .bind(rows.len() as i64)
        .bind(chain)
        .fetch_one(tx.ex())
        .await
        .map_err(db_error)?;
    let (first, hashes) = link(rows, last, head.clone());
    let numbered: Vec<_> = (first..).zip(rows).zip(&hashes).collect();
    for chunk in numbered.chunks(ROWS_PER_INSERT) {
        let mut insert = Query::built(T::INSERT);
        insert.push_values(chunk, |row, ((number, item), hash)| {
            item.push(row, *number, hash);
        });
        tx.run(insert).await?;
    }
    let head = hashes.last().cloned().or(head);
    tx.run(query(SET_CHAIN_HEAD).bind(head).bind(chain)).await?;
    Ok(last)
}

/// Appends audit entries in a transaction, chained, under the trail's next numbers.
pub(super) async fn write_audit(tx: &mut Tx, entries: &[AuditEntry]) -> Result<(), Error> {
    if !entries.is_empty() {
        append(tx, "audit", entries).await?;
    }
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

    /// The heads of both chains.
    pub(super) async fn heads(&self) -> Result<Vec<ChainHead>, Error> {
        let mut heads = Vec::new();
        for chain in ["event", "audit"] {
            let (number, hash): (i64, Option<Vec<u8>>) = query_as(CHAIN_HEAD)
                .bind(chain)
                .fetch_one(self.backend.ex())
                .await
                .map_err(db_error)?;
            heads.push(ChainHead {
                chain,
                number,
                hash,
            });
        }
        Ok(heads)
    }

    /// The stored hash of one row of a chain.
    pub(super) async fn hash_at(&self, chain: &str, number: i64) -> Result<Option<Vec<u8>>, Error> {
        let select = match chain {
            "event" => "select hash from events where event_id = $1",
            "audit" => "select hash from audit_log where audit_id = $1",
            _ => return Ok(None),
        };
        let hash: Option<Option<Vec<u8>>> = query_scalar(select)
            .bind(number)
            .fetch_optional(self.backend.ex())
            .await
            .map_err(db_error)?;
        Ok(hash.flatten())
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
