//! Usage mistakes: each exits 4 with a message naming the flag, before any AWS call (the
//! endpoint is a closed port, so a task that called AWS would fail otherwise), and nothing
//! panics on a huge value.

use crate::helpers::{xtask_command, Keys, Run};

#[test]
fn every_usage_mistake_exits_4_before_calling_aws() {
    // Nothing listens here: a call would fail with exit 1 or 3, not 4.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let keys = Keys { id: "local".into(), secret: "local".into() };
    let mistakes: &[(&[&str], &str)] = &[
        (&["deploy", "--stage", "Bad_Stage", "--dry-run"], "--stage"),
        (&["destroy", "--stage", "abcdefghijklmnopqrstu", "--yes"], "--stage"),
        (&["create-tables", "--table-prefix", "bad/prefix"], "--table-prefix"),
        (&["deploy", "--table-prefix", "bad prefix", "--dry-run"], "--table-prefix"),
        (&["deploy", "--bucket", "UPPER_bad", "--dry-run"], "--bucket"),
        (&["destroy", "--bucket", "a..b", "--yes"], "--bucket"),
        (&["logs", "--since", "0s"], "--since"),
        (&["logs", "--stage", "UPPER"], "--stage"),
        (&["bench", "--runs", "0"], "--runs"),
        (&["bench", "--load", "--duration", "0s"], "--duration"),
        (&["bench", "--load", "--concurrency", "1,0"], "--concurrency"),
        (&["bench", "--load", "--runs", "5"], "--runs"),
        (&["bench", "--power", "--memory", "64"], "--memory"),
        (&["bench", "--power", "--memory", "10241"], "--memory"),
        (&["bench", "--power", "--memory", "256,,512"], "--memory"),
        (&["bench", "--power", "--memory", "256MiB"], "--memory"),
        (&["bench", "--power", "--p99-budget", "0ms"], "--p99-budget"),
        (&["bench", "--power", "--load"], "--load"),
        (&["bench", "--memory", "256"], "--memory"),
        (&["status", "--stage", "UPPER"], "--stage"),
        (&["bench", "--load", "--faults", "slow=5%"], "--faults"),
        (&["bench", "--load", "--faults", "throttle=5"], "--faults"),
        (&["bench", "--load", "--faults", "throttle=60%,error=50%"], "--faults"),
        (&["bench", "--load", "--faults", "reset=1%,reset=2%"], "--faults"),
        (&["bench", "--faults", "throttle=5%"], "--load"),
        (&["bench", "--load", "--seed", "7"], "--faults"),
        (&["rollback", "--to", "0"], "--to"),
        (&["bench", "--power", "--debug", "--service-binary", "/bin/true"], "--service-binary"),
        (&["bench", "--service-binary", "/bin/true"], "--service-binary"),
        (&["reconcile", "--grace", "0s"], "--grace"),
        (&["reconcile", "--settle", "forever"], "--settle"),
        (&["deploy", "--timeout", "35"], "--timeout"),
        (&["deploy", "--timeout", "16m"], "--timeout"),
        (&["deploy", "--oidc-providers", "garbage", "--dry-run"], "--oidc-providers"),
        (&["destroy", "--stage", "dev"], "--yes"),
        (&["create-tables", "--timeout", "18446744073709551615s"], "--timeout"),
        (&["create-tables", "--timeout", "5w"], "--timeout"),
        (&["create-tables", "--aws-timeout", "0s"], "--aws-timeout"),
    ];
    for (args, flag) in mistakes {
        let run = Run(xtask_command(&closed, &keys, args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run the xtask binary"));
        assert_eq!(run.code(), 4, "{args:?} is a usage mistake\nstderr:\n{}", run.stderr());
        assert!(run.stderr().contains(flag), "{args:?} does not name {flag}:\n{}", run.stderr());
        assert!(!run.stderr().contains("panicked"), "{args:?} panicked:\n{}", run.stderr());
    }
}

/// Ctrl-C during a build reaches the whole process group: cargo fails because of it, and the task
/// says it was stopped (exit 130), not that the build failed. The build is cold (a target
/// directory of its own), so the signal always lands during it.
#[test]
fn ctrl_c_during_deploys_build_is_reported_as_a_stop() {
    use std::os::unix::process::CommandExt;
    let keys = Keys { id: "local".into(), secret: "local".into() };
    let target = crate::helpers::Scratch::dir("interrupted-build");
    let args =
        ["deploy", "--stage", "interrupted", "--build-profile", "quick", "--builder", "cargo", "--dry-run"];
    let mut command = xtask_command(&crate::helpers::shared_endpoint(), &keys, &args);
    command
        .env("CARGO_TARGET_DIR", &*target)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0);
    let child = command.spawn().unwrap();
    let group = child.id().to_string();
    // Until the build has started compiling.
    std::thread::sleep(std::time::Duration::from_secs(8));
    let sent =
        std::process::Command::new("kill").args(["-INT", "--", &format!("-{group}")]).status().unwrap();
    assert!(sent.success());
    let run = Run(child.wait_with_output().unwrap());
    assert_eq!(run.code(), 130, "{}", run.stderr());
    assert!(run.stderr().contains("stopped by SIGINT"), "{}", run.stderr());
    assert!(!run.stderr().contains("its message is above"), "{}", run.stderr());
    // The stopped compilers may still be ending: the target directory goes once they are gone
    // (a removal racing a last write leaves it behind, which the run reports).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while target.exists() && std::time::Instant::now() < deadline {
        let _ = std::fs::remove_dir_all(&*target);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Without credentials every AWS task says so in one line and exits 3 (as check-iam does),
/// instead of the SDK's provider-chain dump and a hint about the emulator; a profile that does
/// not exist is named, not reported as a missing region.
#[test]
fn missing_credentials_and_unknown_profiles_are_one_line_and_exit_3() {
    let run = |args: &[&str], region: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", "/nonexistent")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(std::process::Stdio::null());
        if region {
            command.env("AWS_REGION", "us-east-1");
        }
        Run(command.output().unwrap())
    };
    for args in [
        &["create-tables"][..],
        &["deploy", "--stage", "x", "--dry-run", "--binary", "/bin/true"],
        &["destroy", "--stage", "x", "--yes"],
        &["logs", "--stage", "x"],
        &["check-iam"],
    ] {
        let run = run(args, true);
        assert_eq!(run.code(), 3, "{args:?}\n{}", run.stderr());
        assert!(run.stderr().contains("no usable AWS credentials"), "{args:?}\n{}", run.stderr());
        assert!(!run.stderr().contains("could not reach"), "{args:?}\n{}", run.stderr());
        assert_eq!(
            run.stderr().matches("no usable AWS credentials").count(),
            1,
            "{args:?}\n{}",
            run.stderr()
        );
    }
    let unknown = run(&["create-tables", "--profile", "nosuch"], false);
    assert_eq!(unknown.code(), 3, "{}", unknown.stderr());
    assert!(unknown.stderr().contains("AWS profile nosuch does not exist"), "{}", unknown.stderr());
}
