//! `referral.v1.HotlineIntake`: intake from the 1480 counselling line.

use chrono::Utc;
use tonic::{Request, Response, Status};

use super::{convert, record_intake};
use crate::pb::hotline_intake_server::HotlineIntake;
use crate::pb::{SubmitReferralRequest, SubmitReferralResponse};
use crate::store::writer::IntakeWriter;

/// Records 1480 calls as cases.
pub struct HotlineService {
    writer: IntakeWriter,
}

impl HotlineService {
    /// Creates the service over the intake writer.
    pub fn new(writer: IntakeWriter) -> Self {
        Self { writer }
    }
}

#[tonic::async_trait]
impl HotlineIntake for HotlineService {
    #[tracing::instrument(skip_all, fields(rpc = "SubmitReferral"))]
    async fn submit_referral(
        &self,
        request: Request<SubmitReferralRequest>,
    ) -> Result<Response<SubmitReferralResponse>, Status> {
        let intake = convert::hotline_intake(request.into_inner(), Utc::now())?;
        let receipt = record_intake(&self.writer, intake).await?;
        Ok(Response::new(SubmitReferralResponse {
            receipt: Some(receipt.into()),
        }))
    }
}
