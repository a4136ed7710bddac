//! `referral.v1.CaseTracking`: reading cases.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert;
use crate::domain::Error;
use crate::domain::case::PageRequest;
use crate::pb::case_tracking_server::CaseTracking;
use crate::pb::{GetCaseRequest, GetCaseResponse, ListCasesRequest, ListCasesResponse};
use crate::store::Store;

/// Reads and follows cases.
pub struct CaseTrackingService {
    store: Arc<dyn Store>,
}

impl CaseTrackingService {
    /// Creates the service over the store.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl CaseTracking for CaseTrackingService {
    #[tracing::instrument(skip_all, fields(rpc = "GetCase", case_id))]
    async fn get_case(
        &self,
        request: Request<GetCaseRequest>,
    ) -> Result<Response<GetCaseResponse>, Status> {
        let case_id = convert::case_id("case_id", &request.into_inner().case_id)?;
        tracing::Span::current().record("case_id", tracing::field::display(case_id));
        let case = self
            .store
            .get_case(case_id)
            .await?
            .ok_or(Error::NotFound("case"))?;
        Ok(Response::new(GetCaseResponse {
            case: Some(case.into()),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListCases"))]
    async fn list_cases(
        &self,
        request: Request<ListCasesRequest>,
    ) -> Result<Response<ListCasesResponse>, Status> {
        let (filter, page) = convert::list_request(request.into_inner())?;
        // One more than asked tells whether another page follows.
        let probe = PageRequest {
            size: page.size + 1,
            after: page.after,
        };
        let mut cases = self.store.list_cases(&filter, &probe).await?;
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
}
