//! The check-iam report: a verdict per task and for the runtime role, the smallest statement
//! that unblocks, then the rows grouped by task. Text for people, `--json` for CI.

use iam::PolicyDocument;
use serde::Serialize;

use super::{Check, Decision, Identity, Principal, RoleState, Row, DENIED, INCONCLUSIVE};
use crate::catalogue::{render_policy, runtime_needs, Need, Task};
use crate::names::Names;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    Blocked,
    Undecided,
    /// The execution role allows more than the catalogue (and nothing is missing).
    #[serde(rename = "OVER-GRANTED")]
    OverGranted,
}

/// One task's (or the runtime role's) verdict.
#[derive(Debug, Serialize)]
pub struct Verdict {
    /// The task, or `runtime-role`.
    pub subject: String,
    pub status: Status,
    /// Denied actions.
    pub missing: Vec<String>,
    /// Actions nothing could decide.
    pub unknown: Vec<String>,
    /// Runtime role only: what its policies allow beyond the rendered runtime policy.
    pub over_granted: Vec<String>,
    pub detail: Option<String>,
}

impl Verdict {
    /// From the subject's rows, and (runtime role only) what its policies allow beyond the
    /// catalogue.
    fn of(subject: &str, rows: &[&Row], over_grants: &[super::role::OverGrant]) -> Verdict {
        let mut missing = Vec::new();
        let mut unknown = Vec::new();
        for row in rows {
            let list = match row.decision {
                Decision::Allow => continue,
                Decision::Deny { .. } => &mut missing,
                Decision::Conditional { .. } | Decision::Unknown { .. } => &mut unknown,
            };
            if !list.contains(&row.action) {
                list.push(row.action.clone());
            }
        }
        let mut over_granted: Vec<String> = Vec::new();
        for grant in over_grants {
            let entry = format!("{} on {}", grant.action, grant.resource);
            if !over_granted.contains(&entry) {
                over_granted.push(entry);
            }
        }
        let status = if !missing.is_empty() {
            Status::Blocked
        } else if !over_granted.is_empty() {
            Status::OverGranted
        } else if !unknown.is_empty() {
            Status::Undecided
        } else {
            Status::Ok
        };
        Verdict { subject: subject.to_owned(), status, missing, unknown, over_granted, detail: None }
    }

    /// `OK`, or what is wrong: `BLOCKED (n missing: …)`, `OVER-GRANTED (n beyond the
    /// catalogue: …)`, `UNDECIDED (n unknown: …)`, each that applies.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("BLOCKED ({} missing: {})", self.missing.len(), self.missing.join(", ")));
        }
        if !self.over_granted.is_empty() {
            let n = self.over_granted.len();
            parts.push(format!("OVER-GRANTED ({n} beyond the catalogue: {})", self.over_granted.join(", ")));
        }
        if !self.unknown.is_empty() {
            let shown: Vec<&str> = self.unknown.iter().take(4).map(String::as_str).collect();
            let more = if self.unknown.len() > shown.len() { ", …" } else { "" };
            parts.push(format!("UNDECIDED ({} unknown: {}{more})", self.unknown.len(), shown.join(", ")));
        }
        let label = if parts.is_empty() { "OK".to_owned() } else { parts.join("; ") };
        match &self.detail {
            Some(detail) => format!("{label} ({detail})"),
            None => label,
        }
    }
}

/// What to change: the statement that grants every implicitly denied action, and the denials an
/// Allow cannot fix.
#[derive(Debug, Serialize)]
pub struct Fix {
    /// Attach to this principal.
    pub attach_to: String,
    pub statement: Option<PolicyDocument>,
    /// One line per denial an added Allow would not fix (SCP, boundary, explicit deny).
    pub not_fixed_by_allow: Vec<String>,
    /// The execution role's missing statements (deploy writes them).
    pub runtime: Option<PolicyDocument>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub allowed: usize,
    pub denied: usize,
    pub inconclusive: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub identity: Identity,
    pub verdicts: Vec<Verdict>,
    pub fix: Fix,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    /// What the execution role allows beyond the rendered runtime policy.
    pub over_granted: Vec<super::role::OverGrant>,
    pub summary: Summary,
    #[serde(skip)]
    groups: Vec<(String, Vec<usize>)>,
}

const RUNTIME: &str = "runtime-role";

impl Report {
    pub fn new(
        identity: Identity,
        tasks: &[Task],
        checks: &[Check],
        rows: Vec<Row>,
        notes: Vec<String>,
        role: RoleState,
        names: &Names,
    ) -> Report {
        let mut groups = Vec::new();
        let mut verdicts = Vec::new();
        for task in tasks {
            let needs = task.needs();
            let indices: Vec<usize> = (0..rows.len())
                .filter(|&i| {
                    let r = &rows[i];
                    r.principal == Principal::Deployer
                        && r.need.is_some_and(|need| needs.contains(&need))
                        && checks.iter().any(|c| Some(c.need) == r.need && c.arns.contains(&r.resource))
                })
                .collect();
            let picked: Vec<&Row> = indices.iter().map(|&i| &rows[i]).collect();
            verdicts.push(Verdict::of(task.name(), &picked, &[]));
            groups.push((task.name().to_owned(), indices));
        }
        let over_granted = match &role {
            RoleState::Checked { over_granted } => over_granted.clone(),
            _ => Vec::new(),
        };
        if role != RoleState::Skipped {
            let indices: Vec<usize> =
                (0..rows.len()).filter(|&i| rows[i].principal != Principal::Deployer).collect();
            let picked: Vec<&Row> = indices.iter().map(|&i| &rows[i]).collect();
            let mut verdict = Verdict::of(RUNTIME, &picked, &over_granted);
            if role == RoleState::NotDeployed {
                verdict.detail = Some("not deployed yet: deploy creates it from the catalogue".into());
            }
            verdicts.push(verdict);
            groups.push((RUNTIME.to_owned(), indices));
        }
        let fix = fix(&identity, &rows, names);
        let count = |f: fn(&Decision) -> bool| rows.iter().filter(|r| f(&r.decision)).count();
        let summary = Summary {
            allowed: count(|d| matches!(d, Decision::Allow)),
            denied: count(|d| matches!(d, Decision::Deny { .. })),
            inconclusive: count(|d| matches!(d, Decision::Conditional { .. } | Decision::Unknown { .. })),
        };
        Report { identity, verdicts, fix, rows, notes, over_granted, summary, groups }
    }

    pub fn exit_code(&self, strict: bool) -> u8 {
        let any = |s: Status| self.verdicts.iter().any(|v| v.status == s);
        // Over-grants are drift too: they fail the run even beside a BLOCKED.
        if any(Status::Blocked) || !self.over_granted.is_empty() || (strict && any(Status::Undecided)) {
            DENIED
        } else if any(Status::Undecided) {
            INCONCLUSIVE
        } else {
            0
        }
    }

    pub fn line(&self) -> String {
        let s = &self.summary;
        format!("{} allowed, {} denied, {} inconclusive", s.allowed, s.denied, s.inconclusive)
    }

    pub fn print(&self, all: bool) {
        let id = &self.identity;
        println!("identity    {} ({}) in account {}", id.arn, id.principal_type, id.account);
        if let Some(policy_arn) = id.policy_arn.as_ref().filter(|a| **a != id.arn) {
            println!("policies    of {policy_arn}");
        }
        println!(
            "credentials {} key from {}{}",
            id.key_type,
            id.credential_source,
            id.expires.as_ref().map(|e| format!(", expires {e}")).unwrap_or_default()
        );
        println!("region      {}\n", id.region);

        let width = self.verdicts.iter().map(|v| v.subject.len()).max().unwrap_or(0);
        for verdict in &self.verdicts {
            println!("{:<width$}  {}", verdict.subject, verdict.label());
        }
        if let Some(statement) = &self.fix.statement {
            println!("\nfix: attach this policy to {}, then rerun check-iam:", self.fix.attach_to);
            println!("{}", serde_json::to_string_pretty(statement).unwrap_or_default());
        }
        for line in &self.fix.not_fixed_by_allow {
            println!("\nnot fixed by an Allow: {line}");
        }
        for grant in &self.over_granted {
            println!(
                "\nover-granted to the execution role: {} on {} (in its {}): {}",
                grant.action, grant.resource, grant.source, grant.fix
            );
        }
        if let Some(runtime) = &self.fix.runtime {
            println!("\nexecution role: `cargo xtask deploy` writes its policy; it lacks:");
            println!("{}", serde_json::to_string_pretty(runtime).unwrap_or_default());
        }

        let action_width = self.rows.iter().map(|r| r.action.len()).max().unwrap_or(0);
        let mut shown = vec![false; self.rows.len()];
        for (group, indices) in &self.groups {
            if indices.is_empty() {
                continue;
            }
            let allowed = indices.iter().filter(|&&i| self.rows[i].decision == Decision::Allow).count();
            println!("\n{group}: {allowed} of {} allowed", indices.len());
            // Each row once, under the first task that needs it; UNKNOWN rows one line per reason.
            let mut unknown: Vec<(String, Vec<&str>)> = Vec::new();
            for &i in indices {
                let row = &self.rows[i];
                if std::mem::replace(&mut shown[i], true) {
                    continue;
                }
                if let Decision::Unknown { reason } = &row.decision {
                    match unknown.iter_mut().find(|(r, _)| r == reason) {
                        Some((_, actions)) if actions.contains(&row.action.as_str()) => {}
                        Some((_, actions)) => actions.push(&row.action),
                        None => unknown.push((reason.clone(), vec![&row.action])),
                    }
                    continue;
                }
                if row.decision == Decision::Allow && !all {
                    continue;
                }
                println!(
                    "  {:<action_width$} {:<9} {} {}",
                    row.action,
                    format!("[{:?}]", row.method).to_lowercase(),
                    row.label(),
                    row.resource
                );
                // Implicit denials are answered by the fix statement above.
                let implicit = matches!(row.decision, Decision::Deny { denial: super::Denial::Implicit });
                if let Some(fix) =
                    row.fix.as_ref().filter(|_| !implicit || row.principal != Principal::Deployer)
                {
                    println!("  {:<action_width$} fix: {fix}", "");
                }
            }
            for (reason, actions) in unknown {
                println!("  UNKNOWN ({reason}): {}", actions.join(", "));
            }
        }
        if !self.notes.is_empty() {
            println!();
        }
        for note in &self.notes {
            println!("note: {note}");
        }
        println!("\n{}", self.line());
    }
}

/// The smallest statement granting what was implicitly denied (from the catalogue, on the
/// stage's ARNs), and what an Allow cannot fix.
fn fix(identity: &Identity, rows: &[Row], names: &Names) -> Fix {
    let mut grant: Vec<Need> = Vec::new();
    let mut not_fixed = Vec::new();
    let mut runtime: Vec<Need> = Vec::new();
    for row in rows {
        let Decision::Deny { denial } = &row.decision else { continue };
        if row.principal == Principal::ExecutionRole {
            // Every runtime need on the action (the statement restores it on each resource).
            let action = row.need.map(|n| n.action);
            for need in runtime_needs().into_iter().filter(|n| Some(n.action) == action) {
                if !runtime.contains(&need) {
                    runtime.push(need);
                }
            }
            continue;
        }
        if row.principal != Principal::Deployer {
            continue;
        }
        if *denial == super::Denial::Implicit {
            if let Some(need) = row.need.filter(|n| !grant.contains(n)) {
                grant.push(need);
            }
        } else {
            let line =
                format!("{} ({}): {}", row.action, denial.describe(), denial.fix(&row.action, "deployer"));
            if !not_fixed.contains(&line) {
                not_fixed.push(line);
            }
        }
    }
    Fix {
        attach_to: identity.policy_arn.clone().unwrap_or_else(|| identity.arn.clone()),
        statement: (!grant.is_empty()).then(|| render_policy(&grant, names, false)),
        not_fixed_by_allow: not_fixed,
        runtime: (!runtime.is_empty()).then(|| render_policy(&runtime, names, false)),
    }
}
