//! Only audio is stored, and every download is a file download: a recording can never be
//! served back as a page, an image or a script from our bucket.

use app::schema::RECORD_TABLE;
use serde_json::{json, Value};

use crate::helpers::{assert_error, TestApp};

#[tokio::test]
async fn both_upload_routes_refuse_anything_but_audio_with_415_and_store_nothing() {
    let app = TestApp::spawn().await;
    let user = app.login("types").await;
    let refused = app::error::ApiError::UnsupportedMediaType.to_string();
    assert!(refused.starts_with("content type is not accepted: send one of audio/mpeg"));
    for kind in ["text/html", "image/svg+xml", "application/javascript", "text/html; charset=utf-8"] {
        let direct = app
            .http
            .put(app.url("/upload/record/page.html"))
            .header("Authorization", user.header())
            .header("Content-Type", kind)
            .body("<script>alert(1)</script>")
            .send()
            .await
            .unwrap();
        assert_error(direct, 415, &refused).await;
        let large = json!({ "file_name": "page.svg", "content_type": kind, "size": 10 });
        assert_error(app.post_json(&user, "/record/uploads", &large).await, 415, &refused).await;
    }
    assert!(app.rows(&RECORD_TABLE).await.is_empty());
    assert!(app.object_keys().await.is_empty());

    // Audio, with parameters, is stored under its plain type; no type at all is the seed's default.
    let opus = app
        .http
        .put(app.url("/upload/record/voice.ogg"))
        .header("Authorization", user.header())
        .header("Content-Type", "Audio/Ogg; codecs=opus")
        .body("OggS")
        .send()
        .await
        .unwrap();
    assert_eq!(opus.status(), 200);
    assert_eq!(opus.json::<Value>().await.unwrap()["record"]["content_type"], "audio/ogg");
    let untyped =
        app.http.put(app.url("/upload/record/raw")).header("Authorization", user.header()).body("x").send();
    let untyped: Value = untyped.await.unwrap().json().await.unwrap();
    assert_eq!(untyped["record"]["content_type"], "application/octet-stream");
}

#[tokio::test]
async fn a_download_is_an_attachment_named_as_uploaded_with_the_recorded_type() {
    let app = TestApp::spawn().await;
    let user = app.login("download").await;
    let name = "회의 \"final\".mp3";
    let encoded: String = name.bytes().map(|b| format!("%{b:02X}")).collect();
    let response = app
        .http
        .put(app.url(&format!("/upload/record/{encoded}")))
        .header("Authorization", user.header())
        .header("Content-Type", "audio/mpeg")
        .body("ID3")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = response.json::<Value>().await.unwrap()["record"]["id"].as_str().unwrap().to_owned();

    let record: Value = app.get(&user, &format!("/record/{id}")).await.json().await.unwrap();
    let url = record["download_url"].as_str().unwrap();
    // The overrides are in the signed query, so nobody can change them without breaking it.
    let signed = url.split("X-Amz-Signature").next().unwrap();
    assert!(signed.contains("response-content-disposition=attachment"), "{url}");
    assert!(signed.contains("response-content-type=audio%2Fmpeg"), "{url}");

    let download = app.http.get(url).send().await.unwrap();
    assert_eq!(download.status(), 200);
    let headers = download.headers();
    assert_eq!(headers["content-type"], "audio/mpeg");
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"__ _final_.mp3\"; filename*=UTF-8''%ED%9A%8C%EC%9D%98%20%22final%22.mp3"
    );
    assert_eq!(download.bytes().await.unwrap(), "ID3");
}

#[tokio::test]
async fn a_presigned_put_signs_a_fixed_content_disposition() {
    let app = TestApp::spawn().await;
    let user = app.login("put").await;
    let start = json!({ "file_name": "long.m4a", "content_type": "audio/mp4", "size": 3 });
    let upload: Value = app.post_json(&user, "/record/uploads", &start).await.json().await.unwrap();
    assert_eq!(upload["headers"]["content-disposition"], "attachment", "{upload}");
    let url = upload["upload_url"].as_str().unwrap();
    let signed_headers = url.split("X-Amz-SignedHeaders=").nth(1).unwrap().split('&').next().unwrap();
    assert!(signed_headers.split("%3B").any(|h| h == "content-disposition"), "{url}");
}

/// Keys, presigned URLs and records must not be kept by a browser, proxy or CDN cache.
#[tokio::test]
async fn answers_that_carry_a_key_or_a_url_are_never_cached() {
    let app = TestApp::spawn().await;
    let login = app.http.get(app.url("/login?social_type=kakao&social_id=cache")).send().await.unwrap();
    assert_eq!(login.headers()["cache-control"], "no-store");
    let user = app.login("cache").await;
    let id = app.upload_ok(&user, "a.m4a", b"a").await;
    let get = app.get(&user, &format!("/record/{id}")).await;
    assert_eq!(get.headers()["cache-control"], "no-store");
    let start = json!({ "file_name": "long.m4a", "content_type": "audio/mp4", "size": 3 });
    let upload = app.post_json(&user, "/record/uploads", &start).await;
    assert_eq!(upload.headers()["cache-control"], "no-store");
    let refused = app.http.get(app.url("/record/list")).send().await.unwrap();
    assert_eq!(refused.headers()["cache-control"], "no-store", "errors too");
}

/// Every S3 call of the service names the account that must own the bucket, so a bucket of the
/// same name in another account is never written to (moto does not check it: this checks what
/// is sent).
#[tokio::test]
async fn s3_calls_carry_the_expected_bucket_owner() {
    let tap = crate::proxy::Tap::start(&crate::helpers::endpoint()).await;
    let owner = "111122223333";
    let setup = crate::helpers::Setup {
        backend: Some(tap.address.clone()),
        bucket_owner: Some(owner.into()),
        ..crate::helpers::Setup::default()
    };
    let app = TestApp::spawn_with(setup).await;
    let user = app.login("owner").await;
    let id = app.upload_ok(&user, "a.m4a", b"a").await;
    assert_eq!(app.delete(&user, &format!("/record/{id}")).await.status(), 200);
    let start = json!({ "file_name": "long.m4a", "content_type": "audio/mp4", "size": 3 });
    let upload: Value = app.post_json(&user, "/record/uploads", &start).await.json().await.unwrap();
    assert_eq!(upload["headers"]["x-amz-expected-bucket-owner"], owner, "{upload}");
    // The client's presigned PUT, then complete: HeadObject, CopyObject, DeleteObject.
    let mut put = app.http.put(upload["upload_url"].as_str().unwrap());
    for (name, value) in upload["headers"].as_object().unwrap() {
        if name != "content-length" {
            put = put.header(name, value.as_str().unwrap());
        }
    }
    assert_eq!(put.body(b"abc".to_vec()).send().await.unwrap().status(), 200);
    let id = upload["record_id"].as_str().unwrap();
    assert_eq!(app.complete(&user, id).await.status(), 200);

    let s3: Vec<String> = ["S3(PUT)", "S3(DELETE)", "S3(HEAD)"].iter().flat_map(|l| tap.heads(l)).collect();
    // Upload, delete, presigned PUT, warm-up-free HEAD, copy, staged delete.
    assert!(s3.len() >= 6, "{:?}", tap.requests());
    for head in &s3 {
        assert!(head.contains(&format!("x-amz-expected-bucket-owner: {owner}")), "{head}");
    }
    let copy = s3.iter().find(|h| h.contains("x-amz-copy-source:")).expect("a CopyObject");
    assert!(copy.contains(&format!("x-amz-source-expected-bucket-owner: {owner}")), "{copy}");
    assert!(copy.contains("x-amz-copy-source-if-match:"), "the copy is tied to the checked ETag: {copy}");
    assert!(copy.contains("x-amz-metadata-directive: replace"), "{copy}");
}
