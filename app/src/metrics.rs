//! CloudWatch metrics without an agent: Embedded Metric Format (EMF) lines on stdout, which
//! CloudWatch Logs turns into metrics when it ingests the function's log group.
//!
//! One line per request (count, latency and 5xx under the `route` dimension) and one per cold
//! start (its init duration). The format is a few JSON fields, so it is written here rather than
//! through a metrics framework and its per-invocation flush.
//! Spec: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>

use serde_json::{json, Map, Value};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "recording-server";

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn emf(
    timestamp_ms: u64,
    dimensions: &[&str],
    metrics: &[(&str, &str, f64)],
    mut members: Map<String, Value>,
) -> Value {
    let definitions: Vec<Value> =
        metrics.iter().map(|(name, unit, _)| json!({ "Name": name, "Unit": unit })).collect();
    let directive = json!({
        "Timestamp": timestamp_ms,
        "CloudWatchMetrics": [{
            "Namespace": NAMESPACE,
            "Dimensions": [dimensions],
            "Metrics": definitions,
        }],
    });
    members.insert("_aws".into(), directive);
    for (name, _, value) in metrics {
        members.insert((*name).into(), json!(value));
    }
    Value::Object(members)
}

/// One request: `Requests` (1), `Latency` in milliseconds and `5xx` (1 when the status is a
/// server error), under the matched `route` (never the raw path) and `method`.
pub fn request(timestamp_ms: u64, method: &str, route: &str, status: u16, latency_ms: f64) -> Value {
    let server_error = if status >= 500 { 1.0 } else { 0.0 };
    emf(
        timestamp_ms,
        &["route", "method"],
        &[
            ("Requests", "Count", 1.0),
            ("Latency", "Milliseconds", latency_ms),
            ("5xx", "Count", server_error),
        ],
        Map::from_iter([
            ("route".into(), json!(route)),
            ("method".into(), json!(method)),
            ("status".into(), json!(status)),
        ]),
    )
}

/// One cold start: `ColdStarts` (1) and `InitDuration` in milliseconds, with no dimension.
pub fn cold_start(timestamp_ms: u64, init_ms: f64) -> Value {
    emf(
        timestamp_ms,
        &[],
        &[("ColdStarts", "Count", 1.0), ("InitDuration", "Milliseconds", init_ms)],
        Map::new(),
    )
}

/// Print one EMF line on stdout, where Lambda sends it to the log group. One `println!` is one
/// write of a whole line, so lines never interleave with the log lines.
pub fn emit(line: &Value) {
    println!("{line}");
}

/// Print the line for one request, timestamped now.
pub fn emit_request(method: &str, route: &str, status: u16, latency_ms: f64) {
    emit(&request(now_ms(), method, route, status, latency_ms));
}

/// Print the line for one cold start, timestamped now.
pub fn emit_cold_start(init_ms: f64) {
    emit(&cold_start(now_ms(), init_ms));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_line_declares_its_metrics_and_carries_their_values_and_dimensions() {
        let line = request(1_700_000_000_123, "GET", "/record/{id}", 503, 12.5);
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_123u64);
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([["route", "method"]]));
        let names: Vec<&str> =
            directive["Metrics"].as_array().unwrap().iter().map(|m| m["Name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Requests", "Latency", "5xx"]);
        assert_eq!((line["route"].as_str(), line["method"].as_str()), (Some("/record/{id}"), Some("GET")));
        assert_eq!(
            (line["Requests"].as_f64(), line["Latency"].as_f64(), line["5xx"].as_f64()),
            (Some(1.0), Some(12.5), Some(1.0))
        );
        assert_eq!(request(0, "GET", "/health", 200, 1.0)["5xx"], 0.0);
        assert_eq!(request(0, "GET", "/x", 499, 1.0)["5xx"], 0.0);
    }

    #[test]
    fn a_cold_start_line_has_no_dimension_and_its_init_duration() {
        let line = cold_start(5, 42.0);
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        assert_eq!((line["ColdStarts"].as_f64(), line["InitDuration"].as_f64()), (Some(1.0), Some(42.0)));
    }
}
