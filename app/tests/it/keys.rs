//! Key hygiene: a cap on each user's live keys, expired keys cleared at login, and signing out
//! everywhere.

use std::time::Duration;

use app::schema::{user, USER_TABLE};
use serde_json::Value;

use crate::helpers::{assert_error, string, Setup, TestApp, User};

async fn works(app: &TestApp, user: &User) -> bool {
    app.get(user, "/record/list").await.status() == 200
}

/// The key rows stored for `user_id`.
async fn key_rows(app: &TestApp, user_id: &str) -> usize {
    app.rows(&USER_TABLE).await.iter().filter(|r| string(r, user::ID) == user_id).count()
}

#[tokio::test]
async fn a_new_login_beyond_the_cap_revokes_the_oldest_keys() {
    let app = TestApp::spawn_with(Setup { max_keys_per_user: 3, ..Setup::default() }).await;
    let mut keys = Vec::new();
    for _ in 0..5 {
        keys.push(app.login("capped").await);
        // Keys are ordered by their creation second.
        tokio::time::sleep(Duration::from_millis(1010)).await;
    }
    let alive: Vec<bool> = futures::future::join_all(keys.iter().map(|k| works(&app, k))).await;
    assert_eq!(alive, [false, false, true, true, true]);
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
