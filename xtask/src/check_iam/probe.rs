//! Side-effect-free probes, for when simulation is unavailable: AWS authorizes a request before
//! it looks at the resource, so "not found", "in use" or "invalid" answers mean allowed. Read
//! probes by default; `--probe conditional` adds writes that cannot change anything (invalid
//! requests, or requests on a resource that does not exist). Actions with no such call stay
//! UNKNOWN rather than guessed.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, PointInTimeRecoverySpecification,
    ScalarAttributeType, TimeToLiveSpecification,
};

use super::classify::{classify, xml_message};
use super::{Check, Decision, ProbeMode};
use crate::aws::{is_access_denied, Aws, HttpResponse};

/// Error codes AWS returns only after authorizing the request.
const AUTHORIZED: &[&str] = &[
    "ResourceNotFoundException",
    // moto's spelling for some DynamoDB operations.
    "ResourceNotFound",
    "TableNotFoundException",
    "ValidationException",
    "ResourceInUseException",
    "ConditionalCheckFailedException",
    "NoSuchBucket",
    "NoSuchKey",
    "NotFound",
    "NoSuchEntity",
];

/// Turn a probe's answer into a decision.
fn outcome<O, E>(result: Result<O, SdkError<E, HttpResponse>>) -> Decision
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let err = match result {
        Ok(_) => return Decision::Allow,
        Err(err) => err,
    };
    if is_access_denied(&err) {
        let message = match &err {
            SdkError::ServiceError(e) => e.err().message().map(str::to_owned).or_else(|| {
                let body = e.raw().body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
                xml_message(&body).map(str::to_owned)
            }),
            _ => None,
        };
        return Decision::Deny { denial: classify(message.as_deref().unwrap_or_default()) };
    }
    match &err {
        SdkError::ServiceError(e) if e.err().code().is_some_and(|c| AUTHORIZED.contains(&c)) => {
            Decision::Allow
        }
        _ => Decision::Unknown { reason: format!("the probe failed: {}", crate::aws::brief(&err)) },
    }
}

fn needs_conditional() -> Decision {
    Decision::Unknown { reason: "only a write can show this; rerun with --probe conditional".into() }
}

fn no_probe() -> Decision {
    Decision::Unknown { reason: "no side-effect-free probe exists for this action".into() }
}

/// Probe one action on one resource (GetCallerIdentity already succeeded before any probe).
pub async fn probe(aws: &Aws, check: &Check, arn: &str, mode: ProbeMode) -> Decision {
    let target = check.target_name(arn);
    let conditional = mode == ProbeMode::Conditional;
    let dynamodb = || aws.dynamodb();
    match check.need.action {
        "sts:GetCallerIdentity" => Decision::Allow,
        "dynamodb:DescribeTable" => outcome(dynamodb().describe_table().table_name(target).send().await),
        "dynamodb:DescribeTimeToLive" => {
            outcome(dynamodb().describe_time_to_live().table_name(target).send().await)
        }
        "dynamodb:DescribeContinuousBackups" => {
            outcome(dynamodb().describe_continuous_backups().table_name(target).send().await)
        }
        "dynamodb:CreateTable" if conditional => {
            // More attribute definitions than key attributes: rejected as invalid after
            // authorization, so nothing is ever created.
            let key = KeySchemaElement::builder().attribute_name("probe").key_type(KeyType::Hash).build();
            let definition = |name: &str| {
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
            };
            let request = dynamodb()
                .create_table()
                .table_name(target)
                .key_schema(key.expect("name and type are set"))
                .attribute_definitions(definition("probe").expect("name and type are set"))
                .attribute_definitions(definition("unused").expect("name and type are set"))
                .billing_mode(BillingMode::PayPerRequest);
            outcome(request.send().await)
        }
        "dynamodb:UpdateTable" if conditional => {
            // An update that changes nothing is rejected as invalid.
            outcome(dynamodb().update_table().table_name(target).send().await)
        }
        "dynamodb:TagResource" if conditional => {
            outcome(dynamodb().tag_resource().resource_arn(arn).set_tags(Some(Vec::new())).send().await)
        }
        "dynamodb:UpdateTimeToLive" | "dynamodb:UpdateContinuousBackups" if conditional => {
            // Only safe on a table that does not exist (the answer is then "not found").
            if table_exists(aws, &target).await != Some(false) {
                return Decision::Unknown {
                    reason: "no side-effect-free probe while the table exists".into(),
                };
            }
            if check.need.action == "dynamodb:UpdateTimeToLive" {
                let spec =
                    TimeToLiveSpecification::builder().attribute_name("expires_at").enabled(true).build();
                outcome(
                    dynamodb()
                        .update_time_to_live()
                        .table_name(target)
                        .time_to_live_specification(spec.expect("set"))
                        .send()
                        .await,
                )
            } else {
                let spec =
                    PointInTimeRecoverySpecification::builder().point_in_time_recovery_enabled(true).build();
                outcome(
                    dynamodb()
                        .update_continuous_backups()
                        .table_name(target)
                        .point_in_time_recovery_specification(spec.expect("set"))
                        .send()
                        .await,
                )
            }
        }
        "s3:ListBucket" => outcome(aws.s3().list_objects_v2().bucket(target).max_keys(1).send().await),
        "iam:GetRole" | "iam:ListRolePolicies" | "iam:GetRolePolicy" | "iam:ListAttachedRolePolicies" => {
            let iam = aws_sdk_iam::Client::new(&aws.sdk);
            match check.need.action {
                "iam:GetRole" => outcome(iam.get_role().role_name(target).send().await),
                "iam:ListRolePolicies" => outcome(iam.list_role_policies().role_name(target).send().await),
                "iam:GetRolePolicy" => outcome(
                    iam.get_role_policy().role_name(target).policy_name("check-iam-probe").send().await,
                ),
                _ => outcome(iam.list_attached_role_policies().role_name(target).send().await),
            }
        }
        "iam:ListRoles" => outcome(aws_sdk_iam::Client::new(&aws.sdk).list_roles().max_items(1).send().await),
        "lambda:GetFunction" | "lambda:GetPolicy" | "lambda:GetFunctionUrlConfig" => {
            let lambda = aws_sdk_lambda::Client::new(&aws.sdk);
            match check.need.action {
                "lambda:GetFunction" => outcome(lambda.get_function().function_name(target).send().await),
                "lambda:GetPolicy" => outcome(lambda.get_policy().function_name(target).send().await),
                _ => outcome(lambda.get_function_url_config().function_name(target).send().await),
            }
        }
        "dynamodb:CreateTable"
        | "dynamodb:UpdateTable"
        | "dynamodb:TagResource"
        | "dynamodb:UpdateTimeToLive"
        | "dynamodb:UpdateContinuousBackups" => needs_conditional(),
        _ => no_probe(),
    }
}

/// `Some(false)` only when DynamoDB says the table does not exist.
async fn table_exists(aws: &Aws, table: &str) -> Option<bool> {
    match aws.dynamodb().describe_table().table_name(table).send().await {
        Ok(_) => Some(true),
        Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => Some(false),
        Err(_) => None,
    }
}
