//! `cargo xtask deploy`: build, package and converge one stage's resources (bucket, tables,
//! execution role, function, function URL), each found by its deterministic name; then
//! smoke-test the URL. A run with nothing to change makes no write call.

pub mod build;
mod function;
pub mod package;
pub mod release;
mod role;

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use serde::Serialize;
use xshell::Shell;

use crate::aws::Aws;
use crate::bucket::{apply_bucket, plan_bucket};
use crate::create_tables::{ensure_tables, Options};
use crate::flags::Deploy;
use crate::names::Names;
use crate::outcome::Outcome;
use crate::toolchain::target_dir;
use crate::Failure;
use build::{BuildSpec, Builder};
use package::{check_binary, code_sha256, zip_bootstrap, Arch};

/// One resource and what the run did (or, with --dry-run, would do) to it.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub resource: &'static str,
    pub name: String,
    /// Serialized as `action`: `create`, `update`, `adopt` or `unchanged`.
    #[serde(rename = "action")]
    pub outcome: Outcome,
    pub changes: Vec<String>,
}

impl Step {
    fn new(resource: &'static str, name: &str, outcome: Outcome, changes: Vec<String>) -> Step {
        Step { resource, name: name.to_owned(), outcome, changes }
    }
}

/// Everything the function should look like.
pub struct Desired {
    pub names: Names,
    pub arch: Arch,
    pub memory: i32,
    pub timeout: i32,
    pub reserved_concurrency: Option<i32>,
    pub environment: BTreeMap<String, String>,
    pub zip: Vec<u8>,
    pub code_sha256: String,
}

pub use crate::names::validate_stage;
pub use function::url;

/// The longest a request of the deployed service waits for AWS, with the time budget it runs
/// with (deploy sets no `RECORD_AWS_*` variable, so the service's defaults).
fn request_budget() -> std::time::Duration {
    app::config::AwsBudget::default().request_budget()
}

/// The plan's data-affecting steps, refused (before any write) without their flag: pointing the
/// deployed function at other tables or another bucket (`--change-data`), and using tables that
/// are not this stage's own (`--adopt-data`). A dry run shows them and refuses nothing.
async fn data_steps(
    aws: &Aws,
    names: &Names,
    deployed: Option<&crate::stage::Deployed>,
    bucket_exists: bool,
    flags: &Deploy,
) -> anyhow::Result<Vec<Step>> {
    let mut steps = Vec::new();
    let refuse = |what: String, flag: &str, advice: &str| {
        Failure::usage(anyhow::anyhow!("{what}: pass {flag} to do this on purpose, or {advice}"))
    };
    if let Some(d) = deployed {
        let mut changes = Vec::new();
        if d.table_prefix != names.table_prefix {
            changes.push(format!(
                "tables {}, {} -> {}, {}",
                app::schema::USER_TABLE.name(&d.table_prefix),
                app::schema::RECORD_TABLE.name(&d.table_prefix),
                names.user_table(),
                names.record_table()
            ));
        }
        if d.bucket != names.bucket {
            changes.push(format!("bucket {} -> {}", d.bucket, names.bucket));
        }
        if !changes.is_empty() {
            let what = format!(
                "deploy would point stage {}'s function at other data ({}); its users would no longer see their recordings",
                names.stage,
                changes.join("; ")
            );
            if !flags.change_data && !flags.dry_run {
                return Err(refuse(
                    what,
                    "--change-data",
                    "leave --table-prefix and --bucket out to keep its data",
                ));
            }
            changes.push("data-affecting: needs --change-data".into());
            steps.push(Step::new("data", &names.function, Outcome::Update, changes));
        }
    }
    let tables_in_use = deployed.is_some_and(|d| d.table_prefix == names.table_prefix);
    if !tables_in_use {
        for table in [names.user_table(), names.record_table()] {
            let owner = crate::stage::table_owner(aws, names, &table).await?;
            let own = matches!(&owner, crate::stage::TableOwner::Stage(Some(s)) if *s == names.stage);
            if owner == crate::stage::TableOwner::Absent || own {
                continue;
            }
            let what = format!("table {table} {}, not stage {}", owner.describe(), names.stage);
            if !flags.adopt_data && !flags.dry_run {
                return Err(refuse(
                    what,
                    "--adopt-data",
                    "choose another --table-prefix (the default is `<stage>-`)",
                ));
            }
            steps.push(Step::new(
                "data",
                &table,
                Outcome::Adopt,
                vec![format!("{what}; needs --adopt-data")],
            ));
        }
    }
    let own_bucket = crate::stage::owns_bucket(&names.stage, &names.account, &names.region, &names.bucket);
    let bucket_in_use = deployed.is_some_and(|d| d.bucket == names.bucket);
    if bucket_exists && !own_bucket && !bucket_in_use {
        let what = format!("bucket {} exists and is not stage {}'s own", names.bucket, names.stage);
        if !flags.adopt_data && !flags.dry_run {
            return Err(refuse(what, "--adopt-data", "leave --bucket out"));
        }
        steps.push(Step::new(
            "data",
            &names.bucket,
            Outcome::Adopt,
            vec![format!("{what}; needs --adopt-data")],
        ));
    }
    Ok(steps)
}

impl Deploy {
    pub async fn run(self, sh: &Shell) -> anyhow::Result<()> {
        validate_stage(&self.target.stage)?;
        if let Some(prefix) = &self.target.table_prefix {
            app::schema::validate_prefix(prefix).map_err(anyhow::Error::msg)?;
        }
        let aws = self.aws.load(crate::catalogue::Task::Deploy).await?;
        let account = crate::aws::account(&aws).await?;
        let role = role::current(&aws, &self.target.names(&account, &aws.region())).await?;
        let deployed = crate::stage::deployed(&aws, &self.target.stage).await?;
        // Flags first, then what the deployed function uses, then the stage's defaults.
        let prefix = self
            .target
            .table_prefix
            .clone()
            .or_else(|| deployed.as_ref().map(|d| d.table_prefix.clone()))
            .unwrap_or_else(|| crate::names::default_prefix(&self.target.stage));
        let bucket = self.target.bucket.clone().or_else(|| deployed.as_ref().map(|d| d.bucket.clone()));
        let names = Names::new(&self.target.stage, &account, &aws.region(), &prefix, bucket.as_deref());
        // A derived name can break S3's rules (a long stage in a long region): said before any
        // build or write, the dry run included.
        crate::names::validate_bucket(&names.bucket).map_err(|e| {
            Failure::usage(anyhow::anyhow!(
                "{e}: choose a shorter --stage, or pass --bucket with a valid name"
            ))
        })?;
        if self.url_only {
            let url = function::url(&aws, &names.function).await?;
            println!(
                "{}",
                url.context(format!("function {} has no URL yet: run `cargo xtask deploy`", names.function))?
            );
            return Ok(());
        }

        let binary = match &self.binary {
            Some(path) => path.clone(),
            None => {
                let target_dir = target_dir(&sh.current_dir());
                let zig = match self.builder {
                    Builder::Zig => Some(build::ZIG.install(sh, &target_dir)?),
                    Builder::Cargo => None,
                };
                let spec = BuildSpec::service(
                    &sh.current_dir(),
                    target_dir,
                    self.arch,
                    self.builder,
                    &self.build_profile,
                );
                build::build(sh, &spec, zig.as_deref())?
            }
        };
        let bytes =
            sh.read_binary_file(&binary).with_context(|| format!("cannot read {}", binary.display()))?;
        let facts = check_binary(&bytes, self.arch)
            .with_context(|| format!("{} cannot run on Lambda", binary.display()))?;
        let zip = zip_bootstrap(&bytes)?;
        let settings = app::config::Settings {
            bucket_owner: Some(names.account.clone()),
            table_prefix: names.table_prefix.clone(),
            allow_unverified_login: self.allow_unverified_login,
            max_upload_bytes: self.max_upload_bytes as usize,
            // Already checked by the flag's parser with the service's own, so a typo fails the
            // command line, not the function's cold start.
            oidc_providers: self.oidc_providers.clone().unwrap_or_default(),
            ..app::config::Settings::new(&names.bucket)
        };
        let environment: BTreeMap<String, String> =
            settings.to_env().into_iter().map(|(name, value)| (name.to_owned(), value)).collect();
        let desired = Desired {
            code_sha256: code_sha256(&zip),
            zip,
            arch: self.arch,
            memory: self.memory,
            timeout: self.timeout,
            reserved_concurrency: self.reserved_concurrency.0,
            environment,
            names: names.clone(),
        };
        if self.allow_unverified_login {
            eprintln!(
                "warning: --allow-unverified-login lets anyone who knows a social id sign in as that user \
                 (GET /login refuses the social_type of a configured --oidc-providers name, so verified users \
                 cannot be impersonated this way)"
            );
        }
        let glibc = facts.newest_glibc.map(|(major, minor)| format!("{major}.{minor}"));
        if !self.json {
            println!(
                "binary   {} ({} bytes, needs glibc {})",
                binary.display(),
                bytes.len(),
                glibc.as_deref().unwrap_or("none (static)")
            );
            println!("package  {} bytes, CodeSha256 {}", desired.zip.len(), desired.code_sha256);
            println!(
                "function {} MB, timeout {} s (a request waits at most {} s for AWS)",
                desired.memory,
                desired.timeout,
                request_budget().as_secs()
            );
        }

        let bucket = plan_bucket(&aws, &names.bucket, Some(&names.account)).await?;
        let bucket_exists = !matches!(bucket, crate::bucket::BucketPlan::Create);
        let mut steps = data_steps(&aws, &names, deployed.as_ref(), bucket_exists, &self).await?;
        // A stage whose URL serves $LATEST gets a new URL: asked before any write.
        let function::UrlState { live: live_url, legacy } = function::url_state(&aws, &names).await?;
        if let Some(legacy) = &legacy {
            self.confirm_new_url(&names, legacy)?;
        }
        if !self.dry_run {
            apply_bucket(&aws, &names.bucket, Some(&names.account), &bucket).await?;
        }
        let changes = match &bucket {
            crate::bucket::BucketPlan::Update(missing) => missing.iter().map(|m| m.to_string()).collect(),
            _ => Vec::new(),
        };
        steps.push(Step::new("bucket", &names.bucket, bucket.outcome(), changes));
        let skipped = crate::bucket::skipped_protections(&aws);
        for protection in &skipped {
            eprintln!("note: bucket {} gets no {protection}", names.bucket);
        }

        let tables = Options {
            prefix: names.table_prefix.clone(),
            stage: self.target.stage.clone(),
            protect: self.protect.unwrap_or(self.target.stage != "dev"),
            dry_run: self.dry_run,
            timeout: std::time::Duration::from_secs(300),
        };
        for table in ensure_tables(&aws, &tables).await {
            let table = table?;
            steps.push(Step::new("table", &table.name, table.outcome, table.changes));
        }

        let role = role::ensure_role(&aws, &names, role, self.dry_run).await?;
        steps.push(role.step);
        steps.extend(function::ensure_function(&aws, &desired, &role.arn, role.created, self.dry_run).await?);
        // Before the first invocation, so its logs are kept only as long as asked.
        steps.push(function::ensure_log_group(&aws, &names, self.log_retention_days, self.dry_run).await?);
        let build = match &self.binary {
            Some(_) => "prebuilt binary".to_owned(),
            None => format!(
                "{} build, profile {}",
                format!("{:?}", self.builder).to_lowercase(),
                self.build_profile
            ),
        };
        let release = self.release(sh, &aws, &names, &build, &mut steps).await?;
        let url = function::ensure_url(&aws, &names, live_url, self.dry_run, &mut steps).await?;
        // The web recorder, served at the URL, PUTs and plays straight from the bucket.
        if let Some(url) = &url {
            let origins = [url.trim_end_matches('/').to_owned()];
            if let Some(rules) =
                crate::bucket::plan_cors(&aws, &names.bucket, Some(&names.account), &origins).await?
            {
                if !self.dry_run {
                    crate::bucket::apply_cors(&aws, &names.bucket, Some(&names.account), rules).await?;
                }
                let change = format!("CORS rule for the web recorder at {}", origins[0]);
                steps.push(Step::new("bucket", &names.bucket, Outcome::Update, vec![change]));
            }
        }

        if self.json {
            let report = serde_json::json!({
                "stage": self.target.stage, "dry_run": self.dry_run, "url": url, "steps": steps,
                "skipped_protections": skipped,
                "zip_bytes": desired.zip.len(), "code_sha256": desired.code_sha256,
                "function": {
                    "memory_mb": desired.memory, "timeout_s": desired.timeout,
                    "request_budget_s": request_budget().as_secs(),
                },
                "release": release,
                "url_changed_from": legacy.as_ref().and_then(|l| l.url.clone()),
                "binary": { "path": binary, "bytes": bytes.len(), "newest_glibc": glibc },
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            for step in &steps {
                let action = step.outcome.verb(self.dry_run);
                let changes = if step.changes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", step.changes.join(", "))
                };
                println!("{:<8} {:<40} {action}{changes}", step.resource, step.name);
            }
            if let Some(url) = &url {
                println!("\nurl      {url}");
            }
        }
        if self.dry_run {
            return Ok(());
        }
        match (&url, &aws.endpoint) {
            (_, Some(endpoint)) => {
                eprintln!("public URL check skipped: {endpoint} is an emulator, which serves no function URL")
            }
            (Some(url), None) => function::smoke_test(&aws, &names, url).await?,
            (None, None) => bail!("the function has no URL after deploy: rerun `cargo xtask deploy`"),
        }
        if let Some(legacy) = &legacy {
            function::remove_legacy_url(&aws, &names, legacy).await?;
            eprintln!(
                "the stage's old URL {} (it served $LATEST) is removed: use {}",
                legacy.url.as_deref().unwrap_or("(none)"),
                url.as_deref().unwrap_or("(none)")
            );
        }
        Ok(())
    }

    /// Publish `$LATEST` when it differs from what `live` serves, smoke-test that version, then
    /// move the aliases to it and prune old versions. Nothing is written when `live` already
    /// serves what `$LATEST` holds.
    async fn release(
        &self,
        sh: &Shell,
        aws: &Aws,
        names: &Names,
        build: &str,
        steps: &mut Vec<Step>,
    ) -> anyhow::Result<Option<Released>> {
        let function = &names.function;
        let live_name = format!("{function}:{}", release::LIVE);
        let live = release::alias(aws, function, release::LIVE).await?;
        let latest = release::configuration(aws, function, "$LATEST").await?;
        let served = match &live {
            Some(live) => release::configuration(aws, function, &live.version).await?,
            None => None,
        };
        let planned = steps.iter().any(|s| s.resource == "function" && s.outcome != Outcome::Unchanged);
        if let (Some(latest), Some(served), false) = (&latest, &served, self.dry_run && planned) {
            if latest.same_as(served) {
                steps.push(Step::new(
                    "alias",
                    &live_name,
                    Outcome::Unchanged,
                    vec![format!("version {}", served.version)],
                ));
                return Ok(None);
            }
        }
        let (Some(latest), false) = (latest, self.dry_run) else {
            let change = "publish $LATEST, smoke-test it, move `live` to it".to_owned();
            steps.push(Step::new("alias", &live_name, Outcome::of(live.is_none(), true), vec![change]));
            return Ok(None);
        };
        let previous = release::alias(aws, function, release::PREVIOUS).await?;
        let description = release::description(sh, build);
        let version = release::publish(aws, function, &latest, &description).await?;
        let smoke = release::smoke(aws, function, &version, self.timeout).await?;
        release::report(&smoke, names, self.json)?;
        release::promote(aws, function, &version, live.as_ref(), previous.as_ref()).await?;
        let was = live.as_ref().map(|l| l.version.clone());
        let change = match &was {
            Some(was) if *was != version => format!("version {version} (was {was}; `previous` -> {was})"),
            _ => format!("version {version}"),
        };
        steps.push(Step::new("alias", &live_name, Outcome::of(live.is_none(), true), vec![change]));
        let pruned = release::prune(aws, function, self.keep).await?;
        if !pruned.is_empty() {
            steps.push(Step::new(
                "versions",
                function,
                Outcome::Delete,
                pruned.iter().map(|v| format!("version {v}")).collect(),
            ));
        }
        Ok(Some(Released { version, previous: was, description, smoke, pruned }))
    }

    /// A URL that served `$LATEST` moves to `live`: the stage gets a new URL, so deploy says so
    /// and asks (on a terminal) or needs --yes.
    fn confirm_new_url(&self, names: &Names, legacy: &function::LegacyUrl) -> anyhow::Result<()> {
        let old = legacy.url.as_deref().unwrap_or("(none)");
        let warning = format!(
            "THE URL OF STAGE {} CHANGES: its URL {old} serves $LATEST; deploy moves it to the `live` alias, \
             which gets a new URL (clients of the old one must switch)",
            names.stage
        );
        eprintln!("warning: {warning}");
        if self.yes || self.dry_run {
            return Ok(());
        }
        use std::io::{BufRead, IsTerminal, Write};
        if !std::io::stdin().is_terminal() {
            return Err(Failure::usage(anyhow::anyhow!(
                "deploy would give stage {} a new URL: pass --yes to do it unattended",
                names.stage
            )));
        }
        eprint!("type yes to continue: ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            bail!("stopped: the stage keeps its URL until a deploy is confirmed");
        }
        Ok(())
    }
}

/// What a deploy released: the new version, what `live` served before, the smoke test.
#[derive(Debug, Serialize)]
pub struct Released {
    pub version: String,
    pub previous: Option<String>,
    pub description: String,
    pub smoke: release::Smoke,
    pub pruned: Vec<String>,
}
