//! What builds use, below both the flags and the tasks: the Lambda architectures and builders
//! deploy offers, the quick build profile, and where cargo and the target directory are.

use std::path::PathBuf;

/// The cargo profile of `deploy --build-profile quick` and of the tests' Lambda build.
pub const QUICK_PROFILE: &str = "quick";

/// Lambda's CPU architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    #[value(name = "x86_64")]
    X86_64,
    Arm64,
}

impl Arch {
    /// deploy's default (`cargo xtask test` prebuilds for it).
    pub const DEFAULT: Arch = Arch::X86_64;
}

/// How deploy builds the release binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Builder {
    /// `cargo lambda build` with zig, linked against glibc 2.17: runs on Lambda from any host
    /// (zig and cargo-lambda are pip-installed into target/tools on first use)
    Zig,
    /// Plain `cargo build --release`: nothing to install, but links against the host's glibc,
    /// which must be 2.34 or older
    Cargo,
}

impl Builder {
    /// deploy's default (`cargo xtask test` prebuilds with it).
    pub const DEFAULT: Builder = Builder::Zig;
}

/// The cargo that runs xtask (cargo sets `CARGO`), so nested builds use the same toolchain.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Where the project keeps build output and the tools xtask installs.
pub fn target_dir(root: &std::path::Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"))
}
