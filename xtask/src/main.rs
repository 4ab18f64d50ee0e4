//! `cargo xtask`: parse flags, build the shell and runtime, dispatch to the task.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use xshell::Shell;
use xtask::flags::{Task, Xtask};
use xtask::{Failure, USAGE};

/// Exit code after a stop request (SIGINT, SIGTERM, SIGHUP), as shells report 128 + SIGINT.
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    // `cargo xtask check-iam | head`: end quietly when the reader goes away, as Unix tools do,
    // instead of panicking in println! on EPIPE. SIGPIPE itself stays ignored (Rust's default):
    // with its default disposition, an endpoint that closes the connection while a package is
    // being uploaded would kill the task silently by the signal, instead of failing the call
    // with a message.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") {
            // 128 + SIGPIPE, as a shell reports a reader-closed pipe.
            std::process::exit(141);
        }
        default_hook(info);
    }));
    let flags = match Xtask::try_parse() {
        Ok(flags) => flags,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() { ExitCode::from(USAGE) } else { ExitCode::SUCCESS };
        }
    };
    match run(flags) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            match err.downcast_ref::<Failure>() {
                Some(failure) => ExitCode::from(failure.code),
                None => ExitCode::FAILURE,
            }
        }
    }
}

fn run(flags: Xtask) -> anyhow::Result<()> {
    let debug = std::env::var("RUST_LOG").is_ok_and(|v| v.contains("debug") || v.contains("trace"));
    xtask::aws::set_verbose(flags.verbose || debug);
    forget_cargo_run_env();
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let task = match flags.task {
            // `local` ends on a stop request as its normal way to end (its own message, exit 0),
            // so no second handler races it.
            Task::Local(task) => return task.run(&sh).await,
            // So does `logs --follow`; `logs` starts no process.
            Task::Logs(task) => return task.run().await,
            task => task,
        };
        let task = async {
            match task {
                Task::Local(_) | Task::Logs(_) => unreachable!("handled above"),
                Task::Test(task) => task.run(&sh).await,
                Task::CreateTables(task) => task.run().await,
                Task::CheckIam(task) => task.run().await,
                Task::Deploy(task) => task.run(&sh).await,
                Task::Destroy(task) => task.run().await,
                Task::Bench(task) => task.run(&sh).await,
                Task::Status(task) => task.run().await,
                Task::Rollback(task) => task.run().await,
                Task::Reconcile(task) => task.run().await,
            }
        };
        // A stop request drops the task, and with it every process it started (their guards
        // stop them).
        let interrupted = |signal: &str| -> anyhow::Error {
            Failure::new(INTERRUPTED, anyhow::anyhow!("stopped by {signal}; everything this task started was stopped"))
                .into()
        };
        let signal = xtask::signals::stop_requested();
        tokio::pin!(signal);
        tokio::select! {
            biased;
            signal = &mut signal => Err(interrupted(signal)),
            result = task => match result {
                // A task that failed because its build or child was interrupted (Ctrl-C reaches the
                // whole process group) reports the interruption, not the child's failure.
                Err(err) => match tokio::time::timeout(std::time::Duration::from_millis(200), &mut signal).await {
                    Ok(signal) => Err(interrupted(signal)),
                    Err(_) => Err(err),
                },
                ok => ok,
            },
        }
    })
}

/// `cargo run` gives xtask its package's variables (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, ...).
/// The cargo builds xtask starts would inherit them, and build scripts that watch them (ring's
/// does) would then rerun and invalidate everything built by a plain `cargo` from a shell, and
/// the other way round: every `cargo xtask test` compiled the SDK twice. Called before any thread
/// exists.
fn forget_cargo_run_env() {
    let inherited = std::env::vars_os().map(|(key, _)| key).filter(|key| {
        let key = key.to_string_lossy();
        key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_")
            || matches!(
                &*key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
    });
    for key in inherited.collect::<Vec<_>>() {
        std::env::remove_var(key);
    }
}

/// The workspace root, so `cargo xtask` works from any subdirectory.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace root").to_owned()
}
