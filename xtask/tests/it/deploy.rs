//! `cargo xtask deploy` and `destroy` against a private moto (with its request recorder). The
//! packaged binaries are tiny C programs built here with gcc: building the real service in
//! release mode takes minutes, and the emulator cannot run Lambda code anyway.

use std::path::Path;

use serde_json::Value;
use xtask::catalogue::{render_policy, runtime_needs};
use xtask::deploy::build::QUICK_PROFILE;
use xtask::names::Names;

use crate::helpers::{is_write, xtask, OwnMoto, Scratch};

/// Compile a C program into a binary in a fresh temporary directory.
pub fn c_binary(name: &str, source: &str) -> Scratch {
    let dir = Scratch::dir("deploy");
    let source_path = dir.join(format!("{name}.c"));
    std::fs::write(&source_path, source).unwrap();
    let status = std::process::Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(dir.join(name))
        .arg(&source_path)
        .status()
        .expect("gcc is needed to build test binaries");
    assert!(status.success());
    dir.child(name)
}

pub fn bootstrap(exit_code: u8) -> Scratch {
    c_binary("bootstrap", &format!("int main(void) {{ return {exit_code}; }}\n"))
}

fn deploy(moto: &OwnMoto, binary: &Path, extra: &[&str]) -> Value {
    let binary = binary.to_str().unwrap();
    let args = [&["deploy", "--stage", "test", "--json", "--binary", binary][..], extra].concat();
    xtask(moto.endpoint(), &args).ok().json()
}

/// The changes deploy reports for the function.
fn function_step(report: &Value) -> Value {
    report["steps"].as_array().unwrap().iter().find(|s| s["resource"] == "function").unwrap()["changes"]
        .clone()
}

fn actions(report: &Value) -> Vec<(String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["resource"].as_str().unwrap().to_owned(), s["action"].as_str().unwrap().to_owned()))
        .collect()
}

async fn bucket_exists(aws: &xtask::aws::Aws) -> bool {
    aws.s3().head_bucket().bucket("recording-server-test-123456789012-us-east-1").send().await.is_ok()
}

async fn lambda(moto: &OwnMoto) -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::new(&xtask::aws::Aws::emulator(moto.endpoint()).await.sdk)
}

#[tokio::test]
async fn a_first_deploy_creates_every_resource_as_configured() {
    let moto = OwnMoto::start();
    let report = deploy(&moto, &bootstrap(0), &[]);

    let created: Vec<_> =
        actions(&report).into_iter().filter(|(_, a)| a == "create").map(|(r, _)| r).collect();
    assert_eq!(created, ["bucket", "table", "table", "role", "function", "logs", "alias", "url", "policy"]);
    assert!(report["url"].as_str().unwrap().starts_with("https://"));

    let aws = xtask::aws::Aws::emulator(moto.endpoint()).await;
    let function =
        lambda(&moto).await.get_function().function_name("recording-server-test").send().await.unwrap();
    let config = function.configuration.unwrap();
    assert_eq!(config.runtime().map(|r| r.as_str()), Some("provided.al2023"));
    assert_eq!(config.handler(), Some("bootstrap"));
    assert_eq!(config.architectures().iter().map(|a| a.as_str()).collect::<Vec<_>>(), ["x86_64"]);
    assert_eq!(config.memory_size(), Some(512));
    assert_eq!(config.timeout(), Some(60));
    let reserved =
        lambda(&moto).await.get_function_concurrency().function_name("recording-server-test").send();
    assert_eq!(reserved.await.unwrap().reserved_concurrent_executions(), Some(10), "the default cap");
    let budget = app::config::AwsBudget::default().request_budget().as_secs();
    assert_eq!(
        report["function"],
        serde_json::json!({"memory_mb": 512, "timeout_s": 60, "request_budget_s": budget})
    );
    assert!(budget < 60, "the default timeout must be above the request budget");
    assert_eq!(config.role(), Some("arn:aws:iam::123456789012:role/recording-server-test-lambda"));
    let env = config.environment().unwrap().variables().unwrap();
    assert_eq!(env["RECORD_BUCKET"], "recording-server-test-123456789012-us-east-1");
    assert_eq!(env["RECORD_BUCKET_OWNER"], "123456789012", "S3 calls name the owner they expect");
    assert_eq!(env["RECORD_ALLOW_UNVERIFIED_LOGIN"], "false", "unverified login must be off by default");
    assert_eq!(config.code_sha256(), report["code_sha256"].as_str());

    // The bucket: objects owned by the bucket owner (ACLs off), staged uploads and abandoned
    // multipart uploads expiring. No TLS-only policy over the emulator's plain HTTP.
    let bucket = "recording-server-test-123456789012-us-east-1";
    let ownership = aws.s3().get_bucket_ownership_controls().bucket(bucket).send().await.unwrap();
    let rules = ownership.ownership_controls.unwrap().rules;
    assert_eq!(rules[0].object_ownership.as_str(), "BucketOwnerEnforced");
    let lifecycle = aws.s3().get_bucket_lifecycle_configuration().bucket(bucket).send().await.unwrap();
    let staging = lifecycle.rules().iter().find(|r| r.id() == Some("expire-staging")).unwrap();
    assert_eq!(staging.expiration().and_then(|e| e.days()), Some(1));
    let multipart = lifecycle.rules().iter().find(|r| r.id() == Some("abort-incomplete-multipart-uploads"));
    assert_eq!(
        multipart.unwrap().abort_incomplete_multipart_upload().unwrap().days_after_initiation(),
        Some(1)
    );
    assert!(aws.s3().get_bucket_policy().bucket(bucket).send().await.is_err());
    // The function's log group exists with a retention (Lambda would keep its logs forever).
    let logs = aws_sdk_cloudwatchlogs::Client::new(&aws.sdk);
    let groups = logs
        .describe_log_groups()
        .log_group_name_prefix("/aws/lambda/recording-server-test")
        .send()
        .await
        .unwrap();
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(30));
    // Public access blocked, encrypted by default.
    let block = aws.s3().get_public_access_block().bucket(bucket).send().await.unwrap();
    let block = block.public_access_block_configuration.unwrap();
    assert_eq!(
        (
            block.block_public_acls,
            block.ignore_public_acls,
            block.block_public_policy,
            block.restrict_public_buckets
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let encryption = aws.s3().get_bucket_encryption().bucket(bucket).send().await.unwrap();
    assert!(!encryption.server_side_encryption_configuration.unwrap().rules().is_empty());
    // Stage `test` is not dev: its tables get deletion protection and point-in-time recovery.
    for table in ["test-record_user", "test-record_record"] {
        let described = aws.dynamodb().describe_table().table_name(table).send().await.unwrap();
        assert_eq!(described.table.unwrap().deletion_protection_enabled, Some(true), "{table}");
        let backups = aws.dynamodb().describe_continuous_backups().table_name(table).send().await.unwrap();
        let pitr =
            backups.continuous_backups_description.unwrap().point_in_time_recovery_description.unwrap();
        assert_eq!(
            pitr.point_in_time_recovery_status.map(|s| s.as_str().to_owned()).as_deref(),
            Some("ENABLED"),
            "{table}"
        );
    }
    // The web recorder at the function URL may PUT and play from the bucket.
    let cors = aws.s3().get_bucket_cors().bucket(bucket).send().await.unwrap();
    let url = report["url"].as_str().unwrap().trim_end_matches('/');
    assert_eq!(cors.cors_rules()[0].allowed_origins(), [url]);
    assert_eq!(cors.cors_rules()[0].allowed_methods(), ["PUT", "GET", "HEAD"]);
    // ...and the run says so, rather than leaving it out silently.
    let skipped = report["skipped_protections"].as_array().unwrap();
    assert!(
        skipped.len() == 1 && skipped[0].as_str().unwrap().starts_with("TLS-only policy: http://"),
        "{report}"
    );

    let iam = aws_sdk_iam::Client::new(&aws.sdk);
    let inline = iam
        .get_role_policy()
        .role_name("recording-server-test-lambda")
        .policy_name("recording-server-runtime")
        .send()
        .await
        .unwrap();
    let stored = xtask::policy::parse_document(inline.policy_document());
    // The stage's own tables by default: `test-record_user`, `test-record_record`.
    let names = Names::new("test", "123456789012", "us-east-1", "test-", None);
    assert_eq!(stored, render_policy(&runtime_needs(), &names, false));

    let policy =
        lambda(&moto).await.get_policy().function_name("recording-server-test").send().await.unwrap();
    let policy = iam::PolicyDocument::parse(policy.policy().unwrap()).unwrap();
    assert!(policy.url_permissions().iter().all(|(_, granted)| *granted), "{policy:?}");
}

#[tokio::test]
async fn a_second_deploy_with_no_change_makes_no_write_call() {
    let moto = OwnMoto::start();
    let binary = bootstrap(0);
    deploy(&moto, &binary, &[]);
    let before =
        lambda(&moto).await.get_function().function_name("recording-server-test").send().await.unwrap();

    moto.start_recording().await;
    let report = deploy(&moto, &binary, &[]);
    let operations = moto.stop_recording().await;

    assert!(actions(&report).iter().all(|(_, a)| a == "unchanged"), "{report}");
    let writes: Vec<_> = operations.iter().filter(|o| is_write(o)).collect();
    assert!(writes.is_empty(), "write calls in a no-op deploy: {writes:?}");
    assert!(operations.len() > 5, "the recorder saw the reads: {operations:?}");
    let after =
        lambda(&moto).await.get_function().function_name("recording-server-test").send().await.unwrap();
    assert_eq!(after.configuration.unwrap().last_modified, before.configuration.unwrap().last_modified);
}

#[tokio::test]
async fn a_code_change_updates_only_the_code_and_a_memory_change_only_the_configuration() {
    let moto = OwnMoto::start();
    deploy(&moto, &bootstrap(0), &[]);

    moto.start_recording().await;
    let code = deploy(&moto, &bootstrap(1), &[]);
    let code_ops = moto.stop_recording().await;
    moto.start_recording().await;
    let memory = deploy(&moto, &bootstrap(1), &["--memory", "1024"]);
    let memory_ops = moto.stop_recording().await;

    assert_eq!(function_step(&code), serde_json::json!(["code"]));
    assert_eq!(function_step(&memory), serde_json::json!(["memory 1024 MB"]));
    let writes = |ops: &[String]| ops.iter().filter(|o| is_write(o)).cloned().collect::<Vec<_>>();
    // Each change is one write to $LATEST, then the release: publish, one smoke invocation of
    // that version, and the two alias moves (`previous` created on the first one).
    let function = "/2015-03-31/functions/recording-server-test";
    let release = |first: bool| {
        [
            format!("POST {function}/versions"),
            format!("POST {function}/invocations"),
            if first {
                format!("POST {function}/aliases")
            } else {
                format!("PUT {function}/aliases/previous")
            },
            format!("PUT {function}/aliases/live"),
        ]
    };
    assert_eq!(writes(&code_ops), [[format!("PUT {function}/code")].as_slice(), &release(true)].concat());
    assert_eq!(
        writes(&memory_ops),
        [[format!("PUT {function}/configuration")].as_slice(), &release(false)].concat()
    );
}

#[tokio::test]
async fn dry_run_plans_without_writing_and_the_same_binary_gives_the_same_hash() {
    let moto = OwnMoto::start();
    let binary = bootstrap(0);

    moto.start_recording().await;
    let first = deploy(&moto, &binary, &["--dry-run"]);
    let operations = moto.stop_recording().await;
    let second = deploy(&moto, &binary, &["--dry-run"]);

    assert!(actions(&first).iter().all(|(_, a)| a == "create"), "{first}");
    assert!(!operations.iter().any(|o| is_write(o)), "write calls in a dry run: {operations:?}");
    assert_eq!(first["code_sha256"], second["code_sha256"]);
    assert_ne!(deploy(&moto, &bootstrap(1), &["--dry-run"])["code_sha256"], first["code_sha256"]);
}

#[tokio::test]
async fn destroy_keeps_the_data_unless_asked_and_can_be_rerun() {
    let moto = OwnMoto::start();
    deploy(&moto, &bootstrap(0), &[]);

    let run = xtask(moto.endpoint(), &["destroy", "--stage", "test", "--yes"]).ok();

    assert!(run.stdout().contains("kept"), "{}", run.stdout());
    assert!(run.stdout().contains("logs     /aws/lambda/recording-server-test"), "{}", run.stdout());
    let aws = xtask::aws::Aws::emulator(moto.endpoint()).await;
    assert!(lambda(&moto).await.get_function().function_name("recording-server-test").send().await.is_err());
    let iam = aws_sdk_iam::Client::new(&aws.sdk);
    assert!(iam.get_role().role_name("recording-server-test-lambda").send().await.is_err());
    let tables = aws.dynamodb().list_tables().send().await.unwrap();
    assert_eq!(tables.table_names().len(), 2, "destroy without --include-data removed tables");
    assert!(bucket_exists(&aws).await, "destroy without --include-data removed the bucket");

    let again = xtask(moto.endpoint(), &["destroy", "--stage", "test", "--yes", "--include-data"]).ok();
    assert!(again.stdout().contains("already gone"), "{}", again.stdout());
    assert!(aws.dynamodb().list_tables().send().await.unwrap().table_names().is_empty());
    assert!(!bucket_exists(&aws).await);
}

#[tokio::test]
async fn destroy_without_yes_off_a_terminal_refuses_and_keeps_everything() {
    let moto = OwnMoto::start();
    deploy(&moto, &bootstrap(0), &[]);
    let run = xtask(moto.endpoint(), &["destroy", "--stage", "test"]);
    assert_eq!(run.code(), 4, "a usage mistake");
    assert!(run.stderr().contains("pass --yes"), "{}", run.stderr());
    assert!(lambda(&moto).await.get_function().function_name("recording-server-test").send().await.is_ok());
}

#[tokio::test]
async fn a_binary_needing_a_newer_glibc_or_another_arch_or_a_too_short_timeout_is_refused_before_any_call() {
    let moto = OwnMoto::start();
    // arc4random appeared in glibc 2.36, newer than provided.al2023's 2.34.
    let new_glibc =
        c_binary("bootstrap", "#include <stdlib.h>\nint main(void) { return (int)(arc4random() & 1); }\n");

    moto.start_recording().await;
    let run = xtask(moto.endpoint(), &["deploy", "--stage", "test", "--binary", new_glibc.to_str().unwrap()]);
    let wrong_arch = xtask(
        moto.endpoint(),
        &["deploy", "--stage", "test", "--arch", "arm64", "--binary", bootstrap(0).to_str().unwrap()],
    );
    // A function timeout Lambda would hit before the service's own budget ends.
    let budget = app::config::AwsBudget::default().request_budget().as_secs().to_string();
    let short = xtask(
        moto.endpoint(),
        &["deploy", "--stage", "test", "--timeout", &budget, "--binary", bootstrap(0).to_str().unwrap()],
    );
    let operations = moto.stop_recording().await;

    assert_eq!(short.code(), 4, "a usage mistake");
    let next = (budget.parse::<u64>().unwrap() + 1).to_string();
    assert!(short.stderr().contains(&format!("use --timeout {next} or more")), "{}", short.stderr());
    assert_eq!(run.code(), 1);
    assert!(run.stderr().contains("needs glibc 2.36"), "{}", run.stderr());
    assert_eq!(wrong_arch.code(), 1);
    assert!(wrong_arch.stderr().contains("not arm64"), "{}", wrong_arch.stderr());
    assert!(!operations.iter().any(|o| is_write(o)), "{operations:?}");
}

/// The real service, built by deploy's default builder (cargo-lambda with zig): the slowest test
/// here, a release-like build (reused afterwards from `<target>/lambda-zig`). With
/// `--build-profile quick`: what this checks is the link against glibc 2.17 and a binary that
/// serves, not the release profile's size, whose LTO would take minutes after every change.
#[tokio::test]
async fn deploy_builds_the_real_service_with_zig_for_an_old_glibc_and_the_binary_serves() {
    let moto = OwnMoto::start();

    let report =
        xtask(moto.endpoint(), &["deploy", "--stage", "built", "--build-profile", QUICK_PROFILE, "--json"])
            .ok()
            .json();

    let glibc = report["binary"]["newest_glibc"].as_str().unwrap();
    assert_eq!(glibc, xtask::deploy::build::ZIG_GLIBC, "{report}");
    let config = lambda(&moto)
        .await
        .get_function()
        .function_name("recording-server-built")
        .send()
        .await
        .unwrap()
        .configuration
        .unwrap();
    assert_eq!(config.code_sha256(), report["code_sha256"].as_str());
    assert!(report["zip_bytes"].as_u64().unwrap() > 1_000_000, "not the real service: {report}");

    // The packaged binary is the service: it starts and answers /health.
    let port = xtask::emulator::free_port().unwrap();
    let mut service = std::process::Command::new(report["binary"]["path"].as_str().unwrap())
        .env("PORT", port.to_string())
        .env("RECORD_BUCKET", "recording-server-built")
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut health = None;
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/health")).await {
            health = Some(response.status());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = service.kill();
    let _ = service.wait();
    assert_eq!(health, Some(reqwest::StatusCode::OK));
}

/// The deployer policy's two parts, against the calls deploy really makes (recorded by moto and
/// mapped to IAM actions by the coverage module). moto cannot run deploy under IAM enforcement
/// at all (it answers S3 HEAD and Lambda GET requests of allowed callers with 403), so the
/// parts are checked with the policy evaluator, which the check-iam matrix tests hold to moto's
/// enforcement.
#[tokio::test]
async fn a_redeploy_needs_only_the_base_part_and_a_first_deploy_needs_the_iam_part() {
    use iam::policy::{evaluate, Evaluation};
    use xtask::catalogue::{deployer_parts, Part, Task};

    let moto = OwnMoto::start();
    let names = Names::new("test", "123456789012", "us-east-1", "", None);
    let tasks = Task::ALL;
    let (base, iam) = deployer_parts(&tasks);
    let base = render_policy(&base, &names, true);
    let iam = render_policy(&iam, &names, true);
    let context = [("iam:PassedToService", "lambda.amazonaws.com")];
    let denied_by_base = |calls: &[xtask::coverage::Call]| {
        let mut denied: Vec<String> = calls
            .iter()
            .flat_map(|c| c.actions.iter().map(|a| a.name().to_owned()))
            .filter(|a| evaluate(std::slice::from_ref(&base), a, "*", &context) != Evaluation::Allow)
            .collect();
        denied.dedup();
        denied
    };

    moto.start_recording().await;
    deploy(&moto, &bootstrap(0), &[]);
    let first = moto.recorded_calls().await;
    let needs_iam = denied_by_base(&first);
    assert_eq!(
        needs_iam,
        [
            "s3:PutBucketPublicAccessBlock",
            "iam:CreateRole",
            "iam:TagRole",
            "iam:PutRolePolicy",
            "iam:PassRole",
            "lambda:AddPermission"
        ]
    );
    for action in &needs_iam {
        let need = deployer_parts(&tasks).1.into_iter().find(|n| n.action.name() == action);
        assert_eq!(need.map(|n| n.part), Some(Part::Iam), "{action}");
        assert_eq!(
            evaluate(std::slice::from_ref(&iam), action, "*", &context),
            Evaluation::Allow,
            "{action}"
        );
    }

    for (change, args) in [("no change", &[][..]), ("a memory change", &["--memory", "1024"][..])] {
        moto.start_recording().await;
        deploy(&moto, &bootstrap(0), args);
        let calls = moto.recorded_calls().await;
        assert!(!calls.is_empty());
        assert_eq!(denied_by_base(&calls), Vec::<String>::new(), "a redeploy with {change}");
    }
    // A new code package is base-part work too.
    moto.start_recording().await;
    deploy(&moto, &bootstrap(3), &[]);
    assert_eq!(denied_by_base(&moto.recorded_calls().await), Vec::<String>::new(), "a code change");
    // So is a rollback.
    moto.start_recording().await;
    xtask(moto.endpoint(), &["rollback", "--stage", "test"]).ok();
    assert_eq!(denied_by_base(&moto.recorded_calls().await), Vec::<String>::new(), "a rollback");

    // Repairing drift in a permissions-managing setting is setup work: with the base part alone
    // it is denied, and `check-iam explain` of that denial names the setup part's statement.
    let aws = xtask::aws::Aws::emulator(moto.endpoint()).await;
    let bucket = "recording-server-test-123456789012-us-east-1";
    aws.s3().delete_public_access_block().bucket(bucket).send().await.unwrap();
    moto.start_recording().await;
    deploy(&moto, &bootstrap(3), &[]);
    assert_eq!(denied_by_base(&moto.recorded_calls().await), ["s3:PutBucketPublicAccessBlock"]);
    let denial = format!(
        "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: s3:PutBucketPublicAccessBlock on resource: \"arn:aws:s3:::{bucket}\" because no identity-based policy allows the s3:PutBucketPublicAccessBlock action"
    );
    let explained = xtask(moto.endpoint(), &["check-iam", "explain", "--stage", "test", "--json", &denial]);
    assert_eq!(explained.code(), 1, "a denial explained: {}", explained.stderr());
    let fix = explained.json()[0]["fix"].as_str().unwrap().to_owned();
    assert!(fix.contains("setup part (`cargo xtask check-iam --print-policy deployer-iam`)"), "{fix}");
}

/// Reserved concurrency is set, changed and removed as the flag says, and left alone when it
/// already is.
#[tokio::test]
async fn reserved_concurrency_converges_and_none_removes_it() {
    let moto = OwnMoto::start();
    deploy(&moto, &bootstrap(0), &[]);
    let report = deploy(&moto, &bootstrap(0), &["--reserved-concurrency", "3"]);
    assert_eq!(function_step(&report), serde_json::json!(["reserved concurrency 3"]));
    let current = || async {
        let lambda = lambda(&moto).await;
        let output = lambda.get_function_concurrency().function_name("recording-server-test").send().await;
        output.unwrap().reserved_concurrent_executions()
    };
    assert_eq!(current().await, Some(3));
    let none = deploy(&moto, &bootstrap(0), &["--reserved-concurrency", "none"]);
    assert_eq!(function_step(&none), serde_json::json!(["no reserved concurrency"]));
    assert_eq!(current().await, None);
    let binary = bootstrap(0);
    let zero = xtask(
        moto.endpoint(),
        &["deploy", "--stage", "test", "--reserved-concurrency", "0", "--binary", binary.to_str().unwrap()],
    );
    assert_eq!(zero.code(), 4, "0 would stop the function: refused as usage");
    assert!(zero.stderr().contains("is not 1 to 1000 or none"), "{}", zero.stderr());
}

#[tokio::test]
async fn bucket_protections_removed_by_hand_are_restored_by_the_next_deploy_keeping_other_rules() {
    let moto = OwnMoto::start();
    deploy(&moto, &bootstrap(0), &[]);
    let aws = xtask::aws::Aws::emulator(moto.endpoint()).await;
    let bucket = "recording-server-test-123456789012-us-east-1";
    aws.s3().delete_bucket_ownership_controls().bucket(bucket).send().await.unwrap();
    // Someone's own rule replaces ours: theirs must survive the repair.
    let theirs = aws_sdk_s3::types::LifecycleRule::builder()
        .id("theirs")
        .status(aws_sdk_s3::types::ExpirationStatus::Enabled)
        .filter(aws_sdk_s3::types::LifecycleRuleFilter::builder().prefix("logs/").build())
        .expiration(aws_sdk_s3::types::LifecycleExpiration::builder().days(30).build())
        .build()
        .unwrap();
    let config = aws_sdk_s3::types::BucketLifecycleConfiguration::builder().rules(theirs).build().unwrap();
    let put = aws.s3().put_bucket_lifecycle_configuration().bucket(bucket).lifecycle_configuration(config);
    put.send().await.unwrap();

    let report = deploy(&moto, &bootstrap(0), &[]);
    let step =
        report["steps"].as_array().unwrap().iter().find(|s| s["resource"] == "bucket").unwrap().clone();
    assert_eq!(step["action"], "update");
    assert_eq!(step["changes"], serde_json::json!(["bucket owner enforced", "lifecycle rules"]));
    let lifecycle = aws.s3().get_bucket_lifecycle_configuration().bucket(bucket).send().await.unwrap();
    let ids: Vec<&str> = lifecycle.rules().iter().filter_map(|r| r.id()).collect();
    assert_eq!(ids, ["theirs", "expire-staging", "abort-incomplete-multipart-uploads"]);
    let again = deploy(&moto, &bootstrap(0), &[]);
    assert!(actions(&again).iter().all(|(_, a)| a == "unchanged"), "{again}");
}

/// A trust policy edited by hand (Lambda no longer trusted) is put back by the next deploy, and
/// nothing else is written.
#[tokio::test]
async fn a_drifted_trust_policy_is_restored_by_the_next_deploy() {
    let moto = OwnMoto::start();
    let binary = bootstrap(0);
    deploy(&moto, &binary, &[]);
    let iam = aws_sdk_iam::Client::new(&xtask::aws::Aws::emulator(moto.endpoint()).await.sdk);
    let role = "recording-server-test-lambda";
    let ec2 = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    iam.update_assume_role_policy().role_name(role).policy_document(ec2.to_string()).send().await.unwrap();

    moto.start_recording().await;
    let report = deploy(&moto, &binary, &[]);
    let writes: Vec<String> = moto.stop_recording().await.into_iter().filter(|o| is_write(o)).collect();

    assert_eq!(writes, ["UpdateAssumeRolePolicy"], "{report}");
    let trust = iam.get_role().role_name(role).send().await.unwrap().role.unwrap();
    let trust = xtask::policy::parse_document(trust.assume_role_policy_document().unwrap());
    assert!(trust.trusts_lambda(), "{trust:?}");
}

/// The function logs JSON: deploy creates it so, and updates carry it; the emulator reports no
/// logging configuration back, which must not read as drift (the no-write redeploy test).
#[tokio::test]
async fn the_function_is_created_and_updated_with_json_logging() {
    let moto = OwnMoto::start();
    moto.start_recording().await;
    deploy(&moto, &bootstrap(0), &[]);
    deploy(&moto, &bootstrap(0), &["--memory", "1024"]);
    let requests = moto.recorded_requests().await;
    let sent = |method: &str, suffix: &str| -> Value {
        let request = requests
            .iter()
            .find(|r| {
                r["method"] == method
                    && r["url"]
                        .as_str()
                        .unwrap()
                        .split('?')
                        .next()
                        .unwrap()
                        .trim_end_matches('/')
                        .ends_with(suffix)
            })
            .unwrap_or_else(|| {
                let seen: Vec<String> =
                    requests.iter().map(|r| format!("{} {}", r["method"], r["url"])).collect();
                panic!("no {method} …{suffix} recorded: {seen:?}")
            });
        serde_json::from_str(request["body"].as_str().unwrap()).unwrap()
    };
    let want =
        serde_json::json!({"LogFormat": "JSON", "ApplicationLogLevel": "INFO", "SystemLogLevel": "INFO"});
    assert_eq!(sent("POST", "/2015-03-31/functions")["LoggingConfig"], want);
    assert_eq!(sent("PUT", "/configuration")["LoggingConfig"], want);
}

/// deploy's and destroy's bucket calls name the account that must own the bucket, so a
/// same-named bucket in another account is neither read, changed nor emptied (moto does not
/// check the header: this checks what is sent).
#[tokio::test]
async fn the_tooling_s3_calls_carry_the_expected_bucket_owner() {
    let moto = OwnMoto::start();
    moto.start_recording().await;
    deploy(&moto, &bootstrap(0), &[]);
    xtask(moto.endpoint(), &["destroy", "--stage", "test", "--include-data", "--yes"]).ok();
    let requests = moto.recorded_requests().await;
    let bucket_calls: Vec<&Value> = requests
        .iter()
        .filter(|r| r["url"].as_str().unwrap().contains("/recording-server-test-123456789012-us-east-1"))
        .collect();
    assert!(bucket_calls.len() >= 8, "{bucket_calls:?}");
    for request in bucket_calls {
        let create = request["method"] == "PUT" && !request["url"].as_str().unwrap().contains('?');
        let owner = request["headers"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("x-amz-expected-bucket-owner"))
            .map(|(_, v)| v.as_str().unwrap().to_owned());
        let expected = if create { None } else { Some("123456789012".to_owned()) };
        assert_eq!(owner, expected, "{} {}", request["method"], request["url"]);
    }
}

/// The data rule: a stage's tables are named after it by default and tagged as its own; deploy
/// refuses another stage's tables and a change of data without a flag; destroy --include-data
/// deletes only the stage's own data and says what it keeps. Before, `deploy --stage demo`
/// adopted (and protected) the tables `cargo xtask local` served, and destroying demo deleted them.
#[tokio::test]
async fn stages_never_share_or_destroy_each_others_data_unless_asked() {
    let moto = OwnMoto::start();
    let binary = bootstrap(0);
    let binary = binary.to_str().unwrap();
    let tables = |aws: xtask::aws::Aws| async move {
        let mut names = aws.dynamodb().list_tables().send().await.unwrap().table_names().to_vec();
        names.sort();
        names
    };
    let aws = xtask::aws::Aws::emulator(moto.endpoint()).await;
    // The seed's tables, as `cargo xtask local` creates them.
    xtask(moto.endpoint(), &["create-tables", "--table-prefix", "", "--stage", "local"]).ok();

    let first = xtask(moto.endpoint(), &["deploy", "--stage", "demo", "--binary", binary]).ok();
    assert!(first.stdout().contains("demo-record_user"), "{}", first.stdout());
    assert_eq!(
        tables(aws.clone()).await,
        ["demo-record_record", "demo-record_user", "record_record", "record_user"]
    );

    // Another stage's tables: refused without --adopt-data, shown by a dry run.
    let seed = ["deploy", "--stage", "other", "--binary", binary, "--table-prefix", ""];
    let refused = xtask(moto.endpoint(), &seed);
    assert_eq!(refused.code(), 4, "{}", refused.stderr());
    assert!(refused.stderr().contains("table record_user belongs to stage local"), "{}", refused.stderr());
    assert!(refused.stderr().contains("--adopt-data"), "{}", refused.stderr());
    let plan = xtask(moto.endpoint(), &[&seed[..], &["--dry-run"]].concat()).ok();
    assert!(plan.stdout().contains("would adopt"), "{}", plan.stdout());

    // A redeploy that names other tables changes the live function's data: refused without
    // --change-data, and shown as data-affecting in the plan.
    let moved = ["deploy", "--stage", "demo", "--binary", binary, "--table-prefix", "moved-"];
    let refused = xtask(moto.endpoint(), &moved);
    assert_eq!(refused.code(), 4, "{}", refused.stderr());
    assert!(
        refused.stderr().contains("demo-record_user, demo-record_record -> moved-record_user"),
        "{}",
        refused.stderr()
    );
    let plan = xtask(moto.endpoint(), &[&moved[..], &["--dry-run"]].concat()).ok();
    assert!(plan.stdout().contains("data-affecting"), "{}", plan.stdout());
    // A redeploy without the flag keeps the deployed tables.
    let again = xtask(moto.endpoint(), &["deploy", "--stage", "demo", "--binary", binary]).ok();
    assert!(!again.stdout().contains("data "), "{}", again.stdout());

    // destroy takes the tables from the deployed function and refuses a contradicting flag.
    let wrong = xtask(
        moto.endpoint(),
        &["destroy", "--stage", "demo", "--include-data", "--yes", "--table-prefix", ""],
    );
    assert_eq!(wrong.code(), 4, "{}", wrong.stderr());
    assert!(
        wrong.stderr().contains("\"\" contradicts stage demo, whose function uses \"demo-\""),
        "{}",
        wrong.stderr()
    );
    xtask(moto.endpoint(), &["destroy", "--stage", "demo", "--include-data", "--yes"]).ok();
    assert_eq!(tables(aws.clone()).await, ["record_record", "record_user"], "the seed's tables were kept");

    // A stage that was never deployed is no stage at all.
    let none = xtask(moto.endpoint(), &["destroy", "--stage", "never", "--yes"]);
    assert_eq!(none.code(), 1);
    assert!(none.stderr().contains("no stage never here"), "{}", none.stderr());
}

/// Tables that are another stage's are kept by destroy --include-data, which says so, even when
/// the stage was deployed on them on purpose (--adopt-data); their protection stays on.
#[tokio::test]
async fn destroy_keeps_adopted_tables_and_says_why() {
    let moto = OwnMoto::start();
    let binary = bootstrap(0);
    let binary = binary.to_str().unwrap();
    xtask(moto.endpoint(), &["create-tables", "--table-prefix", "shared-", "--stage", "prod", "--protect"])
        .ok();
    let args = ["deploy", "--stage", "demo", "--binary", binary, "--table-prefix", "shared-", "--adopt-data"];
    xtask(moto.endpoint(), &args).ok();

    let run = xtask(moto.endpoint(), &["destroy", "--stage", "demo", "--include-data", "--yes"]).ok();

    assert!(
        run.stdout().contains("kept     table shared-record_user: it belongs to stage prod"),
        "{}",
        run.stdout()
    );
    assert!(!run.stdout().contains("protection switched off"), "{}", run.stdout());
    let aws = xtask::aws::Aws::emulator(moto.endpoint()).await;
    let table = aws.dynamodb().describe_table().table_name("shared-record_user").send().await.unwrap();
    assert_eq!(table.table.unwrap().deletion_protection_enabled, Some(true));
}

/// A derived bucket name that S3 would refuse (a 20-character stage in a long region makes 65
/// characters) is refused by the dry run already, before any build or write.
#[test]
fn a_derived_bucket_name_s3_would_refuse_fails_the_dry_run() {
    let args = [
        "deploy",
        "--stage",
        "abcdefghijklmnopqrst",
        "--region",
        "ap-southeast-2",
        "--dry-run",
        "--binary",
        "/bin/true",
    ];
    let run = xtask(&crate::helpers::shared_endpoint(), &args);
    assert_eq!(run.code(), 4, "{}", run.stderr());
    assert!(run.stderr().contains("is 65 characters long; S3 allows 3 to 63"), "{}", run.stderr());
}

/// check-iam checks the deployed stage's own tables and bucket (from its function), and refuses
/// a flag that contradicts them instead of reporting the role as over-granted.
#[tokio::test]
async fn check_iam_takes_the_stage_from_the_deployed_function() {
    let moto = OwnMoto::start();
    deploy(&moto, &bootstrap(0), &["--table-prefix", "custom-"]);

    let run = xtask(moto.endpoint(), &["check-iam", "--stage", "test", "--all", "--skip-role"]);
    assert!(run.stdout().contains("table/custom-record_user"), "{}", run.stdout());
    assert!(!run.stdout().contains("table/test-record_user"), "{}", run.stdout());
    let other = xtask(moto.endpoint(), &["check-iam", "--stage", "test", "--bucket", "some-other-bucket"]);
    assert_eq!(other.code(), 4, "{}", other.stderr());
    assert!(other.stderr().contains("\"some-other-bucket\" contradicts stage test"), "{}", other.stderr());
}

/// destroy removes the function's log group with it, unless --keep-logs.
#[tokio::test]
async fn destroy_removes_the_log_group_unless_asked_to_keep_it() {
    let moto = OwnMoto::start();
    let logs = aws_sdk_cloudwatchlogs::Client::new(&xtask::aws::Aws::emulator(moto.endpoint()).await.sdk);
    let groups = || async {
        let found =
            logs.describe_log_groups().log_group_name_prefix("/aws/lambda/recording-server-test").send();
        found.await.unwrap().log_groups().len()
    };
    deploy(&moto, &bootstrap(0), &[]);
    let kept = xtask(moto.endpoint(), &["destroy", "--stage", "test", "--yes", "--keep-logs"]).ok();
    assert!(
        kept.stdout().contains("kept     log group /aws/lambda/recording-server-test"),
        "{}",
        kept.stdout()
    );
    assert_eq!(groups().await, 1);

    deploy(&moto, &bootstrap(0), &["--log-retention-days", "7"]);
    xtask(moto.endpoint(), &["destroy", "--stage", "test", "--yes"]).ok();
    assert_eq!(groups().await, 0, "the log group went with the function");
}

/// `status` reads back what deploy made, as an operator asks for it; a stage that is not there
/// exits 1 saying so.
#[tokio::test]
async fn status_shows_the_url_configuration_code_and_data_of_a_stage() {
    let moto = OwnMoto::start();
    let report = deploy(&moto, &bootstrap(0), &["--reserved-concurrency", "3"]);
    moto.start_recording().await;
    let status = xtask(moto.endpoint(), &["status", "--stage", "test", "--json"]).ok().json();
    let calls = moto.recorded_calls().await;

    assert_eq!(status["function"], "recording-server-test");
    assert_eq!(status["url"], report["url"]);
    assert_eq!((status["memory_mb"].as_i64(), status["timeout_s"].as_i64()), (Some(512), Some(60)));
    assert_eq!(status["reserved_concurrency"], 3);
    assert_eq!(status["code_sha256"], report["code_sha256"]);
    assert_eq!(status["bucket"], "recording-server-test-123456789012-us-east-1");
    assert_eq!(status["table_prefix"], "test-");
    let versions: Vec<&str> =
        status["versions"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["$LATEST", "1"]);
    assert_eq!(status["aliases"][0]["name"], "live");
    assert_eq!(status["aliases"][0]["version"], "1");
    let description = status["aliases"][0]["version_description"].as_str().unwrap();
    assert!(description.starts_with("commit ") && description.contains("prebuilt binary"), "{description}");
    assert_eq!(status["latest_differs_from_live"], false);
    // Reads only.
    let operations: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    assert!(operations.iter().all(|o| o.starts_with("Get") || o.starts_with("List")), "{operations:?}");

    let text = xtask(moto.endpoint(), &["status", "--stage", "test"]).ok().stdout();
    assert!(text.contains("512 MB memory, 60 s timeout, reserved concurrency 3"), "{text}");
    let missing = xtask(moto.endpoint(), &["status", "--stage", "nosuch"]);
    assert_eq!(missing.code(), 1, "{}", missing.stderr());
    assert!(missing.stderr().contains("no stage nosuch here"), "{}", missing.stderr());
}
