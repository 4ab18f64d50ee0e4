//! IAM policy documents: reading a principal's own policies from IAM, and evaluating identity
//! policies for one action on one ARN. Used where simulation is unavailable; SCPs and resource
//! policies are invisible here, which is why simulation and probes come first.

use aws_sdk_iam::error::SdkError;
use iam::{Action, Evaluation, PolicyDocument};

use crate::aws::{ErrorInfo, HttpResponse};

/// A principal's policies as IAM stores them.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    /// The trust policy (roles only).
    pub trust: PolicyDocument,
    /// Inline and attached identity policies (a user's groups' policies included).
    pub identity: Vec<PolicyDocument>,
    /// Where each of `identity` comes from, e.g. `inline policy x` or a managed policy's ARN.
    pub sources: Vec<String>,
    /// The permissions boundary's document, when one is set.
    pub boundary: Option<PolicyDocument>,
}

impl Policies {
    fn add(&mut self, source: String, document: PolicyDocument) {
        self.sources.push(source);
        self.identity.push(document);
    }

    /// Identity policies first (a Deny anywhere wins), then the boundary.
    pub fn evaluate(&self, action: &str, arn: &str, context: &[(&str, &str)]) -> Evaluation {
        iam::policy::evaluate_with_boundary(&self.identity, self.boundary.as_ref(), action, arn, context)
    }
}

/// A call that failed while reading policies: which permission would have let it through.
#[derive(Debug, Clone)]
pub struct Unread {
    pub action: Action,
    pub resource: String,
    pub error: String,
    pub denied: bool,
}

impl Unread {
    fn of<E>(action: Action, resource: &str, err: &SdkError<E, HttpResponse>) -> Unread
    where
        E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let info = ErrorInfo::of(err);
        Unread { action, resource: resource.to_owned(), error: info.line(), denied: info.is_access_denied() }
    }

    /// `needs iam:GetRole on …` or `iam:GetRole on … failed: …`.
    pub fn reason(&self) -> String {
        if self.denied {
            format!("needs {} on {}", self.action, self.resource)
        } else {
            format!("{} on {} failed: {}", self.action, self.resource, self.error)
        }
    }
}

/// A role's trust policy, inline and attached policies and boundary; `None` if it does not exist.
pub async fn read_role(iam: &aws_sdk_iam::Client, role: &str) -> Result<Option<Policies>, Unread> {
    let found = match iam.get_role().role_name(role).send().await {
        Ok(output) => output.role,
        Err(SdkError::ServiceError(e)) if e.err().is_no_such_entity_exception() => return Ok(None),
        Err(e) => return Err(Unread::of(Action::IamGetRole, role, &e)),
    };
    let mut policies = Policies {
        trust: found
            .as_ref()
            .and_then(|r| r.assume_role_policy_document())
            .map(parse_document)
            .unwrap_or_default(),
        ..Policies::default()
    };
    let inline = iam.list_role_policies().role_name(role).send().await;
    for name in inline.map_err(|e| Unread::of(Action::IamListRolePolicies, role, &e))?.policy_names() {
        let policy = iam.get_role_policy().role_name(role).policy_name(name).send().await;
        let policy = policy.map_err(|e| Unread::of(Action::IamGetRolePolicy, role, &e))?;
        policies.add(format!("inline policy {name}"), parse_document(policy.policy_document()));
    }
    let attached = iam.list_attached_role_policies().role_name(role).send().await;
    let attached = attached.map_err(|e| Unread::of(Action::IamListAttachedRolePolicies, role, &e))?;
    for arn in attached.attached_policies().iter().filter_map(|p| p.policy_arn()) {
        policies.add(format!("attached policy {arn}"), managed_document(iam, arn).await?);
    }
    if let Some(boundary) =
        found.and_then(|r| r.permissions_boundary).and_then(|b| b.permissions_boundary_arn)
    {
        policies.boundary = Some(managed_document(iam, &boundary).await?);
    }
    Ok(Some(policies))
}

/// A user's inline and attached policies, its groups' policies and its boundary.
pub async fn read_user(iam: &aws_sdk_iam::Client, user: &str) -> Result<Policies, Unread> {
    let mut policies = Policies::default();
    let found =
        iam.get_user().user_name(user).send().await.map_err(|e| Unread::of(Action::IamGetUser, user, &e))?;
    let inline = iam.list_user_policies().user_name(user).send().await;
    for name in inline.map_err(|e| Unread::of(Action::IamListUserPolicies, user, &e))?.policy_names() {
        let policy = iam.get_user_policy().user_name(user).policy_name(name).send().await;
        let policy = policy.map_err(|e| Unread::of(Action::IamGetUserPolicy, user, &e))?;
        policies.add(format!("inline policy {name}"), parse_document(policy.policy_document()));
    }
    let attached = iam.list_attached_user_policies().user_name(user).send().await;
    let attached = attached.map_err(|e| Unread::of(Action::IamListAttachedUserPolicies, user, &e))?;
    for arn in attached.attached_policies().iter().filter_map(|p| p.policy_arn()) {
        policies.add(format!("attached policy {arn}"), managed_document(iam, arn).await?);
    }
    let groups = iam.list_groups_for_user().user_name(user).send().await;
    for group in groups.map_err(|e| Unread::of(Action::IamListGroupsForUser, user, &e))?.groups() {
        let name = group.group_name();
        let inline = iam.list_group_policies().group_name(name).send().await;
        for policy in inline.map_err(|e| Unread::of(Action::IamListGroupPolicies, name, &e))?.policy_names() {
            let doc = iam.get_group_policy().group_name(name).policy_name(policy).send().await;
            let doc = doc.map_err(|e| Unread::of(Action::IamGetGroupPolicy, name, &e))?;
            policies
                .add(format!("group {name}'s inline policy {policy}"), parse_document(doc.policy_document()));
        }
        let attached = iam.list_attached_group_policies().group_name(name).send().await;
        let attached = attached.map_err(|e| Unread::of(Action::IamListAttachedGroupPolicies, name, &e))?;
        for arn in attached.attached_policies().iter().filter_map(|p| p.policy_arn()) {
            policies.add(format!("group {name}'s attached policy {arn}"), managed_document(iam, arn).await?);
        }
    }
    let boundary = found.user.and_then(|u| u.permissions_boundary).and_then(|b| b.permissions_boundary_arn);
    if let Some(boundary) = boundary {
        policies.boundary = Some(managed_document(iam, &boundary).await?);
    }
    Ok(policies)
}

/// The default version's document of a managed policy.
async fn managed_document(iam: &aws_sdk_iam::Client, arn: &str) -> Result<PolicyDocument, Unread> {
    let meta = iam
        .get_policy()
        .policy_arn(arn)
        .send()
        .await
        .map_err(|e| Unread::of(Action::IamGetPolicy, arn, &e))?;
    let Some(version) = meta.policy.and_then(|p| p.default_version_id) else {
        return Ok(PolicyDocument::default());
    };
    let doc = iam.get_policy_version().policy_arn(arn).version_id(version).send().await;
    let doc = doc.map_err(|e| Unread::of(Action::IamGetPolicyVersion, arn, &e))?;
    Ok(doc.policy_version.and_then(|v| v.document).as_deref().map(parse_document).unwrap_or_default())
}

/// IAM returns policy documents URL-encoded; one it cannot parse reads as empty (granting nothing).
pub fn parse_document(text: &str) -> PolicyDocument {
    PolicyDocument::parse(text).unwrap_or_default()
}
