//! Large recordings: `POST /record/uploads` (presigned PUT) and `POST /record/{id}/complete`.

use serde_json::{json, Value};

use crate::helpers::{assert_error, Setup, TestApp, User};

const SEVEN_MIB: usize = 7 * 1024 * 1024;

async fn start(app: &TestApp, user: &User, size: usize) -> Value {
    let request = json!({ "file_name": "long.m4a", "content_type": "audio/mp4", "size": size });
    let response = app.post_json(user, "/record/uploads", &request).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// PUT `body` to the presigned URL with the headers the service said to send.
async fn put(app: &TestApp, upload: &Value, body: Vec<u8>) {
    let mut request = app.http.put(upload["upload_url"].as_str().unwrap());
    for (name, value) in upload["headers"].as_object().unwrap() {
        if name != "content-length" {
            request = request.header(name, value.as_str().unwrap());
        }
    }
    let response = request.body(body).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

async fn listed_ids(app: &TestApp, user: &User) -> Vec<String> {
    let body: Value = app.get(user, "/record/list").await.json().await.unwrap();
    body["records"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_7_mib_recording_goes_through_a_presigned_put_and_is_listed_once_complete() {
    let app = TestApp::spawn().await;
    let user = app.login("1").await;
    let audio: Vec<u8> = (0..SEVEN_MIB).map(|i| (i % 251) as u8).collect();

    let upload = start(&app, &user, SEVEN_MIB).await;
    let id = upload["record_id"].as_str().unwrap().to_owned();
    assert!(listed_ids(&app, &user).await.is_empty(), "a pending upload was listed");
    assert_eq!(app.get(&user, &format!("/record/{id}")).await.status(), 404);
    put(&app, &upload, audio.clone()).await;

    let response = app
        .http
        .post(app.url(&format!("/record/{id}/complete")))
        .header("Authorization", user.header())
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["record"]["size"], SEVEN_MIB);
    assert_eq!(listed_ids(&app, &user).await, std::slice::from_ref(&id));
    let record: Value = app.get(&user, &format!("/record/{id}")).await.json().await.unwrap();
    let download = reqwest::get(record["download_url"].as_str().unwrap()).await.unwrap();
    assert_eq!(download.bytes().await.unwrap().len(), SEVEN_MIB);
}

#[tokio::test]
async fn the_presigned_put_signs_the_content_length_type_and_disposition() {
    // moto does not check presigned signatures, so this asserts on what we sign.
    let app = TestApp::spawn().await;
    let user = app.login("1").await;

    let upload = start(&app, &user, 1234).await;

    let url = upload["upload_url"].as_str().unwrap();
    let signed = url.split(['?', '&']).find_map(|p| p.strip_prefix("X-Amz-SignedHeaders=")).unwrap();
    assert_eq!(signed, "content-disposition%3Bcontent-length%3Bcontent-type%3Bhost");
    assert!(url.contains("X-Amz-Expires=300"), "{url}");
    assert_eq!(upload["headers"]["content-length"], "1234");
    assert_eq!(upload["headers"]["content-type"], "audio/mp4");
    assert_eq!(upload["method"], "PUT");
}

#[tokio::test]
async fn completing_with_an_object_of_the_wrong_size_returns_400_and_stays_unlisted() {
    let app = TestApp::spawn().await;
    let user = app.login("1").await;
    let upload = start(&app, &user, 100).await;
    let id = upload["record_id"].as_str().unwrap().to_owned();
    let complete = format!("/record/{id}/complete");

    let early =
        app.http.post(app.url(&complete)).header("Authorization", user.header()).send().await.unwrap();
    assert_error(early, 400, "nothing was uploaded yet: PUT the file to upload_url first").await;

    put(&app, &upload, vec![7u8; 60]).await;
    let response =
        app.http.post(app.url(&complete)).header("Authorization", user.header()).send().await.unwrap();

    assert_error(
        response,
        400,
        "the uploaded object is 60 bytes but 100 were declared: upload the declared file again",
    )
    .await;
    assert!(listed_ids(&app, &user).await.is_empty());
}

#[tokio::test]
async fn completing_someone_elses_or_a_missing_upload_returns_404() {
    let app = TestApp::spawn().await;
    let owner = app.login("owner").await;
    let other = app.login("other").await;
    let upload = start(&app, &owner, 10).await;
    put(&app, &upload, vec![1u8; 10]).await;
    let id = upload["record_id"].as_str().unwrap();

    let theirs = app
        .http
        .post(app.url(&format!("/record/{id}/complete")))
        .header("Authorization", other.header())
        .send()
        .await
        .unwrap();
    assert_error(theirs, 404, "record not found").await;
    let missing = uuid::Uuid::now_v7();
    let none = app
        .http
        .post(app.url(&format!("/record/{missing}/complete")))
        .header("Authorization", owner.header())
        .send()
        .await
        .unwrap();
    assert_error(none, 404, "record not found").await;
    assert!(listed_ids(&app, &owner).await.is_empty());
}

#[tokio::test]
async fn sizes_over_the_large_upload_limit_or_bad_requests_are_refused() {
    let app = TestApp::spawn_with(Setup { max_large_upload_bytes: 1000, ..Setup::default() }).await;
    let user = app.login("1").await;

    let big = app.post_json(&user, "/record/uploads", &json!({ "file_name": "a.m4a", "size": 1001 })).await;
    assert_error(big, 413, "recording is larger than the 1000-byte upload limit").await;
    let bad_name = app.post_json(&user, "/record/uploads", &json!({ "file_name": "../x", "size": 1 })).await;
    assert_eq!(bad_name.status(), 400);
    let no_size = app.post_json(&user, "/record/uploads", &json!({ "file_name": "a.m4a" })).await;
    assert_eq!(no_size.status(), 400);
    assert!(app.object_keys().await.is_empty());
}

async fn complete(app: &TestApp, user: &User, id: &str) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/record/{id}/complete")))
        .header("Authorization", user.header())
        .send()
        .await
        .unwrap()
}

/// The presigned URL writes to staging; `complete` copies, so the URL can never change or
/// resurrect a published recording. A pending row carries a TTL, a published one none.
#[tokio::test]
async fn the_upload_url_only_ever_touches_staging() {
    use app::schema::{record, RECORD_TABLE};
    let app = TestApp::spawn().await;
    let user = app.login("staging").await;
    let upload = start(&app, &user, 4).await;
    let id = upload["record_id"].as_str().unwrap().to_owned();
    assert!(upload["upload_url"].as_str().unwrap().contains("/staging/recordings/"), "{upload}");
    let pending = app.rows(&RECORD_TABLE).await;
    let expires: i64 = match &pending[0][record::EXPIRES_AT] {
        aws_sdk_dynamodb::types::AttributeValue::N(n) => n.parse().unwrap(),
        other => panic!("{other:?}"),
    };
    let in_a_day = time::OffsetDateTime::now_utc().unix_timestamp() + 24 * 3600;
    assert!((in_a_day..in_a_day + 400).contains(&expires), "the row expires with its staged object");

    put(&app, &upload, b"good".to_vec()).await;
    assert_eq!(complete(&app, &user, &id).await.status(), 200);
    let rows = app.rows(&RECORD_TABLE).await;
    assert!(!rows[0].contains_key(record::EXPIRES_AT), "a published row never expires");
    let key = crate::helpers::string(&rows[0], record::OBJECT_KEY);
    assert_eq!(app.object_keys().await, std::slice::from_ref(&key), "the staged object is removed");

    // A PUT after completion changes staging only; the published bytes stay.
    put(&app, &upload, b"evil".to_vec()).await;
    assert_eq!(app.object_bytes(&key).await, b"good");
    assert_eq!(complete(&app, &user, &id).await.status(), 200, "completing twice is harmless");
    assert_eq!(app.object_bytes(&key).await, b"good");

    // After a delete, a PUT leaves nothing outside staging (the lifecycle rule expires it).
    assert_eq!(app.delete(&user, &format!("/record/{id}")).await.status(), 200);
    put(&app, &upload, b"late".to_vec()).await;
    let keys = app.object_keys().await;
    assert!(keys.iter().all(|k| k.starts_with(app::schema::STAGING_PREFIX)), "{keys:?}");
    assert!(app.rows(&RECORD_TABLE).await.is_empty());
}
