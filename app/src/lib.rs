//! recording-server: the voice-recording backend.
//!
//! The HTTP routes, storage, and the Lambda and local run modes; and, as plain data the tooling
//! reads, the table `schema`, the runtime `permissions` and the OIDC `providers`.

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
