//! A backend that stalls, refuses connections or throttles: the client gets a bounded-time
//! `503` with `Retry-After` and a JSON error, never a hang or a 500, and nothing is half-written.

use std::time::{Duration, Instant};

use app::config::AwsBudget;
use app::schema::{RECORD_TABLE, USER_TABLE};
use tokio::net::TcpListener;

use crate::helpers::{endpoint, Setup, TestApp, User};
use crate::proxy::{
    Call, Fault, Proxy, DYNAMO_ACCESS_DENIED, DYNAMO_THROTTLED, S3_INTERNAL_ERROR, S3_SLOW_DOWN,
};

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
    let proxy = Proxy::start(&endpoint()).await;
    proxy.inject(Call::Dynamo("PutItem"), DYNAMO_THROTTLED, None);
    login_is_unavailable_through(proxy.address.clone()).await;
}

// ---- through the fault proxy, in front of the emulator ----

/// The service behind a fault proxy in front of the emulator, and a signed-in user.
async fn behind_proxy() -> (TestApp, Proxy, User) {
    let proxy = Proxy::start(&endpoint()).await;
    let setup = Setup { backend: Some(proxy.address.clone()), budget: tight(), ..Setup::default() };
    let app = TestApp::spawn_with(setup).await;
    let user = app.login("1").await;
    (app, proxy, user)
}

async fn upload(app: &TestApp, user: &User) -> reqwest::Response {
    app.upload(user, "memo.m4a", &b"audio bytes"[..]).await
}

/// 503 with Retry-After and a JSON error, within the budget (generous for a busy machine).
async fn assert_unavailable(response: reqwest::Response, started: Instant) {
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.expect("a JSON error body");
    assert!(body["error"].is_string(), "{body}");
}

/// Nothing of an upload stored: no record row, no object.
async fn assert_nothing_stored(app: &TestApp) {
    assert_eq!(app.rows(&RECORD_TABLE).await.len(), 0, "a record row was written");
    assert_eq!(app.object_keys().await, Vec::<String>::new(), "an object was left behind");
}

/// A row write that never answers may still land (DynamoDB can apply a write whose answer
/// timed out), so the upload keeps its object rather than risk a row without one: here the row
/// never came, and the object is an orphan the log names for reconcile.
#[tokio::test]
async fn a_stall_on_put_item_gets_503_and_leaves_no_row_and_names_the_object_it_keeps() {
    let (logs, _capturing) = crate::helpers::Logs::capture();
    let (app, proxy, user) = behind_proxy().await;
    proxy.inject(Call::Dynamo("PutItem"), Fault::Stall, None);
    let started = Instant::now();
    assert_unavailable(upload(&app, &user).await, started).await;
    assert_eq!(app.rows(&RECORD_TABLE).await.len(), 0, "a record row was written");
    let kept = app.object_keys().await;
    assert_eq!(kept.len(), 1);
    let named =
        logs.text().lines().any(|l| l.contains(app::storage::UPLOAD_ROW_IN_DOUBT) && l.contains(&kept[0]));
    assert!(named, "{}", logs.text());
}

#[tokio::test]
async fn a_stall_on_put_object_gets_503_and_leaves_no_row_and_no_object() {
    let (app, proxy, user) = behind_proxy().await;
    proxy.inject(Call::S3("PUT"), Fault::Stall, None);
    let started = Instant::now();
    assert_unavailable(upload(&app, &user).await, started).await;
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn throttling_on_the_first_attempt_is_retried_into_exactly_one_row() {
    let (app, proxy, user) = behind_proxy().await;
    proxy.inject(Call::Dynamo("PutItem"), DYNAMO_THROTTLED, Some(1));
    proxy.inject(Call::S3("PUT"), S3_SLOW_DOWN, Some(1));
    let response = upload(&app, &user).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(app.rows(&RECORD_TABLE).await.len(), 1);
    assert_eq!(app.object_keys().await.len(), 1);
    let forwarded = proxy.forwarded();
    assert_eq!(forwarded.iter().filter(|f| *f == "S3(PUT)").count(), 1, "{forwarded:?}");
}

/// The row is written but its answer is lost, so the SDK writes it again and the condition
/// (`attribute_not_exists(id)`) fails on the service's own row: the upload succeeded, and
/// nothing may be undone (the object deleted, the charge given back) for it.
#[tokio::test]
async fn a_lost_answer_to_the_row_write_is_the_upload_succeeding_not_failing() {
    let (app, proxy, user) = behind_proxy().await;
    proxy.inject(Call::Dynamo("PutItem"), Fault::LoseResponse, Some(1));
    let before = proxy.forwarded().len();

    let response = upload(&app, &user).await;

    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let forwarded = proxy.forwarded()[before..].to_vec();
    assert_eq!(forwarded.iter().filter(|f| *f == "Dynamo(PutItem)").count(), 2, "{forwarded:?}");
    assert!(!forwarded.contains(&"S3(DELETE)".to_owned()), "the object was deleted: {forwarded:?}");
    let list: serde_json::Value = app.get(&user, "/record/list").await.json().await.unwrap();
    let id = list["records"][0]["id"].as_str().expect("the record is listed").to_owned();
    let got: serde_json::Value = app.get(&user, &format!("/record/{id}")).await.json().await.unwrap();
    let audio = app.http.get(got["download_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(audio.bytes().await.unwrap(), &b"audio bytes"[..]);
    assert_eq!(app.object_keys().await.len(), 1);
}

/// The same for a large upload: its pending row's write, its quota claim and its publication
/// each lose their answer once. It is published once, charged once, and its audio kept.
#[tokio::test]
async fn lost_answers_to_a_large_uploads_row_writes_still_publish_it() {
    let (app, proxy, user) = behind_proxy().await;
    proxy.inject(Call::Dynamo("PutItem"), Fault::LoseResponse, Some(1));
    let request = serde_json::json!({ "file_name": "long.m4a", "content_type": "audio/mp4", "size": 11 });
    let response = app.post_json(&user, "/record/uploads", &request).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let upload: serde_json::Value = response.json().await.unwrap();
    let id = upload["record_id"].as_str().unwrap().to_owned();
    crate::helpers::put_presigned(&app, &upload, b"audio bytes".to_vec()).await;
    // `complete` claims the upload's quota window (the first UpdateItem), then publishes the
    // row (the second): each loses its answer once.
    proxy.inject(Call::Dynamo("UpdateItem"), Fault::LoseResponse, Some(1));
    // (A rule counts the requests it sees once the first is spent: the claim's retry, then this.)
    proxy.inject_after(Call::Dynamo("UpdateItem"), 1, Fault::LoseResponse, Some(1));
    let before = proxy.forwarded().len();

    let response = app.complete(&user, &id).await;

    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let forwarded = proxy.forwarded()[before..].to_vec();
    assert_eq!(forwarded.iter().filter(|f| *f == "Dynamo(UpdateItem)").count(), 4, "{forwarded:?}");
    let got: serde_json::Value = app.get(&user, &format!("/record/{id}")).await.json().await.unwrap();
    let audio = app.http.get(got["download_url"].as_str().expect("published")).send().await.unwrap();
    assert_eq!(audio.bytes().await.unwrap(), &b"audio bytes"[..]);
    let list: serde_json::Value = app.get(&user, "/record/list").await.json().await.unwrap();
    assert_eq!(list["records"].as_array().map(Vec::len), Some(1), "{list}");
    let usage = crate::helpers::usage(&app, &user).await;
    assert_eq!((usage["published"], usage["bytes"]), (1, 11), "{usage:?}");
}

/// A delete whose answer is lost: the SDK's retry finds the row gone (by the first attempt).
/// The record was there, so the delete is done for the user (200, not 404), its audio goes, and
/// the charge it could not read back is left to reconcile, with a line saying so.
#[tokio::test]
async fn a_lost_answer_to_a_delete_is_the_delete_done() {
    let (logs, _capturing) = crate::helpers::Logs::capture();
    let (app, proxy, user) = behind_proxy().await;
    let id = app.upload_ok(&user, "memo.m4a", b"audio bytes").await;
    proxy.inject(Call::Dynamo("DeleteItem"), Fault::LoseResponse, Some(1));

    let response = app.delete(&user, &format!("/record/{id}")).await;

    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert!(app.rows(&RECORD_TABLE).await.is_empty());
    assert_eq!(app.object_keys().await, Vec::<String>::new(), "the audio was left behind");
    let doubt = logs.text().lines().filter(|l| l.contains(app::storage::COUNTERS_MAY_BE_OFF)).count();
    assert_eq!(doubt, 1, "{}", logs.text());
    // A delete of a record that is not there stays a 404.
    assert_eq!(app.delete(&user, &format!("/record/{id}")).await.status(), 404);
}

/// The row write's first answer is lost and every retry is throttled: the upload answers 503,
/// but its row may be there (it is), so its object must stay: a whole record, logged as in doubt.
#[tokio::test]
async fn an_upload_whose_row_write_may_have_landed_keeps_its_object() {
    let (logs, _capturing) = crate::helpers::Logs::capture();
    let (app, proxy, user) = behind_proxy().await;
    proxy.inject(Call::Dynamo("PutItem"), Fault::LoseResponse, Some(1));
    proxy.inject(Call::Dynamo("PutItem"), DYNAMO_THROTTLED, None);

    let started = Instant::now();
    assert_unavailable(upload(&app, &user).await, started).await;

    let rows = app.rows(&RECORD_TABLE).await;
    assert_eq!(rows.len(), 1, "the first attempt wrote the row");
    assert_eq!(app.object_keys().await, [crate::helpers::string(&rows[0], "object_key")], "its object went");
    assert!(logs.text().contains(app::storage::UPLOAD_ROW_IN_DOUBT), "{}", logs.text());
}

#[tokio::test]
async fn persistent_throttling_of_an_upload_gets_503_and_nothing_half_written() {
    let (app, proxy, user) = behind_proxy().await;
    proxy.inject(Call::Dynamo("PutItem"), DYNAMO_THROTTLED, None);
    let started = Instant::now();
    assert_unavailable(upload(&app, &user).await, started).await;
    // The object went in first and was removed again when the row could not be written.
    assert!(proxy.forwarded().contains(&"S3(DELETE)".to_owned()), "{:?}", proxy.forwarded());
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn a_reset_in_the_middle_of_the_upload_body_leaves_no_row_and_no_object() {
    let (app, proxy, user) = behind_proxy().await;
    proxy.inject(Call::S3("PUT"), Fault::ResetMidBody, None);
    let started = Instant::now();
    assert_unavailable(upload(&app, &user).await, started).await;
    assert_nothing_stored(&app).await;

    // Once, then the retry goes through: stored once.
    let (app, proxy, user) = behind_proxy().await;
    proxy.inject(Call::S3("PUT"), Fault::ResetMidBody, Some(1));
    assert_eq!(upload(&app, &user).await.status(), 200);
    assert_eq!(app.rows(&RECORD_TABLE).await.len(), 1);
    assert_eq!(app.object_keys().await.len(), 1);
}

/// The backend goes away with requests in flight, then comes back: the in-flight request gets a
/// JSON 5xx, and the next ones succeed with the same service (its connection pool recovers).
/// The proxy plays the outage (resets in-flight connections, drops new ones): the emulator
/// keeps its state in memory, so killing it would also lose the tables.
#[tokio::test]
async fn an_outage_with_requests_in_flight_gets_json_5xx_and_the_service_recovers() {
    let (app, proxy, user) = behind_proxy().await;
    proxy.inject(Call::Dynamo("Query"), Fault::Delay(Duration::from_millis(300)), Some(1));
    let in_flight = {
        let (http, url, header) = (app.http.clone(), app.url("/record/list"), user.header());
        tokio::spawn(async move { http.get(url).header("Authorization", header).send().await })
    };
    // In flight for sure: the proxy holds the list's Query (300 ms) once it has seen it; had the
    // outage not reset it, it would be forwarded then and answered 200.
    let waited = Instant::now();
    while !proxy.seen().iter().any(|call| call == "Dynamo(Query)") {
        assert!(waited.elapsed() < Duration::from_secs(5), "the list never reached the backend");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.set_outage(true);
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("a JSON error body");
    assert!(body["error"].is_string(), "{body}");

    proxy.set_outage(false);
    let response = app.get(&user, "/record/list").await;
    assert_eq!(response.status(), 200);
    assert_eq!(upload(&app, &user).await.status(), 200);
}

/// Deleting a record removes its row first: the record is gone for the user. If the object's
/// DeleteObject then fails, the answer is still 200, the object is left (and logged) for
/// cleanup: stated in the README, and here.
#[tokio::test]
async fn a_delete_whose_delete_object_fails_is_done_for_the_user_and_leaves_the_object() {
    let (app, proxy, user) = behind_proxy().await;
    let id = app.upload_ok(&user, "memo.m4a", b"audio bytes").await;
    proxy.inject(Call::S3("DELETE"), S3_INTERNAL_ERROR, None);
    let response = app.delete(&user, &format!("/record/{id}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.rows(&RECORD_TABLE).await.len(), 0, "the row is gone");
    assert_eq!(app.object_keys().await.len(), 1, "the object is left for cleanup");
    assert_eq!(app.get(&user, &format!("/record/{id}")).await.status(), 404);
}

/// A list waits for one DynamoDB round trip, not two: the claimed user's Query goes out while
/// the key check's GetItem is still on its way (held here), and the page goes out only once the
/// key checked out: a wrong key gets 401 and no records, though its Query ran.
#[tokio::test]
async fn a_list_queries_while_the_key_is_checked_and_answers_only_a_valid_key() {
    let (app, proxy, user) = behind_proxy().await;
    app.upload_ok(&user, "memo.m4a", b"audio bytes").await;
    let order = |calls: &[String]| {
        let at = |label: &str| calls.iter().position(|c| c == label).unwrap_or(usize::MAX);
        (at("Dynamo(Query)"), at("Dynamo(GetItem)"))
    };

    // Held for less than the tight budget's attempt timeout, so it is not retried.
    let held = Fault::Delay(Duration::from_millis(300));
    let before = proxy.forwarded().len();
    proxy.inject(Call::Dynamo("GetItem"), held.clone(), Some(1));
    let response = app.get(&user, "/record/list").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["records"].as_array().map(Vec::len), Some(1), "{body}");
    let calls = proxy.forwarded().split_off(before);
    let (query, key_check) = order(&calls);
    assert!(query < key_check && key_check != usize::MAX, "the query waited for the key check: {calls:?}");

    let forged = User { id: user.id.clone(), key: "0a".repeat(32) };
    let before = proxy.forwarded().len();
    proxy.inject(Call::Dynamo("GetItem"), held, Some(1));
    let response = app.get(&forged, "/record/list").await;
    assert_eq!(response.status(), 401);
    let body = response.text().await.unwrap();
    assert!(!body.contains("memo.m4a") && !body.contains("records"), "{body}");
    let calls = proxy.forwarded().split_off(before);
    let (query, key_check) = order(&calls);
    assert!(query < key_check && key_check != usize::MAX, "{calls:?}");

    // A bad query string is the signed-in caller's mistake; anyone else hears 401 first.
    assert_eq!(app.get(&user, "/record/list?limit=0").await.status(), 400);
    assert_eq!(app.get(&forged, "/record/list?limit=0").await.status(), 401);
}

#[tokio::test]
async fn ready_proves_both_tables_and_the_bucket_and_a_denial_is_a_503_naming_only_what_failed() {
    let (logs, _guard) = crate::helpers::Logs::capture();
    let (app, proxy, _user) = behind_proxy().await;
    let ready = app.http.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready", "{body}");
    // One call to each: two GetItems and the bucket's DELETE of a key the service never writes.
    let seen = proxy.seen();
    for call in ["Dynamo(GetItem)", "S3(DELETE)"] {
        assert!(seen.iter().any(|s| s == call), "{call} not sent: {seen:?}");
    }

    proxy.inject(Call::Dynamo("GetItem"), DYNAMO_ACCESS_DENIED, Some(1));
    let started = Instant::now();
    let denied = app.http.get(app.url("/health/ready")).send().await.unwrap();
    let text = denied.text().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(error.starts_with("not ready: cannot reach the ") && error.contains("table"), "{error}");
    assert!(!text.contains("not authorized"), "the denial's text reached a public body: {text}");
    // The log holds the denial as AWS worded it, for `check-iam explain`.
    let log = logs.text();
    assert!(
        log.contains("aws call denied") && log.contains("is not authorized to perform: dynamodb:GetItem"),
        "{log}"
    );
}
