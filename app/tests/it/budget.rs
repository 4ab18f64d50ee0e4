//! The request budget, counted: every AWS call each route makes, on its longest paths (failures
//! and compensations included), seen at the fault proxy with one attempt per call. No path may
//! make more than `MAX_CALLS_PER_REQUEST` calls, which sets the time budget deploy checks the
//! function timeout against; and the longest path makes exactly that many, so the constant is
//! neither short nor padded.

use app::config::{AwsBudget, MAX_CALLS_PER_REQUEST};
use app::storage::Limits;
use serde_json::{json, Value};

use crate::helpers::{close_upload_windows, endpoint, Setup, TestApp, User};
use crate::proxy::{Call, Proxy, DYNAMO_CONDITION_FAILED, DYNAMO_INVALID};

/// One attempt per call, so each request the proxy sees is one call of the chain.
fn one_attempt() -> AwsBudget {
    AwsBudget { max_attempts: 1, ..AwsBudget::default() }
}

async fn behind_proxy(limits: Limits) -> (TestApp, Proxy, User) {
    let proxy = Proxy::start(&endpoint()).await;
    let setup = Setup {
        backend: Some(proxy.address.clone()),
        budget: one_attempt(),
        quotas: limits,
        ..Setup::default()
    };
    let app = TestApp::spawn_with(setup).await;
    let user = app.login("counted").await;
    (app, proxy, user)
}

/// The calls `request` makes, and its status.
async fn count<F: std::future::Future<Output = reqwest::Response>>(
    proxy: &Proxy,
    request: F,
) -> (Vec<String>, u16) {
    let before = proxy.seen().len();
    let status = request.await.status().as_u16();
    (proxy.seen()[before..].to_vec(), status)
}

async fn start(app: &TestApp, user: &User, size: u64) -> reqwest::Response {
    let body = json!({ "file_name": "long.m4a", "content_type": "audio/mp4", "size": size });
    app.post_json(user, "/record/uploads", &body).await
}

#[tokio::test]
async fn no_route_makes_more_aws_calls_in_a_row_than_the_budget_counts() {
    let mut longest: Vec<(&str, Vec<String>)> = Vec::new();
    let limits = Limits { pending_uploads: 100, recordings: 100, bytes: 10_000 };

    // A direct upload whose charge meets a closed upload window (refunded: its staged object
    // removed first), and whose row then cannot be written (object removed, charge given back).
    let (app, proxy, user) = behind_proxy(limits).await;
    assert_eq!(start(&app, &user, 9000).await.status(), 200);
    close_upload_windows(&app, &user).await;
    proxy.inject(Call::Dynamo("PutItem"), DYNAMO_INVALID, Some(1));
    let (calls, status) = count(&proxy, app.upload(&user, "memo.m4a", vec![1u8; 2000])).await;
    assert_eq!(status, 500, "{calls:?}");
    longest.push(("PUT /upload/record (refund, row fails)", calls));

    // Starting a large upload the same way: refund, then the pending row fails.
    let (app, proxy, user) = behind_proxy(limits).await;
    assert_eq!(start(&app, &user, 9000).await.status(), 200);
    close_upload_windows(&app, &user).await;
    proxy.inject(Call::Dynamo("PutItem"), DYNAMO_INVALID, Some(1));
    let (calls, status) = count(&proxy, start(&app, &user, 9000)).await;
    assert_eq!(status, 500, "{calls:?}");
    longest.push(("POST /record/uploads (refund, row fails)", calls));

    // Completing, when the publish is refused (the row deleted meanwhile): the copy removed and
    // the claim given back.
    let (app, proxy, user) = behind_proxy(limits).await;
    let upload: Value = start(&app, &user, 4).await.json().await.unwrap();
    crate::helpers::put_presigned(&app, &upload, b"data".to_vec()).await;
    let id = upload["record_id"].as_str().unwrap().to_owned();
    // The claim is the first UpdateItem, the publish the second.
    proxy.inject_after(Call::Dynamo("UpdateItem"), 1, DYNAMO_CONDITION_FAILED, Some(1));
    let (calls, status) = count(&proxy, app.complete(&user, &id)).await;
    assert_eq!(status, 404, "{calls:?}");
    longest.push(("POST /record/{id}/complete (publish refused)", calls));
    // And when it succeeds; a repeat finds it published.
    let (calls, status) = count(&proxy, app.complete(&user, &id)).await;
    assert_eq!(status, 200, "{calls:?}");
    longest.push(("POST /record/{id}/complete", calls));
    let (calls, status) = count(&proxy, app.complete(&user, &id)).await;
    assert_eq!(status, 200, "{calls:?}");
    longest.push(("POST /record/{id}/complete (repeated)", calls));

    // Deleting a pending upload: the row, the charge, the staged object, the (absent) object.
    let pending: Value = start(&app, &user, 4).await.json().await.unwrap();
    let pending = pending["record_id"].as_str().unwrap().to_owned();
    let (calls, status) = count(&proxy, app.delete(&user, &format!("/record/{pending}"))).await;
    assert_eq!(status, 200, "{calls:?}");
    longest.push(("DELETE /record/{id} (pending)", calls));
    let (calls, _) = count(&proxy, app.get(&user, &format!("/record/{id}"))).await;
    longest.push(("GET /record/{id}", calls));
    let (calls, _) = count(&proxy, app.get(&user, "/record/list")).await;
    longest.push(("GET /record/list", calls));
    let login = app.http.get(app.url("/login?social_id=counted&social_type=kakao")).send();
    let (calls, _) = count(&proxy, async { login.await.unwrap() }).await;
    longest.push(("GET /login", calls));
    let logout = app.http.post(app.url("/logout?all=true")).header("Authorization", user.header()).send();
    let (calls, _) = count(&proxy, async { logout.await.unwrap() }).await;
    longest.push(("POST /logout?all=true", calls));

    let report: Vec<String> =
        longest.iter().map(|(path, calls)| format!("{path}: {} calls {calls:?}", calls.len())).collect();
    let most = longest.iter().map(|(_, calls)| calls.len()).max().unwrap();
    for (path, calls) in &longest {
        assert!(
            calls.len() <= MAX_CALLS_PER_REQUEST as usize,
            "{path} makes {} AWS calls, over MAX_CALLS_PER_REQUEST ({MAX_CALLS_PER_REQUEST}):\n{}",
            calls.len(),
            report.join("\n")
        );
    }
    assert_eq!(
        most,
        MAX_CALLS_PER_REQUEST as usize,
        "the longest path makes {most} calls: set MAX_CALLS_PER_REQUEST to that\n{}",
        report.join("\n")
    );
    println!("{}", report.join("\n"));
}
