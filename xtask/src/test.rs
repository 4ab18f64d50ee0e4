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
        let moto;
        let endpoint = match &self.endpoint_url {
            Some(endpoint) => endpoint.clone(),
            None => {
                moto = Moto::start(sh, &server, &target.join("tools").join("run"), &MotoOptions::default())?;
                eprintln!("{} on {}", crate::emulator::MOTO.packages[0], moto.endpoint);
                moto.endpoint.clone()
            }
        };
        let cargo = crate::flags::cargo();
        let args = &self.cargo_test_args;
        let command: Command = with_emulator_env(cmd!(sh, "{cargo} test --workspace {args...}"), &endpoint)
            .env("RECORDING_MOTO_SERVER", &server)
            .env("RECORDING_ZIG_TOOLS", &zig)
            .into();
        let mut child = tokio::process::Command::from(command)
            .kill_on_drop(true)
            .spawn()
            .context("could not run cargo test")?;
        let status = tokio::select! {
            status = child.wait() => status?,
            signal = crate::signals::stop_requested() => bail!("{signal}: tests stopped, emulator stopped"),
        };
        if !status.success() {
            bail!("tests failed ({status})");
        }
        Ok(())
    }
}
