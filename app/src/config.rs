//! Configuration, read once from the environment at start-up. Handlers never read env vars.

use std::time::Duration;

use crate::schema;

/// Everything the service needs to know about its deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The account id that must own the bucket (`RECORD_BUCKET_OWNER`, set by `deploy`; default
    /// none, unchecked).
    pub bucket_owner: Option<String>,
    /// Prefix of both table names (`RECORD_TABLE_PREFIX`, default none).
    pub table_prefix: String,
    /// The private bucket holding the audio (`RECORD_BUCKET`, required).
    pub bucket: String,
    /// Largest upload body in bytes (`RECORD_MAX_UPLOAD_BYTES`, default 5 MiB).
    pub max_upload_bytes: usize,
    /// Whether the seed's unverified `GET /login` works (`RECORD_ALLOW_UNVERIFIED_LOGIN`).
    pub allow_unverified_login: bool,
    /// Largest presigned (large) upload in bytes (`RECORD_MAX_LARGE_UPLOAD_BYTES`, 200 MiB).
    pub max_large_upload_bytes: u64,
    /// How long a presigned upload URL stays valid (`RECORD_UPLOAD_URL_TTL_SECONDS`, 5 min: also
    /// most of how long a started upload holds its quota, see `storage::quotas`).
    pub upload_url_ttl: Duration,
    /// How long an issued key stays valid (`RECORD_KEY_TTL_SECONDS`, default 30 days).
    pub key_ttl: Duration,
    /// How long a presigned download URL stays valid (`RECORD_DOWNLOAD_URL_TTL_SECONDS`, 15 min).
    pub download_url_ttl: Duration,
    /// Identity providers for verified login (`RECORD_OIDC_PROVIDERS`, a JSON array of
    /// `{name, issuer, audiences, jwks_url}`; default none).
    pub oidc_providers: Vec<crate::oidc::ProviderConfig>,
    /// Shortest time between two JWKS fetches of a provider (`RECORD_OIDC_MIN_REFETCH_SECONDS`, 30).
    pub oidc_min_refetch: Duration,
    /// Local mode's port (`PORT`, default 8000).
    pub port: u16,
    /// Address S3 by path (`bucket` in the path): needed by emulators reached through
    /// `AWS_ENDPOINT_URL`, which have no per-bucket DNS names.
    pub s3_path_style: bool,
    /// Every AWS endpoint is overridden with a plain `http://` one (the emulators): no TLS, so
    /// no certificate authority to load.
    pub plain_http_endpoints: bool,
    /// Time budgets and retries of every AWS call.
    pub aws: AwsBudget,
    /// Most live keys one user holds (`RECORD_MAX_KEYS_PER_USER`, default 20): a new login
    /// revokes the oldest beyond it.
    pub max_keys_per_user: usize,
    /// Per-user quotas: live pending uploads (`RECORD_MAX_PENDING_UPLOADS`, 5), recordings
    /// (`RECORD_MAX_RECORDINGS`, 10000) and stored bytes (`RECORD_MAX_BYTES_PER_USER`, 2 GiB).
    pub quotas: crate::storage::Limits,
    /// Open the DynamoDB and S3 connections during init, so the first request does not pay
    /// for them (`RECORD_WARM_UP`, default true).
    pub warm_up: bool,
    /// Print CloudWatch Embedded Metric Format lines: per request, and per cold start
    /// (`RECORD_METRICS`, default true on Lambda, false locally).
    pub metrics: bool,
}

/// How long one AWS call may take, retries included. A request makes at most
/// [`MAX_CALLS_PER_REQUEST`] calls in a row, so [`AwsBudget::request_budget`] bounds it; the
/// deployed function's timeout must stay above that (`deploy` checks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsBudget {
    /// The whole call, retries included (`RECORD_AWS_OPERATION_TIMEOUT_MS`, default 5000).
    pub operation_timeout: Duration,
    /// One attempt (`RECORD_AWS_ATTEMPT_TIMEOUT_MS`, default 2000).
    pub attempt_timeout: Duration,
    /// Opening a connection (`RECORD_AWS_CONNECT_TIMEOUT_MS`, default 1000).
    pub connect_timeout: Duration,
    /// Attempts per call, the first included (`RECORD_AWS_MAX_ATTEMPTS`, default 3).
    pub max_attempts: u32,
}

/// The most AWS calls one request makes one after the other: a direct upload whose quota charge
/// meets a closed upload window authorizes, charges, reads the usage row, removes the window's
/// staged object, refunds it, charges again, stores the object, writes the row, and when the row
/// fails removes the object and gives the charge back. Completing a large upload makes at most
/// eight: authorize, read the row, check the staged object, claim the window, copy, publish, and
/// when the publish is refused remove the copy and give the claim back.
pub const MAX_CALLS_PER_REQUEST: u32 = 10;

impl AwsBudget {
    /// The longest a request can wait for AWS: every call in a row at its operation timeout.
    /// (`POST /login` waits at most 5 s for its provider's keys, then makes one call.)
    pub fn request_budget(&self) -> Duration {
        self.operation_timeout * MAX_CALLS_PER_REQUEST
    }
}

impl Default for AwsBudget {
    fn default() -> Self {
        AwsBudget {
            operation_timeout: Duration::from_millis(5000),
            attempt_timeout: Duration::from_millis(2000),
            connect_timeout: Duration::from_millis(1000),
            max_attempts: 3,
        }
    }
}

/// The names of the variables the tooling sets for the service (`deploy`, `local`, `bench`):
/// spelled here once, where they are read.
pub mod env {
    /// Whether the seed's unverified `GET /login` is on.
    pub const ALLOW_UNVERIFIED_LOGIN: &str = "RECORD_ALLOW_UNVERIFIED_LOGIN";
    /// The recordings bucket (required).
    pub const BUCKET: &str = "RECORD_BUCKET";
    /// The account that must own the bucket.
    pub const BUCKET_OWNER: &str = "RECORD_BUCKET_OWNER";
    /// The largest direct upload body.
    pub const MAX_UPLOAD_BYTES: &str = "RECORD_MAX_UPLOAD_BYTES";
    /// Whether each request prints an EMF line.
    pub const METRICS: &str = "RECORD_METRICS";
    /// The identity providers, as JSON.
    pub const OIDC_PROVIDERS: &str = "RECORD_OIDC_PROVIDERS";
    /// The prefix of both table names.
    pub const TABLE_PREFIX: &str = "RECORD_TABLE_PREFIX";
    /// Whether init opens the connections.
    pub const WARM_UP: &str = "RECORD_WARM_UP";
}

/// What the tooling chooses when it deploys or starts the service (`deploy`, `local`, `bench`):
/// every other setting keeps its default. [`Settings::to_env`] renders the variables, which
/// [`Config::from_lookup`] reads back; no other code spells them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The recordings bucket.
    pub bucket: String,
    /// The account that must own the bucket.
    pub bucket_owner: Option<String>,
    /// The prefix of both table names (always written, so a deployed stage says which).
    pub table_prefix: String,
    /// Whether the seed's unverified `GET /login` is on.
    pub allow_unverified_login: bool,
    /// The largest direct upload body.
    pub max_upload_bytes: usize,
    /// The identity providers, as the JSON `RECORD_OIDC_PROVIDERS` holds (none when empty).
    pub oidc_providers: String,
    /// Whether init opens the connections (unset: the default, on).
    pub warm_up: Option<bool>,
    /// Whether each request prints an EMF line (unset: on on Lambda, off locally).
    pub metrics: Option<bool>,
}

impl Settings {
    /// Defaults, with this bucket.
    pub fn new(bucket: &str) -> Settings {
        Settings {
            bucket: bucket.to_owned(),
            bucket_owner: None,
            table_prefix: String::new(),
            allow_unverified_login: false,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            oidc_providers: String::new(),
            warm_up: None,
            metrics: None,
        }
    }

    /// The service's environment variables for these settings.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            (env::BUCKET, self.bucket.clone()),
            (env::TABLE_PREFIX, self.table_prefix.clone()),
            (env::ALLOW_UNVERIFIED_LOGIN, self.allow_unverified_login.to_string()),
            (env::MAX_UPLOAD_BYTES, self.max_upload_bytes.to_string()),
        ];
        vars.extend(self.bucket_owner.clone().map(|owner| (env::BUCKET_OWNER, owner)));
        if !self.oidc_providers.trim().is_empty() {
            vars.push((env::OIDC_PROVIDERS, self.oidc_providers.clone()));
        }
        vars.extend(self.warm_up.map(|on| (env::WARM_UP, on.to_string())));
        vars.extend(self.metrics.map(|on| (env::METRICS, on.to_string())));
        vars
    }
}

/// Why the configuration could not be read: the service stops at start-up with it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable (its name, and what it is for) is not set.
    #[error("environment variable {0} is not set: {1}")]
    Missing(&'static str, &'static str),
    /// A variable is set to a value that cannot be used.
    #[error("environment variable {name} is {value:?}: {expected}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it must be instead.
        expected: String,
    },
}

/// The default largest direct upload body (`RECORD_MAX_UPLOAD_BYTES`).
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 5 * 1024 * 1024;
/// The default largest presigned upload (`RECORD_MAX_LARGE_UPLOAD_BYTES`).
pub const DEFAULT_MAX_LARGE_UPLOAD_BYTES: u64 = 200 * 1024 * 1024;
const DAY: u64 = 24 * 60 * 60;

/// Whether DynamoDB's and S3's endpoints are both overridden with plain `http://` ones (each
/// service's own variable, else `AWS_ENDPOINT_URL`).
fn plain_http_endpoints(var: &impl Fn(&str) -> Option<String>) -> bool {
    let plain = |name: &str| var(name).map(|url| url.starts_with("http://"));
    let default = plain("AWS_ENDPOINT_URL");
    ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"]
        .iter()
        .all(|name| plain(name).or(default) == Some(true))
}

impl Config {
    /// The configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Build from any variable lookup, so tests need not touch the process environment.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let bucket = var(env::BUCKET)
            .filter(|b| !b.is_empty())
            .ok_or(ConfigError::Missing(env::BUCKET, "set it to the recordings bucket name"))?;
        let bucket_owner = var(env::BUCKET_OWNER).filter(|o| !o.is_empty());
        if let Some(owner) =
            bucket_owner.as_ref().filter(|o| o.len() != 12 || !o.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(ConfigError::Invalid {
                name: env::BUCKET_OWNER,
                value: owner.clone(),
                expected: "expected a 12-digit AWS account id".into(),
            });
        }
        let table_prefix = var(env::TABLE_PREFIX).unwrap_or_default();
        schema::validate_prefix(&table_prefix).map_err(|expected| ConfigError::Invalid {
            name: env::TABLE_PREFIX,
            value: table_prefix.clone(),
            expected,
        })?;
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match var(name) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
                    name,
                    value: v,
                    expected: "expected a whole number".into(),
                }),
            }
        };
        let flag = |name: &'static str, default: bool| -> Result<bool, ConfigError> {
            match var(name).as_deref() {
                None | Some("") => Ok(default),
                Some("0" | "false") => Ok(false),
                Some("1" | "true") => Ok(true),
                Some(other) => Err(ConfigError::Invalid {
                    name,
                    value: other.into(),
                    expected: "expected true or false".into(),
                }),
            }
        };
        let allow_unverified_login = flag(env::ALLOW_UNVERIFIED_LOGIN, false)?;
        let on_lambda = var("AWS_LAMBDA_RUNTIME_API").is_some();
        let port = number("PORT", 8000)?;
        let json = var(env::OIDC_PROVIDERS).unwrap_or_default();
        let oidc_providers = crate::oidc::parse_providers(&json).map_err(|expected| {
            ConfigError::Invalid { name: env::OIDC_PROVIDERS, value: json.clone(), expected }
        })?;
        Ok(Config {
            bucket_owner,
            table_prefix,
            bucket,
            max_upload_bytes: number(env::MAX_UPLOAD_BYTES, DEFAULT_MAX_UPLOAD_BYTES as u64)? as usize,
            allow_unverified_login,
            max_large_upload_bytes: number("RECORD_MAX_LARGE_UPLOAD_BYTES", DEFAULT_MAX_LARGE_UPLOAD_BYTES)?,
            upload_url_ttl: Duration::from_secs(number("RECORD_UPLOAD_URL_TTL_SECONDS", 300)?),
            key_ttl: Duration::from_secs(number("RECORD_KEY_TTL_SECONDS", 30 * DAY)?),
            download_url_ttl: Duration::from_secs(number("RECORD_DOWNLOAD_URL_TTL_SECONDS", 900)?),
            oidc_providers,
            oidc_min_refetch: Duration::from_secs(number("RECORD_OIDC_MIN_REFETCH_SECONDS", 30)?),
            port: u16::try_from(port).map_err(|_| ConfigError::Invalid {
                name: "PORT",
                value: port.to_string(),
                expected: "expected a port number up to 65535".into(),
            })?,
            s3_path_style: var("AWS_ENDPOINT_URL").is_some() || var("AWS_ENDPOINT_URL_S3").is_some(),
            plain_http_endpoints: plain_http_endpoints(&var),
            max_keys_per_user: match number("RECORD_MAX_KEYS_PER_USER", 20)? {
                n @ 1..=1000 => n as usize,
                n => {
                    return Err(ConfigError::Invalid {
                        name: "RECORD_MAX_KEYS_PER_USER",
                        value: n.to_string(),
                        expected: "expected 1 to 1000".into(),
                    })
                }
            },
            quotas: crate::storage::Limits {
                pending_uploads: number("RECORD_MAX_PENDING_UPLOADS", 5)?,
                recordings: number("RECORD_MAX_RECORDINGS", 10_000)?,
                bytes: number("RECORD_MAX_BYTES_PER_USER", 2 << 30)?,
            },
            warm_up: flag(env::WARM_UP, true)?,
            metrics: flag(env::METRICS, on_lambda)?,
            aws: {
                let default = AwsBudget::default();
                let millis = |name, default: Duration| -> Result<Duration, ConfigError> {
                    Ok(Duration::from_millis(number(name, default.as_millis() as u64)?))
                };
                let max_attempts = number("RECORD_AWS_MAX_ATTEMPTS", default.max_attempts.into())?;
                AwsBudget {
                    operation_timeout: millis("RECORD_AWS_OPERATION_TIMEOUT_MS", default.operation_timeout)?,
                    attempt_timeout: millis("RECORD_AWS_ATTEMPT_TIMEOUT_MS", default.attempt_timeout)?,
                    connect_timeout: millis("RECORD_AWS_CONNECT_TIMEOUT_MS", default.connect_timeout)?,
                    max_attempts: u32::try_from(max_attempts).ok().filter(|n| (1..=10).contains(n)).ok_or(
                        ConfigError::Invalid {
                            name: "RECORD_AWS_MAX_ATTEMPTS",
                            value: max_attempts.to_string(),
                            expected: "expected 1 to 10".into(),
                        },
                    )?,
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn only_the_bucket_is_required_and_defaults_are_safe() {
        let c = config(&[("RECORD_BUCKET", "b")]).unwrap();
        assert_eq!(c.max_upload_bytes, 5 * 1024 * 1024);
        assert!(!c.allow_unverified_login, "unverified login must be opt-in");
        assert_eq!((c.port, c.table_prefix.as_str(), c.s3_path_style), (8000, "", false));
        assert!(c.warm_up && !c.metrics, "warm-up on, metrics lines only on Lambda");
    }

    #[test]
    fn metrics_lines_are_on_by_default_on_lambda_and_both_switches_parse() {
        let lambda = config(&[("RECORD_BUCKET", "b"), ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")]);
        assert!(lambda.unwrap().metrics);
        let off = config(&[("RECORD_BUCKET", "b"), ("RECORD_METRICS", "0"), ("RECORD_WARM_UP", "false")]);
        let off = off.unwrap();
        assert!(!off.metrics && !off.warm_up);
        let err = config(&[("RECORD_BUCKET", "b"), ("RECORD_WARM_UP", "off")]).unwrap_err();
        assert!(err.to_string().contains("RECORD_WARM_UP is \"off\""), "{err}");
    }

    #[test]
    fn the_default_request_budget_is_the_counted_calls_at_their_operation_timeout() {
        // The count itself is checked against every route's longest path in tests/it/budget.rs;
        // deploy's default function timeout against this budget in xtask's flags tests.
        assert_eq!(AwsBudget::default().request_budget(), Duration::from_secs(50));
    }

    #[test]
    fn a_missing_bucket_names_the_variable() {
        let err = config(&[]).unwrap_err().to_string();
        assert!(err.contains("RECORD_BUCKET"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_variable_and_the_value() {
        let err = config(&[("RECORD_BUCKET", "b"), ("RECORD_MAX_UPLOAD_BYTES", "5MB")]).unwrap_err();
        assert!(err.to_string().contains("RECORD_MAX_UPLOAD_BYTES is \"5MB\""), "{err}");
        assert!(config(&[("RECORD_BUCKET", "b"), ("RECORD_ALLOW_UNVERIFIED_LOGIN", "yes")]).is_err());
        assert!(config(&[("RECORD_BUCKET", "b"), ("PORT", "70000")]).is_err());
        assert!(config(&[("RECORD_BUCKET", "b"), ("RECORD_TABLE_PREFIX", "a b")]).is_err());
    }

    #[test]
    fn the_tooling_settings_render_and_read_back() {
        let settings = Settings {
            bucket_owner: Some("123456789012".into()),
            table_prefix: "dev-".into(),
            allow_unverified_login: true,
            max_upload_bytes: 1234,
            oidc_providers: r#"[{"name":"demo","issuer":"https://id.example","audiences":["a"],"jwks_url":"https://id.example/jwks"}]"#.into(),
            warm_up: Some(false),
            metrics: Some(true),
            ..Settings::new("b")
        };
        let vars: HashMap<&str, String> = settings.to_env().into_iter().collect();
        let c = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
        assert_eq!(
            (c.bucket.as_str(), c.bucket_owner.as_deref(), c.table_prefix.as_str()),
            ("b", Some("123456789012"), "dev-")
        );
        assert_eq!(
            (c.allow_unverified_login, c.max_upload_bytes, c.warm_up, c.metrics),
            (true, 1234, false, true)
        );
        assert_eq!(c.oidc_providers.len(), 1);
        // Unset switches keep the service's defaults, and the defaults render as the defaults.
        let vars: HashMap<&str, String> = Settings::new("b").to_env().into_iter().collect();
        let defaults = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
        assert_eq!(defaults, config(&[("RECORD_BUCKET", "b")]).unwrap());
    }

    #[test]
    fn only_plain_http_endpoints_for_both_services_skip_the_ca_store() {
        let plain = |vars: &[(&str, &str)]| {
            let mut all = vec![("RECORD_BUCKET", "b")];
            all.extend_from_slice(vars);
            config(&all).unwrap().plain_http_endpoints
        };
        assert!(!plain(&[]), "AWS itself is HTTPS");
        assert!(plain(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")]));
        assert!(plain(&[
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:1"),
            ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:2")
        ]));
        assert!(!plain(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_ENDPOINT_URL_S3", "https://s3.example")
        ]));
        assert!(!plain(&[("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:1")]), "S3 is still AWS's");
        assert!(!plain(&[("AWS_ENDPOINT_URL", "https://localhost:4566")]));
    }

    #[test]
    fn an_endpoint_override_switches_s3_to_path_style() {
        let c = config(&[("RECORD_BUCKET", "b"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:1")]);
        assert!(c.unwrap().s3_path_style);
    }
}
