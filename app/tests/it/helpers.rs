//! Spawning the app against the emulator, and reading what it stored.

use std::collections::HashMap;
use std::time::Duration;

use app::config::Config;
use app::schema::{TableSpec, RECORD_TABLE, USER_TABLE};
use app::state::AppState;
use aws_sdk_dynamodb::types::{AttributeValue, BillingMode};
use serde_json::Value;

/// How a test's app is set up; `Default` is what local mode runs.
pub struct Setup {
    pub max_upload_bytes: usize,
    pub max_large_upload_bytes: u64,
    pub allow_unverified_login: bool,
    pub key_ttl: Duration,
    /// Leave out the record table, so every row write fails.
    pub without_record_table: bool,
    pub oidc_providers: Vec<app::oidc::ProviderConfig>,
    /// Send the app's AWS calls here instead of the emulator (a faulty backend); the harness
    /// still creates the tables and bucket in the emulator.
    pub backend: Option<String>,
    pub budget: app::config::AwsBudget,
    /// Shortest time between two JWKS fetches (tests that rotate keys use zero).
    pub oidc_min_refetch: Duration,
    pub max_keys_per_user: usize,
    pub bucket_owner: Option<String>,
    pub quotas: app::storage::Limits,
    /// Keep the tables on this DynamoDB emulator instead (S3 stays on moto).
    pub dynamodb_endpoint: Option<String>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            max_upload_bytes: app::config::DEFAULT_MAX_UPLOAD_BYTES,
            max_large_upload_bytes: app::config::DEFAULT_MAX_LARGE_UPLOAD_BYTES,
            allow_unverified_login: true,
            key_ttl: Duration::from_secs(3600),
            without_record_table: false,
            oidc_providers: Vec::new(),
            backend: None,
            budget: app::config::AwsBudget::default(),
            oidc_min_refetch: Duration::ZERO,
            max_keys_per_user: 20,
            bucket_owner: None,
            quotas: app::storage::Limits { pending_uploads: 100, recordings: 10_000, bytes: 1 << 40 },
            dynamodb_endpoint: None,
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub prefix: String,
}

/// A signed-in user: the value of their `Authorization` header.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub key: String,
}

impl User {
    pub fn header(&self) -> String {
        format!("{} {}", self.id, self.key)
    }
}

/// Longest any test request may take: far above every budget the service is tested with.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").expect(
        "AWS_ENDPOINT_URL is not set: run the tests with `cargo xtask test`, which starts the emulator",
    )
}

async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url(endpoint()).load().await
}

/// Create one table exactly as the schema says (the test's own copy; xtask create-tables is
/// tested separately).
pub async fn create_table(client: &aws_sdk_dynamodb::Client, spec: &TableSpec, prefix: &str) {
    let indexes = spec.global_secondary_indexes();
    client
        .create_table()
        .table_name(spec.name(prefix))
        .set_key_schema(Some(spec.key_schema()))
        .set_attribute_definitions(Some(spec.attribute_definitions()))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create a test table in the emulator");
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Setup::default()).await
    }

    pub async fn spawn_with(setup: Setup) -> TestApp {
        let sdk = sdk_config().await;
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("t{}-", &unique[..12]);
        let bucket = format!("test-{}", &unique[..20]);
        let mut admin = aws_sdk_dynamodb::config::Builder::from(&sdk);
        if let Some(endpoint) = &setup.dynamodb_endpoint {
            admin = admin.endpoint_url(endpoint);
        }
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(admin.build());
        create_table(&dynamodb, &USER_TABLE, &prefix).await;
        if !setup.without_record_table {
            create_table(&dynamodb, &RECORD_TABLE, &prefix).await;
        }
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build(),
        );
        s3.create_bucket().bucket(&bucket).send().await.expect("create a test bucket");

        let config = Config {
            table_prefix: prefix.clone(),
            bucket: bucket.clone(),
            bucket_owner: setup.bucket_owner.clone(),
            max_upload_bytes: setup.max_upload_bytes,
            max_large_upload_bytes: setup.max_large_upload_bytes,
            upload_url_ttl: Duration::from_secs(300),
            allow_unverified_login: setup.allow_unverified_login,
            key_ttl: setup.key_ttl,
            download_url_ttl: Duration::from_secs(300),
            oidc_providers: setup.oidc_providers,
            oidc_min_refetch: setup.oidc_min_refetch,
            port: 0,
            s3_path_style: true,
            plain_http_endpoints: true,
            aws: setup.budget,
            // main's start-up steps: the Lambda runtime tests run the binary for them.
            warm_up: false,
            metrics: false,
            max_keys_per_user: setup.max_keys_per_user,
            quotas: setup.quotas,
        };
        // The service's own SDK config (its time budget and retries), as main builds it.
        let service_sdk = app::state::sdk_config(&config.aws, config.plain_http_endpoints).await;
        let mut dynamodb_config = aws_sdk_dynamodb::config::Builder::from(&service_sdk);
        let mut s3_config = aws_sdk_s3::config::Builder::from(&service_sdk).force_path_style(true);
        if let Some(backend) = &setup.backend {
            dynamodb_config = dynamodb_config.endpoint_url(backend);
            s3_config = s3_config.endpoint_url(backend);
        }
        if let Some(endpoint) = &setup.dynamodb_endpoint {
            dynamodb_config = dynamodb_config.endpoint_url(endpoint);
        }
        let router = app::router(AppState::with_clients(dynamodb_config, s3_config, &config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        // A lost timeout in the service fails a test instead of hanging the suite.
        let http = reqwest::Client::builder().timeout(CLIENT_TIMEOUT).build().unwrap();
        TestApp { address, http, dynamodb, s3, bucket, prefix }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn login(&self, social_id: &str) -> User {
        let response = self
            .http
            .get(self.url(&format!("/login?social_id={social_id}&social_type=kakao")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "login failed");
        let body: Value = response.json().await.unwrap();
        User { id: body["user_id"].as_str().unwrap().into(), key: body["auth_key"].as_str().unwrap().into() }
    }

    /// Sign in the n-th of several distinct users.
    pub async fn login_social(&self, n: usize) -> User {
        self.login(&format!("user{n}")).await
    }

    pub async fn upload(
        &self,
        user: &User,
        file_name: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.http
            .put(self.url(&format!("/upload/record/{file_name}")))
            .header("Authorization", user.header())
            .header("Content-Type", "audio/mp4")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Upload and return the new record's id.
    pub async fn upload_ok(&self, user: &User, file_name: &str, body: &'static [u8]) -> String {
        let response = self.upload(user, file_name, body).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["record"]["id"].as_str().unwrap().to_owned()
    }

    pub async fn get(&self, user: &User, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).header("Authorization", user.header()).send().await.unwrap()
    }

    pub async fn post_json(&self, user: &User, path: &str, body: &Value) -> reqwest::Response {
        self.http.post(self.url(path)).header("Authorization", user.header()).json(body).send().await.unwrap()
    }

    /// `POST /record/{id}/complete`: publish a large upload.
    pub async fn complete(&self, user: &User, id: &str) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/record/{id}/complete")))
            .header("Authorization", user.header())
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, user: &User, path: &str) -> reqwest::Response {
        self.http.delete(self.url(path)).header("Authorization", user.header()).send().await.unwrap()
    }

    /// Every object key in the test's bucket.
    pub async fn object_keys(&self) -> Vec<String> {
        let output = self.s3.list_objects_v2().bucket(&self.bucket).send().await.unwrap();
        output.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
    }

    pub async fn object_bytes(&self, key: &str) -> Vec<u8> {
        let output = self.s3.get_object().bucket(&self.bucket).key(key).send().await.unwrap();
        output.body.collect().await.unwrap().to_vec()
    }

    /// Every row of one of the test's tables (a test-only Scan, to see the stored state).
    pub async fn rows(&self, spec: &TableSpec) -> Vec<HashMap<String, AttributeValue>> {
        let output = self.dynamodb.scan().table_name(spec.name(&self.prefix)).send().await.unwrap();
        output.items.unwrap_or_default()
    }
}

/// PUT `body` to a started large upload's presigned URL with the headers it names (the client
/// sets Content-Length itself, as a browser does); asserts S3's 200.
pub async fn put_presigned(app: &TestApp, upload: &Value, body: Vec<u8>) {
    let mut request = app.http.put(upload["upload_url"].as_str().unwrap());
    for (name, value) in upload["headers"].as_object().unwrap() {
        if name != "content-length" {
            request = request.header(name, value.as_str().unwrap());
        }
    }
    let response = request.body(body).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// The counters of `user`'s usage row (absent ones 0), by name.
pub async fn usage(app: &TestApp, user: &User) -> HashMap<&'static str, i64> {
    let row = app
        .dynamodb
        .get_item()
        .table_name(USER_TABLE.name(&app.prefix))
        .key("id", AttributeValue::S(format!("usage#{}", user.id)))
        .key("auth_key", AttributeValue::S("usage".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_default();
    ["pending", "published", "bytes", "staged"]
        .into_iter()
        .map(|name| (name, row.get(name).map_or(0, |v| v.as_n().unwrap().parse().unwrap())))
        .collect()
}

/// Move every upload window of `user` into the past, as its closing time passing would.
pub async fn close_upload_windows(app: &TestApp, user: &User) {
    let table = USER_TABLE.name(&app.prefix);
    let key = [
        ("id".to_owned(), AttributeValue::S(format!("usage#{}", user.id))),
        ("auth_key".to_owned(), AttributeValue::S("usage".into())),
    ];
    let row =
        app.dynamodb.get_item().table_name(&table).set_key(Some(key.clone().into())).send().await.unwrap();
    for entry in row.item.unwrap_or_default().keys().filter(|k| k.starts_with("p_")) {
        app.dynamodb
            .update_item()
            .table_name(&table)
            .set_key(Some(key.clone().into()))
            .update_expression("SET #e.expires = :past")
            .expression_attribute_names("#e", entry)
            .expression_attribute_values(":past", AttributeValue::N("1".into()))
            .send()
            .await
            .unwrap();
    }
}

/// Assert a JSON error response: its status and its exact message.
pub async fn assert_error(response: reqwest::Response, status: u16, message: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "error": message }));
}

pub fn string(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item[name].as_s().unwrap().clone()
}

/// The service's log lines, as the Lambda JSON formatter writes them, captured for one test.
///
/// One global subscriber for the whole test binary writes each line to the buffer of the thread
/// that logged it (`#[tokio::test]` runs the server on the test's thread), or nowhere. A
/// thread-scoped subscriber (`set_default`) is not enough: tracing caches per call site whether
/// anyone listens, and a test on another thread without one can switch a call site off for all.
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Logs>> = const { std::cell::RefCell::new(None) };
}

/// Writes to the current thread's capture, if any.
struct ThreadWriter;

impl std::io::Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(logs) = c.borrow().as_ref() {
                logs.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Stops the capture when dropped.
pub struct Capturing;

impl Drop for Capturing {
    fn drop(&mut self) {
        CAPTURE.with(|c| c.borrow_mut().take());
    }
}

impl Logs {
    /// Capture this thread's log lines from now until the guard drops.
    pub fn capture() -> (Logs, Capturing) {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(true)
                .with_writer(|| ThreadWriter)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("one global subscriber per test binary");
        });
        let logs = Logs::default();
        CAPTURE.with(|c| *c.borrow_mut() = Some(logs.clone()));
        (logs, Capturing)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Every line, parsed (each must be one JSON object).
    pub fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {l}")))
            .collect()
    }
}

/// A dynalite (DynamoDB emulator) of the test's own, stopped on drop. moto applies a conditional
/// write in steps other requests can interleave with; dynalite, like DynamoDB, does not, so tests
/// of concurrent conditional writes run on it.
pub struct Dynalite {
    pub endpoint: String,
    child: std::process::Child,
}

impl Dynalite {
    pub fn start() -> Dynalite {
        let executable = std::env::var("RECORDING_DYNALITE").expect(
            "RECORDING_DYNALITE is not set: run the tests with `cargo xtask test`, which installs dynalite",
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(executable)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--createTableMs", "0"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start dynalite");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "dynalite did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Dynalite { endpoint: format!("http://127.0.0.1:{port}"), child }
    }
}

impl Drop for Dynalite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
