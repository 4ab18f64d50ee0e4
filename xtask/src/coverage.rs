//! Coverage of the permission catalogues by the calls the code really makes.
//!
//! `cargo xtask test` has every emulator record every request. Each recorded request is
//! attributed to the principal that made it, by the app name in its user agent
//! (`app/recording-server` for the service, `app/recording-server-xtask-<task>` for a task),
//! mapped to the IAM action or actions AWS authorizes it with (dependent actions included:
//! `iam:PassRole` for `CreateFunction`, tag-on-create), and checked against that principal's
//! catalogue: `app::permissions` for the service, `xtask::catalogue` for each task.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

use crate::catalogue::{Need, Task};

/// Who made a recorded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Principal {
    /// The service (its SDK clients, or a URL it presigned: only the service presigns).
    Service,
    /// An xtask task.
    Task(Task),
    /// The test harness itself (fixtures, emulator setup): not a principal with a catalogue.
    Harness,
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::Service => f.write_str("the service"),
            Principal::Task(task) => write!(f, "`cargo xtask {}`", task.name()),
            Principal::Harness => f.write_str("the test harness"),
        }
    }
}

/// One recorded AWS request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub principal: Principal,
    /// The signing name: `dynamodb`, `s3`, `lambda`, `iam`, `sts`, `logs`.
    pub service: String,
    /// The API operation, e.g. `PutItem`, `CreateFunction`.
    pub operation: String,
    /// The IAM actions AWS checks for it; empty when the mapping does not know the operation.
    pub actions: Vec<String>,
}

/// Read one moto recording (JSON lines); `None` for requests to moto's own API.
pub fn parse_line(line: &str) -> anyhow::Result<Option<Call>> {
    let request: Value = serde_json::from_str(line).context("a recorded request is not JSON")?;
    let url = request["url"].as_str().unwrap_or_default();
    let url = reqwest::Url::parse(url).with_context(|| format!("a recorded request has a bad URL: {url}"))?;
    if url.path().starts_with("/moto-api") {
        return Ok(None);
    }
    let headers: BTreeMap<String, String> = request["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    let query: BTreeMap<String, String> =
        url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let body = body_text(&request);
    let header = |name: &str| headers.get(name).map(String::as_str).unwrap_or_default();

    let presigned = query.contains_key("X-Amz-Signature");
    let agent = format!("{} {}", header("x-amz-user-agent"), header("user-agent"));
    let principal = principal_of(&agent, presigned);
    let credential = query
        .get("X-Amz-Credential")
        .map(String::as_str)
        .unwrap_or_else(|| header("authorization").split("Credential=").nth(1).unwrap_or_default());
    let service = credential.split('/').nth(3).unwrap_or_default().to_owned();
    let method = request["method"].as_str().unwrap_or_default();
    let segments: Vec<&str> =
        url.path().trim_start_matches('/').split('/').filter(|s| !s.is_empty()).collect();

    let (operation, actions) = if let Some(target) = headers.get("x-amz-target") {
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        let actions = json_protocol_actions(&service, &operation, &body);
        (operation, actions)
    } else if let Some(action) = query_action(&query, &body) {
        let actions = query_protocol_actions(&service, &action, &body);
        (action, actions)
    } else if service == "lambda" {
        let operation = lambda_operation(method, &segments).unwrap_or("unknown").to_owned();
        let actions = lambda_actions(&operation, &body);
        (operation, actions)
    } else if service == "s3" {
        let keys: BTreeSet<&str> = query
            .keys()
            .map(String::as_str)
            .filter(|k| !k.starts_with("X-Amz-") && !S3_LIST_PARAMETERS.contains(k))
            .collect();
        match s3_operation(method, &segments, &keys, headers.contains_key("x-amz-copy-source")) {
            Some((operation, actions)) => {
                (operation.to_owned(), actions.iter().map(|a| a.to_string()).collect())
            }
            None => (
                format!("{method} {}?{}", url.path(), keys.into_iter().collect::<Vec<_>>().join("&")),
                vec![],
            ),
        }
    } else {
        (format!("{method} {}", url.path()), Vec::new())
    };
    Ok(Some(Call { principal, service, operation, actions }))
}

fn principal_of(agent: &str, presigned: bool) -> Principal {
    for token in agent.split_whitespace() {
        if let Some(task) =
            token.strip_prefix("app/").and_then(|n| n.strip_prefix(crate::aws::XTASK_APP_PREFIX))
        {
            let task = Task::ALL.into_iter().find(|t| t.name() == task);
            if let Some(task) = task {
                return Principal::Task(task);
            }
        }
        if token == format!("app/{}", app::state::APP_NAME) {
            return Principal::Service;
        }
    }
    if presigned {
        Principal::Service
    } else {
        Principal::Harness
    }
}

fn body_text(request: &Value) -> String {
    let body = request["body"].as_str().unwrap_or_default();
    if request["body_encoded"].as_bool() != Some(true) {
        return body.to_owned();
    }
    aws_smithy_types::base64::decode(body)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The `Action` of a query-protocol request (IAM, STS), from its URL or form body.
fn query_action(query: &BTreeMap<String, String>, body: &str) -> Option<String> {
    if let Some(action) = query.get("Action") {
        return Some(action.clone());
    }
    body.split('&').find_map(|p| p.strip_prefix("Action=")).map(str::to_owned)
}

/// DynamoDB and CloudWatch Logs: the action is named after the operation, plus tag-on-create.
fn json_protocol_actions(service: &str, operation: &str, body: &str) -> Vec<String> {
    let prefix = match service {
        "dynamodb" if operation.starts_with("Transact") || operation.contains("Statement") => {
            return Vec::new()
        }
        "dynamodb" => "dynamodb",
        "logs" => "logs",
        _ => return Vec::new(),
    };
    let mut actions = vec![format!("{prefix}:{operation}")];
    if service == "dynamodb" && operation == "CreateTable" && body.contains("\"Tags\"") {
        actions.push("dynamodb:TagResource".into());
    }
    actions
}

/// IAM and STS: the action is named after the operation, plus tag-on-create.
fn query_protocol_actions(service: &str, action: &str, body: &str) -> Vec<String> {
    if !matches!(service, "iam" | "sts") {
        return Vec::new();
    }
    let mut actions = vec![format!("{service}:{action}")];
    if action == "CreateRole" && body.contains("Tags.member") {
        actions.push("iam:TagRole".into());
    }
    actions
}

/// Lambda's REST routes (`/2015-03-31/functions/{name}/...`, `/2021-10-31/functions/{name}/url`,
/// `/2017-03-31/tags/{arn}`).
fn lambda_operation(method: &str, segments: &[&str]) -> Option<&'static str> {
    let rest = segments.get(1..).unwrap_or_default();
    Some(match (method, rest) {
        ("POST", ["functions"]) => "CreateFunction",
        ("GET", ["functions"]) => "ListFunctions",
        ("GET", ["functions", _]) => "GetFunction",
        ("DELETE", ["functions", _]) => "DeleteFunction",
        ("GET", ["functions", _, "configuration"]) => "GetFunctionConfiguration",
        ("PUT", ["functions", _, "configuration"]) => "UpdateFunctionConfiguration",
        ("PUT", ["functions", _, "code"]) => "UpdateFunctionCode",
        ("GET", ["functions", _, "policy"]) => "GetPolicy",
        ("POST", ["functions", _, "policy"]) => "AddPermission",
        ("DELETE", ["functions", _, "policy", _]) => "RemovePermission",
        ("GET", ["functions", _, "url"]) => "GetFunctionUrlConfig",
        ("POST", ["functions", _, "url"]) => "CreateFunctionUrlConfig",
        ("PUT", ["functions", _, "url"]) => "UpdateFunctionUrlConfig",
        ("DELETE", ["functions", _, "url"]) => "DeleteFunctionUrlConfig",
        ("GET", ["functions", _, "concurrency"]) => "GetFunctionConcurrency",
        ("PUT", ["functions", _, "concurrency"]) => "PutFunctionConcurrency",
        ("DELETE", ["functions", _, "concurrency"]) => "DeleteFunctionConcurrency",
        ("POST", ["functions", _, "invocations"]) => "Invoke",
        ("POST", ["tags", _]) => "TagResource",
        ("GET", ["tags", _]) => "ListTags",
        ("DELETE", ["tags", _]) => "UntagResource",
        _ => return None,
    })
}

fn lambda_actions(operation: &str, body: &str) -> Vec<String> {
    let action = match operation {
        "unknown" => return Vec::new(),
        "Invoke" => "lambda:InvokeFunction".to_owned(),
        other => format!("lambda:{other}"),
    };
    let mut actions = vec![action];
    // The role is passed to Lambda on create, and on a configuration update that names it.
    if operation == "CreateFunction"
        || (operation == "UpdateFunctionConfiguration" && body.contains("\"Role\""))
    {
        actions.push("iam:PassRole".into());
    }
    if operation == "CreateFunction" && body.contains("\"Tags\"") {
        actions.push("lambda:TagResource".into());
    }
    actions
}

/// Query parameters that select no sub-resource (listing options, GetObject's response
/// overrides, the SDK's `x-id`).
const S3_LIST_PARAMETERS: &[&str] = &[
    "x-id",
    "response-content-disposition",
    "response-content-type",
    "response-cache-control",
    "response-content-encoding",
    "response-content-language",
    "response-expires",
    "list-type",
    "prefix",
    "delimiter",
    "max-keys",
    "continuation-token",
    "start-after",
    "encoding-type",
    "fetch-owner",
];

/// S3's REST routes, path style (`/bucket`, `/bucket/key`), and the actions each needs
/// (the S3 "actions, resources and condition keys" page).
fn s3_operation(
    method: &str,
    segments: &[&str],
    keys: &BTreeSet<&str>,
    copy: bool,
) -> Option<(&'static str, &'static [&'static str])> {
    let object = segments.len() > 1;
    let sub: Vec<&str> = keys.iter().copied().collect();
    Some(match (object, method, sub.as_slice()) {
        (false, "PUT", []) => ("CreateBucket", &["s3:CreateBucket"]),
        (false, "PUT", ["publicAccessBlock"]) => ("PutPublicAccessBlock", &["s3:PutBucketPublicAccessBlock"]),
        (false, "PUT", ["encryption"]) => ("PutBucketEncryption", &["s3:PutEncryptionConfiguration"]),
        (false, "PUT", ["policy"]) => ("PutBucketPolicy", &["s3:PutBucketPolicy"]),
        (false, "PUT", ["lifecycle"]) => {
            ("PutBucketLifecycleConfiguration", &["s3:PutLifecycleConfiguration"])
        }
        (false, "PUT", ["ownershipControls"]) => {
            ("PutBucketOwnershipControls", &["s3:PutBucketOwnershipControls"])
        }
        (false, "PUT", ["tagging"]) => ("PutBucketTagging", &["s3:PutBucketTagging"]),
        (false, "PUT", ["cors"]) => ("PutBucketCors", &["s3:PutBucketCORS"]),
        (false, "GET", []) => ("ListObjectsV2", &["s3:ListBucket"]),
        (false, "GET", ["publicAccessBlock"]) => ("GetPublicAccessBlock", &["s3:GetBucketPublicAccessBlock"]),
        (false, "GET", ["encryption"]) => ("GetBucketEncryption", &["s3:GetEncryptionConfiguration"]),
        (false, "GET", ["policy"]) => ("GetBucketPolicy", &["s3:GetBucketPolicy"]),
        (false, "GET", ["lifecycle"]) => {
            ("GetBucketLifecycleConfiguration", &["s3:GetLifecycleConfiguration"])
        }
        (false, "GET", ["ownershipControls"]) => {
            ("GetBucketOwnershipControls", &["s3:GetBucketOwnershipControls"])
        }
        (false, "GET", ["tagging"]) => ("GetBucketTagging", &["s3:GetBucketTagging"]),
        (false, "GET", ["cors"]) => ("GetBucketCors", &["s3:GetBucketCORS"]),
        (false, "GET", ["location"]) => ("GetBucketLocation", &["s3:GetBucketLocation"]),
        (false, "GET", ["versions"]) => ("ListObjectVersions", &["s3:ListBucketVersions"]),
        (false, "GET", ["uploads"]) => ("ListMultipartUploads", &["s3:ListBucketMultipartUploads"]),
        (false, "HEAD", []) => ("HeadBucket", &["s3:ListBucket"]),
        (false, "DELETE", []) => ("DeleteBucket", &["s3:DeleteBucket"]),
        (false, "DELETE", ["policy"]) => ("DeleteBucketPolicy", &["s3:DeleteBucketPolicy"]),
        (false, "POST", ["delete"]) => ("DeleteObjects", &["s3:DeleteObject"]),
        (true, "PUT", []) if copy => ("CopyObject", &["s3:PutObject", "s3:GetObject"]),
        (true, "PUT", []) => ("PutObject", &["s3:PutObject"]),
        (true, "PUT", ["partNumber", "uploadId"]) => ("UploadPart", &["s3:PutObject"]),
        (true, "POST", ["uploads"]) => ("CreateMultipartUpload", &["s3:PutObject"]),
        (true, "POST", ["uploadId"]) => ("CompleteMultipartUpload", &["s3:PutObject"]),
        (true, "GET", []) => ("GetObject", &["s3:GetObject"]),
        (true, "GET", ["uploadId"]) => ("ListParts", &["s3:ListMultipartUploadParts"]),
        (true, "HEAD", []) => ("HeadObject", &["s3:GetObject"]),
        (true, "DELETE", []) => ("DeleteObject", &["s3:DeleteObject"]),
        (true, "DELETE", ["uploadId"]) => ("AbortMultipartUpload", &["s3:AbortMultipartUpload"]),
        _ => return None,
    })
}

/// The actions a principal's catalogue grants. check-iam probes every task's actions, so its
/// catalogue is its own plus all of theirs.
pub fn catalogue_of(principal: Principal) -> Vec<&'static str> {
    let needs: Vec<Need> = match principal {
        Principal::Service => crate::catalogue::runtime_needs(),
        Principal::Task(Task::CheckIam) => crate::catalogue::deployer_needs(&Task::ALL),
        Principal::Task(task) => task.needs(),
        Principal::Harness => Vec::new(),
    };
    let mut actions: Vec<&str> = Vec::new();
    for need in needs {
        if !actions.contains(&need.action) {
            actions.push(need.action);
        }
    }
    actions
}

/// What the calls of a test run say about the catalogues.
#[derive(Debug, Default)]
pub struct Coverage {
    /// Calls per principal.
    pub calls: BTreeMap<Principal, usize>,
    /// (principal, operation, action) made but not in that principal's catalogue.
    pub missing: BTreeSet<(Principal, String, String)>,
    /// (principal, service, operation) the mapping does not know.
    pub unmapped: BTreeSet<(Principal, String, String)>,
    /// Operations seen per principal, and the actions they needed.
    pub exercised: BTreeMap<Principal, BTreeSet<String>>,
    /// Operations seen per principal.
    pub operations: BTreeMap<Principal, BTreeSet<String>>,
}

impl Coverage {
    /// Check `calls` against the catalogues `catalogue` returns per principal.
    pub fn of(calls: &[Call], catalogue: impl Fn(Principal) -> Vec<&'static str>) -> Coverage {
        let mut coverage = Coverage::default();
        for call in calls {
            *coverage.calls.entry(call.principal).or_default() += 1;
            if call.principal == Principal::Harness {
                continue;
            }
            coverage
                .operations
                .entry(call.principal)
                .or_default()
                .insert(format!("{}:{}", call.service, call.operation));
            if call.actions.is_empty() {
                coverage.unmapped.insert((call.principal, call.service.clone(), call.operation.clone()));
            }
            let granted = catalogue(call.principal);
            for action in &call.actions {
                coverage.exercised.entry(call.principal).or_default().insert(action.clone());
                if !granted.contains(&action.as_str()) {
                    coverage.missing.insert((call.principal, call.operation.clone(), action.clone()));
                }
            }
        }
        coverage
    }

    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unmapped.is_empty()
    }

    /// Catalogue entries of `principal` that no recorded call needed.
    pub fn unexercised(&self, principal: Principal) -> Vec<&'static str> {
        let seen = self.exercised.get(&principal);
        let own = match principal {
            Principal::Task(Task::CheckIam) => Task::CheckIam.needs().iter().map(|n| n.action).collect(),
            other => catalogue_of(other),
        };
        own.into_iter().filter(|a| !seen.is_some_and(|s| s.contains(*a))).collect()
    }

    /// The report `cargo xtask test` prints; `per_principal` adds each principal's operations and
    /// unexercised entries (meaningful only when every test ran).
    pub fn report(&self, per_principal: bool) -> String {
        let total: usize = self.calls.values().sum();
        let mut out = format!("catalogue coverage: {total} calls recorded by the emulators\n");
        let mut principals = Vec::new();
        if per_principal {
            principals.push(Principal::Service);
            principals.extend(Task::ALL.map(Principal::Task));
        }
        for principal in principals {
            let calls = self.calls.get(&principal).copied().unwrap_or(0);
            let operations = self.operations.get(&principal).map_or(0, BTreeSet::len);
            out += &format!("  {principal}: {calls} calls, {operations} operations");
            let unexercised = self.unexercised(principal);
            if unexercised.is_empty() {
                out += ", every catalogue entry exercised\n";
            } else {
                let by_lambda = |a: &&str| principal == Principal::Service && a.starts_with("logs:");
                let (lambda, code): (Vec<&str>, Vec<&str>) = unexercised.into_iter().partition(by_lambda);
                if code.is_empty() {
                    out += ", every entry the code uses exercised";
                } else {
                    out += &format!("; never exercised: {}", code.join(", "));
                }
                if !lambda.is_empty() {
                    out += &format!(" (and, used by Lambda itself, not by the code: {})", lambda.join(", "));
                }
                out += "\n";
            }
            if let Some(operations) = self.operations.get(&principal) {
                let operations: Vec<&str> = operations.iter().map(String::as_str).collect();
                out += &format!("    operations: {}\n", operations.join(" "));
            }
        }
        if per_principal {
            out += &format!(
                "  the test harness: {} calls (fixtures, not checked)\n",
                self.calls.get(&Principal::Harness).copied().unwrap_or(0)
            );
        }
        for (principal, operation, action) in &self.missing {
            out += &format!(
                "  MISSING: {principal} called {operation}, which needs {action}, not in its catalogue \
                 (add it to {})\n",
                if *principal == Principal::Service {
                    "app/src/permissions.rs"
                } else {
                    "xtask/src/catalogue.rs"
                }
            );
        }
        for (principal, service, operation) in &self.unmapped {
            out += &format!(
                "  UNMAPPED: {principal} called {service} {operation}, whose IAM actions are unknown \
                 (add it to xtask/src/coverage.rs)\n"
            );
        }
        out
    }
}

/// Every call recorded in the `*.jsonl` files of `dir`, and how many lines were garbled.
///
/// moto's recorder appends from its request threads without a lock: a line of a multi-MiB
/// upload can be interleaved with another request's line, and both are lost. Those are counted
/// and reported, not silently dropped.
pub fn read_recordings(dir: &Path) -> anyhow::Result<(Vec<Call>, usize)> {
    let mut calls = Vec::new();
    let mut garbled = 0;
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match parse_line(line) {
                Ok(call) => calls.extend(call),
                Err(_) => garbled += 1,
            }
        }
    }
    Ok((calls, garbled))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn recorded(method: &str, url: &str, headers: Value, body: &str) -> String {
        json!({ "method": method, "url": url, "headers": headers, "body": body, "body_encoded": false })
            .to_string()
    }

    fn auth(service: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=local/20261126/us-east-1/{service}/aws4_request, SignedHeaders=host"
        )
    }

    fn by(app: &str, service: &str) -> Value {
        json!({ "X-Amz-User-Agent": format!("aws-sdk-rust/1.3 app/{app}"), "Authorization": auth(service) })
    }

    #[test]
    fn requests_of_each_protocol_are_named_and_attributed() {
        let mut headers = by("recording-server", "dynamodb");
        headers["X-Amz-Target"] = json!("DynamoDB_20120810.Query");
        let call = parse_line(&recorded("POST", "http://127.0.0.1:5000/", headers, "{}")).unwrap().unwrap();
        assert_eq!((call.principal, call.operation.as_str()), (Principal::Service, "Query"));
        assert_eq!(call.actions, ["dynamodb:Query"]);

        let line = recorded(
            "POST",
            "http://127.0.0.1:5000/2015-03-31/functions",
            by("recording-server-xtask-deploy", "lambda"),
            r#"{"FunctionName":"f","Role":"arn","Tags":{"a":"b"}}"#,
        );
        let call = parse_line(&line).unwrap().unwrap();
        assert_eq!(call.principal, Principal::Task(Task::Deploy));
        assert_eq!(call.actions, ["lambda:CreateFunction", "iam:PassRole", "lambda:TagResource"]);

        let line = recorded(
            "POST",
            "http://127.0.0.1:5000/",
            by("recording-server-xtask-destroy", "iam"),
            "Action=DeleteRole&RoleName=r&Version=2010-05-08",
        );
        assert_eq!(parse_line(&line).unwrap().unwrap().actions, ["iam:DeleteRole"]);

        // A presigned upload, made by the browser, is the signer's (the service's) call.
        let url = "http://127.0.0.1:5000/bucket/u/1.m4a?x-id=PutObject&X-Amz-Credential=k%2F20261126%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=ab";
        let call =
            parse_line(&recorded("PUT", url, json!({ "User-Agent": "curl/8" }), "audio")).unwrap().unwrap();
        assert_eq!((call.principal, call.operation.as_str()), (Principal::Service, "PutObject"));
        assert_eq!(call.actions, ["s3:PutObject"]);

        let call = parse_line(&recorded("HEAD", "http://127.0.0.1:5000/bucket", by("x", "s3"), ""))
            .unwrap()
            .unwrap();
        assert_eq!(
            (call.principal, call.actions.as_slice()),
            (Principal::Harness, ["s3:ListBucket".to_owned()].as_slice())
        );
    }

    #[test]
    fn an_operation_the_mapping_does_not_know_is_reported() {
        let line = recorded(
            "PUT",
            "http://127.0.0.1:5000/bucket?replication",
            by("recording-server-xtask-deploy", "s3"),
            "",
        );
        let calls = vec![parse_line(&line).unwrap().unwrap()];
        let coverage = Coverage::of(&calls, catalogue_of);
        assert!(!coverage.is_complete());
        assert!(coverage
            .report(true)
            .contains("UNMAPPED: `cargo xtask deploy` called s3 PUT /bucket?replication"));
    }

    /// The mutation check: take any one entry out of a catalogue, and a run that made the call
    /// needing it fails, naming the operation.
    #[test]
    fn removing_any_catalogue_entry_fails_the_check_naming_the_operation() {
        let examples: &[(Principal, &str, &str, &str)] = &[
            (Principal::Service, "dynamodb", "Query", "dynamodb:Query"),
            (Principal::Service, "s3", "HeadObject", "s3:GetObject"),
            (Principal::Task(Task::Deploy), "lambda", "CreateFunction", "iam:PassRole"),
            (Principal::Task(Task::CreateTables), "dynamodb", "CreateTable", "dynamodb:TagResource"),
            (Principal::Task(Task::Destroy), "iam", "DeleteRole", "iam:DeleteRole"),
        ];
        for &(principal, service, operation, action) in examples {
            let call = Call {
                principal,
                service: service.into(),
                operation: operation.into(),
                actions: vec![action.into()],
            };
            let complete = Coverage::of(std::slice::from_ref(&call), catalogue_of);
            assert!(complete.is_complete(), "{}", complete.report(true));
            let mutated = |p: Principal| catalogue_of(p).into_iter().filter(|a| *a != action).collect();
            let coverage = Coverage::of(&[call], mutated);
            assert!(!coverage.is_complete(), "removing {action} went unnoticed");
            let report = coverage.report(true);
            assert!(
                report.contains(&format!("MISSING: {principal} called {operation}, which needs {action}")),
                "{report}"
            );
        }
    }
}
