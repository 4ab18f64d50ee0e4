//! `cargo xtask check-iam`: who am I, and may I (and the service's role) do everything the
//! project needs? For the developer with few permissions as much as for the admin: every call
//! check-iam makes may be denied, and each denial becomes a row or a note naming the permission
//! that would decide it, never an abort. Decisions come from simulation, else probes, else the
//! caller's own policies as IAM stores them. A verdict per task and the smallest statement that
//! unblocks come first, then the rows.

mod classify;
pub mod explain;
mod probe;
mod report;
pub mod role;
mod simulate;

pub use classify::{classify, Denial};
pub use simulate::simulate;

use anyhow::Context;
use aws_sdk_iam::error::SdkError;
use aws_sdk_sts::config::ProvideCredentials;
use serde::Serialize;

use iam::{Action, PolicyDocument};

use crate::aws::{Aws, ErrorInfo};
use crate::catalogue::{deployer_needs, render_policy, runtime_needs, Need, Resource, Task};
use crate::flags::{CheckIam, PolicyKind, ProbeMode};
use crate::names::Names;
use crate::policy::Policies;
use crate::Failure;

/// Exit codes.
pub const DENIED: u8 = 1;
pub const INCONCLUSIVE: u8 = 2;
/// A credentials or identity failure: the code every task exits with for it.
pub const IDENTITY: u8 = crate::aws::CREDENTIALS;

/// One needed action and the ARNs it must be allowed on.
#[derive(Debug, Clone)]
pub struct Check {
    pub need: Need,
    pub arns: Vec<String>,
    names: Names,
}

impl Check {
    pub fn new(need: Need, names: &Names) -> Self {
        Check { need, arns: need.resource.arns(names), names: names.clone() }
    }

    /// The name a probe passes for `arn`: the table, bucket, role or function.
    fn target_name(&self, arn: &str) -> String {
        match self.need.resource {
            Resource::Tables => {
                if arn.ends_with(&format!("/{}", self.names.user_table())) {
                    self.names.user_table()
                } else {
                    self.names.record_table()
                }
            }
            Resource::Bucket | Resource::Runtime(_) => self.names.bucket.clone(),
            Resource::Function | Resource::FunctionVersions => self.names.function.clone(),
            Resource::Role => self.names.role.clone(),
            Resource::LogGroup => self.names.log_group(),
            Resource::Caller | Resource::Groups | Resource::ManagedPolicies | Resource::Any => String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "UPPERCASE")]
pub enum Decision {
    Allow,
    Deny { denial: Denial },
    Conditional { missing_context: Vec<String> },
    Unknown { reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Simulate,
    Probe,
    /// Read from the policy documents themselves.
    Policy,
}

/// Whose permissions a row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Principal {
    /// You: the developer running the tasks.
    Deployer,
    /// The service's Lambda execution role.
    ExecutionRole,
    /// The public, through the function URL's resource policy.
    FunctionUrl,
}

impl Principal {
    /// The policy a fix goes into.
    fn policy(self) -> &'static str {
        match self {
            Principal::ExecutionRole => "runtime",
            Principal::Deployer | Principal::FunctionUrl => "deployer",
        }
    }
}

/// One principal × action × resource.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub principal: Principal,
    pub principal_arn: String,
    pub action: String,
    pub resource: String,
    /// The catalogue entry the row checks (none for the trust policy and the URL's statements).
    #[serde(skip)]
    pub need: Option<Need>,
    #[serde(flatten)]
    pub decision: Decision,
    pub method: Method,
    pub fix: Option<String>,
}

impl Row {
    pub fn new(
        principal: Principal,
        principal_arn: &str,
        action: &str,
        resource: &str,
        decision: Decision,
        method: Method,
    ) -> Row {
        let fix = match &decision {
            Decision::Deny { denial } => Some(denial.fix(action, principal.policy())),
            Decision::Conditional { missing_context } => {
                Some(format!("allowed only under conditions ({}): check them", missing_context.join(", ")))
            }
            _ => None,
        };
        Row {
            principal,
            principal_arn: principal_arn.to_owned(),
            action: action.to_owned(),
            resource: resource.to_owned(),
            need: None,
            decision,
            method,
            fix,
        }
    }

    /// The row of a catalogue entry.
    pub fn of_need(
        principal: Principal,
        principal_arn: &str,
        need: Need,
        resource: &str,
        decision: Decision,
        method: Method,
    ) -> Row {
        Row {
            need: Some(need),
            ..Row::new(principal, principal_arn, need.action.name(), resource, decision, method)
        }
    }

    /// Replace the decision (and the fix that follows from it).
    fn decide(&mut self, decision: Decision, method: Method) {
        let need = self.need;
        *self = Row {
            need,
            ..Row::new(self.principal, &self.principal_arn, &self.action, &self.resource, decision, method)
        };
    }

    fn label(&self) -> String {
        match &self.decision {
            Decision::Allow => "ALLOW".into(),
            Decision::Deny { denial } => format!("DENY ({})", denial.describe()),
            Decision::Conditional { .. } => "CONDITIONAL".into(),
            Decision::Unknown { reason } => format!("UNKNOWN ({reason})"),
        }
    }
}

/// The caller, as STS and the credential chain describe it.
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    pub account: String,
    pub arn: String,
    pub principal_type: &'static str,
    pub credential_source: String,
    pub key_type: &'static str,
    pub expires: Option<String>,
    pub region: String,
    /// The ARN IAM evaluates policies for: the role behind an assumed-role session (`None`
    /// when it could not be found).
    pub policy_arn: Option<String>,
}

impl Identity {
    /// The IAM user name, for IAM users.
    pub fn user_name(&self) -> Option<String> {
        (self.principal_type == "user").then(|| self.arn.rsplit('/').next().unwrap_or_default().to_owned())
    }
}

impl CheckIam {
    /// The names a printed policy uses. With `--account` and a region (flag or configuration)
    /// printing makes no AWS call at all, so a developer without access yet can hand the policy
    /// to an admin; without `--account` the credentials' account is asked for.
    async fn policy_names(&self) -> anyhow::Result<crate::names::Names> {
        let usage = |message: String| Failure::usage(anyhow::anyhow!(message));
        let aws = self.aws.load_config(crate::catalogue::Task::CheckIam).await.map_err(|e| {
            usage(format!(
                "{e:#}: the ARNs need a region (pass --region, and --account if you have no credentials)"
            ))
        })?;
        let account = match &self.account {
            Some(account) => account.clone(),
            None => crate::aws::account(&aws).await.map_err(|e| {
                usage(format!(
                    "{e:#}\nthe ARNs need your account id: pass --account 123456789012 to print the policy without credentials"
                ))
            })?,
        };
        Ok(self.target.names(&account, &aws.region()))
    }

    pub async fn run(self) -> anyhow::Result<()> {
        if let Some(crate::flags::CheckIamCommand::Explain(explain)) = self.command {
            return explain.run().await;
        }
        if let Some(kind) = self.print_policy {
            let names = self.policy_names().await?;
            let tasks = self.policy_tasks();
            let (base, iam) = crate::catalogue::deployer_parts(&tasks);
            let policy = match kind {
                PolicyKind::Runtime => render_policy(&runtime_needs(), &names, self.any_resource),
                PolicyKind::Deployer => {
                    crate::catalogue::render_deployer_policy(&tasks, &names, self.any_resource)
                }
                PolicyKind::DeployerBase => render_policy(&base, &names, self.any_resource),
                PolicyKind::DeployerIam => render_policy(&iam, &names, self.any_resource),
                PolicyKind::Operator => render_policy(&Task::Reconcile.needs(), &names, self.any_resource),
            };
            println!("{}", serde_json::to_string_pretty(&policy)?);
            return Ok(());
        }
        let aws =
            self.aws.load(crate::catalogue::Task::CheckIam).await.map_err(|e| Failure::new(IDENTITY, e))?;
        let mut notes = Vec::new();
        let identity = identify(&aws, &mut notes).await?;
        // The deployed function names the stage's tables and bucket (a flag contradicting it is
        // refused, as in every task); one that cannot be read leaves the flags' or the stage's
        // defaults, said in a note, never an abort.
        let mut names = match crate::stage::existing(&aws, &self.target, &identity.account).await {
            Ok((names, _)) => names,
            Err(err) if err.downcast_ref::<Failure>().is_some() => return Err(err),
            Err(err) => {
                notes.push(format!(
                    "could not read the deployed function's tables and bucket, so the flags' (or the stage's defaults) are checked: {err:#}"
                ));
                self.target.names(&identity.account, &aws.region())
            }
        };
        names.caller_user = identity.user_name();

        let tasks = self.tasks();
        let checks: Vec<Check> = deployer_needs(&tasks).into_iter().map(|n| Check::new(n, &names)).collect();
        let iam = aws_sdk_iam::Client::new(&aws.sdk);
        let mut rows = deployer_rows(&aws, &iam, &identity, &checks, self.probe, &mut notes).await;
        let role = if self.skip_role {
            RoleState::Skipped
        } else {
            check_execution_role(&aws, &iam, &names, &mut rows, &mut notes).await
        };

        let report = report::Report::new(identity, &tasks, &checks, rows, notes, role, &names);
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            report.print(self.all);
        }
        match report.exit_code(self.strict) {
            0 => Ok(()),
            code => Err(Failure::new(code, anyhow::anyhow!("{}", report.line())).into()),
        }
    }

    /// The tasks to give a verdict on.
    fn tasks(&self) -> Vec<Task> {
        if self.task.is_empty() {
            Task::DEFAULT.to_vec()
        } else {
            self.task.clone()
        }
    }

    /// The tasks `--print-policy deployer` grants: check-iam's and logs' own needs too, by
    /// default.
    fn policy_tasks(&self) -> Vec<Task> {
        if self.task.is_empty() {
            [&Task::DEFAULT[..], &[Task::CheckIam, Task::Logs, Task::Status, Task::Rollback]].concat()
        } else {
            self.task.clone()
        }
    }
}

/// The deployer's rows: simulated, else probed, and what neither decides read from the caller's
/// own policies.
async fn deployer_rows(
    aws: &Aws,
    iam: &aws_sdk_iam::Client,
    identity: &Identity,
    checks: &[Check],
    mode: ProbeMode,
    notes: &mut Vec<String>,
) -> Vec<Row> {
    let unavailable = match &identity.policy_arn {
        Some(arn) => match simulate(iam, Principal::Deployer, arn, checks).await {
            Ok(rows) => return rows,
            Err(unavailable) => unavailable,
        },
        None => {
            simulate::Unavailable { message: "the role behind your session is unknown".into(), denied: None }
        }
    };
    notes.push(format!("simulation unavailable for you, probing instead: {}", unavailable.message));
    // Only write probes look at what exists; read-only runs need not look it up.
    let facts = match mode {
        ProbeMode::Conditional => probe::Facts::gather(aws, checks).await,
        ProbeMode::Read => probe::Facts::default(),
    };
    let mut rows = Vec::new();
    for check in checks {
        for arn in &check.arns {
            let decision = match (check.need.action, unavailable.denied) {
                // The failed simulation is itself the probe of this action.
                (Action::IamSimulatePrincipalPolicy, Some(denial)) => Decision::Deny { denial },
                (Action::IamSimulatePrincipalPolicy, None) => Decision::Unknown {
                    reason: format!("the endpoint cannot simulate ({})", unavailable.message),
                },
                _ => probe::probe(aws, &facts, check, arn, mode).await,
            };
            rows.push(Row::of_need(
                Principal::Deployer,
                &identity.arn,
                check.need,
                arn,
                decision,
                Method::Probe,
            ));
        }
    }
    decide_from_own_policies(iam, identity, &mut rows, notes).await;
    rows
}

/// Settle the rows neither simulation nor probes decided from the caller's own policies.
async fn decide_from_own_policies(
    iam: &aws_sdk_iam::Client,
    identity: &Identity,
    rows: &mut [Row],
    notes: &mut Vec<String>,
) {
    let undecided = |r: &Row| matches!(r.decision, Decision::Unknown { .. } | Decision::Conditional { .. });
    if !rows.iter().any(undecided) {
        return;
    }
    let policies = match (identity.principal_type, identity.user_name(), &identity.policy_arn) {
        ("root", ..) => Ok(Some(Policies {
            identity: vec![PolicyDocument::new(vec![iam::Statement::allow(
                "Root",
                ["*"].into_iter().collect(),
                ["*"].into_iter().collect(),
            )])],
            ..Policies::default()
        })),
        (_, Some(user), _) => crate::policy::read_user(iam, &user).await.map(Some),
        (_, None, Some(role)) if role.contains(":role/") => {
            crate::policy::read_role(iam, role.rsplit('/').next().unwrap_or_default()).await
        }
        _ => Ok(None),
    };
    let policies = match policies {
        Ok(Some(policies)) => policies,
        Ok(None) => return,
        Err(unread) => {
            // Said once, as a note: the same failed read appended to every undecided row (44 of
            // them against an emulator whose caller is no IAM user) buried the rows' own reasons.
            let count = rows.iter().filter(|r| undecided(r)).count();
            notes.push(format!(
                "could not read your own policies to settle {count} undecided rows (letting check-iam read them would): {}",
                unread.reason()
            ));
            return;
        }
    };
    let mut settled = 0;
    for row in rows.iter_mut().filter(|r| undecided(r)) {
        // The condition the real request carries, from the check the row was made for.
        let context: Vec<(&str, &str)> = row.need.and_then(|n| n.condition).into_iter().collect();
        let decision = role::decision(policies.evaluate(&row.action, &row.resource, &context));
        if matches!(decision, Decision::Allow | Decision::Deny { .. }) {
            settled += 1;
        }
        row.decide(decision, Method::Policy);
    }
    notes.push(format!(
        "{settled} rows marked [policy] were read from your own IAM policies: service control, resource and session policies are not visible there"
    ));
}

/// What check-iam could learn about the execution role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleState {
    /// Not asked for (`--skip-role`).
    Skipped,
    /// The role does not exist: deploy creates it from the catalogue.
    NotDeployed,
    /// Its rows are in the report (decided or not); and what it allows beyond the rendered
    /// runtime policy, when its policies could be read.
    Checked { over_granted: Vec<role::OverGrant> },
}

/// Set the fix of the execution role's denied rows: the routes that fail, and how to restore it.
fn routes_broken(rows: &mut [Row], names: &Names) {
    for row in rows.iter_mut().filter(|r| r.principal == Principal::ExecutionRole) {
        let Some(need) = row.need.filter(|_| matches!(row.decision, Decision::Deny { .. })) else {
            continue;
        };
        let routes: Vec<&str> = app::permissions::RUNTIME
            .iter()
            .filter(|p| p.action == need.action && names.runtime_arns(p.resource).contains(&row.resource))
            .flat_map(|p| p.routes.iter().copied())
            .collect();
        row.fix = Some(format!(
            "breaks {}: rerun `cargo xtask deploy`, which writes the role's policy from the catalogue",
            routes.join(", ")
        ));
    }
}

/// Simulate the runtime needs for the execution role, or read its policies; check its trust
/// policy and the function URL's resource policy. Denied reads become UNKNOWN rows naming the
/// permission that would decide them.
async fn check_execution_role(
    aws: &Aws,
    iam: &aws_sdk_iam::Client,
    names: &Names,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> RoleState {
    let role_arn = names.role_arn();
    let checks: Vec<Check> = runtime_needs().into_iter().map(|n| Check::new(n, names)).collect();
    let unknown_rows = |reason: &str| -> Vec<Row> {
        let trust = Row::new(
            Principal::ExecutionRole,
            "lambda.amazonaws.com",
            "sts:AssumeRole",
            &role_arn,
            Decision::Unknown { reason: reason.to_owned() },
            Method::Policy,
        );
        let needed = checks.iter().flat_map(|c| c.arns.iter().map(move |arn| (c.need, arn)));
        std::iter::once(trust)
            .chain(needed.map(|(need, arn)| {
                Row::of_need(
                    Principal::ExecutionRole,
                    &role_arn,
                    need,
                    arn,
                    Decision::Unknown { reason: reason.to_owned() },
                    Method::Policy,
                )
            }))
            .collect()
    };
    let policies = match crate::policy::read_role(iam, &names.role).await {
        Ok(None) => {
            notes.push(format!(
                "execution role {} does not exist yet: `cargo xtask deploy` creates it",
                names.role
            ));
            return RoleState::NotDeployed;
        }
        Ok(Some(policies)) => Some(policies),
        Err(unread) => {
            notes.push(format!("could not read the execution role: {}", unread.reason()));
            rows.extend(unknown_rows(&unread.reason()));
            None
        }
    };
    let over_granted = policies.as_ref().map(|p| role::over_grants(p, names)).unwrap_or_default();
    if let Some(policies) = &policies {
        let trusted = policies.trust.trusts_lambda();
        let decision = if trusted { Decision::Allow } else { Decision::Deny { denial: Denial::Implicit } };
        let mut trust = Row::new(
            Principal::ExecutionRole,
            "lambda.amazonaws.com",
            "sts:AssumeRole",
            &role_arn,
            decision,
            Method::Policy,
        );
        if !trusted {
            trust.fix = Some(
                "the role's trust policy must allow lambda.amazonaws.com: rerun `cargo xtask deploy`".into(),
            );
        }
        rows.push(trust);

        match simulate(iam, Principal::ExecutionRole, &role_arn, &checks).await {
            Ok(simulated) => rows.extend(simulated),
            Err(_) => {
                for check in &checks {
                    for arn in &check.arns {
                        let decision = role::decision(policies.evaluate(check.need.action.name(), arn, &[]));
                        rows.push(Row::of_need(
                            Principal::ExecutionRole,
                            &role_arn,
                            check.need,
                            arn,
                            decision,
                            Method::Policy,
                        ));
                    }
                }
            }
        }
        routes_broken(rows, names);
    }
    let lambda = aws_sdk_lambda::Client::new(&aws.sdk);
    match lambda.get_policy().function_name(&names.function).send().await {
        Ok(output) => {
            let policy = PolicyDocument::parse(output.policy().unwrap_or("{}")).unwrap_or_default();
            rows.extend(role::url_rows(&policy, &names.function_arn()));
        }
        Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => {
            notes.push(format!(
                "function {} (or its resource policy) does not exist yet: `cargo xtask deploy` creates it",
                names.function
            ));
        }
        Err(e) => {
            let info = ErrorInfo::of(&e);
            let reason = if info.is_access_denied() {
                format!("needs lambda:GetPolicy on {}", names.function_arn())
            } else {
                format!("lambda:GetPolicy on {} failed: {}", names.function, info.short())
            };
            for action in ["lambda:InvokeFunctionUrl", "lambda:InvokeFunction"] {
                let decision = Decision::Unknown { reason: reason.clone() };
                rows.push(Row::new(
                    Principal::FunctionUrl,
                    "*",
                    action,
                    &names.function_arn(),
                    decision,
                    Method::Policy,
                ));
            }
        }
    }
    RoleState::Checked { over_granted }
}

/// Who is calling, from STS and the credential chain. Failures exit with code 3 and the fix.
async fn identify(aws: &Aws, notes: &mut Vec<String>) -> anyhow::Result<Identity> {
    let fail = |e: anyhow::Error| anyhow::Error::from(Failure::new(IDENTITY, e));
    let provider =
        aws.sdk.credentials_provider().context("no AWS credentials provider is configured").map_err(fail)?;
    let credentials = provider.provide_credentials().await.map_err(|e| {
        fail(anyhow::anyhow!(
            "no usable AWS credentials ({e}): set AWS_PROFILE (run `aws sso login` for SSO profiles) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ))
    })?;
    let sts = aws_sdk_sts::Client::new(&aws.sdk);
    let caller = match sts.get_caller_identity().send().await {
        Ok(caller) => caller,
        // No answer at all: the same message every task gives (the endpoint, the bound).
        Err(e) if ErrorInfo::of(&e).transport.is_some() => {
            return Err(fail(crate::aws::explain(e, "sts:GetCallerIdentity", "your identity", aws)));
        }
        Err(e) => {
            // From the SDK, or from an XML body it could not read (the emulator's answer).
            let code = ErrorInfo::of(&e).reply.code.unwrap_or_default();
            let fix = match code.as_str() {
                "ExpiredToken" | "ExpiredTokenException" => {
                    "your session expired: run `aws sso login` or refresh the credentials"
                }
                "InvalidClientTokenId" => {
                    "the access key id is not valid: check AWS_ACCESS_KEY_ID or the profile"
                }
                "SignatureDoesNotMatch" => {
                    "the secret key is wrong, or this machine's clock is off: check both"
                }
                _ => "check the credentials and the endpoint",
            };
            return Err(fail(anyhow::anyhow!(
                "sts:GetCallerIdentity failed: {}\n  hint: {fix}",
                ErrorInfo::of(&e).line()
            )));
        }
    };
    let arn = caller.arn().unwrap_or_default().to_owned();
    let account = caller.account().unwrap_or_default().to_owned();
    let principal_type = principal_type(&arn);
    let policy_arn = if principal_type == "assumed role" {
        let iam = aws_sdk_iam::Client::new(&aws.sdk);
        match resolve_role_arn(&iam, &arn, caller.user_id().unwrap_or_default()).await {
            Ok(role) => Some(role),
            Err(e) => {
                notes.push(format!("{e:#}"));
                None
            }
        }
    } else {
        Some(arn.clone())
    };
    let key_type = if credentials.session_token().is_some() || credentials.access_key_id().starts_with("ASIA")
    {
        "temporary"
    } else {
        "long-term"
    };
    Ok(Identity {
        account,
        arn,
        principal_type,
        credential_source: credential_source(),
        key_type,
        expires: credentials.expiry().map(crate::aws::rfc3339),
        region: aws.region(),
        policy_arn,
    })
}

fn principal_type(arn: &str) -> &'static str {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
    if resource == "root" {
        "root"
    } else if resource.starts_with("assumed-role/") {
        "assumed role"
    } else if resource.starts_with("federated-user/") {
        "federated user"
    } else if resource.starts_with("user/") {
        "user"
    } else {
        "unknown"
    }
}

/// The role ARN (with its path, e.g. SSO's `aws-reserved/sso.amazonaws.com/`) behind an
/// assumed-role session: GetRole by the role name, or else ListRoles by the session's RoleId.
pub async fn resolve_role_arn(
    iam: &aws_sdk_iam::Client,
    session_arn: &str,
    user_id: &str,
) -> anyhow::Result<String> {
    let role_name =
        session_arn.rsplit(":assumed-role/").next().and_then(|r| r.split('/').next()).unwrap_or_default();
    if let Ok(output) = iam.get_role().role_name(role_name).send().await {
        if let Some(role) = output.role {
            return Ok(role.arn);
        }
    }
    let role_id = user_id.split(':').next().unwrap_or_default();
    let mut pages = iam.list_roles().into_paginator().send();
    while let Some(page) = pages.next().await {
        let Ok(page) = page else { break };
        if let Some(role) = page.roles().iter().find(|r| r.role_id() == role_id) {
            return Ok(role.arn().to_owned());
        }
    }
    anyhow::bail!(
        "cannot find the role behind {session_arn} (iam:GetRole and iam:ListRoles failed or found nothing): allow iam:GetRole on it, or run check-iam as a user"
    )
}

fn credential_source() -> String {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if set("AWS_ACCESS_KEY_ID") {
        "environment (AWS_ACCESS_KEY_ID)".into()
    } else if set("AWS_WEB_IDENTITY_TOKEN_FILE") {
        "web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)".into()
    } else if set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") || set("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        "container credentials endpoint".into()
    } else if let Some(profile) = std::env::var_os("AWS_PROFILE") {
        format!("profile {} (static, SSO or process)", profile.to_string_lossy())
    } else {
        "default profile, SSO or instance metadata (IMDS)".into()
    }
}
