//! What the developer tooling itself needs from AWS, per task, and the least-privilege policies
//! rendered from this catalogue and from `app::permissions` (the service's runtime needs).

use std::collections::BTreeMap;

use app::permissions::{ResourceKind, RUNTIME};
use iam::{Action, PolicyDocument, Statement};

use crate::names::Names;

/// A resource a task acts on, turned into ARNs by [`Names`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// Both tables.
    Tables,
    /// One of the service's runtime resources.
    Runtime(ResourceKind),
    Bucket,
    Function,
    /// The function's versions and aliases (`function:<name>:*`): the qualified calls.
    FunctionVersions,
    Role,
    /// The IAM user running the task: `user/${aws:username}` in a policy.
    Caller,
    /// IAM groups (whose policies a user holds).
    Groups,
    /// Managed policies (AWS's or the account's) attached to a principal.
    ManagedPolicies,
    /// The function's log group itself (its streams are `Runtime(LogGroup)`).
    LogGroup,
    /// Actions that take no resource (`sts:GetCallerIdentity`, `iam:ListRoles`).
    Any,
}

impl Resource {
    pub fn arns(self, names: &Names) -> Vec<String> {
        match self {
            Resource::Tables => {
                vec![names.table_arn(&names.user_table()), names.table_arn(&names.record_table())]
            }
            Resource::Runtime(kind) => names.runtime_arns(kind),
            Resource::Bucket => vec![names.bucket_arn()],
            Resource::Function => vec![names.function_arn()],
            Resource::FunctionVersions => vec![format!("{}:*", names.function_arn())],
            Resource::Role => vec![names.role_arn()],
            Resource::Caller => vec![names.arns().user(names.caller_user.as_deref())],
            Resource::Groups => vec![names.arns().groups()],
            Resource::ManagedPolicies => vec![names.arns().any_policy()],
            // The group as IAM names it for group-level calls, and with `:*` as CloudWatch Logs
            // reports group ARNs.
            Resource::LogGroup => {
                let group = names.log_group();
                vec![names.arns().log_group(&group), names.arns().log_streams(&group)]
            }
            Resource::Any => vec!["*".to_owned()],
        }
    }

    /// The ARNs a policy statement names: like [`Resource::arns`], but the caller as the policy
    /// variable, so one statement serves every developer.
    pub fn policy_arns(self, names: &Names) -> Vec<String> {
        match self {
            Resource::Caller => Resource::Caller.arns(&Names { caller_user: None, ..names.clone() }),
            other => other.arns(names),
        }
    }
}

/// The xtask tasks that call AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    CreateTables,
    Deploy,
    Destroy,
    CheckIam,
    Logs,
    Status,
    Rollback,
    Reconcile,
}

/// A condition key and the value a request carries for it, e.g. `iam:PassedToService`.
pub type Condition = (&'static str, &'static str);

/// The two parts of the deployer policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// What a developer needs to redeploy, inspect and destroy an existing stage.
    Base,
    /// Setup: everything that manages permissions (creates, changes, passes or removes the
    /// execution role; writes the bucket's policy and public access block; adds or removes
    /// statements of the function's resource policy). A developer who only redeploys or rolls
    /// back an existing stage needs none of it; a redeploy that must repair drift in these
    /// settings fails with a denial `check-iam explain` names.
    Iam,
}

impl Part {
    /// The prefix of each statement's Sid in the combined deployer policy.
    pub fn sid_prefix(self) -> &'static str {
        match self {
            Part::Base => "Base",
            Part::Iam => "Iam",
        }
    }
}

/// One action a principal needs, on one resource, maybe under a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub action: Action,
    pub resource: Resource,
    /// A condition key and value the request carries (and the policy must allow).
    pub condition: Option<Condition>,
    /// The deployer policy's part that grants it (the runtime's needs are all `Base`).
    pub part: Part,
}

const fn need(action: Action, resource: Resource) -> Need {
    Need { action, resource, condition: None, part: Part::Base }
}

/// A need of the deployer policy's IAM part.
const fn iam_part(need: Need) -> Need {
    Need { part: Part::Iam, ..need }
}

const CREATE_TABLES: &[Need] = &[
    need(Action::DynamoDbDescribeTable, Resource::Tables),
    need(Action::DynamoDbCreateTable, Resource::Tables),
    need(Action::DynamoDbTagResource, Resource::Tables),
    need(Action::DynamoDbUpdateTable, Resource::Tables),
    need(Action::DynamoDbDescribeTimeToLive, Resource::Tables),
    need(Action::DynamoDbUpdateTimeToLive, Resource::Tables),
    need(Action::DynamoDbDescribeContinuousBackups, Resource::Tables),
    need(Action::DynamoDbUpdateContinuousBackups, Resource::Tables),
];

const DEPLOY: &[Need] = &[
    need(Action::StsGetCallerIdentity, Resource::Any),
    need(Action::S3CreateBucket, Resource::Bucket),
    need(Action::S3ListBucket, Resource::Bucket),
    need(Action::S3GetBucketPublicAccessBlock, Resource::Bucket),
    need(Action::S3GetEncryptionConfiguration, Resource::Bucket),
    // Permissions management: the setup part (a routine redeploy writes none of it).
    iam_part(need(Action::S3PutBucketPublicAccessBlock, Resource::Bucket)),
    need(Action::S3PutEncryptionConfiguration, Resource::Bucket),
    need(Action::S3GetBucketPolicy, Resource::Bucket),
    iam_part(need(Action::S3PutBucketPolicy, Resource::Bucket)),
    need(Action::S3GetBucketOwnershipControls, Resource::Bucket),
    need(Action::S3PutBucketOwnershipControls, Resource::Bucket),
    need(Action::S3GetLifecycleConfiguration, Resource::Bucket),
    need(Action::S3PutLifecycleConfiguration, Resource::Bucket),
    // The web recorder's CORS rule for the function URL's origin.
    need(Action::S3GetBucketCors, Resource::Bucket),
    need(Action::S3PutBucketCors, Resource::Bucket),
    need(Action::IamGetRole, Resource::Role),
    iam_part(need(Action::IamCreateRole, Resource::Role)),
    iam_part(need(Action::IamTagRole, Resource::Role)),
    iam_part(need(Action::IamUpdateAssumeRolePolicy, Resource::Role)),
    need(Action::IamGetRolePolicy, Resource::Role),
    iam_part(need(Action::IamPutRolePolicy, Resource::Role)),
    iam_part(Need {
        condition: Some(("iam:PassedToService", "lambda.amazonaws.com")),
        ..need(Action::IamPassRole, Resource::Role)
    }),
    need(Action::DynamoDbListTagsOfResource, Resource::Tables),
    need(Action::LambdaGetFunction, Resource::Function),
    need(Action::LambdaCreateFunction, Resource::Function),
    need(Action::LambdaTagResource, Resource::Function),
    need(Action::LambdaGetFunctionConfiguration, Resource::Function),
    need(Action::LambdaUpdateFunctionCode, Resource::Function),
    need(Action::LambdaUpdateFunctionConfiguration, Resource::Function),
    need(Action::LambdaGetFunctionConcurrency, Resource::Function),
    need(Action::LambdaPutFunctionConcurrency, Resource::Function),
    need(Action::LambdaDeleteFunctionConcurrency, Resource::Function),
    need(Action::LambdaGetFunctionUrlConfig, Resource::Function),
    need(Action::LambdaCreateFunctionUrlConfig, Resource::Function),
    need(Action::LambdaUpdateFunctionUrlConfig, Resource::Function),
    need(Action::LambdaGetPolicy, Resource::Function),
    iam_part(need(Action::LambdaAddPermission, Resource::Function)),
    // Releases: publish $LATEST, invoke that version, move the aliases, prune old versions.
    need(Action::LambdaPublishVersion, Resource::Function),
    need(Action::LambdaGetAlias, Resource::Function),
    need(Action::LambdaCreateAlias, Resource::Function),
    need(Action::LambdaUpdateAlias, Resource::Function),
    need(Action::LambdaListVersionsByFunction, Resource::Function),
    need(Action::LambdaGetFunctionConfiguration, Resource::FunctionVersions),
    need(Action::LambdaInvokeFunction, Resource::FunctionVersions),
    need(Action::LambdaDeleteFunction, Resource::FunctionVersions),
    // The URL on `live` and its statements (`live`'s own resource policy).
    need(Action::LambdaGetFunctionUrlConfig, Resource::FunctionVersions),
    need(Action::LambdaCreateFunctionUrlConfig, Resource::FunctionVersions),
    need(Action::LambdaUpdateFunctionUrlConfig, Resource::FunctionVersions),
    need(Action::LambdaGetPolicy, Resource::FunctionVersions),
    iam_part(need(Action::LambdaAddPermission, Resource::FunctionVersions)),
    // Moving a URL that served $LATEST to `live` (once per stage).
    need(Action::LambdaDeleteFunctionUrlConfig, Resource::Function),
    iam_part(need(Action::LambdaRemovePermission, Resource::Function)),
    need(Action::LogsFilterLogEvents, Resource::Runtime(ResourceKind::LogGroup)),
    // The function's log group, created with a retention (Lambda would create it with none).
    need(Action::LogsDescribeLogGroups, Resource::Any),
    need(Action::LogsCreateLogGroup, Resource::LogGroup),
    need(Action::LogsPutRetentionPolicy, Resource::LogGroup),
];

const DESTROY: &[Need] = &[
    need(Action::StsGetCallerIdentity, Resource::Any),
    // The deployed function names the stage's data; tags say which tables are the stage's own.
    need(Action::LambdaGetFunctionConfiguration, Resource::Function),
    need(Action::DynamoDbListTagsOfResource, Resource::Tables),
    need(Action::IamListRolePolicies, Resource::Role),
    need(Action::DynamoDbDescribeTable, Resource::Tables),
    need(Action::DynamoDbUpdateTable, Resource::Tables),
    need(Action::LambdaDeleteFunctionUrlConfig, Resource::Function),
    need(Action::LambdaDeleteFunctionUrlConfig, Resource::FunctionVersions),
    need(Action::LambdaDeleteFunction, Resource::Function),
    // Removing the role manages permissions: the setup part.
    iam_part(need(Action::IamDeleteRolePolicy, Resource::Role)),
    iam_part(need(Action::IamDeleteRole, Resource::Role)),
    need(Action::DynamoDbDeleteTable, Resource::Tables),
    need(Action::S3ListBucket, Resource::Bucket),
    need(Action::S3DeleteBucket, Resource::Bucket),
    need(Action::S3DeleteObject, Resource::Runtime(ResourceKind::BucketObjects)),
    need(Action::LogsDeleteLogGroup, Resource::LogGroup),
];

const CHECK_IAM: &[Need] = &[
    need(Action::StsGetCallerIdentity, Resource::Any),
    // The deployed function names the stage's tables and bucket.
    need(Action::LambdaGetFunctionConfiguration, Resource::Function),
    need(Action::IamSimulatePrincipalPolicy, Resource::Any),
    need(Action::IamListRoles, Resource::Any),
    // The execution role's policies, and the function URL's.
    need(Action::IamGetRole, Resource::Role),
    need(Action::IamListRolePolicies, Resource::Role),
    need(Action::IamGetRolePolicy, Resource::Role),
    need(Action::IamListAttachedRolePolicies, Resource::Role),
    need(Action::LambdaGetPolicy, Resource::Function),
    // `check-iam explain --stage S --since D` reads the function's log group.
    need(Action::LogsFilterLogEvents, Resource::Runtime(ResourceKind::LogGroup)),
    // Your own policies, read when neither simulation nor a probe can decide.
    need(Action::IamGetUser, Resource::Caller),
    need(Action::IamListUserPolicies, Resource::Caller),
    need(Action::IamGetUserPolicy, Resource::Caller),
    need(Action::IamListAttachedUserPolicies, Resource::Caller),
    need(Action::IamListGroupsForUser, Resource::Caller),
    need(Action::IamListGroupPolicies, Resource::Groups),
    need(Action::IamGetGroupPolicy, Resource::Groups),
    need(Action::IamListAttachedGroupPolicies, Resource::Groups),
    need(Action::IamGetPolicy, Resource::ManagedPolicies),
    need(Action::IamGetPolicyVersion, Resource::ManagedPolicies),
];

/// `cargo xtask status` reads the function, its URL, versions and aliases.
const STATUS: &[Need] = &[
    need(Action::LambdaGetFunctionUrlConfig, Resource::FunctionVersions),
    need(Action::LambdaGetFunctionConfiguration, Resource::Function),
    need(Action::LambdaGetFunctionConcurrency, Resource::Function),
    need(Action::LambdaGetFunctionUrlConfig, Resource::Function),
    need(Action::LambdaListVersionsByFunction, Resource::Function),
    need(Action::LambdaListAliases, Resource::Function),
];

/// `cargo xtask rollback` reads the aliases, invokes the target version, moves the aliases.
const ROLLBACK: &[Need] = &[
    need(Action::StsGetCallerIdentity, Resource::Any),
    // The deployed function names the stage's data (for explaining a denial in the tail).
    need(Action::LambdaGetFunctionConfiguration, Resource::Function),
    need(Action::LambdaGetAlias, Resource::Function),
    need(Action::LambdaGetFunctionConfiguration, Resource::FunctionVersions),
    need(Action::LambdaInvokeFunction, Resource::FunctionVersions),
    need(Action::LambdaCreateAlias, Resource::Function),
    need(Action::LambdaUpdateAlias, Resource::Function),
];

/// `cargo xtask reconcile` reads the stage's data whole and repairs it: the operator's policy,
/// apart from the deployer's.
const RECONCILE: &[Need] = &[
    need(Action::StsGetCallerIdentity, Resource::Any),
    // The deployed function names the stage's data.
    need(Action::LambdaGetFunctionConfiguration, Resource::Function),
    need(Action::DynamoDbScan, Resource::Tables),
    need(Action::S3ListBucket, Resource::Bucket),
    // Repairs: the usage row (read, refunds, corrections), dangling rows, objects without rows.
    need(Action::DynamoDbGetItem, Resource::Tables),
    need(Action::DynamoDbUpdateItem, Resource::Tables),
    need(Action::DynamoDbDeleteItem, Resource::Tables),
    need(Action::S3DeleteObject, Resource::Runtime(ResourceKind::BucketObjects)),
];

/// `cargo xtask logs` reads the function's log group, nothing else.
const LOGS: &[Need] = &[
    need(Action::LogsFilterLogEvents, Resource::Runtime(ResourceKind::LogGroup)),
    // A stage without logs: deployed but never run, or not there at all.
    need(Action::LambdaGetFunctionConfiguration, Resource::Function),
];

impl Task {
    /// Every task that calls AWS.
    pub const ALL: [Task; 8] = [
        Task::CreateTables,
        Task::Deploy,
        Task::Destroy,
        Task::CheckIam,
        Task::Logs,
        Task::Status,
        Task::Rollback,
        Task::Reconcile,
    ];

    /// The tasks check-iam gives a verdict on by default.
    pub const DEFAULT: [Task; 3] = [Task::CreateTables, Task::Deploy, Task::Destroy];

    pub fn name(self) -> &'static str {
        match self {
            Task::CreateTables => "create-tables",
            Task::Deploy => "deploy",
            Task::Destroy => "destroy",
            Task::CheckIam => "check-iam",
            Task::Logs => "logs",
            Task::Status => "status",
            Task::Rollback => "rollback",
            Task::Reconcile => "reconcile",
        }
    }

    /// What this task calls. Deploy also creates the tables, with create-tables' code.
    pub fn needs(self) -> Vec<Need> {
        match self {
            Task::CreateTables => CREATE_TABLES.to_vec(),
            Task::Deploy => [CREATE_TABLES, DEPLOY].concat(),
            Task::Destroy => DESTROY.to_vec(),
            Task::CheckIam => CHECK_IAM.to_vec(),
            Task::Logs => LOGS.to_vec(),
            Task::Status => STATUS.to_vec(),
            Task::Rollback => ROLLBACK.to_vec(),
            Task::Reconcile => RECONCILE.to_vec(),
        }
    }
}

/// Every need of the given tasks, each (action, resource) once, in catalogue order.
pub fn deployer_needs(tasks: &[Task]) -> Vec<Need> {
    let mut needs: Vec<Need> = Vec::new();
    for need in tasks.iter().flat_map(|t| t.needs()) {
        if !needs.iter().any(|n| n.action == need.action && n.resource == need.resource) {
            needs.push(need);
        }
    }
    needs
}

/// The name of the execution role's inline policy that deploy writes from [`runtime_needs`].
pub const RUNTIME_POLICY_NAME: &str = "recording-server-runtime";

/// The deployer needs of `tasks` split into the base part and the IAM part.
pub fn deployer_parts(tasks: &[Task]) -> (Vec<Need>, Vec<Need>) {
    deployer_needs(tasks).into_iter().partition(|n| n.part == Part::Base)
}

/// Both parts in one document: each statement's Sid says its part (`Base…`, `Iam…`).
pub fn render_deployer_policy(tasks: &[Task], names: &Names, any_resource: bool) -> PolicyDocument {
    let (base, iam) = deployer_parts(tasks);
    let mut statements = Vec::new();
    for (part, needs) in [(Part::Base, base), (Part::Iam, iam)] {
        for mut statement in render_policy(&needs, names, any_resource).statement {
            statement.sid = Some(format!("{}{}", part.sid_prefix(), statement.sid.unwrap_or_default()));
            statements.push(statement);
        }
    }
    PolicyDocument::new(statements)
}

/// The service's runtime needs, from `app::permissions`.
pub fn runtime_needs() -> Vec<Need> {
    RUNTIME.iter().map(|p| need(p.action, Resource::Runtime(p.resource))).collect()
}

/// A least-privilege IAM policy document: one statement per resource set (plus one per
/// conditional action). `any_resource` writes `*` instead of ARNs, for emulators that only
/// match `*` (moto, for DynamoDB and Lambda).
pub fn render_policy(needs: &[Need], names: &Names, any_resource: bool) -> PolicyDocument {
    let mut groups: BTreeMap<(Resource, Option<Condition>), Vec<&str>> = BTreeMap::new();
    for n in needs {
        let actions = groups.entry((n.resource, n.condition)).or_default();
        if !actions.contains(&n.action.name()) {
            actions.push(n.action.name());
        }
    }
    let statements = groups
        .into_iter()
        .map(|((resource, condition), actions)| {
            let resources = if any_resource { vec!["*".to_owned()] } else { resource.policy_arns(names) };
            let statement = Statement::allow(
                sid(resource, condition.is_some()),
                actions.into_iter().collect(),
                resources.into_iter().collect(),
            );
            match condition {
                Some((key, value)) => statement.when_equals(key, value),
                None => statement,
            }
        })
        .collect();
    PolicyDocument::new(statements)
}

fn sid(resource: Resource, conditional: bool) -> String {
    let base = match resource {
        Resource::Tables => "Tables".to_owned(),
        Resource::Runtime(kind) => format!("{kind:?}"),
        Resource::Bucket => "Bucket".to_owned(),
        Resource::Function => "Function".to_owned(),
        Resource::FunctionVersions => "FunctionVersions".to_owned(),
        Resource::Role => "ExecutionRole".to_owned(),
        Resource::Caller => "OwnUser".to_owned(),
        Resource::Groups => "OwnGroups".to_owned(),
        Resource::ManagedPolicies => "ManagedPolicies".to_owned(),
        Resource::LogGroup => "FunctionLogGroup".to_owned(),
        Resource::Any => "NoResource".to_owned(),
    };
    if conditional {
        format!("{base}Conditional")
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn render_policy(needs: &[Need], names: &Names, any_resource: bool) -> Value {
        super::render_policy(needs, names, any_resource).to_value()
    }

    fn render_deployer_policy(tasks: &[Task], names: &Names, any_resource: bool) -> Value {
        super::render_deployer_policy(tasks, names, any_resource).to_value()
    }

    /// The setup part: the role, and every action that manages permissions (parliament's
    /// "permissions management" findings: the bucket's policy and public access block, the
    /// function's resource policy).
    const IAM_PART: [&str; 12] = [
        "s3:PutBucketPublicAccessBlock",
        "s3:PutBucketPolicy",
        "iam:CreateRole",
        "iam:TagRole",
        "iam:UpdateAssumeRolePolicy",
        "iam:PutRolePolicy",
        "iam:PassRole",
        // On the function (the URL on $LATEST that deploys before aliases made) and on `live`.
        "lambda:AddPermission",
        "lambda:AddPermission",
        "lambda:RemovePermission",
        // destroy's: removing the role.
        "iam:DeleteRolePolicy",
        "iam:DeleteRole",
    ];

    fn names() -> Names {
        Names::new("dev", "123456789012", "us-east-1", "", None)
    }

    #[test]
    fn the_runtime_policy_grants_exactly_the_catalogue_on_concrete_arns() {
        let policy = render_policy(&runtime_needs(), &names(), false);
        let statements = policy["Statement"].as_array().unwrap();
        let granted: usize = statements.iter().map(|s| s["Action"].as_array().unwrap().len()).sum();
        assert_eq!(granted, RUNTIME.len());
        // Query: the user table (a user's keys) and the record index, never the record table.
        let query: Vec<&Value> = statements
            .iter()
            .filter(|s| s["Action"].as_array().unwrap().contains(&json!("dynamodb:Query")))
            .map(|s| &s["Resource"])
            .collect();
        assert_eq!(
            query,
            [
                &json!(["arn:aws:dynamodb:us-east-1:123456789012:table/record_user"]),
                &json!([
                    "arn:aws:dynamodb:us-east-1:123456789012:table/record_record/index/user_id-created_at-index"
                ])
            ]
        );
        assert!(!policy.to_string().contains("\"*\""), "a wildcard resource in {policy}");
    }

    #[test]
    fn pass_role_is_limited_to_lambda() {
        let policy = render_policy(&deployer_needs(&[Task::Deploy]), &names(), false);
        let pass = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Action"] == json!(["iam:PassRole"]))
            .expect("a PassRole statement");
        assert_eq!(
            pass["Condition"],
            json!({ "StringEquals": { "iam:PassedToService": "lambda.amazonaws.com" } })
        );
        assert_eq!(pass["Resource"], json!(["arn:aws:iam::123456789012:role/recording-server-dev-lambda"]));
    }

    #[test]
    fn the_deployer_policy_is_its_base_part_and_its_iam_part() {
        let tasks = Task::ALL;
        let (base, iam) = deployer_parts(&tasks);
        assert_eq!(base.len() + iam.len(), deployer_needs(&tasks).len());
        let iam_actions: Vec<&str> = iam.iter().map(|n| n.action.name()).collect();
        assert_eq!(iam_actions, IAM_PART);
        let both = render_deployer_policy(&tasks, &names(), false);
        let statements = both["Statement"].as_array().unwrap();
        let pass = statements.iter().find(|s| s["Action"] == json!(["iam:PassRole"])).unwrap();
        assert_eq!(pass["Sid"], "IamExecutionRoleConditional");
        assert_eq!(pass["Resource"], json!(["arn:aws:iam::123456789012:role/recording-server-dev-lambda"]));
        assert_eq!(pass["Condition"]["StringEquals"]["iam:PassedToService"], "lambda.amazonaws.com");
        assert!(statements.iter().all(|s| {
            let sid = s["Sid"].as_str().unwrap();
            let iam_part =
                s["Action"].as_array().unwrap().iter().all(|a| IAM_PART.contains(&a.as_str().unwrap()));
            sid.starts_with(if iam_part { "Iam" } else { "Base" })
        }));
    }

    /// The real rendering (not the emulator's any-resource one) is scoped: `"*"` only for
    /// actions that take no resource, and a wildcard only where a statement must cover a set
    /// (the bucket's objects, a log group's streams, your groups, managed policies).
    #[test]
    fn every_rendered_resource_is_concrete_or_a_documented_set() {
        let tasks = Task::ALL;
        let names = Names { caller_user: None, ..names() };
        for policy in
            [render_deployer_policy(&tasks, &names, false), render_policy(&runtime_needs(), &names, false)]
        {
            for statement in policy["Statement"].as_array().unwrap() {
                for resource in statement["Resource"].as_array().unwrap() {
                    let resource = resource.as_str().unwrap();
                    if resource == "*" {
                        for action in statement["Action"].as_array().unwrap() {
                            let need = deployer_needs(&tasks).into_iter().find(|n| n.action.name() == action);
                            assert_eq!(need.map(|n| n.resource), Some(Resource::Any), "{action} on \"*\"");
                        }
                        continue;
                    }
                    assert!(resource.starts_with("arn:aws:"), "{resource}");
                    let sets = ["/*", ":*", "arn:aws:iam::*:policy/*", "${aws:username}"];
                    let wild = resource.contains('*') || resource.contains("${");
                    assert!(!wild || sets.iter().any(|s| resource.ends_with(s)), "a wildcard in {resource}");
                }
            }
        }
    }

    /// The table holds no action nobody needs: a new action must join a catalogue (the
    /// runtime list in `app::permissions`, or a task's needs here).
    #[test]
    fn every_action_of_the_table_is_in_a_catalogue() {
        let runtime = runtime_needs();
        let deployer = deployer_needs(&Task::ALL);
        for action in Action::ALL {
            assert!(
                runtime.iter().chain(&deployer).any(|n| n.action == *action),
                "{action} is in no catalogue: add it to app::permissions::RUNTIME or a task's needs"
            );
        }
    }

    #[test]
    fn deploy_needs_everything_create_tables_needs() {
        let deploy = Task::Deploy.needs();
        assert!(Task::CreateTables.needs().iter().all(|n| deploy.contains(n)));
    }

    #[test]
    fn the_any_resource_variant_only_changes_resources() {
        let exact = render_policy(&runtime_needs(), &names(), false);
        let any = render_policy(&runtime_needs(), &names(), true);
        let actions = |p: &Value| {
            p["Statement"].as_array().unwrap().iter().map(|s| s["Action"].clone()).collect::<Vec<_>>()
        };
        assert_eq!(actions(&exact), actions(&any));
        assert!(any["Statement"].as_array().unwrap().iter().all(|s| s["Resource"] == json!(["*"])));
    }
}
