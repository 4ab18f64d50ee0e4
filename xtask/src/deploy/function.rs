//! The Lambda function and its URL: created, or updated in only what differs, waiting for each
//! update to finish before the next.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_lambda::error::SdkError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    ApplicationLogLevel, Architecture, Cors, Environment, FunctionConfiguration, FunctionUrlAuthType,
    LastUpdateStatus, LogFormat, LoggingConfig, Runtime, State, SystemLogLevel,
};

use super::release::LIVE;
use super::{Desired, Step};
use crate::aws::{Aws, ExplainExt};
use crate::names::Names;
use crate::outcome::Outcome;

const RUNTIME: Runtime = Runtime::Providedal2023;
const HANDLER: &str = "bootstrap";
const WAIT: Duration = Duration::from_secs(300);

fn lambda(aws: &Aws) -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::new(&aws.sdk)
}

/// `None` if the function does not exist.
async fn current(aws: &Aws, name: &str) -> anyhow::Result<Option<FunctionConfiguration>> {
    match lambda(aws).get_function().function_name(name).send().await {
        Ok(output) => Ok(output.configuration),
        Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => Ok(None),
        Err(e) => Err(crate::aws::explain(e, "lambda:GetFunction", name, aws)),
    }
}

fn environment(desired: &Desired) -> Environment {
    Environment::builder().set_variables(Some(desired.environment.clone().into_iter().collect())).build()
}

/// JSON logs (the service writes one JSON object per line on Lambda), the service's info lines,
/// and Lambda's own lines at INFO: its `platform.report` (duration, memory, init duration) is an
/// INFO event, which WARN would drop, and `cargo xtask logs` summarises it. The DEBUG ones
/// (`platform.start`, `platform.runtimeDone`) stay out.
fn logging() -> LoggingConfig {
    LoggingConfig::builder()
        .log_format(LogFormat::Json)
        .application_log_level(ApplicationLogLevel::Info)
        .system_log_level(SystemLogLevel::Info)
        .build()
}

/// What differs in the configuration (not the code).
/// One difference between the function's configuration and the desired one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConfigChange {
    Runtime,
    Handler,
    /// Passing a role needs iam:PassRole (the deployer policy's IAM part).
    Role,
    Memory(i32),
    Timeout(i32),
    Environment,
    Logging,
}

impl ConfigChange {
    fn describe(self) -> String {
        match self {
            ConfigChange::Runtime => "runtime".into(),
            ConfigChange::Handler => "handler".into(),
            ConfigChange::Role => "role".into(),
            ConfigChange::Memory(mb) => format!("memory {mb} MB"),
            ConfigChange::Timeout(s) => format!("timeout {s} s"),
            ConfigChange::Environment => "environment".into(),
            ConfigChange::Logging => "logging (JSON)".into(),
        }
    }
}

fn config_changes(current: &FunctionConfiguration, desired: &Desired, role_arn: &str) -> Vec<ConfigChange> {
    let mut changes = Vec::new();
    if current.runtime() != Some(&RUNTIME) {
        changes.push(ConfigChange::Runtime);
    }
    if current.handler() != Some(HANDLER) {
        changes.push(ConfigChange::Handler);
    }
    if current.role() != Some(role_arn) {
        changes.push(ConfigChange::Role);
    }
    if current.memory_size() != Some(desired.memory) {
        changes.push(ConfigChange::Memory(desired.memory));
    }
    if current.timeout() != Some(desired.timeout) {
        changes.push(ConfigChange::Timeout(desired.timeout));
    }
    let env = current.environment().and_then(|e| e.variables()).cloned().unwrap_or_default();
    if env.into_iter().collect::<std::collections::BTreeMap<_, _>>() != desired.environment {
        changes.push(ConfigChange::Environment);
    }
    // Compared only when the function reports one: AWS always does, the emulator (moto 5.2.5)
    // never does, and "absent" must not read as drift there (it would update on every deploy).
    if let Some(logging) = current.logging_config() {
        let want = self::logging();
        if logging.log_format() != want.log_format()
            || logging.application_log_level() != want.application_log_level()
            || logging.system_log_level() != want.system_log_level()
        {
            changes.push(ConfigChange::Logging);
        }
    }
    changes
}

pub async fn ensure_function(
    aws: &Aws,
    desired: &Desired,
    role_arn: &str,
    role_is_new: bool,
    dry_run: bool,
) -> anyhow::Result<Vec<Step>> {
    let name = &desired.names.function;
    let architecture = Architecture::from(desired.arch.lambda_name());
    let Some(existing) = current(aws, name).await? else {
        if !dry_run {
            create(aws, desired, role_arn, role_is_new, architecture).await?;
        }
        let concurrency = ensure_concurrency(aws, name, desired.reserved_concurrency, dry_run, None).await?;
        return Ok(vec![Step::new("function", name, Outcome::Create, concurrency.into_iter().collect())]);
    };
    let code_differs = existing.code_sha256() != Some(desired.code_sha256.as_str())
        || existing.architectures() != [architecture.clone()];
    let config = config_changes(&existing, desired, role_arn);
    let mut changes = Vec::new();
    if code_differs {
        changes.push("code".to_owned());
        if !dry_run {
            lambda(aws)
                .update_function_code()
                .function_name(name)
                .zip_file(Blob::new(desired.zip.clone()))
                .architectures(architecture)
                .send()
                .await
                .explain("lambda:UpdateFunctionCode", name, aws)?;
            wait_until_updated(aws, name).await?;
        }
    }
    if !config.is_empty() && !dry_run {
        lambda(aws)
            .update_function_configuration()
            .function_name(name)
            .runtime(RUNTIME)
            .handler(HANDLER)
            // Passing the role needs iam:PassRole (the deployer policy's IAM part): only when it
            // changed, so the base part alone can change memory, timeout or environment.
            .set_role(config.contains(&ConfigChange::Role).then(|| role_arn.to_owned()))
            .memory_size(desired.memory)
            .timeout(desired.timeout)
            .environment(environment(desired))
            .logging_config(logging())
            .send()
            .await
            .explain("lambda:UpdateFunctionConfiguration", name, aws)?;
        wait_until_updated(aws, name).await?;
    }
    changes.extend(config.into_iter().map(ConfigChange::describe));
    let reserved = lambda(aws)
        .get_function_concurrency()
        .function_name(name)
        .send()
        .await
        .explain("lambda:GetFunctionConcurrency", name, aws)?
        .reserved_concurrent_executions;
    changes.extend(ensure_concurrency(aws, name, desired.reserved_concurrency, dry_run, reserved).await?);
    Ok(vec![Step::new("function", name, Outcome::of(false, !changes.is_empty()), changes)])
}

/// Reserve `desired` concurrent executions (or none) when `current` differs; the change made.
async fn ensure_concurrency(
    aws: &Aws,
    name: &str,
    desired: Option<i32>,
    dry_run: bool,
    current: Option<i32>,
) -> anyhow::Result<Option<String>> {
    if desired == current {
        return Ok(None);
    }
    let change = match desired {
        Some(n) => format!("reserved concurrency {n}"),
        None => "no reserved concurrency".to_owned(),
    };
    if dry_run {
        return Ok(Some(change));
    }
    match desired {
        Some(n) => {
            let put =
                lambda(aws).put_function_concurrency().function_name(name).reserved_concurrent_executions(n);
            match put.send().await {
                Ok(_) => {}
                // The account must keep a minimum of unreserved executions (new accounts have
                // no room at all).
                Err(aws_sdk_lambda::error::SdkError::ServiceError(e))
                    if e.err().is_invalid_parameter_value_exception() =>
                {
                    anyhow::bail!(
                        "cannot reserve {n} concurrent executions for {name}: {}; pass a smaller --reserved-concurrency, \
                         or --reserved-concurrency none, or ask AWS for a higher concurrency quota",
                        e.err().meta().message().unwrap_or("the account's unreserved minimum would be crossed")
                    )
                }
                Err(e) => return Err(crate::aws::explain(e, "lambda:PutFunctionConcurrency", name, aws)),
            }
        }
        None => {
            lambda(aws).delete_function_concurrency().function_name(name).send().await.explain(
                "lambda:DeleteFunctionConcurrency",
                name,
                aws,
            )?;
        }
    }
    Ok(Some(change))
}

/// Create the function, retrying while a new role is not yet assumable by Lambda (IAM is
/// eventually consistent: this takes a few seconds after CreateRole).
async fn create(
    aws: &Aws,
    desired: &Desired,
    role_arn: &str,
    role_is_new: bool,
    architecture: Architecture,
) -> anyhow::Result<()> {
    let name = &desired.names.function;
    let started = Instant::now();
    loop {
        let result = lambda(aws)
            .create_function()
            .function_name(name)
            .runtime(RUNTIME)
            .handler(HANDLER)
            .role(role_arn)
            .architectures(architecture.clone())
            .memory_size(desired.memory)
            .timeout(desired.timeout)
            .environment(environment(desired))
            .logging_config(logging())
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(Blob::new(desired.zip.clone()))
                    .build(),
            )
            .tags("project", "recording-server")
            .tags("stage", &desired.names.stage)
            .send()
            .await;
        match result {
            Ok(_) => break,
            Err(SdkError::ServiceError(e))
                if role_is_new
                    && e.err().is_invalid_parameter_value_exception()
                    && started.elapsed() < Duration::from_secs(90) =>
            {
                eprintln!("waiting for the new role to propagate in IAM...");
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            Err(e) => return Err(crate::aws::explain(e, "lambda:CreateFunction", name, aws)),
        }
    }
    wait_until_updated(aws, name).await
}

/// Wait (the SDK's `FunctionUpdatedV2` waiter) until the function is Active and its last update
/// finished; a failed update is reported with Lambda's reason.
async fn wait_until_updated(aws: &Aws, name: &str) -> anyhow::Result<()> {
    use aws_sdk_lambda::client::Waiters;
    let spinner = crate::progress::Spinner::new("waiting for the function update to finish");
    let done = lambda(aws).wait_until_function_updated_v2().function_name(name).wait(WAIT).await;
    spinner.finish();
    if done.is_ok() {
        return Ok(());
    }
    let config = lambda(aws).get_function_configuration().function_name(name).send().await.explain(
        "lambda:GetFunctionConfiguration",
        name,
        aws,
    )?;
    if config.state() == Some(&State::Failed)
        || config.last_update_status() == Some(&LastUpdateStatus::Failed)
    {
        let reason =
            config.last_update_status_reason().or(config.state_reason()).unwrap_or("no reason given");
        bail!("the function {name} failed to update: {reason}");
    }
    bail!("the function {name} is still updating after {WAIT:?}: rerun deploy later")
}

fn cors() -> Cors {
    Cors::builder()
        .allow_origins("*")
        .allow_methods("*")
        .allow_headers("authorization")
        .allow_headers("content-type")
        .max_age(3600)
        .build()
}

fn cors_matches(current: Option<&Cors>) -> bool {
    let want = cors();
    current.is_some_and(|c| {
        let sorted = |v: &[String]| {
            let mut v: Vec<String> = v.iter().map(|s| s.to_ascii_lowercase()).collect();
            v.sort();
            v
        };
        sorted(c.allow_origins()) == sorted(want.allow_origins())
            && sorted(c.allow_methods()) == sorted(want.allow_methods())
            && sorted(c.allow_headers()) == sorted(want.allow_headers())
            && c.max_age() == want.max_age()
    })
}

/// The URL's config for `qualifier` (`None`: the unqualified URL, on `$LATEST`), if there is one.
async fn url_config(
    aws: &Aws,
    name: &str,
    qualifier: Option<&str>,
) -> anyhow::Result<Option<aws_sdk_lambda::operation::get_function_url_config::GetFunctionUrlConfigOutput>> {
    match lambda(aws)
        .get_function_url_config()
        .function_name(name)
        .set_qualifier(qualifier.map(str::to_owned))
        .send()
        .await
    {
        Ok(config) => Ok(Some(config)),
        Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => Ok(None),
        Err(e) => Err(crate::aws::explain(e, "lambda:GetFunctionUrlConfig", name, aws)),
    }
}

/// The public URL of `function`: the `live` alias's, or (a stage deployed before aliases) the
/// unqualified one.
pub async fn url(aws: &Aws, function: &str) -> anyhow::Result<Option<String>> {
    if let Some(config) = url_config(aws, function, Some(LIVE)).await? {
        return Ok(Some(config.function_url));
    }
    Ok(url_config(aws, function, None).await?.map(|c| c.function_url))
}

/// The resource-policy statements of a URL on `$LATEST`, as deploys before aliases added them.
const LEGACY_SIDS: [&str; 2] = ["FunctionURLAllowPublicAccess", "FunctionURLInvokeAllowPublicAccess"];
/// The statements of the URL on `live`: `lambda:InvokeFunctionUrl` (auth type NONE) and,
/// required since October 2025, `lambda:InvokeFunction` through the function URL only.
const LIVE_URL_SID: &str = "LiveURLAllowPublicAccess";
const LIVE_INVOKE_VIA_URL_SID: &str = "LiveURLInvokeAllowPublicAccess";

/// A stage whose URL served `$LATEST`: what the migration to `live` removes once the new URL
/// has answered.
#[derive(Debug, Clone)]
pub struct LegacyUrl {
    pub url: Option<String>,
    pub sids: Vec<String>,
}

/// The stage's URLs as found: the one on `live`, and the `$LATEST` URL of a stage deployed
/// before aliases, if it still has one.
pub struct UrlState {
    pub live: Option<aws_sdk_lambda::operation::get_function_url_config::GetFunctionUrlConfigOutput>,
    pub legacy: Option<LegacyUrl>,
}

/// Read the stage's URLs. AWS keeps a URL per qualifier; moto keeps one per function (it ignores
/// the qualifier), so the legacy statements are what marks a stage not yet migrated there.
pub async fn url_state(aws: &Aws, names: &Names) -> anyhow::Result<UrlState> {
    let name = &names.function;
    let sids: Vec<String> = policy(aws, name, None)
        .await?
        .statement
        .iter()
        .filter_map(|s| s.sid.clone())
        .filter(|sid| LEGACY_SIDS.contains(&sid.as_str()))
        .collect();
    if sids.is_empty() {
        if let Some(live) = url_config(aws, name, Some(LIVE)).await? {
            return Ok(UrlState { live: Some(live), legacy: None });
        }
    }
    let url = url_config(aws, name, None).await?.map(|c| c.function_url);
    let legacy = (url.is_some() || !sids.is_empty()).then_some(LegacyUrl { url, sids });
    Ok(UrlState { live: None, legacy })
}

/// The public URL on `live` (auth NONE, CORS) and its two resource-policy statements: `existing`
/// (from [`url_state`]) converged, or a new one (beside a `$LATEST` URL being migrated).
pub async fn ensure_url(
    aws: &Aws,
    names: &Names,
    existing: Option<aws_sdk_lambda::operation::get_function_url_config::GetFunctionUrlConfigOutput>,
    dry_run: bool,
    steps: &mut Vec<Step>,
) -> anyhow::Result<Option<String>> {
    let name = &names.function;
    let client = lambda(aws);
    let url = match existing {
        None if dry_run => {
            steps.push(Step::new("url", &format!("{name}:{LIVE}"), Outcome::Create, Vec::new()));
            None
        }
        None => {
            let created = client
                .create_function_url_config()
                .function_name(name)
                .qualifier(LIVE)
                .auth_type(FunctionUrlAuthType::None)
                .cors(cors())
                .send()
                .await
                .explain("lambda:CreateFunctionUrlConfig", &format!("{name}:{LIVE}"), aws)?;
            steps.push(Step::new("url", &format!("{name}:{LIVE}"), Outcome::Create, Vec::new()));
            Some(created.function_url)
        }
        Some(config) => {
            let mut changes = Vec::new();
            if config.auth_type != FunctionUrlAuthType::None {
                changes.push("auth type NONE".to_owned());
            }
            if !cors_matches(config.cors()) {
                changes.push("cors".to_owned());
            }
            if !changes.is_empty() && !dry_run {
                client
                    .update_function_url_config()
                    .function_name(name)
                    .qualifier(LIVE)
                    .auth_type(FunctionUrlAuthType::None)
                    .cors(cors())
                    .send()
                    .await
                    .explain("lambda:UpdateFunctionUrlConfig", &format!("{name}:{LIVE}"), aws)?;
            }
            steps.push(Step::new(
                "url",
                &format!("{name}:{LIVE}"),
                Outcome::of(false, !changes.is_empty()),
                changes,
            ));
            Some(config.function_url)
        }
    };
    steps.push(ensure_url_permissions(aws, names, dry_run).await?);
    Ok(url)
}

/// The function's resource policy (`qualifier`: an alias's own); empty when it has none.
async fn policy(aws: &Aws, name: &str, qualifier: Option<&str>) -> anyhow::Result<iam::PolicyDocument> {
    match lambda(aws)
        .get_policy()
        .function_name(name)
        .set_qualifier(qualifier.map(str::to_owned))
        .send()
        .await
    {
        Ok(output) => iam::PolicyDocument::parse(output.policy().unwrap_or("{}"))
            .context("the function's policy is not a policy document"),
        Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => {
            Ok(iam::PolicyDocument::default())
        }
        Err(e) => Err(crate::aws::explain(e, "lambda:GetPolicy", name, aws)),
    }
}

/// The two statements a public URL on `live` needs, on `live`'s own policy.
async fn ensure_url_permissions(aws: &Aws, names: &Names, dry_run: bool) -> anyhow::Result<Step> {
    let name = &names.function;
    let client = lambda(aws);
    let mut policy = policy(aws, name, Some(LIVE)).await?;
    // moto answers every qualifier with one shared policy: only `live`'s statements count.
    let qualified = format!(":{LIVE}");
    policy
        .statement
        .retain(|s| s.resource.as_ref().is_some_and(|r| r.iter().all(|r| r.ends_with(&qualified))));
    let present = policy.url_permissions();
    let mut changes = Vec::new();
    for (action, _) in present.iter().filter(|(_, granted)| !granted) {
        changes.push(format!("allow {action}"));
        if dry_run {
            continue;
        }
        let request = client.add_permission().function_name(name).qualifier(LIVE).principal("*");
        let (request, sid) = if *action == "lambda:InvokeFunctionUrl" {
            let request = request
                .statement_id(LIVE_URL_SID)
                .action("lambda:InvokeFunctionUrl")
                .function_url_auth_type(FunctionUrlAuthType::None);
            (request, LIVE_URL_SID)
        } else {
            let request = request
                .statement_id(LIVE_INVOKE_VIA_URL_SID)
                .action("lambda:InvokeFunction")
                .invoked_via_function_url(true);
            (request, LIVE_INVOKE_VIA_URL_SID)
        };
        match request.send().await {
            Ok(_) => {}
            Err(SdkError::ServiceError(e)) if e.err().is_resource_conflict_exception() => {
                bail!("the policy of {name}:{LIVE} has a statement {sid} that differs from what deploy adds: remove it (aws lambda remove-permission --qualifier {LIVE}) and rerun");
            }
            Err(e) => {
                return Err(crate::aws::explain(e, "lambda:AddPermission", &format!("{name}:{LIVE}"), aws))
            }
        }
    }
    let outcome = match changes.len() {
        0 => Outcome::Unchanged,
        n if n == present.len() => Outcome::Create,
        _ => Outcome::Update,
    };
    Ok(Step::new("policy", &format!("{name}:{LIVE}"), outcome, changes))
}

/// Retire a `$LATEST` URL once the `live` one has answered: its URL config and its statements.
pub async fn remove_legacy_url(aws: &Aws, names: &Names, legacy: &LegacyUrl) -> anyhow::Result<()> {
    let name = &names.function;
    let client = lambda(aws);
    if legacy.url.is_some() {
        match client.delete_function_url_config().function_name(name).send().await {
            Ok(_) => {}
            Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => {}
            Err(e) => return Err(crate::aws::explain(e, "lambda:DeleteFunctionUrlConfig", name, aws)),
        }
    }
    for sid in &legacy.sids {
        match client.remove_permission().function_name(name).statement_id(sid).send().await {
            Ok(_) => {}
            Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => {}
            Err(e) => return Err(crate::aws::explain(e, "lambda:RemovePermission", name, aws)),
        }
    }
    Ok(())
}

/// GET /health/ready on the public URL; on failure, print the function's recent log lines.
pub async fn smoke_test(aws: &Aws, names: &Names, url: &str) -> anyhow::Result<()> {
    let health = format!("{}{}", url.trim_end_matches('/'), super::release::READY_PATH);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let mut last = String::new();
    // A fresh URL can take a few seconds to answer.
    for _ in 0..10 {
        match http.get(&health).send().await.and_then(reqwest::Response::error_for_status) {
            Ok(response) => {
                let body = response.text().await.unwrap_or_default();
                println!("public   GET {health} -> {}", body.trim_end());
                return Ok(());
            }
            Err(e) => {
                let chain = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source());
                last = chain.map(ToString::to_string).collect::<Vec<_>>().join(": ");
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let logs = aws_sdk_cloudwatchlogs::Client::new(&aws.sdk);
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64
        - 15 * 60 * 1000;
    if let Ok(events) =
        logs.filter_log_events().log_group_name(names.log_group()).start_time(since).limit(50).send().await
    {
        eprintln!("recent log lines of {}:", names.log_group());
        for event in events.events() {
            eprintln!("  {}", event.message().unwrap_or_default().trim_end());
        }
    }
    bail!("the public URL failed its check: GET {health}: {last}")
}

/// The function's log group with a retention: created here (Lambda would create it at the first
/// run, keeping logs forever), its retention converged. Reads only when it is as wanted.
pub async fn ensure_log_group(aws: &Aws, names: &Names, days: i32, dry_run: bool) -> anyhow::Result<Step> {
    let logs = aws_sdk_cloudwatchlogs::Client::new(&aws.sdk);
    let group = names.log_group();
    let found = logs.describe_log_groups().log_group_name_prefix(&group).send().await.explain(
        "logs:DescribeLogGroups",
        &group,
        aws,
    )?;
    let existing = found.log_groups().iter().find(|g| g.log_group_name() == Some(group.as_str()));
    let retention = format!("retention {days} days");
    let (outcome, changes) = match existing {
        None => {
            if !dry_run {
                logs.create_log_group().log_group_name(&group).send().await.explain(
                    "logs:CreateLogGroup",
                    &group,
                    aws,
                )?;
            }
            (Outcome::Create, vec![retention])
        }
        Some(g) if g.retention_in_days() == Some(days) => {
            return Ok(Step::new("logs", &group, Outcome::Unchanged, Vec::new()))
        }
        Some(_) => (Outcome::Update, vec![retention]),
    };
    if !dry_run {
        logs.put_retention_policy().log_group_name(&group).retention_in_days(days).send().await.explain(
            "logs:PutRetentionPolicy",
            &group,
            aws,
        )?;
    }
    Ok(Step::new("logs", &group, outcome, changes))
}
