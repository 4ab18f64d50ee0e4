//! Tests of the xtask tasks, run as the real `xtask` binary against the emulator that
//! `cargo xtask test` starts (or, where a test must count requests, a moto instance of its own).

mod browser;
mod build;
mod chaos;
mod check_iam;
mod create_tables;
mod deploy;
mod helpers;
mod iam_model;
mod lambda_proxy;
mod local;
mod logs;
mod policy_lint;
mod power;
mod reconcile;
mod release;
mod runtime_policy;
mod sigv4;
mod stalled;
mod tidy;
mod usage;
