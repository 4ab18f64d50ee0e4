//! `cargo xtask bench --load`: concurrent clients sign in, then upload, list, get and delete
//! recordings (or, `--mix read`, only list and get them) against the local service (DynamoDB on
//! dynalite, whose Query reads an index; S3 on moto), at each concurrency level in turn, each
//! client sending as soon as answered or at a `--rate`; then a soak whose memory growth is
//! measured, and an audit: every upload that got 200 is listed and downloadable, every delete
//! that got 200 is gone, and the table holds exactly as many records as the bucket holds objects.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use xshell::{cmd, Shell};

use crate::aws::{with_emulator_env, Aws};
use crate::emulator::{free_port, install_dynalite, install_moto, Emulator, Moto, MotoOptions};
use crate::flags::{Bench, LoadMix};
use crate::toolchain::target_dir;

const BUCKET: &str = "recording-server-load";
/// Every upload's body: small, so the service and not the byte copying is measured.
const AUDIO: &[u8] = &[7; 1024];
/// The soak's concurrency.
const SOAK_CLIENTS: usize = 8;
/// With `--mix read`, the recordings each client uploads before it starts reading.
const READ_SEED: u64 = 10;

const ROUTES: [&str; 5] = ["login", "upload", "list", "get", "delete"];

/// Set while `--faults` injects faults: a 503 with Retry-After is then an expected answer.
static FAULTS_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[derive(Debug, Serialize)]
struct Report {
    build: &'static str,
    mix: LoadMix,
    /// Requests per second the clients were paced at; none when each sent as fast as answered.
    rate: Option<u32>,
    levels: Vec<Level>,
    soak: Option<Soak>,
    audit: Audit,
    /// With `--faults`: what was injected, the debris it left, and its repair.
    faults: Option<FaultsReport>,
}

#[derive(Debug, Serialize)]
struct FaultsReport {
    spec: String,
    seed: u64,
    /// Faults injected, by AWS operation and kind.
    injected: Vec<Injected>,
    injected_total: u64,
    /// Client requests that failed (all of them 503 with Retry-After, or the run fails).
    failed_requests: usize,
    /// Faults the SDK's retries hid: those injected, less at most one per failed request's
    /// attempts (each failed request had at most the service's max attempts faulted).
    absorbed_at_least: u64,
    /// What the faults left behind, each with whether the service logged it.
    debris: Vec<Debris>,
    /// The repair: seconds, writes, repaired items.
    reconcile_seconds: f64,
    reconcile_writes: usize,
    reconcile_repaired: usize,
    /// A second reconcile right after: must write nothing.
    second_reconcile_writes: usize,
    /// The audit after the repair.
    audit_after: Audit,
}

#[derive(Debug, Serialize)]
struct Injected {
    operation: String,
    kind: crate::faults::Kind,
    count: u64,
}

#[derive(Debug, Serialize)]
struct Debris {
    #[serde(flatten)]
    finding: crate::reconcile::Finding,
    /// The service's log line that names it, if any.
    logged: Option<String>,
}

#[derive(Debug, Serialize)]
struct Level {
    /// `load` for the concurrency levels, `soak` for the soak.
    phase: &'static str,
    concurrency: usize,
    seconds: f64,
    /// Requests in those seconds (the sign-ins, timed as `login`, come before).
    requests: usize,
    requests_per_second: f64,
    errors: usize,
    /// The first few errors, as `route: what`.
    error_samples: Vec<String>,
    /// Per route, the answers by status (`200`, `503`, ...; `timeout`, `dropped` for none).
    outcomes: BTreeMap<&'static str, BTreeMap<String, usize>>,
    /// As the clients saw them: from sending the request to the end of the response body.
    routes: BTreeMap<&'static str, RouteStats>,
    /// The same requests as the service timed them (its EMF `Latency`, as on Lambda: from the
    /// request entering the router to the response leaving it); the rest of the clients' time
    /// is the clients, the kernel and the wait for the service to accept.
    service: BTreeMap<&'static str, RouteStats>,
}

#[derive(Debug, Serialize)]
struct RouteStats {
    count: usize,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct Soak {
    seconds: f64,
    rss_start_kib: f64,
    rss_end_kib: f64,
    growth_percent: f64,
}

#[derive(Debug, Default, Serialize)]
struct Audit {
    /// Uploads that got 200 and were not deleted.
    live: usize,
    /// Deletes that got 200.
    deleted: usize,
    /// Live records missing from their owner's list.
    lost: usize,
    /// Listed records that were deleted or never uploaded.
    unexpected: usize,
    /// Live records whose download failed or returned other bytes.
    undownloadable: usize,
    /// Deleted records that can still be read.
    resurrected: usize,
    rows: usize,
    objects: usize,
    /// Published rows whose object is missing.
    rows_without_object: usize,
    /// Staged bytes no open upload window charges.
    uncharged_staged_bytes: u64,
    /// Users whose usage counters differ from what their rows add up to.
    miscounted_users: usize,
}

impl Audit {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (count, what) in [
            (self.lost, "uploads not listed"),
            (self.unexpected, "listed records that should not exist"),
            (self.undownloadable, "uploads not downloadable"),
            (self.resurrected, "deleted records still readable"),
            (self.rows_without_object, "published records without their object"),
            (self.uncharged_staged_bytes as usize, "staged bytes no quota charges"),
            (self.miscounted_users, "users whose usage counters differ from their rows"),
        ] {
            if count > 0 {
                problems.push(format!("{count} {what}"));
            }
        }
        if self.rows != self.objects {
            problems.push(format!("{} record rows but {} objects", self.rows, self.objects));
        }
        problems
    }
}

/// What the clients did that the audit checks: per user, its auth header, live and deleted ids.
#[derive(Default)]
struct Ledger {
    users: BTreeMap<String, Account>,
}

#[derive(Clone, Default)]
struct Account {
    auth: String,
    live: BTreeSet<String>,
    deleted: Vec<String>,
    /// Live ids whose delete answered 503: it may have been applied (an unanswered attempt), so
    /// the record may be there or gone.
    doubtful: BTreeSet<String>,
}

/// The service under load; its process is killed when dropped.
struct Service {
    child: Child,
    /// Where it listens, e.g. `http://127.0.0.1:PORT`.
    base: String,
    /// The clients' connection pool.
    http: reqwest::Client,
    /// Its own latency of each request.
    times: ServiceTimes,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn run(flags: Bench, sh: &Shell) -> anyhow::Result<()> {
    if flags.concurrency.is_empty() || flags.concurrency.contains(&0) {
        bail!("--concurrency takes positive numbers of clients, e.g. 1,8,32");
    }
    if flags.duration.is_zero() {
        bail!("--duration must be longer than 0s, e.g. 10s");
    }
    let (build, binary) = build_service(sh, flags.debug, flags.service_binary.as_deref())?;
    let Backends { moto, dynalite, dynamodb } = Backends::start(sh).await?;
    let s3 = Aws::emulator(&moto.endpoint).await;
    crate::bucket::ensure_private_bucket(&s3, BUCKET).await?;

    // With --faults, the service reaches both emulators through fault proxies.
    let seed = flags.seed.unwrap_or_else(|| {
        let mut bytes = [0u8; 8];
        getrandom_04::fill(&mut bytes).map_or(0x5EED, |()| u64::from_le_bytes(bytes))
    });
    let proxies = match flags.faults {
        Some(spec) => {
            eprintln!("faults: {spec}, seed {seed} (--seed {seed} repeats them)");
            let proxies = [
                crate::faults::Proxy::start(&dynalite.endpoint).await,
                crate::faults::Proxy::start(&moto.endpoint).await,
            ];
            // Each proxy its own sequence from the one seed.
            proxies[0].randomize(Some((spec, seed)));
            proxies[1].randomize(Some((spec, seed ^ 0x9E37_79B9_7F4A_7C15)));
            FAULTS_ON.store(true, std::sync::atomic::Ordering::Relaxed);
            Some(proxies)
        }
        None => None,
    };
    let (dynamodb_endpoint, s3_endpoint) = match &proxies {
        Some([dynamo, s3]) => (dynamo.address.clone(), s3.address.clone()),
        None => (dynalite.endpoint.clone(), moto.endpoint.clone()),
    };
    let port = free_port()?;
    let mut command: Command = with_emulator_env(cmd!(sh, "{binary}"), &s3_endpoint)
        .env("AWS_ENDPOINT_URL_DYNAMODB", &dynamodb_endpoint)
        .env("PORT", port.to_string())
        .envs(
            app::config::Settings {
                allow_unverified_login: true,
                metrics: Some(true),
                ..app::config::Settings::new(BUCKET)
            }
            .to_env(),
        )
        .env("RUST_LOG", "warn")
        .into();
    // Enough connections for every client, reused across requests as a real client would; a
    // request that outlasts the service's budget is a hang, and fails the run.
    let budget = app::config::AwsBudget::default().request_budget() + Duration::from_secs(5);
    let http = reqwest::Client::builder().pool_max_idle_per_host(128).timeout(budget).build()?;
    let child = crate::signals::stop_with_parent(&mut command).stdout(Stdio::piped()).spawn();
    let mut child = child.context("cannot start the service")?;
    let times = child.stdout.take().map(ServiceTimes::collect);
    let base = format!("http://127.0.0.1:{port}");
    let service = Service { child, base, http, times: times.context("no service stdout")? };
    wait_for_health(&service.http, &service.base).await?;
    service.times.take(0).await;

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut levels = Vec::new();
    for &clients in &flags.concurrency {
        eprintln!("{clients} concurrent clients for {:?}...", flags.duration);
        let level = drive(&service, &ledger, &format!("c{clients}"), clients, flags.duration, &flags).await;
        levels.push(level);
    }
    let soak = if flags.soak.is_zero() {
        None
    } else {
        eprintln!("soak: {SOAK_CLIENTS} clients for {:?}...", flags.soak);
        let rss_start_kib = super::idle_rss_kib(service.child.id())?;
        let level = drive(&service, &ledger, "soak", SOAK_CLIENTS, flags.soak, &flags).await;
        let rss_end_kib = super::idle_rss_kib(service.child.id())?;
        let growth_percent = (rss_end_kib - rss_start_kib) / rss_start_kib * 100.0;
        let seconds = level.seconds;
        levels.push(level);
        Some(Soak { seconds, rss_start_kib, rss_end_kib, growth_percent })
    };
    // The audit and the repair see the data as it is, with no fault in the way.
    for proxy in proxies.iter().flatten() {
        proxy.randomize(None);
    }
    eprintln!("auditing...");
    let in_doubt = uploads_in_doubt(&service.times.errors());
    let audit = audit(&service.http, &service.base, &ledger, &in_doubt, &dynamodb, &s3.s3()).await?;
    let faults = match (&proxies, flags.faults) {
        (Some(proxies), Some(spec)) => {
            let repair = Repair { dynamodb: &dynamodb, s3: &s3.s3(), errors: service.times.errors() };
            let failed = levels
                .iter()
                .flat_map(|l| l.outcomes.values())
                .flat_map(|o| o.iter())
                .filter(|(status, _)| status.as_str() != "200")
                .map(|(_, n)| n)
                .sum();
            let mut report = repair.run(spec, seed, proxies, failed).await?;
            report.audit_after =
                self::audit(&service.http, &service.base, &ledger, &in_doubt, &dynamodb, &s3.s3()).await?;
            Some(report)
        }
        _ => None,
    };
    drop(service);

    let report = Report { build, mix: flags.mix, rate: flags.rate, levels, soak, audit, faults };
    if flags.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    let errors: usize = report.levels.iter().map(|l| l.errors).sum();
    // With faults, the debris is judged by whether it was logged, and the audit after the repair.
    let problems = match &report.faults {
        Some(f) => {
            let mut problems = f.audit_after.problems();
            let unlogged = f.debris.iter().filter(|d| d.logged.is_none()).count();
            if unlogged > 0 {
                problems.push(format!("{unlogged} pieces of debris the service never logged"));
            }
            if f.second_reconcile_writes > 0 {
                problems.push(format!("a second reconcile made {} writes", f.second_reconcile_writes));
            }
            problems
        }
        None => report.audit.problems(),
    };
    if errors > 0 || !problems.is_empty() {
        let audit = if problems.is_empty() { "clean".to_owned() } else { problems.join(", ") };
        bail!("the load run found {errors} failed requests; audit: {audit}");
    }
    Ok(())
}

/// Build the service (the dev build with `debug`, else the release one): its build's name and path.
pub(super) fn build_service(
    sh: &Shell,
    debug: bool,
    given: Option<&std::path::Path>,
) -> anyhow::Result<(&'static str, std::path::PathBuf)> {
    if let Some(binary) = given {
        anyhow::ensure!(binary.is_file(), "--service-binary {}: no such file", binary.display());
        return Ok(("given", binary.to_owned()));
    }
    let target = target_dir(&sh.current_dir());
    let cargo = crate::toolchain::cargo();
    let (profile, build) = if debug { ("dev", "debug") } else { ("release", "release") };
    eprintln!("building the service ({profile} profile; a cold release build takes several minutes)...");
    // The whole workspace's features, as every other build resolves them (see `local`).
    cmd!(sh, "{cargo} build --profile {profile} --workspace --bin app")
        .run()
        .context("the service did not build")?;
    Ok((build, target.join(build).join("app")))
}

/// The service's backends as the benchmarks run them: S3 on moto, DynamoDB on dynalite (whose
/// Query reads the index) with both tables.
pub(super) struct Backends {
    pub moto: Moto,
    pub dynalite: Emulator,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl Backends {
    pub async fn start(sh: &Shell) -> anyhow::Result<Backends> {
        let target = target_dir(&sh.current_dir());
        let run_dir = target.join("tools").join("run");
        let moto = Moto::start(sh, &install_moto(sh, &target)?, &run_dir, &MotoOptions::default())?;
        let dynalite = Emulator::start_dynalite(sh, &install_dynalite(sh, &target)?, &run_dir)?;
        let dynamodb = Aws::emulator(&dynalite.endpoint).await.dynamodb();
        for spec in [&app::schema::USER_TABLE, &app::schema::RECORD_TABLE] {
            create_table(&dynamodb, spec).await?;
        }
        Ok(Backends { moto, dynalite, dynamodb })
    }
}

async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    spec: &app::schema::TableSpec,
) -> anyhow::Result<()> {
    let indexes = spec.global_secondary_indexes();
    client
        .create_table()
        .table_name(spec.name(""))
        .set_key_schema(Some(spec.key_schema()))
        .set_attribute_definitions(Some(spec.attribute_definitions()))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .send()
        .await
        .with_context(|| format!("dynalite could not create {}", spec.name("")))?;
    Ok(())
}

pub(super) async fn wait_for_health(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while !http.get(format!("{base}/health")).send().await.is_ok_and(|r| r.status() == 200) {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the service did not answer /health within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// One client's results.
#[derive(Default)]
struct Client {
    latencies: BTreeMap<&'static str, Vec<f64>>,
    errors: Vec<String>,
    outcomes: BTreeMap<&'static str, BTreeMap<String, usize>>,
    /// With `--rate`, when its requests are due.
    pace: Option<Pace>,
}

/// A paced client's schedule: one request every `interval`. A request sent late (the one before
/// it was slow) is timed from when it was due, not from when it went out, so a service that falls
/// behind is charged for the queue it built (no coordinated omission, as in wrk2).
struct Pace {
    next: Instant,
    interval: Duration,
}

impl Client {
    fn merge(&mut self, other: Client) {
        for (route, latencies) in other.latencies {
            self.latencies.entry(route).or_default().extend(latencies);
        }
        for (route, outcomes) in other.outcomes {
            for (outcome, n) in outcomes {
                *self.outcomes.entry(route).or_default().entry(outcome).or_default() += n;
            }
        }
        self.errors.extend(other.errors);
    }

    /// Time one request, its body included; `Some(body)` for a 200.
    async fn call(&mut self, route: &'static str, request: reqwest::RequestBuilder) -> Option<Value> {
        let started = match &mut self.pace {
            // Behind schedule: timed from when it was due, so the backlog counts.
            Some(pace) if pace.next <= Instant::now() => {
                let due = pace.next;
                pace.next += pace.interval;
                due
            }
            // On time: timed from when it goes out (the timer wakes up to ~2 ms late here, which
            // is not the service's).
            Some(pace) => {
                tokio::time::sleep_until(pace.next.into()).await;
                pace.next += pace.interval;
                Instant::now()
            }
            None => Instant::now(),
        };
        let result = async {
            let response = request.send().await?;
            let status = response.status();
            let retry_after = response.headers().contains_key("retry-after");
            anyhow::Ok((status, retry_after, response.bytes().await?))
        }
        .await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        self.latencies.entry(route).or_default().push(ms);
        let outcome = match &result {
            Ok((status, ..)) => status.as_u16().to_string(),
            Err(err) if err.downcast_ref::<reqwest::Error>().is_some_and(reqwest::Error::is_timeout) => {
                "timeout".to_owned()
            }
            Err(_) => "dropped".to_owned(),
        };
        *self.outcomes.entry(route).or_default().entry(outcome).or_default() += 1;
        let faults = FAULTS_ON.load(std::sync::atomic::Ordering::Relaxed);
        match result {
            Ok((status, _, body)) if status == 200 => {
                Some(serde_json::from_slice(&body).unwrap_or(Value::Null))
            }
            // Under injected faults, the answer a client is promised: retry later.
            Ok((status, true, _)) if faults && status == 503 => None,
            Ok((status, _, body)) => {
                self.errors.push(format!("{route}: {status} {}", String::from_utf8_lossy(&body)));
                None
            }
            Err(err) => {
                self.errors.push(format!("{route}: {err}"));
                None
            }
        }
    }
}

/// `clients` clients, each its own user, for `duration`: what `flags.mix` says, at `flags.rate`
/// if one is set.
async fn drive(
    service: &Service,
    ledger: &Arc<Mutex<Ledger>>,
    name: &str,
    clients: usize,
    duration: Duration,
    flags: &Bench,
) -> Level {
    let mut merged = Client::default();
    // First every client signs in (and, for the read mix, uploads what it will read); the clock
    // starts once all have, so the level's req/s counts its timed requests over its own time.
    let signing_in: Vec<_> = (0..clients)
        .map(|i| {
            let (http, base, ledger) = (service.http.clone(), service.base.clone(), ledger.clone());
            let social_id = format!("load-{name}-{i}");
            let mix = flags.mix;
            tokio::spawn(async move { sign_in(&http, &base, &ledger, &social_id, mix).await })
        })
        .collect();
    let mut sessions = Vec::new();
    for task in signing_in {
        match task.await {
            Ok((client, session)) => {
                merged.merge(client);
                sessions.extend(session);
            }
            Err(_) => merged.errors.push("a client task panicked".into()),
        }
    }
    let started = Instant::now();
    let deadline = started + duration;
    // Each paced client sends its share of the rate, the clients' schedules staggered evenly.
    let interval = flags.rate.map(|rate| Duration::from_secs_f64(clients as f64 / f64::from(rate)));
    let tasks: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, session)| {
            let (http, base, ledger) = (service.http.clone(), service.base.clone(), ledger.clone());
            let pace = interval
                .map(|interval| Pace { next: started + interval * i as u32 / clients as u32, interval });
            let mix = flags.mix;
            tokio::spawn(async move { work(&http, &base, &ledger, session, deadline, mix, pace).await })
        })
        .collect();
    for task in tasks {
        match task.await {
            Ok(client) => merged.merge(client),
            Err(_) => merged.errors.push("a client task panicked".into()),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let timed = merged.latencies.values().map(Vec::len).sum();
    // Signing in happened before the clock started.
    let requests =
        merged.latencies.iter().filter(|(route, _)| **route != "login").map(|(_, ms)| ms.len()).sum();
    let routes = stats(merged.latencies);
    Level {
        phase: if name == "soak" { "soak" } else { "load" },
        concurrency: clients,
        seconds,
        requests,
        requests_per_second: requests as f64 / seconds,
        errors: merged.errors.len(),
        error_samples: merged.errors.into_iter().take(5).collect(),
        outcomes: merged.outcomes,
        routes,
        service: stats(service.times.take(timed).await),
    }
}

/// Count, p50 and p99 of each route's latencies.
fn stats(latencies: BTreeMap<&'static str, Vec<f64>>) -> BTreeMap<&'static str, RouteStats> {
    latencies
        .into_iter()
        .map(|(route, mut ms)| {
            ms.sort_by(f64::total_cmp);
            let at = |p: usize| {
                ms.get((ms.len() * p / 100).min(ms.len().saturating_sub(1))).copied().unwrap_or(0.0)
            };
            (route, RouteStats { count: ms.len(), p50_ms: at(50), p99_ms: at(99) })
        })
        .collect()
}

/// The service's own latency of each request, read from its EMF lines on stdout (one per
/// request, written before the response goes out) by a thread, until a level takes them.
#[derive(Clone, Default)]
struct ServiceTimes(Arc<Mutex<BTreeMap<&'static str, Vec<f64>>>>, Arc<Mutex<Vec<String>>>);

impl ServiceTimes {
    fn collect(stdout: std::process::ChildStdout) -> ServiceTimes {
        use std::io::BufRead;
        let times = ServiceTimes::default();
        let sink = times.clone();
        std::thread::spawn(move || {
            for text in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                // Log lines are text in local mode (`<time> ERROR <spans>: <message>`); the EMF
                // lines are JSON.
                let Ok(line) = serde_json::from_str::<Value>(&text) else {
                    if text.contains(" ERROR ") {
                        if let Ok(mut errors) = sink.1.lock() {
                            errors.push(text);
                        }
                    }
                    continue;
                };
                let method = line["method"].as_str().unwrap_or_default();
                let route = bench_route(method, line["route"].as_str().unwrap_or_default());
                if let (Some(route), Some(ms), Ok(mut times)) =
                    (route, line["Latency"].as_f64(), sink.0.lock())
                {
                    times.entry(route).or_default().push(ms);
                }
            }
        });
        times
    }

    /// The service's error lines so far.
    fn errors(&self) -> Vec<String> {
        self.1.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// What was collected since the last call, once it holds `requests` lines (the thread may
    /// be a little behind the clients) or a second has passed.
    async fn take(&self, requests: usize) -> BTreeMap<&'static str, Vec<f64>> {
        let started = Instant::now();
        let count = || self.0.lock().map_or(0, |times| times.values().map(Vec::len).sum());
        while count() < requests && started.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.0.lock().map(|mut times| std::mem::take(&mut *times)).unwrap_or_default()
    }
}

/// The report's name of a route the service names by method and path pattern.
fn bench_route(method: &str, route: &str) -> Option<&'static str> {
    match (method, route) {
        ("GET", "/login") => Some("login"),
        ("PUT", "/upload/record/{file_name}") => Some("upload"),
        ("GET", "/record/list") => Some("list"),
        ("GET", "/record/{record_id}") => Some("get"),
        ("DELETE", "/record/{record_id}") => Some("delete"),
        _ => None,
    }
}

/// A signed-in client, and with the read mix the records it uploaded to read.
struct Session {
    user: String,
    auth: String,
    seeded: Vec<String>,
}

impl Session {
    /// Change the user's ledger entry (created on first use).
    fn remember(&self, ledger: &Mutex<Ledger>, change: impl FnOnce(&mut Account)) {
        if let Ok(mut ledger) = ledger.lock() {
            let account = ledger
                .users
                .entry(self.user.clone())
                .or_insert_with(|| Account { auth: self.auth.clone(), ..Account::default() });
            change(account);
        }
    }
}

/// Sign in as `social_id` (timed, as `login`); with the read mix, upload the records to read
/// (not timed: only their errors count).
async fn sign_in(
    http: &reqwest::Client,
    base: &str,
    ledger: &Mutex<Ledger>,
    social_id: &str,
    mix: LoadMix,
) -> (Client, Option<Session>) {
    let mut me = Client::default();
    let login =
        me.call("login", http.get(format!("{base}/login?social_id={social_id}&social_type=kakao"))).await;
    let Some(login) = login else { return (me, None) };
    let user = login["user_id"].as_str().unwrap_or_default().to_owned();
    let auth = format!("{user} {}", login["auth_key"].as_str().unwrap_or_default());
    let mut session = Session { user, auth, seeded: Vec::new() };
    session.remember(ledger, |_| {});
    if mix == LoadMix::Read {
        let mut seeding = Client::default();
        for n in 1..=READ_SEED {
            if let Some(id) = upload(&mut seeding, http, base, &session.auth, n).await {
                session.remember(ledger, |account| {
                    account.live.insert(id.clone());
                });
                session.seeded.push(id);
            }
        }
        me.errors.append(&mut seeding.errors);
    }
    (me, Some(session))
}

/// The timed requests of one signed-in client, until `deadline`.
async fn work(
    http: &reqwest::Client,
    base: &str,
    ledger: &Mutex<Ledger>,
    session: Session,
    deadline: Instant,
    mix: LoadMix,
    pace: Option<Pace>,
) -> Client {
    let mut me = Client { pace, ..Client::default() };
    let auth = &session.auth;
    match mix {
        LoadMix::Mixed => {
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let Some(id) = upload(&mut me, http, base, auth, n).await else { continue };
                session.remember(ledger, |account| {
                    account.live.insert(id.clone());
                });
                me.call("list", http.get(format!("{base}/record/list")).header("Authorization", auth)).await;
                me.call("get", http.get(format!("{base}/record/{id}")).header("Authorization", auth)).await;
                if n.is_multiple_of(2) {
                    let delete = http.delete(format!("{base}/record/{id}")).header("Authorization", auth);
                    let done = me.call("delete", delete).await.is_some();
                    session.remember(ledger, |account| {
                        if done {
                            account.live.remove(&id);
                            account.deleted.push(id.clone());
                        } else {
                            account.doubtful.insert(id.clone());
                        }
                    });
                }
            }
        }
        LoadMix::Read => {
            for id in session.seeded.iter().cycle() {
                if Instant::now() >= deadline {
                    break;
                }
                me.call("list", http.get(format!("{base}/record/list")).header("Authorization", auth)).await;
                me.call("get", http.get(format!("{base}/record/{id}")).header("Authorization", auth)).await;
            }
        }
    }
    me
}

/// Upload the client's `n`th recording; its id, or `None` with the error recorded.
async fn upload(me: &mut Client, http: &reqwest::Client, base: &str, auth: &str, n: u64) -> Option<String> {
    let upload = http
        .put(format!("{base}/upload/record/take-{n}.m4a"))
        .header("Authorization", auth)
        .header("Content-Type", "audio/mp4")
        .body(AUDIO);
    let uploaded = me.call("upload", upload).await?;
    let id = uploaded["record"]["id"].as_str().map(str::to_owned);
    if id.is_none() {
        me.errors.push(format!("upload: no record id in {uploaded}"));
    }
    id
}

/// After a run with faults: the debris, matched to the service's log lines, then repaired.
struct Repair<'a> {
    dynamodb: &'a aws_sdk_dynamodb::Client,
    s3: &'a aws_sdk_s3::Client,
    /// The service's error lines.
    errors: Vec<String>,
}

impl Repair<'_> {
    async fn run(
        &self,
        spec: crate::faults::Spec,
        seed: u64,
        proxies: &[crate::faults::Proxy; 2],
        failed_requests: usize,
    ) -> anyhow::Result<FaultsReport> {
        use app::schema::{RECORD_TABLE, USER_TABLE};
        let mut injected = Vec::new();
        for proxy in proxies {
            for ((operation, kind), count) in proxy.injected() {
                injected.push(Injected { operation, kind, count });
            }
        }
        let injected_total: u64 = injected.iter().map(|i| i.count).sum();
        let attempts = u64::from(app::config::AwsBudget::default().max_attempts);
        let stored = crate::stored::Stored::read(
            self.dynamodb,
            self.s3,
            &USER_TABLE.name(""),
            &RECORD_TABLE.name(""),
            BUCKET,
            &|_| {},
        )
        .await?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let debris = crate::reconcile::findings(&stored, now, Duration::ZERO)
            .into_iter()
            .map(|finding| {
                let logged = self.log_line(&finding);
                Debris { finding, logged }
            })
            .collect();
        let target = crate::reconcile::Target {
            stage: "load".into(),
            dynamodb: self.dynamodb.clone(),
            s3: self.s3.clone(),
            user_table: USER_TABLE.name(""),
            record_table: RECORD_TABLE.name(""),
            bucket: BUCKET.into(),
            owner: None,
        };
        // The clients have stopped: nothing is in flight, no need to wait between the readings.
        let options = crate::reconcile::Options {
            dry_run: false,
            delete_dangling_rows: false,
            grace: Duration::ZERO,
            settle: Duration::ZERO,
        };
        let first = crate::reconcile::reconcile(&target, &options).await?;
        let second = crate::reconcile::reconcile(&target, &options).await?;
        Ok(FaultsReport {
            spec: spec.to_string(),
            seed,
            injected,
            injected_total,
            failed_requests,
            absorbed_at_least: injected_total.saturating_sub(failed_requests as u64 * attempts),
            debris,
            reconcile_seconds: first.seconds,
            reconcile_writes: first.writes,
            reconcile_repaired: first.repaired,
            second_reconcile_writes: second.writes,
            audit_after: Audit::default(),
        })
    }

    /// The service's error line that names `finding`: the orphaned key, or the user whose
    /// counters it said may be off (a refund that failed, a charge or refund sent again after an
    /// unanswered attempt).
    fn log_line(&self, finding: &crate::reconcile::Finding) -> Option<String> {
        use crate::reconcile::Finding;
        let names = |needles: &[&str]| {
            self.errors.iter().find(|line| needles.iter().all(|n| line.contains(n))).cloned()
        };
        match finding {
            Finding::OrphanObject { key, .. } => names(&[key.as_str()]),
            Finding::Miscounted { user, .. } => names(&[app::storage::COUNTERS_MAY_BE_OFF, user.as_str()]),
            Finding::ClosedWindows { .. } | Finding::DanglingRow { .. } => None,
        }
    }
}

/// The record ids of uploads the service logged as perhaps stored though they answered 503 (an
/// unanswered row write): listed, they are whole records the client was not told of, not strays.
fn uploads_in_doubt(log: &[String]) -> BTreeSet<String> {
    log.iter()
        .filter(|line| line.contains(app::storage::UPLOAD_ROW_IN_DOUBT))
        // The span's key, `recordings/<user>/<id>`: the id is its last part.
        .filter_map(|line| {
            line.split(app::schema::RECORDINGS_PREFIX)
                .nth(1)?
                .split(['}', ' ', '\x1b'])
                .next()?
                .rsplit('/')
                .next()
        })
        .map(str::to_owned)
        .collect()
}

async fn audit(
    http: &reqwest::Client,
    base: &str,
    ledger: &Mutex<Ledger>,
    in_doubt: &BTreeSet<String>,
    dynamodb: &aws_sdk_dynamodb::Client,
    s3: &aws_sdk_s3::Client,
) -> anyhow::Result<Audit> {
    let users =
        ledger.lock().map_err(|_| anyhow::anyhow!("a client panicked holding the ledger"))?.users.clone();
    let mut audit = Audit::default();
    for Account { auth, live, deleted, doubtful } in users.values() {
        audit.live += live.len();
        audit.deleted += deleted.len();
        let listed = list_all(http, base, auth).await?;
        // A doubtful delete's record may be gone; if it is still listed, it must be whole.
        let expected: BTreeSet<&String> =
            live.iter().filter(|id| listed.contains(*id) || !doubtful.contains(*id)).collect();
        audit.lost += expected.iter().filter(|id| !listed.contains(**id)).count();
        audit.unexpected += listed.difference(live).filter(|id| !in_doubt.contains(*id)).count();
        let downloads = futures::stream::iter(expected.iter().map(|id| downloadable(http, base, auth, id)))
            .buffer_unordered(16)
            .collect::<Vec<bool>>()
            .await;
        audit.undownloadable += downloads.iter().filter(|ok| !**ok).count();
        for id in deleted {
            let status =
                http.get(format!("{base}/record/{id}")).header("Authorization", auth).send().await?.status();
            if status != 404 {
                audit.resurrected += 1;
            }
        }
    }
    use app::schema::{RECORD_TABLE, USER_TABLE};
    let stored = crate::stored::Stored::read(
        dynamodb,
        s3,
        &USER_TABLE.name(""),
        &RECORD_TABLE.name(""),
        BUCKET,
        &|_| {},
    )
    .await?;
    audit.rows = stored.rows.len();
    audit.objects = stored.objects.len();
    audit.rows_without_object =
        stored.rows.iter().filter(|r| r.published && !stored.objects.contains_key(&r.object_key)).count();
    audit.uncharged_staged_bytes = stored.uncharged_staged_bytes();
    audit.miscounted_users = stored.miscounted_users();
    Ok(audit)
}

/// Every record id in the user's list, following `next`.
async fn list_all(http: &reqwest::Client, base: &str, auth: &str) -> anyhow::Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    let mut next: Option<String> = None;
    loop {
        let mut url = reqwest::Url::parse(&format!("{base}/record/list"))?;
        if let Some(cursor) = &next {
            url.query_pairs_mut().append_pair("next", cursor);
        }
        let request = http.get(url).header("Authorization", auth);
        let page: Value =
            request.send().await?.error_for_status().context("listing for the audit failed")?.json().await?;
        ids.extend(
            page["records"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["id"].as_str().map(str::to_owned)),
        );
        next = page["next"].as_str().map(str::to_owned);
        if next.is_none() {
            return Ok(ids);
        }
    }
}

async fn downloadable(http: &reqwest::Client, base: &str, auth: &str, id: &str) -> bool {
    let Ok(response) = http.get(format!("{base}/record/{id}")).header("Authorization", auth).send().await
    else {
        return false;
    };
    let Ok(record) = response.json::<Value>().await else { return false };
    let Some(url) = record["download_url"].as_str() else { return false };
    match http.get(url).send().await {
        Ok(download) if download.status() == 200 => download.bytes().await.is_ok_and(|b| b.as_ref() == AUDIO),
        _ => false,
    }
}

fn print(report: &Report) {
    let mix = match report.mix {
        LoadMix::Mixed => "mixed",
        LoadMix::Read => "read",
    };
    let rate = report.rate.map_or("as fast as answered".to_owned(), |r| format!("{r} req/s offered"));
    println!("service build: {}, mix: {mix}, {rate}", report.build);
    for level in &report.levels {
        println!(
            "\n{} c = {:<3} {:.0} req/s over {:.1} s, {} requests, {} errors",
            level.phase,
            level.concurrency,
            level.requests_per_second,
            level.seconds,
            level.requests,
            level.errors
        );
        for route in ROUTES {
            if let Some(stats) = level.routes.get(route) {
                let service = level.service.get(route).map_or(String::new(), |s| {
                    format!("   service p50 {:>7.2} ms  p99 {:>7.2} ms", s.p50_ms, s.p99_ms)
                });
                println!(
                    "  {route:<7} {:>7} requests  p50 {:>7.2} ms  p99 {:>7.2} ms{service}",
                    stats.count, stats.p50_ms, stats.p99_ms
                );
            }
        }
        for (route, outcomes) in &level.outcomes {
            if outcomes.keys().any(|status| status != "200") {
                let each: Vec<String> =
                    outcomes.iter().map(|(status, n)| format!("{n} × {status}")).collect();
                println!("  {route:<7} answers: {}", each.join(", "));
            }
        }
        for sample in &level.error_samples {
            println!("  error: {sample}");
        }
    }
    if let Some(soak) = &report.soak {
        println!(
            "\nsoak: RSS {:.0} KiB → {:.0} KiB over {:.0} s ({:+.1} %)",
            soak.rss_start_kib, soak.rss_end_kib, soak.seconds, soak.growth_percent
        );
    }
    if let Some(f) = &report.faults {
        println!(
            "\nfaults {} (seed {}): {} injected; {} client requests failed, each a 503 with Retry-After; the SDK's retries hid at least {}",
            f.spec, f.seed, f.injected_total, f.failed_requests, f.absorbed_at_least
        );
        for i in &f.injected {
            println!("  {:<26} {:<8} {}", i.operation, i.kind.name(), i.count);
        }
        for d in &f.debris {
            let logged = if d.logged.is_some() { "logged by the service" } else { "NOT LOGGED" };
            println!("  debris: {} ({logged})", serde_json::to_string(&d.finding).unwrap_or_default());
        }
        println!(
            "  reconcile: {} repaired with {} writes in {:.2} s; a second run made {} writes",
            f.reconcile_repaired, f.reconcile_writes, f.reconcile_seconds, f.second_reconcile_writes
        );
        let a = &f.audit_after;
        println!(
            "  audit after the repair: {} lost, {} unexpected, {} not downloadable, {} deleted but readable; {} rows, {} objects; {} users miscounted",
            a.lost, a.unexpected, a.undownloadable, a.resurrected, a.rows, a.objects, a.miscounted_users
        );
    }
    let a = &report.audit;
    println!(
        "\naudit: {} live uploads, {} deletes; {} lost, {} unexpected, {} not downloadable, {} deleted but readable; {} rows, {} objects; {} published rows without an object, {} uncharged staged bytes, {} users miscounted",
        a.live, a.deleted, a.lost, a.unexpected, a.undownloadable, a.resurrected, a.rows, a.objects,
        a.rows_without_object, a.uncharged_staged_bytes, a.miscounted_users
    );
}
