//! IAM policy documents as types, and the evaluation of identity policies for one request.
//!
//! One model serves rendering (the policies deploy writes and `--print-policy` prints),
//! evaluation (check-iam, where simulation is unavailable), and drift and over-grant checks.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The policy language version every document this project writes uses.
pub const VERSION: &str = "2012-10-17";

/// A policy document: identity, trust, resource or boundary policy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    /// The language version (`2012-10-17`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `Statement` may be one object or a list; both read as a list.
    #[serde(default, deserialize_with = "one_or_many_statements")]
    pub statement: Vec<Statement>,
}

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// The statement grants.
    Allow,
    /// The statement denies, whatever else grants.
    Deny,
}

/// One statement. Fields AWS does not define (moto writes a URL permission's parameters as
/// top-level fields) are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    /// The statement's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Allow or Deny.
    pub effect: Effect,
    /// Who (resource and trust policies only): `"*"`, `{"AWS": …}`, `{"Service": …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Value>,
    /// The actions covered (patterns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Strings>,
    /// Every action but these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_action: Option<Strings>,
    /// The resources covered (ARN patterns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Strings>,
    /// Every resource but these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_resource: Option<Strings>,
    /// Operator → condition key → value or values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<BTreeMap<String, BTreeMap<String, Value>>>,
    /// Anything else the document holds.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A string or a list of strings (as IAM allows); always written as a list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Strings(pub Vec<String>);

impl Strings {
    /// Whether any of the strings equals `s`.
    pub fn contains(&self, s: &str) -> bool {
        self.0.iter().any(|x| x == s)
    }

    /// The strings.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl<S: Into<String>> FromIterator<S> for Strings {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Strings(iter.into_iter().map(Into::into).collect())
    }
}

impl Serialize for Strings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Strings(value_strings(&Value::deserialize(deserializer)?)))
    }
}

/// A JSON value read as IAM reads a condition value or an action list: a scalar is one string.
pub fn value_strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Bool(b) => vec![b.to_string()],
        Value::Number(n) => vec![n.to_string()],
        Value::Array(list) => list.iter().flat_map(value_strings).collect(),
        _ => Vec::new(),
    }
}

fn one_or_many_statements<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Statement>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Box<Statement>),
        Many(Vec<Statement>),
    }
    Ok(match Option::<OneOrMany>::deserialize(deserializer)? {
        Some(OneOrMany::One(s)) => vec![*s],
        Some(OneOrMany::Many(list)) => list,
        None => Vec::new(),
    })
}

impl PolicyDocument {
    /// A document of these statements, version `2012-10-17`.
    pub fn new(statement: Vec<Statement>) -> Self {
        PolicyDocument { version: Some(VERSION.to_owned()), statement }
    }

    /// Parse a document as IAM returns it: URL-encoded (IAM's API) or plain JSON.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        let trimmed = text.trim_start();
        if trimmed.starts_with('{') {
            return serde_json::from_str(trimmed);
        }
        let decoded =
            percent_encoding::percent_decode_str(&text.replace('+', " ")).decode_utf8_lossy().into_owned();
        serde_json::from_str(&decoded)
    }

    /// The document as JSON.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Whether the trust policy lets Lambda assume the role.
    pub fn trusts_lambda(&self) -> bool {
        self.statement.iter().any(|s| {
            s.effect == Effect::Allow
                && s.action.as_ref().is_some_and(|a| a.contains("sts:AssumeRole"))
                && s.principal_values("Service").iter().any(|p| p == "lambda.amazonaws.com")
        })
    }

    /// The function-URL actions a function's resource policy grants the public: since October
    /// 2025 a public URL needs both `lambda:InvokeFunctionUrl` (auth type NONE) and
    /// `lambda:InvokeFunction` restricted to calls via the function URL. Returns each action
    /// with whether a statement grants it.
    pub fn url_permissions(&self) -> [(&'static str, bool); 2] {
        let public: Vec<&Statement> =
            self.statement.iter().filter(|s| s.effect == Effect::Allow && s.is_public()).collect();
        // AWS renders the request's parameters as conditions; moto keeps them as top-level
        // fields of the statement. Both say the same thing.
        let grants = |action: &str, operator: &str, key: &str, field: &str, expected: &str| {
            public.iter().any(|s| {
                let value = s
                    .condition_values(operator, key)
                    .or_else(|| s.extra.get(field).map(value_strings))
                    .unwrap_or_default();
                s.action.as_ref().is_some_and(|a| a.contains(action)) && value.iter().any(|v| v == expected)
            })
        };
        [
            (
                "lambda:InvokeFunctionUrl",
                grants(
                    "lambda:InvokeFunctionUrl",
                    "StringEquals",
                    "lambda:FunctionUrlAuthType",
                    "FunctionUrlAuthType",
                    "NONE",
                ),
            ),
            (
                "lambda:InvokeFunction",
                grants(
                    "lambda:InvokeFunction",
                    "Bool",
                    "lambda:InvokedViaFunctionUrl",
                    "InvokedViaFunctionUrl",
                    "true",
                ),
            ),
        ]
    }
}

impl Statement {
    /// An Allow statement of `actions` on `resources`.
    pub fn allow(sid: impl Into<String>, actions: Strings, resources: Strings) -> Self {
        Statement {
            sid: Some(sid.into()),
            effect: Effect::Allow,
            principal: None,
            action: Some(actions),
            not_action: None,
            resource: Some(resources),
            not_resource: None,
            condition: None,
            extra: BTreeMap::new(),
        }
    }

    /// Add a `StringEquals` condition.
    pub fn when_equals(mut self, key: &str, value: &str) -> Self {
        self.condition
            .get_or_insert_with(BTreeMap::new)
            .entry("StringEquals".to_owned())
            .or_default()
            .insert(key.to_owned(), Value::String(value.to_owned()));
        self
    }

    fn is_public(&self) -> bool {
        match &self.principal {
            Some(Value::String(s)) => s == "*",
            Some(Value::Object(_)) => self.principal_values("AWS").iter().any(|p| p == "*"),
            _ => false,
        }
    }

    /// The principals of one kind (`AWS`, `Service`, `Federated`) the statement names.
    pub fn principal_values(&self, kind: &str) -> Vec<String> {
        self.principal.as_ref().and_then(|p| p.get(kind)).map(value_strings).unwrap_or_default()
    }

    fn condition_values(&self, operator: &str, key: &str) -> Option<Vec<String>> {
        self.condition.as_ref()?.get(operator)?.get(key).map(value_strings)
    }

    /// Whether `Action`/`NotAction` and `Resource`/`NotResource` cover the request.
    pub fn covers(&self, action: &str, arn: &str) -> bool {
        let action_hit = match &self.not_action {
            Some(not) => !not.iter().any(|p| glob(p, action, true)),
            None => self.action.iter().flat_map(Strings::iter).any(|p| glob(p, action, true)),
        };
        // `${aws:username}`-style variables match any one name here.
        let resource_glob = |p: &str| glob(&without_variables(p), arn, false);
        let resource_hit = match &self.not_resource {
            Some(not) => !not.iter().any(resource_glob),
            None => self.resource.iter().flat_map(Strings::iter).any(resource_glob),
        };
        action_hit && resource_hit
    }

    /// Whether the conditions hold for the request `context` (condition key → value):
    /// `Ok(true)` hold, `Ok(false)` do not, `Err(keys)` cannot tell (operators or keys the
    /// context does not settle).
    pub fn conditions_hold(&self, context: &[(&str, &str)]) -> Result<bool, Vec<String>> {
        let Some(operators) = &self.condition else { return Ok(true) };
        let mut unknown = Vec::new();
        for (operator, keys) in operators {
            for (key, expected) in keys {
                let actual = context.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| *v);
                let matches = |p: &String| match operator.as_str() {
                    "StringEquals" => Some(p == actual?),
                    "StringLike" => Some(glob(p, actual?, false)),
                    _ => None,
                };
                let results: Vec<Option<bool>> = value_strings(expected).iter().map(matches).collect();
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
}

/// What identity policies (and a permissions boundary, if any) say about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evaluation {
    /// Allowed.
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

/// What identity `documents` say about `action` on `arn`, Deny first, with the request's
/// condition `context` (e.g. `iam:PassedToService`).
pub fn evaluate(
    documents: &[PolicyDocument],
    action: &str,
    arn: &str,
    context: &[(&str, &str)],
) -> Evaluation {
    let mut allowed = None;
    for statement in documents.iter().flat_map(|d| &d.statement) {
        if !statement.covers(action, arn) {
            continue;
        }
        match (statement.effect, statement.conditions_hold(context)) {
            (Effect::Deny, Ok(true)) => return Evaluation::ExplicitDeny,
            (Effect::Allow, Ok(true)) => allowed = Some(Evaluation::Allow),
            (Effect::Allow, Err(keys)) if allowed.is_none() => allowed = Some(Evaluation::Conditional(keys)),
            // A Deny under unsettled conditions may or may not apply.
            (Effect::Deny, Err(keys)) if allowed != Some(Evaluation::Allow) => {
                allowed = Some(Evaluation::Conditional(keys))
            }
            _ => {}
        }
    }
    allowed.unwrap_or(Evaluation::ImplicitDeny)
}

/// Identity policies first (a Deny anywhere wins), then the boundary.
pub fn evaluate_with_boundary(
    identity: &[PolicyDocument],
    boundary: Option<&PolicyDocument>,
    action: &str,
    arn: &str,
    context: &[(&str, &str)],
) -> Evaluation {
    let verdict = evaluate(identity, action, arn, context);
    match (&verdict, boundary) {
        (Evaluation::Allow | Evaluation::Conditional(_), Some(boundary)) => {
            match evaluate(std::slice::from_ref(boundary), action, arn, context) {
                Evaluation::Allow => verdict,
                Evaluation::Conditional(keys) if verdict == Evaluation::Allow => {
                    Evaluation::Conditional(keys)
                }
                Evaluation::ExplicitDeny => Evaluation::ExplicitDeny,
                Evaluation::Conditional(_) => verdict,
                _ => Evaluation::BoundaryDeny,
            }
        }
        _ => verdict,
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
        if p.get(pi).is_some_and(|c| *c == '?' || Some(c) == t.get(ti)) {
            pi += 1;
            ti += 1;
        } else if p.get(pi) == Some(&'*') {
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
    p.iter().skip(pi).all(|c| *c == '*')
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(value: Value) -> PolicyDocument {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn globs_match_like_iam() {
        assert!(glob("dynamodb:*", "DynamoDB:GetItem", true));
        assert!(glob("arn:aws:s3:::b/*", "arn:aws:s3:::b/u/1.m4a", false));
        assert!(!glob("arn:aws:s3:::b/*", "arn:aws:s3:::b", false));
        assert!(glob("iam:Get?ole", "iam:GetRole", true));
    }

    #[test]
    fn policies_are_evaluated_deny_first() {
        let d = doc(json!({"Statement": [
            {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
            {"Effect": "Deny", "Action": ["dynamodb:DeleteItem"], "Resource": "*"}
        ]}));
        assert_eq!(evaluate(std::slice::from_ref(&d), "dynamodb:GetItem", "arn:x", &[]), Evaluation::Allow);
        assert_eq!(evaluate(&[d], "dynamodb:DeleteItem", "arn:x", &[]), Evaluation::ExplicitDeny);
    }

    #[test]
    fn conditions_are_settled_by_the_request_context() {
        let d = doc(json!({"Statement": {
            "Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::1:role/r",
            "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
        }}));
        let arn = "arn:aws:iam::1:role/r";
        let lambda = [("iam:PassedToService", "lambda.amazonaws.com")];
        assert_eq!(evaluate(std::slice::from_ref(&d), "iam:PassRole", arn, &lambda), Evaluation::Allow);
        let ec2 = [("iam:PassedToService", "ec2.amazonaws.com")];
        assert_eq!(evaluate(std::slice::from_ref(&d), "iam:PassRole", arn, &ec2), Evaluation::ImplicitDeny);
        assert_eq!(
            evaluate(&[d], "iam:PassRole", arn, &[]),
            Evaluation::Conditional(vec!["StringEquals iam:PassedToService".into()])
        );
    }

    #[test]
    fn not_action_variables_and_boundaries_are_understood() {
        let identity = doc(json!({"Statement": [
            {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
            {"Effect": "Allow", "Action": "iam:GetUser", "Resource": "arn:aws:iam::1:user/${aws:username}"}
        ]}));
        let ids = [identity];
        assert_eq!(evaluate(&ids, "s3:GetObject", "arn:aws:s3:::b/k", &[]), Evaluation::Allow);
        assert_eq!(evaluate(&ids, "iam:GetUser", "arn:aws:iam::1:user/ann", &[]), Evaluation::Allow);
        assert_eq!(evaluate(&ids, "iam:GetRole", "arn:aws:iam::1:role/r", &[]), Evaluation::ImplicitDeny);
        let boundary = doc(json!({"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}));
        assert_eq!(
            evaluate_with_boundary(&ids, Some(&boundary), "dynamodb:GetItem", "arn:t", &[]),
            Evaluation::BoundaryDeny
        );
        assert_eq!(
            evaluate_with_boundary(&ids, Some(&boundary), "s3:GetObject", "arn:aws:s3:::b/k", &[]),
            Evaluation::Allow
        );
    }

    #[test]
    fn a_function_url_needs_both_statements() {
        let url_only = doc(json!({"Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunctionUrl",
            "Resource": "arn:f", "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}
        }]}));
        assert_eq!(
            url_only.url_permissions(),
            [("lambda:InvokeFunctionUrl", true), ("lambda:InvokeFunction", false)]
        );
        let mut both = url_only;
        both.statement.push(
            serde_json::from_value(json!({
                "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "lambda:InvokeFunction",
                "Resource": "arn:f", "Condition": {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}
            }))
            .unwrap(),
        );
        assert_eq!(
            both.url_permissions(),
            [("lambda:InvokeFunctionUrl", true), ("lambda:InvokeFunction", true)]
        );
    }

    #[test]
    fn motos_flattened_permission_statements_are_understood() {
        let d = doc(json!({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunctionUrl", "FunctionUrlAuthType": "NONE"},
            {"Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunction", "InvokedViaFunctionUrl": true}
        ]}));
        assert_eq!(
            d.url_permissions(),
            [("lambda:InvokeFunctionUrl", true), ("lambda:InvokeFunction", true)]
        );
    }

    #[test]
    fn url_encoded_documents_are_decoded() {
        let d = PolicyDocument::parse(
            "%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3A*%22%7D%5D%7D",
        )
        .unwrap();
        assert_eq!(d.statement[0].effect, Effect::Allow);
        assert!(PolicyDocument::parse("%7Bnot json").is_err());
    }

    #[test]
    fn the_trust_policy_must_name_lambda() {
        let trust = |service: &str| {
            doc(
                json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}),
            )
        };
        assert!(trust("lambda.amazonaws.com").trusts_lambda());
        assert!(!trust("ec2.amazonaws.com").trusts_lambda());
    }

    #[test]
    fn rendering_keeps_the_order_iam_users_know_and_round_trips() {
        let s = Statement::allow(
            "Tables",
            ["dynamodb:GetItem"].into_iter().collect(),
            ["arn:t"].into_iter().collect(),
        )
        .when_equals("iam:PassedToService", "lambda.amazonaws.com");
        let d = PolicyDocument::new(vec![s]);
        let text = serde_json::to_string(&d).unwrap();
        assert_eq!(
            text,
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"Tables","Effect":"Allow","Action":["dynamodb:GetItem"],"Resource":["arn:t"],"Condition":{"StringEquals":{"iam:PassedToService":"lambda.amazonaws.com"}}}]}"#
        );
        assert_eq!(PolicyDocument::parse(&text).unwrap(), d);
    }
}
