//! A backend that stalls, refuses connections or throttles: the client gets a bounded-time
//! `503` with `Retry-After` and a JSON error, never a hang or a 500, and nothing is half-written.

use std::time::{Duration, Instant};

use app::config::AwsBudget;
use app::schema::USER_TABLE;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::{Setup, TestApp};

/// A budget short enough for tests: 1.5 s per call, retries included.
fn tight() -> AwsBudget {
    AwsBudget {
        operation_timeout: Duration::from_millis(1500),
        attempt_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        max_attempts: 2,
    }
}

/// Accepts connections and never answers (a hung backend, a half-open path).
async fn black_hole() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    address
}

/// Answers every request with DynamoDB's throttling error.
async fn throttling() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0; 64 * 1024];
                let _ = socket.read(&mut buffer).await;
                let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#;
                let response = format!(
                    "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-RequestId: fault\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    address
}

/// `GET /login` through `backend`: 503 with `Retry-After` and a JSON error, within the budget,
/// and no key row written.
async fn login_is_unavailable_through(backend: String) {
    let app =
        TestApp::spawn_with(Setup { backend: Some(backend), budget: tight(), ..Setup::default() }).await;

    let started = Instant::now();
    let response = app.http.get(format!("{}/login?social_id=1&social_type=kakao", app.address)).send().await;
    let response = response.unwrap();

    let elapsed = started.elapsed();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.expect("a JSON error body");
    let message = body["error"].as_str().expect("an error message");
    assert!(message.contains("retry"), "{message}");
    // Bounded by the budget (1.5 s), not by the client's patience; generous for a busy machine.
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert!(app.rows(&USER_TABLE).await.is_empty(), "a key row was written");
}

#[tokio::test]
async fn a_stalled_backend_gets_503_with_retry_after_within_the_budget() {
    login_is_unavailable_through(black_hole().await).await;
}

#[tokio::test]
async fn a_backend_that_refuses_connections_gets_503() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    login_is_unavailable_through(closed).await;
}

#[tokio::test]
async fn persistent_throttling_gets_503_once_retries_are_spent() {
    login_is_unavailable_through(throttling().await).await;
}
