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

    let download = reqwest::get(url).await.unwrap();
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
