//! `cargo xtask bench --build`: the newcomer's path and the edit–test loop, timed on this
//! machine from a fresh clone with no target directory (cargo's download cache and pip's stay,
//! as on a machine that has built any Rust project before): `cargo xtask local` until its first
//! `/health` 200, then `cargo xtask test`, a one-line change to the service and `cargo xtask
//! test`, `cargo xtask test` with nothing changed, and the size of the target directory.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use xshell::{cmd, Shell};

use crate::emulator::free_port;
use crate::flags::Bench;
use crate::progress::Spinner;

/// The targets issue 12 set, in seconds (and bytes for the target directory).
const LOCAL_TARGET_S: f64 = 600.0;
const FIRST_TEST_TARGET_S: f64 = 300.0;
const EDIT_TEST_TARGET_S: f64 = 180.0;
const NOOP_TEST_TARGET_S: f64 = 60.0;
const TARGET_DIR_TARGET_BYTES: u64 = 4_000_000_000;

/// The edit: one line appended to the service's routes, a new item, so the service and
/// everything that depends on it (xtask, every test binary) is rebuilt as after a real change.
const ONE_LINE_CHANGE: &str = "const _BENCH_ONE_LINE_CHANGE: u8 = 1;\n";

#[derive(Debug, Serialize)]
struct Report {
    commit: String,
    local_first_health_s: f64,
    test_after_local_s: f64,
    test_after_one_line_change_s: f64,
    test_nothing_changed_s: f64,
    /// After `cargo xtask local` and the first `cargo xtask test`.
    target_dir_bytes_after_local_and_test: u64,
    /// After all four steps.
    target_dir_bytes: u64,
}

pub async fn run(bench: &Bench, sh: &Shell) -> anyhow::Result<()> {
    let workspace = sh.current_dir();
    let scratch = tempfile::Builder::new()
        .prefix("recording-server-bench-build-")
        .tempdir()
        .context("could not create a scratch directory in the system's temp directory")?;
    let report = match measure(sh, &workspace, scratch.path()).await {
        Ok(report) => report,
        Err(err) => {
            // The logs say what failed; keep them (and the clone) for the developer to read.
            let kept = scratch.keep();
            eprintln!("kept the clone, its target directory and the logs in {}", kept.display());
            return Err(err);
        }
    };
    if bench.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

async fn measure(sh: &Shell, workspace: &Path, scratch: &Path) -> anyhow::Result<Report> {
    let clone = scratch.join("clone");
    let target = scratch.join("target");
    let commit = cmd!(sh, "git -C {workspace} rev-parse --short HEAD").quiet().read()?;
    cmd!(sh, "git clone --quiet --no-hardlinks {workspace} {clone}")
        .run()
        .context("could not clone the workspace")?;
    eprintln!(
        "measuring a fresh clone of {commit} (committed changes only) in {}; each step's output goes to a log there",
        scratch.display()
    );
    let inner = Shell::new()?;
    inner.change_dir(&clone);
    inner.set_var("CARGO_TARGET_DIR", &target);
    let cargo = crate::toolchain::cargo();

    let local_first_health_s = time_local(&inner, &cargo, &scratch.join("local.log")).await?;
    let test = |log: &'static str, step: &'static str| {
        let log = scratch.join(log);
        let mut command = Command::from(cmd!(inner, "{cargo} xtask test"));
        async move {
            let log_file = std::fs::File::create(&log)?;
            command.stdin(Stdio::null()).stdout(log_file.try_clone()?).stderr(log_file);
            crate::signals::stop_with_parent(&mut command);
            let spinner = Spinner::new(&format!("cargo xtask test ({step})"));
            spinner.tick();
            let started = Instant::now();
            let status = tokio::process::Command::from(command).kill_on_drop(true).status().await;
            spinner.finish();
            if !status.context("could not run cargo xtask test")?.success() {
                bail!("`cargo xtask test` failed ({step}): see {}", log.display());
            }
            let seconds = started.elapsed().as_secs_f64();
            eprintln!("cargo xtask test ({step}): {seconds:.0} s");
            anyhow::Ok(seconds)
        }
    };
    let test_after_local_s = test("test-1.log", "after local").await?;
    let target_dir_bytes_after_local_and_test = disk_usage(sh, &target)?;
    let routes = clone.join("app").join("src").join("routes.rs");
    let mut source = inner.read_file(&routes)?;
    source.push_str(ONE_LINE_CHANGE);
    inner.write_file(&routes, source)?;
    let test_after_one_line_change_s = test("test-2.log", "after a one-line change").await?;
    let test_nothing_changed_s = test("test-3.log", "nothing changed").await?;
    let target_dir_bytes = disk_usage(sh, &target)?;
    Ok(Report {
        commit,
        local_first_health_s,
        test_after_local_s,
        test_after_one_line_change_s,
        test_nothing_changed_s,
        target_dir_bytes_after_local_and_test,
        target_dir_bytes,
    })
}

/// Bytes on disk under `dir` (hard links counted once, as cargo's `target/debug/<bin>` are).
fn disk_usage(sh: &Shell, dir: &Path) -> anyhow::Result<u64> {
    let du = cmd!(sh, "du --summarize --block-size=1 {dir}").quiet().read()?;
    du.split_whitespace()
        .next()
        .and_then(|bytes| bytes.parse().ok())
        .with_context(|| format!("unexpected du output: {du}"))
}

/// `cargo xtask local` in the clone until its service answers `/health`; then stopped as an IDE
/// stops it (SIGTERM). Returns the seconds from the command to the first 200.
async fn time_local(sh: &Shell, cargo: &str, log: &Path) -> anyhow::Result<f64> {
    let port = free_port()?;
    let log_file = std::fs::File::create(log)?;
    let port_arg = port.to_string();
    let mut command = Command::from(cmd!(sh, "{cargo} xtask local --port {port_arg}"));
    command.stdin(Stdio::null()).stdout(log_file.try_clone()?).stderr(log_file);
    crate::signals::stop_with_parent(&mut command);
    let child = command.spawn().context("could not run cargo xtask local")?;
    let mut local = Local(child);
    let spinner = Spinner::new("cargo xtask local (fresh clone, no target directory)");
    spinner.tick();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let health = format!("http://127.0.0.1:{port}/health");
    let started = Instant::now();
    let answered = loop {
        if let Some(status) = local.0.try_wait()? {
            spinner.finish();
            bail!("`cargo xtask local` exited ({status}) before serving: see {}", log.display());
        }
        if http.get(&health).send().await.is_ok_and(|r| r.status().is_success()) {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(3600) {
            spinner.finish();
            bail!("`cargo xtask local` did not serve /health within an hour: see {}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    spinner.finish();
    let seconds = answered.as_secs_f64();
    eprintln!("cargo xtask local: first /health 200 after {seconds:.0} s");
    drop(local);
    Ok(seconds)
}

/// The running `cargo xtask local`: asked to stop with SIGTERM, as an IDE's stop button does,
/// when dropped; killed if it has not stopped within 30 s.
struct Local(Child);

impl Drop for Local {
    fn drop(&mut self) {
        let Ok(pid) = i32::try_from(self.0.id()) else { return };
        // SAFETY: kill(2) on our own child's pid; no memory is shared.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn print_report(report: &Report) {
    let gb = |bytes: u64| bytes as f64 / 1e9;
    let line = |what: &str, value: String, target: String, met: bool| {
        println!("{what:<46} {value:>9}   target {target:<8} {}", if met { "met" } else { "MISSED" });
    };
    println!("fresh clone of {} on this machine ({} cores)", report.commit, cores());
    let seconds = |what: &str, value: f64, target: f64| {
        line(what, format!("{value:.0} s"), format!("≤ {target:.0} s"), value <= target)
    };
    seconds("cargo xtask local → first /health 200", report.local_first_health_s, LOCAL_TARGET_S);
    seconds("cargo xtask test, right after", report.test_after_local_s, FIRST_TEST_TARGET_S);
    seconds(
        "one-line change in app/src/routes.rs → test",
        report.test_after_one_line_change_s,
        EDIT_TEST_TARGET_S,
    );
    seconds("cargo xtask test, nothing changed", report.test_nothing_changed_s, NOOP_TEST_TARGET_S);
    for (what, bytes) in [
        ("target/ after local and the first test", report.target_dir_bytes_after_local_and_test),
        ("target/ after all of the above", report.target_dir_bytes),
    ] {
        line(
            what,
            format!("{:.1} GB", gb(bytes)),
            format!("≤ {:.0} GB", gb(TARGET_DIR_TARGET_BYTES)),
            bytes <= TARGET_DIR_TARGET_BYTES,
        );
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}
