//! An endpoint that accepts connections and never answers: every AWS task fails within its call
//! bound, naming the endpoint and the call, instead of hanging.

use std::time::{Duration, Instant};

use crate::helpers::{xtask_command, Keys, Run};

/// A loopback socket that accepts every connection and holds it open, silent, until dropped.
struct Silent {
    endpoint: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Silent {
    fn start() -> Silent {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((socket, _)) => held.push(socket),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Silent { endpoint, stop }
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn every_aws_task_fails_within_its_call_bound_against_an_endpoint_that_never_answers() {
    let silent = Silent::start();
    let keys = Keys { id: "local".into(), secret: "local".into() };
    let tasks: [&[&str]; 6] = [
        &["create-tables"],
        &["logs", "--stage", "stalled"],
        &["destroy", "--stage", "stalled", "--yes"],
        &["deploy", "--stage", "stalled", "--dry-run"],
        &["check-iam", "--stage", "stalled"],
        &["check-iam", "explain", "--stage", "stalled", "--since", "5m"],
    ];
    let runs: Vec<_> = tasks
        .iter()
        .map(|args| {
            let mut all = args.to_vec();
            all.extend(["--aws-timeout", "2s"]);
            let started = Instant::now();
            let child = xtask_command(&silent.endpoint, &keys, &all)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (args, started, child)
        })
        .collect();
    for (args, started, child) in runs {
        let run = Run(child.wait_with_output().unwrap());
        let took = started.elapsed();
        let stderr = run.stderr();
        assert_ne!(run.code(), 0, "{args:?} succeeded against a silent endpoint\n{stderr}");
        assert!(took < Duration::from_secs(40), "{args:?} took {took:?} against a 2 s call bound\n{stderr}");
        assert!(
            stderr.contains(&silent.endpoint) && stderr.contains("did not answer"),
            "{args:?} does not name the endpoint and the stall\n{stderr}"
        );
    }
}
