//! Releasing a version: publish what `$LATEST` holds, prove that exact version by invoking it,
//! and only then move the `live` alias (which the function URL serves) to it, keeping the old
//! one as `previous`. Shared by deploy and rollback. No state file: the aliases are the state.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_lambda::error::SdkError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{InvocationType, LogType};
use serde::Serialize;

use crate::aws::{Aws, ExplainExt};
use crate::names::Names;
use crate::Failure;

/// The alias the function URL serves.
pub const LIVE: &str = "live";
/// The alias naming what `live` served before the last move: rollback's default target.
pub const PREVIOUS: &str = "previous";
/// The route the smoke test invokes: it proves the tables and the bucket with the function's
/// own role (`/health` proves only that the binary starts).
pub const READY_PATH: &str = "/health/ready";

fn lambda(aws: &Aws) -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::new(&aws.sdk)
}

/// An alias as read: the version it names and the revision a guarded update must quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub version: String,
    pub revision: Option<String>,
}

/// `None` when the function has no alias `name`.
pub async fn alias(aws: &Aws, function: &str, name: &str) -> anyhow::Result<Option<Alias>> {
    match lambda(aws).get_alias().function_name(function).name(name).send().await {
        Ok(a) => Ok(Some(Alias { version: a.function_version.unwrap_or_default(), revision: a.revision_id })),
        Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => Ok(None),
        Err(e) => Err(crate::aws::explain(e, "lambda:GetAlias", &format!("{function}:{name}"), aws)),
    }
}

/// What makes two versions run differently (code, role, memory, timeout, environment,
/// architecture, logging), with the version's own number, revision and description.
#[derive(Debug, Clone)]
pub struct Release {
    pub version: String,
    pub revision: Option<String>,
    pub description: String,
    pub last_modified: Option<String>,
    code_sha256: Option<String>,
    role: Option<String>,
    memory: Option<i32>,
    timeout: Option<i32>,
    environment: Option<std::collections::HashMap<String, String>>,
    architectures: Vec<aws_sdk_lambda::types::Architecture>,
    logging: Option<aws_sdk_lambda::types::LoggingConfig>,
}

/// Read a [`Release`] out of either answer shape (GetFunctionConfiguration's own output, or a
/// `FunctionConfiguration` of ListVersionsByFunction): their accessors are the same.
macro_rules! release_of {
    ($c:expr) => {{
        let c = $c;
        Release {
            version: c.version().unwrap_or_default().to_owned(),
            revision: c.revision_id().map(str::to_owned),
            description: c.description().unwrap_or_default().to_owned(),
            last_modified: c.last_modified().map(str::to_owned),
            code_sha256: c.code_sha256().map(str::to_owned),
            role: c.role().map(str::to_owned),
            memory: c.memory_size(),
            timeout: c.timeout(),
            environment: c.environment().and_then(|e| e.variables()).cloned(),
            architectures: c.architectures().to_vec(),
            logging: c.logging_config().cloned(),
        }
    }};
}

impl Release {
    /// The release a GetFunctionConfiguration answer describes.
    pub fn of(
        configuration: &aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput,
    ) -> Release {
        release_of!(configuration)
    }

    /// Whether `self` and `other` run the same code the same way.
    pub fn same_as(&self, other: &Release) -> bool {
        self.code_sha256 == other.code_sha256
            && self.role == other.role
            && self.memory == other.memory
            && self.timeout == other.timeout
            && self.environment == other.environment
            && self.architectures == other.architectures
            && self.logging == other.logging
    }

    pub fn code_sha256(&self) -> Option<&str> {
        self.code_sha256.as_deref()
    }

    pub fn timeout(&self) -> Option<i32> {
        self.timeout
    }
}

/// One version's configuration (`qualifier`: a version, an alias or `$LATEST`); `None` when the
/// function or the qualifier does not exist.
pub async fn configuration(aws: &Aws, function: &str, qualifier: &str) -> anyhow::Result<Option<Release>> {
    let answer =
        lambda(aws).get_function_configuration().function_name(function).qualifier(qualifier).send().await;
    match answer {
        Ok(c) => Ok(Some(Release::of(&c))),
        Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => Ok(None),
        Err(e) => Err(crate::aws::explain(
            e,
            "lambda:GetFunctionConfiguration",
            &format!("{function}:{qualifier}"),
            aws,
        )),
    }
}

/// The version description: the commit (`-dirty` with uncommitted changes), how the binary was
/// built, and when. Lambda keeps at most 256 characters.
pub fn description(sh: &xshell::Shell, build: &str) -> String {
    let commit = xshell::cmd!(sh, "git rev-parse --short=12 HEAD")
        .quiet()
        .ignore_stderr()
        .read()
        .unwrap_or_else(|_| "unknown".into());
    let dirty = xshell::cmd!(sh, "git status --porcelain --untracked-files=no")
        .quiet()
        .ignore_stderr()
        .read()
        .map(|s| !s.trim().is_empty())
        .unwrap_or(false);
    let time = crate::aws::rfc3339(std::time::SystemTime::now());
    let text = format!("commit {commit}{}, {build}, {time}", if dirty { "-dirty" } else { "" });
    text.chars().take(256).collect()
}

/// Publish `$LATEST` as a version, only if it is still the code and revision this deploy left
/// there (another deploy's update in between makes Lambda refuse). Lambda answers an unchanged
/// `$LATEST` with the version already published from it.
pub async fn publish(
    aws: &Aws,
    function: &str,
    latest: &Release,
    description: &str,
) -> anyhow::Result<String> {
    let published = lambda(aws)
        .publish_version()
        .function_name(function)
        .set_code_sha256(latest.code_sha256.clone())
        .set_revision_id(latest.revision.clone())
        .description(description)
        .send()
        .await;
    let version = match published {
        Ok(v) => v.version.context("lambda:PublishVersion answered without a version number")?,
        Err(SdkError::ServiceError(e)) if e.err().is_precondition_failed_exception() => bail!(
            "another deploy changed {function}'s $LATEST while this one was publishing it: nothing was moved; rerun deploy"
        ),
        Err(e) => return Err(crate::aws::explain(e, "lambda:PublishVersion", function, aws)),
    };
    // A new version is Pending for a moment on AWS, and an invocation of it fails until Active.
    use aws_sdk_lambda::client::Waiters;
    let spinner = crate::progress::Spinner::new(&format!("waiting for version {version} to become active"));
    let active = lambda(aws)
        .wait_until_published_version_active()
        .function_name(function)
        .qualifier(&version)
        .wait(Duration::from_secs(300))
        .await;
    spinner.finish();
    if let Err(e) = active {
        bail!(
            "version {version} of {function} did not become active: {}; `{LIVE}` was not moved, rerun deploy",
            aws_sdk_lambda::error::DisplayErrorContext(&e)
        );
    }
    Ok(version)
}

/// What the smoke invocation answered.
#[derive(Debug, Serialize)]
pub struct Smoke {
    pub version: String,
    /// The route's HTTP status, when the function answered one.
    pub status: Option<u16>,
    pub body: String,
    /// Lambda's `FunctionError` (`Unhandled`: the runtime crashed or exited).
    pub function_error: Option<String>,
    /// The end of the invocation's log (Lambda keeps the last 4 KB).
    pub log_tail: String,
    /// Set when the endpoint is an emulator that cannot run code: nothing was proven.
    pub skipped: Option<String>,
    pub millis: u128,
}

impl Smoke {
    pub fn passed(&self) -> bool {
        self.skipped.is_some() || (self.function_error.is_none() && self.status == Some(200))
    }
}

/// A function-URL event (API Gateway v2 payload) for `GET path`, as Lambda builds it.
fn url_event(function: &str, path: &str) -> serde_json::Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let domain = format!("smoke-test.lambda-url.{function}.on.aws");
    serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": { "host": domain, "user-agent": "recording-server-xtask-smoke-test" },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "smoke-test",
            "domainName": domain,
            "domainPrefix": "smoke-test",
            "http": {
                "method": "GET", "path": path, "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1", "userAgent": "recording-server-xtask-smoke-test"
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2000:00:00:00 +0000",
            "timeEpoch": now.as_millis() as u64,
        },
        "isBase64Encoded": false,
    })
}

/// Invoke `version` itself (never an alias) with a `GET /health/ready` event and its log tail,
/// within the function's timeout.
pub async fn smoke(aws: &Aws, function: &str, version: &str, timeout_s: i32) -> anyhow::Result<Smoke> {
    let started = Instant::now();
    let spinner = crate::progress::Spinner::new(&format!("smoke-testing version {version} ({READY_PATH})"));
    let budget = Duration::from_secs(timeout_s.max(1) as u64 + 10);
    let answer = lambda(aws)
        .invoke()
        .function_name(function)
        .qualifier(version)
        .invocation_type(InvocationType::RequestResponse)
        .log_type(LogType::Tail)
        .payload(Blob::new(serde_json::to_vec(&url_event(function, READY_PATH))?))
        .customize()
        .config_override(
            aws_sdk_lambda::config::Builder::default().timeout_config(crate::aws::timeouts(budget)),
        )
        .send()
        .await;
    spinner.finish();
    let answer = match answer {
        Err(SdkError::TimeoutError(_)) => {
            return Err(Failure::new(
                1,
                anyhow::anyhow!(
                    "version {version} did not answer its smoke test ({READY_PATH}) within {} s (the function's timeout and 10 s): `{LIVE}` still serves what it served; see `cargo xtask logs`",
                    budget.as_secs()
                ),
            )
            .into())
        }
        other => other.explain("lambda:InvokeFunction", &format!("{function}:{version}"), aws)?,
    };
    let payload = answer.payload.map(|p| p.into_inner()).unwrap_or_default();
    let text = String::from_utf8_lossy(&payload).into_owned();
    let log_tail = answer
        .log_result
        .and_then(|tail| aws_smithy_types::base64::decode(tail).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let mut smoke = Smoke {
        version: version.to_owned(),
        status: None,
        body: text.clone(),
        function_error: answer.function_error,
        log_tail,
        skipped: None,
        millis: started.elapsed().as_millis(),
    };
    // moto answers every invocation this way when it has no Docker to run the code in.
    if let Some(endpoint) = &aws.endpoint {
        if smoke.function_error.is_some() && text.contains("error running docker") {
            smoke.skipped = Some(format!("{endpoint} is an emulator that cannot run Lambda code"));
            return Ok(smoke);
        }
    }
    if smoke.function_error.is_none() {
        let response: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        smoke.status = response["statusCode"].as_u64().and_then(|s| u16::try_from(s).ok());
        smoke.body = match response["body"].as_str() {
            Some(body) if response["isBase64Encoded"] == true => aws_smithy_types::base64::decode(body)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|_| body.to_owned()),
            Some(body) => body.to_owned(),
            None => text,
        };
    }
    Ok(smoke)
}

/// Print what a smoke test answered; on failure, the log tail and what `check-iam explain`
/// makes of any denial in it, then fail with exit 1.
pub fn report(smoke: &Smoke, names: &Names, json: bool) -> anyhow::Result<()> {
    if let Some(why) = &smoke.skipped {
        eprintln!("smoke    version {} not invoked: {why}", smoke.version);
        return Ok(());
    }
    let status = match (&smoke.function_error, smoke.status) {
        (Some(error), _) => format!("function error {error}"),
        (None, Some(status)) => format!("{status}"),
        (None, None) => "no HTTP answer".to_owned(),
    };
    let line = format!(
        "smoke    version {} GET {READY_PATH} -> {status} {} ({} ms)",
        smoke.version,
        smoke.body.trim_end(),
        smoke.millis
    );
    if smoke.passed() {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
        return Ok(());
    }
    eprintln!("{line}");
    if !smoke.log_tail.trim().is_empty() {
        eprintln!("log tail of version {}:", smoke.version);
        for l in smoke.log_tail.lines() {
            eprintln!("  {l}");
        }
    }
    for denied in crate::check_iam::explain::parse(&smoke.log_tail) {
        let explained = crate::check_iam::explain::explain(denied, names);
        eprintln!(
            "denied   {} on {} (cargo xtask check-iam explain reads this line)\n  fix: {}",
            explained.denied.action,
            explained.denied.resource.as_deref().unwrap_or("(no resource named)"),
            explained.fix
        );
    }
    Err(Failure::new(
        1,
        anyhow::anyhow!(
            "version {} failed its smoke test: `{LIVE}` still serves what it served; the version stays published, unaliased, and is pruned later",
            smoke.version
        ),
    )
    .into())
}

/// Point `previous` at what `live` served and `live` at `version`, each update guarded by the
/// revision read before, so a deploy that raced this one is never overwritten.
pub async fn promote(
    aws: &Aws,
    function: &str,
    version: &str,
    live: Option<&Alias>,
    previous: Option<&Alias>,
) -> anyhow::Result<()> {
    let client = lambda(aws);
    let Some(live) = live else {
        let created =
            client.create_alias().function_name(function).name(LIVE).function_version(version).send().await;
        if raced(created, "lambda:CreateAlias", &format!("{function}:{LIVE}"), aws)? {
            let now = alias(aws, function, LIVE).await?.map(|a| a.version);
            return Err(conflict(function, version, "(none)", now));
        }
        return Ok(());
    };
    if live.version == version {
        return Ok(());
    }
    // Read again: moto does not check revisions, and a raced deploy is best caught early.
    let now = alias(aws, function, LIVE).await?;
    if now.as_ref().map(|a| &a.version) != Some(&live.version) {
        return Err(conflict(function, version, &live.version, now.map(|a| a.version)));
    }
    let previous_name = format!("{function}:{PREVIOUS}");
    let lost = match previous {
        Some(p) => {
            let moved = client
                .update_alias()
                .function_name(function)
                .name(PREVIOUS)
                .function_version(&live.version)
                .set_revision_id(p.revision.clone())
                .send()
                .await;
            raced(moved, "lambda:UpdateAlias", &previous_name, aws)?
        }
        None => {
            let created = client
                .create_alias()
                .function_name(function)
                .name(PREVIOUS)
                .function_version(&live.version)
                .send()
                .await;
            raced(created, "lambda:CreateAlias", &previous_name, aws)?
        }
    };
    let lost = lost || {
        let moved = client
            .update_alias()
            .function_name(function)
            .name(LIVE)
            .function_version(version)
            .set_revision_id(live.revision.clone())
            .send()
            .await;
        raced(moved, "lambda:UpdateAlias", &format!("{function}:{LIVE}"), aws)?
    };
    if lost {
        let now = alias(aws, function, LIVE).await?.map(|a| a.version);
        return Err(conflict(function, version, &live.version, now));
    }
    Ok(())
}

/// Whether a guarded alias write lost a race (its revision was stale, or the alias appeared
/// meanwhile); any other failure is an error.
fn raced<T, E>(
    result: Result<T, SdkError<E, crate::aws::HttpResponse>>,
    action: &str,
    resource: &str,
    aws: &Aws,
) -> anyhow::Result<bool>
where
    E: aws_sdk_lambda::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(false),
        Err(SdkError::ServiceError(e))
            if matches!(
                e.err().code(),
                Some("PreconditionFailedException" | "ResourceConflictException" | "ConflictException")
            ) =>
        {
            Ok(true)
        }
        Err(e) => Err(crate::aws::explain(e, action, resource, aws)),
    }
}

fn conflict(function: &str, ours: &str, read: &str, now: Option<String>) -> anyhow::Error {
    let now = now.unwrap_or_else(|| "(none)".into());
    Failure::new(
        1,
        anyhow::anyhow!(
            "another deploy moved {function}'s `{LIVE}` (from version {read} to {now}) while this one proved version {ours}: \
             `{LIVE}` stays at {now}; check `cargo xtask status`, then rerun deploy or `cargo xtask rollback --to {ours}`"
        ),
    )
    .into()
}

/// Every published version (not `$LATEST`), oldest first.
pub async fn versions(aws: &Aws, function: &str) -> anyhow::Result<Vec<Release>> {
    let mut all = Vec::new();
    let mut pages = lambda(aws).list_versions_by_function().function_name(function).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.explain("lambda:ListVersionsByFunction", function, aws)?;
        all.extend(page.versions().iter().filter(|v| v.version() != Some("$LATEST")).map(|v| release_of!(v)));
    }
    all.sort_by_key(|v| v.version.parse::<u64>().unwrap_or(0));
    Ok(all)
}

/// Which versions prune deletes: beyond the newest `keep`, never one an alias names.
pub fn to_prune(versions: &[String], aliased: &[String], keep: usize) -> Vec<String> {
    let unaliased: Vec<&String> = versions.iter().filter(|v| !aliased.contains(v)).collect();
    let excess = unaliased.len().saturating_sub(keep);
    unaliased.into_iter().take(excess).cloned().collect()
}

/// Delete the versions no alias names beyond the newest `keep`; the deleted versions.
pub async fn prune(aws: &Aws, function: &str, keep: usize) -> anyhow::Result<Vec<String>> {
    let versions: Vec<String> = versions(aws, function).await?.into_iter().map(|v| v.version).collect();
    let mut aliased = Vec::new();
    for name in [LIVE, PREVIOUS] {
        if let Some(a) = alias(aws, function, name).await? {
            aliased.push(a.version);
        }
    }
    let doomed = to_prune(&versions, &aliased, keep);
    for version in &doomed {
        lambda(aws).delete_function().function_name(function).qualifier(version).send().await.explain(
            "lambda:DeleteFunction",
            &format!("{function}:{version}"),
            aws,
        )?;
    }
    Ok(doomed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn prune_keeps_the_aliased_and_the_newest_n() {
        let versions = strings(&["1", "2", "3", "4", "5", "6", "7", "8"]);
        // live 8, previous 2: of the six others the newest three stay.
        assert_eq!(to_prune(&versions, &strings(&["8", "2"]), 3), strings(&["1", "3", "4"]));
        assert_eq!(to_prune(&versions, &strings(&["8"]), 10), Vec::<String>::new());
        assert_eq!(to_prune(&versions, &strings(&["1"]), 0), strings(&["2", "3", "4", "5", "6", "7", "8"]));
    }

    #[test]
    fn the_smoke_event_is_a_function_url_get() {
        let event = url_event("recording-server-dev", READY_PATH);
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["rawPath"], "/health/ready");
        assert_eq!(event["requestContext"]["http"]["method"], "GET");
    }
}
