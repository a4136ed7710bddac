//! The gRPC front: thin services that parse a request into domain values, call the domain or the
//! store, and convert the answer back. Errors become statuses in `status.rs` only.

use tonic::Status;

use crate::domain::Error;
use crate::domain::intake::{NewIntake, Receipt};
use crate::store::IntakeOutcome;
use crate::store::writer::Writer;

pub mod case_tracking;
pub(crate) mod convert;
pub mod directory;
pub mod emergency;
pub mod hotline;
mod status;

/// Records an intake through the group-commit writer and returns its receipt.
async fn record_intake(writer: &Writer, intake: NewIntake) -> Result<Receipt, Status> {
    let line = intake.line();
    match writer.submit(intake).await? {
        IntakeOutcome::Recorded(receipt) => {
            tracing::info!(
                case_id = %receipt.case_id,
                reference = %receipt.reference,
                line = line.as_str(),
                priority = receipt.priority.as_str(),
                "intake recorded"
            );
            Ok(receipt)
        }
        IntakeOutcome::Replayed(receipt) => {
            tracing::info!(case_id = %receipt.case_id, line = line.as_str(), "intake replayed");
            Ok(receipt)
        }
        IntakeOutcome::Conflict => Err(Error::IdempotencyConflict.into()),
    }
}
