//! The AWS SDK config, built once per run from the common flags, and the translation of SDK
//! errors into messages that say what to do.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context};
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use iam::ErrorReply;

use crate::catalogue::Task;
use crate::flags::AwsArgs;

/// Exit code of a credentials or identity failure, as check-iam has always used it.
pub const CREDENTIALS: u8 = 3;

/// Whether `profile` is defined in the shared config or credentials file (at `AWS_CONFIG_FILE`
/// and `AWS_SHARED_CREDENTIALS_FILE`, or under `~/.aws/`).
fn profile_exists(profile: &str) -> bool {
    let home = std::env::var("HOME").unwrap_or_default();
    let file = |variable: &str, default: &str| {
        std::env::var(variable).unwrap_or_else(|_| format!("{home}/.aws/{default}"))
    };
    let sections = |path: String| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().strip_prefix('[')?.strip_suffix(']').map(|s| s.trim().to_owned()))
            .collect()
    };
    let config = sections(file("AWS_CONFIG_FILE", "config"));
    let credentials = sections(file("AWS_SHARED_CREDENTIALS_FILE", "credentials"));
    let in_config =
        config.iter().any(|s| s == &format!("profile {profile}") || (profile == "default" && s == "default"));
    in_config || credentials.iter().any(|s| s == profile)
}

/// The user-agent app name of a task's calls is this followed by the task's name.
pub const XTASK_APP_PREFIX: &str = "recording-server-xtask-";

/// One loaded SDK config and the endpoint override it was built with.
#[derive(Clone, Debug)]
pub struct Aws {
    pub sdk: SdkConfig,
    pub endpoint: Option<String>,
}

/// The default bound of one AWS call of the tooling (`--aws-timeout`).
pub const DEFAULT_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Connect, attempt and operation timeouts for every client: a call to an endpoint that accepts
/// and never answers fails after `call` instead of hanging the task.
pub fn timeouts(call: std::time::Duration) -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(call.min(std::time::Duration::from_secs(5)))
        .operation_attempt_timeout(call)
        .operation_timeout(call)
        .build()
}

impl AwsArgs {
    /// Load the SDK config once; every client of the run is built from it. Its calls carry
    /// `app/recording-server-xtask-<task>` in their user agent (CloudTrail shows it; the tests'
    /// coverage check attributes each call to the task that made it by it).
    /// Every task's config: `load_config` and then usable credentials, or one line and exit 3,
    /// as check-iam reports them.
    pub async fn load(&self, task: Task) -> anyhow::Result<Aws> {
        use aws_sdk_sts::config::ProvideCredentials;
        let aws = self.load_config(task).await?;
        let credentials =
            aws.sdk.credentials_provider().context("no AWS credentials provider is configured")?;
        if let Err(e) = credentials.provide_credentials().await {
            return Err(crate::Failure::new(
                CREDENTIALS,
                anyhow::anyhow!(
                    "no usable AWS credentials ({e}): set AWS_PROFILE (run `aws sso login` for SSO profiles) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                ),
            )
            .into());
        }
        Ok(aws)
    }

    /// The SDK config without asking for credentials (printing a policy needs none). A profile
    /// that does not exist is named as such (exit 3), not reported as a missing region.
    pub async fn load_config(&self, task: Task) -> anyhow::Result<Aws> {
        let profile =
            self.profile.clone().or_else(|| std::env::var("AWS_PROFILE").ok()).filter(|p| !p.is_empty());
        if let Some(profile) = &profile {
            if !profile_exists(profile) {
                return Err(crate::Failure::new(
                    CREDENTIALS,
                    anyhow::anyhow!(
                        "AWS profile {profile} does not exist in the AWS config or credentials file: check its name (`aws configure list-profiles`)"
                    ),
                )
                .into());
            }
        }
        let app_name = aws_config::AppName::new(format!("{}{}", XTASK_APP_PREFIX, task.name()))
            .expect("task names are valid app names");
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .app_name(app_name)
            .timeout_config(timeouts(self.aws_timeout));
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(endpoint) = &self.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk = loader.load().await;
        if sdk.region().is_none() {
            bail!(
                "no AWS region configured: pass --region, set AWS_REGION, or set region in your AWS profile"
            );
        }
        Ok(Aws { sdk, endpoint: self.endpoint_url.clone() })
    }
}

impl Aws {
    pub fn region(&self) -> String {
        self.sdk.region().map(ToString::to_string).unwrap_or_default()
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    /// S3 addressed by path when an endpoint override is set: emulators have no bucket DNS names.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let config =
            aws_sdk_s3::config::Builder::from(&self.sdk).force_path_style(self.endpoint.is_some()).build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Where requests go, for error messages.
    pub fn target(&self) -> String {
        match &self.endpoint {
            Some(e) => e.clone(),
            None => format!("AWS in {}", self.region()),
        }
    }
}

/// The raw response type shared by every SDK crate.
pub type HttpResponse = aws_sdk_dynamodb::config::http::HttpResponse;

/// Print the SDK's full error context (`--verbose` or `RUST_LOG=debug`); off by default, so a
/// failed call is one line and a hint.
static VERBOSE: AtomicBool = AtomicBool::new(false);

pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

/// What an SDK error says, read once: the service's code and message (from the SDK, or from an
/// XML body it could not parse), the HTTP status and the request id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorInfo {
    /// What AWS answered (empty when it never answered).
    pub reply: ErrorReply,
    /// Set when the request never got an answer (connection refused, timeout).
    pub transport: Option<String>,
}

impl ErrorInfo {
    pub fn of<E>(err: &SdkError<E, HttpResponse>) -> ErrorInfo
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let SdkError::ServiceError(e) = err else {
            let transport = match err {
                SdkError::TimeoutError(_) => "timed out".to_owned(),
                other => source_chain(other),
            };
            return ErrorInfo { transport: Some(transport), ..ErrorInfo::default() };
        };
        let raw = e.raw();
        let body = raw.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
        let reply =
            ErrorReply::read(raw.status().as_u16(), e.err().code(), e.err().message(), &body, |name| {
                raw.headers().get(name).map(str::to_owned)
            });
        ErrorInfo { reply, transport: None }
    }

    /// An access denial, as the service reads one too ([`ErrorReply::is_access_denied`]).
    pub fn is_access_denied(&self) -> bool {
        self.reply.is_access_denied()
    }

    /// The code (or HTTP status), or the transport failure: for tables of results.
    pub fn short(&self) -> String {
        match (&self.transport, &self.reply.code) {
            (Some(transport), _) => transport.clone(),
            (None, Some(code)) => format!("{code} (HTTP {})", self.reply.status.unwrap_or_default()),
            (None, None) => format!("HTTP {}", self.reply.status.unwrap_or_default()),
        }
    }

    /// `<code>: <message> (request id …)`, or the transport failure.
    pub fn line(&self) -> String {
        if let Some(transport) = &self.transport {
            return transport.clone();
        }
        let mut line = match (&self.reply.code, &self.reply.message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.clone(),
            (None, Some(message)) => format!("HTTP {}: {message}", self.reply.status.unwrap_or_default()),
            (None, None) => format!("HTTP {} with no error code", self.reply.status.unwrap_or_default()),
        };
        if let Some(id) = &self.reply.request_id {
            line.push_str(&format!(" (request id {id})"));
        }
        line
    }
}

/// A transport error's causes on one line, without the SDK's debug dump.
fn source_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// Turn an SDK error into one line naming the failed `action` on `resource` and what AWS said,
/// then a one-line hint. The SDK's full context follows only with `--verbose`/`RUST_LOG=debug`.
pub fn explain<E>(err: SdkError<E, HttpResponse>, action: &str, resource: &str, aws: &Aws) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let info = ErrorInfo::of(&err);
    let hint = hint(&info, action, aws);
    let mut text = format!(
        "{action} on {resource}: {}
  hint: {hint}",
        info.line()
    );
    if VERBOSE.load(Ordering::Relaxed) {
        text.push_str(&format!(
            "
  detail: {}",
            DisplayErrorContext(&err)
        ));
    }
    anyhow::anyhow!(text)
}

/// The next step for a failed call.
fn hint(info: &ErrorInfo, action: &str, aws: &Aws) -> String {
    if info.transport.as_deref() == Some("timed out") {
        let bound =
            aws.sdk.timeout_config().and_then(|t| t.operation_timeout()).unwrap_or(DEFAULT_CALL_TIMEOUT);
        return format!(
            "{} did not answer {action} within {} s: check the endpoint (an emulator that hangs? a proxy?) and your network, or raise --aws-timeout",
            aws.target(),
            bound.as_secs()
        );
    }
    if info.transport.is_some() {
        return format!(
            "could not reach {}: check the endpoint (is the emulator running? try `cargo xtask local`) and your network",
            aws.target()
        );
    }
    if info.is_access_denied() {
        return format!(
            "you may not call {action}: run `cargo xtask check-iam` for the missing permissions and the statement that grants them"
        );
    }
    let credentials =
        "check AWS_PROFILE (run `aws sso login` for SSO profiles) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY";
    match info.reply.code.as_deref().unwrap_or_default() {
        "ExpiredToken" | "ExpiredTokenException" => format!("your session expired: {credentials}"),
        "InvalidClientTokenId" | "InvalidAccessKeyId" | "UnrecognizedClientException" => {
            format!("AWS does not know this access key: {credentials}")
        }
        "SignatureDoesNotMatch" | "InvalidSignatureException" => {
            format!("the secret key is wrong or this machine's clock is off: {credentials}")
        }
        "UnknownOperationException" | "InvalidAction" | "NotImplemented" => {
            format!("{} does not implement {action}: use AWS or an emulator that does", aws.target())
        }
        "ThrottlingException" | "Throttling" | "TooManyRequestsException" | "SlowDown" => {
            "AWS is throttling these calls: wait a minute and rerun".to_owned()
        }
        _ if info.reply.status.is_some_and(|s| s >= 500) => {
            format!("{} failed on its side: rerun; if it persists, check the service's health", aws.target())
        }
        _ => "rerun with --verbose for the full error".to_owned(),
    }
}

pub use iam::xml_tag;

/// `explain` for call sites that build their own context.
pub trait ExplainExt<T> {
    fn explain(self, action: &str, resource: &str, aws: &Aws) -> anyhow::Result<T>;
}

impl<T, E> ExplainExt<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn explain(self, action: &str, resource: &str, aws: &Aws) -> anyhow::Result<T> {
        self.map_err(|e| explain(e, action, resource, aws))
    }
}

/// Read a required value from an SDK response.
pub fn required<T>(value: Option<T>, what: &str) -> anyhow::Result<T> {
    value.with_context(|| {
        format!("the AWS response had no {what}: is the endpoint really AWS or a compatible emulator?")
    })
}

impl Aws {
    /// A config for a local emulator: fixed region and dummy credentials, so no AWS profile,
    /// SSO session or instance metadata is consulted.
    pub async fn emulator(endpoint: &str) -> Aws {
        let credentials =
            aws_sdk_dynamodb::config::Credentials::new("local", "local", None, None, "emulator");
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(EMULATOR_REGION))
            .credentials_provider(credentials)
            .endpoint_url(endpoint)
            .timeout_config(timeouts(DEFAULT_CALL_TIMEOUT))
            .load()
            .await;
        Aws { sdk, endpoint: Some(endpoint.to_owned()) }
    }
}

/// The region every emulator run uses.
pub const EMULATOR_REGION: &str = "us-east-1";

/// Point a child process (the service, the tests) at an emulator, and never let it fall back to
/// a developer's real profile, SSO session or instance metadata.
pub fn with_emulator_env<'a>(cmd: xshell::Cmd<'a>, endpoint: &str) -> xshell::Cmd<'a> {
    cmd.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", EMULATOR_REGION)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
}

/// A point in time as RFC 3339, for reports.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    aws_smithy_types::DateTime::from(t)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_else(|_| format!("{t:?}"))
}

/// The account the credentials belong to.
pub async fn account(aws: &Aws) -> anyhow::Result<String> {
    let caller = aws_sdk_sts::Client::new(&aws.sdk).get_caller_identity().send().await.explain(
        "sts:GetCallerIdentity",
        "your identity",
        aws,
    )?;
    required(caller.account, "account id")
}
