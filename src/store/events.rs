//! The feed of events: how a change's events are filed, numbered, chained and written, and how
//! watchers, timelines and statistics read them.

use std::collections::HashMap;

use uuid::Uuid;

use super::chain::append;
use super::db::{Query, Tx, query, query_as, query_scalar};
use super::map_sqlx_error as db_error;
use super::rows::{EventDbRow, EventRow};
use super::sealed::{from_micros, micros, parse_enum};
use super::sql_store::SqlStore;
use super::statements::{
    EVENT_COLUMNS, LAST_EVENT, SELECT_CASE_PARTIES, SELECT_CASE_SERVICE_POINTS, SELECT_CASE_TEAMS,
};
use crate::domain::Error;
use crate::domain::event::{EventFilter, FeedEvent};
use crate::domain::reach::{CaseParties, Reach};
use crate::domain::statistics::{
    CaseTimes, Period, ResponseStep, STEPS, Statistics, WaitTimes, intervals, p0_acknowledgements,
    queue_figures,
};

/// Writes events under the next numbers of the feed and returns the last number. Numbers are
/// taken last in a transaction: the counter row stays locked until commit, so the shorter the
/// stretch after this, the less concurrent writers wait; and a writer that takes numbers after
/// another has to wait for its commit, so numbers become visible in order with no gap.
pub(super) async fn write_events(
    store: &SqlStore,
    tx: &mut Tx,
    events: &[EventRow],
) -> Result<i64, Error> {
    let last = append(tx, "event", events).await?;
    if let Some(notify) = store.backend.notify_events() {
        query(notify)
            .bind(last.to_string())
            .execute(tx.ex())
            .await
            .map_err(db_error)?;
    }
    Ok(last)
}

/// Decides, inside a transaction, whether `reach` covers the case whose province, county and
/// recorder are given; a case's teams or service points are read only for a reach that turns
/// on them.
pub(super) async fn covers_case(
    tx: &mut Tx,
    reach: &Reach,
    case_id: Uuid,
    province: &str,
    county: &str,
    recorded_by: &str,
) -> Result<bool, sqlx::Error> {
    let (mut teams, mut points) = (Vec::<String>::new(), Vec::<String>::new());
    match reach {
        Reach::Team(_) => {
            teams = query_scalar(SELECT_CASE_TEAMS)
                .bind(case_id)
                .fetch_all(tx.ex())
                .await?;
        }
        Reach::ServicePoint(_) => {
            points = query_scalar(SELECT_CASE_SERVICE_POINTS)
                .bind(case_id)
                .fetch_all(tx.ex())
                .await?;
        }
        _ => {}
    }
    Ok(reach.covers(&CaseParties {
        province,
        county,
        recorded_by,
        teams: &teams,
        service_points: &points,
    }))
}

impl SqlStore {
    pub(super) async fn events(
        &self,
        filter: &EventFilter,
        after: i64,
        up_to: i64,
        limit: u32,
    ) -> Result<Vec<FeedEvent>, Error> {
        let mut q = Query::built(format!(
            "select {EVENT_COLUMNS} from events where event_id > "
        ));
        q.push_bind(after)
            .push(" and event_id <= ")
            .push_bind(up_to);
        // A crisis's events (no case) pass as `EventFilter::matches` says: every stream of
        // their province but a team's.
        if filter.team_id.is_some() {
            q.push(" and case_id is not null");
        } else {
            q.push(" and (case_id is null");
            if let Some(province) = &filter.province {
                q.push(" and province in ('', ")
                    .push_bind(province.clone())
                    .push(")");
            }
            q.push(" or case_id is not null");
        }
        if let Some(province) = &filter.province {
            q.push(" and province = ").push_bind(province.clone());
        }
        if let Some(county) = &filter.county {
            q.push(" and county = ").push_bind(county.clone());
        }
        if let Some(priority) = filter.priority {
            q.push(" and priority = ").push_bind(priority.as_str());
        }
        if let Some(line) = filter.line {
            q.push(" and line = ").push_bind(line.as_str());
        }
        if let Some(recorded_by) = &filter.recorded_by {
            q.push(" and recorded_by = ").push_bind(recorded_by.clone());
        }
        if let Some(team_id) = &filter.team_id {
            q.push(" and team_id = ").push_bind(team_id.clone());
        }
        if filter.team_id.is_none() {
            q.push(")");
        }
        q.push(" order by event_id limit ")
            .push_bind(i64::from(limit));
        let rows: Vec<EventDbRow> = q
            .rows()
            .fetch_all(self.backend.ex())
            .await
            .map_err(db_error)?;
        rows.into_iter().map(EventDbRow::into_event).collect()
    }

    pub(super) async fn statistics(&self, period: &Period) -> Result<Statistics, Error> {
        let (from, to) = (micros(period.from), micros(period.to));
        // One read transaction: the counts and the intervals describe one moment.
        let mut tx = self.backend.begin_read().await.map_err(db_error)?;
        let mut counts = Vec::new();
        for column in ["line", "primary_category", "priority", "status", "province"] {
            let mut q = Query::built(format!(
                "select {column} as key, count(*) as n from cases where created_at >= "
            ));
            q.push_bind(from).push(" and created_at < ").push_bind(to);
            in_place(&mut q, "", period);
            q.push(&format!(" group by {column} order by n desc, {column}"));
            let rows: Vec<(String, i64)> = q.rows().fetch_all(tx.ex()).await.map_err(db_error)?;
            counts.push(
                rows.into_iter()
                    .map(|(k, n)| (k, n as u64))
                    .collect::<Vec<_>>(),
            );
        }
        let mut q = Query::built(
            "select e.case_id, c.priority, e.kind, min(e.occurred_at) from events e \
             join cases c on c.case_id = e.case_id where c.created_at >= ",
        );
        q.push_bind(from).push(" and c.created_at < ").push_bind(to);
        in_place(&mut q, "c.", period);
        q.push(" and e.kind in ('case_recorded'");
        for (_, kind) in STEPS {
            q.push(", ").push_bind(kind);
        }
        q.push(") group by e.case_id, c.priority, e.kind");
        let rows: Vec<(Uuid, String, String, i64)> =
            q.rows().fetch_all(tx.ex()).await.map_err(db_error)?;
        let mut q = Query::built(
            "select w.since, w.ended_at, w.ended_by from team_waits w \
             join cases c on c.case_id = w.case_id where w.since >= ",
        );
        q.push_bind(from).push(" and w.since < ").push_bind(to);
        in_place(&mut q, "c.", period);
        let wait_rows: Vec<(i64, Option<i64>, Option<String>)> =
            q.rows().fetch_all(tx.ex()).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        let waits = wait_rows
            .into_iter()
            .map(|(since, ended_at, ended_by)| {
                let ended = match (ended_at, ended_by) {
                    (Some(at), Some(by)) => Some((from_micros(at)?, parse_enum("wait end", &by)?)),
                    _ => None,
                };
                Ok(WaitTimes {
                    since: from_micros(since)?,
                    ended,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;

        let mut times: HashMap<Uuid, CaseTimes> = Default::default();
        for (case_id, priority, kind, at) in rows {
            let at = from_micros(at)?;
            let case = times.entry(case_id).or_default();
            case.priority = priority.parse().ok();
            if kind == "case_recorded" {
                case.recorded = Some(at);
            } else if let Some((step, _)) = STEPS.iter().find(|(_, k)| *k == kind) {
                case.steps.insert(*step, at);
            }
        }
        let measured = intervals(&times);
        let interval = |step| measured.get(&step).copied().unwrap_or_default();
        let mut counts = counts.into_iter();
        let mut next = || counts.next().unwrap_or_default();
        let by_line = next();
        Ok(Statistics {
            total: by_line.iter().map(|(_, n)| n).sum(),
            by_line,
            by_category: next(),
            by_priority: next(),
            by_status: next(),
            by_province: next(),
            acknowledged: interval(ResponseStep::Acknowledged),
            on_scene: interval(ResponseStep::OnScene),
            cleared: interval(ResponseStep::Cleared),
            p0_acknowledged: p0_acknowledgements(&times),
            team_queue: queue_figures(&waits),
        })
    }

    pub(super) async fn last_event(&self) -> Result<i64, Error> {
        query_scalar(LAST_EVENT)
            .fetch_one(self.backend.ex())
            .await
            .map_err(db_error)
    }

    pub(super) async fn timeline(
        &self,
        case_id: Uuid,
        reach: &Reach,
    ) -> Result<Option<Vec<FeedEvent>>, Error> {
        // One read transaction: the case is judged in reach and its events read at
        // one moment. Nothing is decrypted to decide.
        let mut tx = self.backend.begin_read().await.map_err(db_error)?;
        let parties: Option<(String, String, String)> = query_as(SELECT_CASE_PARTIES)
            .bind(case_id)
            .fetch_optional(tx.ex())
            .await
            .map_err(db_error)?;
        let Some((province, county, recorded_by)) = parties else {
            return Ok(None);
        };
        if !covers_case(&mut tx, reach, case_id, &province, &county, &recorded_by)
            .await
            .map_err(db_error)?
        {
            return Ok(None);
        }
        let query =
            format!("select {EVENT_COLUMNS} from events where case_id = $1 order by event_id");
        let rows: Vec<EventDbRow> = Query::built(query)
            .rows()
            .bind(case_id)
            .fetch_all(tx.ex())
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        rows.into_iter()
            .map(EventDbRow::into_event)
            .collect::<Result<_, _>>()
            .map(Some)
    }
}

/// Narrows a statistics query to the period's province and county, on the cases' columns
/// (`prefix` names the cases' table in the query).
fn in_place(q: &mut Query, prefix: &str, period: &Period) {
    if let Some(province) = &period.province {
        q.push(&format!(" and {prefix}province = "))
            .push_bind(province.clone());
    }
    if let Some(county) = &period.county {
        q.push(&format!(" and {prefix}county = "))
            .push_bind(county.clone());
    }
}
