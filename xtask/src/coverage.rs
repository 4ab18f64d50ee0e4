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
use iam::Action;
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
    /// The IAM actions AWS checks for it; empty when no action of the table is needed by the
    /// operation (an operation the project has not catalogued).
    pub actions: Vec<Action>,
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

    let operation = if let Some(target) = headers.get("x-amz-target") {
        target.rsplit('.').next().unwrap_or(target).to_owned()
    } else if let Some(action) = query_action(&query, &body) {
        action
    } else if service == "lambda" {
        lambda_operation(method, &segments).unwrap_or("unknown").to_owned()
    } else if service == "s3" {
        let keys: BTreeSet<&str> = query
            .keys()
            .map(String::as_str)
            .filter(|k| !k.starts_with("X-Amz-") && !S3_LIST_PARAMETERS.contains(k))
            .collect();
        match s3_operation(method, &segments, &keys, headers.contains_key("x-amz-copy-source")) {
            Some(operation) => operation.to_owned(),
            None => format!("{method} {}?{}", url.path(), keys.into_iter().collect::<Vec<_>>().join("&")),
        }
    } else {
        format!("{method} {}", url.path())
    };
    let mut actions = actions_of(&service, &operation);
    if !actions.is_empty() {
        actions.extend(dependent_actions(&operation, &body));
    }
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

/// How the recorded requests that need an action are named (the operation in the request: the
/// `X-Amz-Target` or `Action` of JSON and query protocols, the route of REST ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// By the action's own name (`dynamodb:GetItem` ← `GetItem`).
    AsNamed,
    /// By these operations.
    As(&'static [&'static str]),
    /// Only along with another operation (the dependent actions `parse_line` adds).
    AlongWith(&'static str),
    /// Never by our code: Lambda makes these calls itself, with the role.
    ByLambda,
}

/// The requests that need `action`. An exhaustive match: a new [`Action`] does not compile until
/// it says which recorded requests need it.
pub fn recorded(action: Action) -> Recorded {
    use Action as A;
    use Recorded::{AlongWith, As, AsNamed, ByLambda};
    match action {
        A::StsGetCallerIdentity => AsNamed,
        A::DynamoDbDescribeTable
        | A::DynamoDbCreateTable
        | A::DynamoDbListTagsOfResource
        | A::DynamoDbUpdateTable
        | A::DynamoDbDescribeTimeToLive
        | A::DynamoDbUpdateTimeToLive
        | A::DynamoDbDescribeContinuousBackups
        | A::DynamoDbUpdateContinuousBackups
        | A::DynamoDbDeleteTable
        | A::DynamoDbGetItem
        | A::DynamoDbPutItem
        | A::DynamoDbUpdateItem
        | A::DynamoDbDeleteItem
        | A::DynamoDbQuery
        | A::DynamoDbScan => AsNamed,
        // Also tag-on-create: a CreateTable with tags.
        A::DynamoDbTagResource => AsNamed,
        A::S3CreateBucket | A::S3DeleteBucket | A::S3PutBucketPolicy | A::S3GetBucketPolicy => AsNamed,
        A::S3GetBucketOwnershipControls | A::S3PutBucketOwnershipControls => AsNamed,
        A::S3ListBucket => As(&["ListObjectsV2", "HeadBucket"]),
        A::S3GetBucketPublicAccessBlock => As(&["GetPublicAccessBlock"]),
        A::S3PutBucketPublicAccessBlock => As(&["PutPublicAccessBlock"]),
        A::S3GetEncryptionConfiguration => As(&["GetBucketEncryption"]),
        A::S3PutEncryptionConfiguration => As(&["PutBucketEncryption"]),
        A::S3GetLifecycleConfiguration => As(&["GetBucketLifecycleConfiguration"]),
        A::S3PutLifecycleConfiguration => As(&["PutBucketLifecycleConfiguration"]),
        A::S3GetBucketCors => As(&["GetBucketCors"]),
        A::S3PutBucketCors => As(&["PutBucketCors"]),
        // HeadObject and presigned GETs; CopyObject needs both object actions.
        A::S3GetObject => As(&["GetObject", "HeadObject", "CopyObject"]),
        A::S3PutObject => {
            As(&["PutObject", "CopyObject", "UploadPart", "CreateMultipartUpload", "CompleteMultipartUpload"])
        }
        A::S3DeleteObject => As(&["DeleteObject", "DeleteObjects"]),
        A::IamGetRole
        | A::IamCreateRole
        | A::IamUpdateAssumeRolePolicy
        | A::IamGetRolePolicy
        | A::IamPutRolePolicy
        | A::IamListRolePolicies
        | A::IamListAttachedRolePolicies
        | A::IamDeleteRolePolicy
        | A::IamDeleteRole
        | A::IamListRoles
        | A::IamSimulatePrincipalPolicy
        | A::IamGetUser
        | A::IamListUserPolicies
        | A::IamGetUserPolicy
        | A::IamListAttachedUserPolicies
        | A::IamListGroupsForUser
        | A::IamListGroupPolicies
        | A::IamGetGroupPolicy
        | A::IamListAttachedGroupPolicies
        | A::IamGetPolicy
        | A::IamGetPolicyVersion => AsNamed,
        // Also tag-on-create: a CreateRole with tags.
        A::IamTagRole => AsNamed,
        A::IamPassRole => AlongWith("CreateFunction, or UpdateFunctionConfiguration naming the role"),
        A::LambdaGetFunction
        | A::LambdaGetFunctionConfiguration
        | A::LambdaCreateFunction
        | A::LambdaUpdateFunctionCode
        | A::LambdaUpdateFunctionConfiguration
        | A::LambdaGetFunctionConcurrency
        | A::LambdaPutFunctionConcurrency
        | A::LambdaDeleteFunctionConcurrency
        | A::LambdaGetFunctionUrlConfig
        | A::LambdaCreateFunctionUrlConfig
        | A::LambdaUpdateFunctionUrlConfig
        | A::LambdaDeleteFunctionUrlConfig
        | A::LambdaGetPolicy
        | A::LambdaAddPermission
        | A::LambdaDeleteFunction
        | A::LambdaListVersionsByFunction
        | A::LambdaListAliases
        | A::LambdaPublishVersion
        | A::LambdaGetAlias
        | A::LambdaCreateAlias
        | A::LambdaUpdateAlias
        | A::LambdaRemovePermission => AsNamed,
        A::LambdaInvokeFunction => As(&["Invoke"]),
        // Also tag-on-create: a CreateFunction with tags.
        A::LambdaTagResource => AsNamed,
        A::LogsDescribeLogGroups
        | A::LogsCreateLogGroup
        | A::LogsPutRetentionPolicy
        | A::LogsDeleteLogGroup
        | A::LogsFilterLogEvents => AsNamed,
        A::LogsCreateLogStream | A::LogsPutLogEvents => ByLambda,
    }
}

/// The actions of the table a request of `service` named `operation` needs, in table order.
fn actions_of(service: &str, operation: &str) -> Vec<Action> {
    Action::ALL
        .iter()
        .copied()
        .filter(|a| a.service().prefix() == service)
        .filter(|a| match recorded(*a) {
            Recorded::AsNamed => a.operation() == operation,
            Recorded::As(operations) => operations.contains(&operation),
            Recorded::AlongWith(_) | Recorded::ByLambda => false,
        })
        .collect()
}

/// The actions AWS checks besides the operation's own: the role passed to Lambda (on create,
/// and on a configuration update that names it), and tag-on-create.
fn dependent_actions(operation: &str, body: &str) -> Vec<Action> {
    let tagged = body.contains("\"Tags\"") || body.contains("Tags.member");
    match operation {
        "CreateFunction" if tagged => vec![Action::IamPassRole, Action::LambdaTagResource],
        "CreateFunction" => vec![Action::IamPassRole],
        "UpdateFunctionConfiguration" if body.contains("\"Role\"") => vec![Action::IamPassRole],
        "CreateTable" if tagged => vec![Action::DynamoDbTagResource],
        "CreateRole" if tagged => vec![Action::IamTagRole],
        _ => Vec::new(),
    }
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
        ("GET", ["functions", _, "versions"]) => "ListVersionsByFunction",
        ("GET", ["functions", _, "aliases"]) => "ListAliases",
        ("POST", ["functions", _, "aliases"]) => "CreateAlias",
        ("GET", ["functions", _, "aliases", _]) => "GetAlias",
        ("PUT", ["functions", _, "aliases", _]) => "UpdateAlias",
        ("POST", ["functions", _, "versions"]) => "PublishVersion",
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

/// S3's REST routes, path style (`/bucket`, `/bucket/key`): the operation each is.
fn s3_operation(method: &str, segments: &[&str], keys: &BTreeSet<&str>, copy: bool) -> Option<&'static str> {
    let object = segments.len() > 1;
    let sub: Vec<&str> = keys.iter().copied().collect();
    Some(match (object, method, sub.as_slice()) {
        (false, "PUT", []) => "CreateBucket",
        (false, "PUT", ["publicAccessBlock"]) => "PutPublicAccessBlock",
        (false, "PUT", ["encryption"]) => "PutBucketEncryption",
        (false, "PUT", ["policy"]) => "PutBucketPolicy",
        (false, "PUT", ["lifecycle"]) => "PutBucketLifecycleConfiguration",
        (false, "PUT", ["ownershipControls"]) => "PutBucketOwnershipControls",
        (false, "PUT", ["tagging"]) => "PutBucketTagging",
        (false, "PUT", ["cors"]) => "PutBucketCors",
        (false, "GET", []) => "ListObjectsV2",
        (false, "GET", ["publicAccessBlock"]) => "GetPublicAccessBlock",
        (false, "GET", ["encryption"]) => "GetBucketEncryption",
        (false, "GET", ["policy"]) => "GetBucketPolicy",
        (false, "GET", ["lifecycle"]) => "GetBucketLifecycleConfiguration",
        (false, "GET", ["ownershipControls"]) => "GetBucketOwnershipControls",
        (false, "GET", ["tagging"]) => "GetBucketTagging",
        (false, "GET", ["cors"]) => "GetBucketCors",
        (false, "GET", ["location"]) => "GetBucketLocation",
        (false, "GET", ["versions"]) => "ListObjectVersions",
        (false, "GET", ["uploads"]) => "ListMultipartUploads",
        (false, "HEAD", []) => "HeadBucket",
        (false, "DELETE", []) => "DeleteBucket",
        (false, "DELETE", ["policy"]) => "DeleteBucketPolicy",
        (false, "POST", ["delete"]) => "DeleteObjects",
        (true, "PUT", []) if copy => "CopyObject",
        (true, "PUT", []) => "PutObject",
        (true, "PUT", ["partNumber", "uploadId"]) => "UploadPart",
        (true, "POST", ["uploads"]) => "CreateMultipartUpload",
        (true, "POST", ["uploadId"]) => "CompleteMultipartUpload",
        (true, "GET", []) => "GetObject",
        (true, "GET", ["uploadId"]) => "ListParts",
        (true, "HEAD", []) => "HeadObject",
        (true, "DELETE", []) => "DeleteObject",
        (true, "DELETE", ["uploadId"]) => "AbortMultipartUpload",
        _ => return None,
    })
}

/// The actions a principal's catalogue grants. check-iam probes every task's actions, so its
/// catalogue is its own plus all of theirs.
pub fn catalogue_of(principal: Principal) -> Vec<Action> {
    let needs: Vec<Need> = match principal {
        Principal::Service => crate::catalogue::runtime_needs(),
        Principal::Task(Task::CheckIam) => crate::catalogue::deployer_needs(&Task::ALL),
        Principal::Task(task) => task.needs(),
        Principal::Harness => Vec::new(),
    };
    let mut actions: Vec<Action> = Vec::new();
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
    pub missing: BTreeSet<(Principal, String, Action)>,
    /// (principal, service, operation) the mapping does not know.
    pub unmapped: BTreeSet<(Principal, String, String)>,
    /// Operations seen per principal, and the actions they needed.
    pub exercised: BTreeMap<Principal, BTreeSet<Action>>,
    /// Operations seen per principal.
    pub operations: BTreeMap<Principal, BTreeSet<String>>,
}

impl Coverage {
    /// Check `calls` against the catalogues `catalogue` returns per principal.
    pub fn of(calls: &[Call], catalogue: impl Fn(Principal) -> Vec<Action>) -> Coverage {
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
            for &action in &call.actions {
                coverage.exercised.entry(call.principal).or_default().insert(action);
                if !granted.contains(&action) {
                    coverage.missing.insert((call.principal, call.operation.clone(), action));
                }
            }
        }
        coverage
    }

    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unmapped.is_empty()
    }

    /// Catalogue entries of `principal` that no recorded call needed.
    pub fn unexercised(&self, principal: Principal) -> Vec<Action> {
        let seen = self.exercised.get(&principal);
        let own = match principal {
            Principal::Task(Task::CheckIam) => Task::CheckIam.needs().iter().map(|n| n.action).collect(),
            other => catalogue_of(other),
        };
        own.into_iter().filter(|a| !seen.is_some_and(|s| s.contains(a))).collect()
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
                // The service's role grants some actions for Lambda itself (its logs), not the code.
                let by_lambda = |a: &Action| {
                    principal == Principal::Service
                        && app::permissions::RUNTIME
                            .iter()
                            .any(|p| p.action == *a && p.routes == app::permissions::LAMBDA)
                };
                let (lambda, code): (Vec<Action>, Vec<Action>) = unexercised.into_iter().partition(by_lambda);
                let (lambda, code): (Vec<&str>, Vec<&str>) =
                    (lambda.iter().map(|a| a.name()).collect(), code.iter().map(|a| a.name()).collect());
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
                "  UNMAPPED: {principal} called {service} {operation}, which needs no action of the table \
                 (add its action to xtask/iam/src/action.rs, then to the catalogue)\n"
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

    fn names(actions: &[Action]) -> Vec<&'static str> {
        actions.iter().map(|a| a.name()).collect()
    }

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
        assert_eq!(names(&call.actions), ["dynamodb:Query"]);

        let line = recorded(
            "POST",
            "http://127.0.0.1:5000/2015-03-31/functions",
            by("recording-server-xtask-deploy", "lambda"),
            r#"{"FunctionName":"f","Role":"arn","Tags":{"a":"b"}}"#,
        );
        let call = parse_line(&line).unwrap().unwrap();
        assert_eq!(call.principal, Principal::Task(Task::Deploy));
        assert_eq!(names(&call.actions), ["lambda:CreateFunction", "iam:PassRole", "lambda:TagResource"]);

        let line = recorded(
            "POST",
            "http://127.0.0.1:5000/",
            by("recording-server-xtask-destroy", "iam"),
            "Action=DeleteRole&RoleName=r&Version=2010-05-08",
        );
        assert_eq!(names(&parse_line(&line).unwrap().unwrap().actions), ["iam:DeleteRole"]);

        // A presigned upload, made by the browser, is the signer's (the service's) call.
        let url = "http://127.0.0.1:5000/bucket/u/1.m4a?x-id=PutObject&X-Amz-Credential=k%2F20261126%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=ab";
        let call =
            parse_line(&recorded("PUT", url, json!({ "User-Agent": "curl/8" }), "audio")).unwrap().unwrap();
        assert_eq!((call.principal, call.operation.as_str()), (Principal::Service, "PutObject"));
        assert_eq!(names(&call.actions), ["s3:PutObject"]);

        let call = parse_line(&recorded("HEAD", "http://127.0.0.1:5000/bucket", by("x", "s3"), ""))
            .unwrap()
            .unwrap();
        assert_eq!(
            (call.principal, names(&call.actions).as_slice()),
            (Principal::Harness, ["s3:ListBucket"].as_slice())
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
        let examples: &[(Principal, &str, &str, Action)] = &[
            (Principal::Service, "dynamodb", "Query", Action::DynamoDbQuery),
            (Principal::Service, "s3", "HeadObject", Action::S3GetObject),
            (Principal::Task(Task::Deploy), "lambda", "CreateFunction", Action::IamPassRole),
            (Principal::Task(Task::CreateTables), "dynamodb", "CreateTable", Action::DynamoDbTagResource),
            (Principal::Task(Task::Destroy), "iam", "DeleteRole", Action::IamDeleteRole),
        ];
        for &(principal, service, operation, action) in examples {
            let call = Call {
                principal,
                service: service.into(),
                operation: operation.into(),
                actions: vec![action],
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
