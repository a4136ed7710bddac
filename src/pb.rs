//! Code generated from `proto/referral/v1` by `build.rs` (protox + tonic-prost-build).

#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

/// The `referral.v1` package.
pub mod referral {
    /// Version 1 of the contract.
    pub mod v1 {
        tonic::include_proto!("referral.v1");
    }
}

pub use referral::v1::*;

/// The encoded descriptor set of `referral.v1`, served by server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("referral_descriptor");
