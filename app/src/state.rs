//! Application state: built once per cold start, cloned cheaply into every request.

use std::time::Duration;

use crate::config::Config;
use crate::schema::{RECORD_TABLE, USER_TABLE};
use crate::storage::{ObjectStore, RecordStore, UserStore};

/// The stores (each a client paired with its resource) and the request-time settings.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Issued keys and used ID tokens.
    pub users: UserStore,
    /// Recording rows.
    pub records: RecordStore,
    /// The audio objects.
    pub objects: ObjectStore,
    /// Per-user quotas.
    pub quotas: crate::storage::QuotaStore,
    /// ID-token verification.
    pub oidc: crate::oidc::Verifier,
    /// What handlers read from the configuration.
    pub settings: Settings,
}

/// The parts of [`Config`] handlers use.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Largest direct upload body.
    pub max_upload_bytes: usize,
    /// Largest presigned upload.
    pub max_large_upload_bytes: u64,
    /// Lifetime of a presigned upload URL.
    pub upload_url_ttl: Duration,
    /// Whether the seed's unverified login is on.
    pub allow_unverified_login: bool,
    /// Lifetime of an issued key.
    pub key_ttl: Duration,
    /// Lifetime of a presigned download URL.
    pub download_url_ttl: Duration,
    /// Print an EMF metrics line per request.
    pub metrics: bool,
    /// Live keys one user may hold.
    pub max_keys_per_user: usize,
}

/// The SDK config every client is built from: the default chain (`AWS_ENDPOINT_URL` and friends
/// included) with the service's time budget and retry policy, so a stalled or failing backend
/// costs a bounded time.
///
/// When every endpoint is plain HTTP (`plain_http`: the emulators), the HTTP client trusts no
/// certificate authority: the SDK's default client loads and parses the system's CA store
/// during init (about 3 ms of CPU here, most of a local start), and no TLS connection is made.
pub async fn sdk_config(budget: &crate::config::AwsBudget, plain_http: bool) -> aws_config::SdkConfig {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    let timeouts = TimeoutConfig::builder()
        .operation_timeout(budget.operation_timeout)
        .operation_attempt_timeout(budget.attempt_timeout)
        .connect_timeout(budget.connect_timeout)
        .build();
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        // A retry waits a random 0–50 ms, doubling with each attempt: the SDK's default (0–1 s)
        // made one throttled call the request's whole latency (README, RECORD_AWS_MAX_ATTEMPTS).
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(budget.max_attempts)
                .with_initial_backoff(std::time::Duration::from_millis(50)),
        );
    if !plain_http {
        return loader.load().await;
    }
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider, TlsContext, TrustStore};
    match TlsContext::builder().with_trust_store(TrustStore::empty()).build() {
        Ok(tls) => {
            let client = aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
                .tls_context(tls)
                .build_https();
            loader.http_client(client).load().await
        }
        // Cannot happen with an empty store; the SDK's own client is always right.
        Err(_) => loader.load().await,
    }
}

/// The name every AWS call of the service carries in its user agent (`app/recording-server`):
/// CloudTrail shows it, and the tests' coverage check tells the service's calls from the
/// tooling's by it.
pub const APP_NAME: &str = "recording-server";

// A constant that AppName accepts (letters and '-'), checked by every test that builds a state.
#[allow(clippy::expect_used)]
fn app_name() -> aws_config::AppName {
    aws_config::AppName::new(APP_NAME).expect("a constant, valid app name")
}

impl AppState {
    /// Open the DynamoDB and S3 connections with one cheap call each, concurrently, giving up
    /// after `bound`. Their errors are ignored (logged at debug): a failed warm-up only means the
    /// first request opens its connections itself.
    pub async fn warm_up(&self, bound: Duration) {
        let calls = async { tokio::join!(self.users.warm_up(), self.objects.warm_up()) };
        match tokio::time::timeout(bound, calls).await {
            Ok((users, objects)) => {
                for result in [users, objects] {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "warm-up call failed");
                    }
                }
            }
            Err(_) => tracing::debug!(bound_ms = bound.as_millis() as u64, "warm-up gave up"),
        }
    }

    /// Create the AWS clients from one shared SDK config.
    pub fn new(sdk: &aws_config::SdkConfig, config: &Config) -> Self {
        Self::with_clients(
            aws_sdk_dynamodb::config::Builder::from(sdk),
            aws_sdk_s3::config::Builder::from(sdk).force_path_style(config.s3_path_style),
            config,
        )
    }

    /// Create the AWS clients from client configs derived from the shared SDK config (tests
    /// point them at a faulty backend this way).
    pub fn with_clients(
        dynamodb: aws_sdk_dynamodb::config::Builder,
        s3: aws_sdk_s3::config::Builder,
        config: &Config,
    ) -> Self {
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(dynamodb.app_name(app_name()).build());
        let s3_config = s3.app_name(app_name()).build();
        let objects = ObjectStore::new(
            aws_sdk_s3::Client::from_conf(s3_config),
            config.bucket.clone(),
            config.bucket_owner.clone(),
        );
        AppState {
            users: UserStore::new(dynamodb.clone(), USER_TABLE.name(&config.table_prefix)),
            quotas: crate::storage::QuotaStore::new(
                dynamodb.clone(),
                USER_TABLE.name(&config.table_prefix),
                config.quotas,
                objects.clone(),
            ),
            records: RecordStore::new(dynamodb, RECORD_TABLE.name(&config.table_prefix)),
            objects,
            oidc: crate::oidc::Verifier::new(&config.oidc_providers, config.oidc_min_refetch),
            settings: Settings {
                max_upload_bytes: config.max_upload_bytes,
                max_large_upload_bytes: config.max_large_upload_bytes,
                upload_url_ttl: config.upload_url_ttl,
                allow_unverified_login: config.allow_unverified_login,
                key_ttl: config.key_ttl,
                download_url_ttl: config.download_url_ttl,
                metrics: config.metrics,
                max_keys_per_user: config.max_keys_per_user,
            },
        }
    }
}
