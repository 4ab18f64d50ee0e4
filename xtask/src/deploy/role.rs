//! The Lambda execution role: trusts lambda.amazonaws.com, holds one inline policy rendered from
//! `app::permissions` with the stage's concrete ARNs.

use aws_sdk_iam::error::SdkError;
use serde_json::json;

use super::Step;
use crate::aws::{Aws, ExplainExt};
use crate::catalogue::{render_policy, runtime_needs};
use crate::names::Names;
use crate::outcome::Outcome;
use iam::{PolicyDocument, Statement, Strings};

use crate::policy::parse_document as parse_policy_document;

/// The inline policy's name on the role.
use crate::catalogue::RUNTIME_POLICY_NAME as POLICY_NAME;

/// Lambda may assume the role.
pub fn trust_policy() -> PolicyDocument {
    let mut statement =
        Statement::allow("Lambda", ["sts:AssumeRole"].into_iter().collect(), Strings::default());
    statement.resource = None;
    statement.principal = Some(json!({ "Service": "lambda.amazonaws.com" }));
    PolicyDocument::new(vec![statement])
}

pub struct EnsuredRole {
    pub arn: String,
    pub step: Step,
    /// Just created: IAM may take a few seconds before Lambda can assume it.
    pub created: bool,
}

/// The stage's execution role as it is, if it exists. Read first of the stage's resources (its
/// name depends on the stage alone), before anything is planned.
pub async fn current(aws: &Aws, names: &Names) -> anyhow::Result<Option<aws_sdk_iam::types::Role>> {
    let iam = aws_sdk_iam::Client::new(&aws.sdk);
    match iam.get_role().role_name(&names.role).send().await {
        Ok(output) => Ok(output.role),
        Err(SdkError::ServiceError(e)) if e.err().is_no_such_entity_exception() => Ok(None),
        Err(e) => Err(crate::aws::explain(e, "iam:GetRole", &names.role, aws)),
    }
}

/// Converge the role `current` read (`existing`) on the trust and inline policies.
pub async fn ensure_role(
    aws: &Aws,
    names: &Names,
    existing: Option<aws_sdk_iam::types::Role>,
    dry_run: bool,
) -> anyhow::Result<EnsuredRole> {
    let iam = aws_sdk_iam::Client::new(&aws.sdk);
    let policy = render_policy(&runtime_needs(), names, false);
    let role = &names.role;
    let Some(existing) = existing else {
        if !dry_run {
            let created = iam
                .create_role()
                .role_name(role)
                .assume_role_policy_document(trust_policy().to_value().to_string())
                .description(format!("recording-server {} Lambda execution role", names.stage))
                .tags(tag("project", "recording-server"))
                .tags(tag("stage", &names.stage))
                .send()
                .await
                .explain("iam:CreateRole", role, aws)?;
            put_policy(&iam, aws, role, &policy).await?;
            let arn = created.role.map(|r| r.arn).unwrap_or_else(|| names.role_arn());
            return Ok(EnsuredRole {
                arn,
                step: Step::new("role", role, Outcome::Create, Vec::new()),
                created: true,
            });
        }
        return Ok(EnsuredRole {
            arn: names.role_arn(),
            step: Step::new("role", role, Outcome::Create, Vec::new()),
            created: true,
        });
    };
    let mut changes = Vec::new();
    let trust = existing.assume_role_policy_document().map(parse_policy_document).unwrap_or_default();
    // Compared by meaning: AWS may return the document reformatted.
    if !trust.trusts_lambda() {
        changes.push("trust policy".to_owned());
        if !dry_run {
            iam.update_assume_role_policy()
                .role_name(role)
                .policy_document(trust_policy().to_value().to_string())
                .send()
                .await
                .explain("iam:UpdateAssumeRolePolicy", role, aws)?;
        }
    }
    let current = match iam.get_role_policy().role_name(role).policy_name(POLICY_NAME).send().await {
        Ok(output) => parse_policy_document(output.policy_document()),
        Err(SdkError::ServiceError(e)) if e.err().is_no_such_entity_exception() => PolicyDocument::default(),
        Err(e) => return Err(crate::aws::explain(e, "iam:GetRolePolicy", role, aws)),
    };
    if current != policy {
        changes.push(format!("inline policy {POLICY_NAME}"));
        if !dry_run {
            put_policy(&iam, aws, role, &policy).await?;
        }
    }
    let outcome = Outcome::of(false, !changes.is_empty());
    Ok(EnsuredRole { arn: existing.arn, step: Step::new("role", role, outcome, changes), created: false })
}

async fn put_policy(
    iam: &aws_sdk_iam::Client,
    aws: &Aws,
    role: &str,
    policy: &PolicyDocument,
) -> anyhow::Result<()> {
    iam.put_role_policy()
        .role_name(role)
        .policy_name(POLICY_NAME)
        .policy_document(policy.to_value().to_string())
        .send()
        .await
        .explain("iam:PutRolePolicy", role, aws)?;
    Ok(())
}

fn tag(key: &str, value: &str) -> aws_sdk_iam::types::Tag {
    aws_sdk_iam::types::Tag::builder().key(key).value(value).build().expect("key and value are set")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_trust_policy_lets_lambda_and_only_lambda_assume_the_role() {
        let policy = super::trust_policy();
        assert!(policy.trusts_lambda());
        let text = policy.to_value().to_string();
        assert_eq!(
            text,
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"Lambda","Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":["sts:AssumeRole"]}]}"#
        );
    }
}
