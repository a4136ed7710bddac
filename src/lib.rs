//! The referral service of Iran's 1480 counselling line and 123 social emergency: it records each
//! intake as a case, exactly once, and lets call centres follow it.
//!
//! `main.rs` only parses configuration; everything a test needs is reachable from here, chiefly
//! [`run`], which serves on a listener the caller bound.

pub mod access;
pub mod anchor;
pub mod application;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod domain;
pub mod grpc;
pub mod metrics;
pub mod pb;
pub mod routing;
pub mod sample;
mod secret_file;
mod server;
pub mod store;
pub mod telemetry;
pub mod tracking;

pub use server::{ServeError, migrate, open_store, reseal, run, shutdown_signal, verify_chains};
