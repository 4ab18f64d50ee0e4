//! `cargo xtask logs --stage S`: the function's log events from CloudWatch Logs, rendered for a
//! person (or passed through as JSON), with Lambda's `REPORT` lines summarised.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aws_sdk_cloudwatchlogs::error::SdkError;
use serde_json::{json, Map, Value};

use crate::aws::Aws;
use crate::flags::Logs;

/// How often `--follow` asks for new events.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// One log event: when, and its message.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub timestamp_ms: i64,
    pub message: String,
}

/// What to fetch: a group, a start, and at most one term CloudWatch matches for us.
#[derive(Debug, Clone)]
pub struct Query {
    pub group: String,
    pub start_ms: i64,
    /// Sent as a quoted-term filter pattern, so CloudWatch returns only the events holding it.
    pub term: Option<String>,
}

/// Every event of `query`, in time order, following `nextToken` across pages; `page_size` is
/// CloudWatch's `limit` (`None`: its default, up to 10,000 events a page). `Ok(None)` when the
/// group does not exist (Lambda creates it at the function's first run).
pub async fn fetch(aws: &Aws, query: &Query, page_size: Option<i32>) -> anyhow::Result<Option<Vec<Event>>> {
    let client = aws_sdk_cloudwatchlogs::Client::new(&aws.sdk);
    let mut request = client
        .filter_log_events()
        .log_group_name(&query.group)
        .start_time(query.start_ms)
        .set_limit(page_size);
    if let Some(term) = &query.term {
        request = request.filter_pattern(format!("\"{term}\""));
    }
    let mut pages = request.into_paginator().send();
    let mut events = Vec::new();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => return Ok(None),
            Err(e) => return Err(crate::aws::explain(e, "logs:FilterLogEvents", &query.group, aws)),
        };
        for e in page.events() {
            events.push(Event {
                id: e.event_id().unwrap_or_default().to_owned(),
                timestamp_ms: e.timestamp().unwrap_or_default(),
                message: e.message().unwrap_or_default().trim_end().to_owned(),
            });
        }
    }
    events.sort_by_key(|e| e.timestamp_ms);
    Ok(Some(events))
}

/// A Lambda `REPORT` line's figures, from the text format (`REPORT RequestId: …\tDuration: …`)
/// or the JSON one (`{"type":"platform.report","record":{…}}`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    pub request_id: String,
    pub duration_ms: f64,
    pub billed_ms: f64,
    pub memory_mb: Option<f64>,
    pub max_memory_mb: Option<f64>,
    /// Present only for the first invocation of a sandbox: its init phase.
    pub init_ms: Option<f64>,
}

impl Report {
    pub fn parse(message: &str) -> Option<Report> {
        if let Some(text) = message.strip_prefix("REPORT RequestId: ") {
            let mut fields = text.split('\t').map(str::trim).filter(|f| !f.is_empty());
            let request_id = fields.next()?.to_owned();
            let (mut report, mut seen) = (Report::empty(request_id), 0);
            for field in fields {
                let Some((name, value)) = field.split_once(": ") else { continue };
                let number = value.split_whitespace().next().and_then(|n| n.parse::<f64>().ok());
                match name {
                    "Duration" => (report.duration_ms, seen) = (number?, seen + 1),
                    "Billed Duration" => (report.billed_ms, seen) = (number?, seen + 1),
                    "Memory Size" => report.memory_mb = number,
                    "Max Memory Used" => report.max_memory_mb = number,
                    "Init Duration" => report.init_ms = number,
                    _ => {}
                }
            }
            return (seen == 2).then_some(report);
        }
        let value: Value = serde_json::from_str(message).ok()?;
        if value["type"] != "platform.report" {
            return None;
        }
        let record = &value["record"];
        let metrics = &record["metrics"];
        Some(Report {
            request_id: record["requestId"].as_str()?.to_owned(),
            duration_ms: metrics["durationMs"].as_f64()?,
            billed_ms: metrics["billedDurationMs"].as_f64()?,
            memory_mb: metrics["memorySizeMB"].as_f64(),
            max_memory_mb: metrics["maxMemoryUsedMB"].as_f64(),
            init_ms: metrics["initDurationMs"].as_f64(),
        })
    }

    fn empty(request_id: String) -> Report {
        Report {
            request_id,
            duration_ms: 0.0,
            billed_ms: 0.0,
            memory_mb: None,
            max_memory_mb: None,
            init_ms: None,
        }
    }

    pub fn summary(&self) -> String {
        let mut text = format!(
            "REPORT {}  duration {:.1} ms, billed {} ms",
            self.request_id, self.duration_ms, self.billed_ms
        );
        match (self.max_memory_mb, self.memory_mb) {
            (Some(used), Some(size)) => text += &format!(", memory {used} of {size} MB"),
            (Some(used), None) => text += &format!(", memory {used} MB"),
            _ => {}
        }
        if let Some(init) = self.init_ms {
            text += &format!(", init {init:.1} ms (cold start)");
        }
        text
    }
}

/// `YYYY-MM-DD HH:MM:SS.mmm UTC` of an event: the date and the zone, so lines from a long
/// `--since` or another machine's clock are read right.
fn clock(timestamp_ms: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3] UTC"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(timestamp_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| timestamp_ms.to_string())
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Control characters (an escape sequence in a logged file name, a carriage return) shown as
/// `\u{..}` instead of reaching the terminal: a log line cannot move the cursor, recolour or
/// retitle the reader's terminal. Tabs stay.
fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\t' { c.escape_unicode().to_string() } else { c.to_string() })
        .collect()
}

/// One event for a person: REPORT lines summarised, the service's JSON lines as
/// `LEVEL message key=value… [request id]`, EMF lines as their metric values, the rest as is;
/// control characters escaped.
pub fn render(event: &Event) -> String {
    escape_controls(&render_raw(event))
}

fn render_raw(event: &Event) -> String {
    let at = clock(event.timestamp_ms);
    if let Some(report) = Report::parse(&event.message) {
        return format!("{at} {}", report.summary());
    }
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&event.message) else {
        return format!("{at} {}", event.message);
    };
    if let Some(aws) = fields.get("_aws") {
        let names = aws["CloudWatchMetrics"][0]["Metrics"].as_array().cloned().unwrap_or_default();
        let mut text = format!("{at} METRICS");
        for key in ["method", "route", "status"] {
            if let Some(v) = fields.get(key) {
                text += &format!(" {}", plain(v));
            }
        }
        for name in names.iter().filter_map(|m| m["Name"].as_str()) {
            text += &format!(" {name}={}", fields.get(name).map(plain).unwrap_or_default());
        }
        return text;
    }
    if let Some(kind) = fields.get("type").and_then(Value::as_str) {
        // Lambda's other platform events (platform.start, platform.initStart, …).
        let request = fields.get("record").and_then(|r| r.get("requestId")).map(plain);
        return format!("{at} {kind}{}", request.map(|r| format!(" {r}")).unwrap_or_default());
    }
    service_line(&at, &fields)
}

/// The service's JSON log line: level, message, its own fields, then the request ids its spans
/// carry (Lambda's `requestId`, our `id`).
fn service_line(at: &str, fields: &Map<String, Value>) -> String {
    let level = fields.get("level").map(plain).unwrap_or_default();
    let message = fields.get("message").map(plain).unwrap_or_default();
    let mut text = format!("{at} {level:<5} {message}");
    for (key, value) in fields {
        if !matches!(key.as_str(), "timestamp" | "level" | "message" | "spans" | "span") {
            text += &format!(" {key}={}", plain(value));
        }
    }
    let mut ids = Vec::new();
    for span in fields.get("spans").and_then(Value::as_array).into_iter().flatten() {
        for key in ["requestId", "id"] {
            if let Some(id) = span.get(key) {
                ids.push(plain(id));
            }
        }
    }
    if !ids.is_empty() {
        text += &format!(" [{}]", ids.join(" "));
    }
    text
}

/// One event for a program: the message itself when it is a JSON object, else the text with its
/// timestamp.
pub fn as_json(event: &Event) -> Value {
    match serde_json::from_str::<Value>(&event.message) {
        Ok(object @ Value::Object(_)) => object,
        _ => json!({ "timestamp": event.timestamp_ms, "message": event.message }),
    }
}

impl Logs {
    pub async fn run(self) -> anyhow::Result<()> {
        crate::names::validate_stage(&self.stage)?;
        let aws = self.aws.load(crate::catalogue::Task::Logs).await?;
        let group = crate::names::log_group(&self.stage);
        let since = SystemTime::now().checked_sub(self.since).unwrap_or(UNIX_EPOCH);
        // CloudWatch matches one quoted term for us (one without a quote in it); any other is
        // matched here.
        let mut local: Vec<String> = [&self.request, &self.filter].into_iter().flatten().cloned().collect();
        let term = local.iter().position(|t| !t.contains('"')).map(|i| local.remove(i));
        let mut query = Query { group: group.clone(), start_ms: millis(since), term };
        // The ids shown at the newest timestamp: a follow-up query starts there, so it returns
        // them again.
        let mut seen: HashMap<String, i64> = HashMap::new();
        let (mut shown, mut waiting_said) = (0usize, false);
        loop {
            let events = match fetch(&aws, &query, None).await? {
                Some(events) => events,
                None if self.follow => {
                    if !std::mem::replace(&mut waiting_said, true) {
                        eprintln!(
                            "log group {group} does not exist yet: waiting for the function's first run"
                        );
                    }
                    Vec::new()
                }
                None => {
                    if crate::stage::deployed(&aws, &self.stage).await?.is_none() {
                        anyhow::bail!(
                            "no stage {} here: no function {} and no logs in {} (check --stage, --region and --profile)",
                            self.stage,
                            crate::names::function_name(&self.stage),
                            aws.target()
                        );
                    }
                    eprintln!(
                        "log group {group} does not exist yet: the function has not run since it was deployed"
                    );
                    return Ok(());
                }
            };
            for event in events {
                if seen.insert(event.id.clone(), event.timestamp_ms).is_some() {
                    continue;
                }
                query.start_ms = query.start_ms.max(event.timestamp_ms);
                if !local.iter().all(|text| event.message.contains(text.as_str())) {
                    continue;
                }
                shown += self.show(&event)? as usize;
            }
            if !self.follow {
                break;
            }
            seen.retain(|_, at| *at >= query.start_ms);
            tokio::select! {
                () = tokio::time::sleep(FOLLOW_EVERY) => {}
                // Ctrl-C is how a follow ends.
                _ = crate::signals::stop_requested() => return Ok(()),
            }
        }
        if shown == 0 && !self.json {
            eprintln!("no log events in {group} in the last {} s", self.since.as_secs());
        }
        Ok(())
    }

    /// Print one event as the flags ask; whether it was printed.
    fn show(&self, event: &Event) -> anyhow::Result<bool> {
        if self.cold_starts {
            let Some(report) = Report::parse(&event.message).filter(|r| r.init_ms.is_some()) else {
                return Ok(false);
            };
            if self.json {
                let mut value = serde_json::to_value(&report).context("cannot render a report")?;
                value["timestamp"] = json!(event.timestamp_ms);
                println!("{value}");
            } else {
                println!("{} {}", clock(event.timestamp_ms), report.summary());
            }
            return Ok(true);
        }
        if self.json {
            println!("{}", as_json(event));
        } else {
            println!("{}", render(event));
        }
        Ok(true)
    }
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(message: &str) -> Event {
        // 2026-01-02T03:04:05.678Z
        Event { id: "1".into(), timestamp_ms: 1_767_323_045_678, message: message.into() }
    }

    #[test]
    fn text_report_lines_are_summarised_with_the_init_duration_only_when_present() {
        let cold = "REPORT RequestId: 8f5e-11\tDuration: 21.53 ms\tBilled Duration: 22 ms\tMemory Size: 256 MB\tMax Memory Used: 31 MB\tInit Duration: 112.40 ms\t";
        let report = Report::parse(cold).unwrap();
        assert_eq!(report.request_id, "8f5e-11");
        assert_eq!((report.duration_ms, report.billed_ms, report.init_ms), (21.53, 22.0, Some(112.4)));
        assert_eq!(
            render(&event(cold)),
            "2026-01-02 03:04:05.678 UTC REPORT 8f5e-11  duration 21.5 ms, billed 22 ms, memory 31 of 256 MB, init 112.4 ms (cold start)"
        );
        let warm = "REPORT RequestId: 8f5e-12\tDuration: 3.10 ms\tBilled Duration: 4 ms\tMemory Size: 256 MB\tMax Memory Used: 31 MB\t";
        assert_eq!(Report::parse(warm).unwrap().init_ms, None);
        assert_eq!(
            Report::parse("REPORT RequestId: x\tDuration: soon"),
            None,
            "a broken line is not a report"
        );
    }

    #[test]
    fn json_platform_reports_are_summarised_like_text_ones() {
        let line = r#"{"time":"2026-01-02T03:04:05.678Z","type":"platform.report","record":{"requestId":"8f5e-13","metrics":{"durationMs":5.2,"billedDurationMs":6,"memorySizeMB":256,"maxMemoryUsedMB":30,"initDurationMs":98.7},"status":"success"}}"#;
        let report = Report::parse(line).unwrap();
        assert_eq!(
            (report.request_id.as_str(), report.init_ms, report.max_memory_mb),
            ("8f5e-13", Some(98.7), Some(30.0))
        );
        assert!(render(&event(line)).ends_with("init 98.7 ms (cold start)"), "{}", render(&event(line)));
    }

    #[test]
    fn service_lines_show_level_message_fields_and_both_request_ids() {
        let line = r#"{"timestamp":"2026-01-02T03:04:05.678Z","level":"INFO","message":"access","method":"GET","route":"/record/list","status":200,"spans":[{"requestId":"lambda-1","name":"Lambda runtime invoke"},{"id":"ours-1","name":"request"}]}"#;
        assert_eq!(
            render(&event(line)),
            "2026-01-02 03:04:05.678 UTC INFO  access method=GET route=/record/list status=200 [lambda-1 ours-1]"
        );
    }

    #[test]
    fn emf_lines_show_their_metric_values_and_other_text_passes_unchanged() {
        let emf = crate::logs::tests::emf();
        assert_eq!(
            render(&event(&emf)),
            "2026-01-02 03:04:05.678 UTC METRICS GET /health 200 Requests=1.0 Latency=2.5 5xx=0.0"
        );
        assert_eq!(
            render(&event("START RequestId: a Version: $LATEST")),
            "2026-01-02 03:04:05.678 UTC START RequestId: a Version: $LATEST"
        );
    }

    fn emf() -> String {
        app::metrics::request(0, "GET", "/health", 200, 2.5).to_string()
    }

    #[test]
    fn json_output_passes_json_messages_through_and_wraps_text() {
        let line = r#"{"level":"WARN","message":"x"}"#;
        assert_eq!(as_json(&event(line)), serde_json::json!({"level": "WARN", "message": "x"}));
        assert_eq!(
            as_json(&event("END RequestId: a")),
            serde_json::json!({"timestamp": 1_767_323_045_678i64, "message": "END RequestId: a"})
        );
    }
}
