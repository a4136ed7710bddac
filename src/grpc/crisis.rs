//! `referral.v1.CrisisOperation`: crisis declarations (see [`crate::routing::crisis`]).
//!
//! Declaring, changing and ending go through the writer, so every case is routed wholly with a
//! declaration as it stood before the change or as it stands after; each is audited. Lists and
//! statistics read the database, so a declaration made through another server is seen at once.

use chrono::TimeDelta;
use tonic::{Request, Response, Status};

use super::{Tracking, caller, convert};
use crate::access::{Caller, Operation};
use crate::domain::Error;
use crate::domain::statistics::Period;
use crate::pb;
use crate::pb::crisis_operation_server::CrisisOperation;
use crate::routing::crisis::{Crisis, CrisisAction, CrisisRequest};
use crate::store::CrisisOutcome;

/// Serves the crisis declarations.
pub struct CrisisService {
    tracking: Tracking,
}

impl CrisisService {
    /// Creates the service.
    pub fn new(tracking: Tracking) -> Self {
        Self { tracking }
    }

    /// Carries out a declaration, change or end that `caller` may make, auditing it or its
    /// refusal.
    async fn manage(
        &self,
        caller: Caller,
        parsed: Result<(CrisisAction, Option<crate::domain::change::ChangeKey>), Error>,
    ) -> Result<CrisisOutcome, Status> {
        let guard = &self.tracking.guard;
        guard.check(&caller, Operation::ManageCrisis).await?;
        let result = async {
            let (action, key) = parsed?;
            if let CrisisAction::Declare(declaration) | CrisisAction::Change { declaration, .. } =
                &action
            {
                let routing = self.tracking.writer.routing().read();
                declaration
                    .check_against(&routing.directory, "crisis")
                    .map_err(Error::InvalidArgument)?;
            }
            let province = match &action {
                CrisisAction::Declare(declaration) => declaration.province.clone(),
                CrisisAction::Change {
                    crisis_id,
                    declaration,
                    ..
                } => {
                    // Both the area it has and the one asked for must be the caller's.
                    let current = self.find(*crisis_id, &caller).await?;
                    caller.check_crisis_area(current.province.as_deref())?;
                    declaration.province.clone()
                }
                CrisisAction::End { crisis_id, .. } => {
                    self.find(*crisis_id, &caller).await?.province
                }
            };
            caller.check_crisis_area(province.as_deref())?;
            self.tracking
                .writer
                .crisis(CrisisRequest {
                    action,
                    actor: caller.claims.sub.clone(),
                    key,
                    at: self.tracking.now(),
                })
                .await
        }
        .await;
        guard
            .audited(&caller, Operation::ManageCrisis, None, result)
            .await
    }

    /// The declaration with this id, as stored, when the caller may see it: one of another
    /// province is NOT_FOUND, as a case is.
    async fn find(&self, crisis_id: uuid::Uuid, caller: &Caller) -> Result<Crisis, Error> {
        let crises = self.tracking.store().crises().await?;
        crises
            .into_iter()
            .find(|c| c.crisis_id == crisis_id)
            .filter(|c| visible(caller, c))
            .ok_or(Error::NotFound("crisis"))
    }
}

/// Whether the caller's area sees a declaration: the whole country's, and its own province's.
fn visible(caller: &Caller, crisis: &Crisis) -> bool {
    match &crisis.province {
        None => true,
        Some(province) => caller.narrow_area(Some(province.clone()), None).is_ok(),
    }
}

#[tonic::async_trait]
impl CrisisOperation for CrisisService {
    #[tracing::instrument(skip_all, fields(rpc = "DeclareCrisis"))]
    async fn declare_crisis(
        &self,
        request: Request<pb::DeclareCrisisRequest>,
    ) -> Result<Response<pb::DeclareCrisisResponse>, Status> {
        let caller = caller(&request)?;
        let parsed = convert::declare_crisis(request.into_inner(), self.tracking.now());
        let outcome = self.manage(caller, parsed).await?;
        Ok(Response::new(pb::DeclareCrisisResponse {
            crisis: Some(convert::crisis(&outcome.crisis, self.tracking.now())),
            replayed: outcome.replayed,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ChangeCrisis"))]
    async fn change_crisis(
        &self,
        request: Request<pb::ChangeCrisisRequest>,
    ) -> Result<Response<pb::ChangeCrisisResponse>, Status> {
        let caller = caller(&request)?;
        let parsed = convert::change_crisis(request.into_inner(), self.tracking.now());
        let outcome = self.manage(caller, parsed).await?;
        Ok(Response::new(pb::ChangeCrisisResponse {
            crisis: Some(convert::crisis(&outcome.crisis, self.tracking.now())),
            replayed: outcome.replayed,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "EndCrisis"))]
    async fn end_crisis(
        &self,
        request: Request<pb::EndCrisisRequest>,
    ) -> Result<Response<pb::EndCrisisResponse>, Status> {
        let caller = caller(&request)?;
        let parsed = convert::end_crisis(request.into_inner());
        let outcome = self.manage(caller, parsed).await?;
        Ok(Response::new(pb::EndCrisisResponse {
            crisis: Some(convert::crisis(&outcome.crisis, self.tracking.now())),
            replayed: outcome.replayed,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListCrises"))]
    async fn list_crises(
        &self,
        request: Request<pb::ListCrisesRequest>,
    ) -> Result<Response<pb::ListCrisesResponse>, Status> {
        let caller = caller(&request)?;
        let guard = &self.tracking.guard;
        guard.check(&caller, Operation::ReadCrises).await?;
        let request = request.into_inner();
        let asked = Some(request.province.trim().to_owned()).filter(|p| !p.is_empty());
        let province = match caller.narrow_area(asked, None) {
            Ok((province, _)) => province,
            Err(error) => {
                return Err(guard
                    .refuse(&caller, Operation::ReadCrises, None, error)
                    .await);
            }
        };
        let now = self.tracking.now();
        let crises = self.tracking.store().crises().await?;
        let crises = crises
            .iter()
            .filter(|c| province.as_deref().is_none_or(|p| c.covers(p)))
            .filter(|c| {
                request.include_ended
                    || c.status(now) != crate::routing::crisis::CrisisStatus::Ended
            })
            .map(|c| convert::crisis(c, now))
            .collect();
        Ok(Response::new(pb::ListCrisesResponse { crises }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetCrisisStatistics"))]
    async fn get_crisis_statistics(
        &self,
        request: Request<pb::GetCrisisStatisticsRequest>,
    ) -> Result<Response<pb::GetCrisisStatisticsResponse>, Status> {
        let caller = caller(&request)?;
        let guard = &self.tracking.guard;
        guard.check(&caller, Operation::ReadStatistics).await?;
        let found = async {
            let crisis_id = convert::crisis_id(&request.get_ref().crisis_id)?;
            let crisis = self.find(crisis_id, &caller).await?;
            // A provincial caller sees a national crisis's figures for its own province.
            let (province, _) = caller.narrow_area(crisis.province.clone(), None)?;
            Ok::<_, Error>((crisis, province))
        }
        .await;
        let (crisis, province) = match found {
            Ok(found) => found,
            Err(error) => {
                return Err(guard
                    .refuse(&caller, Operation::ReadStatistics, None, error)
                    .await);
            }
        };
        let now = self.tracking.now();
        let from = crisis.starts_at;
        let to = crisis.ends_at.unwrap_or(now).min(now).max(from);
        let span: TimeDelta = to - from;
        let during = Period {
            from,
            to,
            province: province.clone(),
            county: None,
        };
        let before = Period {
            from: from - span,
            to: from,
            province,
            county: None,
        };
        let _turn = self.tracking.read_turn().await?;
        let store = self.tracking.store();
        let p0_target = self.tracking.p0_target();
        let figures_during = store.statistics(&during).await?;
        let figures_before = store.statistics(&before).await?;
        Ok(Response::new(pb::GetCrisisStatisticsResponse {
            crisis: Some(convert::crisis(&crisis, now)),
            from: Some(convert::timestamp(from)),
            to: Some(convert::timestamp(to)),
            during: Some(convert::statistics_response(figures_during, p0_target)),
            before: Some(convert::statistics_response(figures_before, p0_target)),
        }))
    }
}
