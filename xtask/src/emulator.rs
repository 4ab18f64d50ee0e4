//! The AWS emulator: moto server, installed into a virtualenv under `target/` on first use,
//! started on a free loopback port, and stopped when its guard drops.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

use crate::tools::Tool;

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The pinned emulator; bump deliberately, the tests encode its behaviour.
pub const MOTO: Tool = Tool {
    name: "moto-5.2.5",
    packages: &["moto[server]==5.2.5"],
    executable: "moto_server",
    purpose: "the moto emulator",
};

/// Install moto into `<target>/tools` unless it is already there; returns the path of its
/// `moto_server` executable.
pub fn install_moto(sh: &Shell, target_dir: &Path) -> anyhow::Result<PathBuf> {
    Ok(MOTO.install(sh, target_dir)?.join("bin").join("moto_server"))
}

/// Settings of one emulator instance.
#[derive(Debug, Default, Clone)]
pub struct MotoOptions {
    /// Extra environment, e.g. `INITIAL_NO_AUTH_ACTION_COUNT` to enforce IAM after N requests.
    pub env: Vec<(String, String)>,
    /// Record every request from the start into this file (JSON lines), instead of only
    /// between the recorder's start and stop calls.
    pub recording: Option<PathBuf>,
    /// Log a line per request (werkzeug's access log) to the instance's log file: for a
    /// developer watching `cargo xtask local`; tests read the recording instead, and benchmarks
    /// would pay for the lines.
    pub request_log: bool,
}

/// How moto's server is started: `moto_server` itself, with two changes that only save time,
/// found with py-spy under `bench --load`. moto 5.2.5 finds each request's backend by listing
/// its package directory (a listdir and ~170 stats, under a lock every request waits on; 16 % of
/// its CPU), a list that cannot change while it runs: listed once here. werkzeug's access log
/// (13 %) is written only when asked. Fails at start, loudly, if moto's layout moved.
const LAUNCHER: &str = r#"
import logging, sys
import moto.backends
modules = tuple(moto.backends.list_of_moto_modules())
moto.backends.list_of_moto_modules = lambda: modules
if sys.argv.pop(1) != "request-log":
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
from moto.server import main
sys.exit(main())
"#;

/// A running emulator (moto, or dynalite for load runs) on a loopback port; killed when dropped
/// (normal exit, error or unwinding panic).
#[derive(Debug)]
pub struct Emulator {
    /// `moto` or `dynalite`, for messages.
    name: &'static str,
    child: Child,
    pub endpoint: String,
    pub log: PathBuf,
}

/// The moto server (most emulators in this project are).
pub type Moto = Emulator;

impl Emulator {
    /// Start moto's `server` on a free 127.0.0.1 port and wait until it answers.
    pub fn start(sh: &Shell, server: &Path, dir: &Path, options: &MotoOptions) -> anyhow::Result<Moto> {
        let port = free_port()?.to_string();
        sh.create_dir(dir)?;
        // Each instance records to its own file: moto's default is the working directory,
        // shared by every instance.
        let recording = match &options.recording {
            Some(path) => path.clone(),
            None => dir.join(format!("moto-{port}-recording.jsonl")),
        };
        // The virtualenv's interpreter, beside `moto_server`, runs the launcher.
        let python = server.with_file_name("python3");
        let log = if options.request_log { "request-log" } else { "quiet" };
        let command = cmd!(sh, "{python} -c {LAUNCHER} {log} -H 127.0.0.1 -p {port}")
            .env("MOTO_RECORDER_FILEPATH", &recording)
            .env("MOTO_ENABLE_RECORDING", if options.recording.is_some() { "True" } else { "" })
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .into();
        Emulator::spawn("moto", command, &port, dir)
    }

    /// Start dynalite (in memory) on a free 127.0.0.1 port and wait until it answers.
    pub fn start_dynalite(sh: &Shell, executable: &Path, dir: &Path) -> anyhow::Result<Emulator> {
        let port = free_port()?.to_string();
        sh.create_dir(dir)?;
        // Tables become ACTIVE at once: the load run creates them and starts.
        let command = cmd!(sh, "{executable} --host 127.0.0.1 --port {port} --createTableMs 0").into();
        Emulator::spawn("dynalite", command, &port, dir)
    }

    /// Run `command` (listening on `port`) with its output in a log under `dir`, and wait.
    fn spawn(name: &'static str, mut command: Command, port: &str, dir: &Path) -> anyhow::Result<Emulator> {
        let log = dir.join(format!("{name}-{port}.log"));
        let log_file = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let child = crate::signals::stop_with_parent(&mut command)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {}", command.get_program().to_string_lossy()))?;
        let mut emulator = Emulator { name, child, endpoint: format!("http://127.0.0.1:{port}"), log };
        emulator.wait_until_ready()?;
        Ok(emulator)
    }

    fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let addr = self.endpoint.trim_start_matches("http://").to_owned();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before answering; its log {}:\n{}",
                    self.name,
                    self.log.display(),
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if answers_http(&addr) {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "{} did not answer on {} within {START_TIMEOUT:?}; see {}",
                    self.name,
                    self.endpoint,
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP probe, so readiness needs no HTTP client or async runtime.
fn answers_http(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /moto-api/ HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut head = [0u8; 12];
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_exact(&mut head).is_ok()
        && head.starts_with(b"HTTP/1.")
}

/// Ask the OS for a free port. Another process could take it before moto binds it; moto then
/// exits and `start` reports its log.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// The pinned DynamoDB emulator for load runs: dynalite answers Query from an index, where moto
/// copies every item of the table per call. Installed with npm under `<target>/tools`.
pub const DYNALITE: &str = "dynalite@4.0.0";

/// Install dynalite into `<target>/tools/dynalite-<version>` unless it is there; returns its
/// executable.
pub fn install_dynalite(sh: &Shell, target_dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = target_dir.join("tools").join(DYNALITE.replace('@', "-"));
    let executable = dir.join("node_modules").join(".bin").join("dynalite");
    // Written only after npm succeeded, so an interrupted install is redone, not trusted.
    let marker = dir.join("installed");
    if sh.path_exists(&marker) && sh.path_exists(&executable) {
        return Ok(executable);
    }
    cmd!(sh, "npm --version").quiet().ignore_stdout().run().context(
        "npm not found: install Node.js 18+ with npm (e.g. `apt install nodejs npm`); it installs dynalite",
    )?;
    eprintln!("installing {DYNALITE} into {} (first run only)...", dir.display());
    sh.create_dir(&dir)?;
    cmd!(sh, "npm install --prefix {dir} --no-audit --no-fund --silent {DYNALITE}").run().with_context(
        || format!("npm could not install {DYNALITE}: check access to the npm registry, then rerun"),
    )?;
    sh.write_file(&marker, DYNALITE)?;
    Ok(executable)
}

/// The browser-test driver, pinned.
pub const PLAYWRIGHT_CORE: &str = "playwright-core@1.64.1";
/// The accessibility checker the browser test runs in the page, pinned.
pub const AXE_CORE: &str = "axe-core@4.10.3";
/// Debian's Chromium, which the browser tests drive (Playwright's own browser download is not
/// reachable from here).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The browser tests' tools: Debian's Chromium (installed with apt as root when missing) and
/// playwright-core from npm into the target directory, once. Returns Chromium's path and the
/// playwright-core package directory.
pub fn install_browser(sh: &Shell, target_dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let chromium = PathBuf::from(CHROMIUM);
    if !sh.path_exists(&chromium) {
        let root = cmd!(sh, "id -u").quiet().read().is_ok_and(|uid| uid.trim() == "0");
        if !root {
            anyhow::bail!(
                "the browser tests need Debian's chromium at {CHROMIUM}: install it with `sudo apt-get install chromium`"
            );
        }
        eprintln!("installing Debian's chromium for the browser tests (first run only, about 100 MB)...");
        cmd!(sh, "apt-get update -qq").env("DEBIAN_FRONTEND", "noninteractive").run().context(
            "apt-get update failed: the browser tests need the chromium package; check access to Debian's mirrors",
        )?;
        cmd!(sh, "apt-get install -y -qq chromium").env("DEBIAN_FRONTEND", "noninteractive").run().context(
            "apt-get could not install the chromium package the browser tests need: check access to Debian's mirrors",
        )?;
    }
    let dir = target_dir.join("tools").join(PLAYWRIGHT_CORE.replace('@', "-"));
    let package = dir.join("node_modules").join("playwright-core");
    let marker = dir.join("installed");
    let installed = sh.read_file(&marker).unwrap_or_default();
    if installed != format!("{PLAYWRIGHT_CORE} {AXE_CORE}") || !sh.path_exists(&package) {
        cmd!(sh, "npm --version").quiet().ignore_stdout().run().context(
            "npm not found: install Node.js 18+ with npm (e.g. `apt install nodejs npm`); it installs playwright-core",
        )?;
        eprintln!("installing {PLAYWRIGHT_CORE} into {} (first run only)...", dir.display());
        sh.create_dir(&dir)?;
        cmd!(sh, "npm install --prefix {dir} --no-audit --no-fund --silent {PLAYWRIGHT_CORE} {AXE_CORE}")
            .run()
            .with_context(|| {
                format!(
                    "npm could not install {PLAYWRIGHT_CORE}: check access to the npm registry, then rerun"
                )
            })?;
        sh.write_file(&marker, format!("{PLAYWRIGHT_CORE} {AXE_CORE}"))?;
    }
    Ok((chromium, package))
}
