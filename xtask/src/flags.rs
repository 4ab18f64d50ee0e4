//! Command-line flags of every task: `cargo xtask --help` is the manual.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use crate::toolchain::{Arch, Builder};

/// The largest direct upload a function URL can carry: 6 MB of request, the body base64-encoded.
pub const MAX_LAMBDA_UPLOAD: u64 = 4_500_000;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Developer tooling for recording-server", version)]
pub struct Xtask {
    #[command(subcommand)]
    pub task: Task,
    /// Print the AWS SDK's full error context with every failed call (also with RUST_LOG=debug)
    #[arg(long, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Task {
    /// Run the service locally against an emulator, with tables and bucket created
    Local(Local),
    /// Run every test (cargo test --workspace) against a fresh emulator
    Test(Test),
    /// Create or update the DynamoDB tables from app's schema; prints their names
    CreateTables(CreateTables),
    /// Check that you (and the service's execution role) have every AWS permission needed
    CheckIam(CheckIam),
    /// Build, package and deploy a stage to Lambda behind a function URL; prints the URL
    Deploy(Deploy),
    /// Remove a stage's function, URL and role (and its data with --include-data)
    Destroy(Destroy),
    /// Measure the release binary: size, cold start, idle memory; with --power, each Lambda
    /// memory size's speed, CPU and cost; with --load, throughput, latency, consistency and
    /// memory under a mixed load
    Bench(Bench),
    /// Show a deployed stage's function logs (REPORT lines summarised); --follow to tail them
    Logs(Logs),
    /// Show what a stage runs: its URL, the function's configuration, code and data, its
    /// versions and aliases
    Status(Status),
    /// Find and repair what failures left in a stage's data (objects without rows, closed upload
    /// windows still charged, usage counters that differ from the rows; rows without objects are
    /// reported), safely while the service serves
    Reconcile(Reconcile),
    /// Point a stage's `live` alias back at the version `previous` names (or --to VERSION),
    /// after smoke-testing it; rebuilds nothing
    Rollback(Rollback),
}

#[derive(Debug, Args)]
pub struct Reconcile {
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub target: StageArgs,
    /// Report what would be repaired; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete published rows whose object is missing (and give back their charge); without
    /// it they are only reported, as a user's recording is never removed unasked
    #[arg(long)]
    pub delete_dangling_rows: bool,
    /// How old an object without a row must be before it is debris: longer than an upload
    /// window stays open (its presigned PUT may still write), e.g. 30m, 2h
    #[arg(long, default_value = "2h", value_parser = parse_positive_duration)]
    pub grace: Duration,
    /// How long to wait between the two readings: longer than a request of the service may take
    /// (its 50 s budget), so a request in flight is never taken for debris; 0s only where nothing
    /// else writes
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub settle: Duration,
    /// Print one JSON object (totals and every item) instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Rollback {
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Stage to roll back
    #[arg(long, default_value = "dev", value_parser = parse_stage)]
    pub stage: String,
    /// The published version to serve (default: the one the `previous` alias names)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub to: Option<u64>,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Logs {
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Stage whose function's logs to show
    #[arg(long, default_value = "dev", value_parser = parse_stage)]
    pub stage: String,
    /// How far back to start (e.g. 30s, 10m, 2h, 1d)
    #[arg(long, default_value = "10m", value_parser = parse_positive_duration)]
    pub since: Duration,
    /// Keep polling for new events (about once a second) until Ctrl-C
    #[arg(long)]
    pub follow: bool,
    /// Only events containing this text
    #[arg(long)]
    pub filter: Option<String>,
    /// Only one request's events: Lambda's request id (its REPORT line included) or the
    /// service's x-request-id
    #[arg(long)]
    pub request: Option<String>,
    /// Only the invocations that had an init phase (cold starts), with their init duration
    #[arg(long)]
    pub cold_starts: bool,
    /// Print one JSON object per event: JSON messages as they are, text ones wrapped
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Status {
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Stage to show
    #[arg(long, default_value = "dev", value_parser = parse_stage)]
    pub stage: String,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

/// Lambda's published prices, us-east-1, first duration tier
/// (<https://aws.amazon.com/lambda/pricing/>, read 2026-12-02): per GB-second of duration
/// (billed per 1 ms) on x86_64 and on arm64, and per million requests. `bench --power`'s
/// `--price-*` flags override them.
pub const X86_GB_SECOND_USD: f64 = 0.000_016_666_7;
pub const ARM_GB_SECOND_USD: f64 = 0.000_013_333_4;
pub const PER_MILLION_REQUESTS_USD: f64 = 0.20;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("measured").args(["load", "power"])))]
pub struct Bench {
    /// Number of measured cold starts (not with --load or --build)
    #[arg(long, default_value = "10", value_parser = parse_count, conflicts_with_all = ["load", "build"])]
    pub runs: usize,
    /// Print a JSON report instead of text
    #[arg(long)]
    pub json: bool,
    /// Run the load and soak benchmark instead: login, upload, list, get and delete by
    /// concurrent clients (DynamoDB on dynalite, S3 on moto), then a consistency audit
    #[arg(long)]
    pub load: bool,
    /// With --load: the numbers of concurrent clients to measure, in turn
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,64", value_parser = parse_count, requires = "load")]
    pub concurrency: Vec<usize>,
    /// With --load: how long each concurrency level runs
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration, requires = "load")]
    pub duration: Duration,
    /// With --load: length of the soak (8 clients) whose memory growth is reported; 0s skips it
    #[arg(long, default_value = "60s", value_parser = parse_duration, requires = "load")]
    pub soak: Duration,
    /// With --load: what each client does, at every level and in the soak
    #[arg(long, value_enum, default_value_t = LoadMix::Mixed, requires = "load")]
    pub mix: LoadMix,
    /// With --load: send requests at this rate (per second, shared by the clients) instead of
    /// each client sending its next request as soon as the last was answered; a request sent
    /// late because the last was slow is timed from when it was due, so a backlog is measured
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), requires = "load")]
    pub rate: Option<u32>,
    /// With --load: inject faults into the service's AWS calls at these rates, through a proxy in
    /// front of both emulators: throttle (ThrottlingException, SlowDown), reset (the connection
    /// reset mid-request), stall (no answer), error (a 500), lost (the call takes effect, its
    /// answer is lost: the SDK sends it again), e.g.
    /// throttle=5%,reset=1%,stall=0.5%,error=1%. Every failure must then be a 503 with
    /// Retry-After; after the audit, reconcile repairs the debris the faults left
    #[arg(long, value_parser = crate::faults::Spec::parse, requires = "load")]
    pub faults: Option<crate::faults::Spec>,
    /// With --faults: the seed of the faults drawn (printed on every run; the same seed draws
    /// the same sequence)
    #[arg(long, requires = "faults")]
    pub seed: Option<u64>,
    /// With --load or --power: use the dev build of the service instead of the release build
    /// (faster to build; the figures are then not the production ones)
    #[arg(long, requires = "measured")]
    pub debug: bool,
    /// With --load or --power: measure this service binary instead of building one, e.g. to
    /// compare two builds in interleaved runs (`cp target/release/app /tmp/app-a`, change,
    /// rebuild, then alternate)
    #[arg(long, requires = "measured", conflicts_with = "debug")]
    pub service_binary: Option<PathBuf>,
    /// Measure the service under the CPU share Lambda gives each memory size (a cgroup CPU quota
    /// of memory / 1,769 MB of one core; needs root), price each size, and recommend the
    /// cheapest whose every p99 is within --p99-budget
    #[arg(long, conflicts_with_all = ["load", "build"])]
    pub power: bool,
    /// With --power: the memory sizes to measure, in MB (128 to 10240), comma-separated
    #[arg(long, value_delimiter = ',', default_value = "128,256,512,1024,1769", value_parser = parse_memory, requires = "power")]
    pub memory: Vec<u32>,
    /// With --power: the p99 latency every route must stay within for a size to be recommended
    #[arg(long, default_value = "50ms", value_parser = parse_millis, requires = "power")]
    pub p99_budget: Duration,
    /// With --power: timed requests per route (list, get, 1 MiB upload) at each size
    #[arg(long, default_value = "100", value_parser = parse_count, requires = "power")]
    pub requests: usize,
    /// With --power: Lambda's price per GB-second on x86_64, in USD
    #[arg(long, default_value_t = X86_GB_SECOND_USD, value_parser = parse_price, requires = "power")]
    pub price_gb_second: f64,
    /// With --power: Lambda's price per GB-second on arm64, in USD
    #[arg(long, default_value_t = ARM_GB_SECOND_USD, value_parser = parse_price, requires = "power")]
    pub price_gb_second_arm: f64,
    /// With --power: Lambda's price per million requests, in USD
    #[arg(long, default_value_t = PER_MILLION_REQUESTS_USD, value_parser = parse_price, requires = "power")]
    pub price_per_million_requests: f64,
    /// Time the newcomer's path instead, from a fresh clone of HEAD with no target directory:
    /// `cargo xtask local` to its first /health 200, `cargo xtask test` right after, after a
    /// one-line change to the service and with nothing changed, and the target directory's
    /// size (about 20 minutes on 2 cores; needs the disk for a second target directory)
    #[arg(long, conflicts_with = "load")]
    pub build: bool,
}

/// Which stage's resources a task acts on.
#[derive(Debug, Clone, Args)]
pub struct StageArgs {
    /// Stage; names every resource (function, role, bucket, and by default the tables)
    #[arg(long, default_value = "dev", value_parser = parse_stage)]
    pub stage: String,
    /// Prefix of the table names (default: what the deployed function uses, else `<stage>-`, so
    /// stages never share tables); `--table-prefix ''` names the seed's record_user/record_record
    #[arg(long, value_parser = parse_table_prefix)]
    pub table_prefix: Option<String>,
    /// Bucket name (default: what the deployed function uses, else
    /// `recording-server-<stage>-<account>-<region>`)
    #[arg(long, value_parser = parse_bucket)]
    pub bucket: Option<String>,
}

impl StageArgs {
    /// The table prefix from the flag, else the stage's default.
    pub fn table_prefix(&self) -> String {
        self.table_prefix.clone().unwrap_or_else(|| crate::names::default_prefix(&self.stage))
    }

    /// The names from the flags and the stage's defaults alone (no deployed function consulted).
    pub fn names(&self, account: &str, region: &str) -> crate::names::Names {
        crate::names::Names::new(&self.stage, account, region, &self.table_prefix(), self.bucket.as_deref())
    }
}

#[derive(Debug, Args)]
pub struct Deploy {
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub target: StageArgs,
    /// Use tables or a bucket that exist and are not this stage's own (another stage's, or the
    /// untagged tables of `create-tables`), sharing their data on purpose
    #[arg(long)]
    pub adopt_data: bool,
    /// Point the deployed function at other tables or another bucket than it uses now (its
    /// recordings stay where they are)
    #[arg(long)]
    pub change_data: bool,
    /// Lambda architecture
    #[arg(long, value_enum, default_value_t = Arch::DEFAULT)]
    pub arch: Arch,
    /// Function memory in MB (the default is what `cargo xtask bench --power` recommends for
    /// this service: see xtask/README.md)
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(i32).range(128..=10240))]
    pub memory: i32,
    /// Function timeout (seconds, or a duration like 90s or 2m); must be above the service's
    /// request budget (50 s: ten AWS calls in a row of at most 5 s each), at most 15m
    #[arg(long, default_value = "60s", value_parser = parse_function_timeout)]
    pub timeout: i32,
    /// Concurrent executions reserved for (and capping) the function, or `none`: bounds what a
    /// flood of requests can cost and leaves the account's other functions their share
    #[arg(long, default_value = "10", value_parser = parse_reserved_concurrency)]
    pub reserved_concurrency: ReservedConcurrency,
    /// Largest direct upload body in bytes, at most 4500000: a function URL caps a request at
    /// 6 MB, and a binary body reaches the function base64-encoded (4/3 of its size); larger
    /// recordings take the presigned path
    #[arg(long, default_value_t = 4 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..=MAX_LAMBDA_UPLOAD))]
    pub max_upload_bytes: u64,
    /// Enable the seed's unverified GET /login (unsafe: anyone can sign in as anyone)
    #[arg(long)]
    pub allow_unverified_login: bool,
    /// Identity providers for POST /login, as JSON: [{"name","issuer","audiences","jwks_url"}]
    #[arg(long, env = app::config::env::OIDC_PROVIDERS, value_parser = parse_oidc_providers)]
    pub oidc_providers: Option<String>,
    /// Days the function's logs are kept (one of CloudWatch Logs' values: 1, 3, 5, 7, 14, 30, 60,
    /// 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
    #[arg(long, default_value_t = 30, value_parser = parse_retention)]
    pub log_retention_days: i32,
    /// Deletion protection and point-in-time recovery for the tables: `--protect`, `--protect
    /// false` (default: on except for dev)
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub protect: Option<bool>,
    /// How to build the service (ignored with --binary)
    #[arg(long, value_enum, default_value_t = Builder::DEFAULT)]
    pub builder: Builder,
    /// Cargo profile of the build (ignored with --binary): `release` is the smallest, fastest
    /// starting binary; `quick` (unoptimised, no LTO) builds in a fraction of the time, for trial
    /// stages and the tests
    #[arg(long, default_value = "release", value_parser = ["release", crate::toolchain::QUICK_PROFILE])]
    pub build_profile: String,
    /// Package this prebuilt binary instead of building the service
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Print the plan (create / update / unchanged per resource); make no write call
    #[arg(long)]
    pub dry_run: bool,
    /// Only print the stage's function URL
    #[arg(long)]
    pub url_only: bool,
    /// Published versions kept beyond those `live` and `previous` name; older ones are deleted
    #[arg(long, default_value_t = 5)]
    pub keep: usize,
    /// Confirm a change that gives the stage a new URL (moving a URL that served `$LATEST` to
    /// the `live` alias); needed off a terminal
    #[arg(long)]
    pub yes: bool,
    /// Print a JSON report instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Destroy {
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub target: StageArgs,
    /// Also delete the tables and the bucket, with every recording in them
    #[arg(long)]
    pub include_data: bool,
    /// Keep the function's log group (by default it goes with the function)
    #[arg(long)]
    pub keep_logs: bool,
    /// Do not ask for confirmation
    #[arg(long)]
    pub yes: bool,
}

/// Where AWS requests go and with which identity.
#[derive(Debug, Clone, Default, Args)]
pub struct AwsArgs {
    /// AWS region (default: AWS_REGION, or the profile's region)
    #[arg(long)]
    pub region: Option<String>,
    /// Named profile from ~/.aws/config (default: AWS_PROFILE, or the default chain)
    #[arg(long)]
    pub profile: Option<String>,
    /// Send AWS requests to this endpoint, e.g. an emulator at http://127.0.0.1:5000
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Longest one AWS call may take, retries included (connecting: at most 5 s of it); an
    /// endpoint that stalls fails the task after this. Waits that are long by design (tables
    /// becoming ACTIVE, function updates) poll with calls this short under their own bound
    #[arg(long, env = "RECORDING_AWS_TIMEOUT", default_value = "30s", value_parser = parse_call_timeout)]
    pub aws_timeout: Duration,
}

/// A call timeout: 1 s to 15 min.
fn parse_call_timeout(s: &str) -> Result<Duration, String> {
    let timeout = parse_duration(s)?;
    if !(Duration::from_secs(1)..=Duration::from_secs(900)).contains(&timeout) {
        return Err(format!("{s:?} is not from 1s to 15m"));
    }
    Ok(timeout)
}

#[derive(Debug, Args)]
pub struct Local {
    /// Port the service listens on (1-65535)
    #[arg(long, default_value_t = 8000, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Identity providers for POST /login and the web recorder's sign-in, as deploy takes them
    #[arg(long, value_parser = parse_oidc_providers)]
    pub oidc_providers: Option<String>,
    /// Largest upload body in bytes
    #[arg(long, default_value_t = app::config::DEFAULT_MAX_UPLOAD_BYTES)]
    pub max_upload_bytes: usize,
}

#[derive(Debug, Args)]
pub struct Test {
    /// Use this endpoint instead of starting moto (IAM-enforcement tests still start their own)
    #[arg(long, env = "RECORDING_TEST_ENDPOINT")]
    pub endpoint_url: Option<String>,
    /// Run `cargo test --workspace <args>` instead of every test binary side by side, e.g.
    /// `-- -p xtask check_iam` for one module
    #[arg(last = true)]
    pub cargo_test_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CreateTables {
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Prefix for both table names, so several stages can share an account
    #[arg(long, env = app::config::env::TABLE_PREFIX, default_value = "", value_parser = parse_table_prefix)]
    pub table_prefix: String,
    /// Stage name written into the `stage` tag of new tables
    #[arg(long, default_value = "dev", value_parser = parse_stage)]
    pub stage: String,
    /// Turn on point-in-time recovery and deletion protection: `--protect`, `--protect true` or
    /// `--protect false` (the default), as deploy takes it
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub protect: bool,
    /// Print what would be done; make no write call
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object per table instead of text
    #[arg(long)]
    pub json: bool,
    /// Give up waiting for tables to become ACTIVE after this long (e.g. 90s, 5m)
    #[arg(long, default_value = "5m", value_parser = parse_positive_duration)]
    pub timeout: Duration,
}

/// How far check-iam's probes may go when simulation is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeMode {
    /// Read-only calls only
    Read,
    /// Also writes that cannot change anything (on resources that do not exist, or that fail
    /// before they could change anything)
    Conditional,
}

/// The requests of `bench --load`'s clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadMix {
    /// Upload, list, get, and delete every other upload, over and over: writes reach both
    /// emulators
    Mixed,
    /// Upload 10 recordings first (not timed), then only list and get them: the read path,
    /// DynamoDB alone
    Read,
}

/// Which least-privilege policy to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyKind {
    /// The Lambda execution role's policy (from app::permissions)
    Runtime,
    /// The policy of whoever runs the xtask tasks: both parts below, in one document
    Deployer,
    /// The deployer policy without its setup (IAM) part: enough to redeploy, roll back and inspect
    /// an existing stage; it manages no permissions
    DeployerBase,
    /// The deployer policy's setup (IAM) part: every permissions-managing action (the execution
    /// role, the bucket's policy and public access block, the function's resource policy)
    DeployerIam,
    /// The operator's policy, apart from the deployer's: what `cargo xtask reconcile` reads and
    /// repairs in a stage's data
    Operator,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CheckIam {
    #[command(subcommand)]
    pub command: Option<CheckIamCommand>,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub target: StageArgs,
    /// Only the permissions of these tasks, comma-separated or repeated (default: create-tables,
    /// deploy, destroy)
    #[arg(long, value_enum, value_delimiter = ',')]
    pub task: Vec<crate::catalogue::Task>,
    /// How far probes may go when simulation is unavailable
    #[arg(long, value_enum, default_value = "read")]
    pub probe: ProbeMode,
    /// Print the least-privilege policy JSON instead of checking
    #[arg(long, value_enum)]
    pub print_policy: Option<PolicyKind>,
    /// With --print-policy: use "*" as every resource (for emulators that match only "*")
    #[arg(long, requires = "print_policy")]
    pub any_resource: bool,
    /// With --print-policy: the account id for the ARNs (default: your credentials' account; with
    /// no usable credentials, `*`, so a developer without access can hand the policy to an admin)
    #[arg(long, requires = "print_policy")]
    pub account: Option<String>,
    /// Do not check the execution role and function URL
    #[arg(long)]
    pub skip_role: bool,
    /// List every row, ALLOW rows too (default: one count of ALLOW rows per task)
    #[arg(long)]
    pub all: bool,
    /// Treat inconclusive results (CONDITIONAL, UNKNOWN) as failures (exit 1, not 2)
    #[arg(long)]
    pub strict: bool,
    /// Print a JSON report instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum CheckIamCommand {
    /// Explain the AccessDenied messages in a text (arguments, or `-` for stdin) and give the fix;
    /// makes no AWS call. Exit 1 when it explained a denial, 0 when there was none
    Explain(Explain),
}

#[derive(Debug, Args)]
pub struct Explain {
    /// The messages (or a whole pasted block); `-` reads them from stdin
    #[arg(conflicts_with = "since")]
    pub messages: Vec<String>,
    /// Read the messages from the stage's function logs (CloudWatch Logs) of this long ago until
    /// now (e.g. 1h, 30m), instead of from the arguments
    #[arg(long, value_parser = parse_positive_duration)]
    pub since: Option<Duration>,
    /// Where to read the logs from, with --since
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub target: StageArgs,
    /// Print a JSON array of the explained denials instead of text
    #[arg(long)]
    pub json: bool,
}

/// `90s`, `5m`, `1h`, or plain seconds.
/// Executions reserved for the function; `None`: no reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservedConcurrency(pub Option<i32>);

/// `none`, or a number of executions from 1 to 1000 (0 would stop the function altogether).
pub fn parse_reserved_concurrency(s: &str) -> Result<ReservedConcurrency, String> {
    if s == "none" {
        return Ok(ReservedConcurrency(None));
    }
    match s.parse::<i32>() {
        Ok(n @ 1..=1000) => Ok(ReservedConcurrency(Some(n))),
        _ => Err(format!("{s:?} is not 1 to 1000 or none")),
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    /// Longer than any wait or window this tooling has: a typo, not a plan.
    const MAX: u64 = 366 * 24 * 3600;
    let bad = || format!("{s:?} is not a duration like 90s, 5m, 1h30m or 2d");
    if s.is_empty() {
        return Err(bad());
    }
    // Plain seconds, or number-unit pairs: `90s`, `1h30m`, `2d`.
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = s.parse().map_err(|_| bad())?;
        return if secs > MAX {
            Err(format!("{s:?} is longer than a year"))
        } else {
            Ok(Duration::from_secs(secs))
        };
    }
    let mut secs: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.find(|c: char| c.is_ascii_digit()).unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let n: u64 = number.parse().map_err(|_| bad())?;
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(format!("{s:?} has unknown unit {unit:?}: use s, m, h or d")),
        };
        secs = n
            .checked_mul(scale)
            .and_then(|n| secs.checked_add(n))
            .filter(|n| *n <= MAX)
            .ok_or_else(|| format!("{s:?} is longer than a year"))?;
        rest = tail;
    }
    Ok(Duration::from_secs(secs))
}

/// A duration that must be more than zero.
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let duration = parse_duration(s)?;
    if duration.is_zero() {
        return Err(format!("{s:?} is zero: give a duration above 0, like 30s"));
    }
    Ok(duration)
}

/// A Lambda memory size: 128 to 10,240 MB.
fn parse_memory(s: &str) -> Result<u32, String> {
    match s.trim().trim_end_matches("MB").parse::<u32>() {
        Ok(mb @ 128..=10240) => Ok(mb),
        Ok(mb) => Err(format!("{mb} MB is not a Lambda memory size: give 128 to 10240")),
        Err(_) => Err(format!("{s:?} is not a memory size in MB, like 256")),
    }
}

/// Milliseconds: `50ms`, or a duration like `1s`.
fn parse_millis(s: &str) -> Result<Duration, String> {
    match s.strip_suffix("ms") {
        Some(ms) => match ms.parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
            _ => Err(format!("{s:?} is not a positive number of milliseconds, like 50ms")),
        },
        None => parse_positive_duration(s),
    }
}

/// A price in USD: a positive finite number.
fn parse_price(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok(p),
        _ => Err(format!("{s:?} is not a price in USD, like 0.0000166667")),
    }
}

/// A count of at least one.
fn parse_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a whole number of at least 1")),
    }
}

/// Identity providers, checked with the service's own parser, so a typo fails the deploy (before
/// any AWS call), not the function's cold start.
fn parse_oidc_providers(s: &str) -> Result<String, String> {
    if !s.trim().is_empty() {
        app::providers::parse_providers(s).map_err(|e| format!("not valid: {e}"))?;
    }
    Ok(s.to_owned())
}

/// A log retention CloudWatch Logs accepts, in days.
fn parse_retention(s: &str) -> Result<i32, String> {
    const DAYS: [i32; 22] = [
        1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288,
        3653,
    ];
    match s.parse::<i32>() {
        Ok(days) if DAYS.contains(&days) => Ok(days),
        _ => Err(format!("{s:?} is not a retention CloudWatch Logs accepts: one of {DAYS:?} days")),
    }
}

/// A bucket name, checked against S3's rules.
fn parse_bucket(s: &str) -> Result<String, String> {
    crate::names::validate_bucket(s)?;
    Ok(s.to_owned())
}

/// A stage name, checked as every resource name built from it needs.
fn parse_stage(s: &str) -> Result<String, String> {
    crate::names::validate_stage(s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

/// A table prefix, checked against DynamoDB's table-name rules.
fn parse_table_prefix(s: &str) -> Result<String, String> {
    app::schema::validate_prefix(s)?;
    Ok(s.to_owned())
}

/// A function timeout: whole seconds or a duration, up to Lambda's 900 s, and above the
/// service's request budget (else Lambda could cut off a request the service was still
/// answering, and the client would get a bare 502 instead of its 503).
fn parse_function_timeout(s: &str) -> Result<i32, String> {
    let timeout = parse_duration(s)?.as_secs();
    let budget = app::config::AwsBudget::default().request_budget().as_secs();
    if timeout > 900 {
        return Err(format!("{s:?} is above Lambda's limit of 900 s"));
    }
    if timeout <= budget {
        return Err(format!(
            "{s:?} is not above the service's request budget of {budget} s (up to {} AWS calls in a row, each \
             bounded by RECORD_AWS_OPERATION_TIMEOUT_MS): use --timeout {} or more",
            app::config::MAX_CALLS_PER_REQUEST,
            budget + 1
        ));
    }
    Ok(timeout as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent_and_documented() {
        Xtask::command().debug_assert();
        fn check(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments().filter(|a| !matches!(a.get_id().as_str(), "help" | "version")) {
                assert!(arg.get_help().is_some(), "{path} --{} has no doc comment", arg.get_id());
            }
            for sub in cmd.get_subcommands() {
                assert!(sub.get_about().is_some(), "{path} {} has no doc comment", sub.get_name());
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&Xtask::command(), "cargo xtask");
    }

    #[test]
    fn the_default_function_timeout_is_above_the_services_request_budget() {
        let Xtask { task: Task::Deploy(deploy), .. } = Xtask::try_parse_from(["xtask", "deploy"]).unwrap()
        else {
            panic!("not a deploy")
        };
        let budget = app::config::AwsBudget::default().request_budget().as_secs();
        assert!(u64::try_from(deploy.timeout).unwrap() > budget, "{} s <= {budget} s", deploy.timeout);
    }

    #[test]
    fn each_kind_of_value_looks_the_same_in_every_task() {
        let parse = |args: &[&str]| Xtask::try_parse_from([&["xtask"][..], args].concat());
        for (args, want) in [
            (&["create-tables", "--protect"][..], true),
            (&["create-tables", "--protect", "true"][..], true),
            (&["create-tables", "--protect=false"][..], false),
            (&["create-tables"][..], false),
        ] {
            let Ok(Xtask { task: Task::CreateTables(t), .. }) = parse(args) else { panic!("{args:?}") };
            assert_eq!(t.protect, want, "{args:?}");
        }
        for (args, want) in [
            (&["deploy", "--protect"][..], Some(true)),
            (&["deploy", "--protect", "false"][..], Some(false)),
            (&["deploy"][..], None),
        ] {
            let Ok(Xtask { task: Task::Deploy(d), .. }) = parse(args) else { panic!("{args:?}") };
            assert_eq!(d.protect, want, "{args:?}");
        }
        let Ok(Xtask { task: Task::CheckIam(c), .. }) = parse(&["check-iam", "--task", "deploy,destroy"])
        else {
            panic!("--task takes commas")
        };
        assert_eq!(c.task.len(), 2);
        let Ok(Xtask { task: Task::CheckIam(c), .. }) =
            parse(&["check-iam", "--task", "deploy", "--task", "logs"])
        else {
            panic!("--task repeats")
        };
        assert_eq!(c.task.len(), 2);
        assert!(
            parse(&["deploy", "--max-upload-bytes", "5000000"]).is_err(),
            "above a function URL's payload"
        );
        assert!(parse(&["local", "--port", "0"]).is_err(), "port 0 would be waited for");
        assert!(
            parse(&["deploy", "--timeout", "2m"]).is_ok()
                && parse(&["create-tables", "--timeout", "2m"]).is_ok()
        );
    }

    #[test]
    fn durations_accept_units_and_reject_garbage() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(2 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("1h30").is_err());
        assert!(parse_duration("18446744073709551615s").is_err(), "huge values are refused, not overflowed");
        assert!(parse_duration("400d").is_err());
        assert!(parse_positive_duration("0s").is_err());
    }
}
