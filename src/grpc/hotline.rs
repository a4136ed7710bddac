//! `referral.v1.HotlineIntake`: intake from the 1480 counselling line.

use tonic::{Request, Response, Status};

use super::{convert, record_intake};
use crate::clock::Clock;
use crate::pb::hotline_intake_server::HotlineIntake;
use crate::pb::{SubmitReferralRequest, SubmitReferralResponse};
use crate::store::writer::Writer;

/// Records 1480 calls as cases.
pub struct HotlineService {
    writer: Writer,
    clock: Clock,
}

impl HotlineService {
    /// Creates the service over the writer.
    pub fn new(writer: Writer, clock: Clock) -> Self {
        Self { writer, clock }
    }
}

#[tonic::async_trait]
impl HotlineIntake for HotlineService {
    #[tracing::instrument(skip_all, fields(rpc = "SubmitReferral"))]
    async fn submit_referral(
        &self,
        request: Request<SubmitReferralRequest>,
    ) -> Result<Response<SubmitReferralResponse>, Status> {
        let intake = convert::hotline_intake(request.into_inner(), self.clock.now())?;
        let receipt = record_intake(&self.writer, intake).await?;
        Ok(Response::new(SubmitReferralResponse {
            receipt: Some(receipt.into()),
        }))
    }
}
