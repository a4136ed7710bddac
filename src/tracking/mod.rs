//! Tracking: the event feed's live tail, the watch streams that replay it and then follow it,
//! and the deadline escalation. The events and statistics themselves are domain values
//! (`domain::event`, `domain::statistics`). Nothing here knows about gRPC or SQL.

pub mod escalation;
pub mod feed;
pub mod watch;
