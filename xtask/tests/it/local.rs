//! `cargo xtask local` as a supervisor stops it: SIGTERM (an IDE's stop button, `timeout`,
//! systemd) must stop the service and the emulator, not orphan them.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A free port below Linux's ephemeral range (32768 and up): `xtask local` binds it only after
/// building the service, a minute or more into a loaded test run, and an ephemeral port could
/// meanwhile be taken by any outgoing connection (it was, once).
/// Each call starts past the previous one's pick, so two tests of this process never get the
/// same port before either binds it.
fn free_port() -> u16 {
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(100, std::sync::atomic::Ordering::SeqCst);
    let start = 20_000 + ((std::process::id() % 10_000 + u32::from(call)) % 12_000) as u16;
    (start..32_000)
        .chain(20_000..start)
        .find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port between 20000 and 32000")
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// `xtask local` on a free port, serving; returns it, its port, its emulator's port and its
/// remaining output.
fn start_local() -> (std::process::Child, u16, u16, mpsc::Receiver<String>) {
    start_local_with(&[])
}

/// `start_local` with more flags for `xtask local`.
pub fn start_local_with(extra: &[&str]) -> (std::process::Child, u16, u16, mpsc::Receiver<String>) {
    let port = free_port();
    let mut local = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([&["local", "--port", &port.to_string()][..], extra].concat())
        .env_remove("AWS_ENDPOINT_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start xtask local");
    let stdout = local.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // Serving once the examples are printed; they name the emulator's endpoint.
    let mut emulator = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        let line = match received.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            // Its stdout closed: xtask local ended before serving. Fail now, not at the deadline.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("xtask local exited before serving: {:?} (its stderr is above)", local.wait())
            }
        };
        // Redirected, so no colour codes (the service's log lines come through this pipe too).
        assert!(!line.contains('\u{1b}'), "an escape code in redirected output: {line:?}");
        if let Some(at) = line.find("AWS_ENDPOINT_URL=http://127.0.0.1:") {
            let rest = &line[at + "AWS_ENDPOINT_URL=http://127.0.0.1:".len()..];
            emulator = rest.split(' ').next().and_then(|p| p.parse::<u16>().ok());
        }
        if line.contains("/record/list") {
            break;
        }
    }
    let emulator = emulator.expect("xtask local printed its emulator endpoint and examples");
    assert!(listening(port) && listening(emulator), "both the service and the emulator listen");
    (local, port, emulator, received)
}

#[test]
fn sigterm_stops_the_service_and_the_emulator_and_frees_both_ports() {
    let (mut local, port, emulator, received) = start_local();

    let pid = local.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());

    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = local.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "xtask local still runs 5 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "SIGTERM is how local ends: {status}");
    while listening(port) || listening(emulator) {
        assert!(Instant::now() < deadline, "a port is still in use 5 s after SIGTERM: {port} or {emulator}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rest: Vec<String> = received.iter().collect();
    assert!(rest.iter().any(|l| l.contains("SIGTERM: stopped the service and the emulator")), "{rest:?}");
}

#[test]
fn when_xtask_is_killed_outright_its_children_stop_too() {
    let (mut local, port, emulator, _output) = start_local();

    // SIGKILL: no guard runs; the children's parent-death signal must stop them.
    local.kill().unwrap();
    local.wait().unwrap();

    let deadline = Instant::now() + Duration::from_secs(5);
    while listening(port) || listening(emulator) {
        assert!(Instant::now() < deadline, "a child outlived xtask by 5 s: port {port} or {emulator} in use");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The short version of `cargo xtask bench --load`: a few seconds of mixed load by 4 clients
/// against the dev build, on dynalite and moto. Asserts the audit, and that the service's own
/// timings cover every request, not the timings themselves.
#[test]
fn a_short_load_run_loses_nothing_and_orphans_nothing() {
    let run = crate::helpers::xtask(
        "http://127.0.0.1:1",
        &["bench", "--load", "--debug", "--concurrency", "4", "--duration", "2s", "--soak", "0s", "--json"],
    );
    assert_eq!(run.code(), 0, "{}\n{}", run.stdout(), run.stderr());
    let report = run.json();
    let level = &report["levels"][0];
    assert_eq!(level["errors"], 0, "{level}");
    assert!(level["routes"]["upload"]["count"].as_u64().unwrap() > 0, "{level}");
    // The service timed every request, each inside the client's span of it, so its percentiles
    // cannot exceed the clients' (an ordering, not a timing target).
    let (client, service) = (level["routes"].as_object().unwrap(), &level["service"]);
    assert_eq!(client.len(), 5, "{level}");
    for (route, seen) in client {
        let timed = &service[route];
        assert_eq!(timed["count"], seen["count"], "{route}: {level}");
        for p in ["p50_ms", "p99_ms"] {
            assert!(timed[p].as_f64().unwrap() <= seen[p].as_f64().unwrap(), "{route} {p}: {level}");
        }
    }
    let audit = &report["audit"];
    for field in ["lost", "unexpected", "undownloadable", "resurrected"] {
        assert_eq!(audit[field], 0, "{field}: {audit}");
    }
    assert!(audit["live"].as_u64().unwrap() > 0 && audit["deleted"].as_u64().unwrap() > 0, "{audit}");
    assert_eq!(audit["rows"], audit["objects"], "{audit}");
    assert_eq!(audit["rows"], audit["live"], "{audit}");
}

/// `bench --load --mix read --rate`: each client uploads its recordings untimed, then only lists
/// and gets them, paced: the report times reads alone, and the clients send no more requests
/// than the rate allows (a property of the pacing, not a timing target).
#[test]
fn a_paced_read_run_times_only_reads_and_keeps_to_its_rate() {
    let run = crate::helpers::xtask(
        "http://127.0.0.1:1",
        &[
            "bench",
            "--load",
            "--debug",
            "--mix",
            "read",
            "--rate",
            "40",
            "--concurrency",
            "2",
            "--duration",
            "2s",
            "--soak",
            "0s",
            "--json",
        ],
    );
    assert_eq!(run.code(), 0, "{}\n{}", run.stdout(), run.stderr());
    let report = run.json();
    assert_eq!((&report["mix"], &report["rate"]), (&"read".into(), &40.into()), "{report}");
    let level = &report["levels"][0];
    assert_eq!(level["errors"], 0, "{level}");
    let routes: Vec<&String> = level["routes"].as_object().unwrap().keys().collect();
    assert_eq!(routes, ["get", "list", "login"], "{level}");
    assert!(level["routes"]["list"]["count"].as_u64().unwrap() > 0, "{level}");
    let (requests, seconds) = (level["requests"].as_f64().unwrap(), level["seconds"].as_f64().unwrap());
    // Each of the 2 clients sends one request per 50 ms, the first at once.
    assert!(requests <= 40.0 * seconds + 2.0, "{requests} requests in {seconds} s at 40 req/s");
    let audit = &report["audit"];
    assert_eq!((&audit["live"], &audit["deleted"]), (&20.into(), &0.into()), "{audit}");
    assert_eq!((&audit["rows"], &audit["objects"]), (&20.into(), &20.into()), "{audit}");
    for field in ["lost", "unexpected", "undownloadable", "resurrected"] {
        assert_eq!(audit[field], 0, "{field}: {audit}");
    }
}
