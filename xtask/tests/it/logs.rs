//! `cargo xtask logs` against the emulator's CloudWatch Logs, with events the test writes as
//! Lambda and the service would: the service's JSON lines, EMF lines, and REPORT lines in both
//! of Lambda's formats, cold and warm.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use serde_json::Value;

use crate::helpers::{shared_endpoint, xtask, xtask_command, Keys, OwnMoto};

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A stage of its own, so tests sharing the emulator do not see each other's events.
fn stage() -> String {
    format!("logs-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

async fn logs_client(endpoint: &str) -> aws_sdk_cloudwatchlogs::Client {
    let aws = crate::helpers::aws_as(endpoint, &Keys { id: "local".into(), secret: "local".into() }).await;
    aws_sdk_cloudwatchlogs::Client::new(&aws.sdk)
}

/// Write `messages` into a new stream of the stage's function log group (created if needed),
/// one millisecond apart, ending a second ago.
async fn write(endpoint: &str, stage: &str, messages: &[String]) {
    let client = logs_client(endpoint).await;
    let group = xtask::names::log_group(stage);
    let _ = client.create_log_group().log_group_name(&group).send().await;
    let stream = uuid::Uuid::new_v4().simple().to_string();
    client.create_log_stream().log_group_name(&group).log_stream_name(&stream).send().await.unwrap();
    let start = now_ms() - 1000 - messages.len() as i64;
    let events = messages
        .iter()
        .enumerate()
        .map(|(i, m)| InputLogEvent::builder().timestamp(start + i as i64).message(m).build().unwrap());
    client
        .put_log_events()
        .log_group_name(&group)
        .log_stream_name(&stream)
        .set_log_events(Some(events.collect()))
        .send()
        .await
        .unwrap();
}

fn service_line(message: &str, lambda_id: &str, our_id: &str) -> String {
    serde_json::json!({
        "timestamp": "2026-11-26T10:00:00.000Z", "level": "INFO", "message": message, "status": 200,
        "spans": [{"requestId": lambda_id, "name": "Lambda runtime invoke"}, {"id": our_id, "name": "request"}],
    })
    .to_string()
}

/// Two invocations as Lambda logs them (text format): a cold one with its init, then a warm one.
fn two_invocations() -> Vec<String> {
    vec![
        app::metrics::cold_start(0, 97.5).to_string(),
        "START RequestId: lambda-1 Version: $LATEST".into(),
        service_line("access", "lambda-1", "ours-1"),
        app::metrics::request(0, "GET", "/record/list", 200, 4.5).to_string(),
        "END RequestId: lambda-1".into(),
        "REPORT RequestId: lambda-1\tDuration: 24.10 ms\tBilled Duration: 25 ms\tMemory Size: 256 MB\tMax Memory Used: 30 MB\tInit Duration: 97.50 ms\t".into(),
        "START RequestId: lambda-2 Version: $LATEST".into(),
        service_line("access", "lambda-2", "ours-2"),
        "END RequestId: lambda-2".into(),
        "REPORT RequestId: lambda-2\tDuration: 3.20 ms\tBilled Duration: 4 ms\tMemory Size: 256 MB\tMax Memory Used: 30 MB\t".into(),
    ]
}

#[tokio::test]
async fn logs_renders_summarises_and_narrows_a_stages_events() {
    let endpoint = shared_endpoint();
    let stage = stage();
    write(&endpoint, &stage, &two_invocations()).await;

    let all = xtask(&endpoint, &["logs", "--stage", &stage]).ok().stdout();
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 10, "{all}");
    assert!(
        lines[5].ends_with(
            "REPORT lambda-1  duration 24.1 ms, billed 25 ms, memory 30 of 256 MB, init 97.5 ms (cold start)"
        ),
        "{all}"
    );
    assert!(
        lines[9].ends_with("REPORT lambda-2  duration 3.2 ms, billed 4 ms, memory 30 of 256 MB"),
        "{all}"
    );
    assert!(lines[2].ends_with("INFO  access status=200 [lambda-1 ours-1]"), "{all}");
    // Each line starts with the date, the time and the zone.
    assert!(lines[0].split(' ').nth(2) == Some("UTC") && lines[0].starts_with("20"), "{all}");
    assert!(lines[3].ends_with("METRICS GET /record/list 200 Requests=1.0 Latency=4.5 5xx=0.0"), "{all}");

    // One request, by Lambda's id (its REPORT line included) or by ours.
    let one = xtask(&endpoint, &["logs", "--stage", &stage, "--request", "lambda-2"]).ok().stdout();
    assert_eq!(one.lines().count(), 4, "{one}");
    assert!(one.lines().all(|l| l.contains("lambda-2")), "{one}");
    let ours = xtask(&endpoint, &["logs", "--stage", &stage, "--request", "ours-1"]).ok().stdout();
    assert_eq!(ours.lines().count(), 1, "{ours}");

    let filtered = xtask(&endpoint, &["logs", "--stage", &stage, "--filter", "END RequestId"]).ok().stdout();
    assert_eq!(filtered.lines().count(), 2, "{filtered}");
    let both = xtask(&endpoint, &["logs", "--stage", &stage, "--filter", "START", "--request", "lambda-1"]);
    assert_eq!(both.ok().stdout().lines().count(), 1);

    let cold = xtask(&endpoint, &["logs", "--stage", &stage, "--cold-starts", "--json"]).ok().stdout();
    let reports: Vec<Value> = cold.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(reports.len(), 1, "{cold}");
    assert_eq!(
        (reports[0]["request_id"].as_str(), reports[0]["init_ms"].as_f64()),
        (Some("lambda-1"), Some(97.5))
    );

    // --json: one object per event, JSON messages as they are.
    let json = xtask(&endpoint, &["logs", "--stage", &stage, "--json"]).ok().stdout();
    let objects: Vec<Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objects.len(), 10);
    assert_eq!(objects[2]["spans"][1]["id"], "ours-1");
    assert_eq!(objects[1]["message"], "START RequestId: lambda-1 Version: $LATEST");

    let empty = xtask(&endpoint, &["logs", "--stage", &stage, "--since", "0s"]);
    assert_eq!(empty.code(), 4, "a usage mistake");
    assert!(empty.stderr().contains("\"0s\" is zero"), "{}", empty.stderr());
}

#[tokio::test]
async fn a_stage_that_is_not_there_fails_and_one_that_never_ran_is_said_not_failed() {
    let stage = stage();
    let missing = xtask(&shared_endpoint(), &["logs", "--stage", &stage]);
    assert_eq!(missing.code(), 1, "{}", missing.stderr());
    assert!(missing.stderr().contains(&format!("no stage {stage} here")), "{}", missing.stderr());

    // Deployed (a function exists) but never invoked: no log group yet, and that is fine.
    let lambda = aws_sdk_lambda::Client::new(&xtask::aws::Aws::emulator(&shared_endpoint()).await.sdk);
    let iam = aws_sdk_iam::Client::new(&xtask::aws::Aws::emulator(&shared_endpoint()).await.sdk);
    let role = iam
        .create_role()
        .role_name(format!("{stage}-role"))
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .unwrap();
    lambda
        .create_function()
        .function_name(xtask::names::function_name(&stage))
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(role.role.unwrap().arn)
        .environment(aws_sdk_lambda::types::Environment::builder().variables("RECORD_BUCKET", "b").build())
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(xtask::deploy::package::zip_bootstrap(b"x").unwrap().into())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let run = xtask(&shared_endpoint(), &["logs", "--stage", &stage]).ok();
    assert_eq!(run.stdout(), "");
    assert!(run.stderr().contains("does not exist yet"), "{}", run.stderr());
    let bad = xtask(&shared_endpoint(), &["logs", "--stage", "Not A Stage"]);
    assert_eq!(bad.code(), 4, "a usage mistake");
    assert!(bad.stderr().contains("is not valid"), "{}", bad.stderr());
}

/// More events than a page holds: every page is read, in order, and the CLI (CloudWatch's own
/// page size) shows the same events.
#[tokio::test]
async fn every_page_is_read() {
    let moto = OwnMoto::start();
    let stage = stage();
    let messages: Vec<String> = (0..23).map(|i| format!("line {i:02}")).collect();
    write(moto.endpoint(), &stage, &messages).await;

    moto.start_recording().await;
    let aws =
        crate::helpers::aws_as(moto.endpoint(), &Keys { id: "local".into(), secret: "local".into() }).await;
    let query = xtask::logs::Query { group: xtask::names::log_group(&stage), start_ms: 0, term: None };
    let events = xtask::logs::fetch(&aws, &query, Some(5)).await.unwrap().unwrap();
    let pages = moto.stop_recording().await.iter().filter(|o| *o == "FilterLogEvents").count();
    assert_eq!(pages, 5, "23 events in pages of 5");
    let read: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(read, messages);

    let cli = xtask(moto.endpoint(), &["logs", "--stage", &stage]).ok().stdout();
    // After the date, the time and the zone.
    let shown: Vec<&str> = cli.lines().map(|l| l.splitn(4, ' ').nth(3).unwrap()).collect();
    assert_eq!(shown, messages);
}

/// `--follow` shows what is there, then each new event once, until it is stopped.
#[tokio::test]
async fn follow_shows_new_events_as_they_arrive_and_ends_cleanly_on_a_stop_request() {
    let endpoint = shared_endpoint();
    let stage = stage();
    write(&endpoint, &stage, &["before".to_owned()]).await;
    let keys = Keys { id: "local".into(), secret: "local".into() };
    let mut child = xtask_command(&endpoint, &keys, &["logs", "--stage", &stage, "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let next = || lines.recv_timeout(Duration::from_secs(20)).expect("a line within 20 s");
    assert!(next().ends_with(" before"));

    let started = Instant::now();
    write(&endpoint, &stage, &["after".to_owned()]).await;
    assert!(next().ends_with(" after"));
    eprintln!("follow showed a new event after {:?}", started.elapsed());
    // Shown once: the next polls return it again (same timestamp) and must skip it.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(lines.try_recv().is_err(), "an event was shown twice");

    // SAFETY: signals a child process this test started and still owns.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "Ctrl-C is how --follow ends");
}

/// A logged escape sequence (a file name, a header) reaches the reader as text: it cannot
/// recolour, move the cursor of or retitle their terminal.
#[tokio::test]
async fn control_characters_in_log_messages_are_escaped() {
    let endpoint = shared_endpoint();
    let stage = stage();
    write(&endpoint, &stage, &["upload of \u{1b}]0;owned\u{7}\u{1b}[2Jevil\rm4a".to_owned()]).await;
    let out = xtask(&endpoint, &["logs", "--stage", &stage]).ok().stdout();
    assert!(
        !out.chars().any(|c| c.is_control() && c != '\n'),
        "a control character reached the terminal: {out:?}"
    );
    assert!(out.contains("\\u{1b}]0;owned\\u{7}\\u{1b}[2Jevil\\u{d}m4a"), "{out}");
}
