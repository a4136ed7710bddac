//! The service's own vocabulary: intake values, triage, case records and the errors they raise.
//! Nothing here knows about gRPC or SQL, so all of it is testable on its own.

pub mod audit;
pub mod case;
pub mod change;
pub mod decision;
pub mod error;
pub mod event;
#[cfg(test)]
pub(crate) mod fixture;
pub mod intake;
pub mod lifecycle;
pub mod names;
pub mod plan;
pub mod province;
pub mod queue;
pub mod reach;
pub mod reference;
pub mod requester;
pub mod sensitive;
pub mod sla;
pub mod statistics;
pub mod triage;
pub mod types;

pub use error::{Error, FieldViolation};
