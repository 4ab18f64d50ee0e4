//! recording-server: the voice-recording backend.
//!
//! `schema`, `permissions` and `providers` are plain data, always available (xtask reads them). The service
//! itself (HTTP routes, storage, Lambda and local run modes) sits behind the default `service`
//! feature.

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

#[cfg(feature = "service")]
mod auth;
#[cfg(feature = "service")]
pub mod config;
#[cfg(feature = "service")]
pub mod domain;
#[cfg(feature = "service")]
pub mod error;
#[cfg(feature = "service")]
pub mod metrics;
#[cfg(feature = "service")]
pub mod oidc;
#[cfg(feature = "service")]
mod routes;
#[cfg(feature = "service")]
pub mod state;
#[cfg(feature = "service")]
pub mod storage;
#[cfg(feature = "service")]
mod web;

#[cfg(feature = "service")]
pub use routes::router;
