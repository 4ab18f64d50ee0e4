//! `cargo xtask test`: the one command that runs every test. Starts moto, builds every test
//! target of the workspace once and runs the test binaries side by side against it, stops it;
//! fails if anything is missing or fails. With arguments it is `cargo test --workspace <args>`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

use crate::aws::with_emulator_env;
use crate::deploy::package::Arch;
use crate::emulator::{install_moto, Moto, MotoOptions};
use crate::flags::Test;
use crate::toolchain::target_dir;

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
        // The policy linter the catalogue test runs on each rendered policy part.
        let parliament = crate::tools::PARLIAMENT.install(sh, &target)?;
        // The web recorder's tests drive Debian's Chromium with playwright-core.
        let (chromium, playwright) = crate::emulator::install_browser(sh, &target)?;
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
        let cargo = crate::toolchain::cargo();
        let args = &self.cargo_test_args;
        // The tests' own temporary directory: whatever they leave there is found, then removed.
        let scratch = target.join("tmp").join(format!("test-{}", std::process::id()));
        sh.create_dir(&scratch)?;
        let env = TestEnv {
            endpoint,
            server,
            zig,
            dynalite,
            parliament,
            chromium,
            playwright,
            screenshots: target.join("screenshots"),
            scratch: scratch.clone(),
            calls: calls.clone(),
        };
        let run = async {
            if args.is_empty() {
                side_by_side(sh, &cargo, &env, &target).await
            } else {
                // A focused run is `cargo test` itself, so every cargo test argument works.
                let command = env.apply(cmd!(sh, "{cargo} test --workspace {args...}"));
                let status = spawn(command, "cargo test")?.wait().await?;
                Ok(status.success())
            }
        };
        let passed = tokio::select! {
            passed = run => passed?,
            signal = crate::signals::stop_requested() => bail!("{signal}: tests stopped, emulator stopped"),
        };
        let left_behind = ours_left_in(&scratch);
        let _ = std::fs::remove_dir_all(&scratch);
        let recorded = crate::coverage::read_recordings(&calls);
        let _ = std::fs::remove_dir_all(&calls);
        if !passed {
            bail!("tests failed (above)");
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

/// The zig test's build of the service (`deploy --build-profile quick` with deploy's default
/// builder and architecture), its output in a log; stopped, with its compilers, when dropped.
struct Prebuild {
    child: tokio::process::Child,
    log: PathBuf,
}

impl Prebuild {
    fn start(sh: &Shell, target: &Path, zig: &Path, log_dir: &Path) -> anyhow::Result<Prebuild> {
        use crate::deploy::build::{build_command, BuildSpec, Builder, QUICK_PROFILE};
        let spec = BuildSpec::service(
            &sh.current_dir(),
            target.to_owned(),
            Arch::DEFAULT,
            Builder::DEFAULT,
            QUICK_PROFILE,
        );
        let (command, _) = build_command(sh, &spec, Some(zig))?;
        let log = log_dir.join("lambda-build.log");
        let file = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        // A group of its own, so that stopping it, or xtask dying even by SIGKILL, stops cargo
        // and the compilers too, not only cargo-lambda.
        #[cfg(unix)]
        let mut command = crate::signals::group_stopping_with_parent(&command.into());
        #[cfg(not(unix))]
        let mut command: Command = command.into();
        command.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file);
        let child =
            tokio::process::Command::from(command).spawn().context("could not start the Lambda build")?;
        eprintln!("building the service for the zig deploy test alongside (log: {})", log.display());
        Ok(Prebuild { child, log })
    }

    /// Wait for the build. A failure is the zig test's to report (with the compiler's message);
    /// here it is only pointed at.
    async fn finish(&mut self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        if self.child.try_wait()?.is_none() {
            eprintln!("the tests are built; waiting for the Lambda build (log: {})...", self.log.display());
        }
        let status = self.child.wait().await.context("waiting for the Lambda build failed")?;
        match status.success() {
            true if started.elapsed().as_secs() >= 1 => {
                eprintln!("waited {:.0} s for the Lambda build", started.elapsed().as_secs_f64())
            }
            true => {}
            false => eprintln!("the Lambda build failed ({status}); its log: {}", self.log.display()),
        }
        Ok(())
    }
}

impl Drop for Prebuild {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let (Ok(None), Some(pid)) = (self.child.try_wait(), self.child.id()) {
            // SAFETY: kill(2) on the process group this build leads; no memory is involved.
            unsafe { libc::kill(-(pid as i32), libc::SIGTERM) };
        }
    }
}

/// What every test process is given: the emulator, the installed tools, a temporary directory
/// and where emulators record their requests.
struct TestEnv {
    endpoint: String,
    server: PathBuf,
    zig: PathBuf,
    dynalite: PathBuf,
    parliament: PathBuf,
    chromium: PathBuf,
    playwright: PathBuf,
    /// Where the browser tests write their screenshots.
    screenshots: PathBuf,
    scratch: PathBuf,
    calls: PathBuf,
}

impl TestEnv {
    fn apply(&self, command: xshell::Cmd<'_>) -> Command {
        with_emulator_env(command, &self.endpoint)
            .env("RECORDING_MOTO_SERVER", &self.server)
            .env("RECORDING_ZIG_TOOLS", &self.zig)
            .env("RECORDING_DYNALITE", &self.dynalite)
            .env("RECORDING_PARLIAMENT", &self.parliament)
            .env("RECORDING_CHROMIUM", &self.chromium)
            .env("RECORDING_PLAYWRIGHT_CORE", &self.playwright)
            .env("RECORDING_SCREENSHOTS", &self.screenshots)
            .env("TMPDIR", &self.scratch)
            .env("RECORDING_CALLS_DIR", &self.calls)
            .into()
    }
}

/// Start `command`, stopped with xtask (on drop, and by the kernel if xtask dies).
fn spawn(mut command: Command, what: &str) -> anyhow::Result<tokio::process::Child> {
    crate::signals::stop_with_parent(&mut command);
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true).spawn().with_context(|| format!("could not run {what}"))
}

/// The whole suite: every test target built once by `cargo test --no-run`, then every test
/// binary run at the same time (cargo runs them one after another, leaving a core idle while a
/// suite waits on its emulators), plus the doctests. Each binary's output is printed whole when
/// it finishes. Returns whether all passed.
async fn side_by_side(sh: &Shell, cargo: &str, env: &TestEnv, target: &Path) -> anyhow::Result<bool> {
    // The slowest test deploys the service built with zig: that build (every dependency once
    // more, for the old-glibc target) runs beside the test build and the service's tests, and
    // is done before xtask's tests start. (Not beside those: cargo-lambda moves the binary out
    // of cargo's directory, so two of its runs finishing together can leave one without it.)
    let mut prebuild = Prebuild::start(sh, target, &env.zig, &target.join("tmp"))?;
    let build = cmd!(sh, "{cargo} test --workspace --no-run --message-format json-render-diagnostics");
    let mut build: Command = build.into();
    build.stdout(Stdio::piped());
    let output = spawn(build, "cargo test --no-run")?.wait_with_output().await?;
    if !output.status.success() {
        eprintln!("the test build failed (above)");
        return Ok(false);
    }
    let binaries = test_binaries(&String::from_utf8_lossy(&output.stdout))?;
    let command = |binary: &TestBinary| {
        let executable = &binary.executable;
        let mut command = piped(env.apply(cmd!(sh, "{executable}")));
        command.current_dir(&binary.package_dir).env("CARGO_MANIFEST_DIR", &binary.package_dir);
        (binary.label.clone(), command)
    };
    // xtask's tests deploy the service built with zig; the others start at once.
    let (late, early): (Vec<_>, Vec<_>) = binaries.iter().partition(|b| b.package == "xtask");
    let mut jobs = tokio::task::JoinSet::new();
    for (label, command) in early.into_iter().map(command) {
        let child = spawn(command, &label)?;
        jobs.spawn(async move { Ok(vec![finish(label, child).await?]) });
    }
    let doc = env.apply(cmd!(sh, "{cargo} test --workspace --doc --quiet"));
    let child = spawn(piped(doc), "cargo test --doc")?;
    jobs.spawn(async move { Ok(vec![finish("doctests".to_owned(), child).await?]) });
    let late: Vec<_> = late.into_iter().map(command).collect();
    jobs.spawn(async move {
        prebuild.finish().await?;
        let mut children = Vec::new();
        for (label, command) in late {
            children.push((spawn(command, &label)?, label));
        }
        let mut done = Vec::new();
        for (child, label) in children {
            done.push(finish(label, child).await?);
        }
        anyhow::Ok(done)
    });
    eprintln!("running {} test binaries and the doctests side by side...", binaries.len());
    let mut failed = Vec::new();
    while let Some(done) = jobs.join_next().await {
        for (label, output, elapsed) in done?? {
            eprintln!("     Finished {label} in {:.1} s", elapsed.as_secs_f64());
            std::io::Write::write_all(&mut std::io::stderr(), &output.stderr)?;
            std::io::Write::write_all(&mut std::io::stdout(), &output.stdout)?;
            if !output.status.success() {
                failed.push(label);
            }
        }
    }
    if !failed.is_empty() {
        eprintln!("failed: {}", failed.join(", "));
    }
    Ok(failed.is_empty())
}

fn piped(mut command: Command) -> Command {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// How long one test binary may run: the whole suite takes a few minutes, so this is a hang
/// (a lost timeout, a test waiting on a dead process), not a slow machine.
const BINARY_LIMIT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Wait for a test process started with piped output, and time it.
async fn finish(
    label: String,
    child: tokio::process::Child,
) -> anyhow::Result<(String, std::process::Output, std::time::Duration)> {
    finish_within(label, child, BINARY_LIMIT).await
}

/// `finish`, failing loudly (and stopping the process: it is killed on drop) after `limit`.
async fn finish_within(
    label: String,
    child: tokio::process::Child,
    limit: std::time::Duration,
) -> anyhow::Result<(String, std::process::Output, std::time::Duration)> {
    let started = std::time::Instant::now();
    let output = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(output) => output.with_context(|| format!("waiting for {label} failed"))?,
        Err(_) => bail!(
            "test binary {label} ran for more than {} s and was stopped: a test hangs (run it alone with \
             `cargo xtask test -- -p <package> --test <name>` to see which)",
            limit.as_secs()
        ),
    };
    Ok((label, output, started.elapsed()))
}

/// A test executable from cargo's build messages.
#[derive(Debug, PartialEq)]
struct TestBinary {
    /// As cargo prints it, e.g. `xtask tests/it/main.rs`.
    label: String,
    /// The package's directory name (`app`, `xtask`).
    package: String,
    executable: PathBuf,
    /// cargo runs tests in their package's directory.
    package_dir: PathBuf,
}

/// The test executables in `cargo test --no-run --message-format json` output.
fn test_binaries(messages: &str) -> anyhow::Result<Vec<TestBinary>> {
    let mut binaries = Vec::new();
    for line in messages.lines().filter(|l| l.starts_with('{')) {
        let message: serde_json::Value =
            serde_json::from_str(line).context("cargo printed a garbled build message")?;
        let (Some(executable), Some(true)) =
            (message["executable"].as_str(), message["profile"]["test"].as_bool())
        else {
            continue;
        };
        let manifest = PathBuf::from(message["manifest_path"].as_str().unwrap_or_default());
        let package_dir = manifest.parent().context("cargo named no manifest for a test")?.to_owned();
        let source = Path::new(message["target"]["src_path"].as_str().unwrap_or_default());
        let source = source.strip_prefix(&package_dir).unwrap_or(source);
        let package = package_dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        binaries.push(TestBinary {
            label: format!("{package} {}", source.display()),
            package,
            executable: PathBuf::from(executable),
            package_dir,
        });
    }
    if binaries.is_empty() {
        bail!("cargo built no test binaries: nothing would run");
    }
    Ok(binaries)
}

/// The project's own temporary entries (`recording-server-*`) left in `dir`.
fn ours_left_in(dir: &std::path::Path) -> Vec<String> {
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    entries
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("recording-server-"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_test_binary_that_hangs_fails_the_run_naming_it() {
        let mut command = std::process::Command::new("sleep");
        command.arg("30").stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = spawn(command, "sleep").unwrap();
        let started = std::time::Instant::now();
        let err = finish_within("app tests/it/main.rs".into(), child, std::time::Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert!(err.to_string().contains("test binary app tests/it/main.rs ran for more than 0 s"), "{err}");
    }

    #[test]
    fn test_binaries_are_the_test_profile_artifacts_with_an_executable() {
        let messages = [
            r#"{"reason":"compiler-artifact","manifest_path":"/w/app/Cargo.toml","target":{"kind":["lib"],"src_path":"/w/app/src/lib.rs"},"profile":{"test":false},"executable":null}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/w/app/Cargo.toml","target":{"kind":["test"],"src_path":"/w/app/tests/it/main.rs"},"profile":{"test":true},"executable":"/t/debug/deps/it-1"}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/w/xtask/Cargo.toml","target":{"kind":["bin"],"src_path":"/w/xtask/src/main.rs"},"profile":{"test":false},"executable":"/t/debug/xtask"}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        let binaries = test_binaries(&messages).unwrap();
        assert_eq!(
            binaries,
            [TestBinary {
                label: "app tests/it/main.rs".into(),
                package: "app".into(),
                executable: "/t/debug/deps/it-1".into(),
                package_dir: "/w/app".into(),
            }]
        );
    }

    #[test]
    fn a_build_without_test_binaries_is_an_error_not_an_empty_pass() {
        let only_a_lib = r#"{"reason":"compiler-artifact","manifest_path":"/w/app/Cargo.toml","target":{"src_path":"/w/app/src/lib.rs"},"profile":{"test":false},"executable":null}"#;
        let error = test_binaries(only_a_lib).unwrap_err().to_string();
        assert!(error.contains("no test binaries"), "{error}");
    }
}
