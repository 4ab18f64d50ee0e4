//! IAM policy documents: reading a principal's own policies from IAM, and evaluating identity
//! policies for one action on one ARN. Used where simulation is unavailable; SCPs and resource
//! policies are invisible here, which is why simulation and probes come first.

use aws_sdk_iam::error::SdkError;
use serde_json::Value;

use crate::aws::{ErrorInfo, HttpResponse};

/// What a principal's identity policies (and its permissions boundary, if any) say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evaluation {
    Allow,
    /// A Deny statement matched.
    ExplicitDeny,
    /// No statement allows it.
    ImplicitDeny,
    /// The permissions boundary does not allow it (the identity policies do).
    BoundaryDeny,
    /// Allowed only under conditions the request context does not settle.
    Conditional(Vec<String>),
}

/// A principal's policies as IAM stores them.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    /// The trust policy (roles only).
    pub trust: Value,
    /// Inline and attached identity policies (a user's groups' policies included).
    pub identity: Vec<Value>,
    /// Where each of `identity` comes from, e.g. `inline policy x` or a managed policy's ARN.
    pub sources: Vec<String>,
    /// The permissions boundary's document, when one is set.
    pub boundary: Option<Value>,
}

impl Policies {
    fn add(&mut self, source: String, document: Value) {
        self.sources.push(source);
        self.identity.push(document);
    }

    /// Identity policies first (a Deny anywhere wins), then the boundary.
    pub fn evaluate(&self, action: &str, arn: &str, context: &[(&str, &str)]) -> Evaluation {
        let identity = evaluate(&self.identity, action, arn, context);
        match (&identity, &self.boundary) {
            (Evaluation::Allow | Evaluation::Conditional(_), Some(boundary)) => {
                match evaluate(std::slice::from_ref(boundary), action, arn, context) {
                    Evaluation::Allow => identity,
                    Evaluation::Conditional(keys) if identity == Evaluation::Allow => {
                        Evaluation::Conditional(keys)
                    }
                    Evaluation::ExplicitDeny => Evaluation::ExplicitDeny,
                    Evaluation::Conditional(_) => identity,
                    _ => Evaluation::BoundaryDeny,
                }
            }
            _ => identity,
        }
    }
}

/// A call that failed while reading policies: which permission would have let it through.
#[derive(Debug, Clone)]
pub struct Unread {
    pub action: &'static str,
    pub resource: String,
    pub error: String,
    pub denied: bool,
}

impl Unread {
    fn of<E>(action: &'static str, resource: &str, err: &SdkError<E, HttpResponse>) -> Unread
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
        Err(e) => return Err(Unread::of("iam:GetRole", role, &e)),
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
    for name in inline.map_err(|e| Unread::of("iam:ListRolePolicies", role, &e))?.policy_names() {
        let policy = iam.get_role_policy().role_name(role).policy_name(name).send().await;
        let policy = policy.map_err(|e| Unread::of("iam:GetRolePolicy", role, &e))?;
        policies.add(format!("inline policy {name}"), parse_document(policy.policy_document()));
    }
    let attached = iam.list_attached_role_policies().role_name(role).send().await;
    let attached = attached.map_err(|e| Unread::of("iam:ListAttachedRolePolicies", role, &e))?;
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
        iam.get_user().user_name(user).send().await.map_err(|e| Unread::of("iam:GetUser", user, &e))?;
    let inline = iam.list_user_policies().user_name(user).send().await;
    for name in inline.map_err(|e| Unread::of("iam:ListUserPolicies", user, &e))?.policy_names() {
        let policy = iam.get_user_policy().user_name(user).policy_name(name).send().await;
        let policy = policy.map_err(|e| Unread::of("iam:GetUserPolicy", user, &e))?;
        policies.add(format!("inline policy {name}"), parse_document(policy.policy_document()));
    }
    let attached = iam.list_attached_user_policies().user_name(user).send().await;
    let attached = attached.map_err(|e| Unread::of("iam:ListAttachedUserPolicies", user, &e))?;
    for arn in attached.attached_policies().iter().filter_map(|p| p.policy_arn()) {
        policies.add(format!("attached policy {arn}"), managed_document(iam, arn).await?);
    }
    let groups = iam.list_groups_for_user().user_name(user).send().await;
    for group in groups.map_err(|e| Unread::of("iam:ListGroupsForUser", user, &e))?.groups() {
        let name = group.group_name();
        let inline = iam.list_group_policies().group_name(name).send().await;
        for policy in inline.map_err(|e| Unread::of("iam:ListGroupPolicies", name, &e))?.policy_names() {
            let doc = iam.get_group_policy().group_name(name).policy_name(policy).send().await;
            let doc = doc.map_err(|e| Unread::of("iam:GetGroupPolicy", name, &e))?;
            policies
                .add(format!("group {name}'s inline policy {policy}"), parse_document(doc.policy_document()));
        }
        let attached = iam.list_attached_group_policies().group_name(name).send().await;
        let attached = attached.map_err(|e| Unread::of("iam:ListAttachedGroupPolicies", name, &e))?;
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
async fn managed_document(iam: &aws_sdk_iam::Client, arn: &str) -> Result<Value, Unread> {
    let meta =
        iam.get_policy().policy_arn(arn).send().await.map_err(|e| Unread::of("iam:GetPolicy", arn, &e))?;
    let Some(version) = meta.policy.and_then(|p| p.default_version_id) else { return Ok(Value::Null) };
    let doc = iam.get_policy_version().policy_arn(arn).version_id(version).send().await;
    let doc = doc.map_err(|e| Unread::of("iam:GetPolicyVersion", arn, &e))?;
    Ok(doc.policy_version.and_then(|v| v.document).as_deref().map(parse_document).unwrap_or_default())
}

/// IAM returns policy documents URL-encoded.
pub fn parse_document(text: &str) -> Value {
    let decoded = percent_decode(text);
    serde_json::from_str(&decoded).unwrap_or(Value::Null)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn statements(document: &Value) -> Vec<&Value> {
    match &document["Statement"] {
        Value::Array(list) => list.iter().collect(),
        Value::Object(_) => vec![&document["Statement"]],
        _ => Vec::new(),
    }
}

pub fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// IAM wildcard matching: `*` any run, `?` one character.
pub fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if ignore_case {
        (pattern.to_lowercase().chars().collect(), text.to_lowercase().chars().collect())
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether a statement's `Action`/`NotAction` and `Resource`/`NotResource` cover the request.
fn covers(statement: &Value, action: &str, arn: &str) -> bool {
    let action_hit = match statement.get("NotAction") {
        Some(not) => !strings(not).iter().any(|p| glob(p, action, true)),
        None => strings(&statement["Action"]).iter().any(|p| glob(p, action, true)),
    };
    // `${aws:username}`-style variables match any one name here.
    let resource_glob = |p: &&str| glob(&without_variables(p), arn, false);
    let resource_hit = match statement.get("NotResource") {
        Some(not) => !strings(not).iter().any(resource_glob),
        None => strings(&statement["Resource"]).iter().any(resource_glob),
    };
    action_hit && resource_hit
}

fn without_variables(pattern: &str) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                out.push('*');
                rest = &rest[start + end + 1..];
            }
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether a statement's conditions hold for the request `context` (condition key → value):
/// `Ok(true)` hold, `Ok(false)` do not, `Err(keys)` cannot tell (operators or keys the context
/// does not settle).
fn conditions_hold(statement: &Value, context: &[(&str, &str)]) -> Result<bool, Vec<String>> {
    let Some(Value::Object(operators)) = statement.get("Condition") else { return Ok(true) };
    let mut unknown = Vec::new();
    for (operator, keys) in operators {
        let Value::Object(keys) = keys else { continue };
        for (key, expected) in keys {
            let actual = context.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| *v);
            let matches = |p: &&str| match operator.as_str() {
                "StringEquals" => Some(*p == actual?),
                "StringLike" => Some(glob(p, actual?, false)),
                _ => None,
            };
            let results: Vec<Option<bool>> = strings(expected).iter().map(matches).collect();
            if results.iter().any(|r| r.is_none()) || results.is_empty() {
                unknown.push(format!("{operator} {key}"));
            } else if !results.contains(&Some(true)) {
                return Ok(false);
            }
        }
    }
    if unknown.is_empty() {
        Ok(true)
    } else {
        Err(unknown)
    }
}

/// What identity `documents` say about `action` on `arn`, Deny first, with the request's
/// condition `context` (e.g. `iam:PassedToService`).
pub fn evaluate(documents: &[Value], action: &str, arn: &str, context: &[(&str, &str)]) -> Evaluation {
    let mut allowed = None;
    for statement in documents.iter().flat_map(statements) {
        if !covers(statement, action, arn) {
            continue;
        }
        match (statement["Effect"].as_str(), conditions_hold(statement, context)) {
            (Some("Deny"), Ok(true)) => return Evaluation::ExplicitDeny,
            (Some("Allow"), Ok(true)) => allowed = Some(Evaluation::Allow),
            (Some("Allow"), Err(keys)) if allowed.is_none() => allowed = Some(Evaluation::Conditional(keys)),
            // A Deny under unsettled conditions may or may not apply.
            (Some("Deny"), Err(keys)) if allowed != Some(Evaluation::Allow) => {
                allowed = Some(Evaluation::Conditional(keys))
            }
            _ => {}
        }
    }
    allowed.unwrap_or(Evaluation::ImplicitDeny)
}

/// Whether the trust policy lets Lambda assume the role.
pub fn trusts_lambda(trust: &Value) -> bool {
    statements(trust).iter().any(|s| {
        s["Effect"] == "Allow"
            && strings(&s["Action"]).contains(&"sts:AssumeRole")
            && strings(&s["Principal"]["Service"]).contains(&"lambda.amazonaws.com")
    })
}

/// The function-URL actions a function's resource policy grants the public: since October 2025
/// a public URL needs both `lambda:InvokeFunctionUrl` (auth type NONE) and
/// `lambda:InvokeFunction` restricted to calls via the function URL. Returns each action with
/// whether a statement grants it.
pub fn url_permissions(policy: &Value) -> [(&'static str, bool); 2] {
    let all = statements(policy);
    let public =
        |s: &&&Value| s["Effect"] == "Allow" && (s["Principal"] == "*" || s["Principal"]["AWS"] == "*");
    // AWS renders the request's parameters as conditions; moto keeps them as top-level fields of
    // the statement. Both say the same thing.
    let invoke_url = all.iter().filter(public).any(|s| {
        let auth_type = match &s["Condition"]["StringEquals"]["lambda:FunctionUrlAuthType"] {
            Value::Null => &s["FunctionUrlAuthType"],
            condition => condition,
        };
        strings(&s["Action"]).contains(&"lambda:InvokeFunctionUrl") && *auth_type == "NONE"
    });
    let invoke_via_url = all.iter().filter(public).any(|s| {
        let via_url = match &s["Condition"]["Bool"]["lambda:InvokedViaFunctionUrl"] {
            Value::Null => &s["InvokedViaFunctionUrl"],
            condition => condition,
        };
        strings(&s["Action"]).contains(&"lambda:InvokeFunction") && (*via_url == "true" || *via_url == true)
    });
    [("lambda:InvokeFunctionUrl", invoke_url), ("lambda:InvokeFunction", invoke_via_url)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs_match_like_iam() {
        assert!(glob("dynamodb:*", "dynamodb:Query", true));
        assert!(glob("DynamoDB:get*", "dynamodb:GetItem", true));
        assert!(glob("arn:aws:s3:::b/*", "arn:aws:s3:::b/x/y", false));
        assert!(!glob("arn:aws:s3:::b", "arn:aws:s3:::b/x", false));
        assert!(glob("*", "anything", false));
        assert!(glob("a?c", "abc", false) && !glob("a?c", "ac", false));
    }

    #[test]
    fn policies_are_evaluated_deny_first() {
        let docs = [json!({"Statement": [
            {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
            {"Effect": "Deny", "Action": ["dynamodb:DeleteItem"], "Resource": "*"}
        ]})];
        assert_eq!(evaluate(&docs, "dynamodb:Query", "arn:x", &[]), Evaluation::Allow);
        assert_eq!(evaluate(&docs, "dynamodb:DeleteItem", "arn:x", &[]), Evaluation::ExplicitDeny);
        assert_eq!(evaluate(&docs, "s3:GetObject", "arn:x", &[]), Evaluation::ImplicitDeny);
    }

    #[test]
    fn conditions_are_settled_by_the_request_context() {
        let docs = [json!({"Statement": [{
            "Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::1:role/r",
            "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
        }]})];
        let lambda = [("iam:PassedToService", "lambda.amazonaws.com")];
        assert_eq!(evaluate(&docs, "iam:PassRole", "arn:aws:iam::1:role/r", &lambda), Evaluation::Allow);
        let ec2 = [("iam:PassedToService", "ec2.amazonaws.com")];
        assert_eq!(evaluate(&docs, "iam:PassRole", "arn:aws:iam::1:role/r", &ec2), Evaluation::ImplicitDeny);
        assert!(matches!(
            evaluate(&docs, "iam:PassRole", "arn:aws:iam::1:role/r", &[]),
            Evaluation::Conditional(_)
        ));
    }

    #[test]
    fn not_action_variables_and_boundaries_are_understood() {
        let docs = vec![json!({"Statement": [
            {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
            {"Effect": "Allow", "Action": "iam:GetUser", "Resource": "arn:aws:iam::1:user/${aws:username}"}
        ]})];
        assert_eq!(evaluate(&docs, "iam:CreateRole", "arn:x", &[]), Evaluation::ImplicitDeny);
        assert_eq!(evaluate(&docs, "iam:GetUser", "arn:aws:iam::1:user/dev", &[]), Evaluation::Allow);
        let bounded = Policies {
            identity: docs,
            boundary: Some(json!({"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}})),
            ..Policies::default()
        };
        assert_eq!(bounded.evaluate("s3:ListBucket", "arn:aws:s3:::b", &[]), Evaluation::Allow);
        assert_eq!(bounded.evaluate("dynamodb:Query", "arn:x", &[]), Evaluation::BoundaryDeny);
    }

    #[test]
    fn a_function_url_needs_both_statements() {
        let only_url = json!({"Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunctionUrl",
            "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}
        }]});
        assert_eq!(
            url_permissions(&only_url),
            [("lambda:InvokeFunctionUrl", true), ("lambda:InvokeFunction", false)]
        );
        let mut both = only_url.clone();
        both["Statement"].as_array_mut().unwrap().push(json!({
            "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunction",
            "Condition": {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}
        }));
        assert!(url_permissions(&both).iter().all(|(_, ok)| *ok));
    }

    #[test]
    fn motos_flattened_permission_statements_are_understood() {
        let moto = json!({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunctionUrl", "FunctionUrlAuthType": "NONE"},
            {"Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunction", "InvokedViaFunctionUrl": true}
        ]});
        assert!(url_permissions(&moto).iter().all(|(_, ok)| *ok));
    }

    #[test]
    fn url_encoded_documents_are_decoded() {
        let doc = parse_document("%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%7D%5D%7D");
        assert_eq!(doc["Statement"][0]["Effect"], "Allow");
    }

    #[test]
    fn the_trust_policy_must_name_lambda() {
        let trust = json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
        assert!(trusts_lambda(&trust));
        let ec2 = json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
        assert!(!trusts_lambda(&ec2));
    }
}
