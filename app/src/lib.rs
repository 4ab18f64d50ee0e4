//! recording-server: the voice-recording backend.
//!
//! The HTTP routes, storage, and the Lambda and local run modes; and, as plain data the tooling
//! reads, the table `schema`, the runtime `permissions` and the OIDC `providers`.

// No request input may panic the service (on Lambda, `panic = "abort"` restarts the sandbox):
// every remaining allow says why in one line.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]
// Every public item says what it is (CI builds the docs with warnings as errors).
#![warn(missing_docs)]

pub mod permissions;
pub mod providers;
pub mod schema;

mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod oidc;
mod routes;
pub mod state;
pub mod storage;
mod web;

pub use routes::router;
