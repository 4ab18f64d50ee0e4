//! The Lambda execution role and the function URL: what the role's own policies grant (when
//! simulation is unavailable), its trust policy, and the function URL's resource policy.

use iam::{Evaluation, PolicyDocument};

use super::classify::Denial;
use super::{Decision, Method, Principal, Row};
use crate::catalogue::runtime_needs;
use crate::names::Names;
use crate::policy::Policies;

/// A policy evaluation as a check-iam decision.
pub fn decision(evaluation: Evaluation) -> Decision {
    match evaluation {
        Evaluation::Allow => Decision::Allow,
        Evaluation::ExplicitDeny => Decision::Deny { denial: Denial::ExplicitIdentity },
        Evaluation::ImplicitDeny => Decision::Deny { denial: Denial::Implicit },
        Evaluation::BoundaryDeny => Decision::Deny { denial: Denial::ImplicitBoundary },
        Evaluation::Conditional(keys) => Decision::Conditional { missing_context: keys },
    }
}

/// One row per function-URL statement the function's resource policy must hold.
pub fn url_rows(policy: &PolicyDocument, function_arn: &str) -> Vec<Row> {
    policy
        .url_permissions()
        .into_iter()
        .map(|(action, ok)| {
            let decision = if ok { Decision::Allow } else { Decision::Deny { denial: Denial::Implicit } };
            let mut row =
                Row::new(Principal::FunctionUrl, "*", action, function_arn, decision, Method::Policy);
            if !ok {
                row.fix = Some(
                    "run `cargo xtask deploy` to add the function URL's resource-policy statement".into(),
                );
            }
            row
        })
        .collect()
}

/// An Allow in the execution role's policies that the rendered runtime policy does not make.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OverGrant {
    pub action: String,
    pub resource: String,
    /// The policy it is in.
    pub source: String,
    pub fix: String,
}

/// Every (action, resource) the role's own policies allow beyond the rendered runtime policy:
/// an action the service does not call, a wider resource, a wildcard, or a NotAction/NotResource.
pub fn over_grants(policies: &Policies, names: &Names) -> Vec<OverGrant> {
    let needed: Vec<(iam::Action, Vec<String>)> =
        runtime_needs().iter().map(|n| (n.action, n.resource.arns(names))).collect();
    let rendered = |action: &str, resource: &str| {
        let action = iam::Action::from_name(action);
        needed.iter().any(|(a, arns)| Some(*a) == action && arns.iter().any(|arn| arn == resource))
    };
    let mut extra = Vec::new();
    for (document, source) in policies.identity.iter().zip(&policies.sources) {
        let fix = if *source == format!("inline policy {}", crate::catalogue::RUNTIME_POLICY_NAME) {
            "rerun `cargo xtask deploy`: it writes this policy from the catalogue".to_owned()
        } else {
            format!("remove it from the role's {source} (deploy manages only its own inline policy)")
        };
        for statement in document.statement.iter().filter(|s| s.effect == iam::Effect::Allow) {
            let not = |key: &str, list: &Option<iam::Strings>| {
                list.as_ref().map(|l| format!("{key} {}", l.iter().collect::<Vec<_>>().join(",")))
            };
            let all = |list: &Option<iam::Strings>| -> Vec<String> {
                list.iter().flat_map(|l| l.iter().map(str::to_owned)).collect()
            };
            let actions: Vec<String> = match not("NotAction", &statement.not_action) {
                Some(not_action) => vec![not_action],
                None => all(&statement.action),
            };
            let resources: Vec<String> = match not("NotResource", &statement.not_resource) {
                Some(not_resource) => vec![not_resource],
                None => all(&statement.resource),
            };
            for action in &actions {
                for resource in &resources {
                    let grant = OverGrant {
                        action: action.clone(),
                        resource: resource.clone(),
                        source: source.clone(),
                        fix: fix.clone(),
                    };
                    if !rendered(action, resource) && !extra.contains(&grant) {
                        extra.push(grant);
                    }
                }
            }
        }
    }
    extra
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::catalogue::render_policy;

    fn names() -> Names {
        Names::new("dev", "123456789012", "us-east-1", "", Some("bucket"))
    }

    fn role_with(source: &str, document: impl serde::Serialize) -> Policies {
        let document = serde_json::from_value(serde_json::to_value(document).unwrap()).unwrap();
        Policies { identity: vec![document], sources: vec![source.into()], ..Policies::default() }
    }

    #[test]
    fn the_rendered_policy_is_no_over_grant() {
        let policy = render_policy(&runtime_needs(), &names(), false);
        assert_eq!(over_grants(&role_with("inline policy recording-server-runtime", policy), &names()), []);
    }

    #[test]
    fn an_extra_action_a_wider_resource_and_a_not_action_are_over_grants() {
        let mut policy = render_policy(&runtime_needs(), &names(), false).to_value();
        let statements = policy["Statement"].as_array_mut().unwrap();
        statements
            .push(json!({"Effect": "Allow", "Action": "s3:DeleteBucket", "Resource": "arn:aws:s3:::bucket"}));
        statements.push(json!({"Effect": "Allow", "Action": ["dynamodb:Query"], "Resource": "*"}));
        statements.push(json!({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}));
        statements.push(json!({"Effect": "Deny", "Action": "s3:*", "Resource": "*"}));
        let extra = over_grants(&role_with("inline policy recording-server-runtime", policy), &names());
        let pairs: Vec<(&str, &str)> =
            extra.iter().map(|g| (g.action.as_str(), g.resource.as_str())).collect();
        assert_eq!(
            pairs,
            [("s3:DeleteBucket", "arn:aws:s3:::bucket"), ("dynamodb:Query", "*"), ("NotAction iam:*", "*")]
        );
        assert!(extra[0].fix.contains("cargo xtask deploy"));
    }

    #[test]
    fn an_over_grant_in_another_policy_is_to_be_removed_there() {
        let managed = json!({"Statement": {"Effect": "Allow", "Action": "logs:*", "Resource": "*"}});
        let extra = over_grants(&role_with("attached policy arn:aws:iam::aws:policy/X", managed), &names());
        assert_eq!(extra.len(), 1);
        assert!(
            extra[0].fix.contains("remove it from the role's attached policy arn:aws:iam::aws:policy/X"),
            "{}",
            extra[0].fix
        );
    }
}
