//! What the service logs: one access line per request (method, matched route, status, latency,
//! size; the user only when authenticated), every line of a request carrying its request id,
//! and never a secret: no auth key, no presigned URL's signature.

use serde_json::{json, Value};

use crate::helpers::{Logs, TestApp};

/// The value of `field` in the span named `span` of a JSON log line.
fn span_field<'a>(line: &'a Value, span: &str, field: &str) -> Option<&'a Value> {
    line["spans"].as_array()?.iter().find(|s| s["name"] == span)?.get(field)
}

#[tokio::test]
async fn every_request_ends_with_one_access_line_and_no_secret_is_logged() {
    let (logs, _guard) = Logs::capture();
    let app = TestApp::spawn().await;
    let user = app.login("1").await;
    let id = app.upload_ok(&user, "private name.m4a", b"audio").await;
    let record: Value = app.get(&user, &format!("/record/{id}")).await.json().await.unwrap();
    let download = record["download_url"].as_str().unwrap().to_owned();
    let start = json!({ "file_name": "long.m4a", "content_type": "audio/mp4", "size": 2_000_000 });
    let upload: Value = app.post_json(&user, "/record/uploads", &start).await.json().await.unwrap();
    let upload_url = upload["upload_url"].as_str().unwrap().to_owned();
    let wrong = app
        .http
        .get(app.url("/record/list"))
        .header("Authorization", format!("{} {}", user.id, "0".repeat(64)))
        .header("x-request-id", "client-chosen-id")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    app.http.post(app.url("/logout")).header("Authorization", user.header()).send().await.unwrap();

    let text = logs.text();
    let signature =
        |url: &str| url.split("X-Amz-Signature=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    for secret in [user.key.clone(), signature(&download), signature(&upload_url)] {
        assert!(!text.contains(&secret), "a secret ({secret}) in the logs:\n{text}");
    }
    assert!(!text.contains("private name"), "a raw path (with a file name) in the logs:\n{text}");

    let access: Vec<Value> = logs.lines().into_iter().filter(|l| l["message"] == "access").collect();
    let routes: Vec<(&str, &str, u64)> = access
        .iter()
        .map(|l| (l["method"].as_str().unwrap(), l["route"].as_str().unwrap(), l["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        routes,
        [
            ("GET", "/login", 200),
            ("PUT", "/upload/record/{file_name}", 200),
            ("GET", "/record/{record_id}", 200),
            ("POST", "/record/uploads", 200),
            ("GET", "/record/list", 401),
            ("POST", "/logout", 200),
        ]
    );
    for line in &access {
        assert!(line["latency_ms"].as_f64().is_some() && line["bytes"].as_u64().is_some(), "{line}");
        assert!(span_field(line, "request", "id").is_some(), "no request id: {line}");
        let authenticated = line["route"] != "/login" && line["status"] == 200;
        assert_eq!(line.get("user").is_some(), authenticated, "{line}");
    }
    assert_eq!(access[1]["user"], user.id.as_str());
    assert_eq!(span_field(&access[4], "request", "id").unwrap(), "\"client-chosen-id\"");
}
