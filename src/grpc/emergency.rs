//! `referral.v1.EmergencyIntake`: intake from the 123 social emergency.

use tonic::{Request, Response, Status};

use super::{Guard, caller, convert, record_intake};
use crate::access::Operation;
use crate::application::writer::Writer;
use crate::clock::Clock;
use crate::pb::emergency_intake_server::EmergencyIntake;
use crate::pb::{ReportEmergencyRequest, ReportEmergencyResponse};

/// Records 123 calls as cases.
pub struct EmergencyService {
    writer: Writer,
    clock: Clock,
    guard: Guard,
}

impl EmergencyService {
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
impl EmergencyIntake for EmergencyService {
    #[tracing::instrument(skip_all, fields(rpc = "ReportEmergency"))]
    async fn report_emergency(
        &self,
        request: Request<ReportEmergencyRequest>,
    ) -> Result<Response<ReportEmergencyResponse>, Status> {
        let caller = caller(&request)?;
        self.guard
            .check(&caller, Operation::SubmitEmergencyIntake)
            .await?;
        let intake = convert::emergency_intake(request.into_inner(), self.clock.now(), &caller);
        let receipt = record_intake(
            &self.guard,
            &self.writer,
            &caller,
            Operation::SubmitEmergencyIntake,
            intake,
        )
        .await?;
        Ok(Response::new(ReportEmergencyResponse {
            receipt: Some(receipt.into()),
        }))
    }
}
