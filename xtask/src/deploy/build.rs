//! Building the service for Lambda. Two builders: `zig` (`cargo lambda build` with zig as the
//! linker, against glibc 2.17, whatever the host's glibc; installed on first use like the
//! emulator) and `cargo` (a plain release build, linked against the host's glibc, so only good
//! on hosts with glibc 2.34 or older). The package guard checks the result either way.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

use crate::toolchain::Arch;
use crate::tools::Tool;

/// zig and cargo-lambda from PyPI: no compiler download, no `cargo install` from source.
pub const ZIG: Tool = Tool {
    name: "zig-0.17.1-cargo-lambda-1.9.2",
    packages: &["ziglang==0.17.1", "cargo-lambda==1.9.2"],
    executable: "cargo-lambda",
    purpose: "zig and cargo-lambda for the Lambda build (`--builder cargo` needs neither)",
};

/// The glibc the zig builder links against: far below AL2023's 2.34, and the oldest Rust's std
/// supports.
pub const ZIG_GLIBC: &str = "2.17";

pub use crate::toolchain::{Builder, QUICK_PROFILE};

/// What to build, and where.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// The workspace (or crate) manifest.
    pub manifest: PathBuf,
    pub package: String,
    /// The binary's name (the package's `[[bin]]`).
    pub bin: String,
    pub arch: Arch,
    pub builder: Builder,
    /// The cargo target directory; zig builds go to its `lambda-zig` subdirectory, so switching
    /// builders never invalidates the other's artifacts.
    pub target_dir: PathBuf,
    /// The cargo profile (`release`, or a profile inheriting it).
    pub profile: String,
}

/// Build `spec` with its (release-like) profile; returns the binary's path. `zig_venv` is the installed [`ZIG`]
/// tool (see [`Tool::install`]), required by the zig builder.
pub fn build(sh: &Shell, spec: &BuildSpec, zig_venv: Option<&Path>) -> anyhow::Result<PathBuf> {
    let (command, binary) = build_command(sh, spec, zig_venv)?;
    let target = spec.arch.rust_target();
    let (package, profile) = (&spec.package, &spec.profile);
    let with = match spec.builder {
        Builder::Zig => "cargo-lambda and zig",
        Builder::Cargo => "cargo",
    };
    eprintln!("building {package} for {target} with {with} (profile {profile}; a cold build takes several minutes)...");
    let mut command: std::process::Command = command.into();
    // The build tools' stdout goes to stderr (cargo-lambda warns on stdout): stdout is deploy's
    // report, which `--json` callers parse.
    let status = command.stdout(std::io::stderr()).status().context("could not start the build")?;
    if !status.success() {
        bail!(match spec.builder {
            Builder::Zig => "building the service with cargo-lambda and zig failed; its message is above",
            Builder::Cargo => "building the service failed; the compiler's message is above",
        });
    }
    Ok(binary)
}

/// The command that builds `spec`, and where the binary will be (`cargo xtask test` starts the
/// zig test's build early with it).
pub fn build_command<'a>(
    sh: &'a Shell,
    spec: &BuildSpec,
    zig_venv: Option<&Path>,
) -> anyhow::Result<(xshell::Cmd<'a>, PathBuf)> {
    let target = spec.arch.rust_target();
    ensure_target_installed(sh, spec.arch)?;
    let cargo = crate::toolchain::cargo();
    let (manifest, package) = (&spec.manifest, &spec.package);
    let profile = &spec.profile;
    match spec.builder {
        Builder::Cargo => {
            let target_dir = &spec.target_dir;
            let command = cmd!(
                sh,
                "{cargo} build --profile {profile} --manifest-path {manifest} --package {package} --target {target} --target-dir {target_dir}"
            );
            Ok((command, spec.target_dir.join(target).join(profile).join(&spec.bin)))
        }
        Builder::Zig => {
            let venv = zig_venv.context("the zig builder needs its tools installed first")?;
            let bin_dir = venv.join("bin");
            // cargo-lambda finds zig as `python3 -m ziglang`, the venv's python3.
            let path = std::env::join_paths(
                std::iter::once(bin_dir.clone())
                    .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
            )?;
            let target_dir = spec.target_dir.join("lambda-zig");
            let old_glibc = format!("{target}.{ZIG_GLIBC}");
            let cargo_lambda = bin_dir.join("cargo-lambda");
            // cargo-lambda moves the binary out of cargo's directory to <lambda-dir>/<bin>/bootstrap.
            let lambda_dir = target_dir.join("lambda");
            // --disable-optimizations: the workspace's profile decides, as for `cargo`.
            // The target directory goes by environment: cargo-lambda passes --target-dir on to
            // `cargo metadata`, which rejects it.
            let command = cmd!(
                sh,
                "{cargo_lambda} lambda build --profile {profile} --disable-optimizations --manifest-path {manifest} --package {package} --target {old_glibc} --lambda-dir {lambda_dir}"
            )
            .env("PATH", path)
            .env("CARGO", &cargo)
            .env("CARGO_TARGET_DIR", &target_dir);
            Ok((command, lambda_dir.join(&spec.bin).join("bootstrap")))
        }
    }
}

impl BuildSpec {
    /// The service's binary in the workspace at `root`, as deploy builds it.
    pub fn service(
        root: &Path,
        target_dir: PathBuf,
        arch: Arch,
        builder: Builder,
        profile: &str,
    ) -> BuildSpec {
        BuildSpec {
            manifest: root.join("Cargo.toml"),
            package: "app".into(),
            bin: "app".into(),
            arch,
            builder,
            target_dir,
            profile: profile.to_owned(),
        }
    }
}

/// Refuse early, with the fix, when the Rust standard library for `arch` is missing.
pub fn ensure_target_installed(sh: &Shell, arch: Arch) -> anyhow::Result<()> {
    let target = arch.rust_target();
    let libdir = cmd!(sh, "rustc --print target-libdir --target {target}").quiet().read().unwrap_or_default();
    if libdir.is_empty() || !sh.path_exists(&libdir) {
        bail!(
            "the Rust target {target} is not installed: run `rustup target add {target}` and deploy with the default --builder zig (it cross-links), or deploy --arch x86_64"
        );
    }
    Ok(())
}
