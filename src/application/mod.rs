//! The application: the use cases between the gRPC edge and the rest. The writer records
//! intakes in group-committed batches, routes them and applies case changes, directory updates
//! and policy replacements in order; the deadline escalation makes the service's own changes
//! when a deadline passes. It uses the domain, routing and the store; the edge uses it.

pub mod escalation;
pub mod writer;
