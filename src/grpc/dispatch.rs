//! `referral.v1.Dispatch`: a mobile team's assignments and its reports on each.

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::{Tracking, caller, convert};
use crate::access::Operation;
use crate::domain::Error;
use crate::domain::reach::Reach;
use crate::pb::dispatch_server::Dispatch;
use crate::pb::{
    ReportDispatchStatusRequest, ReportDispatchStatusResponse, StreamAssignmentsRequest,
    StreamAssignmentsResponse,
};
use crate::tracking::watch::StreamKind;

/// Serves the mobile teams.
pub struct DispatchService {
    tracking: Tracking,
}

impl DispatchService {
    /// Creates the service.
    pub fn new(tracking: Tracking) -> Self {
        Self { tracking }
    }
}

type AssignmentStream =
    Pin<Box<dyn Stream<Item = Result<StreamAssignmentsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Dispatch for DispatchService {
    #[tracing::instrument(skip_all, fields(rpc = "ReportDispatchStatus"))]
    async fn report_dispatch_status(
        &self,
        request: Request<ReportDispatchStatusRequest>,
    ) -> Result<Response<ReportDispatchStatusResponse>, Status> {
        let caller = caller(&request)?;
        let at = self.tracking.now();
        let outcome = self
            .tracking
            .change(&caller, Operation::TransitionDispatch, |caller| {
                convert::dispatch_change(request.into_inner(), at, caller)
            })
            .await?;
        Ok(Response::new(ReportDispatchStatusResponse {
            dispatch_version: outcome.version,
            case_version: outcome.case_version,
            reroute: outcome.reroute.as_ref().map(Into::into),
            sequence: outcome.last_event,
        }))
    }

    type StreamAssignmentsStream = AssignmentStream;

    #[tracing::instrument(skip_all, fields(rpc = "StreamAssignments"))]
    async fn stream_assignments(
        &self,
        request: Request<StreamAssignmentsRequest>,
    ) -> Result<Response<Self::StreamAssignmentsStream>, Status> {
        let caller = caller(&request)?;
        let guard = &self.tracking.guard;
        guard.check(&caller, Operation::StreamAssignments).await?;
        // A team follows its own assignments only.
        let (filter, after) =
            match convert::assignments_request(request.into_inner()).and_then(|(filter, after)| {
                if caller.reach() != Reach::Team(filter.team_id.clone().unwrap_or_default()) {
                    return Err(Error::PermissionDenied(
                        "a team token follows its own team's assignments only".into(),
                    ));
                }
                Ok((filter, after))
            }) {
                Ok(parsed) => parsed,
                Err(error) => {
                    return Err(guard
                        .refuse(&caller, Operation::StreamAssignments, None, error)
                        .await);
                }
            };
        let store = self.tracking.store().clone();
        let stream = self
            .tracking
            .watch(StreamKind::Assignments, filter, after, move |item| {
                let store = store.clone();
                async move { convert::assignment_response(store.as_ref(), item).await }
            })
            .await?;
        Ok(Response::new(stream))
    }
}
