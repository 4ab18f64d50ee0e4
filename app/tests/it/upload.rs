//! `PUT /upload/record/{file_name}`.

use std::collections::HashSet;

use app::schema::{record, RECORD_TABLE};
use aws_sdk_s3::types::Type;
use serde_json::Value;

use crate::helpers::{assert_error, string, Setup, TestApp};

#[tokio::test]
async fn an_upload_stores_a_private_object_and_a_row_pointing_at_it() {
    let app = TestApp::spawn().await;
    let user = app.login("1").await;

    let response = app.upload(&user, "memo.m4a", &b"hello audio"[..]).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"], "success");
    assert_eq!(body["record"]["file_name"], "memo.m4a");
    assert_eq!(body["record"]["user_id"], "kakao_1");
    assert_eq!(body["record"]["size"], 11);
    assert!(body["record"].get("object_key").is_none(), "internal key leaked");

    let rows = app.rows(&RECORD_TABLE).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(string(&rows[0], record::ID), body["record"]["id"].as_str().unwrap());
    let key = string(&rows[0], record::OBJECT_KEY);
    assert_eq!(app.object_keys().await, std::slice::from_ref(&key));
    assert_eq!(app.object_bytes(&key).await, b"hello audio");

    // The original made every object public-read. Ours grant nothing to anyone else.
    let acl = app.s3.get_object_acl().bucket(&app.bucket).key(&key).send().await.unwrap();
    for grant in acl.grants() {
        let grantee = grant.grantee().unwrap();
        assert_eq!(grantee.r#type(), &Type::CanonicalUser, "object granted to {grantee:?}");
    }
}

#[tokio::test]
async fn fifty_concurrent_uploads_of_the_same_name_make_fifty_rows_and_objects() {
    let app = TestApp::spawn().await;
    let user = app.login("1").await;

    let responses =
        futures::future::join_all((0..50).map(|_| app.upload(&user, "same.m4a", &b"x"[..]))).await;

    assert!(responses.iter().all(|r| r.status() == 200));
    let rows = app.rows(&RECORD_TABLE).await;
    let ids: HashSet<_> = rows.iter().map(|r| string(r, record::ID)).collect();
    assert_eq!(ids.len(), 50);
    let keys: HashSet<_> = app.object_keys().await.into_iter().collect();
    assert_eq!(keys.len(), 50);
    let row_keys: HashSet<_> = rows.iter().map(|r| string(r, record::OBJECT_KEY)).collect();
    assert_eq!(keys, row_keys, "every row points at its own object");
}

#[tokio::test]
async fn an_upload_over_the_limit_returns_413_json_and_stores_nothing() {
    let app = TestApp::spawn_with(Setup { max_upload_bytes: 1024, ..Setup::default() }).await;
    let user = app.login("1").await;

    let response = app.upload(&user, "big.m4a", vec![0u8; 1025]).await;

    assert_error(response, 413, "recording is larger than the 1024-byte upload limit").await;
    assert!(app.object_keys().await.is_empty());
    assert!(app.rows(&RECORD_TABLE).await.is_empty());
    assert_eq!(app.upload(&user, "fits.m4a", vec![0u8; 1024]).await.status(), 200);
}

#[tokio::test]
async fn file_names_with_separators_dot_dot_control_characters_or_over_255_bytes_return_400() {
    let app = TestApp::spawn().await;
    let user = app.login("1").await;
    let too_long = "a".repeat(256);
    // A bare `..` segment is covered by `a_dot_dot_file_name_sent_verbatim_returns_400`: URL
    // libraries normalise it away before sending.
    for name in ["a%2Fb", "a%5Cb", "x..y", "..%2Fescape", "bad%01name", "tab%09name", too_long.as_str()] {
        let response = app.upload(&user, name, &b"x"[..]).await;
        assert_eq!(response.status(), 400, "{name} was accepted");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().starts_with("file name"), "{body}");
    }
    assert!(app.object_keys().await.is_empty());
    assert_eq!(app.upload(&user, &"a".repeat(255), &b"x"[..]).await.status(), 200);
}

#[tokio::test]
async fn an_empty_body_returns_400() {
    let app = TestApp::spawn().await;
    let user = app.login("1").await;
    assert_error(app.upload(&user, "empty.m4a", Vec::new()).await, 400, "recording body is empty").await;
}

#[tokio::test]
async fn an_upload_whose_row_write_fails_leaves_no_object_behind() {
    let app = TestApp::spawn_with(Setup { without_record_table: true, ..Setup::default() }).await;
    let user = app.login("1").await;

    let response = app.upload(&user, "memo.m4a", &b"hello"[..]).await;

    assert_error(response, 500, "internal error").await;
    assert!(app.object_keys().await.is_empty(), "the object of a failed upload was left behind");
}

#[tokio::test]
async fn an_upload_without_a_valid_key_stores_nothing() {
    let app = TestApp::spawn().await;
    let response = app.http.put(app.url("/upload/record/a.m4a")).body("x").send().await.unwrap();
    assert_error(response, 400, "Authorization Header is required.").await;
    assert!(app.object_keys().await.is_empty());
}

#[tokio::test]
async fn a_dot_dot_file_name_sent_verbatim_returns_400() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let user = app.login("1").await;
    let mut stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    let request = format!(
        "PUT /upload/record/.. HTTP/1.1\r\nHost: test\r\nAuthorization: {}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
        user.header()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("file name contains '..'"), "{response}");
    assert!(app.object_keys().await.is_empty());
}

/// A name with a right-to-left override displays as something else (`a` U+202E `gpj.html`
/// shows as `almth.jpg`); zero-width characters hide in names too. Both are refused.
#[tokio::test]
async fn file_names_with_bidirectional_or_zero_width_characters_are_refused() {
    let app = TestApp::spawn().await;
    let user = app.login("bidi").await;
    for name in ["a%E2%80%AEgpj.html", "memo%E2%80%8B.m4a", "%E2%81%A6memo.m4a", "%EF%BB%BFmemo.m4a"] {
        let response = app.upload(&user, name, &b"x"[..]).await;
        assert_error(
            response,
            400,
            "file name contains a bidirectional or zero-width character: use a plain file name",
        )
        .await;
    }
    let start = serde_json::json!({ "file_name": "a\u{202E}gpj.html", "size": 1 });
    assert_eq!(app.post_json(&user, "/record/uploads", &start).await.status(), 400);
    assert!(app.object_keys().await.is_empty());
}
