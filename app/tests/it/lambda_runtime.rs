//! The service's Lambda entry point, end to end: the real binary, started as Lambda starts it
//! (`AWS_LAMBDA_RUNTIME_API` set), behind cargo-lambda's runtime emulator, which turns HTTP
//! requests on `/lambda-url/<function>/...` into function-URL events (API Gateway v2 payloads)
//! and the function's responses back into HTTP. The in-process tests cover the router; these
//! cover lambda_http's event and body mapping.

use std::io::BufRead;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::schema::{record, RECORD_TABLE};
use serde_json::Value;

use crate::helpers::{assert_error, string, TestApp};

/// cargo-lambda's name for the one function it serves with `--only-lambda-apis`.
const FUNCTION: &str = "_";

/// The runtime emulator and the service on it; both are killed on drop.
struct OnLambda {
    children: Vec<Child>,
    /// The service's stdout (its JSON log lines and EMF lines), line by line as it comes.
    stdout: Arc<Mutex<Vec<String>>>,
}

impl OnLambda {
    fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Wait for the service's `init done` log line (without blocking the test's runtime, which
    /// runs the relays).
    async fn wait_for_init(&self) -> Value {
        let started = Instant::now();
        loop {
            let done = self
                .stdout()
                .iter()
                .find_map(|l| serde_json::from_str::<Value>(l).ok().filter(|v| v["message"] == "init done"));
            if let Some(line) = done {
                return line;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no `init done` line: {:?}", self.stdout());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for OnLambda {
    fn drop(&mut self) {
        // The service first: killed after the emulator, it would report the lost connection.
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `app`'s tables and bucket, served by the binary under the Lambda runtime emulator; the
/// returned app's requests go through function-URL events. `env` is added to the service's
/// environment (as Lambda sets the function's configuration).
async fn spawn_on_lambda(app: TestApp, env: &[(&str, &str)]) -> (TestApp, OnLambda) {
    let tools = std::env::var("RECORDING_ZIG_TOOLS").expect(
        "RECORDING_ZIG_TOOLS is not set: run the tests with `cargo xtask test`, which installs cargo-lambda",
    );
    let port = free_port();
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let runtime = Command::new(std::path::Path::new(&tools).join("bin").join("cargo-lambda"))
        .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", &port.to_string()])
        .current_dir(workspace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cargo lambda watch");
    let mut guard = OnLambda { children: vec![runtime], stdout: Arc::default() };
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "cargo lambda watch did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut service = Command::new(env!("CARGO_BIN_EXE_app"))
        .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
        .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("RECORD_BUCKET", &app.bucket)
        .env("RECORD_TABLE_PREFIX", &app.prefix)
        .env("RECORD_ALLOW_UNVERIFIED_LOGIN", "true")
        // What Lambda sets for an on-demand sandbox (provisioned concurrency says so too).
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .env_remove("PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the service binary");
    let stdout = service.stdout.take().unwrap();
    let lines = guard.stdout.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
    guard.children.push(service);
    let address = format!("http://127.0.0.1:{port}/lambda-url/{FUNCTION}");
    // A function that died leaves the emulator waiting: fail the request instead of hanging.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    (TestApp { address, http, ..app }, guard)
}

#[tokio::test]
async fn function_url_events_reach_the_router_and_binary_bodies_survive_the_round_trip() {
    let (app, lambda) = spawn_on_lambda(TestApp::spawn().await, &[]).await;

    let health = app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");

    let user = app.login("lambda").await;
    // Not valid UTF-8: the event carries it base64-encoded, and it must arrive byte for byte.
    let audio: &'static [u8] = &[0x00, 0xFF, 0xFE, 0x80, 0x7F, b'a', 0x00];
    let id = app.upload_ok(&user, "memo.m4a", audio).await;
    let rows = app.rows(&RECORD_TABLE).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(app.object_bytes(&string(&rows[0], record::OBJECT_KEY)).await, audio);

    let list: Value = app.get(&user, "/record/list?limit=10").await.json().await.unwrap();
    assert_eq!(list["records"][0]["id"], id.as_str(), "{list}");

    let anonymous = app.http.get(app.url("/record/list")).send().await.unwrap();
    assert_error(anonymous, 400, "Authorization Header is required.").await;

    assert_eq!(app.delete(&user, &format!("/record/{id}")).await.status(), 200);
    assert!(app.object_keys().await.is_empty());

    // Every stdout line is one JSON object: a log line, or an EMF line per request, by route. A
    // request's EMF line is written as its response leaves, so the last may reach the pipe just
    // after the client has its answer: wait for it (bounded) before reading.
    let waited = std::time::Instant::now();
    while !lambda.stdout().iter().any(|l| l.contains("\"DELETE\"") && l.contains("_aws"))
        && waited.elapsed() < std::time::Duration::from_secs(5)
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let lines: Vec<Value> = lambda
        .stdout()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let metrics: Vec<&Value> = lines.iter().filter(|l| l.get("_aws").is_some()).collect();
    for line in &metrics {
        assert_emf(line);
    }
    let routes: Vec<(&str, &str)> =
        metrics.iter().filter_map(|m| Some((m["method"].as_str()?, m["route"].as_str()?))).collect();
    for expected in [
        ("GET", "/health"),
        ("GET", "/login"),
        ("PUT", "/upload/record/{file_name}"),
        ("GET", "/record/list"),
        ("DELETE", "/record/{record_id}"),
    ] {
        assert!(routes.contains(&expected), "no EMF line for {expected:?} in {routes:?}");
    }
    let anonymous = metrics.iter().find(|m| m["route"] == "/record/list" && m["status"] == 400).unwrap();
    assert_eq!((anonymous["Requests"].as_f64(), anonymous["5xx"].as_f64()), (Some(1.0), Some(0.0)));
    let cold = metrics.iter().filter(|m| m.get("ColdStarts").is_some()).count();
    assert_eq!(cold, 1, "one cold-start line per init: {metrics:?}");
}

/// CloudWatch's rules for an EMF line (the Embedded Metric Format specification): a root
/// `_aws` member with an integer `Timestamp` and metric directives whose dimensions name string
/// members and whose metrics name numeric members, each with a unit CloudWatch knows.
fn assert_emf(line: &Value) {
    const UNITS: &[&str] = &[
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ];
    let aws = &line["_aws"];
    assert!(aws["Timestamp"].is_u64(), "Timestamp must be epoch milliseconds: {line}");
    let directives = aws["CloudWatchMetrics"].as_array().filter(|d| !d.is_empty());
    for directive in directives.unwrap_or_else(|| panic!("no CloudWatchMetrics: {line}")) {
        let namespace = directive["Namespace"].as_str().unwrap_or_default();
        assert!(!namespace.is_empty() && namespace.len() <= 1024, "bad Namespace: {line}");
        for set in directive["Dimensions"].as_array().unwrap_or_else(|| panic!("no Dimensions: {line}")) {
            let keys = set.as_array().unwrap_or_else(|| panic!("a dimension set is an array: {line}"));
            assert!(keys.len() <= 30, "{line}");
            for key in keys {
                let key = key.as_str().unwrap_or_else(|| panic!("dimension keys are strings: {line}"));
                assert!(line[key].is_string(), "dimension {key} must be a string member: {line}");
            }
        }
        let metrics = directive["Metrics"].as_array().filter(|m| !m.is_empty() && m.len() <= 100);
        for metric in metrics.unwrap_or_else(|| panic!("1 to 100 Metrics: {line}")) {
            let name = metric["Name"].as_str().unwrap_or_else(|| panic!("a metric has a Name: {line}"));
            assert!(line[name].is_number(), "metric {name} must be a number member: {line}");
            let unit = metric["Unit"].as_str().unwrap_or("None");
            assert!(UNITS.contains(&unit), "unit {unit} is not CloudWatch's: {line}");
        }
    }
}

/// On Lambda the first request pays for its connections unless init opened them. Counted at a
/// relay between the service and the emulator: with warm-up, init makes one DynamoDB and one S3
/// call before any invocation, and the first invocation and the first S3 call reuse those two
/// connections; without it, nothing is called during init.
#[tokio::test]
async fn init_warms_both_connections_and_the_first_requests_open_none() {
    let tap = crate::proxy::Tap::start(&crate::helpers::endpoint()).await;
    let env = [("AWS_ENDPOINT_URL", tap.address.as_str())];
    let (app, lambda) = spawn_on_lambda(TestApp::spawn().await, &env).await;
    let init = lambda.wait_for_init().await;
    // Init logs before the runtime asks for its first event: the warm-up is done by now.
    let before: Vec<String> = tap.requests().into_iter().map(|(_, label)| label).collect();
    assert_eq!(before.len(), 2, "{before:?} {:?}", lambda.stdout());
    assert!(before.contains(&"Dynamo(GetItem)".to_owned()), "{before:?}");
    assert!(before.contains(&format!("S3(HEAD) /{}/warm-up", app.bucket)), "{before:?}");
    assert_eq!(tap.connections(), 2);
    assert!(init["warm_up_ms"].as_f64().is_some_and(|ms| ms < 300.0 + 50.0), "{init}");

    // The first invocation's first call (a login's PutItem) runs on the warm DynamoDB
    // connection, and the first S3 call (an upload's PUT) on the warm S3 one. (Later calls may
    // open more: hyper returns a connection to its pool in a background task, so a call sent
    // right after the previous response can miss it, as a login's Query after its PutItem did
    // once under the full suite's load; that is the pool's behaviour, not the warm-up's.)
    let dynamo = tap.requests().iter().find(|(_, l)| l == "Dynamo(GetItem)").unwrap().0;
    let s3 = tap.requests().iter().find(|(_, l)| l.starts_with("S3(HEAD)")).unwrap().0;
    let user = app.login("warm").await;
    let login: Vec<(usize, String)> = tap.requests().into_iter().skip(2).collect();
    assert!(login.len() >= 2, "{login:?}");
    assert_eq!(
        login[0],
        (dynamo, "Dynamo(PutItem)".to_owned()),
        "the first call opened a connection: {login:?}"
    );
    app.upload_ok(&user, "memo.m4a", b"audio").await;
    let put = tap.requests().into_iter().find(|(_, l)| l.starts_with("S3(PUT)")).unwrap();
    assert_eq!(put.0, s3, "the first S3 call did not use the warm connection: {:?}", tap.requests());

    // Without warm-up, init calls nothing, and the first request opens the connection itself.
    let tap = crate::proxy::Tap::start(&crate::helpers::endpoint()).await;
    let env = [("AWS_ENDPOINT_URL", tap.address.as_str()), ("RECORD_WARM_UP", "false")];
    let (app, lambda) = spawn_on_lambda(TestApp::spawn().await, &env).await;
    lambda.wait_for_init().await;
    assert_eq!((tap.requests().len(), tap.connections()), (0, 0));
    app.login("cold").await;
    assert!(tap.connections() >= 1, "the first invocation opened its own: {:?}", tap.requests());
}
