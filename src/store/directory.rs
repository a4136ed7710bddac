//! The routing state as stored: the directory (provinces, counties, service points, teams and
//! their live state), its counter, and the policy's versions.

use super::RoutingData;
use super::changes::{INSERT_CHANGE_KEY, SELECT_CHANGE_KEY};
use super::db::{query, query_as, query_scalar};
use super::map_sqlx_error as db_error;
use super::rows::{PolicyRow, directory_from_rows, policy_from_row, service_point_details};
use super::sealed::micros;
use super::sql_store::{SqlStore, bump_directory};
use super::statements::{
    DIRECTORY_VERSION, INSERT_POLICY, LATEST_POLICY_VERSION, SELECT_COUNTIES, SELECT_POLICY,
    SELECT_PROVINCES, SELECT_SERVICE_POINTS, SELECT_TEAMS, UPDATE_OCCUPANCY, UPDATE_TEAM,
    UPSERT_COUNTY, UPSERT_PROVINCE, UPSERT_SERVICE_POINT, UPSERT_TEAM,
};
use crate::domain::Error;
use crate::domain::change::ChangeKey;
use crate::routing::directory::{DirectoryData, DirectoryUpdate};
use crate::routing::policy::PolicyDocument;

impl SqlStore {
    pub(super) async fn load_routing(&self) -> Result<RoutingData, Error> {
        let mut tx = self.backend.begin_read().await.map_err(db_error)?;
        let policy: Option<PolicyRow> = query_as(SELECT_POLICY)
            .fetch_optional(tx.ex())
            .await
            .map_err(db_error)?;
        let provinces = query_as(SELECT_PROVINCES)
            .fetch_all(tx.ex())
            .await
            .map_err(db_error)?;
        let counties = query_as(SELECT_COUNTIES)
            .fetch_all(tx.ex())
            .await
            .map_err(db_error)?;
        let points = query_as(SELECT_SERVICE_POINTS)
            .fetch_all(tx.ex())
            .await
            .map_err(db_error)?;
        let teams = query_as(SELECT_TEAMS)
            .fetch_all(tx.ex())
            .await
            .map_err(db_error)?;
        let directory: i64 = query_scalar(DIRECTORY_VERSION)
            .fetch_one(tx.ex())
            .await
            .map_err(db_error)?;
        let crises = super::crises::all_crises(&mut tx).await?;
        tx.commit().await.map_err(db_error)?;
        // What the caller now holds is this state of the directory.
        self.directory.set(directory);
        Ok(RoutingData {
            policy: policy.map(policy_from_row).transpose()?,
            directory: directory_from_rows(provinces, counties, points, teams)?,
            crises,
        })
    }

    pub(super) async fn upsert_directory(&self, data: &DirectoryData) -> Result<(), Error> {
        let now = micros(chrono::Utc::now());
        let (mut tx, seen) = self.begin_locked().await?;
        for province in &data.provinces {
            let neighbours =
                serde_json::to_string(&province.neighbours).map_err(Error::internal)?;
            query(UPSERT_PROVINCE)
                .bind(&province.code)
                .bind(neighbours)
                .execute(tx.ex())
                .await
                .map_err(db_error)?;
        }
        for county in &data.counties {
            query(UPSERT_COUNTY)
                .bind(&county.province)
                .bind(&county.name_en)
                .bind(&county.name_fa)
                .bind(county.lat)
                .bind(county.lon)
                .bind(&county.covered_by)
                .bind(&county.id)
                .execute(tx.ex())
                .await
                .map_err(db_error)?;
        }
        for point in &data.service_points {
            query(UPSERT_SERVICE_POINT)
                .bind(&point.id)
                .bind(point.kind.as_str())
                .bind(&point.province)
                .bind(&point.county)
                .bind(&point.name)
                .bind(point.capacity.map(i64::from))
                .bind(i64::from(point.occupancy))
                .bind(service_point_details(point)?)
                .bind(now)
                .execute(tx.ex())
                .await
                .map_err(db_error)?;
        }
        for team in &data.teams {
            let status: &'static str = team.status.into();
            query(UPSERT_TEAM)
                .bind(&team.id)
                .bind(&team.province)
                .bind(&team.base_county)
                .bind(&team.name)
                .bind(status)
                .bind(i64::from(team.load))
                .bind(team.position.map(|p| p.0))
                .bind(team.position.map(|p| p.1))
                .bind(now)
                .execute(tx.ex())
                .await
                .map_err(db_error)?;
        }
        let directory: i64 = bump_directory(&mut tx).await?;
        tx.commit().await.map_err(db_error)?;
        if seen == self.directory.get() {
            self.directory.set(directory);
        }
        Ok(())
    }

    pub(super) async fn store_policy(
        &self,
        policy: &PolicyDocument,
        expected_version: Option<i64>,
    ) -> Result<i64, Error> {
        let document = serde_json::to_string(policy).map_err(Error::internal)?;
        let (mut tx, seen) = self.begin_locked().await?;
        if let Some(expected) = expected_version {
            let latest: i64 = query_scalar(LATEST_POLICY_VERSION)
                .fetch_one(tx.ex())
                .await
                .map_err(db_error)?;
            if latest != expected {
                return Err(Error::Stale(format!(
                    "policy version {latest} is in force, not {expected}; read it again"
                )));
            }
        }
        // Two servers storing at once both see the same latest version; the second
        // insert then meets the first's key, and is as stale as a wrong expectation.
        let version: i64 = query_scalar(INSERT_POLICY)
            .bind(document)
            .bind(micros(chrono::Utc::now()))
            .fetch_one(tx.ex())
            .await
            .map_err(|error| match error {
                sqlx::Error::Database(ref db) if db.is_unique_violation() => Error::Stale(
                    "another policy version was stored at the same moment; read it again".into(),
                ),
                other => db_error(other),
            })?;
        // Routing depends on the policy: moving the directory's counter makes every other
        // server read it again before its next write, instead of asking before every batch.
        let directory: i64 = bump_directory(&mut tx).await?;
        tx.commit().await.map_err(db_error)?;
        if seen == self.directory.get() {
            self.directory.set(directory);
        }
        Ok(version)
    }

    pub(super) async fn update_directory(
        &self,
        update: &DirectoryUpdate,
        key: Option<&(String, ChangeKey)>,
    ) -> Result<bool, Error> {
        use DirectoryUpdate;

        let now = micros(chrono::Utc::now());
        let (query, what) = match update {
            DirectoryUpdate::Team {
                team_id,
                status,
                position,
            } => {
                let status: &'static str = (*status).into();
                let query = query(UPDATE_TEAM)
                    .bind(team_id.clone())
                    .bind(status)
                    .bind(position.map(|p| p.0))
                    .bind(position.map(|p| p.1))
                    .bind(now);
                (query, "team")
            }
            DirectoryUpdate::Occupancy {
                service_point_id,
                occupancy,
            } => {
                let query = query(UPDATE_OCCUPANCY)
                    .bind(service_point_id.clone())
                    .bind(i64::from(*occupancy))
                    .bind(now);
                (query, "service point")
            }
        };
        let (mut tx, _) = self.begin_locked().await?;
        if let Some((subject, key)) = key {
            let found: Option<(Vec<u8>, String)> = query_as(SELECT_CHANGE_KEY)
                .bind(subject)
                .bind(&key.request_id)
                .fetch_optional(tx.ex())
                .await
                .map_err(db_error)?;
            match found {
                Some((hash, _)) if hash == key.payload_hash => return Ok(false),
                Some(_) => return Err(Error::IdempotencyConflict),
                None => {}
            }
        }
        let updated = query.execute(tx.ex()).await.map_err(db_error)?;
        if updated == 0 {
            return Err(Error::NotFound(what));
        }
        if let Some((subject, key)) = key {
            tx.run(
                super::db::query(INSERT_CHANGE_KEY)
                    .bind(subject)
                    .bind(&key.request_id)
                    .bind(&key.payload_hash)
                    .bind(String::new())
                    .bind(now),
            )
            .await?;
        }
        let directory: i64 = bump_directory(&mut tx).await?;
        tx.commit().await.map_err(db_error)?;
        self.directory.set(directory);
        Ok(true)
    }
}
