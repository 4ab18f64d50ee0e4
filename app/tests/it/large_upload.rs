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
    crate::helpers::put_presigned(&app, &upload, audio.clone()).await;

    let response = app.complete(&user, &id).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["record"]["size"], SEVEN_MIB);
    assert_eq!(listed_ids(&app, &user).await, std::slice::from_ref(&id));
    let record: Value = app.get(&user, &format!("/record/{id}")).await.json().await.unwrap();
    let download = app.http.get(record["download_url"].as_str().unwrap()).send().await.unwrap();
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

    crate::helpers::put_presigned(&app, &upload, vec![7u8; 60]).await;
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
    crate::helpers::put_presigned(&app, &upload, vec![1u8; 10]).await;
    let id = upload["record_id"].as_str().unwrap();

    let theirs = app.complete(&other, id).await;
    assert_error(theirs, 404, "record not found").await;
    let missing = uuid::Uuid::now_v7();
    let none = app.complete(&owner, &missing.to_string()).await;
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
    // The URL's 300 s and the 10 min grace: the row lasts as long as the upload's window.
    let closes = time::OffsetDateTime::now_utc().unix_timestamp() + 900;
    assert!((closes - 60..=closes).contains(&expires), "the row expires with its upload window: {expires}");

    crate::helpers::put_presigned(&app, &upload, b"good".to_vec()).await;
    assert_eq!(app.complete(&user, &id).await.status(), 200);
    let rows = app.rows(&RECORD_TABLE).await;
    assert!(!rows[0].contains_key(record::EXPIRES_AT), "a published row never expires");
    let key = crate::helpers::string(&rows[0], record::OBJECT_KEY);
    assert_eq!(app.object_keys().await, std::slice::from_ref(&key), "the staged object is removed");

    // A PUT after completion changes staging only; the published bytes stay.
    crate::helpers::put_presigned(&app, &upload, b"evil".to_vec()).await;
    assert_eq!(app.object_bytes(&key).await, b"good");
    assert_eq!(app.complete(&user, &id).await.status(), 200, "completing twice is harmless");
    assert_eq!(app.object_bytes(&key).await, b"good");

    // After a delete, a PUT leaves nothing outside staging (the lifecycle rule expires it).
    assert_eq!(app.delete(&user, &format!("/record/{id}")).await.status(), 200);
    crate::helpers::put_presigned(&app, &upload, b"late".to_vec()).await;
    let keys = app.object_keys().await;
    assert!(keys.iter().all(|k| k.starts_with(app::schema::STAGING_PREFIX)), "{keys:?}");
    assert!(app.rows(&RECORD_TABLE).await.is_empty());
}

/// A client that retries a timed-out `complete` while the first is still at work: exactly one
/// publishes; the others answer with the record as it now is, or 409 while the winner works,
/// never 404 or 500; and the published recording keeps its object. Conditional writes run on
/// dynalite, which applies them atomically as DynamoDB does (moto interleaves them).
#[tokio::test]
async fn racing_completes_publish_once_and_never_lose_the_recording() {
    use app::schema::RECORD_TABLE;
    let dynalite = crate::helpers::Dynalite::start();
    let setup = Setup { dynamodb_endpoint: Some(dynalite.endpoint.clone()), ..Setup::default() };
    let app = TestApp::spawn_with(setup).await;
    let user = app.login("retrying").await;
    for (trial, racers) in [2usize, 2, 3, 4, 8, 8].into_iter().enumerate() {
        let audio: Vec<u8> = (0..4096).map(|i| (i * 7 + trial) as u8).collect();
        let upload = start(&app, &user, audio.len()).await;
        let id = upload["record_id"].as_str().unwrap().to_owned();
        crate::helpers::put_presigned(&app, &upload, audio.clone()).await;

        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(racers));
        let answers = futures::future::join_all((0..racers).map(|_| {
            let (barrier, app, user, id) = (barrier.clone(), &app, &user, &id);
            async move {
                barrier.wait().await;
                let response = app.complete(user, id).await;
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            }
        }))
        .await;

        let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
        assert!(statuses.contains(&200), "trial {trial}: {answers:?}");
        for (status, body) in &answers {
            match status {
                200 => assert_eq!(body["record"]["id"], id.as_str(), "trial {trial}: {body}"),
                409 => assert_eq!(
                    body["error"],
                    "this upload is being completed by another request: retry shortly"
                ),
                _ => panic!("trial {trial}: a racing complete answered {status}: {body}"),
            }
        }
        let record: Value = app.get(&user, &format!("/record/{id}")).await.json().await.unwrap();
        let download = app.http.get(record["download_url"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(download.status(), 200, "trial {trial}: the published recording lost its object");
        assert_eq!(download.bytes().await.unwrap(), audio, "trial {trial}");
        assert_eq!(app.complete(&user, &id).await.status(), 200, "a later retry is answered 200");
    }
    let rows = app.rows(&RECORD_TABLE).await;
    let mut published: Vec<String> =
        rows.iter().map(|r| crate::helpers::string(r, app::schema::record::OBJECT_KEY)).collect();
    published.sort();
    let mut objects = app.object_keys().await;
    objects.sort();
    assert_eq!(objects, published, "one object per published row, and nothing left in staging");
    let usage = crate::helpers::usage(&app, &user).await;
    assert_eq!((usage["published"], usage["bytes"]), (6, 6 * 4096), "{usage:?}");
}

/// Headers a presigned PUT does not sign (so S3 lets an uploader add them) never reach the
/// published recording or its downloads: the copy replaces the metadata with ours.
#[tokio::test]
async fn unsigned_storage_headers_on_the_upload_do_not_survive_publishing() {
    let app = TestApp::spawn().await;
    let user = app.login("headers").await;
    let upload = start(&app, &user, 4).await;
    let id = upload["record_id"].as_str().unwrap().to_owned();
    let mut request = app.http.put(upload["upload_url"].as_str().unwrap());
    for (name, value) in upload["headers"].as_object().unwrap() {
        if name != "content-length" {
            request = request.header(name, value.as_str().unwrap());
        }
    }
    let smuggled = [
        ("content-encoding", "gzip"),
        ("cache-control", "public, max-age=31536000"),
        ("content-language", "de"),
        ("expires", "Thu, 01 Dec 2044 16:00:00 GMT"),
    ];
    for (name, value) in smuggled {
        request = request.header(name, value);
    }
    assert_eq!(request.body(b"data".to_vec()).send().await.unwrap().status(), 200);
    assert_eq!(app.complete(&user, &id).await.status(), 200);

    let record: Value = app.get(&user, &format!("/record/{id}")).await.json().await.unwrap();
    let download = app.http.get(record["download_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(download.status(), 200);
    let headers = download.headers().clone();
    assert_eq!(download.bytes().await.unwrap().as_ref(), b"data");
    for (name, value) in smuggled {
        assert_ne!(
            headers.get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{name} survived: {headers:?}"
        );
    }
    assert_eq!(headers["content-type"], "audio/mp4");
}

/// A staged object that is gone (removed by a delete's cleanup, or the lifecycle rule) is a
/// client error, and uploading again recovers.
#[tokio::test]
async fn completing_after_the_staged_object_is_gone_is_a_client_error_not_a_500() {
    let app = TestApp::spawn().await;
    let user = app.login("vanished").await;
    let upload = start(&app, &user, 4).await;
    let id = upload["record_id"].as_str().unwrap().to_owned();
    crate::helpers::put_presigned(&app, &upload, b"data".to_vec()).await;
    let staged = app.object_keys().await.pop().unwrap();
    app.s3.delete_object().bucket(&app.bucket).key(&staged).send().await.unwrap();

    assert_error(
        app.complete(&user, &id).await,
        400,
        "nothing was uploaded yet: PUT the file to upload_url first",
    )
    .await;
    crate::helpers::put_presigned(&app, &upload, b"data".to_vec()).await;
    assert_eq!(app.complete(&user, &id).await.status(), 200, "an upload again completes");
}
