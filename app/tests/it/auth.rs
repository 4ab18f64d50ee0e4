//! The `Authorization` header and error responses shared by every route.

use crate::helpers::{assert_error, TestApp, User};

#[tokio::test]
async fn a_missing_authorization_header_returns_the_seeds_400() {
    let app = TestApp::spawn().await;
    let response = app.http.get(app.url("/record/list")).send().await.unwrap();
    assert_error(response, 400, "Authorization Header is required.").await;
}

#[tokio::test]
async fn malformed_authorization_headers_return_400_not_500() {
    let app = TestApp::spawn().await;
    let key = "ab".repeat(32);
    let headers: [&[u8]; 4] =
        [b"kakao_1", format!("kakao_1 {key} extra").as_bytes().to_vec().leak(), b"kakao_1 \xff\xfe", b" "];
    for header in headers {
        let value = reqwest::header::HeaderValue::from_bytes(header).unwrap();
        let response =
            app.http.get(app.url("/record/list")).header("Authorization", value).send().await.unwrap();
        assert_error(response, 400, "authorization header must be '<user_id> <auth_key>'").await;
    }
}

#[tokio::test]
async fn a_key_that_was_never_issued_returns_401() {
    let app = TestApp::spawn().await;
    let real = app.login("1").await;
    let forged = User { id: real.id.clone(), key: "0".repeat(64) };
    assert_error(app.get(&forged, "/record/list").await, 401, "Not Authorization").await;
    // Someone else's key does not work for this user either.
    let other = app.login("2").await;
    let swapped = User { id: real.id, key: other.key };
    assert_error(app.get(&swapped, "/record/list").await, 401, "Not Authorization").await;
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = TestApp::spawn().await;
    let response = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let response = app.http.post(app.url("/record/list")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["content-type"], "application/json");
}

#[tokio::test]
async fn health_answers_without_authorization() {
    let app = TestApp::spawn().await;
    let response = app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
}
