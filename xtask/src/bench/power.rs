//! `cargo xtask bench --power`: the service under the CPU share Lambda gives each memory size.
//!
//! Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB. Each size runs
//! the release service in a cgroup of its own whose CPU quota is `memory / 1,769 MB` of one core
//! (set up and torn down here; creating a cgroup needs root). DynamoDB (dynalite) and S3 (moto)
//! run outside the quota, as AWS does. For each size: init (start → `/health`), the first
//! authenticated list after the cold start, and p50/p99 of list (a page of 50), get and a 1 MiB
//! upload at c = 1; the service's CPU time per request from the cgroup's own accounting; and the
//! cost per million requests from Lambda's prices. The cheapest size whose every p99 stays within
//! `--p99-budget` is recommended, as AWS Lambda Power Tuning's "balanced" strategy does.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use xshell::{cmd, Shell};

use crate::aws::{with_emulator_env, Aws};
use crate::emulator::free_port;
use crate::flags::Bench;

const BUCKET: &str = "recording-server-power";
/// The memory size at which Lambda gives a function one whole vCPU.
pub const ONE_VCPU_MB: u32 = 1769;
/// The CFS period the quota is a share of.
const PERIOD_US: u64 = 100_000;
/// Records on the listed page (the list route's default page).
const PAGE: usize = 50;
const UPLOAD_BYTES: usize = 1024 * 1024;

pub use crate::flags::{ARM_GB_SECOND_USD, PER_MILLION_REQUESTS_USD, X86_GB_SECOND_USD};

/// The prices a report is computed with.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Prices {
    pub x86_gb_second_usd: f64,
    pub arm_gb_second_usd: f64,
    pub per_million_requests_usd: f64,
}

/// The cost of a million requests that each bill `mean_ms` (rounded up to the next 1 ms, as
/// Lambda bills) at `memory_mb`, with a GB-second priced `gb_second_usd`.
pub fn cost_per_million(
    memory_mb: u32,
    mean_ms: f64,
    gb_second_usd: f64,
    per_million_requests_usd: f64,
) -> f64 {
    let billed_seconds = mean_ms.max(0.0).ceil() / 1000.0;
    let gb = f64::from(memory_mb) / 1024.0;
    per_million_requests_usd + 1_000_000.0 * gb * billed_seconds * gb_second_usd
}

/// The CFS quota, in µs per 100 ms period, that gives `memory_mb`'s share of one core.
pub fn quota_us(memory_mb: u32) -> u64 {
    (PERIOD_US * u64::from(memory_mb) / u64::from(ONE_VCPU_MB)).max(1000)
}

/// The share of one core Lambda gives `memory_mb`.
pub fn requested_share(memory_mb: u32) -> f64 {
    f64::from(memory_mb) / f64::from(ONE_VCPU_MB)
}

/// The index of the cheapest size (by the summed cost of one request of each route) whose every
/// route's p99 is within `budget_ms`.
pub fn recommend(sizes: &[SizeReport], budget_ms: f64) -> Option<usize> {
    sizes
        .iter()
        .enumerate()
        .filter(|(_, s)| s.routes.values().all(|r| r.p99_ms <= budget_ms))
        .min_by(|(_, a), (_, b)| a.mix_cost_x86().total_cmp(&b.mix_cost_x86()))
        .map(|(i, _)| i)
}

#[derive(Debug, Serialize)]
struct Report {
    build: &'static str,
    requests_per_route: usize,
    p99_budget_ms: f64,
    prices: Prices,
    sizes: Vec<SizeReport>,
    recommended_mb: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct SizeReport {
    pub memory_mb: u32,
    /// Of one core: what Lambda gives this size, and what a busy loop got in its cgroup.
    pub cpu_share_requested: f64,
    pub cpu_share_measured: f64,
    /// Process start → first `/health` 200.
    pub init_ms: f64,
    /// The first authenticated list after the cold start, alone.
    pub first_list_ms: f64,
    /// The service's CPU during init (start → first `/health` 200).
    pub init_cpu_ms: f64,
    pub routes: BTreeMap<&'static str, RouteReport>,
}

impl SizeReport {
    fn mix_cost_x86(&self) -> f64 {
        self.routes.values().map(|r| r.cost_per_million_x86_usd).sum()
    }
}

#[derive(Debug, Serialize)]
pub struct RouteReport {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    /// The service's CPU time per request (the cgroup's accounting over the route's requests).
    pub cpu_ms_per_request: f64,
    pub cost_per_million_x86_usd: f64,
    pub cost_per_million_arm_usd: f64,
}

/// A cgroup with a CPU quota, removed on drop (after its processes have ended).
pub struct CpuGroup {
    dirs: Vec<PathBuf>,
    procs: Vec<CString>,
    usage: Usage,
}

enum Usage {
    /// cgroup v1: `cpuacct.usage`, in ns.
    CpuAcct(PathBuf),
    /// cgroup v2: `cpu.stat`'s `usage_usec`.
    CpuStat(PathBuf),
}

const NEEDS: &str = "bench --power needs root and a cgroup CPU controller (cgroup v1 `cpu` and \
                     `cpuacct`, or cgroup v2 with `cpu` available): run it as root on Linux";

impl CpuGroup {
    /// A new group holding `memory_mb`'s share of one core.
    pub fn create(name: &str, memory_mb: u32) -> anyhow::Result<CpuGroup> {
        let root = Path::new("/sys/fs/cgroup");
        let write = |path: PathBuf, value: String| {
            std::fs::write(&path, &value)
                .with_context(|| format!("cannot write {value} to {}: {NEEDS}", path.display()))
        };
        let mkdir = |path: &Path| {
            std::fs::create_dir_all(path)
                .with_context(|| format!("cannot create cgroup {}: {NEEDS}", path.display()))
        };
        let quota = quota_us(memory_mb);
        let procs = |dir: &Path| CString::new(dir.join("cgroup.procs").into_os_string().into_encoded_bytes());
        if root.join("cpu").join("cpu.cfs_quota_us").exists() {
            let cpu = root.join("cpu").join(name);
            let acct = root.join("cpuacct").join(name);
            mkdir(&cpu)?;
            // Co-mounted hierarchies (`cpu,cpuacct`) are one directory.
            if !acct.exists() {
                mkdir(&acct)?;
            }
            write(cpu.join("cpu.cfs_period_us"), PERIOD_US.to_string())?;
            write(cpu.join("cpu.cfs_quota_us"), quota.to_string())?;
            // Ahead of the machine's other work (emulators, clients, other tests) up to its
            // quota, so the quota is what limits it, as in a Lambda sandbox.
            write(cpu.join("cpu.shares"), "102400".to_owned())?;
            let mut dirs = vec![cpu.clone()];
            if acct != cpu {
                dirs.push(acct.clone());
            }
            let procs = dirs.iter().map(|d| procs(d)).collect::<Result<_, _>>()?;
            Ok(CpuGroup { dirs, procs, usage: Usage::CpuAcct(acct.join("cpuacct.usage")) })
        } else if std::fs::read_to_string(root.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "cpu"))
        {
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+cpu");
            let dir = root.join(name);
            mkdir(&dir)?;
            write(dir.join("cpu.max"), format!("{quota} {PERIOD_US}"))?;
            write(dir.join("cpu.weight"), "10000".to_owned())?;
            let procs = vec![procs(&dir)?];
            Ok(CpuGroup { usage: Usage::CpuStat(dir.join("cpu.stat")), dirs: vec![dir], procs })
        } else {
            bail!("no cgroup CPU controller under /sys/fs/cgroup: {NEEDS}")
        }
    }

    /// The CPU time the group's processes have used.
    pub fn usage(&self) -> anyhow::Result<Duration> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
        };
        match &self.usage {
            Usage::CpuAcct(path) => {
                let ns: u64 = read(path)?.trim().parse().context("cpuacct.usage is not a number")?;
                Ok(Duration::from_nanos(ns))
            }
            Usage::CpuStat(path) => {
                let text = read(path)?;
                let usec = text
                    .lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse().ok())
                    .context("cpu.stat has no usage_usec")?;
                Ok(Duration::from_micros(usec))
            }
        }
    }

    /// Make `command`'s process join the group before it runs anything (so its init counts).
    pub fn enter_on_spawn(&self, command: &mut Command) {
        use std::os::unix::process::CommandExt;
        let procs = self.procs.clone();
        // SAFETY: the closure runs in the child between fork and exec and only calls open(2),
        // write(2) and close(2), which are async-signal-safe; the paths were allocated before.
        unsafe {
            command.pre_exec(move || {
                for path in &procs {
                    let fd = libc::open(path.as_ptr(), libc::O_WRONLY);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                    if written != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }

    /// The share of one core a single busy process gets in the group, over `window`: the quota
    /// at work, read from the group's own accounting.
    pub fn measure_share(&self, window: Duration) -> anyhow::Result<f64> {
        let mut busy = Command::new("sh");
        busy.args(["-c", "while :; do :; done"]).stdin(Stdio::null());
        self.enter_on_spawn(&mut busy);
        let mut child =
            crate::signals::stop_with_parent(&mut busy).spawn().context("cannot start a busy loop")?;
        // Past the start (a fresh group may run a whole period's quota at once), whole periods.
        std::thread::sleep(Duration::from_millis(100));
        let (before, started) = (self.usage()?, Instant::now());
        std::thread::sleep(window);
        let used = self.usage()?.saturating_sub(before);
        let wall = started.elapsed();
        let _ = child.kill();
        let _ = child.wait();
        Ok(used.as_secs_f64() / wall.as_secs_f64())
    }
}

impl Drop for CpuGroup {
    fn drop(&mut self) {
        for dir in &self.dirs {
            // The kernel removes a group only once its processes are gone: retry briefly.
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The percentile `p` (0-100) of sorted `values`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub async fn run(flags: Bench, sh: &Shell) -> anyhow::Result<()> {
    // Before the build: a machine that cannot set quotas says so at once.
    drop(CpuGroup::create(&format!("recording-server-bench-{}-probe", std::process::id()), ONE_VCPU_MB)?);
    let (build, binary) = super::load::build_service(sh, flags.debug, flags.service_binary.as_deref())?;
    let super::load::Backends { moto, dynalite, dynamodb: _ } = super::load::Backends::start(sh).await?;
    crate::bucket::ensure_private_bucket(&Aws::emulator(&moto.endpoint).await, BUCKET).await?;
    let service = |port: u16| -> Command {
        with_emulator_env(cmd!(sh, "{binary}"), &moto.endpoint)
            .env("AWS_ENDPOINT_URL_DYNAMODB", &dynalite.endpoint)
            .env("PORT", port.to_string())
            .envs(
                app::config::Settings { allow_unverified_login: true, ..app::config::Settings::new(BUCKET) }
                    .to_env(),
            )
            .env("RUST_LOG", "warn")
            .into()
    };
    let http = reqwest::Client::new();

    // Sign in and seed a page of records once, outside any quota (keys live in the emulators).
    let (auth, record) = {
        let port = free_port()?;
        let mut command = service(port);
        let child = crate::signals::stop_with_parent(&mut command).stdout(Stdio::null()).spawn();
        let mut child = Killed(child.context("cannot start the service")?);
        let base = format!("http://127.0.0.1:{port}");
        super::load::wait_for_health(&http, &base).await?;
        let login: serde_json::Value = http
            .get(format!("{base}/login?social_id=power&social_type=kakao"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let auth = format!(
            "{} {}",
            login["user_id"].as_str().unwrap_or_default(),
            login["auth_key"].as_str().unwrap_or_default()
        );
        let mut record = String::new();
        for n in 0..PAGE {
            let uploaded: serde_json::Value = http
                .put(format!("{base}/upload/record/seed-{n}.m4a"))
                .header("Authorization", &auth)
                .header("Content-Type", "audio/mp4")
                .body(vec![1u8; 1024])
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            record = uploaded["record"]["id"].as_str().unwrap_or_default().to_owned();
        }
        child.stop();
        (auth, record)
    };

    let prices = Prices {
        x86_gb_second_usd: flags.price_gb_second,
        arm_gb_second_usd: flags.price_gb_second_arm,
        per_million_requests_usd: flags.price_per_million_requests,
    };
    let mut sizes = Vec::new();
    for &memory_mb in &flags.memory {
        let group = CpuGroup::create(
            &format!("recording-server-bench-{}-{memory_mb}", std::process::id()),
            memory_mb,
        )?;
        let share = group.measure_share(Duration::from_millis(500))?;
        eprintln!(
            "{memory_mb} MB: {:.1} % of a core requested, {:.1} % measured",
            requested_share(memory_mb) * 100.0,
            share * 100.0
        );
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let mut command = service(port);
        group.enter_on_spawn(&mut command);
        let cpu_before = group.usage()?;
        let started = Instant::now();
        let child = crate::signals::stop_with_parent(&mut command).stdout(Stdio::null()).spawn();
        let mut child = Killed(child.context("cannot start the service")?);
        // Polled every millisecond from outside the quota, as Lambda waits for init.
        while !http.get(format!("{base}/health")).send().await.is_ok_and(|r| r.status() == 200) {
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the service did not answer /health within 60 s at {memory_mb} MB");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let init_ms = started.elapsed().as_secs_f64() * 1000.0;
        let init_cpu_ms = group.usage()?.saturating_sub(cpu_before).as_secs_f64() * 1000.0;
        let first = Instant::now();
        http.get(format!("{base}/record/list"))
            .header("Authorization", &auth)
            .send()
            .await?
            .error_for_status()?;
        let first_list_ms = first.elapsed().as_secs_f64() * 1000.0;

        let mut routes = BTreeMap::new();
        let body = vec![0u8; UPLOAD_BYTES];
        for route in ["list", "get", "upload"] {
            let mut latencies = Vec::with_capacity(flags.requests);
            let mut uploaded = Vec::new();
            let cpu_before = group.usage()?;
            for n in 0..flags.requests {
                let request = match route {
                    "list" => http.get(format!("{base}/record/list")),
                    "get" => http.get(format!("{base}/record/{record}")),
                    _ => http
                        .put(format!("{base}/upload/record/power-{memory_mb}-{n}.m4a"))
                        .header("Content-Type", "audio/mp4")
                        .body(body.clone()),
                };
                let sent = Instant::now();
                let response = request.header("Authorization", &auth).send().await?;
                let status = response.status();
                let text = response.text().await?;
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                if !status.is_success() {
                    bail!("{route} at {memory_mb} MB answered {status}: {text}");
                }
                if route == "upload" {
                    let value: serde_json::Value = serde_json::from_str(&text)?;
                    uploaded.push(value["record"]["id"].as_str().unwrap_or_default().to_owned());
                }
            }
            let cpu = group.usage()?.saturating_sub(cpu_before);
            // The 1 MiB uploads go again, so every size lists the same page and quota.
            for id in uploaded {
                http.delete(format!("{base}/record/{id}"))
                    .header("Authorization", &auth)
                    .send()
                    .await?
                    .error_for_status()?;
            }
            latencies.sort_by(f64::total_cmp);
            let mean_ms = latencies.iter().sum::<f64>() / latencies.len() as f64;
            routes.insert(
                route,
                RouteReport {
                    p50_ms: percentile(&latencies, 50.0),
                    p99_ms: percentile(&latencies, 99.0),
                    mean_ms,
                    cpu_ms_per_request: cpu.as_secs_f64() * 1000.0 / flags.requests as f64,
                    cost_per_million_x86_usd: cost_per_million(
                        memory_mb,
                        mean_ms,
                        prices.x86_gb_second_usd,
                        prices.per_million_requests_usd,
                    ),
                    cost_per_million_arm_usd: cost_per_million(
                        memory_mb,
                        mean_ms,
                        prices.arm_gb_second_usd,
                        prices.per_million_requests_usd,
                    ),
                },
            );
        }
        child.stop();
        drop(group);
        sizes.push(SizeReport {
            memory_mb,
            cpu_share_requested: requested_share(memory_mb),
            cpu_share_measured: share,
            init_ms,
            first_list_ms,
            init_cpu_ms,
            routes,
        });
    }
    let budget_ms = flags.p99_budget.as_secs_f64() * 1000.0;
    let recommended_mb = recommend(&sizes, budget_ms).map(|i| sizes[i].memory_mb);
    let report = Report {
        build,
        requests_per_route: flags.requests,
        p99_budget_ms: budget_ms,
        prices,
        sizes,
        recommended_mb,
    };
    if flags.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    Ok(())
}

/// A child process killed (and reaped) on drop.
struct Killed(std::process::Child);

impl Killed {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        self.stop();
    }
}

fn print(report: &Report) {
    println!(
        "bench --power ({} build, {} requests per route at c=1, p99 budget {} ms)",
        report.build, report.requests_per_route, report.p99_budget_ms
    );
    println!(
        "{:>7} {:>13} {:>8} {:>10} {:>19} {:>19} {:>19} {:>17}",
        "memory",
        "CPU share",
        "init",
        "1st list",
        "list p50/p99",
        "get p50/p99",
        "upload p50/p99",
        "$/1M (x86/arm)"
    );
    for s in &report.sizes {
        let route = |name: &str| {
            s.routes.get(name).map_or("-".to_owned(), |r| format!("{:.1}/{:.1} ms", r.p50_ms, r.p99_ms))
        };
        let arm: f64 = s.routes.values().map(|r| r.cost_per_million_arm_usd).sum();
        println!(
            "{:>4} MB {:>5.1}/{:>5.1} % {:>5.1} ms {:>7.1} ms {:>19} {:>19} {:>19} {:>8.2}/{:.2}",
            s.memory_mb,
            s.cpu_share_requested * 100.0,
            s.cpu_share_measured * 100.0,
            s.init_ms,
            s.first_list_ms,
            route("list"),
            route("get"),
            route("upload"),
            s.mix_cost_x86() / 3.0,
            arm / 3.0,
        );
    }
    println!("\nthe service's CPU per request (ms), from the cgroup's accounting:");
    for s in &report.sizes {
        let cpu: Vec<String> =
            s.routes.iter().map(|(name, r)| format!("{name} {:.3}", r.cpu_ms_per_request)).collect();
        println!("{:>4} MB  init {:.1}, {}", s.memory_mb, s.init_cpu_ms, cpu.join(", "));
    }
    println!(
        "\n$/1M: per million requests of an even mix of the three routes, mean duration billed per 1 ms"
    );
    match report.recommended_mb {
        Some(mb) => println!(
            "recommended: {mb} MB, the cheapest size whose every p99 is within {} ms",
            report.p99_budget_ms
        ),
        None => println!(
            "recommended: none: no size kept every p99 within {} ms (raise --p99-budget)",
            report.p99_budget_ms
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_lambdas_arithmetic() {
        // 128 MB, 10 ms: 1M × 0.125 GB × 0.010 s × $0.0000166667 = $0.0208, plus $0.20.
        let cost = cost_per_million(128, 10.0, X86_GB_SECOND_USD, PER_MILLION_REQUESTS_USD);
        assert!((cost - 0.220_833).abs() < 1e-4, "{cost}");
        // Duration is billed per started millisecond: 2.1 ms bills as 3 ms.
        let billed = cost_per_million(1024, 2.1, 0.00001, 0.0);
        assert!((billed - 1_000_000.0 * 1.0 * 0.003 * 0.00001).abs() < 1e-9, "{billed}");
        // arm64 is cheaper per GB-second.
        assert!(
            cost_per_million(512, 5.0, ARM_GB_SECOND_USD, 0.2)
                < cost_per_million(512, 5.0, X86_GB_SECOND_USD, 0.2)
        );
    }

    #[test]
    fn quotas_follow_lambdas_share() {
        assert_eq!(quota_us(1769), 100_000);
        assert_eq!(quota_us(256), 14_471);
        assert_eq!(quota_us(3538), 200_000);
        assert!((requested_share(128) - 0.0724).abs() < 1e-3);
    }

    fn size(memory_mb: u32, p99_ms: f64, mean_ms: f64) -> SizeReport {
        let route = || RouteReport {
            p50_ms: mean_ms,
            p99_ms,
            mean_ms,
            cpu_ms_per_request: 0.5,
            cost_per_million_x86_usd: cost_per_million(memory_mb, mean_ms, X86_GB_SECOND_USD, 0.2),
            cost_per_million_arm_usd: 0.0,
        };
        SizeReport {
            memory_mb,
            cpu_share_requested: requested_share(memory_mb),
            cpu_share_measured: 0.0,
            init_ms: 0.0,
            first_list_ms: 0.0,
            init_cpu_ms: 0.0,
            routes: BTreeMap::from([("list", route()), ("get", route())]),
        }
    }

    #[test]
    fn the_cheapest_size_within_the_budget_is_recommended() {
        // 128 MB breaks the budget; 512 MB is cheaper than 256 MB because it runs 3× shorter.
        let sizes =
            [size(128, 80.0, 30.0), size(256, 40.0, 15.0), size(512, 12.0, 5.0), size(1024, 8.0, 4.0)];
        assert_eq!(recommend(&sizes, 50.0).map(|i| sizes[i].memory_mb), Some(512));
        assert_eq!(recommend(&sizes, 5.0), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
    }
}
