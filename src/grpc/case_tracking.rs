//! `referral.v1.CaseTracking`: reading cases, changing them, and watching them change.

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::{Tracking, caller, canonical_filter_county, convert};
use crate::access::{Caller, Operation};
use crate::domain::Error;
use crate::domain::case::PageRequest;
use crate::domain::decision::Destination;
use crate::domain::event::EventFilter;
use crate::domain::reach::Reach;
use crate::domain::statistics::Period;
use crate::pb::case_tracking_server::CaseTracking;
use crate::pb::{
    AddNoteRequest, AddNoteResponse, ChangePriorityRequest, ChangePriorityResponse,
    CloseCaseRequest, CloseCaseResponse, GetCaseRequest, GetCaseResponse, GetStatisticsRequest,
    GetStatisticsResponse, GetTimelineRequest, GetTimelineResponse, ListCasesRequest,
    ListCasesResponse, RecordFollowUpRequest, RecordFollowUpResponse, ReopenCaseRequest,
    ReopenCaseResponse, ScheduleFollowUpRequest, ScheduleFollowUpResponse,
    TransitionReferralRequest, TransitionReferralResponse, WatchCasesRequest, WatchCasesResponse,
};
use crate::pb::{RequestAssignmentRequest, RequestAssignmentResponse};
use crate::tracking::watch::StreamKind;

/// Reads, changes and watches cases.
pub struct CaseTrackingService {
    tracking: Tracking,
}

impl CaseTrackingService {
    /// Creates the service.
    pub fn new(tracking: Tracking) -> Self {
        Self { tracking }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchCasesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl CaseTracking for CaseTrackingService {
    #[tracing::instrument(skip_all, fields(rpc = "GetCase", case_id))]
    async fn get_case(
        &self,
        request: Request<GetCaseRequest>,
    ) -> Result<Response<GetCaseResponse>, Status> {
        let caller = caller(&request)?;
        let case = self
            .tracking
            .read_case(&caller, &request.into_inner().case_id)
            .await?;
        Ok(Response::new(GetCaseResponse {
            case: Some(case.into()),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListCases"))]
    async fn list_cases(
        &self,
        request: Request<ListCasesRequest>,
    ) -> Result<Response<ListCasesResponse>, Status> {
        let caller = caller(&request)?;
        let guard = &self.tracking.guard;
        guard.check(&caller, Operation::ListCases).await?;
        let writer = &self.tracking.writer;
        let (filter, page) =
            match convert::list_request(request.into_inner()).and_then(|mut parsed| {
                let filter = &mut parsed.0;
                canonical_filter_county(writer, filter.province.as_ref(), &mut filter.county)?;
                caller.narrow_area(parsed.0.province.clone(), parsed.0.county.clone())?;
                Ok(parsed)
            }) {
                Ok(parsed) => parsed,
                Err(error) => {
                    return Err(guard
                        .refuse(&caller, Operation::ListCases, None, error)
                        .await);
                }
            };
        let _turn = self.tracking.read_turn().await?;
        // One more than asked tells whether another page follows.
        let probe = PageRequest {
            size: page.size + 1,
            after: page.after,
        };
        let mut cases = self
            .tracking
            .store()
            .list_cases(&filter, &probe, &caller.reach())
            .await?;
        let next_page_token = if cases.len() > page.size {
            cases.truncate(page.size);
            cases
                .last()
                .map(|last| convert::page_token(last.into(), &filter))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListCasesResponse {
            cases: cases.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetTimeline", case_id))]
    async fn get_timeline(
        &self,
        request: Request<GetTimelineRequest>,
    ) -> Result<Response<GetTimelineResponse>, Status> {
        let caller = caller(&request)?;
        let events = self
            .tracking
            .read_timeline(&caller, &request.into_inner().case_id)
            .await?;
        Ok(Response::new(GetTimelineResponse {
            events: events.iter().map(Into::into).collect(),
        }))
    }

    type WatchCasesStream = WatchStream;

    #[tracing::instrument(skip_all, fields(rpc = "WatchCases"))]
    async fn watch_cases(
        &self,
        request: Request<WatchCasesRequest>,
    ) -> Result<Response<Self::WatchCasesStream>, Status> {
        let caller = caller(&request)?;
        let guard = &self.tracking.guard;
        guard.check(&caller, Operation::WatchCases).await?;
        let writer = &self.tracking.writer;
        let (filter, after) =
            match convert::watch_request(request.into_inner()).and_then(|(mut filter, after)| {
                canonical_filter_county(writer, filter.province.as_ref(), &mut filter.county)?;
                Ok((within_reach(&caller, filter)?, after))
            }) {
                Ok(parsed) => parsed,
                Err(error) => {
                    return Err(guard
                        .refuse(&caller, Operation::WatchCases, None, error)
                        .await);
                }
            };
        let stream = self
            .tracking
            .watch(StreamKind::Cases, filter, after, |item| async move {
                Ok(convert::watch_response(item))
            })
            .await?;
        Ok(Response::new(stream))
    }

    #[tracing::instrument(skip_all, fields(rpc = "TransitionReferral"))]
    async fn transition_referral(
        &self,
        request: Request<TransitionReferralRequest>,
    ) -> Result<Response<TransitionReferralResponse>, Status> {
        let caller = caller(&request)?;
        let at = self.tracking.now();
        let outcome = self
            .tracking
            .change(&caller, Operation::TransitionReferral, |caller| {
                convert::referral_change(request.into_inner(), at, caller)
            })
            .await?;
        Ok(Response::new(TransitionReferralResponse {
            referral_version: outcome.version,
            case_version: outcome.case_version,
            reroute: outcome.reroute.as_ref().map(Into::into),
            sequence: outcome.last_event,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ChangePriority"))]
    async fn change_priority(
        &self,
        request: Request<ChangePriorityRequest>,
    ) -> Result<Response<ChangePriorityResponse>, Status> {
        let caller = caller(&request)?;
        let at = self.tracking.now();
        let outcome = self
            .tracking
            .change(&caller, Operation::ManageCase, |caller| {
                convert::priority_change(request.into_inner(), at, caller)
            })
            .await?;
        Ok(Response::new(ChangePriorityResponse {
            case_version: outcome.case_version,
            sequence: outcome.last_event,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "CloseCase"))]
    async fn close_case(
        &self,
        request: Request<CloseCaseRequest>,
    ) -> Result<Response<CloseCaseResponse>, Status> {
        let caller = caller(&request)?;
        let at = self.tracking.now();
        let outcome = self
            .tracking
            .change(&caller, Operation::ManageCase, |caller| {
                convert::close_change(request.into_inner(), at, caller)
            })
            .await?;
        Ok(Response::new(CloseCaseResponse {
            case_version: outcome.case_version,
            sequence: outcome.last_event,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ReopenCase"))]
    async fn reopen_case(
        &self,
        request: Request<ReopenCaseRequest>,
    ) -> Result<Response<ReopenCaseResponse>, Status> {
        let caller = caller(&request)?;
        let at = self.tracking.now();
        let outcome = self
            .tracking
            .change(&caller, Operation::ManageCase, |caller| {
                convert::reopen_change(request.into_inner(), at, caller)
            })
            .await?;
        Ok(Response::new(ReopenCaseResponse {
            case_version: outcome.case_version,
            sequence: outcome.last_event,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "AddNote"))]
    async fn add_note(
        &self,
        request: Request<AddNoteRequest>,
    ) -> Result<Response<AddNoteResponse>, Status> {
        let caller = caller(&request)?;
        let at = self.tracking.now();
        let outcome = self
            .tracking
            .change(&caller, Operation::AddNote, |caller| {
                convert::note_change(request.into_inner(), at, caller)
            })
            .await?;
        Ok(Response::new(AddNoteResponse {
            note_id: outcome.created.map(|id| id.to_string()).unwrap_or_default(),
            case_version: outcome.case_version,
            sequence: outcome.last_event,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ScheduleFollowUp"))]
    async fn schedule_follow_up(
        &self,
        request: Request<ScheduleFollowUpRequest>,
    ) -> Result<Response<ScheduleFollowUpResponse>, Status> {
        let caller = caller(&request)?;
        let at = self.tracking.now();
        let outcome = self
            .tracking
            .change(&caller, Operation::FollowUp, |caller| {
                convert::schedule_change(request.into_inner(), at, caller)
            })
            .await?;
        let base = outcome
            .reroute
            .as_ref()
            .and_then(|decision| decision.assignments().into_iter().next())
            .map(|assignment| match assignment.destination {
                Destination::Team { id, .. } | Destination::ServicePoint { id, .. } => id,
            });
        Ok(Response::new(ScheduleFollowUpResponse {
            follow_up_id: outcome.created.map(|id| id.to_string()).unwrap_or_default(),
            due_at: outcome.due_at.map(convert::wire_time),
            case_version: outcome.case_version,
            sequence: outcome.last_event,
            service_point_id: base.unwrap_or_default(),
            decision: outcome.reroute.as_ref().map(Into::into),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "RequestAssignment"))]
    async fn request_assignment(
        &self,
        request: Request<RequestAssignmentRequest>,
    ) -> Result<Response<RequestAssignmentResponse>, Status> {
        let caller = caller(&request)?;
        let at = self.tracking.now();
        let outcome = self
            .tracking
            .change(&caller, Operation::ManageCase, |caller| {
                convert::assignment_change(request.into_inner(), at, caller)
            })
            .await?;
        Ok(Response::new(RequestAssignmentResponse {
            decision: outcome.reroute.as_ref().map(Into::into),
            case_version: outcome.case_version,
            sequence: outcome.last_event,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetStatistics"))]
    async fn get_statistics(
        &self,
        request: Request<GetStatisticsRequest>,
    ) -> Result<Response<GetStatisticsResponse>, Status> {
        let caller = caller(&request)?;
        let guard = &self.tracking.guard;
        guard.check(&caller, Operation::ReadStatistics).await?;
        let now = self.tracking.now();
        let period =
            match convert::statistics_request(request.into_inner(), now).and_then(|period| {
                let (province, county) =
                    caller.narrow_area(period.province.clone(), period.county.clone())?;
                Ok(Period {
                    province,
                    county,
                    ..period
                })
            }) {
                Ok(period) => period,
                Err(error) => {
                    return Err(guard
                        .refuse(&caller, Operation::ReadStatistics, None, error)
                        .await);
                }
            };
        let _turn = self.tracking.read_turn().await?;
        let statistics = self.tracking.store().statistics(&period).await?;
        Ok(Response::new(convert::statistics_response(
            statistics,
            self.tracking.p0_target(),
        )))
    }

    #[tracing::instrument(skip_all, fields(rpc = "RecordFollowUp"))]
    async fn record_follow_up(
        &self,
        request: Request<RecordFollowUpRequest>,
    ) -> Result<Response<RecordFollowUpResponse>, Status> {
        let caller = caller(&request)?;
        let at = self.tracking.now();
        let outcome = self
            .tracking
            .change(&caller, Operation::FollowUp, |caller| {
                convert::record_follow_up_change(request.into_inner(), at, caller)
            })
            .await?;
        Ok(Response::new(RecordFollowUpResponse {
            case_version: outcome.case_version,
            sequence: outcome.last_event,
        }))
    }
}

/// Narrows a watch to what the caller may see, in the filter the query applies: an area's
/// operators and supervisors their area, a team the events about it.
fn within_reach(caller: &Caller, filter: EventFilter) -> Result<EventFilter, Error> {
    let (province, county) = caller.narrow_area(filter.province.clone(), filter.county.clone())?;
    match caller.reach() {
        Reach::Everywhere => Ok(filter),
        Reach::Area { .. } => Ok(EventFilter {
            province,
            county,
            ..filter
        }),
        Reach::Team(team) => Ok(EventFilter {
            team_id: Some(team),
            ..filter
        }),
        Reach::RecordedBy(subject) => Ok(EventFilter {
            recorded_by: Some(subject),
            ..filter
        }),
        Reach::ServicePoint(_) | Reach::Nothing => Err(Error::PermissionDenied(
            "this role may not watch cases".into(),
        )),
    }
}
