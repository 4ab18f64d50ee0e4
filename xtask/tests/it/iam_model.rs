//! The permission model's promise: adding an AWS action is one table entry, and the compiler
//! then asks for its probe and for the requests that need it.

use std::process::Command;

/// With the test-only feature `iam/fake-action` the table holds one more action,
/// `lambda:FakeAction`. xtask then stops compiling exactly where the action must be handled:
/// check-iam's probe and the coverage map (exhaustive matches, no catch-all arm). The catalogue
/// side is the unit test `catalogue::tests::every_action_of_the_table_is_in_a_catalogue`.
#[test]
fn a_new_action_does_not_compile_until_its_probe_and_coverage_arms_exist() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let output = Command::new(env!("CARGO"))
        .args(["check", "-p", "xtask", "--lib", "--features", "iam/fake-action", "--message-format", "short"])
        .current_dir(root)
        .output()
        .expect("run cargo check");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "xtask compiled with an unhandled action:\n{stderr}");
    for file in ["xtask/src/check_iam/probe.rs", "xtask/src/coverage.rs"] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(file) && l.contains("LambdaFakeAction") && l.contains("not covered")),
            "no non-exhaustive match on the fake action in {file}:\n{stderr}"
        );
    }
    let errors = stderr.lines().filter(|l| l.contains(": error")).count();
    assert_eq!(errors, 2, "errors beyond the two arms:\n{stderr}");
}
