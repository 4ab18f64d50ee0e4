//! `cargo xtask check-iam explain`: read the AccessDenied messages in a block of text (a failed
//! command's stderr, a log file, a chat paste) in every shape AWS documents, and give the
//! cause-specific fix. No AWS call: everything comes from the message and the catalogues.

use std::io::Read;

use anyhow::Context;
use serde::Serialize;

use crate::catalogue::{deployer_needs, render_policy, runtime_needs, Need, Task};
use crate::flags::Explain;
use crate::Failure;

/// Exit code when at least one denial was explained.
const EXPLAINED: u8 = 1;

/// The kind of policy a message blames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyType {
    Identity,
    Boundary,
    Session,
    Scp,
    Rcp,
    VpcEndpoint,
    ResourceBased,
    RoleTrust,
}

impl PolicyType {
    /// The policy type a message's wording names.
    fn from_words(words: &str) -> Option<PolicyType> {
        let w = words.to_ascii_lowercase();
        let table = [
            ("identity-based policy", PolicyType::Identity),
            ("permissions boundary", PolicyType::Boundary),
            ("session policy", PolicyType::Session),
            ("sessions policy", PolicyType::Session),
            ("service control policy", PolicyType::Scp),
            ("resource control policy", PolicyType::Rcp),
            ("vpc endpoint policy", PolicyType::VpcEndpoint),
            ("resource-based policy", PolicyType::ResourceBased),
            ("role trust policy", PolicyType::RoleTrust),
        ];
        table
            .iter()
            .filter_map(|(text, t)| w.find(text).map(|at| (at, *t)))
            .min_by_key(|(at, _)| *at)
            .map(|(_, t)| t)
    }

    fn name(self) -> &'static str {
        match self {
            PolicyType::Identity => "identity-based policy",
            PolicyType::Boundary => "permissions boundary",
            PolicyType::Session => "session policy",
            PolicyType::Scp => "service control policy (SCP)",
            PolicyType::Rcp => "resource control policy (RCP)",
            PolicyType::VpcEndpoint => "VPC endpoint policy",
            PolicyType::ResourceBased => "resource-based policy",
            PolicyType::RoleTrust => "role trust policy",
        }
    }
}

/// Why AWS denied it, as far as the message says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Cause {
    /// `because no <type> allows the <action> action`
    Implicit { policy: PolicyType },
    /// `with an explicit deny in a <type>`
    Explicit { policy: PolicyType },
    /// No reason given (older services, the emulator).
    Unstated,
}

/// One AccessDenied message, taken apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denied {
    pub principal: Option<String>,
    pub action: String,
    pub resource: Option<String>,
    pub cause: Cause,
    /// "transitively through a service control policy": the policy type that passed the
    /// denial on.
    pub through: Option<PolicyType>,
    /// The ARN of the denying policy, when the message names it.
    pub policy_arn: Option<String>,
    pub authorization_id: Option<String>,
    pub request_id: Option<String>,
}

/// Undo the envelopes a message may arrive in: XML entities, JSON string escapes, line breaks.
fn normalize(text: &str) -> String {
    let unescaped = text
        .replace("\\\"", "\"")
        .replace("\\n", " ")
        .replace("\\/", "/")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    unescaped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A token: up to the next space, without the punctuation that ends a sentence or an envelope.
fn token(text: &str) -> &str {
    let end = text
        .find(|c: char| c.is_whitespace() || matches!(c, '<' | '"' | ',' | ')' | '\''))
        .unwrap_or(text.len());
    text[..end].trim_end_matches(['.', ';', ':'])
}

fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack.to_ascii_lowercase().find(&needle.to_ascii_lowercase())
}

/// What a denial message's reason says: the cause, the policy type it came through, and the
/// text from the reason on (where a policy ARN follows).
pub struct Reason<'a> {
    pub cause: Cause,
    pub through: Option<PolicyType>,
    pub reason: &'a str,
}

/// Read the reason in `text` (`because no <type> allows …`, `with an explicit deny in a <type>
/// [transitively through a <type>]`); the whole of `text` when it states none.
pub fn reason(text: &str) -> Reason<'_> {
    let (cause, reason_at) = if let Some(r) = find_ci(text, "because no ") {
        let words = &text[r..];
        (PolicyType::from_words(words).map(|policy| Cause::Implicit { policy }), Some(r))
    } else if let Some(r) = find_ci(text, "with an explicit deny in ") {
        let words = &text[r..];
        let blamed = match find_ci(words, "transitively through") {
            Some(t) => &words[..t],
            None => words,
        };
        (PolicyType::from_words(blamed).map(|policy| Cause::Explicit { policy }), Some(r))
    } else {
        (None, None)
    };
    let reason = reason_at.map(|r| &text[r..]).unwrap_or(text);
    let through = find_ci(reason, "transitively through").and_then(|t| PolicyType::from_words(&reason[t..]));
    Reason { cause: cause.unwrap_or(Cause::Unstated), through, reason }
}

/// Every AccessDenied message in `text`.
pub fn parse(text: &str) -> Vec<Denied> {
    let text = normalize(text);
    let lower = text.to_ascii_lowercase();
    let marker = "is not authorized to perform";
    let starts: Vec<usize> = lower.match_indices(marker).map(|(at, _)| at).collect();
    let mut found = Vec::new();
    for (i, &at) in starts.iter().enumerate() {
        let before = &text[..at];
        let after_end = starts.get(i + 1).copied().unwrap_or(text.len());
        // The message's tail, up to the next message.
        let tail = &text[at + marker.len()..after_end];
        let principal = before
            .rfind("User: ")
            .or_else(|| before.rfind("user: "))
            .map(|u| token(&before[u + "User: ".len()..]).to_owned())
            .filter(|p| !p.is_empty());
        let tail_trimmed = tail.trim_start_matches(':').trim_start();
        let action = token(tail_trimmed).to_owned();
        if action.is_empty() || !action.contains(':') {
            continue;
        }
        let rest = &tail_trimmed[action.len()..];
        let resource = find_ci(rest, "on resource:")
            .filter(|&r| r < 4)
            .map(|r| token(rest[r + "on resource:".len()..].trim_start().trim_start_matches('"')).to_owned())
            .filter(|r| !r.is_empty());
        let Reason { cause, through, reason } = reason(rest);
        let policy_arn = reason
            .split_whitespace()
            .map(token)
            .find(|t| t.starts_with("arn:aws") && (t.contains(":policy/") || t.contains("policy/")))
            .map(str::to_owned);
        let labelled = |labels: &[&str]| {
            labels.iter().find_map(|label| {
                find_ci(rest, label)
                    .map(|l| token(rest[l + label.len()..].trim_start_matches([':', ' ', '='])).to_owned())
            })
        };
        found.push(Denied {
            principal,
            action,
            resource,
            cause,
            through,
            policy_arn,
            authorization_id: labelled(&["authorization id", "authorizationid", "authorization-id"]),
            request_id: labelled(&["request id", "<RequestId>", "requestid", "x-amzn-requestid"])
                .filter(|id| !id.is_empty()),
        });
    }
    found
}

/// Who needs an action, from the catalogues.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// `task:<name>` or `service`.
    pub needed_by: String,
    pub why: String,
}

fn entries(action: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    for task in Task::ALL {
        if task.needs().iter().any(|n| n.action.name().eq_ignore_ascii_case(action)) {
            entries.push(Entry {
                needed_by: format!("cargo xtask {}", task.name()),
                why: "a step of the task".into(),
            });
        }
    }
    for permission in
        app::permissions::RUNTIME.iter().filter(|p| p.action.name().eq_ignore_ascii_case(action))
    {
        entries.push(Entry { needed_by: "the service (execution role)".into(), why: permission.why.into() });
    }
    entries
}

/// The explanation of one denial.
#[derive(Debug, Serialize)]
pub struct Explained {
    #[serde(flatten)]
    pub denied: Denied,
    pub catalogue: Vec<Entry>,
    /// What to do, in one or two sentences.
    pub fix: String,
    /// The statement to attach, for implicit identity denials of catalogued actions.
    pub statement: Option<iam::PolicyDocument>,
}

/// Whether the principal is the stage's execution role (a session of it, or the role).
fn is_execution_role(principal: Option<&str>, names: &crate::names::Names) -> bool {
    principal.is_some_and(|p| {
        p.contains(&format!("role/{}", names.role)) || p.contains(&format!("assumed-role/{}/", names.role))
    })
}

pub fn explain(denied: Denied, names: &crate::names::Names) -> Explained {
    let catalogue = entries(&denied.action);
    let action = &denied.action;
    let policy_arn = denied.policy_arn.as_deref().map(|a| format!(" ({a})")).unwrap_or_default();
    let runtime = is_execution_role(denied.principal.as_deref(), names);
    let needs: Vec<Need> = if runtime {
        runtime_needs().into_iter().filter(|n| n.action.name().eq_ignore_ascii_case(action)).collect()
    } else {
        deployer_needs(&Task::ALL)
            .into_iter()
            .filter(|n| n.action.name().eq_ignore_ascii_case(action))
            .collect()
    };
    // Only the catalogue entries on the resource the message names, when it names one of them.
    let on_resource: Vec<Need> = needs
        .iter()
        .filter(|n| denied.resource.as_ref().is_some_and(|r| n.resource.arns(names).contains(r)))
        .copied()
        .collect();
    let needs = if on_resource.is_empty() { needs } else { on_resource };
    let no_allow = "adding an Allow will not help";
    let (fix, statement) = match (&denied.cause, denied.through) {
        (_, Some(PolicyType::Scp)) | (Cause::Explicit { policy: PolicyType::Scp }, _) => (
            format!("{no_allow}: a Deny in a service control policy{policy_arn} blocks {action}; your AWS organization's administrator must remove or narrow it, or you use an account it does not apply to"),
            None,
        ),
        (Cause::Implicit { policy: PolicyType::Scp }, _) => (
            format!("{no_allow} to your own policies: no service control policy{policy_arn} allows {action}; your AWS organization's administrator must allow it in the SCPs over this account"),
            None,
        ),
        (Cause::Implicit { policy: PolicyType::Rcp } | Cause::Explicit { policy: PolicyType::Rcp }, _) => (
            format!("{no_allow}: a resource control policy{policy_arn} of your AWS organization blocks {action} on this resource; its administrator must change it"),
            None,
        ),
        (Cause::Implicit { policy: PolicyType::Boundary }, _) => (
            format!("{no_allow} to your policies: your permissions boundary{policy_arn} does not allow {action}; whoever manages IAM in the account must add it to the boundary policy"),
            None,
        ),
        (Cause::Explicit { policy: PolicyType::Boundary }, _) => (
            format!("{no_allow}: your permissions boundary{policy_arn} denies {action}; whoever manages IAM in the account must remove or narrow that Deny"),
            None,
        ),
        (Cause::Implicit { policy: PolicyType::Session } | Cause::Explicit { policy: PolicyType::Session }, _) => (
            format!("{no_allow} to your role: the session policy{policy_arn} passed when your session was created limits {action}; start a session without it, or ask whoever issues your credentials (SSO permission set, CI role assumption) to change it"),
            None,
        ),
        (Cause::Implicit { policy: PolicyType::VpcEndpoint } | Cause::Explicit { policy: PolicyType::VpcEndpoint }, _) => (
            format!("{no_allow} to your policies: the VPC endpoint the request went through has a policy{policy_arn} that blocks {action}; its network administrator must change it, or call from outside that VPC"),
            None,
        ),
        (Cause::Implicit { policy: PolicyType::ResourceBased } | Cause::Explicit { policy: PolicyType::ResourceBased }, _) => (
            format!("the resource's own policy{policy_arn} (bucket, function or key policy) decides {action}: its owner must allow you there or remove the Deny"),
            None,
        ),
        (Cause::Implicit { policy: PolicyType::RoleTrust } | Cause::Explicit { policy: PolicyType::RoleTrust }, _) => (
            format!("the role's trust policy{policy_arn} must let you assume it: its owner must change the trust policy"),
            None,
        ),
        (Cause::Explicit { policy: PolicyType::Identity }, _) => (
            format!("{no_allow}: a Deny statement{policy_arn} in the principal's own policies (user, group or role) blocks {action}; remove or narrow that Deny"),
            None,
        ),
        // A runtime action denied to someone who is not the stage's execution role: the service
        // needs it, the tooling never does.
        (Cause::Implicit { policy: PolicyType::Identity } | Cause::Unstated, _)
            if needs.is_empty() && runtime_needs().iter().any(|n| n.action.name().eq_ignore_ascii_case(action)) =>
        (
            format!(
                "{action} is needed by the service at run time (the routes above), through its execution role {}, which deploy gives it; the principal denied here is not that role: if the function runs with another role, redeploy; no task of the tooling calls {action}",
                names.role
            ),
            None,
        ),
        (Cause::Implicit { policy: PolicyType::Identity } | Cause::Unstated, _) if needs.is_empty() => (
            format!("{action} is in no catalogue of this project: none of its tasks or routes calls it, so the project cannot say which statement is right; check the command that failed"),
            None,
        ),
        (Cause::Implicit { policy: PolicyType::Identity } | Cause::Unstated, _) => {
            let statement = render_policy(&needs, names, false);
            let fix = if runtime {
                format!("the execution role lacks {action}: rerun `cargo xtask deploy --stage {}`, which writes the role's policy from the catalogue (this statement is part of it)", names.stage)
            } else {
                let whom = denied.principal.as_deref().unwrap_or("the principal");
                if needs.iter().all(|n| n.part == crate::catalogue::Part::Iam) {
                    format!("{action} manages permissions, so it is in the deployer policy's setup part (`cargo xtask check-iam --print-policy deployer-iam`), which a routine redeploy or rollback does not need: a deploy that creates the stage or repairs drift in these settings needs it; attach this statement to {whom}, or have someone who holds the setup part run this deploy")
                } else {
                    format!("allow {action}: attach this statement to {whom} (or all of `cargo xtask check-iam --print-policy deployer`)")
                }
            };
            (fix, Some(statement))
        }
    };
    Explained { denied, catalogue, fix, statement }
}

/// The account of an ARN (`arn:aws:iam::123456789012:user/x` → `123456789012`).
fn account_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
}

fn region_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

impl Explain {
    pub async fn run(self) -> anyhow::Result<()> {
        let text = match self.messages.as_slice() {
            [] if self.since.is_some() => self.read_logs().await?,
            [] => {
                return Err(Failure::new(
                    4,
                    anyhow::anyhow!("no message to explain: pass it as an argument, or `-` to read it from stdin (e.g. `cargo xtask deploy 2>&1 | cargo xtask check-iam explain -`)"),
                )
                .into())
            }
            [dash] if dash == "-" => {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).context("could not read the messages from stdin")?;
                text
            }
            messages => messages.join("\n"),
        };
        let denials = parse(&text);
        let explained: Vec<Explained> = denials
            .into_iter()
            .map(|denied| {
                let arns = [denied.resource.as_deref(), denied.principal.as_deref()];
                let account = arns.iter().flatten().find_map(|a| account_of(a)).unwrap_or("123456789012");
                let region = denied
                    .resource
                    .as_deref()
                    .and_then(region_of)
                    .map(str::to_owned)
                    .or_else(|| self.aws.region.clone())
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .unwrap_or_else(|| "us-east-1".into());
                let names = self.target.names(account, &region);
                explain(denied, &names)
            })
            .collect();
        if self.json {
            println!("{}", serde_json::to_string_pretty(&explained)?);
        } else if explained.is_empty() {
            println!("no AccessDenied or not-authorized message found");
        } else {
            for (i, e) in explained.iter().enumerate() {
                print_one(i + 1, e);
            }
        }
        if explained.is_empty() {
            Ok(())
        } else {
            Err(Failure::new(EXPLAINED, anyhow::anyhow!("{} denial(s) explained", explained.len())).into())
        }
    }
}

impl Explain {
    /// The stage's function log lines that mention a denial, from `--since` ago until now.
    async fn read_logs(&self) -> anyhow::Result<String> {
        let since = self.since.unwrap_or_default();
        let aws = self.aws.load(crate::catalogue::Task::CheckIam).await?;
        let account = crate::aws::account(&aws).await?;
        let names = self.target.names(&account, &aws.region());
        let group = names.log_group();
        let start = std::time::SystemTime::now()
            .checked_sub(since)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        let logs = aws_sdk_cloudwatchlogs::Client::new(&aws.sdk);
        let mut pages = logs
            .filter_log_events()
            .log_group_name(&group)
            .start_time(start)
            .filter_pattern("\"not authorized\"")
            .into_paginator()
            .send();
        let mut text = String::new();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                // Lambda creates the group on the function's first run: no logs, no denial.
                Err(aws_sdk_cloudwatchlogs::error::SdkError::ServiceError(e))
                    if e.err().is_resource_not_found_exception() =>
                {
                    eprintln!("log group {group} does not exist yet: the function has not run since it was deployed");
                    break;
                }
                Err(e) => return Err(crate::aws::explain(e, "logs:FilterLogEvents", &group, &aws)),
            };
            for event in page.events() {
                text.push_str(event.message().unwrap_or_default());
                text.push('\n');
            }
        }
        Ok(text)
    }
}

fn print_one(n: usize, e: &Explained) {
    let d = &e.denied;
    println!("denial {n}: {}", d.action);
    println!("  principal  {}", d.principal.as_deref().unwrap_or("(not in the message)"));
    println!("  resource   {}", d.resource.as_deref().unwrap_or("(not in the message)"));
    let cause = match &d.cause {
        Cause::Implicit { policy } => format!("implicit: no {} allows it", policy.name()),
        Cause::Explicit { policy } => format!("explicit deny in the {}", policy.name()),
        Cause::Unstated => "not stated (no policy allows it, as far as the message says)".into(),
    };
    let through = d.through.map(|t| format!(", passed on through the {}", t.name())).unwrap_or_default();
    println!("  cause      {cause}{through}");
    for (label, value) in
        [("policy", &d.policy_arn), ("auth id", &d.authorization_id), ("request id", &d.request_id)]
    {
        if let Some(value) = value {
            println!("  {label:<10} {value}");
        }
    }
    if e.catalogue.is_empty() {
        println!("  needed by  nothing in this project's catalogues");
    }
    for entry in &e.catalogue {
        println!("  needed by  {} ({})", entry.needed_by, entry.why);
    }
    println!("  fix        {}", e.fix);
    if let Some(statement) = &e.statement {
        println!("{}", serde_json::to_string_pretty(statement).unwrap_or_default());
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages in the shapes AWS documents (the IAM user guide's "Troubleshoot access denied
    /// error messages"), the envelopes they arrive in, and the emulator's short form.
    const CORPUS: &str = include_str!("../../tests/fixtures/access-denied.txt");

    fn cases() -> Vec<(String, String)> {
        CORPUS
            .split("\n---\n")
            .filter(|c| !c.trim().is_empty())
            .map(|c| {
                let (expect, message) =
                    c.trim().split_once('\n').expect("an expectation line, then the message");
                (expect.trim_start_matches("# ").to_owned(), message.to_owned())
            })
            .collect()
    }

    fn describe(d: &Denied) -> String {
        let cause = match &d.cause {
            Cause::Implicit { policy } => format!("implicit {policy:?}"),
            Cause::Explicit { policy } => format!("explicit {policy:?}"),
            Cause::Unstated => "unstated".into(),
        };
        let mut parts = vec![d.action.clone(), cause];
        if let Some(t) = d.through {
            parts.push(format!("through {t:?}"));
        }
        if let Some(r) = &d.resource {
            parts.push(format!("on {r}"));
        }
        if let Some(p) = &d.policy_arn {
            parts.push(format!("policy {p}"));
        }
        if let Some(a) = &d.authorization_id {
            parts.push(format!("auth {a}"));
        }
        if let Some(r) = &d.request_id {
            parts.push(format!("request {r}"));
        }
        parts.join(" | ")
    }

    #[test]
    fn every_documented_shape_is_read() {
        let cases = cases();
        assert!(cases.len() >= 15, "the corpus has {} messages", cases.len());
        for (expected, message) in cases {
            let found = parse(&message);
            assert_eq!(found.len(), 1, "{message}");
            assert_eq!(describe(&found[0]), expected, "{message}");
            assert!(found[0].principal.as_deref().is_some_and(|p| p.starts_with("arn:")), "{message}");
        }
    }

    #[test]
    fn several_messages_in_one_log_are_each_found() {
        let log = cases().into_iter().map(|(_, m)| m).collect::<Vec<_>>().join("\nsome other log line\n");
        assert_eq!(parse(&log).len(), cases().len());
        assert!(parse("all good, nothing denied here").is_empty());
    }

    fn names() -> crate::names::Names {
        crate::names::Names::new("dev", "123456789012", "us-east-1", "", None)
    }

    #[test]
    fn an_implicit_identity_denial_gets_the_scoped_statement_from_the_catalogue() {
        let d = parse("User: arn:aws:iam::123456789012:user/dev is not authorized to perform: dynamodb:CreateTable on resource: arn:aws:dynamodb:us-east-1:123456789012:table/record_user because no identity-based policy allows the dynamodb:CreateTable action").remove(0);
        let e = explain(d, &names());
        let statement = e.statement.expect("a statement").to_value().to_string();
        assert!(
            statement.contains("arn:aws:dynamodb:us-east-1:123456789012:table/record_user"),
            "{statement}"
        );
        assert!(!statement.contains("\"*\""), "{statement}");
        assert!(e.catalogue.iter().any(|c| c.needed_by == "cargo xtask create-tables"));
    }

    #[test]
    fn no_allow_is_offered_where_an_allow_cannot_help() {
        for reason in [
            "with an explicit deny in a service control policy: arn:aws:organizations::111122223333:policy/o-a1b2c3/service_control_policy/p-1a2b3c",
            "because no permissions boundary allows the dynamodb:CreateTable action",
            "with an explicit deny in an identity-based policy",
            "because no session policy allows the dynamodb:CreateTable action",
        ] {
            let d = parse(&format!("User: arn:aws:iam::123456789012:user/dev is not authorized to perform: dynamodb:CreateTable {reason}")).remove(0);
            let e = explain(d, &names());
            assert!(e.statement.is_none(), "{reason}");
            assert!(e.fix.contains("will not help"), "{reason}: {}", e.fix);
        }
        let scp = parse("User: arn:aws:iam::123456789012:user/dev is not authorized to perform: dynamodb:CreateTable with an explicit deny in a service control policy: arn:aws:organizations::111122223333:policy/o-a1b2c3/service_control_policy/p-1a2b3c").remove(0);
        assert!(explain(scp, &names()).fix.contains("p-1a2b3c"), "the policy ARN is named");
    }

    #[test]
    fn a_runtime_action_denied_to_another_principal_is_not_called_uncatalogued() {
        let d = parse("User: arn:aws:sts::123456789012:assumed-role/some-other-role/s is not authorized to perform: dynamodb:Query on resource: arn:aws:dynamodb:us-east-1:123456789012:table/record_record/index/user_id-created_at-index because no identity-based policy allows the dynamodb:Query action").remove(0);
        let e = explain(d, &names());
        assert!(!e.catalogue.is_empty(), "the routes that need it are named");
        assert!(!e.fix.contains("in no catalogue"), "{}", e.fix);
        assert!(e.fix.contains("execution role"), "{}", e.fix);
    }

    #[test]
    fn an_action_outside_the_catalogues_is_said_so() {
        let d = parse("User: arn:aws:iam::123456789012:user/dev is not authorized to perform: ec2:RunInstances because no identity-based policy allows the ec2:RunInstances action").remove(0);
        let e = explain(d, &names());
        assert!(e.catalogue.is_empty());
        assert!(e.fix.contains("in no catalogue"), "{}", e.fix);
    }

    #[test]
    fn the_execution_role_is_pointed_at_deploy() {
        let d = parse("User: arn:aws:sts::123456789012:assumed-role/recording-server-dev-lambda/recording-server-dev is not authorized to perform: dynamodb:Query on resource: arn:aws:dynamodb:us-east-1:123456789012:table/record_record/index/user_id-created_at-index because no identity-based policy allows the dynamodb:Query action").remove(0);
        let e = explain(d, &names());
        assert!(e.fix.contains("cargo xtask deploy --stage dev"), "{}", e.fix);
        assert!(e.catalogue.iter().any(|c| c.why.contains("list the caller's records")));
    }
}
