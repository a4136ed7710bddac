//! Tracking: the event feed's live tail and the watch streams that replay it and then follow
//! it. The events and statistics themselves are domain values (`domain::event`,
//! `domain::statistics`); the deadline escalation is the application's. Nothing here knows
//! about gRPC or SQL.

pub mod feed;
mod hub;
pub mod watch;
