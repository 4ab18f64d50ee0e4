//! recording-server's developer tooling, run as `cargo xtask <task>`. One module per task;
//! the binary only parses flags and dispatches. A library so integration tests can reuse the
//! emulator harness.

pub mod aws;
pub mod bucket;
pub mod create_tables;
pub mod emulator;
pub mod flags;
pub mod local;
pub mod progress;
pub mod test;
