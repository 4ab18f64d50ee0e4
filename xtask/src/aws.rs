//! The AWS SDK config, built once per run from the common flags, and the translation of SDK
//! errors into messages that say what to do.

use anyhow::{bail, Context};
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::flags::AwsArgs;

/// One loaded SDK config and the endpoint override it was built with.
#[derive(Clone, Debug)]
pub struct Aws {
    pub sdk: SdkConfig,
    pub endpoint: Option<String>,
}

impl AwsArgs {
    /// Load the SDK config once; every client of the run is built from it.
    pub async fn load(&self) -> anyhow::Result<Aws> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
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

/// Whether a service error is an access denial. Real DynamoDB answers `AccessDeniedException` as
/// JSON (HTTP 400); moto answers HTTP 403 with an XML body the SDK cannot read a code from.
pub fn is_access_denied<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::ServiceError(e) => {
            matches!(e.err().code(), Some("AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation"))
                || e.raw().status().as_u16() == 403
        }
        _ => false,
    }
}

/// Turn an SDK error into a message naming the failed `action` on `resource` and the next step.
pub fn explain<E>(err: SdkError<E, HttpResponse>, action: &str, resource: &str, aws: &Aws) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = DisplayErrorContext(&err).to_string();
    if is_access_denied(&err) {
        return anyhow::anyhow!(
            "access denied: {action} on {resource}; run `cargo xtask check-iam` to see which permissions are missing\n  ({detail})"
        );
    }
    let lower = detail.to_lowercase();
    if lower.contains("credentials")
        && (lower.contains("no credentials")
            || lower.contains("credentials provider")
            || lower.contains("failed to load"))
    {
        return anyhow::anyhow!(
            "no usable AWS credentials for {action}: set AWS_PROFILE (after `aws sso login` for SSO profiles) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY\n  ({detail})"
        );
    }
    match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => anyhow::anyhow!(
            "could not reach {} for {action}: check the endpoint (is the emulator running? try `cargo xtask local`) and your network\n  ({detail})",
            aws.target()
        ),
        _ => anyhow::anyhow!("{action} on {resource} failed: {detail}"),
    }
}

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

/// A one-line account of an SDK error: the service's code and message, or the HTTP status and
/// the `<Message>` of an XML body the SDK could not parse, or the transport failure.
pub fn brief<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err {
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            match (e.err().code(), e.err().message()) {
                (Some(code), Some(message)) => format!("{code}: {message} (HTTP {status})"),
                (Some(code), None) => format!("{code} (HTTP {status})"),
                _ => {
                    let body = e.raw().body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
                    match crate::check_iam::xml_message(&body) {
                        Some(message) => format!("HTTP {status}: {message}"),
                        None => format!("HTTP {status} with no error code"),
                    }
                }
            }
        }
        other => DisplayErrorContext(other).to_string(),
    }
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
