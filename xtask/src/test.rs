//! `cargo xtask test`: the one command that runs every test. Starts moto, runs
//! `cargo test --workspace` against it, stops it; fails if anything is missing or fails.

use std::process::Command;

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

use crate::aws::with_emulator_env;
use crate::emulator::{install_moto, Moto, MotoOptions};
use crate::flags::{target_dir, Test};

impl Test {
    pub async fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let target = target_dir(&sh.current_dir());
        // Installed even with --endpoint-url: tests that need their own instance (IAM
        // enforcement, request recording) start one from it.
        let server = install_moto(sh, &target)?;
        // The build tests use zig and cargo-lambda; installed here so tests never reach PyPI.
        let zig = crate::deploy::build::ZIG.install(sh, &target)?;
        // The load test's DynamoDB emulator, likewise installed before any test runs.
        let dynalite = crate::emulator::install_dynalite(sh, &target)?;
        // Every emulator of the run records every request here, for the catalogue coverage check.
        let calls = target.join("tmp").join(format!("calls-{}", std::process::id()));
        sh.create_dir(&calls)?;
        let moto;
        let endpoint = match &self.endpoint_url {
            Some(endpoint) => endpoint.clone(),
            None => {
                let options =
                    MotoOptions { recording: Some(calls.join("shared.jsonl")), ..MotoOptions::default() };
                moto = Moto::start(sh, &server, &target.join("tools").join("run"), &options)?;
                eprintln!("{} on {}", crate::emulator::MOTO.packages[0], moto.endpoint);
                moto.endpoint.clone()
            }
        };
        let cargo = crate::flags::cargo();
        let args = &self.cargo_test_args;
        // The tests' own temporary directory: whatever they leave there is found, then removed.
        let scratch = target.join("tmp").join(format!("test-{}", std::process::id()));
        sh.create_dir(&scratch)?;
        let mut command: Command =
            with_emulator_env(cmd!(sh, "{cargo} test --workspace {args...}"), &endpoint)
                .env("RECORDING_MOTO_SERVER", &server)
                .env("RECORDING_ZIG_TOOLS", &zig)
                .env("RECORDING_DYNALITE", &dynalite)
                .env("TMPDIR", &scratch)
                .env("RECORDING_CALLS_DIR", &calls)
                .into();
        crate::signals::stop_with_parent(&mut command);
        let mut child = tokio::process::Command::from(command)
            .kill_on_drop(true)
            .spawn()
            .context("could not run cargo test")?;
        let status = tokio::select! {
            status = child.wait() => status?,
            signal = crate::signals::stop_requested() => bail!("{signal}: tests stopped, emulator stopped"),
        };
        let left_behind = ours_left_in(&scratch);
        let _ = std::fs::remove_dir_all(&scratch);
        let recorded = crate::coverage::read_recordings(&calls);
        let _ = std::fs::remove_dir_all(&calls);
        if !status.success() {
            bail!("tests failed ({status})");
        }
        let (recorded, garbled) = recorded?;
        let coverage = crate::coverage::Coverage::of(&recorded, crate::coverage::catalogue_of);
        // A focused run (`cargo xtask test -- -p xtask check_iam`) exercises little by design.
        eprint!("{}", coverage.report(self.cargo_test_args.is_empty()));
        if garbled > 0 {
            eprintln!("  ({garbled} recorded lines were interleaved by the emulator's threads and skipped)");
        }
        if !coverage.is_complete() {
            bail!("the tests passed, but the code made AWS calls its permission catalogue does not grant (above)");
        }
        if !left_behind.is_empty() {
            bail!(
                "the tests passed but left temporary files behind (create them with tempfile): {}",
                left_behind.join(", ")
            );
        }
        Ok(())
    }
}

/// The project's own temporary entries (`recording-server-*`) left in `dir`.
fn ours_left_in(dir: &std::path::Path) -> Vec<String> {
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    entries
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("recording-server-"))
        .collect()
}
