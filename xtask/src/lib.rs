//! recording-server's developer tooling, run as `cargo xtask <task>`. One module per task;
//! the binary only parses flags and dispatches. A library so integration tests can reuse the
//! emulator harness.

pub mod aws;
pub mod bench;
pub mod bucket;
pub mod catalogue;
pub mod check_iam;
pub mod coverage;
pub mod create_tables;
pub mod deploy;
pub mod destroy;
pub mod emulator;
pub mod faults;
pub mod flags;
pub mod local;
pub mod logs;
pub mod names;
pub mod outcome;
pub mod policy;
pub mod progress;
pub mod reconcile;
pub mod rollback;
pub mod signals;
pub mod stage;
pub mod status;
pub mod stored;
pub mod test;
pub mod toolchain;
pub mod tools;

/// A task failure with a specific exit code (check-iam's 1/2/3; anything else exits 1).
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

/// Exit code of a command line that cannot work, in every task: caught before any AWS call where
/// the flags alone show it.
pub const USAGE: u8 = 4;

impl Failure {
    pub fn new(code: u8, error: impl Into<anyhow::Error>) -> Self {
        Failure { code, error: error.into() }
    }

    /// A usage mistake (exit [`USAGE`]), as an error a task returns.
    pub fn usage(error: impl Into<anyhow::Error>) -> anyhow::Error {
        Failure::new(USAGE, error).into()
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Failure {}
