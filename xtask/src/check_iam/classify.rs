//! What an AWS access-denied message says about why: which kind of policy, explicit or implicit.

use serde::Serialize;

/// Why a request was denied, as far as the message tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Denial {
    /// No policy allows it (the usual case: add the action).
    Implicit,
    /// Not allowed by the permissions boundary / the SCPs (no explicit deny).
    ImplicitBoundary,
    ImplicitScp,
    /// A Deny statement matched, in this kind of policy.
    ExplicitIdentity,
    ExplicitScp,
    ExplicitBoundary,
    ExplicitResource,
    ExplicitSession,
    /// An explicit deny whose policy type the message does not name.
    Explicit,
}

impl Denial {
    pub fn is_explicit(self) -> bool {
        !matches!(self, Denial::Implicit | Denial::ImplicitBoundary | Denial::ImplicitScp)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Denial::Implicit => "implicit: no identity-based policy allows it",
            Denial::ImplicitBoundary => "implicit: the permissions boundary does not allow it",
            Denial::ImplicitScp => "implicit: no service control policy allows it",
            Denial::ExplicitIdentity => "explicit deny in an identity-based policy",
            Denial::ExplicitScp => "explicit deny in a service control policy",
            Denial::ExplicitBoundary => "explicit deny in a permissions boundary",
            Denial::ExplicitResource => "explicit deny in a resource-based policy",
            Denial::ExplicitSession => "explicit deny in a session policy",
            Denial::Explicit => "explicit deny",
        }
    }

    /// What to do about it.
    pub fn fix(self, action: &str, policy: &str) -> String {
        match self {
            Denial::Implicit => {
                format!(
                    "allow {action}: attach the fix statement above (all of it: `cargo xtask check-iam --print-policy {policy}`)"
                )
            }
            Denial::ImplicitBoundary | Denial::ExplicitBoundary => {
                format!("the permissions boundary blocks {action}: ask whoever manages it to allow it")
            }
            Denial::ImplicitScp | Denial::ExplicitScp => {
                format!("an organization SCP blocks {action}: ask your AWS organization admin, or use another account")
            }
            Denial::ExplicitIdentity => {
                format!("remove or narrow the Deny statement on {action} in your IAM policies")
            }
            Denial::ExplicitResource => {
                format!("the resource's own policy denies {action}: edit that policy")
            }
            Denial::ExplicitSession => {
                format!("the session policy of your role session denies {action}: start a session without it")
            }
            Denial::Explicit => {
                format!("find the Deny statement on {action} (identity, boundary, SCP or resource policy)")
            }
        }
    }
}

/// Classify a denial message, in AWS's wording since 2021 ("... because no identity-based policy
/// allows ...", "... with an explicit deny in a service control policy"), read by the same
/// reader as `check-iam explain`. Messages without a reason (moto's, older services') are
/// implicit: nothing says a Deny matched.
pub fn classify(message: &str) -> Denial {
    use super::explain::{Cause, PolicyType};
    let reason = super::explain::reason(message);
    match (reason.cause, reason.through) {
        (Cause::Explicit { .. }, Some(PolicyType::Scp)) => Denial::ExplicitScp,
        (Cause::Explicit { policy }, _) => match policy {
            PolicyType::Scp => Denial::ExplicitScp,
            PolicyType::Boundary => Denial::ExplicitBoundary,
            PolicyType::ResourceBased => Denial::ExplicitResource,
            PolicyType::Session => Denial::ExplicitSession,
            PolicyType::Identity => Denial::ExplicitIdentity,
            PolicyType::Rcp | PolicyType::VpcEndpoint | PolicyType::RoleTrust => Denial::Explicit,
        },
        (Cause::Implicit { policy: PolicyType::Boundary }, _) => Denial::ImplicitBoundary,
        (Cause::Implicit { policy: PolicyType::Scp }, _) => Denial::ImplicitScp,
        // "explicit deny" in words the reader does not take apart: still a Deny.
        (Cause::Unstated, _) if message.to_ascii_lowercase().contains("explicit deny") => Denial::Explicit,
        _ => Denial::Implicit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: dynamodb:CreateTable on resource: arn:aws:dynamodb:us-east-1:123456789012:table/record_user";

    #[test]
    fn no_identity_policy_allows_is_implicit() {
        let m = format!("{USER} because no identity-based policy allows the dynamodb:CreateTable action");
        assert_eq!(classify(&m), Denial::Implicit);
    }

    #[test]
    fn explicit_denies_are_attributed_to_their_policy_type() {
        let cases = [
            ("with an explicit deny in a service control policy", Denial::ExplicitScp),
            ("with an explicit deny in a permissions boundary", Denial::ExplicitBoundary),
            ("with an explicit deny in an identity-based policy", Denial::ExplicitIdentity),
            ("with an explicit deny in a resource-based policy", Denial::ExplicitResource),
            ("with an explicit deny in a session policy", Denial::ExplicitSession),
        ];
        for (reason, expected) in cases {
            assert_eq!(classify(&format!("{USER} {reason}")), expected, "{reason}");
            assert!(expected.is_explicit());
        }
    }

    #[test]
    fn implicit_boundary_and_scp_denials_are_recognised() {
        let boundary =
            format!("{USER} because no permissions boundary allows the dynamodb:CreateTable action");
        assert_eq!(classify(&boundary), Denial::ImplicitBoundary);
        let scp = format!("{USER} because no service control policy allows the dynamodb:CreateTable action");
        assert_eq!(classify(&scp), Denial::ImplicitScp);
    }

    #[test]
    fn motos_code_less_xml_body_is_read_and_implicit() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/probe is not authorized to perform: dynamodb:CreateTable</Message></Error></Errors><RequestId>7a62c49f</RequestId></ErrorResponse>"#;
        let message = crate::aws::xml_tag(body, "Message").unwrap();
        assert!(message.ends_with("dynamodb:CreateTable"));
        assert_eq!(classify(message), Denial::Implicit);
    }
}
