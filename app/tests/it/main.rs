//! Black-box tests of the service: the real router on a loopback port, against the emulator that
//! `cargo xtask test` starts. Each test has its own tables and bucket, so tests run in parallel.

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
mod proxy;
mod quotas;
mod records;
mod upload;
mod web;
