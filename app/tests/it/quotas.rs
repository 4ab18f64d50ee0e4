//! Per-user quotas, enforced by conditional writes: concurrent requests cannot together pass a
//! limit, and every charge is given back on delete or expiry.

use app::schema::RECORD_TABLE;
use app::storage::Limits;
use serde_json::{json, Value};

use crate::helpers::{assert_error, Setup, TestApp, User};

async fn app_with(limits: Limits) -> TestApp {
    TestApp::spawn_with(Setup { quotas: limits, ..Setup::default() }).await
}

async fn start(app: &TestApp, user: &User, size: u64) -> reqwest::Response {
    let body = json!({ "file_name": "long.m4a", "content_type": "audio/mp4", "size": size });
    app.post_json(user, "/record/uploads", &body).await
}

const MANY: Limits = Limits { pending_uploads: 1000, recordings: 1000, bytes: 1 << 40 };

/// On dynalite: moto interleaves concurrent conditional writes to one item (6 of 50 passed a
/// limit of 5 there once); DynamoDB and dynalite apply each atomically.
#[tokio::test]
async fn fifty_concurrent_upload_starts_against_a_limit_of_five_give_exactly_five() {
    let dynalite = crate::helpers::Dynalite::start();
    let setup = Setup {
        quotas: Limits { pending_uploads: 5, ..MANY },
        dynamodb_endpoint: Some(dynalite.endpoint.clone()),
        ..Setup::default()
    };
    let app = TestApp::spawn_with(setup).await;
    let user = app.login("rush").await;
    let statuses: Vec<u16> = futures::future::join_all((0..50).map(|_| start(&app, &user, 10)))
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 45, "{statuses:?}");
    assert_eq!(app.rows(&RECORD_TABLE).await.len(), 5);
    assert_error(
        start(&app, &user, 10).await,
        429,
        "quota reached: at most 5 pending uploads per user; complete or delete one first",
    )
    .await;
    // Another user has a quota of their own.
    assert_eq!(start(&app, &app.login("calm").await, 10).await.status(), 200);
}

#[tokio::test]
async fn bytes_are_charged_at_start_and_stay_charged_until_the_upload_window_closes() {
    let app = app_with(Limits { bytes: 1000, ..MANY }).await;
    let user = app.login("bytes").await;
    let first: Value = start(&app, &user, 600).await.json().await.unwrap();
    let over = "quota reached: at most 1000 bytes stored per user; delete recordings first";
    assert_error(start(&app, &user, 500).await, 413, over).await;
    assert_error(start(&app, &user, 1001).await, 413, over).await;
    let pending = first["record_id"].as_str().unwrap();
    assert_eq!(app.delete(&user, &format!("/record/{pending}")).await.status(), 200);
    // Its URL can still write 600 bytes to staging until the window closes.
    let staged = "quota reached: uploads started in the last minutes hold up to 1000 bytes until their upload windows close, even when completed or deleted: retry later";
    assert_error(start(&app, &user, 500).await, 429, staged).await;
    // Direct uploads count the recordings' bytes, which the delete gave back.
    let direct = app
        .http
        .put(app.url("/upload/record/a.m4a"))
        .header("Authorization", user.header())
        .body(vec![0u8; 401])
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 200);
    assert_error(app.upload(&user, "b.m4a", vec![0u8; 600]).await, 413, over).await;
    crate::helpers::close_upload_windows(&app, &user).await;
    assert_eq!(start(&app, &user, 500).await.status(), 200, "the closed window was refunded");
    assert_eq!(app.rows(&RECORD_TABLE).await.len(), 2);
}

/// A presigned URL cannot be revoked: deleting or completing its upload does not stop it from
/// writing to staging again. Twenty rounds of start, delete and PUT against a 10,000-byte cap
/// stored 180,000 uncharged bytes; now each round's bytes stay charged, and the second is refused.
#[tokio::test]
async fn staged_bytes_stay_within_the_bytes_quota_after_deletes_and_completes() {
    let app = app_with(Limits { bytes: 10_000, ..MANY }).await;
    let user = app.login("stager").await;
    let staged_over = "quota reached: uploads started in the last minutes hold up to 10000 bytes until their upload windows close, even when completed or deleted: retry later";
    let mut accepted = 0;
    for _ in 0..3 {
        let response = start(&app, &user, 9000).await;
        if response.status() != 200 {
            assert_error(response, 429, staged_over).await;
            continue;
        }
        accepted += 1;
        let upload: Value = response.json().await.unwrap();
        let id = upload["record_id"].as_str().unwrap();
        assert_eq!(app.delete(&user, &format!("/record/{id}")).await.status(), 200);
        crate::helpers::put_presigned(&app, &upload, vec![1u8; 9000]).await;
    }
    assert_eq!(accepted, 1, "only one window of 9000 bytes fits");
    let staged: Vec<String> = app.object_keys().await;
    assert_eq!(staged.len(), 1, "{staged:?}");
    let usage = crate::helpers::usage(&app, &user).await;
    assert_eq!((usage["staged"], usage["bytes"], usage["pending"]), (9000, 0, 1), "{usage:?}");

    // When the window closes, its staged object goes before its bytes come back.
    crate::helpers::close_upload_windows(&app, &user).await;
    let upload: Value = start(&app, &user, 4000).await.json().await.unwrap();
    assert!(app.object_keys().await.is_empty(), "the closed window's staged object was removed");

    // After a complete, the published copy and the window's staged bytes are both charged.
    crate::helpers::put_presigned(&app, &upload, vec![2u8; 4000]).await;
    let id = upload["record_id"].as_str().unwrap();
    assert_eq!(app.complete(&user, id).await.status(), 200);
    assert_eq!(app.object_keys().await.len(), 1, "the staged object is removed at once");
    assert_eq!(app.delete(&user, &format!("/record/{id}")).await.status(), 200);
    crate::helpers::put_presigned(&app, &upload, vec![3u8; 4000]).await;
    assert_error(start(&app, &user, 7000).await, 429, staged_over).await;
}

/// A deleted pending upload's staged object goes with it.
#[tokio::test]
async fn deleting_a_pending_upload_removes_its_staged_object() {
    let app = app_with(MANY).await;
    let user = app.login("tidy").await;
    let upload: Value = start(&app, &user, 5).await.json().await.unwrap();
    crate::helpers::put_presigned(&app, &upload, b"hello".to_vec()).await;
    assert_eq!(app.object_keys().await.len(), 1);
    let id = upload["record_id"].as_str().unwrap();
    assert_eq!(app.delete(&user, &format!("/record/{id}")).await.status(), 200);
    assert!(app.object_keys().await.is_empty());
}

/// An expired upload's charge does not block a direct upload: every path that checks the bytes
/// quota refunds closed windows first.
#[tokio::test]
async fn an_expired_pending_charge_does_not_block_direct_uploads() {
    let app = app_with(Limits { bytes: 10_000, ..MANY }).await;
    let user = app.login("direct").await;
    assert_eq!(start(&app, &user, 9000).await.status(), 200);
    assert_eq!(app.upload(&user, "a.m4a", vec![0u8; 2000]).await.status(), 413);
    crate::helpers::close_upload_windows(&app, &user).await;
    assert_eq!(app.upload(&user, "a.m4a", vec![0u8; 2000]).await.status(), 200);
    let usage = crate::helpers::usage(&app, &user).await;
    assert_eq!((usage["bytes"], usage["staged"], usage["pending"], usage["published"]), (2000, 0, 0, 1));
}

#[tokio::test]
async fn recordings_are_capped_and_a_delete_makes_room() {
    let app = app_with(Limits { recordings: 2, ..MANY }).await;
    let user = app.login("many").await;
    let first = app.upload_ok(&user, "1.m4a", b"1").await;
    app.upload_ok(&user, "2.m4a", b"2").await;
    let full = "quota reached: at most 2 recordings per user; delete one first";
    assert_error(app.upload(&user, "3.m4a", &b"3"[..]).await, 429, full).await;
    assert_eq!(app.object_keys().await.len(), 2, "a refused upload stores nothing");
    // Completing a large upload publishes a recording too.
    let pending: Value = start(&app, &user, 1).await.json().await.unwrap();
    let id = pending["record_id"].as_str().unwrap();
    let key = format!("{}recordings/kakao_many/{id}", app::schema::STAGING_PREFIX);
    app.s3.put_object().bucket(&app.bucket).key(key).body(vec![7u8].into()).send().await.unwrap();
    assert_error(app.complete(&user, id).await, 429, full).await;

    assert_eq!(app.delete(&user, &format!("/record/{first}")).await.status(), 200);
    assert_eq!(app.complete(&user, id).await.status(), 200, "the delete made room");
    assert_error(app.upload(&user, "4.m4a", &b"4"[..]).await, 429, full).await;
}

/// An upload that is never completed is refunded once it expires (its row and staged object go
/// by TTL and the lifecycle rule; the quota by the next start). The expiry is moved into the past
/// in the usage row, as a day passing would.
#[tokio::test]
async fn an_expired_pending_upload_is_refunded_by_the_next_start() {
    let app = app_with(Limits { pending_uploads: 1, ..MANY }).await;
    let user = app.login("late").await;
    assert_eq!(start(&app, &user, 10).await.status(), 200);
    assert_eq!(start(&app, &user, 10).await.status(), 429);

    crate::helpers::close_upload_windows(&app, &user).await;

    assert_eq!(start(&app, &user, 10).await.status(), 200, "the expired upload was refunded");
    assert_eq!(start(&app, &user, 10).await.status(), 429, "and counted only once");
}
