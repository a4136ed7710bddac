//! `referral.v1.HotlineIntake`: intake from the 1480 counselling line.

use tonic::{Request, Response, Status};

use super::{Guard, caller, convert, record_intake};
use crate::access::Operation;
use crate::application::writer::Writer;
use crate::clock::Clock;
use crate::pb::hotline_intake_server::HotlineIntake;
use crate::pb::{SubmitReferralRequest, SubmitReferralResponse};

/// Records 1480 calls as cases.
pub struct HotlineService {
    writer: Writer,
    clock: Clock,
    guard: Guard,
}

impl HotlineService {
    /// Creates the service over the writer.
    pub fn new(writer: Writer, clock: Clock, guard: Guard) -> Self {
        Self {
            writer,
            clock,
            guard,
        }
    }
}

#[tonic::async_trait]
impl HotlineIntake for HotlineService {
    #[tracing::instrument(skip_all, fields(rpc = "SubmitReferral"))]
    async fn submit_referral(
        &self,
        request: Request<SubmitReferralRequest>,
    ) -> Result<Response<SubmitReferralResponse>, Status> {
        let caller = caller(&request)?;
        self.guard
            .check(&caller, Operation::SubmitHotlineIntake)
            .await?;
        let intake = convert::hotline_intake(request.into_inner(), self.clock.now(), &caller);
        let receipt = record_intake(
            &self.guard,
            &self.writer,
            &caller,
            Operation::SubmitHotlineIntake,
            intake,
        )
        .await?;
        Ok(Response::new(SubmitReferralResponse {
            receipt: Some(receipt.into()),
        }))
    }
}
