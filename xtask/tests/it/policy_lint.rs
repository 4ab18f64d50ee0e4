//! parliament (Duo Labs' IAM linter, with its community auditors) on every policy part
//! `check-iam --print-policy` renders: the runtime role's policy has no finding; the deployer's
//! base part, which a routine redeploy or rollback uses, manages no permissions (its one finding
//! is the inherent one of a tool that updates a function's code); the setup part holds every
//! permissions-managing action.

use serde_json::Value;

use crate::helpers::xtask;

/// parliament's findings on `part`, as `(issue, detail)`.
fn findings(part: &str) -> Vec<(String, Value)> {
    let policy =
        xtask("http://127.0.0.1:9", &["check-iam", "--print-policy", part, "--account", "123456789012"])
            .ok()
            .stdout();
    let venv = std::env::var("RECORDING_PARLIAMENT").expect(
        "RECORDING_PARLIAMENT is not set: run the tests with `cargo xtask test`, which installs parliament",
    );
    let output = std::process::Command::new(std::path::Path::new(&venv).join("bin").join("parliament"))
        // --string: parliament refuses --file when its stdin is not a terminal.
        .args(["--include-community-auditors", "--json", "--string", &policy])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run parliament");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() || !stdout.trim().is_empty(),
        "parliament failed on {part}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let finding: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (finding["issue"].as_str().unwrap().to_owned(), finding)
        })
        .collect()
}

#[test]
fn the_runtime_and_operator_policies_have_no_finding() {
    assert_eq!(findings("runtime"), Vec::new());
    assert_eq!(findings("operator"), Vec::new());
}

#[test]
fn the_deployer_base_part_manages_no_permissions() {
    let found = findings("deployer-base");
    assert_eq!(found.len(), 1, "{found:#?}");
    let (issue, finding) = &found[0];
    assert_eq!(issue, "PRIVILEGE_ESCALATION");
    assert_eq!(finding["location"]["type"], "EditExistingLambdaFunctionWithRole", "{finding}");
    assert_eq!(finding["location"]["actions"], serde_json::json!(["lambda:updatefunctioncode"]));
}

#[test]
fn the_setup_part_holds_the_permissions_management() {
    let found = findings("deployer-iam");
    let issues: std::collections::BTreeSet<&str> = found.iter().map(|(i, _)| i.as_str()).collect();
    assert!(issues.contains("PERMISSIONS_MANAGEMENT_ACTIONS"), "{found:#?}");
    let expected =
        ["PERMISSIONS_MANAGEMENT_ACTIONS", "RESOURCE_POLICY_PRIVILEGE_ESCALATION", "PRIVILEGE_ESCALATION"];
    assert!(issues.iter().all(|i| expected.contains(i)), "{found:#?}");
}
