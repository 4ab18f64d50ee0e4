//! Running the xtask binary, and private emulator instances with request recording.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use xtask::emulator::{Moto, MotoOptions};

/// The emulator `cargo xtask test` started for every test.
pub fn shared_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").expect(
        "AWS_ENDPOINT_URL is not set: run the tests with `cargo xtask test`, which starts the emulator",
    )
}

/// A fresh name prefix, so tests sharing an emulator never see each other's resources.
pub fn unique_prefix() -> String {
    format!("t{}-", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Run `xtask <args>` against `endpoint` with the emulator's dummy credentials.
pub fn xtask(endpoint: &str, args: &[&str]) -> Run {
    xtask_as(endpoint, &Keys { id: "local".into(), secret: "local".into() }, args)
}

/// An access key pair.
#[derive(Debug, Clone)]
pub struct Keys {
    pub id: String,
    pub secret: String,
}

/// Run `xtask <args>` against `endpoint` as the holder of `keys`.
pub fn xtask_as(endpoint: &str, keys: &Keys, args: &[&str]) -> Run {
    Run(xtask_command(endpoint, keys, args).output().expect("run the xtask binary"))
}

/// The `xtask <args>` command against `endpoint` as the holder of `keys`, for a test that
/// talks to it while it runs.
pub fn xtask_command(endpoint: &str, keys: &Keys, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", &keys.id)
        .env("AWS_SECRET_ACCESS_KEY", &keys.secret)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("RECORD_TABLE_PREFIX");
    command
}

/// SDK clients against `endpoint` as the holder of `keys`.
pub async fn aws_as(endpoint: &str, keys: &Keys) -> xtask::aws::Aws {
    let credentials = aws_sdk_dynamodb::config::Credentials::new(&keys.id, &keys.secret, None, None, "test");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(xtask::aws::EMULATOR_REGION))
        .credentials_provider(credentials)
        .endpoint_url(endpoint)
        .load()
        .await;
    xtask::aws::Aws { sdk, endpoint: Some(endpoint.to_owned()) }
}

/// A path inside a temporary directory that is removed when this is dropped.
pub struct Scratch {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Scratch {
    /// A new empty directory, named after what it is for.
    pub fn dir(purpose: &str) -> Scratch {
        let dir = tempfile::Builder::new().prefix(&format!("recording-server-{purpose}-")).tempdir().unwrap();
        let path = dir.path().to_owned();
        Scratch { _dir: dir, path }
    }

    /// `name` inside the same temporary directory (kept alive with it).
    pub fn child(self, name: &str) -> Scratch {
        Scratch { path: self.path.join(name), _dir: self._dir }
    }
}

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        &self.path
    }
}

/// A finished xtask run.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or_else(|| {
            panic!(
                "xtask exited by a signal ({})\nstdout:\n{}\nstderr:\n{}",
                self.0.status,
                self.stdout(),
                self.stderr()
            )
        })
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout()))
    }

    /// Assert success, showing the output otherwise.
    pub fn ok(self) -> Self {
        assert_eq!(self.code(), 0, "xtask failed\nstdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr());
        self
    }
}

/// A moto instance of the test's own, for counting requests with moto's recorder (which is
/// global to an instance, so it cannot be shared by tests running in parallel).
pub struct OwnMoto {
    /// The emulator and its directory; taken out on drop, to go back to the pool.
    pooled: Option<Pooled>,
    http: reqwest::Client,
    /// Recorded requests before this index belong to earlier phases of the test.
    recorded_before: std::sync::atomic::AtomicUsize,
}

/// Emulators whose tests are done, reset to a blank account without IAM enforcement.
static POOL: std::sync::Mutex<Vec<Pooled>> = std::sync::Mutex::new(Vec::new());

/// An emulator that outlives the test that started it, with its directory (its log, and its
/// recording outside `cargo xtask test`), removed after the emulator stops (fields drop in order).
struct Pooled {
    moto: Moto,
    _dir: Scratch,
}

impl Pooled {
    /// Start a new instance on the one thread that lives as long as the test binary: moto is
    /// told to stop when the thread that started it ends (xtask's `stop_with_parent` sets
    /// Linux's parent-death signal, which follows the thread, not the process), and each test
    /// runs on a thread of its own.
    fn start() -> Pooled {
        type Reply = std::sync::mpsc::Sender<anyhow::Result<Pooled>>;
        static STARTER: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Reply>>> =
            std::sync::OnceLock::new();
        let starter = STARTER.get_or_init(|| {
            // The test harness exits without dropping statics: stop the idle instances and
            // remove their directories then (`cargo xtask test` fails on leftovers).
            extern "C" fn stop_idle() {
                let idle =
                    std::mem::take(&mut *POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
                drop(idle);
            }
            // SAFETY: registers a plain function with no arguments, which the C runtime calls
            // once at exit.
            unsafe { libc::atexit(stop_idle) };
            let (requests, incoming) = std::sync::mpsc::channel::<Reply>();
            std::thread::spawn(move || {
                for reply in incoming {
                    let _ = reply.send(Pooled::start_here());
                }
            });
            std::sync::Mutex::new(requests)
        });
        let (reply, answer) = std::sync::mpsc::channel();
        starter.lock().unwrap_or_else(std::sync::PoisonError::into_inner).send(reply).unwrap();
        answer.recv().unwrap().expect("start a private moto")
    }

    fn start_here() -> anyhow::Result<Pooled> {
        use anyhow::Context;
        let server = PathBuf::from(std::env::var("RECORDING_MOTO_SERVER").context(
            "RECORDING_MOTO_SERVER is not set: run the tests with `cargo xtask test`, which installs moto",
        )?);
        let sh = xshell::Shell::new()?;
        let dir = Scratch::dir("moto");
        // Every request is recorded, into the run's directory for the catalogue coverage check.
        let calls =
            std::env::var_os("RECORDING_CALLS_DIR").map(PathBuf::from).unwrap_or_else(|| dir.to_path_buf());
        let recording = calls.join(format!("own-{}.jsonl", uuid::Uuid::new_v4().simple()));
        let options = MotoOptions { recording: Some(recording), ..MotoOptions::default() };
        let moto = Moto::start(&sh, &server, &dir, &options)?;
        Ok(Pooled { moto, _dir: dir })
    }
}

impl Drop for OwnMoto {
    /// Back to the pool, blank: IAM enforcement off, every resource and user gone. Not after a
    /// failed test (its emulator may be in any state, and its log is worth keeping): then it stops.
    fn drop(&mut self) {
        let Some(pooled) = self.pooled.take() else { return };
        if std::thread::panicking() {
            return;
        }
        let endpoint = &pooled.moto.endpoint;
        let reset = moto_api(endpoint, "POST", "reset-auth", "inf")
            .and_then(|_| moto_api(endpoint, "POST", "reset", ""));
        if reset.is_ok() {
            POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(pooled);
        }
    }
}

/// One request to moto's own API (`/moto-api/<path>`) over a plain socket; the body of a 200.
fn moto_api(endpoint: &str, method: &str, path: &str, body: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let length = body.len();
    write!(
        stream,
        "{method} /moto-api/{path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: text/plain\r\nContent-Length: {length}\r\n\r\n{body}"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(std::io::Error::other(format!("moto answered {path}: {head}")));
    }
    Ok(body.to_owned())
}

impl OwnMoto {
    /// Create an IAM user holding only `policy`, and an access key for it.
    pub async fn user_with_policy(&self, name: &str, policy: &impl serde::Serialize) -> Keys {
        let iam = aws_sdk_iam::Client::new(&xtask::aws::Aws::emulator(self.endpoint()).await.sdk);
        iam.create_user().user_name(name).send().await.unwrap();
        iam.put_user_policy()
            .user_name(name)
            .policy_name("only")
            .policy_document(serde_json::to_string(policy).unwrap())
            .send()
            .await
            .unwrap();
        let key = iam.create_access_key().user_name(name).send().await.unwrap().access_key.unwrap();
        Keys { id: key.access_key_id, secret: key.secret_access_key }
    }

    /// From now on moto checks every request against the caller's IAM policies (only users
    /// created in it have keys that work).
    pub async fn enforce_iam(&self) {
        self.reset_auth("0").await;
    }

    /// Stop enforcing IAM for the next million requests, so a test can read the state with
    /// APIs moto breaks under enforcement (its Lambda API answers SignatureDoesNotMatch then).
    pub async fn suspend_iam(&self) {
        self.reset_auth("1000000").await;
    }

    async fn reset_auth(&self, unchecked: &'static str) {
        let response = self
            .http
            .post(format!("{}/moto-api/reset-auth", self.moto().endpoint))
            .header("Content-Type", "text/plain")
            .body(unchecked)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        response.expect("moto resets its IAM enforcement");
    }

    /// A moto of this test's own: an idle one from the pool, or a new one. Starting moto costs
    /// about a second of CPU; the suite used to start one per test, and per matrix case.
    pub fn start() -> OwnMoto {
        let idle = POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let pooled = idle.unwrap_or_else(Pooled::start);
        let own = OwnMoto { pooled: Some(pooled), http: reqwest::Client::new(), recorded_before: 0.into() };
        // An instance from the pool recorded its earlier tests' requests (which the run's
        // coverage check reads); this test's start after them.
        let before = own.recorder_blocking();
        own.recorded_before.store(before, std::sync::atomic::Ordering::SeqCst);
        own
    }

    /// How many requests the instance has recorded, read without an async runtime (for
    /// `start`, which tests call from both sync and async code).
    fn recorder_blocking(&self) -> usize {
        let body = moto_api(self.endpoint(), "GET", "recorder/download-recording", "");
        body.expect("moto's recorder answers").lines().filter(|l| !l.trim().is_empty()).count()
    }

    pub fn endpoint(&self) -> &str {
        &self.moto().endpoint
    }

    fn moto(&self) -> &Moto {
        &self.pooled.as_ref().expect("the emulator is only taken on drop").moto
    }

    async fn recorder(&self, action: &str) -> String {
        let url = format!("{}/moto-api/recorder/{action}", self.moto().endpoint);
        let request = if action == "download-recording" { self.http.get(url) } else { self.http.post(url) };
        let response = request.send().await.and_then(|r| r.error_for_status());
        response.expect("moto's recorder answers").text().await.unwrap()
    }

    /// Requests from now on are what the next `stop_recording` returns. (The recording itself
    /// is never reset: the coverage check reads all of it.)
    pub async fn start_recording(&self) {
        let before = self.recorded_lines().await.len();
        self.recorded_before.store(before, std::sync::atomic::Ordering::SeqCst);
    }

    /// The operations recorded since `start_recording`, e.g. `DescribeTable`.
    pub async fn stop_recording(&self) -> Vec<String> {
        let lines = self.recorded_lines().await;
        let before = self.recorded_before.load(std::sync::atomic::Ordering::SeqCst);
        lines[before..].iter().map(|l| operation(&serde_json::from_str(l).unwrap())).collect()
    }

    /// The calls recorded since `start_recording`, attributed and mapped to IAM actions.
    pub async fn recorded_calls(&self) -> Vec<xtask::coverage::Call> {
        let lines = self.recorded_lines().await;
        let before = self.recorded_before.load(std::sync::atomic::Ordering::SeqCst);
        lines[before..].iter().filter_map(|l| xtask::coverage::parse_line(l).unwrap()).collect()
    }

    /// The raw requests recorded since `start_recording` (method, url, headers, decoded body).
    pub async fn recorded_requests(&self) -> Vec<Value> {
        let lines = self.recorded_lines().await;
        let before = self.recorded_before.load(std::sync::atomic::Ordering::SeqCst);
        lines[before..]
            .iter()
            .map(|l| {
                let mut request: Value = serde_json::from_str(l).unwrap();
                let body = decode_body(&request, request["body"].as_str().unwrap_or_default());
                request["body"] = Value::String(body);
                request
            })
            .collect()
    }

    async fn recorded_lines(&self) -> Vec<String> {
        let text = self.recorder("download-recording").await;
        text.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
    }
}

/// The AWS operation of one recorded request: the JSON protocols name it in `X-Amz-Target`,
/// the query protocols in the `Action` parameter; REST APIs are named by method and path.
fn operation(request: &Value) -> String {
    let headers = &request["headers"];
    if let Some(target) = headers.get("X-Amz-Target").and_then(Value::as_str) {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    let url = request["url"].as_str().unwrap_or_default();
    let body = request["body"].as_str().unwrap_or_default();
    for text in [url.to_owned(), decode_body(request, body)] {
        if let Some(action) = text.split(['?', '&']).find_map(|p| p.strip_prefix("Action=")) {
            return action.to_owned();
        }
    }
    let path = url.splitn(4, '/').nth(3).unwrap_or_default();
    format!(
        "{} /{}",
        request["method"].as_str().unwrap_or_default(),
        path.split('?').next().unwrap_or_default()
    )
}

fn decode_body(request: &Value, body: &str) -> String {
    if request["body_encoded"].as_bool() != Some(true) {
        return body.to_owned();
    }
    aws_smithy_types::base64::decode(body)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Whether an operation changes something (anything but Describe/Get/List/Head).
pub fn is_write(operation: &str) -> bool {
    !["Describe", "Get", "List", "Head", "Scan", "Query", "GET ", "HEAD "]
        .iter()
        .any(|read| operation.starts_with(read))
}

pub async fn dynamodb(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let aws = xtask::aws::Aws::emulator(endpoint).await;
    aws.dynamodb()
}
