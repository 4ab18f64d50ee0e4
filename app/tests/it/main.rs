//! Black-box tests of the service: the real router on a loopback port, against the emulator that
//! `cargo xtask test` starts. Each test has its own tables and bucket, so tests run in parallel.

// Tests may panic (the workspace's lints forbid it to the service, and clippy.toml exempts only
// `#[test]` functions and `#[cfg(test)]` modules, not a test crate's helpers).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod auth;
mod budget;
mod content;
mod faults;
mod fuzz;
mod helpers;
mod keys;
mod lambda_runtime;
mod large_upload;
mod login;
mod logs;
mod oidc_login;
/// The fault proxy, shared with `cargo xtask bench --load --faults`.
mod proxy {
    pub use xtask::faults::*;
}
mod quotas;
mod records;
mod upload;
mod web;
