//! Reading cases: one case with everything recorded about it, and pages of summaries within
//! a caller's reach.

use uuid::Uuid;

use super::db::{Query, query_as};
use super::map_sqlx_error as db_error;
use super::rows::{CaseExtras, CaseRow, CaseWithRouting};
use super::sealed::micros;
use super::sql_store::SqlStore;
use super::statements::{
    SELECT_CASE_DECISIONS, SELECT_CONTACTS, SELECT_DISPATCH_STEPS, SELECT_DISPATCHES,
    SELECT_FOLLOW_UPS, SELECT_NOTES, SELECT_REFERRALS, SUMMARY_COLUMNS,
};
use crate::domain::Error;
use crate::domain::case::{CaseFilter, CaseRecord, CaseSummary, PageRequest};
use crate::domain::reach::Reach;

impl SqlStore {
    pub(super) async fn get_case(&self, case_id: Uuid) -> Result<Option<CaseRecord>, Error> {
        let query = format!(
            "select {SUMMARY_COLUMNS}, details, routing_status, outcome, recorded_by from cases \
             where case_id = $1"
        );
        // One read transaction, so the case and its parts are seen at one moment.
        let mut tx = self.backend.begin_read().await.map_err(db_error)?;
        let row: Option<CaseWithRouting> = Query::built(query)
            .rows()
            .bind(case_id)
            .fetch_optional(tx.ex())
            .await
            .map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        let extras = CaseExtras {
            routing_status: row.routing_status,
            contacts: query_as(SELECT_CONTACTS)
                .bind(case_id)
                .fetch_all(tx.ex())
                .await
                .map_err(db_error)?,
            decisions: query_as(SELECT_CASE_DECISIONS)
                .bind(case_id)
                .fetch_all(tx.ex())
                .await
                .map_err(db_error)?,
            steps: query_as(SELECT_DISPATCH_STEPS)
                .bind(case_id)
                .fetch_all(tx.ex())
                .await
                .map_err(db_error)?,
            notes: query_as(SELECT_NOTES)
                .bind(case_id)
                .fetch_all(tx.ex())
                .await
                .map_err(db_error)?,
            follow_ups: query_as(SELECT_FOLLOW_UPS)
                .bind(case_id)
                .fetch_all(tx.ex())
                .await
                .map_err(db_error)?,
            outcome: row.outcome,
            recorded_by: row.recorded_by,
            referrals: query_as(SELECT_REFERRALS)
                .bind(case_id)
                .fetch_all(tx.ex())
                .await
                .map_err(db_error)?,
            dispatches: query_as(SELECT_DISPATCHES)
                .bind(case_id)
                .fetch_all(tx.ex())
                .await
                .map_err(db_error)?,
        };
        tx.commit().await.map_err(db_error)?;
        row.case.into_record(extras, &self.cipher).map(Some)
    }

    pub(super) async fn list_cases(
        &self,
        filter: &CaseFilter,
        page: &PageRequest,
        reach: &Reach,
    ) -> Result<Vec<CaseSummary>, Error> {
        use Reach;

        let mut q = Query::built(format!("select {SUMMARY_COLUMNS} from cases where true"));
        // The caller's reach first: a list never shows a case its caller may not see.
        match reach {
            Reach::Everywhere => {}
            Reach::Area { province, county } => {
                q.push(" and province = ").push_bind(province.clone());
                if let Some(county) = county {
                    q.push(" and county = ").push_bind(county.clone());
                }
            }
            Reach::RecordedBy(subject) => {
                q.push(" and recorded_by = ").push_bind(subject.clone());
            }
            Reach::Team(team) => {
                q.push(
                    " and exists (select 1 from dispatches d \
                        where d.case_id = cases.case_id and d.team_id = ",
                )
                .push_bind(team.clone())
                .push(")");
            }
            Reach::ServicePoint(point) => {
                q.push(
                    " and exists (select 1 from referrals r \
                        where r.case_id = cases.case_id and r.service_point_id = ",
                )
                .push_bind(point.clone())
                .push(")");
            }
            Reach::Nothing => {
                q.push(" and false");
            }
        }
        if let Some(line) = filter.line {
            q.push(" and line = ").push_bind(line.as_str());
        }
        if let Some(priority) = filter.priority {
            q.push(" and priority = ").push_bind(priority.as_str());
        }
        if let Some(status) = filter.status {
            q.push(" and status = ").push_bind(status.as_str());
        }
        if let Some(province) = &filter.province {
            q.push(" and province = ").push_bind(province.clone());
        }
        if let Some(county) = &filter.county {
            q.push(" and county = ").push_bind(county.clone());
        }
        if let Some(category) = filter.category {
            q.push(
                " and exists (select 1 from case_categories cc \
                 where cc.case_id = cases.case_id and cc.category = ",
            )
            .push_bind(category.as_str())
            .push(")");
        }
        if let Some(from) = filter.created_from {
            q.push(" and created_at >= ").push_bind(micros(from));
        }
        if let Some(before) = filter.created_before {
            q.push(" and created_at < ").push_bind(micros(before));
        }
        if let Some(after) = page.after {
            q.push(" and (created_at, case_id) < (")
                .push_bind(micros(after.created_at))
                .push(", ")
                .push_bind(after.case_id)
                .push(")");
        }
        q.push(" order by created_at desc, case_id desc limit ")
            .push_bind(page.size as i64);
        let rows: Vec<CaseRow> = q
            .rows()
            .fetch_all(self.backend.ex())
            .await
            .map_err(db_error)?;
        rows.into_iter().map(CaseRow::into_summary).collect()
    }
}
