//! `GET /login` and `POST /logout`.

use std::time::Duration;

use app::schema::{user, USER_TABLE};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{assert_error, string, Setup, TestApp};

#[tokio::test]
async fn login_returns_the_seed_shape_and_a_256_bit_key() {
    let app = TestApp::spawn().await;
    let response = app.http.get(app.url("/login?social_id=12345&social_type=kakao")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user_id"], "kakao_12345");
    let key = body["auth_key"].as_str().unwrap();
    assert_eq!(key.len(), 64);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[tokio::test]
async fn login_stores_only_the_sha256_of_the_key_with_an_expiry() {
    let app = TestApp::spawn().await;
    let user = app.login("12345").await;

    let rows = app.rows(&USER_TABLE).await;
    assert_eq!(rows.len(), 1);
    let stored = string(&rows[0], user::AUTH_KEY_HASH);
    let expected: String = Sha256::digest(user.key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(stored, expected);
    assert!(
        !rows[0].values().any(|v| v.as_s().is_ok_and(|s| s.contains(&user.key))),
        "the key itself is stored"
    );
    let expires: i64 = rows[0][user::EXPIRES_AT].as_n().unwrap().parse().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now + 3500..=now + 3700).contains(&expires), "expires_at {expires} is not about an hour away");
}

#[tokio::test]
async fn login_without_a_query_string_returns_400_not_500() {
    let app = TestApp::spawn().await;
    for path in ["/login", "/login?social_type=kakao", "/login?social_id=&social_type=kakao"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_error(response, 400, "social_id or social_type is null.").await;
    }
}

#[tokio::test]
async fn login_with_an_invalid_social_type_returns_400() {
    let app = TestApp::spawn().await;
    let response = app.http.get(app.url("/login?social_id=1&social_type=Ka_kao")).send().await.unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn unverified_login_is_refused_unless_enabled() {
    let app = TestApp::spawn_with(Setup { allow_unverified_login: false, ..Setup::default() }).await;
    let response = app.http.get(app.url("/login?social_id=1&social_type=kakao")).send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert!(app.rows(&USER_TABLE).await.is_empty(), "a key was issued anyway");
}

#[tokio::test]
async fn each_login_issues_a_new_key_and_both_keep_working() {
    let app = TestApp::spawn().await;
    let phone = app.login("777").await;
    let tablet = app.login("777").await;
    assert_ne!(phone.key, tablet.key);
    for device in [&phone, &tablet] {
        assert_eq!(app.get(device, "/record/list").await.status(), 200);
    }
}

#[tokio::test]
async fn eight_concurrent_first_logins_of_one_user_all_return_working_keys() {
    let app = TestApp::spawn().await;
    let logins = futures::future::join_all((0..8).map(|_| app.login("first-timer"))).await;
    for user in &logins {
        assert_eq!(user.id, "kakao_first-timer");
        assert_eq!(
            app.get(user, "/record/list").await.status(),
            200,
            "a concurrent login's key does not work"
        );
    }
    assert_eq!(app.rows(&USER_TABLE).await.len(), 8);
}

#[tokio::test]
async fn logout_revokes_only_the_presented_key() {
    let app = TestApp::spawn().await;
    let phone = app.login("42").await;
    let tablet = app.login("42").await;

    let response =
        app.http.post(app.url("/logout")).header("Authorization", phone.header()).send().await.unwrap();
    assert_eq!(response.status(), 200);

    assert_error(app.get(&phone, "/record/list").await, 401, "Not Authorization").await;
    assert_eq!(app.get(&tablet, "/record/list").await.status(), 200);
}

#[tokio::test]
async fn an_expired_key_is_rejected_with_401() {
    let app = TestApp::spawn_with(Setup { key_ttl: Duration::ZERO, ..Setup::default() }).await;
    let user = app.login("42").await;
    assert_error(app.get(&user, "/record/list").await, 401, "Not Authorization").await;
}
