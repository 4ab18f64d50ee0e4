//! `iam:SimulatePrincipalPolicy`: IAM's own evaluation of every needed action on its exact ARNs,
//! including SCPs, permissions boundaries and condition keys.

use std::collections::BTreeMap;

use aws_sdk_iam::error::SdkError;
use aws_sdk_iam::types::{
    ContextEntry, ContextKeyTypeEnum, EvaluationResult, PolicyEvaluationDecisionType, PolicySourceType,
};

use super::classify::Denial;
use super::{Check, Decision, Method, Principal, Row};

/// Why simulation could not answer, so probes take over.
#[derive(Debug)]
pub struct Unavailable {
    pub message: String,
    /// Set when the caller may not simulate (rather than the service failing).
    pub denied: Option<Denial>,
}

/// Simulate every check for `principal_arn` (a user or role ARN, not an assumed-role session).
/// Checks with the same resources and condition go in one call; results are paginated.
pub async fn simulate(
    iam: &aws_sdk_iam::Client,
    principal: Principal,
    principal_arn: &str,
    checks: &[Check],
) -> Result<Vec<Row>, Unavailable> {
    let mut batches: BTreeMap<(Vec<String>, Option<crate::catalogue::Condition>), Vec<&Check>> =
        BTreeMap::new();
    for check in checks {
        batches.entry((check.arns.clone(), check.need.condition)).or_default().push(check);
    }
    let mut rows = Vec::new();
    for ((arns, condition), batch) in batches {
        let actions: Vec<String> = batch.iter().map(|c| c.need.action.name().to_owned()).collect();
        let mut marker = None;
        loop {
            let mut request = iam
                .simulate_principal_policy()
                .policy_source_arn(principal_arn)
                .set_action_names(Some(actions.clone()))
                .set_marker(marker.take());
            if arns != ["*"] {
                request = request.set_resource_arns(Some(arns.clone()));
            }
            if let Some((key, value)) = condition {
                let entry = ContextEntry::builder()
                    .context_key_name(key)
                    .context_key_values(value)
                    .context_key_type(ContextKeyTypeEnum::String)
                    .build();
                request = request.context_entries(entry);
            }
            let output = request.send().await.map_err(|e| unavailable(&e))?;
            for result in output.evaluation_results() {
                // IAM answers with the action's name: the one place a row is matched to its
                // check by name.
                let need = batch
                    .iter()
                    .map(|c| c.need)
                    .find(|n| n.action.name().eq_ignore_ascii_case(result.eval_action_name()));
                rows.extend(
                    rows_for(principal, principal_arn, result, &arns)
                        .into_iter()
                        .map(|row| Row { need, ..row }),
                );
            }
            match output.marker {
                Some(next) if output.is_truncated => marker = Some(next),
                _ => break,
            }
        }
    }
    Ok(rows)
}

fn unavailable<E>(e: &SdkError<E, crate::aws::HttpResponse>) -> Unavailable
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let info = crate::aws::ErrorInfo::of(e);
    let message = info.line();
    let denied = info.is_access_denied().then(|| super::classify::classify(&message));
    Unavailable { message, denied }
}

/// One row per resource: from the per-resource results when IAM gives them, else the action's
/// overall result for each requested resource.
fn rows_for(
    principal: Principal,
    principal_arn: &str,
    result: &EvaluationResult,
    arns: &[String],
) -> Vec<Row> {
    let action = result.eval_action_name();
    let row = |resource: &str, decision: Decision| {
        Row::new(principal, principal_arn, action, resource, decision, Method::Simulate)
    };
    if result.resource_specific_results().is_empty() {
        let decision = decide(
            result.eval_decision(),
            result.missing_context_values(),
            result.organizations_decision_detail().map(|d| d.allowed_by_organizations()),
            result.permissions_boundary_decision_detail().map(|d| d.allowed_by_permissions_boundary()),
            result.matched_statements().iter().filter_map(|s| s.source_policy_type()).collect(),
        );
        let resource = result.eval_resource_name().map(str::to_owned);
        return match resource {
            Some(r) if r != "*" => vec![row(&r, decision)],
            _ => arns.iter().map(|r| row(r, decision.clone())).collect(),
        };
    }
    result
        .resource_specific_results()
        .iter()
        .map(|r| {
            let decision = decide(
                r.eval_resource_decision(),
                r.missing_context_values(),
                result.organizations_decision_detail().map(|d| d.allowed_by_organizations()),
                r.permissions_boundary_decision_detail().map(|d| d.allowed_by_permissions_boundary()),
                r.matched_statements().iter().filter_map(|s| s.source_policy_type()).collect(),
            );
            row(r.eval_resource_name(), decision)
        })
        .collect()
}

/// IAM's verdict as a decision, attributing denials to the policy type IAM names.
fn decide(
    decision: &PolicyEvaluationDecisionType,
    missing_context: &[String],
    allowed_by_organizations: Option<bool>,
    allowed_by_boundary: Option<bool>,
    matched: Vec<&PolicySourceType>,
) -> Decision {
    if !missing_context.is_empty() {
        return Decision::Conditional { missing_context: missing_context.to_vec() };
    }
    let denial = match decision {
        PolicyEvaluationDecisionType::Allowed => return Decision::Allow,
        PolicyEvaluationDecisionType::ExplicitDeny => {
            if allowed_by_organizations == Some(false) {
                Denial::ExplicitScp
            } else if allowed_by_boundary == Some(false) {
                Denial::ExplicitBoundary
            } else if matched.iter().any(|t| **t == PolicySourceType::Resource) {
                Denial::ExplicitResource
            } else {
                Denial::ExplicitIdentity
            }
        }
        PolicyEvaluationDecisionType::ImplicitDeny => {
            if allowed_by_organizations == Some(false) {
                Denial::ImplicitScp
            } else if allowed_by_boundary == Some(false) {
                Denial::ImplicitBoundary
            } else {
                Denial::Implicit
            }
        }
        other => {
            return Decision::Unknown { reason: format!("unexpected simulation decision {}", other.as_str()) }
        }
    };
    Decision::Deny { denial }
}
