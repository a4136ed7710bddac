//! The domain's one error type; `grpc/status.rs` maps it to gRPC codes in one place.

use std::fmt;

/// One invalid field of a request, named by its path in the request (`intake.subjects[1].sex`).
///
/// The description says what is wrong without repeating the value, since the value may be a
/// name, a number or a narrative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field in the request message.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

impl FieldViolation {
    /// Creates a violation for `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// Errors of the service's operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; every bad field is listed.
    #[error("invalid request: {} bad field(s)", .0.len())]
    InvalidArgument(Vec<FieldViolation>),
    /// The named thing does not exist (or the caller may not know that it does).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// An intake reused a request id with a different payload.
    #[error("request_id was already used for a different request")]
    IdempotencyConflict,
    /// The change is not allowed in the state the thing is in; the message names that state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller's part does not allow the change.
    #[error("{0}")]
    PermissionDenied(String),
    /// The change was based on a version that is no longer current.
    #[error("{0}")]
    Stale(String),
    /// Another server changed the directory since this server's routing last read it; the
    /// writer reloads it and tries again.
    #[error("the directory changed on another server")]
    DirectoryMoved,
    /// The service is too busy to take the request now; the client should retry.
    #[error("{0}")]
    Overloaded(&'static str),
    /// The database cannot be reached.
    #[error("storage unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else that went wrong inside the service.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

/// A boxed error from a lower layer (the database driver, a codec).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// Wraps any lower-layer error as internal.
    pub fn internal(error: impl Into<BoxError>) -> Self {
        Self::Internal(error.into())
    }

    /// Creates an invalid-argument error with one violation.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }
}
