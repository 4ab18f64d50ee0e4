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
        (&["logs", "--since", "0s"], "--since"),
        (&["logs", "--stage", "UPPER"], "--stage"),
        (&["bench", "--runs", "0"], "--runs"),
        (&["bench", "--load", "--duration", "0s"], "--duration"),
        (&["bench", "--load", "--concurrency", "1,0"], "--concurrency"),
        (&["bench", "--load", "--runs", "5"], "--runs"),
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
