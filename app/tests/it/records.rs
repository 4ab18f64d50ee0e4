//! `GET /record/list`, `GET /record/{id}`, `DELETE /record/{id}`.

use std::collections::HashSet;

use app::domain::UserId;
use app::schema::RECORD_TABLE;
use app::storage::RecordStore;
use serde_json::Value;

use crate::helpers::{assert_error, TestApp};

#[tokio::test]
async fn listing_25_records_10_at_a_time_returns_each_once_newest_first_and_only_the_callers() {
    let app = TestApp::spawn().await;
    let owner = app.login("owner").await;
    let other = app.login("other").await;
    let mut uploaded = HashSet::new();
    for i in 0..25 {
        uploaded.insert(app.upload_ok(&owner, &format!("{i}.m4a"), b"x").await);
        if i % 5 == 0 {
            app.upload_ok(&other, "not-yours.m4a", b"y").await;
        }
    }

    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &next {
            Some(token) => format!("/record/list?limit=10&next={token}"),
            None => "/record/list?limit=10".to_owned(),
        };
        let response = app.get(&owner, &path).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let records = body["records"].as_array().unwrap();
        assert!(records.len() <= 10);
        seen.extend(records.iter().cloned());
        pages += 1;
        match body["next"].as_str() {
            Some(token) => next = Some(token.to_owned()),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }

    assert!(seen.iter().all(|r| r["user_id"] == "kakao_owner"), "another user's record was listed");
    let ids: Vec<_> = seen.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 25, "some record was listed twice or not at all");
    assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), uploaded);
    let times: Vec<_> = seen.iter().map(|r| r["created_at"].as_str().unwrap().to_owned()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "not newest first: {times:?}");
    assert_eq!(seen[24]["file_name"], "0.m4a");
    // The list reads a projection of each row: what it shows is what the record itself shows.
    for listed in [&seen[0], &seen[24]] {
        let got: Value = app
            .get(&owner, &format!("/record/{}", listed["id"].as_str().unwrap()))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(&got["record"], listed);
    }
}

#[tokio::test]
async fn a_list_reads_only_the_callers_items_whatever_the_table_size() {
    let app = TestApp::spawn().await;
    let me = app.login("me").await;
    for _ in 0..3 {
        app.upload_ok(&me, "mine.m4a", b"x").await;
    }
    let others = futures::future::join_all((0..5).map(|i| app.login_social(i))).await;
    for user in &others {
        for _ in 0..4 {
            app.upload_ok(user, "theirs.m4a", b"x").await;
        }
    }
    let store = RecordStore::new(app.dynamodb.clone(), RECORD_TABLE.name(&app.prefix));

    let page = store.list_for_user(&UserId::parse(&me.id).unwrap(), 50, None).await.unwrap();

    // A Scan (the original) would examine all 23 items; a Query on the index examines 3.
    assert_eq!(page.records.len(), 3);
    assert_eq!(page.scanned_count, 3, "the list examined other users' items");
}

#[tokio::test]
async fn a_bad_limit_or_next_token_returns_400() {
    let app = TestApp::spawn().await;
    let user = app.login("1").await;
    for path in
        ["/record/list?limit=0", "/record/list?limit=101", "/record/list?limit=ten", "/record/list?next=zz"]
    {
        assert_eq!(app.get(&user, path).await.status(), 400, "{path}");
    }
}

#[tokio::test]
async fn get_returns_the_record_and_a_download_url_for_its_bytes() {
    let app = TestApp::spawn().await;
    let user = app.login("1").await;
    let id = app.upload_ok(&user, "memo.m4a", b"the audio").await;

    let response = app.get(&user, &format!("/record/{id}")).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["record"]["id"], id.as_str());
    let url = body["download_url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Signature="), "not a presigned URL: {url}");
    let download = app.http.get(url).send().await.unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(&download.bytes().await.unwrap()[..], b"the audio");
}

#[tokio::test]
async fn get_of_someone_elses_or_a_missing_record_returns_404() {
    let app = TestApp::spawn().await;
    let owner = app.login("owner").await;
    let thief = app.login("thief").await;
    let id = app.upload_ok(&owner, "memo.m4a", b"x").await;

    assert_error(app.get(&thief, &format!("/record/{id}")).await, 404, "record not found").await;
    let missing = uuid::Uuid::now_v7();
    assert_error(app.get(&owner, &format!("/record/{missing}")).await, 404, "record not found").await;
    assert_error(app.get(&owner, "/record/not-an-id").await, 404, "record not found").await;
}

#[tokio::test]
async fn delete_removes_the_row_and_the_object() {
    let app = TestApp::spawn().await;
    let user = app.login("1").await;
    let id = app.upload_ok(&user, "memo.m4a", b"x").await;

    let response = app.delete(&user, &format!("/record/{id}")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), serde_json::json!({ "result": "success" }));
    assert!(app.rows(&RECORD_TABLE).await.is_empty());
    assert!(app.object_keys().await.is_empty());
    // The original reported success for missing rows.
    assert_error(app.delete(&user, &format!("/record/{id}")).await, 404, "record not found").await;
}

#[tokio::test]
async fn delete_of_someone_elses_record_returns_404_and_keeps_the_file() {
    let app = TestApp::spawn().await;
    let owner = app.login("owner").await;
    let thief = app.login("thief").await;
    let id = app.upload_ok(&owner, "memo.m4a", b"x").await;

    assert_error(app.delete(&thief, &format!("/record/{id}")).await, 404, "record not found").await;

    assert_eq!(app.rows(&RECORD_TABLE).await.len(), 1);
    assert_eq!(app.object_keys().await.len(), 1);
    assert_eq!(app.get(&owner, &format!("/record/{id}")).await.status(), 200);
}
