//! Safe deploys: a version serves nothing until it has answered `GET /health/ready` when invoked
//! itself, `live` and `previous` move under their revisions, rollback swaps them back, and the
//! URL serves `live`. moto keeps versions and aliases but cannot run code, ignores qualifiers
//! and never changes an alias's revision: the tests run against [`LambdaProxy`], which invokes
//! the real service binary (deploy's zig build) under cargo-lambda's runtime emulator, keeps
//! alias revisions as AWS does, and enforces the execution role's policies on the service's
//! calls. Qualifiers are asserted on the requests sent, since moto ignores them.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::deploy::{bootstrap, c_binary};
use crate::helpers::{xtask, OwnMoto, Run};
use crate::lambda_proxy::LambdaProxy;

const STAGE: &str = "rel";
const FUNCTION: &str = "recording-server-rel";

/// The service as deploy builds it by default (cargo-lambda and zig, quick profile): built by
/// `cargo xtask test` before xtask's tests start.
fn service_binary() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let path = xtask::toolchain::target_dir(workspace).join("lambda-zig/lambda/app/bootstrap");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo xtask test`, which builds it",
        path.display()
    );
    path
}

async fn setup() -> (OwnMoto, LambdaProxy, PathBuf) {
    let moto = OwnMoto::start();
    let proxy = LambdaProxy::start(moto.endpoint()).await;
    let service = service_binary();
    proxy.register(&service);
    (moto, proxy, service)
}

fn deploy(proxy: &LambdaProxy, binary: &Path, extra: &[&str]) -> Run {
    let binary = binary.to_str().unwrap();
    let args = [&["deploy", "--stage", STAGE, "--binary", binary][..], extra].concat();
    xtask(&proxy.endpoint, &args)
}

async fn lambda(moto: &OwnMoto) -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::new(&xtask::aws::Aws::emulator(moto.endpoint()).await.sdk)
}

/// The version an alias names, `None` without the alias.
async fn alias(moto: &OwnMoto, name: &str) -> Option<String> {
    let answer = lambda(moto).await.get_alias().function_name(FUNCTION).name(name).send().await;
    answer.ok().and_then(|a| a.function_version)
}

/// The recorded requests of one operation: (method, url).
async fn requests(moto: &OwnMoto, method: &str, path_end: &str) -> Vec<String> {
    moto.recorded_requests()
        .await
        .iter()
        .filter(|r| r["method"] == method)
        .filter_map(|r| r["url"].as_str().map(str::to_owned))
        .filter(|url| url.split('?').next().unwrap_or_default().ends_with(path_end))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_version_moves_live_keeps_previous_and_the_url_and_its_statements_are_on_live() {
    let (moto, proxy, service) = setup().await;
    moto.start_recording().await;
    let first = deploy(&proxy, &service, &["--json"]).ok();
    let report: Value = first.json();
    assert_eq!(report["release"]["version"], "1", "{report}");
    assert_eq!(report["release"]["smoke"]["status"], 200, "{report}");
    assert!(report["release"]["smoke"]["body"].as_str().unwrap().contains("ready"), "{report}");
    assert_eq!(alias(&moto, "live").await.as_deref(), Some("1"));
    assert_eq!(alias(&moto, "previous").await, None);
    // The smoke test invoked the version itself, with its log tail, never an alias.
    let invocations = proxy.invocations();
    assert_eq!(invocations.len(), 1, "{invocations:?}");
    assert_eq!(invocations[0].qualifier.as_deref(), Some("1"));
    assert_eq!(invocations[0].log_type.as_deref(), Some("Tail"));
    // The URL and both statements are on `live`.
    for (method, path) in [("POST", "/url"), ("POST", "/policy")] {
        let sent = requests(&moto, method, path).await;
        assert!(!sent.is_empty(), "no {method} {path}");
        assert!(sent.iter().all(|u| u.contains("Qualifier=live")), "{sent:?}");
    }
    let published = requests(&moto, "POST", "/versions").await;
    assert_eq!(published.len(), 1);

    let second = deploy(&proxy, &service, &["--memory", "1024"]).ok();
    assert!(second.stdout().contains("smoke    version 2 GET /health/ready -> 200"), "{}", second.stdout());
    assert_eq!(alias(&moto, "live").await.as_deref(), Some("2"));
    assert_eq!(alias(&moto, "previous").await.as_deref(), Some("1"));
    let status = xtask(&proxy.endpoint, &["status", "--stage", STAGE, "--json"]).ok().json();
    assert_eq!(status["latest_differs_from_live"], false, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_exits_at_init_never_gets_live_and_its_log_tail_is_printed() {
    let (moto, proxy, service) = setup().await;
    deploy(&proxy, &service, &[]).ok();
    let crashing = c_binary(
        "bootstrap",
        "#include <stdio.h>\nint main(void) { fprintf(stderr, \"init failed: RECORD_BUCKET is not a bucket\\n\"); return 3; }\n",
    );
    proxy.register(&crashing);

    let run = deploy(&proxy, &crashing, &[]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let stderr = run.stderr();
    assert!(stderr.contains("function error Unhandled"), "{stderr}");
    assert!(stderr.contains("Runtime.ExitError"), "{stderr}");
    assert!(stderr.contains("init failed: RECORD_BUCKET is not a bucket"), "the log tail: {stderr}");
    assert!(stderr.contains("`live` still serves what it served"), "{stderr}");
    assert_eq!(alias(&moto, "live").await.as_deref(), Some("1"));
    // The failed version stays published and unaliased; status says $LATEST is not what serves.
    let status = xtask(&proxy.endpoint, &["status", "--stage", STAGE, "--json"]).ok().json();
    let versions: Vec<&str> =
        status["versions"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["$LATEST", "1", "2"]);
    assert_eq!(status["latest_differs_from_live"], true, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_whose_role_lost_a_table_permission_fails_ready_and_the_denial_is_explained() {
    let (moto, proxy, service) = setup().await;
    deploy(&proxy, &service, &[]).ok();
    // Someone revokes the record table's reads from the execution role.
    let iam = aws_sdk_iam::Client::new(&xtask::aws::Aws::emulator(moto.endpoint()).await.sdk);
    let deny = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Deny", "Action": "dynamodb:GetItem",
            "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/rel-record_record" }]
    });
    iam.put_role_policy()
        .role_name("recording-server-rel-lambda")
        .policy_name("revoked")
        .policy_document(deny.to_string())
        .send()
        .await
        .unwrap();

    let run = deploy(&proxy, &service, &["--memory", "1024"]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let stderr = run.stderr();
    assert!(stderr.contains("GET /health/ready -> 503"), "{stderr}");
    assert!(stderr.contains("not ready: cannot reach the record table"), "{stderr}");
    assert!(
        stderr.contains(
            "denied   dynamodb:GetItem on arn:aws:dynamodb:us-east-1:123456789012:table/rel-record_record"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("fix: "), "{stderr}");
    assert_eq!(alias(&moto, "live").await.as_deref(), Some("1"));
    // The same log line, read by `check-iam explain`, names the execution role's statement.
    let line = stderr.lines().find(|l| l.contains("aws call denied")).expect("the denial's log line");
    let explained = xtask(&proxy.endpoint, &["check-iam", "explain", "--stage", STAGE, line]);
    assert!(explained.stdout().contains("dynamodb:GetItem"), "{}{}", explained.stdout(), explained.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_smoke_tests_and_swaps_and_without_a_previous_version_exits_1() {
    let (moto, proxy, service) = setup().await;
    deploy(&proxy, &service, &[]).ok();
    let alone = xtask(&proxy.endpoint, &["rollback", "--stage", STAGE]);
    assert_eq!(alone.code(), 1, "{}", alone.stderr());
    assert!(alone.stderr().contains("has no previous version"), "{}", alone.stderr());

    deploy(&proxy, &service, &["--memory", "1024"]).ok();
    let before = proxy.invocations().len();
    let back = xtask(&proxy.endpoint, &["rollback", "--stage", STAGE, "--json"]).ok().json();
    assert_eq!((back["from"].as_str(), back["to"].as_str()), (Some("2"), Some("1")), "{back}");
    assert_eq!(alias(&moto, "live").await.as_deref(), Some("1"));
    assert_eq!(alias(&moto, "previous").await.as_deref(), Some("2"));
    let invocations = proxy.invocations();
    assert_eq!(invocations[before..].iter().map(|i| i.qualifier.as_deref()).collect::<Vec<_>>(), [Some("1")]);
    // And forth again: previous names the version rolled away from.
    let forth = xtask(&proxy.endpoint, &["rollback", "--stage", STAGE]).ok();
    assert!(forth.stdout().contains("`live` version 1 -> 2"), "{}", forth.stdout());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_racing_deploys_move_live_once_and_the_loser_names_both_versions() {
    let (moto, proxy, service) = setup().await;
    deploy(&proxy, &service, &[]).ok();
    // Both prove their versions at the same time, so each read `live` before either moved it.
    proxy.hold_invocations(2);
    // Both differ from version 1 (512 MB), so both publish and invoke.
    let racers = ["640", "1024"].map(|memory| {
        let endpoint = proxy.endpoint.clone();
        let service = service.clone();
        std::thread::spawn(move || {
            let binary = service.to_str().unwrap().to_owned();
            xtask(&endpoint, &["deploy", "--stage", STAGE, "--binary", &binary, "--memory", memory])
        })
    });
    let runs: Vec<Run> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    let codes: Vec<i32> = runs.iter().map(Run::code).collect();
    assert_eq!(
        codes.iter().filter(|c| **c == 0).count(),
        1,
        "{codes:?}: {}\n{}",
        runs[0].stderr(),
        runs[1].stderr()
    );
    let loser = runs.iter().find(|r| r.code() != 0).unwrap();
    assert_eq!(loser.code(), 1);
    assert!(loser.stderr().contains("another deploy moved"), "{}", loser.stderr());
    let live = alias(&moto, "live").await.unwrap();
    assert_ne!(live, "1");
    assert!(loser.stderr().contains(&format!("to {live}")), "{}", loser.stderr());
    assert_eq!(alias(&moto, "previous").await.as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_keeps_live_previous_and_the_newest_n() {
    let (moto, proxy, service) = setup().await;
    for memory in ["512", "640", "768", "896"] {
        deploy(&proxy, &service, &["--memory", memory, "--keep", "1"]).ok();
    }
    let versions =
        lambda(&moto).await.list_versions_by_function().function_name(FUNCTION).send().await.unwrap();
    let mut kept: Vec<String> =
        versions.versions().iter().filter_map(|v| v.version().map(str::to_owned)).collect();
    kept.retain(|v| v != "$LATEST");
    // live 4, previous 3, and the newest one beyond them, 2; version 1 went.
    assert_eq!(kept, ["2", "3", "4"]);
    assert_eq!(alias(&moto, "live").await.as_deref(), Some("4"));
    assert_eq!(alias(&moto, "previous").await.as_deref(), Some("3"));
    let deleted = requests(&moto, "DELETE", FUNCTION).await;
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert!(deleted[0].contains("Qualifier=1"), "{deleted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_whose_url_served_latest_is_migrated_to_live_once_confirmed() {
    let (moto, proxy, _service) = setup().await;
    let binary = bootstrap(0);
    // The stage as deploys before aliases left it: a URL on $LATEST with its two statements.
    let client = lambda(&moto).await;
    xtask(moto.endpoint(), &["deploy", "--stage", STAGE, "--binary", binary.to_str().unwrap()]).ok();
    for sid in ["LiveURLAllowPublicAccess", "LiveURLInvokeAllowPublicAccess"] {
        client
            .remove_permission()
            .function_name(FUNCTION)
            .qualifier("live")
            .statement_id(sid)
            .send()
            .await
            .unwrap();
    }
    client
        .add_permission()
        .function_name(FUNCTION)
        .statement_id("FunctionURLAllowPublicAccess")
        .action("lambda:InvokeFunctionUrl")
        .principal("*")
        .function_url_auth_type(aws_sdk_lambda::types::FunctionUrlAuthType::None)
        .send()
        .await
        .unwrap();
    client
        .add_permission()
        .function_name(FUNCTION)
        .statement_id("FunctionURLInvokeAllowPublicAccess")
        .action("lambda:InvokeFunction")
        .principal("*")
        .invoked_via_function_url(true)
        .send()
        .await
        .unwrap();

    moto.start_recording().await;
    let refused = xtask(&proxy.endpoint, &["deploy", "--stage", STAGE, "--binary", binary.to_str().unwrap()]);
    assert_eq!(refused.code(), 4, "{}", refused.stderr());
    assert!(refused.stderr().contains("THE URL OF STAGE rel CHANGES"), "{}", refused.stderr());
    assert!(
        moto.stop_recording().await.iter().all(|o| !crate::helpers::is_write(o)),
        "a write before the confirmation"
    );

    moto.start_recording().await;
    let moved =
        xtask(&proxy.endpoint, &["deploy", "--stage", STAGE, "--binary", binary.to_str().unwrap(), "--yes"])
            .ok();
    assert!(moved.stderr().contains("is removed: use https://"), "{}", moved.stderr());
    let created = requests(&moto, "POST", "/url").await;
    assert!(created.len() == 1 && created[0].contains("Qualifier=live"), "{created:?}");
    let added = requests(&moto, "POST", "/policy").await;
    assert!(added.len() == 2 && added.iter().all(|u| u.contains("Qualifier=live")), "{added:?}");
    let removed_url = requests(&moto, "DELETE", "/url").await;
    assert!(removed_url.len() == 1 && !removed_url[0].contains("Qualifier"), "{removed_url:?}");
    let removed: Vec<String> = moto
        .recorded_requests()
        .await
        .iter()
        .filter(|r| r["method"] == "DELETE")
        .filter_map(|r| r["url"].as_str().map(str::to_owned))
        .filter(|u| u.contains("/policy/"))
        .collect();
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert!(removed.iter().all(|u| !u.contains("Qualifier")), "{removed:?}");
}
