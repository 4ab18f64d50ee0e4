//! The Lambda execution role and the function URL: what the role's own policies grant (when
//! simulation is unavailable), its trust policy, and the function URL's resource policy.

use serde_json::Value;

use super::classify::Denial;
use super::{Decision, Method, Row};
use crate::policy::Evaluation;

pub const ROLE: &str = "execution-role";

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
pub fn url_rows(policy: &Value, function_arn: &str) -> Vec<Row> {
    crate::policy::url_permissions(policy)
        .into_iter()
        .map(|(action, ok)| {
            let decision = if ok { Decision::Allow } else { Decision::Deny { denial: Denial::Implicit } };
            let mut row = Row::new("function-url", "*", action, function_arn, decision, Method::Policy);
            if !ok {
                row.fix = Some(
                    "run `cargo xtask deploy` to add the function URL's resource-policy statement".into(),
                );
            }
            row
        })
        .collect()
}
