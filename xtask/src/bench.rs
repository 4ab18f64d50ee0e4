//! `cargo xtask bench`: the numbers the performance budgets ask for, measured on this machine:
//! release binary size, cold start (process start to the first `GET /health` 200, to a first
//! sign-in's 200, and to the first `GET /record/list` 200 after it, against the emulator), with
//! and without the init's warm-up calls, and idle RSS.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use xshell::{cmd, Shell};

use crate::aws::{with_emulator_env, Aws};
use crate::create_tables::{ensure_tables, Options};
use crate::emulator::{free_port, install_moto, Moto, MotoOptions};
use crate::flags::Bench;
use crate::toolchain::target_dir;

const PREFIX: &str = "bench-";
const BUCKET: &str = "recording-server-bench";

#[derive(Debug, Serialize)]
struct Report {
    binary_bytes: u64,
    runs: usize,
    health_ms: Stats,
    /// Start → a first sign-in's 200 (a new user each run), sent once /health answered.
    first_login_ms: Stats,
    first_list_ms: Stats,
    /// The first list request alone (sent once the sign-in answered).
    first_list_request_ms: Stats,
    idle_rss_kib: Stats,
    /// The same, with the warm-up turned off (`RECORD_WARM_UP=false`).
    without_warm_up: ColdStart,
}

#[derive(Debug, Serialize)]
struct ColdStart {
    health_ms: Stats,
    first_login_ms: Stats,
    first_list_ms: Stats,
    first_list_request_ms: Stats,
}

/// One start of the service: start → /health, start → first list, the list alone, idle RSS.
#[derive(Default)]
struct Samples {
    health: Vec<f64>,
    login: Vec<f64>,
    list: Vec<f64>,
    list_request: Vec<f64>,
    rss: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct Stats {
    min: f64,
    median: f64,
    max: f64,
}

impl Stats {
    fn of(mut values: Vec<f64>) -> Stats {
        values.sort_by(f64::total_cmp);
        Stats { min: values[0], median: values[values.len() / 2], max: values[values.len() - 1] }
    }
}

mod build;
mod load;
pub mod power;

impl Bench {
    pub async fn run(self, sh: &Shell) -> anyhow::Result<()> {
        if self.load {
            return load::run(self, sh).await;
        }
        if self.power {
            return power::run(self, sh).await;
        }
        if self.build {
            return build::run(&self, sh).await;
        }
        if self.runs == 0 {
            bail!("--runs must be at least 1");
        }
        let cargo = crate::toolchain::cargo();
        eprintln!("building the service in release mode (a cold build takes several minutes)...");
        // The whole workspace's features, as `bench --load`, `local` and the tests resolve them:
        // `--package app` alone resolved others and compiled the AWS SDK once more in release.
        cmd!(sh, "{cargo} build --release --workspace --bin app").run().context("release build failed")?;
        let target = target_dir(&sh.current_dir());
        let binary = target.join("release").join("app");
        let binary_bytes = std::fs::metadata(&binary)?.len();

        let server = install_moto(sh, &target)?;
        let moto = Moto::start(sh, &server, &target.join("tools").join("run"), &MotoOptions::default())?;
        let aws = Aws::emulator(&moto.endpoint).await;
        let options = Options {
            prefix: PREFIX.into(),
            stage: "bench".into(),
            protect: false,
            dry_run: false,
            timeout: Duration::from_secs(60),
        };
        for table in ensure_tables(&aws, &options).await {
            table?;
        }
        crate::bucket::ensure_private_bucket(&aws, BUCKET).await?;

        let http = reqwest::Client::new();
        let mut auth = None;
        let (mut warm, mut cold) = (Samples::default(), Samples::default());
        // Run 0 signs the bench user in (keys live in the emulator across runs) and warms caches.
        // Each run starts the service twice, with and without warm-up, in turn.
        for run in 0..=self.runs {
            for (warm_up, samples) in [(true, &mut warm), (false, &mut cold)] {
                let port = free_port()?;
                let mut command: Command = with_emulator_env(cmd!(sh, "{binary}"), &moto.endpoint)
                    .env("PORT", port.to_string())
                    .envs(
                        app::config::Settings {
                            table_prefix: PREFIX.into(),
                            allow_unverified_login: true,
                            warm_up: Some(warm_up),
                            ..app::config::Settings::new(BUCKET)
                        }
                        .to_env(),
                    )
                    .env("RUST_LOG", "warn")
                    .into();
                let started = Instant::now();
                let spawned = crate::signals::stop_with_parent(&mut command).stdout(Stdio::null()).spawn();
                let mut child = spawned.context("cannot start the service")?;
                let base = format!("http://127.0.0.1:{port}");
                let result = async {
                    let to_health = poll(&http, &format!("{base}/health"), None, started).await?;
                    // A new user each start, so no run pays for another's keys.
                    let user = format!("bench-{run}-{warm_up}-{}", std::process::id());
                    let login = crate::local::unverified_login(&http, &base, &user).await?;
                    let to_login = started.elapsed().as_secs_f64() * 1000.0;
                    let header = auth.get_or_insert(login);
                    let sent = Instant::now();
                    let to_list = poll(&http, &format!("{base}/record/list"), Some(header), started).await?;
                    let list_request = sent.elapsed().as_secs_f64() * 1000.0;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    anyhow::Ok((to_health, to_login, to_list, list_request, idle_rss_kib(child.id())?))
                }
                .await;
                let _ = child.kill();
                let _ = child.wait();
                let (h, g, l, r, m) = result?;
                if run > 0 {
                    samples.health.push(h);
                    samples.login.push(g);
                    samples.list.push(l);
                    samples.list_request.push(r);
                    samples.rss.push(m);
                }
            }
        }
        let report = Report {
            binary_bytes,
            runs: self.runs,
            health_ms: Stats::of(warm.health),
            first_login_ms: Stats::of(warm.login),
            first_list_ms: Stats::of(warm.list),
            first_list_request_ms: Stats::of(warm.list_request),
            idle_rss_kib: Stats::of(warm.rss),
            without_warm_up: ColdStart {
                health_ms: Stats::of(cold.health),
                first_login_ms: Stats::of(cold.login),
                first_list_ms: Stats::of(cold.list),
                first_list_request_ms: Stats::of(cold.list_request),
            },
        };
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!(
                "release binary        {:.1} MiB ({} bytes, stripped)",
                binary_bytes as f64 / 1048576.0,
                binary_bytes
            );
            let line = |name: &str, s: &Stats, unit: &str| {
                println!(
                    "{name:<21} median {:.1} {unit} (min {:.1}, max {:.1}) over {} runs",
                    s.median, s.min, s.max, self.runs
                )
            };
            line("start → /health 200", &report.health_ms, "ms");
            line("start → /login 200", &report.first_login_ms, "ms");
            line("start → /record/list", &report.first_list_ms, "ms");
            line("  the list alone", &report.first_list_request_ms, "ms");
            line("idle RSS", &report.idle_rss_kib, "KiB");
            println!("without warm-up (RECORD_WARM_UP=false):");
            let cold = &report.without_warm_up;
            line("start → /health 200", &cold.health_ms, "ms");
            line("start → /login 200", &cold.first_login_ms, "ms");
            line("start → /record/list", &cold.first_list_ms, "ms");
            line("  the list alone", &cold.first_list_request_ms, "ms");
        }
        Ok(())
    }
}

/// Milliseconds from `started` until `url` answers 200.
async fn poll(
    http: &reqwest::Client,
    url: &str,
    auth: Option<&String>,
    started: Instant,
) -> anyhow::Result<f64> {
    loop {
        let mut request = http.get(url);
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        if let Ok(response) = request.send().await {
            if response.status() == 200 {
                return Ok(started.elapsed().as_secs_f64() * 1000.0);
            }
            bail!("{url} answered {}", response.status());
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("{url} did not answer within 30 s");
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

pub(crate) fn idle_rss_kib(pid: u32) -> anyhow::Result<f64> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).context("cannot read /proc (Linux only)")?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS in /proc status")?;
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).context("unreadable VmRSS")
}
