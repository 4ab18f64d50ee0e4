//! Side-effect-free probes, for when simulation is unavailable. A probe makes the call the task
//! would make, on the exact ARN, in a form that cannot change anything, and reads the answer:
//! - access denied → DENY (authorization failed);
//! - success, or an error AWS can only give after authorizing (the resource was looked up and is
//!   missing, exists already, or a precondition failed) → ALLOW;
//! - anything else (validation errors, errors AWS gives before authorizing, transport
//!   failures) → UNKNOWN with the reason. Validation errors never count: AWS does not document
//!   that it authorizes before it validates.
//!
//! Read probes always run. `--probe conditional` adds writes, each only where it cannot change
//! anything: on a resource that does not exist (checked first with a read), or in a form that
//! fails before it could change anything. The evidence for each is next to it.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, PointInTimeRecoverySpecification,
    ScalarAttributeType, Tag, TimeToLiveSpecification,
};

use super::classify::classify;
use super::{Check, Decision};
use crate::aws::{Aws, ErrorInfo, HttpResponse};
use crate::flags::ProbeMode;

/// The name probes use for things that must not exist (a policy, a statement, a group).
const PROBE_NAME: &str = "check-iam-probe";

/// Error codes each service returns only after authorizing the request: the resource was looked
/// up. DynamoDB, IAM, Lambda and CloudWatch Logs authorize on the resource ARN before they look
/// the resource up (a denied caller gets AccessDenied for a missing resource too).
const AFTER_AUTHORIZATION: &[&str] = &[
    // DynamoDB (moto also spells these `ResourceNotFound` and `TableNotFoundException`).
    "ResourceNotFoundException",
    "ResourceNotFound",
    "TableNotFoundException",
    "ResourceInUseException",
    "ConditionalCheckFailedException",
    // IAM.
    "NoSuchEntity",
    "EntityAlreadyExists",
    // Lambda: the function exists already (CreateFunction).
    "ResourceConflictException",
    // S3, on a bucket that exists: the configuration asked for is not set.
    "NoSuchPublicAccessBlockConfiguration",
    "ServerSideEncryptionConfigurationNotFoundError",
    "NoSuchBucketPolicy",
    "OwnershipControlsNotFoundError",
    "NoSuchLifecycleConfiguration",
];

/// What probes learnt about the stage's resources: `Some(false)` only when AWS said "not
/// found" to a read the caller may make.
#[derive(Debug, Default)]
pub struct Facts {
    tables: HashMap<String, Option<bool>>,
    role: Option<bool>,
    function: Option<bool>,
}

impl Facts {
    /// Look up the tables, the role and the function once.
    pub async fn gather(aws: &Aws, checks: &[Check]) -> Facts {
        let mut facts = Facts::default();
        let names = checks.first().map(|c| c.names.clone());
        let Some(names) = names else { return facts };
        for table in [names.user_table(), names.record_table()] {
            let exists = exists(aws.dynamodb().describe_table().table_name(&table).send().await);
            facts.tables.insert(table, exists);
        }
        let iam = aws_sdk_iam::Client::new(&aws.sdk);
        facts.role = exists(iam.get_role().role_name(&names.role).send().await);
        let lambda = aws_sdk_lambda::Client::new(&aws.sdk);
        facts.function = exists(lambda.get_function().function_name(&names.function).send().await);
        facts
    }
}

fn exists<O, E>(result: Result<O, SdkError<E, HttpResponse>>) -> Option<bool>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Some(true),
        Err(err) => {
            let info = ErrorInfo::of(&err);
            let missing = info.code.as_deref().is_some_and(|c| {
                matches!(c, "ResourceNotFoundException" | "ResourceNotFound" | "NoSuchEntity")
            });
            missing.then_some(false)
        }
    }
}

/// Turn a probe's answer into a decision.
fn outcome<O, E>(action: &str, result: Result<O, SdkError<E, HttpResponse>>) -> Decision
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let err = match result {
        Ok(_) => return Decision::Allow,
        Err(err) => err,
    };
    let info = ErrorInfo::of(&err);
    if info.is_access_denied() {
        let message = info.message.clone().unwrap_or_default();
        // A call can need several permissions (CreateFunction also needs iam:PassRole): a denial
        // of another action says nothing about this one.
        let denied = super::explain::parse(&message).into_iter().next().map(|d| d.action);
        if let Some(other) = denied.filter(|a| !a.eq_ignore_ascii_case(action)) {
            return Decision::Unknown {
                reason: format!("AWS denied {other} first, so this probe cannot tell"),
            };
        }
        return Decision::Deny { denial: classify(&message) };
    }
    match info.code.as_deref() {
        Some(code) if AFTER_AUTHORIZATION.contains(&code) => Decision::Allow,
        // S3 reports a missing bucket before it evaluates any policy (it needs the bucket's
        // owner to evaluate them): a missing bucket says nothing about permissions.
        Some("NoSuchBucket") => Decision::Unknown {
            reason: "the bucket does not exist yet, and S3 says so before it checks permissions".into(),
        },
        _ => Decision::Unknown { reason: format!("the probe failed: {}", info.short()) },
    }
}

fn unsafe_while_present(what: &str) -> Decision {
    Decision::Unknown { reason: format!("{what} exists, and every probe of this action could change it") }
}

fn unknown_presence(what: &str, read: &str) -> Decision {
    Decision::Unknown { reason: format!("probed only when {what} is absent, and {read} could not tell") }
}

fn needs_conditional() -> Decision {
    Decision::Unknown { reason: "a write: rerun with --probe conditional".into() }
}

fn no_probe(why: &str) -> Decision {
    Decision::Unknown { reason: format!("no side-effect-free probe: {why}") }
}

/// Whether `action` only reads.
fn is_read(action: &str) -> bool {
    let verb = action.split(':').nth(1).unwrap_or_default();
    ["Get", "List", "Describe", "Filter", "Simulate"].iter().any(|p| verb.starts_with(p))
}

/// Probe one action on one resource (GetCallerIdentity already succeeded before any probe).
pub async fn probe(aws: &Aws, facts: &Facts, check: &Check, arn: &str, mode: ProbeMode) -> Decision {
    let action = check.need.action;
    if !is_read(action) && mode == ProbeMode::Read {
        return needs_conditional();
    }
    let target = check.target_name(arn);
    let table = facts.tables.get(&target).copied().flatten();
    let table_exists = || table;
    let dynamodb = aws.dynamodb();
    let iam = aws_sdk_iam::Client::new(&aws.sdk);
    let lambda = aws_sdk_lambda::Client::new(&aws.sdk);
    let s3 = aws.s3();
    match action {
        "sts:GetCallerIdentity" => Decision::Allow,
        "dynamodb:DescribeTable" => outcome(action, dynamodb.describe_table().table_name(target).send().await),
        "dynamodb:ListTagsOfResource" => {
            outcome(action, dynamodb.list_tags_of_resource().resource_arn(arn).send().await)
        }
        "dynamodb:DescribeTimeToLive" => {
            outcome(action, dynamodb.describe_time_to_live().table_name(target).send().await)
        }
        "dynamodb:DescribeContinuousBackups" => {
            outcome(action, dynamodb.describe_continuous_backups().table_name(target).send().await)
        }
        "dynamodb:CreateTable" => {
            // An invalid request (an attribute definition no key uses) can create nothing. On a
            // table that exists DynamoDB answers ResourceInUseException, after authorizing; an
            // AccessDenied answer is a denial either way. A validation error proves nothing.
            let key = KeySchemaElement::builder().attribute_name("probe").key_type(KeyType::Hash).build();
            let definition = |name: &str| {
                AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
            };
            let request = dynamodb
                .create_table()
                .table_name(target)
                .key_schema(key.expect("name and type are set"))
                .attribute_definitions(definition("probe").expect("name and type are set"))
                .attribute_definitions(definition("unused").expect("name and type are set"))
                .billing_mode(BillingMode::PayPerRequest);
            match outcome(action, request.send().await) {
                Decision::Unknown { .. } if table_exists() != Some(true) => {
                    no_probe("the table does not exist, and only creating it would show this")
                }
                decision => decision,
            }
        }
        // The writes below run only on a table DynamoDB just said does not exist: the answer is
        // then ResourceNotFoundException, after authorization, and nothing can change.
        "dynamodb:UpdateTable"
        | "dynamodb:TagResource"
        | "dynamodb:UpdateTimeToLive"
        | "dynamodb:UpdateContinuousBackups"
        | "dynamodb:DeleteTable" => match table_exists() {
            Some(true) => unsafe_while_present("the table"),
            None => unknown_presence("the table", "dynamodb:DescribeTable"),
            Some(false) => match action {
                "dynamodb:UpdateTable" => outcome(
                    action,
                    dynamodb.update_table().table_name(target).billing_mode(BillingMode::PayPerRequest).send().await,
                ),
                "dynamodb:TagResource" => {
                    let tag = Tag::builder().key(PROBE_NAME).value("1").build().expect("key and value are set");
                    outcome(action, dynamodb.tag_resource().resource_arn(arn).tags(tag).send().await)
                }
                "dynamodb:UpdateTimeToLive" => {
                    let spec = TimeToLiveSpecification::builder().attribute_name("expires_at").enabled(true).build();
                    let request = dynamodb.update_time_to_live().table_name(target);
                    outcome(action, request.time_to_live_specification(spec.expect("set")).send().await)
                }
                "dynamodb:UpdateContinuousBackups" => {
                    let spec =
                        PointInTimeRecoverySpecification::builder().point_in_time_recovery_enabled(true).build();
                    let request = dynamodb.update_continuous_backups().table_name(target);
                    outcome(action, request.point_in_time_recovery_specification(spec.expect("set")).send().await)
                }
                _ => outcome(action, dynamodb.delete_table().table_name(target).send().await),
            },
        },
        "s3:ListBucket" => outcome(action, s3.list_objects_v2().bucket(target).max_keys(1).send().await),
        "s3:GetBucketPublicAccessBlock" => outcome(action, s3.get_public_access_block().bucket(target).send().await),
        "s3:GetEncryptionConfiguration" => outcome(action, s3.get_bucket_encryption().bucket(target).send().await),
        "s3:GetBucketPolicy" => outcome(action, s3.get_bucket_policy().bucket(target).send().await),
        "s3:GetBucketOwnershipControls" => {
            outcome(action, s3.get_bucket_ownership_controls().bucket(target).send().await)
        }
        "s3:GetBucketCORS" => outcome(action, s3.get_bucket_cors().bucket(target).send().await),
        "s3:GetLifecycleConfiguration" => {
            outcome(action, s3.get_bucket_lifecycle_configuration().bucket(target).send().await)
        }
        // S3 answers a missing bucket before it checks permissions, so writes on a missing
        // bucket prove nothing; on an existing one each could change it (CreateBucket in
        // us-east-1 answers 200 for a bucket you own; DeleteObject writes a delete marker on a
        // versioned bucket).
        "s3:CreateBucket"
        | "s3:PutBucketPublicAccessBlock"
        | "s3:PutEncryptionConfiguration"
        | "s3:PutBucketPolicy"
        | "s3:PutBucketOwnershipControls"
        | "s3:PutLifecycleConfiguration"
        | "s3:PutBucketCORS"
        | "s3:DeleteBucket"
        | "s3:DeleteObject" => {
            no_probe("S3 reports a missing bucket before it checks permissions, and on an existing one it could change it")
        }
        "iam:GetRole" => outcome(action, iam.get_role().role_name(target).send().await),
        "iam:ListRolePolicies" => outcome(action, iam.list_role_policies().role_name(target).send().await),
        "iam:GetRolePolicy" => {
            outcome(action, iam.get_role_policy().role_name(target).policy_name(PROBE_NAME).send().await)
        }
        "iam:ListAttachedRolePolicies" => {
            outcome(action, iam.list_attached_role_policies().role_name(target).send().await)
        }
        "iam:ListRoles" => outcome(action, iam.list_roles().max_items(1).send().await),
        // Deleting a policy that no role holds: NoSuchEntity after authorization, always safe.
        "iam:DeleteRolePolicy" => {
            outcome(action, iam.delete_role_policy().role_name(target).policy_name(PROBE_NAME).send().await)
        }
        // On a role that exists, CreateRole answers EntityAlreadyExists after authorizing and
        // cannot create anything (the trust policy sent would let no one assume it anyway).
        "iam:CreateRole" => match facts.role {
            Some(true) => {
                let nobody = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;
                outcome(action, iam.create_role().role_name(target).assume_role_policy_document(nobody).send().await)
            }
            _ => no_probe("the role does not exist, and only creating it would show this"),
        },
        // These run only on a role IAM just said does not exist: NoSuchEntity, nothing changes.
        "iam:TagRole" | "iam:UpdateAssumeRolePolicy" | "iam:PutRolePolicy" | "iam:DeleteRole" => match facts.role {
            Some(true) => unsafe_while_present("the role"),
            None => unknown_presence("the role", "iam:GetRole"),
            Some(false) => {
                let empty = r#"{"Version":"2012-10-17","Statement":[]}"#;
                match action {
                    "iam:TagRole" => {
                        let tag = aws_sdk_iam::types::Tag::builder().key(PROBE_NAME).value("1").build();
                        outcome(action, iam.tag_role().role_name(target).tags(tag.expect("set")).send().await)
                    }
                    "iam:UpdateAssumeRolePolicy" => outcome(
                        action,
                        iam.update_assume_role_policy().role_name(target).policy_document(empty).send().await,
                    ),
                    "iam:PutRolePolicy" => outcome(
                        action,
                        iam.put_role_policy()
                            .role_name(target)
                            .policy_name(PROBE_NAME)
                            .policy_document(empty)
                            .send()
                            .await,
                    ),
                    _ => outcome(action, iam.delete_role().role_name(target).send().await),
                }
            }
        },
        "iam:PassRole" => no_probe("IAM checks it only inside the call that passes the role"),
        "iam:SimulatePrincipalPolicy" => no_probe("the simulation call itself decides it (see the notes)"),
        "iam:GetUser" | "iam:ListUserPolicies" | "iam:GetUserPolicy" | "iam:ListAttachedUserPolicies"
        | "iam:ListGroupsForUser" => {
            let Some(user) = check.names.caller_user.clone() else {
                return no_probe("you are not an IAM user; these permissions matter to IAM users only");
            };
            match action {
                "iam:GetUser" => outcome(action, iam.get_user().user_name(user).send().await),
                "iam:ListUserPolicies" => outcome(action, iam.list_user_policies().user_name(user).send().await),
                "iam:GetUserPolicy" => {
                    outcome(action, iam.get_user_policy().user_name(user).policy_name(PROBE_NAME).send().await)
                }
                "iam:ListAttachedUserPolicies" => {
                    outcome(action, iam.list_attached_user_policies().user_name(user).send().await)
                }
                _ => outcome(action, iam.list_groups_for_user().user_name(user).send().await),
            }
        }
        // A group that does not exist, under the catalogue's `group/*`: NoSuchEntity.
        "iam:ListGroupPolicies" => outcome(action, iam.list_group_policies().group_name(PROBE_NAME).send().await),
        "iam:GetGroupPolicy" => outcome(
            action,
            iam.get_group_policy().group_name(PROBE_NAME).policy_name(PROBE_NAME).send().await,
        ),
        "iam:ListAttachedGroupPolicies" => {
            outcome(action, iam.list_attached_group_policies().group_name(PROBE_NAME).send().await)
        }
        "iam:GetPolicy" | "iam:GetPolicyVersion" => {
            let policy = format!("arn:aws:iam::{}:policy/{PROBE_NAME}", check.names.account);
            if action == "iam:GetPolicy" {
                outcome(action, iam.get_policy().policy_arn(policy).send().await)
            } else {
                outcome(action, iam.get_policy_version().policy_arn(policy).version_id("v1").send().await)
            }
        }
        "lambda:GetFunction" => outcome(action, lambda.get_function().function_name(target).send().await),
        "lambda:GetFunctionConfiguration" => {
            outcome(action, lambda.get_function_configuration().function_name(target).send().await)
        }
        "lambda:GetPolicy" => outcome(action, lambda.get_policy().function_name(target).send().await),
        "lambda:GetFunctionConcurrency" => {
            outcome(action, lambda.get_function_concurrency().function_name(target).send().await)
        }
        "lambda:GetFunctionUrlConfig" => {
            outcome(action, lambda.get_function_url_config().function_name(target).send().await)
        }
        "lambda:CreateFunction" => create_function_probe(aws, check, &target).await,
        // These run only on a function Lambda just said does not exist: ResourceNotFoundException
        // after authorization, nothing changes.
        "lambda:TagResource"
        | "lambda:UpdateFunctionCode"
        | "lambda:UpdateFunctionConfiguration"
        | "lambda:CreateFunctionUrlConfig"
        | "lambda:UpdateFunctionUrlConfig"
        | "lambda:AddPermission"
        | "lambda:DeleteFunctionUrlConfig"
        | "lambda:PutFunctionConcurrency"
        | "lambda:DeleteFunctionConcurrency"
        | "lambda:DeleteFunction" => match facts.function {
            Some(true) => unsafe_while_present("the function"),
            None => unknown_presence("the function", "lambda:GetFunction"),
            Some(false) => lambda_write_probe(&lambda, action, &target, arn).await,
        },
        "logs:DescribeLogGroups" => {
            let logs = aws_sdk_cloudwatchlogs::Client::new(&aws.sdk);
            outcome(action, logs.describe_log_groups().log_group_name_prefix(check.names.log_group()).limit(1).send().await)
        }
        // Writes on the group: creating one makes it exist, and a retention or a delete changes
        // what is kept; none can be tried without that effect.
        "logs:CreateLogGroup" | "logs:PutRetentionPolicy" | "logs:DeleteLogGroup" => {
            no_probe("on a log group each of these changes something, and where it is missing CloudWatch Logs answers before it checks permissions")
        }
        "logs:FilterLogEvents" => {
            let group = check.names.log_group();
            let logs = aws_sdk_cloudwatchlogs::Client::new(&aws.sdk);
            outcome(action, logs.filter_log_events().log_group_name(group).limit(1).send().await)
        }
        _ => no_probe("check-iam has no probe for this action"),
    }
}

async fn lambda_write_probe(
    lambda: &aws_sdk_lambda::Client,
    action: &str,
    target: &str,
    arn: &str,
) -> Decision {
    use aws_sdk_lambda::types::FunctionUrlAuthType;
    match action {
        "lambda:TagResource" => {
            outcome(action, lambda.tag_resource().resource(arn).tags(PROBE_NAME, "1").send().await)
        }
        "lambda:UpdateFunctionCode" => outcome(
            action,
            lambda
                .update_function_code()
                .function_name(target)
                .zip_file(b"probe".to_vec().into())
                .send()
                .await,
        ),
        "lambda:UpdateFunctionConfiguration" => outcome(
            action,
            lambda.update_function_configuration().function_name(target).timeout(3).send().await,
        ),
        "lambda:CreateFunctionUrlConfig" => outcome(
            action,
            lambda
                .create_function_url_config()
                .function_name(target)
                .auth_type(FunctionUrlAuthType::AwsIam)
                .send()
                .await,
        ),
        "lambda:UpdateFunctionUrlConfig" => outcome(
            action,
            lambda
                .update_function_url_config()
                .function_name(target)
                .auth_type(FunctionUrlAuthType::AwsIam)
                .send()
                .await,
        ),
        "lambda:AddPermission" => outcome(
            action,
            lambda
                .add_permission()
                .function_name(target)
                .statement_id(PROBE_NAME)
                .action("lambda:GetFunction")
                .principal("lambda.amazonaws.com")
                .send()
                .await,
        ),
        "lambda:DeleteFunctionUrlConfig" => {
            outcome(action, lambda.delete_function_url_config().function_name(target).send().await)
        }
        "lambda:PutFunctionConcurrency" => outcome(
            action,
            lambda
                .put_function_concurrency()
                .function_name(target)
                .reserved_concurrent_executions(1)
                .send()
                .await,
        ),
        "lambda:DeleteFunctionConcurrency" => {
            outcome(action, lambda.delete_function_concurrency().function_name(target).send().await)
        }
        _ => outcome(action, lambda.delete_function().function_name(target).send().await),
    }
}

/// CreateFunction whose code is an object in a bucket that does not exist: Lambda fetches the
/// code only for a request it authorized, so "GetObject … NoSuchBucket" means allowed, and the
/// failed fetch means nothing is created. A function that exists already gives
/// ResourceConflictException, also after authorization.
async fn create_function_probe(aws: &Aws, check: &Check, target: &str) -> Decision {
    use aws_sdk_lambda::types::{FunctionCode, Runtime};
    let action = "lambda:CreateFunction";
    let bucket = format!("{PROBE_NAME}-{}", uuid::Uuid::new_v4().simple());
    let code = FunctionCode::builder().s3_bucket(bucket).s3_key(PROBE_NAME).build();
    let result = aws_sdk_lambda::Client::new(&aws.sdk)
        .create_function()
        .function_name(target)
        .role(check.names.role_arn())
        .runtime(Runtime::Providedal2023)
        .handler("bootstrap")
        .code(code)
        .send()
        .await;
    let Err(err) = &result else {
        return Decision::Unknown { reason: "the probe unexpectedly created the function: delete it".into() };
    };
    let info = ErrorInfo::of(err);
    let fetched = info.code.as_deref() == Some("InvalidParameterValueException")
        && info.message.as_deref().is_some_and(|m| m.contains("GetObject") || m.contains("S3 Error"));
    if fetched {
        return Decision::Allow;
    }
    outcome(action, result)
}
