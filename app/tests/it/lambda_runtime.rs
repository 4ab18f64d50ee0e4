//! The service's Lambda entry point, end to end: the real binary, started as Lambda starts it
//! (`AWS_LAMBDA_RUNTIME_API` set), behind cargo-lambda's runtime emulator, which turns HTTP
//! requests on `/lambda-url/<function>/...` into function-URL events (API Gateway v2 payloads)
//! and the function's responses back into HTTP. The in-process tests cover the router; these
//! cover lambda_http's event and body mapping.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use app::schema::{record, RECORD_TABLE};
use serde_json::Value;

use crate::helpers::{assert_error, string, TestApp};

/// cargo-lambda's name for the one function it serves with `--only-lambda-apis`.
const FUNCTION: &str = "_";

/// The runtime emulator and the service on it; both are killed on drop.
struct OnLambda {
    children: Vec<Child>,
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
/// returned app's requests go through function-URL events.
async fn spawn_on_lambda() -> (TestApp, OnLambda) {
    let app = TestApp::spawn().await;
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
    let mut guard = OnLambda { children: vec![runtime] };
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "cargo lambda watch did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let service = Command::new(env!("CARGO_BIN_EXE_app"))
        .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
        .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("RECORD_BUCKET", &app.bucket)
        .env("RECORD_TABLE_PREFIX", &app.prefix)
        .env("RECORD_ALLOW_UNVERIFIED_LOGIN", "true")
        .env("RUST_LOG", "warn")
        .env_remove("PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the service binary");
    guard.children.push(service);
    let address = format!("http://127.0.0.1:{port}/lambda-url/{FUNCTION}");
    // A function that died leaves the emulator waiting: fail the request instead of hanging.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    (TestApp { address, http, ..app }, guard)
}

#[tokio::test]
async fn function_url_events_reach_the_router_and_binary_bodies_survive_the_round_trip() {
    let (app, _lambda) = spawn_on_lambda().await;

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
}
