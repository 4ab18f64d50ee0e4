//! The runtime catalogue (`app::permissions`) is sufficient and not decorative: the whole API
//! flow runs under moto's IAM enforcement as a user holding only the rendered runtime policy,
//! and breaks when one action is taken out of it.

use std::time::Duration;

use app::config::Config;
use app::state::AppState;
use serde_json::Value;
use xtask::aws::Aws;
use xtask::catalogue::{render_policy, runtime_needs};
use xtask::create_tables::{ensure_tables, Options};
use xtask::names::Names;

use crate::helpers::{unique_prefix, OwnMoto};

/// A run of the API flow: each step's status, and the service's log.
struct Flow {
    steps: Vec<(&'static str, u16)>,
    log: String,
}

/// The service's log lines, captured for one test (the subscriber is the test thread's).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The API flow, every route, run by a service whose AWS identity holds the rendered runtime
/// policy, less `policy_without`.
async fn api_flow_under(policy_without: Option<&str>) -> Flow {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    let _log = tracing_subscriber::util::SubscriberInitExt::set_default(subscriber);
    let moto = OwnMoto::start();
    let admin = Aws::emulator(moto.endpoint()).await;
    let prefix = unique_prefix();
    let bucket = format!("{}bucket", prefix.trim_end_matches('-'));
    let options = Options {
        prefix: prefix.clone(),
        stage: "test".into(),
        protect: false,
        dry_run: false,
        timeout: Duration::from_secs(30),
    };
    for table in ensure_tables(&admin, &options).await {
        table.unwrap();
    }
    xtask::bucket::ensure_private_bucket(&admin, &bucket).await.unwrap();

    // moto matches DynamoDB (and Lambda) policies against Resource "*" only, so the
    // any-resource rendering is used; the actions are exactly the catalogue's.
    let names = Names::new("test", "123456789012", "us-east-1", &prefix, Some(&bucket));
    let mut policy = render_policy(&runtime_needs(), &names, true).to_value();
    if let Some(action) = policy_without {
        let statements = policy["Statement"].as_array_mut().unwrap();
        for statement in statements.iter_mut() {
            statement["Action"].as_array_mut().unwrap().retain(|a| a != action);
        }
        statements.retain(|s| !s["Action"].as_array().unwrap().is_empty());
    }
    let keys = moto.user_with_policy("service", &policy).await;
    let admin_keys = moto
        .user_with_policy(
            "test-admin",
            &serde_json::json!({
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
            }),
        )
        .await;
    let admin = crate::helpers::aws_as(moto.endpoint(), &admin_keys).await;
    moto.enforce_iam().await;

    let credentials = aws_sdk_dynamodb::config::Credentials::new(&keys.id, &keys.secret, None, None, "test");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .endpoint_url(moto.endpoint())
        .load()
        .await;
    let config = Config {
        table_prefix: prefix,
        bucket: bucket.clone(),
        // moto's account, which owns every bucket it holds.
        bucket_owner: Some("123456789012".into()),
        max_upload_bytes: 1024,
        max_large_upload_bytes: 1 << 20,
        upload_url_ttl: Duration::from_secs(60),
        allow_unverified_login: true,
        key_ttl: Duration::from_secs(600),
        download_url_ttl: Duration::from_secs(60),
        oidc_providers: Vec::new(),
        oidc_min_refetch: Duration::from_secs(30),
        port: 0,
        s3_path_style: true,
        plain_http_endpoints: true,
        aws: app::config::AwsBudget::default(),
        warm_up: false,
        metrics: false,
        max_keys_per_user: 20,
        quotas: app::storage::Limits { pending_uploads: 5, recordings: 100, bytes: 1 << 30 },
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = app::router(AppState::new(&sdk, &config));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let http = reqwest::Client::new();
    let mut steps = Vec::new();
    let login = http.get(format!("{base}/login?social_id=1&social_type=kakao")).send().await.unwrap();
    steps.push(("login", login.status().as_u16()));
    let login: Value = login.json().await.unwrap();
    let auth = format!(
        "{} {}",
        login["user_id"].as_str().unwrap_or_default(),
        login["auth_key"].as_str().unwrap_or_default()
    );
    let upload = http
        .put(format!("{base}/upload/record/a.m4a"))
        .header("Authorization", &auth)
        .body("audio")
        .send()
        .await
        .unwrap();
    steps.push(("upload", upload.status().as_u16()));
    let upload: Value = upload.json().await.unwrap();
    let id = upload["record"]["id"].as_str().unwrap_or("missing").to_owned();
    let list = http.get(format!("{base}/record/list")).header("Authorization", &auth).send().await.unwrap();
    steps.push(("list", list.status().as_u16()));
    // The presigned URL is signed locally; moto answers every presigned request with 500 under
    // enforcement, so the download itself is tested in app's tests, outside enforcement.
    let get = http.get(format!("{base}/record/{id}")).header("Authorization", &auth).send().await.unwrap();
    steps.push(("get", get.status().as_u16()));
    // A large upload: the object arrives by the presigned PUT, here put by the harness (moto
    // answers presigned requests with 500 under enforcement), then the service completes it.
    let start = http
        .post(format!("{base}/record/uploads"))
        .header("Authorization", &auth)
        .json(&serde_json::json!({ "file_name": "long.m4a", "content_type": "audio/mp4", "size": 2048 }))
        .send()
        .await
        .unwrap();
    steps.push(("start-upload", start.status().as_u16()));
    let start: Value = start.json().await.unwrap();
    let large = start["record_id"].as_str().unwrap_or("missing").to_owned();
    if let Some(url) = start["upload_url"].as_str() {
        let path = reqwest::Url::parse(url).unwrap().path().to_owned();
        let key = path.trim_start_matches('/').split_once('/').unwrap().1.to_owned();
        let key = percent_decode(&key);
        admin.s3().put_object().bucket(&bucket).key(key).body(vec![7u8; 2048].into()).send().await.unwrap();
    }
    let complete = http
        .post(format!("{base}/record/{large}/complete"))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    steps.push(("complete", complete.status().as_u16()));
    let delete =
        http.delete(format!("{base}/record/{id}")).header("Authorization", &auth).send().await.unwrap();
    steps.push(("delete", delete.status().as_u16()));
    let logout = http.post(format!("{base}/logout")).header("Authorization", &auth).send().await.unwrap();
    steps.push(("logout", logout.status().as_u16()));
    let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    Flow { steps, log }
}

fn percent_decode(text: &str) -> String {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

const STEPS: [&str; 8] = ["login", "upload", "list", "get", "start-upload", "complete", "delete", "logout"];

#[tokio::test]
async fn the_api_flow_works_for_a_service_holding_only_the_runtime_policy() {
    let flow = api_flow_under(None).await;
    assert_eq!(flow.steps, STEPS.map(|s| (s, 200)), "{}", flow.log);
    assert!(!flow.log.contains("aws call denied"), "{}", flow.log);
}

/// The step of the flow that exercises each route a catalogue entry names.
fn step_of(route: &str) -> &'static str {
    match route {
        "GET /login" | "POST /login" => "login",
        "POST /logout" => "logout",
        "PUT /upload/record/{file_name}" => "upload",
        "GET /record/list" => "list",
        "POST /record/uploads" => "start-upload",
        "POST /record/{record_id}/complete" => "complete",
        "GET /record/{record_id}" => "get",
        "DELETE /record/{record_id}" => "delete",
        other => panic!("no step of the flow exercises {other}"),
    }
}

/// The IAM action the service's log names for a denied call (`operation` field).
fn action_of(operation: &str) -> String {
    match operation.split_whitespace().next().unwrap_or_default() {
        "HeadObject" => "s3:GetObject".to_owned(),
        op @ ("PutObject" | "DeleteObject") => format!("s3:{op}"),
        op => format!("dynamodb:{op}"),
    }
}

/// Leave-one-out: without any one runtime action the flow fails, first at a route the catalogue
/// names for that action, with the service logging the denied call of that action. An action
/// whose removal breaks nothing would be surplus. (The log actions are Lambda's own: no code
/// path of the service calls them.)
#[tokio::test]
async fn every_runtime_action_is_needed_by_the_routes_the_catalogue_names() {
    let mut actions: Vec<&str> = app::permissions::RUNTIME
        .iter()
        .filter(|p| p.routes != app::permissions::LAMBDA)
        .map(|p| p.action.name())
        .collect();
    actions.dedup();
    actions.sort_unstable();
    actions.dedup();
    let mut surplus = Vec::new();
    for action in actions {
        let flow = api_flow_under(Some(action)).await;
        let routes: Vec<&str> = app::permissions::RUNTIME
            .iter()
            .filter(|p| p.action.name() == action)
            .flat_map(|p| p.routes.iter().map(|r| step_of(r)))
            .collect();
        // A route fails, or (deleting a record's object, which the row's deletion already
        // settled for the user) the denial is logged and the object left for cleanup.
        if let Some(&(first, status)) = flow.steps.iter().find(|(_, status)| *status != 200) {
            assert!(
                routes.contains(&first),
                "without {action}, {first} failed first ({status}); the catalogue names {routes:?}"
            );
        }
        let denied: Vec<String> = flow
            .log
            .lines()
            .filter(|l| l.contains("aws call denied"))
            .filter_map(|l| l.split("operation=\"").nth(1)?.split('"').next().map(action_of))
            .collect();
        if !denied.contains(&action.to_owned()) {
            surplus.push(action);
        }
    }
    assert!(
        surplus.is_empty(),
        "surplus runtime actions (no call of them was denied without them): {surplus:?}"
    );
}
