//! Crisis declarations as stored (see [`crate::routing::crisis`]): each declaration's row, the
//! event on its province's feed, the caller's key and the directory's counter, in one
//! transaction.

use uuid::Uuid;

use super::changes::{INSERT_CHANGE_KEY, SELECT_CHANGE_KEY};
use super::db::{Tx, query, query_as};
use super::events::write_events;
use super::map_sqlx_error as db_error;
use super::rows::EventRow;
use super::sealed::{from_json, from_micros, micros, to_json};
use super::sql_store::{SqlStore, bump_directory};
use super::{CrisisOutcome, CrisisPlanner};
use crate::domain::Error;
use crate::routing::crisis::{Crisis, CrisisRequest};

const SELECT_CRISES: &str = "select crisis_id, province, name, starts_at, ends_at, measures, \
     version, declared_by, updated_by, updated_at from crises order by starts_at, crisis_id";

const SELECT_CRISIS: &str = "select crisis_id, province, name, starts_at, ends_at, measures, \
     version, declared_by, updated_by, updated_at from crises where crisis_id = $1";

const SELECT_AREA_CRISES: &str = "select crisis_id, province, name, starts_at, ends_at, \
     measures, version, declared_by, updated_by, updated_at from crises where province = $1";

/// A new declaration, or the next version of one: a version that is not the next of the stored
/// one writes nothing.
const WRITE_CRISIS: &str = "insert into crises (crisis_id, province, name, starts_at, ends_at, \
     measures, version, declared_by, updated_by, updated_at) \
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     on conflict (crisis_id) do update set name = excluded.name, \
     starts_at = excluded.starts_at, ends_at = excluded.ends_at, measures = excluded.measures, \
     version = excluded.version, updated_by = excluded.updated_by, \
     updated_at = excluded.updated_at \
     where crises.version = excluded.version - 1";

#[derive(sqlx::FromRow)]
pub(super) struct CrisisRow {
    crisis_id: Uuid,
    province: String,
    name: String,
    starts_at: i64,
    ends_at: Option<i64>,
    measures: String,
    version: i64,
    declared_by: String,
    updated_by: String,
    updated_at: i64,
}

impl CrisisRow {
    pub(super) fn into_crisis(self) -> Result<Crisis, Error> {
        Ok(Crisis {
            crisis_id: self.crisis_id,
            province: (!self.province.is_empty()).then_some(self.province),
            name: self.name,
            starts_at: from_micros(self.starts_at)?,
            ends_at: self.ends_at.map(from_micros).transpose()?,
            measures: from_json(self.measures.as_bytes())?,
            version: self.version,
            declared_by: self.declared_by,
            updated_by: self.updated_by,
            updated_at: from_micros(self.updated_at)?,
        })
    }
}

/// Every declaration, oldest start first.
pub(super) async fn all_crises(tx: &mut Tx) -> Result<Vec<Crisis>, Error> {
    let rows: Vec<CrisisRow> = query_as(SELECT_CRISES)
        .fetch_all(tx.ex())
        .await
        .map_err(db_error)?;
    rows.into_iter().map(CrisisRow::into_crisis).collect()
}

async fn crisis_in(tx: &mut Tx, crisis_id: Uuid) -> Result<Option<Crisis>, Error> {
    let row: Option<CrisisRow> = query_as(SELECT_CRISIS)
        .bind(crisis_id)
        .fetch_optional(tx.ex())
        .await
        .map_err(db_error)?;
    row.map(CrisisRow::into_crisis).transpose()
}

impl SqlStore {
    pub(super) async fn crises(&self) -> Result<Vec<Crisis>, Error> {
        let mut tx = self.backend.begin_read().await.map_err(db_error)?;
        let crises = all_crises(&mut tx).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(crises)
    }

    pub(super) async fn write_crisis(
        &self,
        request: &CrisisRequest,
        planner: &mut CrisisPlanner<'_>,
    ) -> Result<CrisisOutcome, Error> {
        let (mut tx, seen) = self.begin_locked().await?;
        if let Some(key) = &request.key {
            let found: Option<(Vec<u8>, String)> = query_as(SELECT_CHANGE_KEY)
                .bind(&request.actor)
                .bind(&key.request_id)
                .fetch_optional(tx.ex())
                .await
                .map_err(db_error)?;
            match found {
                Some((hash, outcome)) if hash == key.payload_hash => {
                    let crisis_id: Uuid = outcome
                        .parse()
                        .map_err(|_| Error::internal("a crisis request's key holds no crisis"))?;
                    let crisis = crisis_in(&mut tx, crisis_id)
                        .await?
                        .ok_or_else(|| Error::internal("a crisis request's key names no crisis"))?;
                    return Ok(CrisisOutcome {
                        crisis,
                        replayed: true,
                    });
                }
                Some(_) => return Err(Error::IdempotencyConflict),
                None => {}
            }
        }
        let current = match request.crisis_id() {
            Some(id) => crisis_in(&mut tx, id).await?,
            None => None,
        };
        let province = match request.declared_province() {
            Some(province) => province.map(str::to_owned),
            None => current.as_ref().and_then(|c| c.province.clone()),
        };
        let rows: Vec<CrisisRow> = query_as(SELECT_AREA_CRISES)
            .bind(province.clone().unwrap_or_default())
            .fetch_all(tx.ex())
            .await
            .map_err(db_error)?;
        let same_area = rows
            .into_iter()
            .map(CrisisRow::into_crisis)
            .collect::<Result<Vec<_>, _>>()?;
        let plan = planner(request, current.as_ref(), &same_area)?;
        let crisis = &plan.crisis;
        let measures = String::from_utf8(to_json(&crisis.measures)?).map_err(Error::internal)?;
        let written = tx
            .run(
                query(WRITE_CRISIS)
                    .bind(crisis.crisis_id)
                    .bind(crisis.province.clone().unwrap_or_default())
                    .bind(&crisis.name)
                    .bind(micros(crisis.starts_at))
                    .bind(crisis.ends_at.map(micros))
                    .bind(measures)
                    .bind(crisis.version)
                    .bind(&crisis.declared_by)
                    .bind(&crisis.updated_by)
                    .bind(micros(crisis.updated_at)),
            )
            .await?;
        if written == 0 {
            return Err(Error::Stale(
                "the declaration changed meanwhile; read it again".into(),
            ));
        }
        if let Some(key) = &request.key {
            tx.run(
                query(INSERT_CHANGE_KEY)
                    .bind(&request.actor)
                    .bind(&key.request_id)
                    .bind(&key.payload_hash)
                    .bind(crisis.crisis_id.to_string())
                    .bind(micros(request.at)),
            )
            .await?;
        }
        let event = EventRow {
            case_id: None,
            kind: plan.kind.as_str(),
            actor: format!("supervisor:{}", request.actor),
            occurred_at: micros(request.at),
            reason: None,
            data: to_json(&plan.data)?,
            line: "",
            province: crisis.province.clone().unwrap_or_default(),
            county: String::new(),
            priority: "",
            team_id: None,
            recorded_by: String::new(),
        };
        write_events(self, &mut tx, &[event]).await?;
        // Routing on every server depends on the declarations: moving the counter makes each
        // read them again before its next write.
        let directory = bump_directory(&mut tx).await?;
        tx.commit().await.map_err(db_error)?;
        if seen == self.directory.get() {
            self.directory.set(directory);
        }
        Ok(CrisisOutcome {
            crisis: plan.crisis,
            replayed: false,
        })
    }
}
