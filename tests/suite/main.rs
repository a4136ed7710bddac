//! The integration suite, as one test binary: each module is a capability, run against the real
//! server on an ephemeral port through the generated clients, on SQLite and on PostgreSQL.
//!
//! One binary rather than one per file: each binary links the whole service and its
//! dependencies, and sixteen of them cost minutes of linking and gigabytes of disk. `tests/logs.rs`
//! stays a binary of its own, since it installs a process-wide log subscriber at TRACE.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod access;
mod architecture;
mod audit;
mod auth;
mod bad_bytes;
mod binary;
mod cancellation;
mod counties;
mod crisis;
mod database_tls;
mod directory;
mod encryption;
mod failover;
mod intake;
mod lifecycle;
mod list_cases;
mod metrics;
mod national_day;
mod privilege;
mod request_ids;
mod retries;
mod routing;
mod server;
mod sla;
mod statistics;
mod streams;
mod team_queue;
mod tls;
mod transport;
mod validation;
