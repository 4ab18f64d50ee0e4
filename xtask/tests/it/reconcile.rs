//! `cargo xtask reconcile` against a moto of its own (its recorder counts the writes), with the
//! real service running in-process on the same tables and bucket: debris of each kind made by
//! hand, a dry run that writes nothing, a repair, a second run that writes nothing, and a run
//! while uploads and deletes go on.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{is_write, unique_prefix, xtask, OwnMoto, Run};

struct Stage {
    moto: OwnMoto,
    prefix: String,
    bucket: String,
    aws: xtask::aws::Aws,
    /// The service, in-process, on the stage's data.
    base: String,
    http: reqwest::Client,
}

impl Stage {
    async fn start() -> Stage {
        let moto = OwnMoto::start();
        let prefix = unique_prefix();
        let bucket = format!("{}bucket", prefix);
        xtask(moto.endpoint(), &["create-tables", "--table-prefix", &prefix]).ok();
        let aws = xtask::aws::Aws::emulator(moto.endpoint()).await;
        aws.s3().create_bucket().bucket(&bucket).send().await.unwrap();
        let (endpoint, b, p) = (moto.endpoint().to_owned(), bucket.clone(), prefix.clone());
        let config = app::config::Config::from_lookup(|name| match name {
            "RECORD_BUCKET" => Some(b.clone()),
            "RECORD_TABLE_PREFIX" => Some(p.clone()),
            "RECORD_ALLOW_UNVERIFIED_LOGIN" => Some("true".into()),
            "RECORD_WARM_UP" => Some("false".into()),
            "AWS_ENDPOINT_URL" => Some(endpoint.clone()),
            _ => None,
        })
        .unwrap();
        let state = app::state::AppState::with_clients(
            aws_sdk_dynamodb::config::Builder::from(&aws.sdk),
            aws_sdk_s3::config::Builder::from(&aws.sdk).force_path_style(true),
            &config,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app::router(state)).await });
        Stage { moto, prefix, bucket, aws, base, http: reqwest::Client::new() }
    }

    fn reconcile(&self, extra: &[&str]) -> Run {
        let args = [
            &["reconcile", "--stage", "rc", "--table-prefix", &self.prefix, "--bucket", &self.bucket][..],
            extra,
        ]
        .concat();
        xtask(self.moto.endpoint(), &args)
    }

    async fn login(&self, who: &str) -> String {
        let url = format!("{}/login?social_type=kakao&social_id={who}", self.base);
        let login: Value = self.http.get(url).send().await.unwrap().json().await.unwrap();
        format!("{} {}", login["user_id"].as_str().unwrap(), login["auth_key"].as_str().unwrap())
    }

    async fn upload(&self, auth: &str, name: &str) -> String {
        let response = self
            .http
            .put(format!("{}/upload/record/{name}", self.base))
            .header("Authorization", auth)
            .header("Content-Type", "audio/mp4")
            .body(&b"some audio"[..])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["record"]["id"].as_str().unwrap().to_owned()
    }

    async fn delete(&self, auth: &str, id: &str) {
        let response = self
            .http
            .delete(format!("{}/record/{id}", self.base))
            .header("Authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    async fn stored(&self) -> xtask::stored::Stored {
        xtask::stored::Stored::read(
            &self.aws.dynamodb(),
            &self.aws.s3(),
            &format!("{}record_user", self.prefix),
            &format!("{}record_record", self.prefix),
            &self.bucket,
            &|_| {},
        )
        .await
        .unwrap()
    }

    fn user_table(&self) -> String {
        format!("{}record_user", self.prefix)
    }

    fn record_table(&self) -> String {
        format!("{}record_record", self.prefix)
    }
}

fn kinds(report: &Value) -> Vec<(String, String)> {
    let mut kinds: Vec<(String, String)> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["kind"].as_str().unwrap().to_owned(), i["outcome"].as_str().unwrap().to_owned()))
        .collect();
    kinds.sort();
    kinds
}

/// One piece of each kind of debris, made as the failures the service logs leave it.
async fn debris(stage: &Stage, auth: &str) -> String {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let user = auth.split(' ').next().unwrap().to_owned();
    let kept = stage.upload(auth, "kept.m4a").await;
    // A delete whose refund failed: the row is gone, the counters still charge it.
    let refund_failed = stage.upload(auth, "refund-failed.m4a").await;
    let dynamodb = stage.aws.dynamodb();
    let row = |id: &str| {
        dynamodb
            .delete_item()
            .table_name(stage.record_table())
            .key("id", A::S(id.to_owned()))
            .key("user_id", A::S(user.clone()))
    };
    row(&refund_failed).send().await.unwrap();
    let s3 = stage.aws.s3();
    s3.delete_object()
        .bucket(&stage.bucket)
        .key(format!("recordings/{user}/{refund_failed}"))
        .send()
        .await
        .unwrap();
    // A delete whose DeleteObject failed: the object stays, with no row.
    let orphan = stage.upload(auth, "orphan.m4a").await;
    row(&orphan).send().await.unwrap();
    dynamodb
        .update_item()
        .table_name(stage.user_table())
        .key("id", A::S(format!("usage#{user}")))
        .key("auth_key", A::S("usage".into()))
        .update_expression("ADD published :minus, #bytes :bytes")
        .expression_attribute_names("#bytes", "bytes")
        .expression_attribute_values(":minus", A::N("-1".into()))
        .expression_attribute_values(":bytes", A::N("-10".into()))
        .send()
        .await
        .unwrap();
    // A recording whose object went missing: its row stays listed.
    let dangling = stage.upload(auth, "dangling.m4a").await;
    s3.delete_object()
        .bucket(&stage.bucket)
        .key(format!("recordings/{user}/{dangling}"))
        .send()
        .await
        .unwrap();
    // A large upload whose window closed, still charged, its staged object still there.
    let start =
        serde_json::json!({ "file_name": "long.m4a", "content_type": "audio/mp4", "size": 2_000_000 });
    let started = stage
        .http
        .post(format!("{}/record/uploads", stage.base))
        .header("Authorization", auth)
        .json(&start)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 200);
    let started: Value = started.json().await.unwrap();
    let pending = started["record_id"].as_str().unwrap().to_owned();
    let window = format!("p_{}", pending.replace('-', ""));
    let staged = format!("staging/recordings/{user}/{pending}");
    s3.put_object().bucket(&stage.bucket).key(&staged).body(b"partial".to_vec().into()).send().await.unwrap();
    dynamodb
        .update_item()
        .table_name(stage.user_table())
        .key("id", A::S(format!("usage#{user}")))
        .key("auth_key", A::S("usage".into()))
        .update_expression("SET #w.#e = :past")
        .expression_attribute_names("#w", &window)
        .expression_attribute_names("#e", "expires")
        .expression_attribute_values(":past", A::N("1000".into()))
        .send()
        .await
        .unwrap();
    kept
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_debris_is_found_repaired_once_and_a_second_run_writes_nothing() {
    let stage = Stage::start().await;
    let auth = stage.login("rc1").await;
    let kept = debris(&stage, &auth).await;
    // The orphan must be older than the grace time.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let fast = ["--settle", "0s", "--grace", "1s", "--json"];

    stage.moto.start_recording().await;
    let dry = stage.reconcile(&[&fast[..], &["--dry-run"]].concat()).ok().json();
    let operations = stage.moto.stop_recording().await;
    assert!(operations.iter().all(|o| !is_write(o)), "the dry run wrote: {operations:?}");
    assert_eq!(
        kinds(&dry),
        [
            ("closed-windows".into(), "would repair".into()),
            ("dangling-row".into(), "reported (pass --delete-dangling-rows to remove it)".into()),
            ("miscounted".into(), "would repair".into()),
            ("orphan-object".into(), "would repair".into()),
        ],
        "{dry}"
    );

    let repaired = stage.reconcile(&fast).ok().json();
    assert_eq!(repaired["repaired"], 3, "{repaired}");
    let stored = stage.stored().await;
    assert_eq!(stored.miscounted_users(), 0, "{repaired}");
    let user = auth.split(' ').next().unwrap();
    assert!(stored.objects.keys().all(|k| !k.starts_with("staging/")), "the staged object stays");
    let keys: Vec<&String> = stored.objects.keys().collect();
    assert_eq!(keys, [&format!("recordings/{user}/{kept}")], "only the kept recording's object is left");

    stage.moto.start_recording().await;
    let again = stage.reconcile(&fast).ok().json();
    let writes: Vec<String> = stage.moto.stop_recording().await.into_iter().filter(|o| is_write(o)).collect();
    assert_eq!(writes, Vec::<String>::new(), "{again}");
    assert_eq!(
        kinds(&again),
        [("dangling-row".into(), "reported (pass --delete-dangling-rows to remove it)".into())]
    );

    let removed = stage.reconcile(&[&fast[..], &["--delete-dangling-rows"]].concat()).ok().json();
    assert_eq!(kinds(&removed), [("dangling-row".into(), "repaired".into())], "{removed}");
    let stored = stage.stored().await;
    // The kept recording, and the closed upload's pending row (DynamoDB's TTL removes it).
    assert_eq!(stored.rows.iter().filter(|r| r.published).count(), 1);
    assert_eq!(stored.miscounted_users(), 0);
    // The user's list and the kept recording still serve.
    let list: Value = stage
        .http
        .get(format!("{}/record/list", stage.base))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["records"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["records"][0]["id"], kept.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_while_uploads_and_deletes_run_touches_no_live_recording() {
    let stage = std::sync::Arc::new(Stage::start().await);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for n in 0..3 {
        let (stage, stop) = (stage.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let auth = stage.login(&format!("busy{n}")).await;
            let mut live = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                live.push(stage.upload(&auth, &format!("take-{i}.m4a")).await);
                if i % 3 == 2 {
                    let gone = live.remove(0);
                    stage.delete(&auth, &gone).await;
                }
                i += 1;
            }
            (auth, live)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stage2 = stage.clone();
    let run =
        tokio::task::spawn_blocking(move || stage2.reconcile(&["--settle", "1s", "--grace", "1s", "--json"]))
            .await
            .unwrap()
            .ok()
            .json();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut live = Vec::new();
    for client in clients {
        live.push(client.await.unwrap());
    }
    assert_eq!(run["repaired"], 0, "reconcile repaired live traffic: {run}");
    let stored = stage.stored().await;
    for (auth, ids) in &live {
        let user = auth.split(' ').next().unwrap();
        for id in ids {
            assert!(stored.rows.iter().any(|r| &r.id == id), "row {id} is gone");
            assert!(
                stored.objects.contains_key(&format!("recordings/{user}/{id}")),
                "object of {id} is gone"
            );
        }
    }
    assert_eq!(stored.miscounted_users(), 0);
}
