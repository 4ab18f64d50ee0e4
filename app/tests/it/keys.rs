//! Key hygiene: a cap on each user's live keys, expired keys cleared at login, and signing out
//! everywhere.

use std::time::Duration;

use app::schema::{user, USER_TABLE};
use serde_json::Value;

use crate::helpers::{assert_error, string, Setup, TestApp, User};

async fn works(app: &TestApp, user: &User) -> bool {
    app.get(user, "/record/list").await.status() == 200
}

/// The key rows stored for `user_id` (not its "signed out everywhere" row).
async fn key_rows(app: &TestApp, user_id: &str) -> usize {
    let rows = app.rows(&USER_TABLE).await;
    rows.iter()
        .filter(|r| string(r, user::ID) == user_id && string(r, user::AUTH_KEY_HASH) != user::SIGNED_OUT)
        .count()
}

#[tokio::test]
async fn a_new_login_beyond_the_cap_revokes_the_oldest_keys() {
    let app = TestApp::spawn_with(Setup { max_keys_per_user: 3, ..Setup::default() }).await;
    let mut keys = Vec::new();
    // No gap between the logins: within one second, the oldest are still the ones revoked.
    for _ in 0..6 {
        keys.push(app.login("capped").await);
    }
    let alive: Vec<bool> = futures::future::join_all(keys.iter().map(|k| works(&app, k))).await;
    assert_eq!(alive, [false, false, false, true, true, true]);
    assert_eq!(key_rows(&app, "kakao_capped").await, 3);
    // Another user's keys are untouched.
    let other = app.login("other").await;
    assert!(works(&app, &other).await);
}

#[tokio::test]
async fn many_logins_leave_at_most_the_cap_of_keys() {
    let app = TestApp::spawn_with(Setup { max_keys_per_user: 5, ..Setup::default() }).await;
    for _ in 0..30 {
        app.login("busy").await;
    }
    assert_eq!(key_rows(&app, "kakao_busy").await, 5);
}

#[tokio::test]
async fn expired_keys_are_removed_at_the_next_login() {
    let app = TestApp::spawn_with(Setup { key_ttl: Duration::from_secs(1), ..Setup::default() }).await;
    let old = app.login("expiring").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(!works(&app, &old).await);
    app.login("expiring").await;
    assert_eq!(key_rows(&app, "kakao_expiring").await, 1, "the expired key's row is gone");
}

#[tokio::test]
async fn logout_all_revokes_every_key_of_the_caller_and_only_theirs() {
    let app = TestApp::spawn().await;
    let devices =
        [app.login("everywhere").await, app.login("everywhere").await, app.login("everywhere").await];
    let other = app.login("bystander").await;

    let bad = app.http.post(app.url("/logout?all=yes")).header("Authorization", devices[0].header()).send();
    assert_error(bad.await.unwrap(), 400, "all must be true or false").await;
    assert!(works(&app, &devices[0]).await, "a refused logout revokes nothing");

    let response =
        app.http.post(app.url("/logout?all=true")).header("Authorization", devices[1].header()).send();
    let body: Value = response.await.unwrap().json().await.unwrap();
    assert_eq!((body["result"].as_str(), body["revoked"].as_u64()), (Some("success"), Some(3)));
    for device in &devices {
        assert!(!works(&app, device).await);
    }
    assert!(works(&app, &other).await);
    assert_eq!(key_rows(&app, "kakao_everywhere").await, 0);

    // A plain logout still revokes only the presented key.
    let (a, b) = (app.login("one").await, app.login("one").await);
    let plain = app.http.post(app.url("/logout")).header("Authorization", a.header()).send().await.unwrap();
    assert_eq!(plain.json::<Value>().await.unwrap()["revoked"], 1);
    assert!(!works(&app, &a).await && works(&app, &b).await);
}

/// Each login writes its key before it counts the user's keys, so the last to count sees them
/// all: 100 logins at once against a cap of 3 leave 3 (before: 90). On dynalite, which keeps up
/// with 100 requests at once where moto answers some slower than the service's time budget.
#[tokio::test]
async fn a_hundred_concurrent_logins_leave_at_most_the_cap_of_keys() {
    let dynalite = crate::helpers::Dynalite::start();
    let setup = Setup {
        max_keys_per_user: 3,
        dynamodb_endpoint: Some(dynalite.endpoint.clone()),
        ..Setup::default()
    };
    let app = TestApp::spawn_with(setup).await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(100));
    let keys = futures::future::join_all((0..100).map(|_| {
        let (barrier, app) = (barrier.clone(), &app);
        async move {
            barrier.wait().await;
            app.login("crowd").await
        }
    }))
    .await;
    let alive = futures::future::join_all(keys.iter().map(|k| works(&app, k))).await;
    let live = alive.iter().filter(|a| **a).count();
    assert!((1..=3).contains(&live), "{live} keys work");
    assert!(key_rows(&app, "kakao_crowd").await <= 3);
}

/// "Sign out everywhere" holds against logins in flight: a login that began before it either
/// had its key revoked by it, or sees it and revokes its own (answering 409). Only logins that
/// began after it keep a key.
#[tokio::test]
async fn logout_all_beside_concurrent_logins_leaves_no_key_from_before_it() {
    let app = TestApp::spawn().await;
    let device = app.login("racing").await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(21));
    let logins = (0..20).map(|_| {
        let (barrier, app) = (barrier.clone(), &app);
        async move {
            barrier.wait().await;
            app.http.get(app.url("/login?social_id=racing&social_type=kakao")).send().await.unwrap().status()
        }
    });
    let logout = async {
        barrier.wait().await;
        let response =
            app.http.post(app.url("/logout?all=true")).header("Authorization", device.header()).send();
        response.await.unwrap().status()
    };
    let (statuses, logout) = tokio::join!(futures::future::join_all(logins), logout);
    assert_eq!(logout, 200);
    assert!(statuses.iter().all(|s| *s == 200 || *s == 409), "{statuses:?}");

    let rows: Vec<_> =
        app.rows(&USER_TABLE).await.into_iter().filter(|r| string(r, user::ID) == "kakao_racing").collect();
    let millis = |r: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>| -> i64 {
        r[user::ISSUED_AT_MS].as_n().unwrap().parse().unwrap()
    };
    let marker =
        rows.iter().find(|r| string(r, user::AUTH_KEY_HASH) == user::SIGNED_OUT).expect("a signed-out row");
    let signed_out = millis(marker);
    for row in rows.iter().filter(|r| string(r, user::AUTH_KEY_HASH) != user::SIGNED_OUT) {
        assert!(millis(row) > signed_out, "a key issued by a login that began before the sign-out survived");
    }
    assert!(!works(&app, &device).await);
}
