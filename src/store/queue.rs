//! The team queue's rows (see [`crate::domain::queue`]): a wait starts with the intake or the
//! change that found no free team, ends with the change that sends one, closes the case or
//! lowers it; and the transaction that frees a team offers it to the waiting cases in order.

use uuid::Uuid;

use super::chain::write_audit;
use super::db::{Tx, query, query_as};
use super::map_sqlx_error as db_error;
use super::sealed::from_micros;
use super::sql_store::{SqlStore, bump_directory};
use super::{ChangeOutcome, ChangePlanner};
use crate::domain::Error;
use crate::domain::change::{Actor, CaseChange, Change};
use crate::domain::plan::change::ChangePlan;
use crate::domain::queue::{TeamOffer, Wait, serve_order};
use crate::domain::requester::Requester;

pub(super) const INSERT_WAIT: &str = "insert into team_waits (wait_id, case_id, province, rank, \
     since) values ($1, $2, $3, $4, $5)";

pub(super) const END_WAIT: &str = "update team_waits set ended_at = $2, ended_by = $3, \
     dispatch_id = $4 where wait_id = $1 and ended_at is null";

pub(super) const RANK_WAIT: &str = "update team_waits set rank = $2 where wait_id = $1";

/// The open waits in queue order.
const SELECT_OPEN_WAITS: &str = "select wait_id, case_id, province, rank, since from team_waits \
     where ended_at is null order by rank, since, wait_id limit $1";

/// The case's open wait.
pub(super) const SELECT_CASE_WAIT: &str = "select wait_id, case_id, province, rank, since \
     from team_waits where case_id = $1 and ended_at is null";

/// How many waiting cases a freed team is offered to, at most, before it stays free: each
/// offer reads its case, and a team no waiting case's cover chain reaches should not make the
/// change that freed it slow.
const MOST_OFFERS: usize = 32;

/// How many open waits are read to find those a freed team can reach.
const MOST_READ: i64 = 2000;

#[derive(sqlx::FromRow)]
pub(super) struct WaitRow {
    wait_id: Uuid,
    case_id: Uuid,
    province: String,
    rank: i64,
    since: i64,
}

impl WaitRow {
    pub(super) fn into_wait(self) -> Result<Wait, Error> {
        Ok(Wait {
            wait_id: self.wait_id,
            case_id: self.case_id,
            province: self.province,
            rank: self.rank,
            since: from_micros(self.since)?,
        })
    }
}

impl SqlStore {
    /// Offers a team freed outside a case change, in a transaction of its own.
    pub(super) async fn offer_freed_team(
        &self,
        offer: &TeamOffer,
        at: chrono::DateTime<chrono::Utc>,
        planner: &mut ChangePlanner<'_>,
    ) -> Result<Option<ChangeOutcome>, Error> {
        let (mut tx, _) = self.begin_locked().await?;
        let Some(mut plan) = self.offer_team(&mut tx, offer, at, planner).await? else {
            return Ok(None);
        };
        let directory: i64 = bump_directory(&mut tx).await?;
        self.write_events_of(&mut tx, &mut plan).await?;
        write_audit(&mut tx, std::slice::from_ref(&plan.audit)).await?;
        tx.commit().await.map_err(db_error)?;
        self.directory.set(directory);
        Ok(Some(plan.outcome))
    }

    /// Offers a freed team to the waiting cases its province's cover chains reach, in queue
    /// order, within the transaction that freed it; the first case whose plan sends the team
    /// is written. Returns that plan, or `None` when no waiting case can take the team.
    pub(super) async fn offer_team(
        &self,
        tx: &mut Tx,
        offer: &TeamOffer,
        at: chrono::DateTime<chrono::Utc>,
        planner: &mut ChangePlanner<'_>,
    ) -> Result<Option<ChangePlan>, Error> {
        let rows: Vec<WaitRow> = query_as(SELECT_OPEN_WAITS)
            .bind(MOST_READ)
            .fetch_all(tx.ex())
            .await
            .map_err(db_error)?;
        let mut waits = rows
            .into_iter()
            .map(WaitRow::into_wait)
            .collect::<Result<Vec<_>, _>>()?;
        waits.retain(|wait| offer.provinces.contains(&wait.province));
        serve_order(&mut waits);
        for wait in waits.into_iter().take(MOST_OFFERS) {
            let change = CaseChange {
                change: Change::OfferTeam {
                    case_id: wait.case_id,
                    team_id: offer.team_id.clone(),
                },
                expected_version: None,
                actor: Actor::system("team_queue"),
                requester: Requester::service("team_queue", "offer_team"),
                at,
                key: None,
                occurred_at: None,
            };
            let load = self.load_change(tx, &change).await?;
            match planner(&change, load) {
                Ok(plan) => {
                    self.write_change(tx, &plan).await?;
                    return Ok(Some(plan));
                }
                // Out of the team's reach, or it was tried for this case before.
                Err(Error::FailedPrecondition(_)) => continue,
                Err(error) => return Err(error),
            }
        }
        Ok(None)
    }
}

/// Starts a wait for a case recorded by an intake batch.
pub(super) async fn start_wait(
    tx: &mut Tx,
    (wait_id, case_id, province, rank, since): &super::batch::WaitInsert,
) -> Result<(), Error> {
    tx.run(
        query(INSERT_WAIT)
            .bind(wait_id)
            .bind(case_id)
            .bind(province.clone())
            .bind(rank)
            .bind(since),
    )
    .await
    .map(|_| ())
}

/// The open wait of `case_id`, if it is waiting.
pub(super) async fn case_wait(tx: &mut Tx, case_id: Uuid) -> Result<Option<Wait>, Error> {
    let row: Option<WaitRow> = query_as(SELECT_CASE_WAIT)
        .bind(case_id)
        .fetch_optional(tx.ex())
        .await
        .map_err(db_error)?;
    row.map(WaitRow::into_wait).transpose()
}
