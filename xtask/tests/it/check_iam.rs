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

use crate::helpers::{unique_prefix, xtask_as, OwnMoto};

fn rows_for<'a>(report: &'a Value, action: &str) -> Vec<&'a Value> {
    report["rows"].as_array().unwrap().iter().filter(|r| r["action"] == action).collect()
}

#[tokio::test]
async fn a_user_allowed_only_describe_table_is_denied_create_table_by_probe() {
    let moto = OwnMoto::start();
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["dynamodb:DescribeTable", "sts:GetCallerIdentity"], "Resource": "*"}
    ]});
    let keys = moto.user_with_policy("describe-only", &policy).await;
    moto.enforce_iam().await;
    let prefix = unique_prefix();

    let args = ["check-iam", "--task", "create-tables", "--probe", "conditional", "--skip-role", "--json"];
    let run = xtask_as(moto.endpoint(), &keys, &[&args[..], &["--table-prefix", &prefix]].concat());

    assert_eq!(run.code(), 1, "{}\n{}", run.stdout(), run.stderr());
    let report = run.json();
    assert_eq!(report["identity"]["arn"], "arn:aws:iam::123456789012:user/describe-only");
    assert_eq!(report["identity"]["principal_type"], "user");
    let create = rows_for(&report, "dynamodb:CreateTable");
    assert_eq!(create.len(), 2, "one row per table");
    for row in create {
        assert_eq!(row["decision"], "DENY");
        assert_eq!(row["denial"], "implicit");
        assert_eq!(row["method"], "probe");
        assert!(row["fix"].as_str().unwrap().contains("--print-policy deployer"));
    }
    assert!(rows_for(&report, "dynamodb:DescribeTable").iter().all(|r| r["decision"] == "ALLOW"));
    assert!(rows_for(&report, "iam:SimulatePrincipalPolicy").is_empty(), "not asked for");
}

#[tokio::test]
async fn a_user_holding_the_rendered_deployer_policy_passes() {
    let moto = OwnMoto::start();
    let prefix = unique_prefix();
    // moto matches DynamoDB policies against Resource "*" only, so the test uses the rendered
    // policy's any-resource variant; check-iam itself also needs sts:GetCallerIdentity.
    let names = Names::new("dev", "123456789012", "us-east-1", &prefix, None);
    let mut policy = render_policy(&deployer_needs(&[Task::CreateTables]), &names, true);
    policy["Statement"].as_array_mut().unwrap().push(json!({
        "Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"
    }));
    let keys = moto.user_with_policy("deployer", &policy).await;
    moto.enforce_iam().await;

    let args =
        ["check-iam", "--task", "create-tables", "--probe", "conditional", "--skip-role", "--table-prefix"];
    let run = xtask_as(moto.endpoint(), &keys, &[&args[..], &[prefix.as_str()]].concat());

    assert_eq!(run.code(), 0, "{}\n{}", run.stdout(), run.stderr());
    assert!(run.stdout().contains("16 allowed, 0 denied, 0 inconclusive"), "{}", run.stdout());
    // The probes changed nothing: no table was created.
    let after = xtask_as(moto.endpoint(), &keys, &["create-tables", "--table-prefix", &prefix, "--dry-run"]);
    assert!(after.stdout().contains("would create"), "{}", after.stdout());
}

#[tokio::test]
async fn read_only_probes_leave_writes_unknown_and_exit_2() {
    let moto = OwnMoto::start();
    let names = Names::new("dev", "123456789012", "us-east-1", "", None);
    let mut policy = render_policy(&deployer_needs(&[Task::CreateTables]), &names, true);
    policy["Statement"].as_array_mut().unwrap().push(json!({
        "Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"
    }));
    let keys = moto.user_with_policy("reader", &policy).await;
    moto.enforce_iam().await;

    let run = xtask_as(moto.endpoint(), &keys, &["check-iam", "--task", "create-tables", "--skip-role"]);
    assert_eq!(run.code(), 2, "{}\n{}", run.stdout(), run.stderr());
    assert!(run.stdout().contains("rerun with --probe conditional"), "{}", run.stdout());

    let strict = xtask_as(
        moto.endpoint(),
        &keys,
        &["check-iam", "--task", "create-tables", "--skip-role", "--strict"],
    );
    assert_eq!(strict.code(), 1);
}

#[tokio::test]
async fn unknown_credentials_exit_3_with_the_fix() {
    let moto = OwnMoto::start();
    moto.enforce_iam().await;
    let keys = crate::helpers::Keys { id: "AKIANOTAREALKEY00000".into(), secret: "nope".into() };

    let run = xtask_as(moto.endpoint(), &keys, &["check-iam"]);

    assert_eq!(run.code(), 3, "{}\n{}", run.stdout(), run.stderr());
    assert!(run.stderr().contains("sts:GetCallerIdentity failed"), "{}", run.stderr());
}

#[tokio::test]
async fn print_policy_renders_concrete_arns_from_the_account() {
    let moto = OwnMoto::start();
    let keys = crate::helpers::Keys { id: "local".into(), secret: "local".into() };
    let run =
        xtask_as(moto.endpoint(), &keys, &["check-iam", "--print-policy", "runtime", "--stage", "prod"]).ok();
    let policy: Value = run.json();
    let text = policy.to_string();
    assert!(text.contains("arn:aws:dynamodb:us-east-1:123456789012:table/record_user"), "{text}");
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
    let checks: Vec<Check> =
        checks(&[Task::CreateTables]).into_iter().filter(|c| c.need.action.ends_with("Table")).collect();

    let rows = simulate(&iam, "deployer", "arn:aws:iam::123456789012:user/dev", &checks).await.unwrap();

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
        checks(&[Task::Deploy]).into_iter().filter(|c| c.need.action == "iam:PassRole").collect();

    let rows = simulate(&iam, "deployer", "arn:aws:iam::123456789012:user/dev", &checks).await.unwrap();

    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].decision,
        Decision::Conditional { missing_context: vec!["aws:RequestTag/team".into()] }
    );
}
