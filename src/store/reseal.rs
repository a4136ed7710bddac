//! Sealing stored values again under the keyring's active key (after `referrals keys rotate`),
//! and sealing values stored in clear by a database older than encryption at rest.
//!
//! Rows are walked in key order a page at a time; each value is written back only if it is
//! still what was read (compare and set), so a change committed meanwhile is never undone.

use uuid::Uuid;

use super::db::{Query, query, query_as};
use super::map_sqlx_error as db_error;
use super::sealed::{CASE_DETAILS, CONTACT_DETAILS, NOTE_BODY, Sealed};
use super::sql_store::SqlStore;
use crate::domain::Error;

/// Rows read per page.
pub(super) const PAGE: i64 = 500;

/// What one walk did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResealCount {
    /// Values sealed again under the active key.
    pub resealed: u64,
    /// Values found in clear and sealed.
    pub sealed_from_clear: u64,
}

impl ResealCount {
    pub(super) fn add(&mut self, was_clear: bool) {
        if was_clear {
            self.sealed_from_clear += 1;
        } else {
            self.resealed += 1;
        }
    }
}

/// The first key of a walk.
pub(super) const START: Uuid = Uuid::nil();

impl SqlStore {
    /// Reseals every sealed column; see [`super::Store::reseal`].
    pub(super) async fn reseal(&self) -> Result<Vec<(String, ResealCount)>, Error> {
        let label = |c: Sealed| format!("{}.{}", c.0, c.1);
        Ok(vec![
            (
                label(CASE_DETAILS),
                self.reseal_column(CASE_DETAILS, "case_id", false).await?,
            ),
            (
                label(CONTACT_DETAILS),
                self.reseal_column(CONTACT_DETAILS, "contact_id", true)
                    .await?,
            ),
            (
                label(NOTE_BODY),
                self.reseal_column(NOTE_BODY, "note_id", false).await?,
            ),
            ("follow_ups.outcome".into(), self.reseal_outcomes().await?),
            (
                "routing_decisions.decision".into(),
                self.reseal_decisions().await?,
            ),
            (
                "dispatch_steps.position".into(),
                self.reseal_positions().await?,
            ),
        ])
    }

    /// Reseals one binary column of a table keyed by one UUID column; `$hash` also
    /// refreshes a contact's caller hash from what it opens.
    pub(super) async fn reseal_column(
        &self,
        column: super::sealed::Sealed,
        key: &str,
        contact_hash: bool,
    ) -> Result<ResealCount, Error> {
        use crate::crypto::FieldCipher;

        let (table, name) = (column.0, column.1);
        let active = self.cipher.active_key();
        let select = format!(
            "select {key}, {name} from {table} where {key} > $1 and {name} is not null \
             order by {key} limit $2"
        );
        let update = format!("update {table} set {name} = $1 where {key} = $2 and {name} = $3");
        let update_hash = format!(
            "update {table} set {name} = $1, caller_hash = $4 where {key} = $2 and {name} = $3"
        );
        let mut count = ResealCount::default();
        let mut after = START;
        loop {
            let rows: Vec<(Uuid, Vec<u8>)> = Query::built(select.as_str())
                .rows()
                .bind(after)
                .bind(PAGE)
                .fetch_all(self.backend.ex())
                .await
                .map_err(db_error)?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            for (id, stored) in rows {
                let key_id = FieldCipher::key_id(&stored);
                if key_id == Some(active) {
                    continue;
                }
                let clear = match key_id {
                    None => stored.clone(),
                    Some(_) => column.open(&self.cipher, id.as_bytes(), &stored)?,
                };
                let sealed = column.seal(&self.cipher, id.as_bytes(), &clear)?;
                let query = if contact_hash {
                    let contact: crate::domain::intake::Contact = super::sealed::from_json(&clear)?;
                    let hash = match &contact.caller_number {
                        Some(number) => self.cipher.caller_hash(number.expose())?,
                        None => None,
                    };
                    Query::built(update_hash.as_str())
                        .bind(sealed)
                        .bind(id)
                        .bind(&stored)
                        .bind(hash)
                } else {
                    Query::built(update.as_str())
                        .bind(sealed)
                        .bind(id)
                        .bind(&stored)
                };
                let done = query.execute(self.backend.ex()).await.map_err(db_error)?;
                if done == 1 {
                    count.add(key_id.is_none());
                }
            }
        }
        Ok(count)
    }

    /// Reseals the follow-ups' outcomes (a text column).
    pub(super) async fn reseal_outcomes(&self) -> Result<ResealCount, Error> {
        use super::sealed::FOLLOW_UP_OUTCOME as COLUMN;
        use crate::crypto::FieldCipher;

        let active = self.cipher.active_key();
        let mut count = ResealCount::default();
        let mut after = START;
        loop {
            let rows: Vec<(Uuid, String)> = query_as(
                "select follow_up_id, outcome from follow_ups where follow_up_id > $1 \
                 and outcome is not null order by follow_up_id limit $2",
            )
            .bind(after)
            .bind(PAGE)
            .fetch_all(self.backend.ex())
            .await
            .map_err(db_error)?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            for (id, stored) in rows {
                let key_id = FieldCipher::text_bytes(&stored).and_then(|b| FieldCipher::key_id(&b));
                if key_id == Some(active) {
                    continue;
                }
                let clear = match key_id {
                    None => stored.clone(),
                    Some(_) => COLUMN.open_text(&self.cipher, id.as_bytes(), &stored)?,
                };
                let sealed = COLUMN.seal_text(&self.cipher, id.as_bytes(), &clear)?;
                let done = query(
                    "update follow_ups set outcome = $1 where follow_up_id = $2 and outcome = $3",
                )
                .bind(sealed)
                .bind(id)
                .bind(&stored)
                .execute(self.backend.ex())
                .await
                .map_err(db_error)?;
                if done == 1 {
                    count.add(key_id.is_none());
                }
            }
        }
        Ok(count)
    }

    /// Reseals the routing decisions (a text column keyed by case and number).
    pub(super) async fn reseal_decisions(&self) -> Result<ResealCount, Error> {
        use super::sealed::{DECISION as COLUMN, decision_row};
        use crate::crypto::FieldCipher;

        let active = self.cipher.active_key();
        let mut count = ResealCount::default();
        let mut after = (START, 0_i64);
        loop {
            let rows: Vec<(Uuid, i64, String)> = query_as(
                "select case_id, decision_no, decision from routing_decisions \
                 where (case_id, decision_no) > ($1, $2) \
                 order by case_id, decision_no limit $3",
            )
            .bind(after.0)
            .bind(after.1)
            .bind(PAGE)
            .fetch_all(self.backend.ex())
            .await
            .map_err(db_error)?;
            let Some(last) = rows.last() else { break };
            after = (last.0, last.1);
            for (case_id, number, stored) in rows {
                let key_id = FieldCipher::text_bytes(&stored).and_then(|b| FieldCipher::key_id(&b));
                if key_id == Some(active) {
                    continue;
                }
                let row = decision_row(case_id, number);
                let clear = match key_id {
                    None => stored.clone(),
                    Some(_) => COLUMN.open_text(&self.cipher, &row, &stored)?,
                };
                let sealed = COLUMN.seal_text(&self.cipher, &row, &clear)?;
                let done = query(
                    "update routing_decisions set decision = $1 \
                     where case_id = $2 and decision_no = $3 and decision = $4",
                )
                .bind(sealed)
                .bind(case_id)
                .bind(number)
                .bind(&stored)
                .execute(self.backend.ex())
                .await
                .map_err(db_error)?;
                if done == 1 {
                    count.add(key_id.is_none());
                }
            }
        }
        Ok(count)
    }

    /// Reseals the teams' positions at each step, moving clear ones into the sealed
    /// column.
    pub(super) async fn reseal_positions(&self) -> Result<ResealCount, Error> {
        use super::sealed::{STEP_POSITION as COLUMN, from_json, seal_position, step_row};
        use crate::crypto::FieldCipher;

        let active = self.cipher.active_key();
        let mut count = ResealCount::default();
        let mut after = (START, String::new());
        loop {
            #[allow(clippy::type_complexity)]
            let rows: Vec<(Uuid, String, Option<Vec<u8>>, Option<f64>, Option<f64>)> = query_as(
                "select dispatch_id, status, position, lat, lon from dispatch_steps \
                     where (dispatch_id, status) > ($1, $2) \
                     and (position is not null or lat is not null) \
                     order by dispatch_id, status limit $3",
            )
            .bind(after.0)
            .bind(&after.1)
            .bind(PAGE)
            .fetch_all(self.backend.ex())
            .await
            .map_err(db_error)?;
            let Some(last) = rows.last() else { break };
            after = (last.0, last.1.clone());
            for (id, status, sealed, lat, lon) in rows {
                let (clear, was_clear) = match (&sealed, lat.zip(lon)) {
                    (Some(stored), _) if FieldCipher::key_id(stored) == Some(active) => continue,
                    (Some(stored), _) => (
                        from_json::<(f64, f64)>(&COLUMN.open(
                            &self.cipher,
                            &step_row(id, &status),
                            stored,
                        )?)?,
                        false,
                    ),
                    (None, Some(position)) => (position, true),
                    (None, None) => continue,
                };
                let resealed = seal_position(&self.cipher, id, &status, Some(clear))?;
                let done = query(
                    "update dispatch_steps set position = $1, lat = null, lon = null \
                     where dispatch_id = $2 and status = $3 \
                     and (position = $4 or (position is null and $4 is null))",
                )
                .bind(resealed)
                .bind(id)
                .bind(&status)
                .bind(&sealed)
                .execute(self.backend.ex())
                .await
                .map_err(db_error)?;
                if done == 1 {
                    count.add(was_clear);
                }
            }
        }
        Ok(count)
    }
}
