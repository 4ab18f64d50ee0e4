//! `cargo xtask check-iam`: probes against moto with IAM enforcement on, and the simulation path
//! with mocked IAM responses, because moto does not implement `iam:SimulatePrincipalPolicy`
//! (it answers 500).

use aws_sdk_iam::operation::get_role::{GetRoleError, GetRoleOutput};
use aws_sdk_iam::operation::list_roles::ListRolesOutput;
use aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyOutput;
use aws_sdk_iam::types::error::NoSuchEntityException;
use aws_sdk_iam::types::{
    EvaluationResult, OrganizationsDecisionDetail, PolicyEvaluationDecisionType, ResourceSpecificResult, Role,
};
use aws_sdk_iam::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use serde_json::{json, Value};
use xtask::catalogue::{deployer_needs, render_policy, Task};
use xtask::check_iam::{resolve_role_arn, simulate, Check, Decision, Denial};
use xtask::names::Names;

use crate::helpers::{aws_as, is_write, xtask_as, xtask_command, Keys, OwnMoto, Run};

// ---- the command as a developer types it, against moto enforcing IAM ----
//
// moto matches DynamoDB and Lambda policy statements against Resource "*" only, so the users
// below hold the any-resource variant of the rendered policies; the fix statements check-iam
// prints name the stage's exact ARNs. Under enforcement moto's Lambda API answers GET and
// DELETE requests with SignatureDoesNotMatch even when allowed (a moto bug): those probes stay
// UNKNOWN, and the caller's own policies settle them where the caller may read them.

const ACCOUNT: &str = "123456789012";

/// `xtask <args>` as the holder of `keys`, each AWS call tried once: moto answers
/// `iam:SimulatePrincipalPolicy` with a 500 (not implemented), which the SDK's default policy
/// retries with backoff, about 2.5 s of waiting per run and no other effect (the verdicts come
/// from the probes either way). The retries themselves are the SDK's, not check-iam's.
fn run_as(endpoint: &str, keys: &Keys, args: &[&str]) -> Run {
    let mut command = xtask_command(endpoint, keys, args);
    Run(command.env("AWS_MAX_ATTEMPTS", "1").output().expect("run the xtask binary"))
}

fn names() -> Names {
    Names::new("dev", ACCOUNT, "us-east-1", "", None)
}

/// The rendered deployer policy (check-iam's own needs included), any-resource variant.
fn deployer_policy() -> Value {
    render_policy(&deployer_needs(&Task::ALL), &names(), true).to_value()
}

fn without(mut policy: Value, action: &str) -> Value {
    for statement in policy["Statement"].as_array_mut().unwrap() {
        statement["Action"].as_array_mut().unwrap().retain(|a| a != action);
    }
    policy["Statement"].as_array_mut().unwrap().retain(|s| !s["Action"].as_array().unwrap().is_empty());
    policy
}

fn allow(actions: &[&str]) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]})
}

/// One enforcing moto, one user holding `policy`, and an admin's keys (under enforcement
/// moto's dummy keys stop working).
async fn user(name: &str, policy: &Value) -> (OwnMoto, Keys, Keys) {
    let moto = OwnMoto::start();
    let keys = moto.user_with_policy(name, policy).await;
    let admin = moto.user_with_policy("test-admin", &allow(&["*"])).await;
    moto.enforce_iam().await;
    (moto, keys, admin)
}

/// Both runs of check-iam as a developer types it: default text, and `--json`.
struct Runs {
    text: Run,
    json: Value,
    code: i32,
}

fn check_iam(moto: &OwnMoto, keys: &Keys, extra: &[&str]) -> Runs {
    let text = run_as(moto.endpoint(), keys, &[&["check-iam"], extra].concat());
    let json_run = run_as(moto.endpoint(), keys, &[&["check-iam", "--json"], extra].concat());
    for run in [&text, &json_run] {
        let all = format!("{}{}", run.stdout(), run.stderr());
        for dump in ["ServiceError {", "Extensions {", "SdkBody", "DispatchFailure"] {
            assert!(!all.contains(dump), "a debug dump ({dump}) in the output:\n{all}");
        }
    }
    assert_eq!(text.code(), json_run.code(), "text and --json disagree");
    let code = text.code();
    Runs { json: json_run.json(), text, code }
}

fn verdict<'a>(runs: &'a Runs, subject: &str) -> &'a Value {
    runs.json["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["subject"] == subject)
        .unwrap_or_else(|| panic!("no verdict for {subject}: {}", runs.json["verdicts"]))
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect()
}

/// The verdict of `subject`: its status, its missing actions, and the text line that says so.
fn assert_verdict(runs: &Runs, subject: &str, status: &str, missing: &[&str]) {
    let v = verdict(runs, subject);
    assert_eq!(v["status"], status, "{subject}: {v}\n{}", runs.text.stdout());
    let mut got = strings(&v["missing"]);
    got.sort_unstable();
    let mut want = missing.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "{subject}'s missing actions\n{}", runs.text.stdout());
    let line = runs.text.stdout().lines().find(|l| l.starts_with(subject)).map(str::to_owned);
    let line = line.unwrap_or_else(|| panic!("no verdict line for {subject}:\n{}", runs.text.stdout()));
    assert!(line.contains(status), "{line}");
    for action in missing {
        assert!(line.contains(action), "{line} does not name {action}");
    }
}

/// The actions the printed fix statement grants.
fn fix_actions(runs: &Runs) -> Vec<String> {
    let statement = &runs.json["fix"]["statement"];
    let mut actions: Vec<String> = statement["Statement"]
        .as_array()
        .map(|s| s.iter().flat_map(|s| strings(&s["Action"])).map(str::to_owned).collect())
        .unwrap_or_default();
    actions.sort_unstable();
    actions
}

/// The verdict lines come before the rows.
fn assert_verdicts_first(runs: &Runs) {
    let out = runs.text.stdout();
    let verdict = out.find("create-tables  ").or_else(|| out.find("runtime-role")).expect("a verdict line");
    let rows = out.find(" of ").expect("a row group");
    assert!(verdict < rows, "verdicts must come first:\n{out}");
}

/// No row stays UNKNOWN for an action check-iam can probe, except the Lambda reads moto cannot
/// answer under enforcement (see the top of this section).
fn assert_no_unknown_probe(runs: &Runs) {
    for row in runs.json["rows"].as_array().unwrap().iter().filter(|r| r["decision"] == "UNKNOWN") {
        let reason = row["reason"].as_str().unwrap();
        let probed = reason.starts_with("the probe failed");
        let moto_lambda = reason.contains("SignatureDoesNotMatch")
            && row["action"].as_str().unwrap().starts_with("lambda:");
        assert!(!probed || moto_lambda, "an UNKNOWN row for a probed action: {row}");
    }
}

#[tokio::test]
async fn a_user_allowed_only_get_caller_identity_gets_verdicts_and_the_statement_to_attach() {
    let (moto, keys, _) = user("nobody", &allow(&["sts:GetCallerIdentity"])).await;

    let runs = check_iam(&moto, &keys, &[]);

    assert_eq!(runs.code, 1, "{}\n{}", runs.text.stdout(), runs.text.stderr());
    let tables =
        ["dynamodb:DescribeContinuousBackups", "dynamodb:DescribeTable", "dynamodb:DescribeTimeToLive"];
    assert_verdict(&runs, "create-tables", "BLOCKED", &tables);
    assert_eq!(verdict(&runs, "create-tables")["unknown"].as_array().unwrap().len(), 5, "the writes");
    // The execution role cannot be read: UNKNOWN rows naming iam:GetRole, not an abort.
    assert_verdict(&runs, "runtime-role", "UNDECIDED", &[]);
    let role_rows: Vec<&Value> =
        runs.json["rows"].as_array().unwrap().iter().filter(|r| r["principal"] == "execution-role").collect();
    assert!(!role_rows.is_empty());
    for row in role_rows {
        assert!(
            row["reason"].as_str().unwrap().starts_with("needs iam:GetRole on recording-server-dev-lambda"),
            "{row}"
        );
    }
    assert!(fix_actions(&runs).iter().any(|a| a == "dynamodb:DescribeTimeToLive"), "{}", runs.json["fix"]);
    assert!(runs.text.stdout().contains("arn:aws:dynamodb:us-east-1:123456789012:table/dev-record_user"));
    assert_verdicts_first(&runs);
    assert_no_unknown_probe(&runs);
}

#[tokio::test]
async fn a_describe_only_user_is_told_what_create_tables_lacks_without_an_abort() {
    let policy = allow(&["dynamodb:DescribeTable", "dynamodb:ListTables", "sts:GetCallerIdentity"]);
    let (moto, keys, _) = user("describe-only", &policy).await;

    for extra in [&[][..], &["--task", "create-tables"][..]] {
        let runs = check_iam(&moto, &keys, extra);

        assert_eq!(runs.code, 1, "{}\n{}", runs.text.stdout(), runs.text.stderr());
        let missing = ["dynamodb:DescribeContinuousBackups", "dynamodb:DescribeTimeToLive"];
        assert_verdict(&runs, "create-tables", "BLOCKED", &missing);
        // The fix grants what was found denied: the reads of the checked tasks' catalogues (the
        // default probes decide reads only; writes stay undecided) that the user lacks, but for
        // Lambda's, which moto cannot answer under enforcement (SignatureDoesNotMatch).
        let tasks: &[Task] = if extra.is_empty() { &Task::DEFAULT } else { &[Task::CreateTables] };
        let read = |a: &str| {
            let verb = a.split(':').nth(1).unwrap_or_default();
            ["Get", "List", "Describe", "Filter"].iter().any(|p| verb.starts_with(p))
        };
        let mut expected: Vec<String> = deployer_needs(tasks)
            .iter()
            .map(|n| n.action.name().to_owned())
            .filter(|a| read(a) && !a.starts_with("lambda:"))
            .filter(|a| a != "dynamodb:DescribeTable" && a != "sts:GetCallerIdentity")
            .collect();
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(fix_actions(&runs), expected, "{}", runs.json["fix"]);
        assert!(!runs.text.stderr().contains("access denied: iam:GetRole"), "{}", runs.text.stderr());
        assert_verdicts_first(&runs);
        assert_no_unknown_probe(&runs);
    }
}

#[tokio::test]
async fn a_user_holding_the_rendered_deployer_policy_is_ok_everywhere() {
    let (moto, keys, _) = user("deployer", &deployer_policy()).await;

    let runs = check_iam(&moto, &keys, &[]);

    assert_eq!(runs.code, 0, "{}\n{}", runs.text.stdout(), runs.text.stderr());
    for task in ["create-tables", "deploy", "destroy"] {
        assert_verdict(&runs, task, "OK", &[]);
    }
    assert_verdict(&runs, "runtime-role", "OK", &[]);
    assert!(runs.json["fix"]["statement"].is_null());
    // ALLOW rows are counted, not listed, unless --all.
    assert!(!runs.text.stdout().contains(" ALLOW "), "{}", runs.text.stdout());
    let all = run_as(moto.endpoint(), &keys, &["check-iam", "--all"]);
    assert!(all.stdout().contains(" ALLOW "), "{}", all.stdout());
    assert_no_unknown_probe(&runs);
}

#[tokio::test]
async fn conditional_probes_change_nothing() {
    let (moto, keys, admin) = user("deployer", &deployer_policy()).await;
    moto.start_recording().await;

    let runs = check_iam(&moto, &keys, &["--probe", "conditional"]);

    assert_eq!(runs.code, 0, "{}\n{}", runs.text.stdout(), runs.text.stderr());
    let aws = aws_as(moto.endpoint(), &admin).await;
    let tables = aws.dynamodb().list_tables().send().await.unwrap();
    assert!(tables.table_names().is_empty(), "a probe created a table: {:?}", tables.table_names());
    let iam = aws_sdk_iam::Client::new(&aws.sdk);
    let roles = iam.list_roles().send().await.unwrap();
    assert!(roles.roles().is_empty(), "a probe created a role");
    let buckets = aws.s3().list_buckets().send().await.unwrap();
    assert!(buckets.buckets().is_empty(), "a probe created a bucket");
    // Under enforcement moto answers every Lambda read with SignatureDoesNotMatch: read with it
    // off, so a created function would be seen.
    moto.suspend_iam().await;
    let functions = aws_sdk_lambda::Client::new(&aws.sdk).list_functions().send().await.unwrap();
    assert!(functions.functions().is_empty(), "a probe created a function: {:?}", functions.functions());
    // Writes were really sent (each one a probe on a resource that does not exist).
    let writes: Vec<String> = moto.stop_recording().await.into_iter().filter(|o| is_write(o)).collect();
    assert!(writes.iter().any(|w| w == "UpdateTimeToLive"), "{writes:?}");
    assert!(
        writes.iter().any(|w| w == "POST /2015-03-31/functions"),
        "no CreateFunction probe was sent: {writes:?}"
    );
    let decided = runs.json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["principal"] == "deployer" && r["method"] == "probe" && r["decision"] != "UNKNOWN")
        .count();
    assert!(decided > 0);
}

/// Every action of every task's catalogue is probed as far as `--probe conditional` goes, on a
/// stage where nothing exists yet (where a probe of a delete could not delete anything, and
/// check-iam still sends none): the emulator's recorder shows no delete from check-iam.
#[tokio::test]
async fn no_probe_of_any_action_sends_a_delete() {
    let (moto, keys, _) = user("deployer", &deployer_policy()).await;
    moto.start_recording().await;

    let every_task = Task::ALL.map(|t| t.name()).join(",");
    let runs = check_iam(&moto, &keys, &["--probe", "conditional", "--task", &every_task]);

    assert_eq!(runs.code, 0, "{}\n{}", runs.text.stdout(), runs.text.stderr());
    let rows = runs.json["rows"].as_array().unwrap();
    let checked: std::collections::BTreeSet<&str> =
        rows.iter().filter(|r| r["principal"] == "deployer").map(|r| r["action"].as_str().unwrap()).collect();
    let every: std::collections::BTreeSet<&str> =
        deployer_needs(&Task::ALL).iter().map(|n| n.action.name()).collect();
    // Probed, then read from the user's own policy where a probe could not decide.
    assert_eq!(checked, every, "every catalogued action has a row");
    let deletes: Vec<String> = moto
        .recorded_calls()
        .await
        .into_iter()
        .filter(|c| c.principal == xtask::coverage::Principal::Task(Task::CheckIam))
        .map(|c| c.operation)
        .filter(|o| o.starts_with("Delete") || o.starts_with("Remove") || o.starts_with("DELETE"))
        .collect();
    assert_eq!(deletes, Vec::<String>::new(), "check-iam sent deletes");
    let requests = moto.recorded_requests().await;
    let methods: Vec<&Value> = requests.iter().map(|r| &r["method"]).collect();
    assert!(!methods.is_empty() && !methods.contains(&&json!("DELETE")), "{methods:?}");
    // Needs on the function's versions are probed on its `live` alias (Lambda authorizes a
    // qualified call on the qualified ARN), the function's own needs unqualified.
    let gets: Vec<&str> =
        requests.iter().filter(|r| r["method"] == "GET").filter_map(|r| r["url"].as_str()).collect();
    for path in ["/configuration", "/policy", "/url"] {
        let sent: Vec<&&str> = gets.iter().filter(|u| u.split('?').next().unwrap().ends_with(path)).collect();
        assert!(sent.iter().any(|u| u.contains("Qualifier=live")), "no qualified probe of {path}: {sent:?}");
    }
    let configurations = gets.iter().filter(|u| u.split('?').next().unwrap().ends_with("/configuration"));
    assert!(configurations.clone().any(|u| !u.contains("Qualifier")), "{gets:?}");
}

/// The deployer policy minus one action: the verdict names exactly that action, and attaching
/// the printed fix statement unblocks the task.
async fn minus_one(action: &str, blocked: &[&str]) {
    let (moto, keys, admin) = user("almost", &without(deployer_policy(), action)).await;

    let runs = check_iam(&moto, &keys, &[]);

    assert_eq!(runs.code, 1, "{}\n{}", runs.text.stdout(), runs.text.stderr());
    for task in ["create-tables", "deploy", "destroy"] {
        if blocked.contains(&task) {
            assert_verdict(&runs, task, "BLOCKED", &[action]);
        } else {
            assert_verdict(&runs, task, "OK", &[]);
        }
    }
    assert_eq!(fix_actions(&runs), [action]);
    let printed = runs.text.stdout();
    assert!(printed.contains(&format!("\"{action}\"")), "{printed}");
    assert_no_unknown_probe(&runs);

    // Attach the statement as printed (a second inline policy), and rerun.
    let statement = runs.json["fix"]["statement"].clone();
    let iam = aws_sdk_iam::Client::new(&aws_as(moto.endpoint(), &admin).await.sdk);
    let attach =
        iam.put_user_policy().user_name("almost").policy_name("fix").policy_document(statement.to_string());
    attach.send().await.expect("the admin attaches the fix");
    let again = check_iam(&moto, &keys, &[]);
    for task in blocked {
        assert_verdict(&again, task, "OK", &[]);
    }
}

#[tokio::test]
async fn without_pass_role_deploy_is_blocked_and_the_fix_unblocks_it() {
    minus_one("iam:PassRole", &["deploy"]).await;
}

#[tokio::test]
async fn without_create_table_create_tables_and_deploy_are_blocked_and_the_fix_unblocks_them() {
    minus_one("dynamodb:CreateTable", &["create-tables", "deploy"]).await;
}

#[tokio::test]
async fn without_create_function_deploy_is_blocked_and_the_fix_unblocks_it() {
    minus_one("lambda:CreateFunction", &["deploy"]).await;
}

#[tokio::test]
async fn an_explicit_deny_is_named_and_not_answered_with_an_allow() {
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "dynamodb:DeleteTable", "Resource": "*"}
    ]});
    let (moto, keys, _) = user("denied", &policy).await;

    let runs = check_iam(&moto, &keys, &[]);

    assert_eq!(runs.code, 1, "{}\n{}", runs.text.stdout(), runs.text.stderr());
    assert_verdict(&runs, "destroy", "BLOCKED", &["dynamodb:DeleteTable"]);
    assert_verdict(&runs, "create-tables", "OK", &[]);
    assert_verdict(&runs, "deploy", "OK", &[]);
    assert!(runs.json["fix"]["statement"].is_null(), "an Allow cannot fix an explicit deny");
    let not_fixed = strings(&runs.json["fix"]["not_fixed_by_allow"]).join("\n");
    assert!(not_fixed.contains("dynamodb:DeleteTable") && not_fixed.contains("explicit deny"), "{not_fixed}");
    assert!(
        runs.text.stdout().contains("not fixed by an Allow: dynamodb:DeleteTable"),
        "{}",
        runs.text.stdout()
    );
    assert_no_unknown_probe(&runs);
}

#[tokio::test]
async fn an_allow_all_user_is_ok_everywhere() {
    let (moto, keys, _) = user("admin", &allow(&["*"])).await;

    let runs = check_iam(&moto, &keys, &[]);

    assert_eq!(runs.code, 0, "{}\n{}", runs.text.stdout(), runs.text.stderr());
    for task in ["create-tables", "deploy", "destroy", "runtime-role"] {
        assert_verdict(&runs, task, "OK", &[]);
    }
    assert_no_unknown_probe(&runs);
}

#[tokio::test]
async fn other_tasks_report_a_denied_call_in_one_line_with_a_hint() {
    let policy = allow(&["dynamodb:DescribeTable", "dynamodb:ListTables", "sts:GetCallerIdentity"]);
    let (moto, keys, _) = user("describe-only", &policy).await;

    let run = xtask_as(moto.endpoint(), &keys, &["create-tables"]);

    assert_eq!(run.code(), 1, "{}\n{}", run.stdout(), run.stderr());
    let err = run.stderr();
    let line = err.lines().find(|l| l.contains("dynamodb:CreateTable on")).unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains("AccessDenied") && line.contains("(request id "), "{line}");
    assert!(
        err.contains("hint: you may not call dynamodb:CreateTable: run `cargo xtask check-iam`"),
        "{err}"
    );
    for dump in ["ServiceError {", "Extensions {", "SdkBody"] {
        assert!(!err.contains(dump), "{err}");
    }
    // --verbose adds the SDK's own account of the error.
    let verbose = xtask_as(moto.endpoint(), &keys, &["create-tables", "--verbose"]);
    assert!(verbose.stderr().contains("detail: "), "{}", verbose.stderr());
}

#[tokio::test]
async fn an_unreachable_endpoint_is_one_line_and_a_hint() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let keys = Keys { id: "local".into(), secret: "local".into() };

    let run = xtask_as(&closed, &keys, &["create-tables"]);

    assert_eq!(run.code(), 1);
    let err = run.stderr();
    assert!(err.contains("dynamodb:DescribeTable on"), "{err}");
    assert!(err.contains(&format!("hint: could not reach {closed}")), "{err}");
    for dump in ["ServiceError {", "Extensions {", "SdkBody", "DispatchFailure {"] {
        assert!(!err.contains(dump), "{err}");
    }
}

#[tokio::test]
async fn a_denied_deploy_piped_into_explain_names_the_step_and_the_fix() {
    let mut policy = render_policy(&deployer_needs(&[Task::CreateTables]), &names(), true).to_value();
    policy["Statement"].as_array_mut().unwrap().push(json!({
        "Effect": "Allow", "Action": ["sts:GetCallerIdentity", "s3:*"], "Resource": "*"
    }));
    let (moto, keys, _) = user("half-deployer", &policy).await;
    let binary = crate::deploy::bootstrap(0);

    let deploy =
        xtask_as(moto.endpoint(), &keys, &["deploy", "--stage", "dev", "--binary", binary.to_str().unwrap()]);
    assert_eq!(deploy.code(), 1, "{}\n{}", deploy.stdout(), deploy.stderr());
    assert!(deploy.stderr().contains("iam:GetRole"), "{}", deploy.stderr());

    // `cargo xtask deploy 2>&1 | cargo xtask check-iam explain -`
    let mut explain = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["check-iam", "explain", "-"])
        .env_remove("AWS_REGION")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    explain.stdin.take().unwrap().write_all(deploy.stderr().as_bytes()).unwrap();
    let explained = Run(explain.wait_with_output().unwrap());

    assert_eq!(explained.code(), 1, "one denial explained\n{}", explained.stdout());
    let out = explained.stdout();
    assert!(out.contains("denial 1: iam:GetRole"), "{out}");
    assert!(out.contains("principal  arn:aws:iam::123456789012:user/half-deployer"), "{out}");
    assert!(out.contains("needed by  cargo xtask deploy"), "{out}");
    assert!(out.contains("attach this statement to arn:aws:iam::123456789012:user/half-deployer"), "{out}");
    assert!(out.contains("\"arn:aws:iam::123456789012:role/recording-server-dev-lambda\""), "{out}");
    // Nothing to explain: exit 0.
    let clean = run_as(moto.endpoint(), &keys, &["check-iam", "explain", "deployed fine"]);
    assert_eq!(clean.code(), 0, "{}", clean.stdout());
    // No message at all is a usage error.
    assert_eq!(run_as(moto.endpoint(), &keys, &["check-iam", "explain"]).code(), 4);
}

#[tokio::test]
async fn explain_reads_the_denials_in_the_functions_log_group() {
    let moto = OwnMoto::start();
    let aws = xtask::aws::Aws::emulator(moto.endpoint()).await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&aws.sdk);
    let group = "/aws/lambda/recording-server-dev";
    logs.create_log_group().log_group_name(group).send().await.unwrap();
    logs.create_log_stream().log_group_name(group).log_stream_name("s").send().await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let lines = [
        "INFO request done status=200",
        "ERROR request failed error=Query on the record index failed: AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/recording-server-dev-lambda/recording-server-dev is not authorized to perform: dynamodb:Query on resource: arn:aws:dynamodb:us-east-1:123456789012:table/record_record/index/user_id-created_at-index because no identity-based policy allows the dynamodb:Query action",
    ];
    let events = lines.iter().enumerate().map(|(i, line)| {
        aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
            .timestamp(now + i as i64)
            .message(*line)
            .build()
            .unwrap()
    });
    let put = logs
        .put_log_events()
        .log_group_name(group)
        .log_stream_name("s")
        .set_log_events(Some(events.collect()));
    put.send().await.unwrap();
    let keys = Keys { id: "local".into(), secret: "local".into() };

    let run = run_as(
        moto.endpoint(),
        &keys,
        &["check-iam", "explain", "--stage", "dev", "--since", "1h", "--json"],
    );

    assert_eq!(run.code(), 1, "{}\n{}", run.stdout(), run.stderr());
    let explained = run.json();
    assert_eq!(explained.as_array().unwrap().len(), 1, "{explained}");
    assert_eq!(explained[0]["action"], "dynamodb:Query");
    assert!(explained[0]["fix"].as_str().unwrap().contains("cargo xtask deploy --stage dev"), "{explained}");
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_instead_of_panicking() {
    let message = "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: iam:PassRole";
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["check-iam", "explain", message])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // `| head -0`: the reader is gone before xtask writes
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(output.status.code(), Some(101), "{stderr}");
}

#[tokio::test]
async fn unknown_credentials_exit_3_with_the_fix() {
    let moto = OwnMoto::start();
    moto.enforce_iam().await;
    let keys = Keys { id: "AKIANOTAREALKEY00000".into(), secret: "nope".into() };

    let run = run_as(moto.endpoint(), &keys, &["check-iam"]);

    assert_eq!(run.code(), 3, "{}\n{}", run.stdout(), run.stderr());
    assert!(run.stderr().contains("sts:GetCallerIdentity failed"), "{}", run.stderr());
    // ...and the fix for it.
    assert!(
        run.stderr().contains("hint: the access key id is not valid: check AWS_ACCESS_KEY_ID or the profile"),
        "{}",
        run.stderr()
    );
}

#[tokio::test]
async fn print_policy_renders_concrete_arns_from_the_account() {
    let moto = OwnMoto::start();
    let keys = Keys { id: "local".into(), secret: "local".into() };
    let run =
        run_as(moto.endpoint(), &keys, &["check-iam", "--print-policy", "runtime", "--stage", "prod"]).ok();
    let policy: Value = run.json();
    let text = policy.to_string();
    assert!(text.contains("arn:aws:dynamodb:us-east-1:123456789012:table/prod-record_user"), "{text}");
    assert!(text.contains("arn:aws:s3:::recording-server-prod-123456789012-us-east-1/*"), "{text}");
    assert!(!text.contains("\"*\""), "{text}");
}

// ---- the simulation path, with mocked IAM (moto cannot simulate) ----

fn checks(tasks: &[Task]) -> Vec<Check> {
    let names = Names::new("dev", "123456789012", "us-east-1", "", None);
    deployer_needs(tasks).into_iter().map(|n| Check::new(n, &names)).collect()
}

fn result(action: &str, decision: PolicyEvaluationDecisionType) -> EvaluationResult {
    EvaluationResult::builder().eval_action_name(action).eval_decision(decision).build().unwrap()
}

#[tokio::test]
async fn an_assumed_role_is_resolved_to_its_role_arn_with_its_path() {
    let sso_role = "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Dev_abc";
    let get_role = mock!(Client::get_role)
        .match_requests(|r| r.role_name() == Some("AWSReservedSSO_Dev_abc"))
        .then_output(move || {
            let role = Role::builder()
                .path("/aws-reserved/sso.amazonaws.com/")
                .role_name("AWSReservedSSO_Dev_abc")
                .role_id("AROAEXAMPLE")
                .arn(sso_role)
                .create_date(aws_smithy_types::DateTime::from_secs(0))
                .build()
                .unwrap();
            GetRoleOutput::builder().role(role).build()
        });
    let iam = mock_client!(aws_sdk_iam, [&get_role]);

    let session = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Dev_abc/dev@example.com";
    let arn = resolve_role_arn(&iam, session, "AROAEXAMPLE:dev@example.com").await.unwrap();

    assert_eq!(arn, sso_role);
}

#[tokio::test]
async fn without_get_role_the_role_is_found_by_id_across_list_roles_pages() {
    let denied = mock!(Client::get_role)
        .then_error(|| GetRoleError::NoSuchEntityException(NoSuchEntityException::builder().build()));
    let role = |name: &str, id: &str| {
        Role::builder()
            .path("/")
            .role_name(name)
            .role_id(id)
            .arn(format!("arn:aws:iam::123456789012:role/team/{name}"))
            .create_date(aws_smithy_types::DateTime::from_secs(0))
            .build()
            .unwrap()
    };
    let page1 = mock!(Client::list_roles).match_requests(|r| r.marker().is_none()).then_output(move || {
        ListRolesOutput::builder()
            .roles(role("other", "AROAOTHER"))
            .is_truncated(true)
            .marker("p2")
            .build()
            .unwrap()
    });
    let page2 = mock!(Client::list_roles)
        .match_requests(|r| r.marker() == Some("p2"))
        .then_output(move || ListRolesOutput::builder().roles(role("dev", "AROADEV")).build().unwrap());
    let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&denied, &page1, &page2]);

    let arn =
        resolve_role_arn(&iam, "arn:aws:sts::123456789012:assumed-role/dev/s", "AROADEV:s").await.unwrap();

    assert_eq!(arn, "arn:aws:iam::123456789012:role/team/dev");
    assert_eq!(page2.num_calls(), 1, "the second page was never read");
}

#[tokio::test]
async fn simulation_reads_every_page_and_attributes_an_scp_deny() {
    let first =
        mock!(Client::simulate_principal_policy).match_requests(|r| r.marker().is_none()).then_output(|| {
            SimulatePrincipalPolicyOutput::builder()
                .evaluation_results(result("dynamodb:DescribeTable", PolicyEvaluationDecisionType::Allowed))
                .is_truncated(true)
                .marker("next")
                .build()
        });
    let second = mock!(Client::simulate_principal_policy)
        .match_requests(|r| r.marker() == Some("next"))
        .then_output(|| {
            let scp = EvaluationResult::builder()
                .eval_action_name("dynamodb:CreateTable")
                .eval_decision(PolicyEvaluationDecisionType::ExplicitDeny)
                .organizations_decision_detail(
                    OrganizationsDecisionDetail::builder().allowed_by_organizations(false).build(),
                )
                .resource_specific_results(
                    ResourceSpecificResult::builder()
                        .eval_resource_name("arn:aws:dynamodb:us-east-1:123456789012:table/record_user")
                        .eval_resource_decision(PolicyEvaluationDecisionType::ExplicitDeny)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap();
            SimulatePrincipalPolicyOutput::builder().evaluation_results(scp).build()
        });
    let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&first, &second]);
    let checks: Vec<Check> = checks(&[Task::CreateTables])
        .into_iter()
        .filter(|c| c.need.action.name().ends_with("Table"))
        .collect();

    let rows =
        simulate(&iam, xtask::check_iam::Principal::Deployer, "arn:aws:iam::123456789012:user/dev", &checks)
            .await
            .unwrap();

    assert_eq!(second.num_calls(), 1, "the truncated result's second page was not read");
    let describe: Vec<_> = rows.iter().filter(|r| r.action == "dynamodb:DescribeTable").collect();
    assert_eq!(describe.len(), 2, "an action-level result applies to each requested table");
    assert!(describe.iter().all(|r| r.decision == Decision::Allow));
    let create = rows.iter().find(|r| r.action == "dynamodb:CreateTable").unwrap();
    assert_eq!(create.resource, "arn:aws:dynamodb:us-east-1:123456789012:table/record_user");
    assert_eq!(create.decision, Decision::Deny { denial: Denial::ExplicitScp });
    assert!(create.fix.as_deref().unwrap().contains("SCP"));
}

#[tokio::test]
async fn a_missing_context_value_makes_pass_role_conditional() {
    let sim = mock!(Client::simulate_principal_policy)
        .match_requests(|r| {
            // PassRole is simulated with the iam:PassedToService context it will carry.
            r.action_names() == ["iam:PassRole"]
                && r.context_entries().iter().any(|c| c.context_key_name() == Some("iam:PassedToService"))
        })
        .then_output(|| {
            let pass = EvaluationResult::builder()
                .eval_action_name("iam:PassRole")
                .eval_resource_name("arn:aws:iam::123456789012:role/recording-server-dev-lambda")
                .eval_decision(PolicyEvaluationDecisionType::ImplicitDeny)
                .missing_context_values("aws:RequestTag/team")
                .build()
                .unwrap();
            SimulatePrincipalPolicyOutput::builder().evaluation_results(pass).build()
        });
    let iam = mock_client!(aws_sdk_iam, [&sim]);
    let checks: Vec<Check> =
        checks(&[Task::Deploy]).into_iter().filter(|c| c.need.action == iam::Action::IamPassRole).collect();

    let rows =
        simulate(&iam, xtask::check_iam::Principal::Deployer, "arn:aws:iam::123456789012:user/dev", &checks)
            .await
            .unwrap();

    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].decision,
        Decision::Conditional { missing_context: vec!["aws:RequestTag/team".into()] }
    );
}

// ---- drift of the deployed execution role ----

/// A stage deployed (before enforcement: under it moto answers S3 HEAD requests with 403), then
/// a developer whose permissions come from a group's managed policy (check-iam reads those when
/// a probe cannot decide), on the now enforcing moto; returns the moto, the developer's keys,
/// and an admin IAM client.
async fn deployed_and_a_developer_in_group(policy: &Value) -> (OwnMoto, Keys, Client) {
    let moto = OwnMoto::start();
    let binary = crate::deploy::bootstrap(0);
    crate::helpers::xtask(
        moto.endpoint(),
        &["deploy", "--stage", "dev", "--binary", binary.to_str().unwrap()],
    )
    .ok();
    let admin = moto.user_with_policy("test-admin", &allow(&["*"])).await;
    let iam = Client::new(&aws_as(moto.endpoint(), &admin).await.sdk);
    let arn = iam
        .create_policy()
        .policy_name("deployer")
        .policy_document(policy.to_string())
        .send()
        .await
        .unwrap()
        .policy
        .unwrap()
        .arn
        .unwrap();
    iam.create_group().group_name("developers").send().await.unwrap();
    iam.attach_group_policy().group_name("developers").policy_arn(arn).send().await.unwrap();
    iam.create_user().user_name("dev").send().await.unwrap();
    iam.add_user_to_group().group_name("developers").user_name("dev").send().await.unwrap();
    let key = iam.create_access_key().user_name("dev").send().await.unwrap().access_key.unwrap();
    moto.enforce_iam().await;
    (moto, Keys { id: key.access_key_id, secret: key.secret_access_key }, iam)
}

#[tokio::test]
async fn a_drifted_execution_role_reports_the_missing_action_with_its_route_and_every_over_grant() {
    let (moto, dev, iam) = deployed_and_a_developer_in_group(&deployer_policy()).await;

    // The function URL rows stay UNKNOWN here (moto's Lambda GET bug, see the top): the role
    // itself is complete and grants nothing more.
    let fresh = check_iam(&moto, &dev, &[]);
    assert_verdict(&fresh, "runtime-role", "UNDECIDED", &[]);
    assert_eq!(
        strings(&verdict(&fresh, "runtime-role")["unknown"]),
        ["lambda:InvokeFunctionUrl", "lambda:InvokeFunction"]
    );
    assert_eq!(fresh.json["over_granted"], json!([]), "{}", fresh.text.stdout());

    // Someone edits the role by hand: dynamodb:Query out, s3:DeleteBucket in.
    let role = "recording-server-dev-lambda";
    let name = "recording-server-runtime";
    let current = iam.get_role_policy().role_name(role).policy_name(name).send().await.unwrap();
    let deployed = current.policy_document().to_owned();
    let mut policy = without(xtask::policy::parse_document(&deployed).to_value(), "dynamodb:Query");
    let bucket = names().bucket_arn();
    policy["Statement"].as_array_mut().unwrap().push(json!({
        "Effect": "Allow", "Action": "s3:DeleteBucket", "Resource": bucket
    }));
    let put = iam.put_role_policy().role_name(role).policy_name(name);
    put.policy_document(policy.to_string()).send().await.unwrap();

    let drifted = check_iam(&moto, &dev, &[]);
    assert_eq!(drifted.code, 1, "{}", drifted.text.stdout());
    assert_verdict(&drifted, "runtime-role", "BLOCKED", &["dynamodb:Query"]);
    let over: Vec<&str> = strings(&verdict(&drifted, "runtime-role")["over_granted"]);
    assert_eq!(over, [format!("s3:DeleteBucket on {bucket}")], "{}", drifted.text.stdout());
    let out = drifted.text.stdout();
    assert!(out.contains("OVER-GRANTED (1 beyond the catalogue: s3:DeleteBucket"), "{out}");
    assert!(out.contains("breaks GET /record/list: rerun `cargo xtask deploy`"), "{out}");
    assert!(
        out.contains("over-granted to the execution role: s3:DeleteBucket on")
            && out.contains("(in its inline policy recording-server-runtime): rerun `cargo xtask deploy`"),
        "{out}"
    );

    // The deployed policy back (what a redeploy writes); a managed policy attached by hand is
    // another over-grant, which deploy does not manage: remove it.
    let put = iam.put_role_policy().role_name(role).policy_name(name);
    put.policy_document(xtask::policy::parse_document(&deployed).to_value().to_string())
        .send()
        .await
        .unwrap();
    let logs = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]});
    let extra = iam.create_policy().policy_name("extra-logs").policy_document(logs.to_string()).send().await;
    let extra = extra.unwrap().policy.unwrap().arn.unwrap();
    iam.attach_role_policy().role_name(role).policy_arn(&extra).send().await.unwrap();
    let attached = check_iam(&moto, &dev, &[]);
    assert_eq!(attached.code, 1, "{}", attached.text.stdout());
    assert_verdict(&attached, "runtime-role", "OVER-GRANTED", &[]);
    let out = attached.text.stdout();
    assert!(out.contains(&format!("logs:* on * (in its attached policy {extra}): remove it")), "{out}");
}

/// A function that never ran has no log group yet: nothing to explain (exit 0), said plainly,
/// not a failure that would read as "denials explained" (exit 1).
#[tokio::test]
async fn explain_since_on_a_function_that_never_ran_has_nothing_to_explain() {
    let moto = OwnMoto::start();
    let run =
        crate::helpers::xtask(moto.endpoint(), &["check-iam", "explain", "--stage", "dev", "--since", "1h"]);
    assert_eq!(run.code(), 0, "{}\n{}", run.stdout(), run.stderr());
    assert!(
        run.stderr().contains("log group /aws/lambda/recording-server-dev does not exist yet"),
        "{}",
        run.stderr()
    );
}

/// A developer without access yet can print the policy to hand to an admin: with `--account`
/// and `--region`, no credentials and an endpoint that refuses every connection, it prints and
/// makes no AWS call; without `--account` it says to pass it.
#[test]
fn print_policy_needs_no_credentials() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let run = |extra: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args([&["check-iam", "--print-policy", "runtime", "--stage", "demo"][..], extra].concat())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", "/nonexistent")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL", &closed)
            .output()
            .unwrap();
        Run(output)
    };
    let exact = run(&["--account", "123456789012", "--region", "eu-west-1"]).ok();
    assert!(
        exact.stdout().contains("arn:aws:dynamodb:eu-west-1:123456789012:table/demo-record_user"),
        "{}",
        exact.stdout()
    );
    let unknown = run(&["--region", "eu-west-1"]);
    assert_eq!(unknown.code(), 4, "{}", unknown.stderr());
    assert!(unknown.stderr().contains("pass --account"), "{}", unknown.stderr());
}

/// Against `cargo xtask local`'s emulator the caller is no IAM user, so check-iam cannot read its
/// own policies: that is said once, as a note, not appended to every undecided row.
#[test]
fn an_unreadable_own_policy_is_said_once() {
    let keys = Keys { id: "local".into(), secret: "local".into() };
    let run = run_as(&crate::helpers::shared_endpoint(), &keys, &["check-iam", "--stage", "unreadable"]);
    let out = run.stdout() + &run.stderr();
    assert_eq!(out.matches("NoSuchEntity").count(), 1, "{out}");
    assert!(out.contains("note: could not read your own policies"), "{out}");
}
