//! `cargo xtask check-iam`: who am I, and may I (and the service's role) do everything the
//! project needs? Simulation first, probes as fallback; one row per principal × action ×
//! resource, with the fix.

mod classify;
mod probe;
pub mod role;
mod simulate;

pub use classify::{classify, xml_message, Denial};
pub use simulate::simulate;

use anyhow::Context;
use aws_sdk_iam::error::SdkError;
use aws_sdk_sts::config::ProvideCredentials;
use serde::Serialize;

use crate::aws::Aws;
use crate::catalogue::{deployer_needs, render_policy, runtime_needs, Need, Resource, Task};
use crate::flags::{CheckIam, PolicyKind};
use crate::names::Names;
use crate::Failure;

/// Exit codes.
pub const DENIED: u8 = 1;
pub const INCONCLUSIVE: u8 = 2;
pub const IDENTITY: u8 = 3;

/// How far probes may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeMode {
    /// Read-only calls only
    Read,
    /// Also writes that cannot change anything (invalid requests, or on absent resources)
    Conditional,
}

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
            Resource::Function => self.names.function.clone(),
            Resource::Role => self.names.role.clone(),
            Resource::Any => String::new(),
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

/// One principal × action × resource.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub principal: String,
    pub principal_arn: String,
    pub action: String,
    pub resource: String,
    #[serde(flatten)]
    pub decision: Decision,
    pub method: Method,
    pub fix: Option<String>,
}

impl Row {
    pub fn new(
        principal: &str,
        principal_arn: &str,
        action: &str,
        resource: &str,
        decision: Decision,
        method: Method,
    ) -> Row {
        let policy = if principal == role::ROLE { "runtime" } else { "deployer" };
        let fix = match &decision {
            Decision::Deny { denial } => Some(denial.fix(action, policy)),
            Decision::Conditional { missing_context } => {
                Some(format!("allowed only under conditions ({}): check them", missing_context.join(", ")))
            }
            _ => None,
        };
        Row {
            principal: principal.to_owned(),
            principal_arn: principal_arn.to_owned(),
            action: action.to_owned(),
            resource: resource.to_owned(),
            decision,
            method,
            fix,
        }
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
    /// The ARN IAM evaluates policies for: the role behind an assumed-role session.
    pub policy_arn: String,
}

impl CheckIam {
    pub async fn run(self) -> anyhow::Result<()> {
        let aws = self.aws.load().await.map_err(|e| Failure::new(IDENTITY, e))?;
        let identity = identify(&aws).await?;
        let names = self.target.names(&identity.account, &aws.region());
        if let Some(kind) = self.print_policy {
            let needs = match kind {
                PolicyKind::Runtime => runtime_needs(),
                PolicyKind::Deployer => deployer_needs(&self.tasks()),
            };
            println!("{}", serde_json::to_string_pretty(&render_policy(&needs, &names, self.any_resource))?);
            return Ok(());
        }

        let mut rows = Vec::new();
        let mut notes = Vec::new();
        let checks: Vec<Check> =
            deployer_needs(&self.tasks()).into_iter().map(|n| Check::new(n, &names)).collect();
        let iam = aws_sdk_iam::Client::new(&aws.sdk);
        match simulate(&iam, "deployer", &identity.policy_arn, &checks).await {
            Ok(simulated) => rows.extend(simulated),
            Err(unavailable) => {
                notes.push(format!(
                    "simulation unavailable for you, probing instead: {}",
                    unavailable.message
                ));
                for check in &checks {
                    for arn in &check.arns {
                        let decision = match (check.need.action, unavailable.denied) {
                            // The failed simulation is itself the probe of this action.
                            ("iam:SimulatePrincipalPolicy", Some(denial)) => Decision::Deny { denial },
                            ("iam:SimulatePrincipalPolicy", None) => Decision::Unknown {
                                reason: "the endpoint cannot simulate (see the note)".into(),
                            },
                            _ => probe::probe(&aws, check, arn, self.probe).await,
                        };
                        rows.push(Row::new(
                            "deployer",
                            &identity.arn,
                            check.need.action,
                            arn,
                            decision,
                            Method::Probe,
                        ));
                    }
                }
            }
        }
        if !self.skip_role {
            check_execution_role(&aws, &iam, &names, &mut rows, &mut notes).await?;
        }

        let summary = Summary::of(&rows);
        if self.json {
            let report =
                serde_json::json!({ "identity": identity, "rows": rows, "notes": notes, "summary": summary });
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_report(&identity, &rows, &notes, &summary);
        }
        match summary.exit_code(self.strict) {
            0 => Ok(()),
            code => Err(Failure::new(code, anyhow::anyhow!("{}", summary.line())).into()),
        }
    }

    fn tasks(&self) -> Vec<Task> {
        if self.task.is_empty() {
            vec![Task::CreateTables, Task::Deploy, Task::Destroy, Task::CheckIam]
        } else {
            self.task.clone()
        }
    }
}

/// Simulate the runtime needs for the execution role, or read its policies; check its trust
/// policy and the function URL's resource policy.
async fn check_execution_role(
    aws: &Aws,
    iam: &aws_sdk_iam::Client,
    names: &Names,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let Some(policies) = role::read_role(aws, &names.role).await? else {
        notes.push(format!(
            "execution role {} does not exist yet: `cargo xtask deploy` creates it",
            names.role
        ));
        return Ok(());
    };
    let role_arn = names.role_arn();
    let trusted = role::trusts_lambda(&policies.trust);
    let decision = if trusted { Decision::Allow } else { Decision::Deny { denial: Denial::Implicit } };
    let mut trust =
        Row::new(role::ROLE, "lambda.amazonaws.com", "sts:AssumeRole", &role_arn, decision, Method::Policy);
    if !trusted {
        trust.fix = Some(
            "the role's trust policy must allow lambda.amazonaws.com: rerun `cargo xtask deploy`".into(),
        );
    }
    rows.push(trust);
    let checks: Vec<Check> = runtime_needs().into_iter().map(|n| Check::new(n, names)).collect();
    match simulate(iam, role::ROLE, &role_arn, &checks).await {
        Ok(simulated) => rows.extend(simulated),
        Err(_) => {
            for check in &checks {
                for arn in &check.arns {
                    let decision = role::evaluate(&policies.documents, check.need.action, arn);
                    rows.push(Row::new(
                        role::ROLE,
                        &role_arn,
                        check.need.action,
                        arn,
                        decision,
                        Method::Policy,
                    ));
                }
            }
        }
    }
    let lambda = aws_sdk_lambda::Client::new(&aws.sdk);
    match lambda.get_policy().function_name(&names.function).send().await {
        Ok(output) => {
            let policy = serde_json::from_str(output.policy().unwrap_or("{}")).unwrap_or_default();
            rows.extend(role::url_permissions(&policy, &names.function_arn()));
        }
        Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => {
            notes.push(format!(
                "function {} (or its resource policy) does not exist yet: `cargo xtask deploy` creates it",
                names.function
            ));
        }
        Err(e) => notes.push(format!(
            "could not read the function URL's policy: {}",
            crate::aws::explain(e, "lambda:GetPolicy", &names.function, aws)
        )),
    }
    Ok(())
}

/// Who is calling, from STS and the credential chain. Failures exit with code 3 and the fix.
async fn identify(aws: &Aws) -> anyhow::Result<Identity> {
    let fail = |e: anyhow::Error| anyhow::Error::from(Failure::new(IDENTITY, e));
    let provider =
        aws.sdk.credentials_provider().context("no AWS credentials provider is configured").map_err(fail)?;
    let credentials = provider.provide_credentials().await.map_err(|e| {
        fail(anyhow::anyhow!(
            "no usable AWS credentials ({}): set AWS_PROFILE (run `aws sso login` for SSO profiles) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            aws_sdk_iam::error::DisplayErrorContext(&e)
        ))
    })?;
    let sts = aws_sdk_sts::Client::new(&aws.sdk);
    let caller = match sts.get_caller_identity().send().await {
        Ok(caller) => caller,
        Err(e) => {
            let code = e
                .as_service_error()
                .and_then(|s| aws_sdk_sts::error::ProvideErrorMetadata::code(s))
                .unwrap_or_default()
                .to_owned();
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
                "sts:GetCallerIdentity failed: {fix}\n  ({})",
                aws_sdk_sts::error::DisplayErrorContext(&e)
            )));
        }
    };
    let arn = caller.arn().unwrap_or_default().to_owned();
    let account = caller.account().unwrap_or_default().to_owned();
    let principal_type = principal_type(&arn);
    let policy_arn = if principal_type == "assumed role" {
        resolve_role_arn(&aws_sdk_iam::Client::new(&aws.sdk), &arn, caller.user_id().unwrap_or_default())
            .await?
    } else {
        arn.clone()
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

#[derive(Debug, Serialize)]
struct Summary {
    allowed: usize,
    denied: usize,
    inconclusive: usize,
}

impl Summary {
    fn of(rows: &[Row]) -> Summary {
        let count = |f: fn(&Decision) -> bool| rows.iter().filter(|r| f(&r.decision)).count();
        Summary {
            allowed: count(|d| matches!(d, Decision::Allow)),
            denied: count(|d| matches!(d, Decision::Deny { .. })),
            inconclusive: count(|d| matches!(d, Decision::Conditional { .. } | Decision::Unknown { .. })),
        }
    }

    fn exit_code(&self, strict: bool) -> u8 {
        match (self.denied, self.inconclusive, strict) {
            (0, 0, _) => 0,
            (0, _, false) => INCONCLUSIVE,
            _ => DENIED,
        }
    }

    fn line(&self) -> String {
        format!("{} allowed, {} denied, {} inconclusive", self.allowed, self.denied, self.inconclusive)
    }
}

fn print_report(identity: &Identity, rows: &[Row], notes: &[String], summary: &Summary) {
    println!("identity   {} ({}) in account {}", identity.arn, identity.principal_type, identity.account);
    if identity.policy_arn != identity.arn {
        println!("policies   of {}", identity.policy_arn);
    }
    println!(
        "credentials {} key from {}{}",
        identity.key_type,
        identity.credential_source,
        identity.expires.as_ref().map(|e| format!(", expires {e}")).unwrap_or_default()
    );
    println!("region     {}\n", identity.region);
    let width = rows.iter().map(|r| r.action.len()).max().unwrap_or(0);
    for row in rows {
        println!(
            "{:<14} {:<width$} {:<9} {} {}",
            row.principal,
            row.action,
            format!("[{:?}]", row.method).to_lowercase(),
            row.label(),
            row.resource
        );
        if let Some(fix) = &row.fix {
            println!("{:<14} {:<width$} fix: {fix}", "", "");
        }
    }
    for note in notes {
        println!("note: {note}");
    }
    println!("\n{}", summary.line());
}
