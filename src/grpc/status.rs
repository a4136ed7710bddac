//! The one place domain errors become gRPC statuses.
//!
//! Internal and storage errors are logged here and reach the client as a generic message: their
//! details are for operators, not callers. No message here repeats a request's values.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::Error;
use crate::domain::FieldViolation;
use crate::tracking::watch::WatchEnd;

/// The most field violations one answer lists. Past it the message says how many more there
/// were: a small request can break many rules (twenty empty subjects break a hundred), and
/// common clients refuse trailers over 16 KB, so an unbounded list would hide the answer.
pub(crate) const MAX_LISTED_VIOLATIONS: usize = 20;

/// INVALID_ARGUMENT naming the first [`MAX_LISTED_VIOLATIONS`] bad fields in the message and in
/// `google.rpc.BadRequest`, with the count of the rest.
fn invalid_argument(violations: &[FieldViolation]) -> Status {
    let listed = &violations[..violations.len().min(MAX_LISTED_VIOLATIONS)];
    let fields: Vec<&str> = listed.iter().map(|v| v.field.as_str()).collect();
    let mut message = format!(
        "invalid request: {} bad field(s): {}",
        violations.len(),
        fields.join(", ")
    );
    if violations.len() > listed.len() {
        message.push_str(&format!(
            " and {} more, not listed",
            violations.len() - listed.len()
        ));
    }
    let mut details = ErrorDetails::new();
    for violation in listed {
        details.add_bad_request_violation(&violation.field, &violation.description);
    }
    Status::with_error_details(Code::InvalidArgument, message, details)
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(violations) => invalid_argument(&violations),
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::IdempotencyConflict => Status::already_exists(
                "request_id was already used for a different request; send a new request_id",
            ),
            Error::Overloaded(why) => retry_after(Code::ResourceExhausted, why, RETRY_BUSY),
            Error::DirectoryMoved => retry_after(
                Code::Unavailable,
                "the directory is being reloaded; retry with the same request",
                RETRY_SOON,
            ),
            Error::Stale(why) => Status::aborted(why),
            Error::FailedPrecondition(why) => Status::failed_precondition(why),
            Error::PermissionDenied(why) => Status::permission_denied(why),
            Error::Unavailable(source) => {
                tracing::warn!(error = %source, "storage unavailable");
                retry_after(
                    Code::Unavailable,
                    "storage unavailable; retry with the same request_id",
                    RETRY_STORAGE,
                )
            }
            Error::Internal(source) => {
                tracing::error!(error = %source, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

/// Why the server ended a stream, as the status the client gets; every one says where to
/// resume.
pub(crate) fn watch_end(end: WatchEnd) -> Status {
    match end {
        WatchEnd::CursorTooOld { after, oldest } => Status::out_of_range(format!(
            "after_sequence {after} is older than the replay window (the oldest replayed is \
             {oldest}); reload the cases with ListCases and watch without after_sequence"
        )),
        WatchEnd::CursorAhead { after, last } => Status::out_of_range(format!(
            "after_sequence {after} is ahead of the last committed event ({last})"
        )),
        WatchEnd::FellBehind { resume_after } => Status::resource_exhausted(format!(
            "the client fell too far behind; reconnect with after_sequence {resume_after}"
        )),
        WatchEnd::ShuttingDown { resume_after } => Status::unavailable(format!(
            "the server is shutting down; reconnect with after_sequence {resume_after}"
        )),
        WatchEnd::Store(error) => error.into(),
    }
}

/// How long a client should wait before retrying when the database is unavailable: about as
/// long as health takes to notice it is back.
const RETRY_STORAGE: std::time::Duration = std::time::Duration::from_secs(1);
/// ... when the service sheds load.
const RETRY_BUSY: std::time::Duration = std::time::Duration::from_millis(500);
/// ... when a retry can succeed at once (another server moved the directory; reads shed).
const RETRY_SOON: std::time::Duration = std::time::Duration::from_millis(100);

/// A status a client should retry, with `google.rpc.RetryInfo` saying after how long (the
/// published retry policy, `service-config.json`, backs off at least that much).
fn retry_after(code: Code, message: impl Into<String>, after: std::time::Duration) -> Status {
    Status::with_error_details(code, message, ErrorDetails::with_retry_info(Some(after)))
}

/// A caller over its rate limit, told how long to wait.
pub(crate) fn rate_limited(wait: std::time::Duration) -> Status {
    let wait = wait.max(std::time::Duration::from_millis(1));
    retry_after(
        Code::ResourceExhausted,
        format!(
            "too many requests from this caller; retry in {} ms",
            wait.as_millis()
        ),
        wait,
    )
}

/// A request without a valid bearer token; `why` never repeats the token.
pub(crate) fn unauthenticated(why: impl std::fmt::Display) -> Status {
    Status::unauthenticated(why.to_string())
}

/// A read shed because too many reads are in progress.
pub(crate) fn read_shed() -> Status {
    retry_after(
        Code::ResourceExhausted,
        "too many reads in progress; retry shortly",
        RETRY_SOON,
    )
}

/// What a refusal that somehow came back as success answers: nothing a caller can act on.
pub(crate) fn internal() -> Status {
    Status::internal("internal error")
}

/// The metadata key that marks a request refused because it did not decode, so that the
/// service wrapper that audits such refusals can tell them from the handlers' own.
pub(crate) const UNDECODABLE: &str = "referrals-undecodable";

/// A request whose bytes are not the message the method takes: INVALID_ARGUMENT naming what did
/// not decode (prost names the field path and the kind of fault; it never repeats the bytes).
pub(crate) fn undecodable(error: &prost::DecodeError) -> Status {
    let mut status = Status::invalid_argument(format!(
        "the request is not a valid message of this method: {error}"
    ));
    status.metadata_mut().insert(
        UNDECODABLE,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    status
}
