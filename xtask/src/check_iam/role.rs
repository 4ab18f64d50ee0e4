//! The Lambda execution role and the function URL, read from IAM and Lambda: the role's trust
//! policy, what its own policies grant (when simulation is unavailable), and the function URL's
//! resource policy.

use aws_sdk_iam::error::SdkError;
use serde_json::Value;

use super::classify::Denial;
use super::{Decision, Method, Row};
use crate::aws::Aws;

pub const ROLE: &str = "execution-role";

/// The role's trust policy and policy documents; `None` if the role does not exist.
pub struct RolePolicies {
    pub trust: Value,
    pub documents: Vec<Value>,
}

pub async fn read_role(aws: &Aws, role: &str) -> anyhow::Result<Option<RolePolicies>> {
    let iam = aws_sdk_iam::Client::new(&aws.sdk);
    let found = match iam.get_role().role_name(role).send().await {
        Ok(output) => output.role,
        Err(SdkError::ServiceError(e)) if e.err().is_no_such_entity_exception() => return Ok(None),
        Err(e) => return Err(crate::aws::explain(e, "iam:GetRole", role, aws)),
    };
    let trust = found
        .as_ref()
        .and_then(|r| r.assume_role_policy_document())
        .map(parse_document)
        .unwrap_or(Value::Null);
    let mut documents = Vec::new();
    let inline = iam.list_role_policies().role_name(role).send().await;
    for name in inline.map_err(|e| crate::aws::explain(e, "iam:ListRolePolicies", role, aws))?.policy_names()
    {
        let policy = iam.get_role_policy().role_name(role).policy_name(name).send().await;
        let policy = policy.map_err(|e| crate::aws::explain(e, "iam:GetRolePolicy", role, aws))?;
        documents.push(parse_document(policy.policy_document()));
    }
    let attached = iam.list_attached_role_policies().role_name(role).send().await;
    let attached = attached.map_err(|e| crate::aws::explain(e, "iam:ListAttachedRolePolicies", role, aws))?;
    for policy in attached.attached_policies() {
        let Some(arn) = policy.policy_arn() else { continue };
        let meta = iam.get_policy().policy_arn(arn).send().await;
        let meta = meta.map_err(|e| crate::aws::explain(e, "iam:GetPolicy", arn, aws))?;
        let Some(version) = meta.policy.and_then(|p| p.default_version_id) else { continue };
        let doc = iam.get_policy_version().policy_arn(arn).version_id(version).send().await;
        let doc = doc.map_err(|e| crate::aws::explain(e, "iam:GetPolicyVersion", arn, aws))?;
        if let Some(text) = doc.policy_version.and_then(|v| v.document) {
            documents.push(parse_document(&text));
        }
    }
    Ok(Some(RolePolicies { trust, documents }))
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

fn statements(document: &Value) -> Vec<&Value> {
    match &document["Statement"] {
        Value::Array(list) => list.iter().collect(),
        Value::Object(_) => vec![&document["Statement"]],
        _ => Vec::new(),
    }
}

fn strings(value: &Value) -> Vec<&str> {
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

/// What the role's own policies say about one action on one ARN (identity policies only; SCPs
/// and boundaries are invisible here, which is why simulation is tried first).
pub fn evaluate(documents: &[Value], action: &str, arn: &str) -> Decision {
    let mut allowed = None;
    for statement in documents.iter().flat_map(statements) {
        let action_hit = strings(&statement["Action"]).iter().any(|p| glob(p, action, true));
        let resource_hit = strings(&statement["Resource"]).iter().any(|p| glob(p, arn, false));
        if !(action_hit && resource_hit) {
            continue;
        }
        let conditional = statement.get("Condition").is_some_and(|c| !c.is_null());
        match statement["Effect"].as_str() {
            Some("Deny") if !conditional => return Decision::Deny { denial: Denial::ExplicitIdentity },
            Some("Allow") if !conditional => allowed = Some(Decision::Allow),
            Some("Allow") if allowed.is_none() => {
                allowed = Some(Decision::Conditional {
                    missing_context: vec!["(statement has a Condition)".into()],
                })
            }
            _ => {}
        }
    }
    allowed.unwrap_or(Decision::Deny { denial: Denial::Implicit })
}

/// Whether the trust policy lets Lambda assume the role.
pub fn trusts_lambda(trust: &Value) -> bool {
    statements(trust).iter().any(|s| {
        s["Effect"] == "Allow"
            && strings(&s["Action"]).contains(&"sts:AssumeRole")
            && strings(&s["Principal"]["Service"]).contains(&"lambda.amazonaws.com")
    })
}

/// The two statements a public function URL needs since October 2025, from the function's
/// resource policy: `lambda:InvokeFunctionUrl` with auth type NONE, and `lambda:InvokeFunction`
/// restricted to calls via the function URL.
pub fn url_permissions(policy: &Value, function_arn: &str) -> Vec<Row> {
    let public =
        |s: &&&Value| s["Effect"] == "Allow" && (s["Principal"] == "*" || s["Principal"]["AWS"] == "*");
    let all = statements(policy);
    // AWS renders the request's parameters as conditions; moto keeps them as top-level fields
    // of the statement. Both say the same thing.
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
    let row = |action: &str, ok: bool| {
        let decision = if ok { Decision::Allow } else { Decision::Deny { denial: Denial::Implicit } };
        let mut row = Row::new("function-url", "*", action, function_arn, decision, Method::Policy);
        if !ok {
            row.fix =
                Some("run `cargo xtask deploy` to add the function URL's resource-policy statement".into());
        }
        row
    };
    vec![row("lambda:InvokeFunctionUrl", invoke_url), row("lambda:InvokeFunction", invoke_via_url)]
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
        assert_eq!(evaluate(&docs, "dynamodb:Query", "arn:x"), Decision::Allow);
        assert!(matches!(
            evaluate(&docs, "dynamodb:DeleteItem", "arn:x"),
            Decision::Deny { denial: Denial::ExplicitIdentity }
        ));
        assert!(matches!(
            evaluate(&docs, "s3:GetObject", "arn:x"),
            Decision::Deny { denial: Denial::Implicit }
        ));
    }

    #[test]
    fn url_encoded_documents_are_decoded() {
        let doc = parse_document("%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%7D%5D%7D");
        assert_eq!(doc["Statement"][0]["Effect"], "Allow");
    }

    #[test]
    fn a_function_url_needs_both_statements() {
        let only_url = json!({"Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunctionUrl",
            "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}
        }]});
        let rows = url_permissions(&only_url, "arn:f");
        assert_eq!(rows[0].decision, Decision::Allow);
        assert!(matches!(rows[1].decision, Decision::Deny { .. }), "InvokeFunction via URL is missing");
        let mut both = only_url.clone();
        both["Statement"].as_array_mut().unwrap().push(json!({
            "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunction",
            "Condition": {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}
        }));
        assert!(url_permissions(&both, "arn:f").iter().all(|r| r.decision == Decision::Allow));
    }

    #[test]
    fn motos_flattened_permission_statements_are_understood() {
        let moto = json!({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunctionUrl", "FunctionUrlAuthType": "NONE"},
            {"Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunction", "InvokedViaFunctionUrl": true}
        ]});
        assert!(url_permissions(&moto, "arn:f").iter().all(|r| r.decision == Decision::Allow));
    }

    #[test]
    fn the_trust_policy_must_name_lambda() {
        let trust = json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
        assert!(trusts_lambda(&trust));
        let ec2 = json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
        assert!(!trusts_lambda(&ec2));
    }
}
