//! The application: the use cases between the gRPC edge and the rest. The writer records
//! intakes in group-committed batches and applies case changes, directory updates and policy
//! replacements in order, each write load → plan → write: the store loads, the domain's planner
//! plans with this server's routing handed to it, the store writes. The deadline escalation
//! makes the service's own changes when a deadline passes. It uses the domain, routing and the
//! store; the edge uses it.

pub mod escalation;
pub mod writer;
