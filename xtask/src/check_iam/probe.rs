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

use std::future::Future;

use iam::Action;

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
            let missing = info.reply.code.as_deref().is_some_and(|c| {
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
        let message = info.reply.message.clone().unwrap_or_default();
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
    match info.reply.code.as_deref() {
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

/// The IAM user running check-iam, or why the user's own actions cannot be probed.
fn caller(check: &Check) -> Result<String, Decision> {
    check
        .names
        .caller_user
        .clone()
        .ok_or_else(|| no_probe("you are not an IAM user; these permissions matter to IAM users only"))
}

/// Run `probe` only on a resource a read just showed absent: writes there are answered "not
/// found" after authorization and change nothing.
async fn if_absent(
    present: Option<bool>,
    what: &str,
    read: Action,
    probe: impl Future<Output = Decision>,
) -> Decision {
    match present {
        Some(true) => unsafe_while_present(what),
        None => unknown_presence(what, read.name()),
        Some(false) => probe.await,
    }
}

/// Probe one action on one resource (GetCallerIdentity already succeeded before any probe).
///
/// An exhaustive match: a new [`Action`] does not compile until it has an arm here. No arm
/// sends a delete, whatever it finds (the conditional-probe test checks the recorder).
pub async fn probe(aws: &Aws, facts: &Facts, check: &Check, arn: &str, mode: ProbeMode) -> Decision {
    use aws_sdk_lambda::types::FunctionUrlAuthType;
    use Action as A;

    let action = check.need.action;
    if action.writes() && mode == ProbeMode::Read {
        return needs_conditional();
    }
    let target = check.target_name(arn);
    // A need on the function's versions and aliases is probed on the alias the tasks use:
    // Lambda authorizes a qualified call on the qualified ARN (`function:name:live`), which a
    // policy may allow or deny apart from the function's own.
    let qualifier = (check.need.resource == crate::catalogue::Resource::FunctionVersions)
        .then(|| crate::deploy::release::LIVE.to_owned());
    let table = facts.tables.get(&target).copied().flatten();
    let dynamodb = aws.dynamodb();
    let iam = aws_sdk_iam::Client::new(&aws.sdk);
    let lambda = aws_sdk_lambda::Client::new(&aws.sdk);
    let s3 = aws.s3();
    let logs = aws_sdk_cloudwatchlogs::Client::new(&aws.sdk);
    let empty = r#"{"Version":"2012-10-17","Statement":[]}"#;
    let a = action.name();
    match action {
        A::StsGetCallerIdentity => Decision::Allow,
        A::DynamoDbDescribeTable => outcome(a, dynamodb.describe_table().table_name(target).send().await),
        A::DynamoDbScan => outcome(a, dynamodb.scan().table_name(target).limit(1).send().await),
        A::DynamoDbListTagsOfResource => outcome(a, dynamodb.list_tags_of_resource().resource_arn(arn).send().await),
        A::DynamoDbDescribeTimeToLive => outcome(a, dynamodb.describe_time_to_live().table_name(target).send().await),
        A::DynamoDbDescribeContinuousBackups => {
            outcome(a, dynamodb.describe_continuous_backups().table_name(target).send().await)
        }
        A::DynamoDbCreateTable => {
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
            match outcome(a, request.send().await) {
                Decision::Unknown { .. } if table != Some(true) => {
                    no_probe("the table does not exist, and only creating it would show this")
                }
                decision => decision,
            }
        }
        // The writes below run only on a table DynamoDB just said does not exist: the answer is
        // then ResourceNotFoundException, after authorization, and nothing can change.
        A::DynamoDbUpdateTable => {
            let request = dynamodb.update_table().table_name(target).billing_mode(BillingMode::PayPerRequest);
            if_absent(table, "the table", A::DynamoDbDescribeTable, async { outcome(a, request.send().await) }).await
        }
        A::DynamoDbTagResource => {
            let tag = Tag::builder().key(PROBE_NAME).value("1").build().expect("key and value are set");
            let request = dynamodb.tag_resource().resource_arn(arn).tags(tag);
            if_absent(table, "the table", A::DynamoDbDescribeTable, async { outcome(a, request.send().await) }).await
        }
        A::DynamoDbUpdateTimeToLive => {
            let spec = TimeToLiveSpecification::builder().attribute_name("expires_at").enabled(true).build();
            let request = dynamodb.update_time_to_live().table_name(target).time_to_live_specification(spec.expect("set"));
            if_absent(table, "the table", A::DynamoDbDescribeTable, async { outcome(a, request.send().await) }).await
        }
        A::DynamoDbUpdateContinuousBackups => {
            let spec = PointInTimeRecoverySpecification::builder().point_in_time_recovery_enabled(true).build();
            let request =
                dynamodb.update_continuous_backups().table_name(target).point_in_time_recovery_specification(spec.expect("set"));
            if_absent(table, "the table", A::DynamoDbDescribeTable, async { outcome(a, request.send().await) }).await
        }
        A::DynamoDbDeleteTable
        | A::S3DeleteBucket
        | A::S3DeleteObject
        | A::IamDeleteRolePolicy
        | A::IamDeleteRole
        | A::LambdaDeleteFunctionUrlConfig
        | A::LambdaDeleteFunctionConcurrency
        | A::LambdaDeleteFunction
        | A::LambdaRemovePermission
        | A::LogsDeleteLogGroup => no_probe("a delete: check-iam never sends one, even where nothing would be deleted"),
        // The service's own calls: check-iam reads the execution role's policies for them.
        A::DynamoDbGetItem
        | A::DynamoDbPutItem
        | A::DynamoDbUpdateItem
        | A::DynamoDbDeleteItem
        | A::DynamoDbQuery
        | A::S3GetObject
        | A::S3PutObject
        | A::LogsCreateLogStream
        | A::LogsPutLogEvents => no_probe("the service's action: its role's policies decide it, not yours"),
        A::S3ListBucket => outcome(a, s3.list_objects_v2().bucket(target).max_keys(1).send().await),
        A::S3GetBucketPublicAccessBlock => outcome(a, s3.get_public_access_block().bucket(target).send().await),
        A::S3GetEncryptionConfiguration => outcome(a, s3.get_bucket_encryption().bucket(target).send().await),
        A::S3GetBucketPolicy => outcome(a, s3.get_bucket_policy().bucket(target).send().await),
        A::S3GetBucketOwnershipControls => outcome(a, s3.get_bucket_ownership_controls().bucket(target).send().await),
        A::S3GetBucketCors => outcome(a, s3.get_bucket_cors().bucket(target).send().await),
        A::S3GetLifecycleConfiguration => {
            outcome(a, s3.get_bucket_lifecycle_configuration().bucket(target).send().await)
        }
        // S3 answers a missing bucket before it checks permissions, so writes on a missing
        // bucket prove nothing; on an existing one each could change it (CreateBucket in
        // us-east-1 answers 200 for a bucket you own).
        A::S3CreateBucket
        | A::S3PutBucketPublicAccessBlock
        | A::S3PutEncryptionConfiguration
        | A::S3PutBucketPolicy
        | A::S3PutBucketOwnershipControls
        | A::S3PutLifecycleConfiguration
        | A::S3PutBucketCors => {
            no_probe("S3 reports a missing bucket before it checks permissions, and on an existing one it could change it")
        }
        A::IamGetRole => outcome(a, iam.get_role().role_name(target).send().await),
        A::IamListRolePolicies => outcome(a, iam.list_role_policies().role_name(target).send().await),
        A::IamGetRolePolicy => outcome(a, iam.get_role_policy().role_name(target).policy_name(PROBE_NAME).send().await),
        A::IamListAttachedRolePolicies => outcome(a, iam.list_attached_role_policies().role_name(target).send().await),
        A::IamListRoles => outcome(a, iam.list_roles().max_items(1).send().await),
        // On a role that exists, CreateRole answers EntityAlreadyExists after authorizing and
        // cannot create anything (the trust policy sent would let no one assume it anyway).
        A::IamCreateRole => match facts.role {
            Some(true) => {
                let nobody = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;
                outcome(a, iam.create_role().role_name(target).assume_role_policy_document(nobody).send().await)
            }
            _ => no_probe("the role does not exist, and only creating it would show this"),
        },
        // These run only on a role IAM just said does not exist: NoSuchEntity, nothing changes.
        A::IamTagRole => {
            let tag = aws_sdk_iam::types::Tag::builder().key(PROBE_NAME).value("1").build();
            let request = iam.tag_role().role_name(target).tags(tag.expect("set"));
            if_absent(facts.role, "the role", A::IamGetRole, async { outcome(a, request.send().await) }).await
        }
        A::IamUpdateAssumeRolePolicy => {
            let request = iam.update_assume_role_policy().role_name(target).policy_document(empty);
            if_absent(facts.role, "the role", A::IamGetRole, async { outcome(a, request.send().await) }).await
        }
        A::IamPutRolePolicy => {
            let request = iam.put_role_policy().role_name(target).policy_name(PROBE_NAME).policy_document(empty);
            if_absent(facts.role, "the role", A::IamGetRole, async { outcome(a, request.send().await) }).await
        }
        A::IamPassRole => no_probe("IAM checks it only inside the call that passes the role"),
        A::IamSimulatePrincipalPolicy => no_probe("the simulation call itself decides it (see the notes)"),
        A::IamGetUser => match caller(check) {
            Ok(user) => outcome(a, iam.get_user().user_name(user).send().await),
            Err(decision) => decision,
        },
        A::IamListUserPolicies => match caller(check) {
            Ok(user) => outcome(a, iam.list_user_policies().user_name(user).send().await),
            Err(decision) => decision,
        },
        A::IamGetUserPolicy => match caller(check) {
            Ok(user) => outcome(a, iam.get_user_policy().user_name(user).policy_name(PROBE_NAME).send().await),
            Err(decision) => decision,
        },
        A::IamListAttachedUserPolicies => match caller(check) {
            Ok(user) => outcome(a, iam.list_attached_user_policies().user_name(user).send().await),
            Err(decision) => decision,
        },
        A::IamListGroupsForUser => match caller(check) {
            Ok(user) => outcome(a, iam.list_groups_for_user().user_name(user).send().await),
            Err(decision) => decision,
        },
        // A group that does not exist, under the catalogue's `group/*`: NoSuchEntity.
        A::IamListGroupPolicies => outcome(a, iam.list_group_policies().group_name(PROBE_NAME).send().await),
        A::IamGetGroupPolicy => {
            outcome(a, iam.get_group_policy().group_name(PROBE_NAME).policy_name(PROBE_NAME).send().await)
        }
        A::IamListAttachedGroupPolicies => {
            outcome(a, iam.list_attached_group_policies().group_name(PROBE_NAME).send().await)
        }
        A::IamGetPolicy => outcome(a, iam.get_policy().policy_arn(check.names.arns().policy(PROBE_NAME)).send().await),
        A::IamGetPolicyVersion => {
            let policy = check.names.arns().policy(PROBE_NAME);
            outcome(a, iam.get_policy_version().policy_arn(policy).version_id("v1").send().await)
        }
        A::LambdaGetFunction => outcome(a, lambda.get_function().function_name(target).send().await),
        A::LambdaGetFunctionConfiguration => {
            let request = lambda.get_function_configuration().function_name(target).set_qualifier(qualifier);
            outcome(a, request.send().await)
        }
        A::LambdaGetPolicy => {
            outcome(a, lambda.get_policy().function_name(target).set_qualifier(qualifier).send().await)
        }
        A::LambdaGetFunctionConcurrency => {
            outcome(a, lambda.get_function_concurrency().function_name(target).send().await)
        }
        A::LambdaGetFunctionUrlConfig => {
            let request = lambda.get_function_url_config().function_name(target).set_qualifier(qualifier);
            outcome(a, request.send().await)
        }
        A::LambdaListVersionsByFunction => {
            outcome(a, lambda.list_versions_by_function().function_name(target).max_items(1).send().await)
        }
        A::LambdaListAliases => outcome(a, lambda.list_aliases().function_name(target).max_items(1).send().await),
        A::LambdaGetAlias => outcome(a, lambda.get_alias().function_name(&target).name(PROBE_NAME).send().await),
        A::LambdaPublishVersion => {
            let request = lambda.publish_version().function_name(&target);
            if_absent(facts.function, "the function", A::LambdaGetFunction, async { outcome(a, request.send().await) })
                .await
        }
        A::LambdaCreateAlias => {
            let request = lambda.create_alias().function_name(&target).name(PROBE_NAME).function_version("1");
            if_absent(facts.function, "the function", A::LambdaGetFunction, async { outcome(a, request.send().await) })
                .await
        }
        A::LambdaUpdateAlias => {
            let request = lambda.update_alias().function_name(&target).name(PROBE_NAME).function_version("1");
            if_absent(facts.function, "the function", A::LambdaGetFunction, async { outcome(a, request.send().await) })
                .await
        }
        // Invoking a function that exists runs its code: only tried where there is none.
        A::LambdaInvokeFunction => {
            let request = lambda.invoke().function_name(&target).qualifier("1");
            if_absent(facts.function, "the function", A::LambdaGetFunction, async { outcome(a, request.send().await) })
                .await
        }
        A::LambdaCreateFunction => create_function_probe(aws, check, &target).await,
        // These run only on a function Lambda just said does not exist: ResourceNotFoundException
        // after authorization, nothing changes.
        A::LambdaTagResource => {
            let request = lambda.tag_resource().resource(arn).tags(PROBE_NAME, "1");
            if_absent(facts.function, "the function", A::LambdaGetFunction, async { outcome(a, request.send().await) })
                .await
        }
        A::LambdaUpdateFunctionCode => {
            let request = lambda.update_function_code().function_name(&target).zip_file(b"probe".to_vec().into());
            if_absent(facts.function, "the function", A::LambdaGetFunction, async { outcome(a, request.send().await) })
                .await
        }
        A::LambdaUpdateFunctionConfiguration => {
            let request = lambda.update_function_configuration().function_name(&target).timeout(3);
            if_absent(facts.function, "the function", A::LambdaGetFunction, async { outcome(a, request.send().await) })
                .await
        }
        A::LambdaCreateFunctionUrlConfig => {
            let request = lambda
                .create_function_url_config()
                .function_name(&target)
                .set_qualifier(qualifier)
                .auth_type(FunctionUrlAuthType::AwsIam);
            if_absent(facts.function, "the function", A::LambdaGetFunction, async { outcome(a, request.send().await) })
                .await
        }
        A::LambdaUpdateFunctionUrlConfig => {
            let request = lambda
                .update_function_url_config()
                .function_name(&target)
                .set_qualifier(qualifier)
                .auth_type(FunctionUrlAuthType::AwsIam);
            if_absent(facts.function, "the function", A::LambdaGetFunction, async { outcome(a, request.send().await) })
                .await
        }
        A::LambdaAddPermission => {
            let request = lambda
                .add_permission()
                .function_name(&target)
                .set_qualifier(qualifier)
                .statement_id(PROBE_NAME)
                .action("lambda:GetFunction")
                .principal("lambda.amazonaws.com");
            if_absent(facts.function, "the function", A::LambdaGetFunction, async { outcome(a, request.send().await) })
                .await
        }
        A::LambdaPutFunctionConcurrency => {
            let request =
                lambda.put_function_concurrency().function_name(&target).reserved_concurrent_executions(1);
            if_absent(facts.function, "the function", A::LambdaGetFunction, async { outcome(a, request.send().await) })
                .await
        }
        A::LogsDescribeLogGroups => outcome(
            a,
            logs.describe_log_groups().log_group_name_prefix(check.names.log_group()).limit(1).send().await,
        ),
        // Writes on the group: creating one makes it exist, and a retention changes what is
        // kept; neither can be tried without that effect.
        A::LogsCreateLogGroup | A::LogsPutRetentionPolicy => {
            no_probe("on a log group each of these changes something, and where it is missing CloudWatch Logs answers before it checks permissions")
        }
        A::LogsFilterLogEvents => {
            outcome(a, logs.filter_log_events().log_group_name(check.names.log_group()).limit(1).send().await)
        }
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
    let fetched = info.reply.code.as_deref() == Some("InvalidParameterValueException")
        && info.reply.message.as_deref().is_some_and(|m| m.contains("GetObject") || m.contains("S3 Error"));
    if fetched {
        return Decision::Allow;
    }
    outcome(action, result)
}
