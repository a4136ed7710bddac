//! The one place domain errors become gRPC statuses.
//!
//! Internal and storage errors are logged here and reach the client as a generic message: their
//! details are for operators, not callers. No message here repeats a request's values.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::Error;

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(violations) => {
                let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
                let message = format!(
                    "invalid request: {} bad field(s): {}",
                    violations.len(),
                    fields.join(", ")
                );
                let mut details = ErrorDetails::new();
                for violation in &violations {
                    details.add_bad_request_violation(&violation.field, &violation.description);
                }
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::IdempotencyConflict => Status::already_exists(
                "request_id was already used for a different intake; send a new request_id",
            ),
            Error::Overloaded(why) => Status::resource_exhausted(why),
            Error::DirectoryMoved => {
                Status::unavailable("the directory is being reloaded; retry with the same request")
            }
            Error::Stale(why) => Status::aborted(why),
            Error::FailedPrecondition(why) => Status::failed_precondition(why),
            Error::PermissionDenied(why) => Status::permission_denied(why),
            Error::Unavailable(source) => {
                tracing::warn!(error = %source, "storage unavailable");
                Status::unavailable("storage unavailable; retry with the same request_id")
            }
            Error::Internal(source) => {
                tracing::error!(error = %source, "internal error");
                Status::internal("internal error")
            }
        }
    }
}
