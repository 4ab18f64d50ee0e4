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

/// Status of each step of the API flow, run by a service whose AWS identity holds `policy`.
async fn api_flow_under(policy_without: Option<&str>) -> Vec<(&'static str, u16)> {
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
    let mut policy = render_policy(&runtime_needs(), &names, true);
    if let Some(action) = policy_without {
        let statements = policy["Statement"].as_array_mut().unwrap();
        for statement in statements.iter_mut() {
            statement["Action"].as_array_mut().unwrap().retain(|a| a != action);
        }
        statements.retain(|s| !s["Action"].as_array().unwrap().is_empty());
    }
    let keys = moto.user_with_policy("service", &policy).await;
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
        bucket,
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
        aws: app::config::AwsBudget::default(),
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
    let delete =
        http.delete(format!("{base}/record/{id}")).header("Authorization", &auth).send().await.unwrap();
    steps.push(("delete", delete.status().as_u16()));
    let logout = http.post(format!("{base}/logout")).header("Authorization", &auth).send().await.unwrap();
    steps.push(("logout", logout.status().as_u16()));
    steps
}

#[tokio::test]
async fn the_api_flow_works_for_a_service_holding_only_the_runtime_policy() {
    let steps = api_flow_under(None).await;
    assert_eq!(
        steps,
        [("login", 200), ("upload", 200), ("list", 200), ("get", 200), ("delete", 200), ("logout", 200)]
    );
}

#[tokio::test]
async fn without_dynamodb_query_the_list_fails_and_nothing_else_does() {
    let steps = api_flow_under(Some("dynamodb:Query")).await;
    assert_eq!(
        steps,
        [("login", 200), ("upload", 200), ("list", 500), ("get", 200), ("delete", 200), ("logout", 200)]
    );
}
