//! Faults between the service and its AWS endpoints, shared by the service's fault tests and
//! `cargo xtask bench --load --faults`.
//!
//! A fault-injecting HTTP proxy between the service and the emulator: it forwards each request,
//! or, when a rule matches it, stalls, delays, answers with an error of its own, or resets the
//! connection in the middle of the request body; or, with [`Proxy::randomize`], injects the
//! faults of a [`Spec`] at its rates from a seed. It can also simulate an outage: in-flight
//! connections are reset and new ones dropped until it ends.
//!
//! One request per connection (it asks both sides for `Connection: close`), so every request is
//! seen whole; the SDK opens a new connection per request through it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Which requests a rule applies to.
#[derive(Debug, Clone, Copy)]
pub enum Call {
    /// A DynamoDB operation, by name (`PutItem`).
    Dynamo(&'static str),
    /// An S3 request, by method (`PUT` is PutObject, `DELETE` DeleteObject).
    S3(&'static str),
}

#[derive(Debug, Clone)]
pub enum Fault {
    /// Never answer.
    Stall,
    /// Wait, then forward.
    Delay(Duration),
    /// Answer with this status, content type and body.
    Respond(u16, &'static str, &'static str),
    /// Read half the body, then reset the connection.
    ResetMidBody,
    /// Forward the request and let the upstream answer it, then reset the connection instead of
    /// passing the answer on: the call took effect, but the caller cannot know (an ambiguous
    /// write, which the SDK retries).
    LoseResponse,
}

pub const DYNAMO_THROTTLED: Fault = Fault::Respond(
    400,
    "application/x-amz-json-1.0",
    r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#,
);
pub const S3_SLOW_DOWN: Fault = Fault::Respond(
    503,
    "application/xml",
    "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
);
pub const S3_INTERNAL_ERROR: Fault = Fault::Respond(
    500,
    "application/xml",
    "<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>",
);

struct Rule {
    call: Call,
    fault: Fault,
    /// How many matching requests it lets through before it applies.
    skip: usize,
    /// How many more requests it applies to; `None`: all.
    times: Option<usize>,
}

/// A non-retryable DynamoDB failure (the SDK gives up at once).
pub const DYNAMO_INVALID: Fault = Fault::Respond(
    400,
    "application/x-amz-json-1.0",
    r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"injected failure"}"#,
);
/// What DynamoDB answers a role whose policy does not allow the call.
pub const DYNAMO_ACCESS_DENIED: Fault = Fault::Respond(
    400,
    "application/x-amz-json-1.0",
    r#"{"__type":"com.amazon.coral.service#AccessDeniedException","Message":"User: arn:aws:sts::123456789012:assumed-role/recording-server-test-lambda/recording-server-test is not authorized to perform: dynamodb:GetItem on resource: arn:aws:dynamodb:us-east-1:123456789012:table/test-record_user because no identity-based policy allows the dynamodb:GetItem action"}"#,
);
/// A conditional write whose condition failed.
pub const DYNAMO_CONDITION_FAILED: Fault = Fault::Respond(
    400,
    "application/x-amz-json-1.0",
    r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}"#,
);

/// A running proxy; its tasks end with the test's runtime.
#[derive(Clone)]
pub struct Proxy {
    pub address: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    outage: watch::Sender<bool>,
    /// Requests that reached the upstream, as `Dynamo(op)` / `S3(method)` text.
    forwarded: Arc<Mutex<Vec<String>>>,
    /// Every request the service sent, faulted or forwarded, labelled the same way.
    seen: Arc<Mutex<Vec<String>>>,
    /// With [`Proxy::randomize`]: the faults drawn for requests no rule matches.
    random: Arc<Mutex<Option<Random>>>,
    /// The faults injected, by AWS operation and kind.
    injected: Arc<Mutex<BTreeMap<(String, Kind), u64>>>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let (outage, _) = watch::channel(false);
        let proxy = Proxy {
            address,
            rules: Arc::default(),
            outage,
            forwarded: Arc::default(),
            seen: Arc::default(),
            random: Arc::default(),
            injected: Arc::default(),
        };
        let serving = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *serving.outage.borrow() {
                    reset_on_drop(&client);
                    continue;
                }
                let proxy = serving.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let mut outage = proxy.outage.subscribe();
                    reset_on_drop(&client);
                    tokio::select! {
                        _ = proxy.serve(client, &upstream) => {}
                        // An outage resets the connections in flight (dropped with linger 0).
                        _ = outage.wait_for(|down| *down) => {}
                    }
                });
            }
        });
        proxy
    }

    /// Apply `fault` to the next `times` requests matching `call` (`None`: every one).
    pub fn inject(&self, call: Call, fault: Fault, times: Option<usize>) {
        self.inject_after(call, 0, fault, times);
    }

    /// Let `skip` requests matching `call` through, then apply `fault` to the next `times`.
    pub fn inject_after(&self, call: Call, skip: usize, fault: Fault, times: Option<usize>) {
        self.rules.lock().unwrap().push(Rule { call, fault, skip, times });
    }

    /// Every request sent so far, faulted or forwarded.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    pub fn set_outage(&self, down: bool) {
        self.outage.send_replace(down);
    }

    pub fn forwarded(&self) -> Vec<String> {
        self.forwarded.lock().unwrap().clone()
    }

    /// From now on, a request no rule matches gets a fault of `spec` at its rates, drawn from
    /// `seed`; `None` stops the random faults.
    pub fn randomize(&self, spec: Option<(Spec, u64)>) {
        *self.random.lock().unwrap() = spec.map(|(spec, seed)| Random { spec, state: seed });
    }

    /// The faults injected so far, by AWS operation (`dynamodb:PutItem`) and kind.
    pub fn injected(&self) -> BTreeMap<(String, Kind), u64> {
        self.injected.lock().unwrap().clone()
    }

    fn fault_for(&self, head: &Head) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap();
        let Some(rule) = rules.iter_mut().find(|r| r.times != Some(0) && head.is(r.call)) else {
            drop(rules);
            let kind = self.random.lock().unwrap().as_mut()?.draw()?;
            *self.injected.lock().unwrap().entry((head.operation(), kind)).or_default() += 1;
            return Some(kind.fault(head.header("x-amz-target").is_some()));
        };
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        if let Some(times) = &mut rule.times {
            *times -= 1;
        }
        Some(rule.fault.clone())
    }

    async fn serve(&self, client: TcpStream, upstream: &str) {
        let mut client = BufReader::new(client);
        let Some(head) = Head::read(&mut client).await else { return };
        self.seen.lock().unwrap().push(head.label());
        let fault = self.fault_for(&head);
        let mut body = vec![0; head.content_length];
        match fault {
            Some(Fault::Stall) => std::future::pending::<()>().await,
            Some(Fault::ResetMidBody) => {
                let _ = client.read_exact(&mut body[..head.content_length / 2]).await;
                return; // dropped with linger 0: a reset
            }
            Some(Fault::Respond(status, content_type, text)) => {
                let _ = client.read_exact(&mut body).await;
                let response = format!(
                    "HTTP/1.1 {status} Fault\r\nContent-Type: {content_type}\r\nx-amzn-RequestId: fault\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = client.get_mut().write_all(response.as_bytes()).await;
                let _ = client.get_mut().shutdown().await;
                return;
            }
            Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
            Some(Fault::LoseResponse) | None => {}
        }
        if client.read_exact(&mut body).await.is_err() {
            return;
        }
        self.forwarded.lock().unwrap().push(head.label());
        let Ok(mut server) = TcpStream::connect(upstream).await else { return };
        if server.write_all(head.with_close().as_bytes()).await.is_err()
            || server.write_all(&body).await.is_err()
        {
            return;
        }
        // The response: its head with `Connection: close`, then the rest as it comes.
        let mut server = BufReader::new(server);
        let Some(response) = Head::read(&mut server).await else { return };
        if matches!(fault, Some(Fault::LoseResponse)) {
            let _ = tokio::io::copy(&mut server, &mut tokio::io::sink()).await;
            return; // dropped with linger 0: a reset, the answer never sent
        }
        if client.get_mut().write_all(response.with_close().as_bytes()).await.is_err() {
            return;
        }
        let _ = tokio::io::copy(&mut server, client.get_mut()).await;
        let _ = client.get_mut().shutdown().await;
    }
}

/// A keep-alive front for the emulator, as AWS endpoints are (moto's server closes every
/// connection after one response): it counts the TCP connections clients open to it and labels
/// each request, with the connection it came on, so a test can tell which requests opened a
/// connection and which reused one. Each request goes upstream on a connection of its own.
#[derive(Clone)]
pub struct Tap {
    pub address: String,
    /// `(connection number, label)` per request, in arrival order.
    requests: Arc<Mutex<Vec<(usize, String)>>>,
    /// Each request's head (start line and headers), in arrival order.
    heads: Arc<Mutex<Vec<String>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Tap {
    pub async fn start(upstream: &str) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let tap =
            Tap { address, requests: Arc::default(), heads: Arc::default(), connections: Arc::default() };
        let serving = tap.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let n = serving.connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (tap, upstream) = (serving.clone(), upstream.clone());
                tokio::spawn(async move { tap.serve(n, client, &upstream).await });
            }
        });
        tap
    }

    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<(usize, String)> {
        self.requests.lock().unwrap().clone()
    }

    /// The heads of the requests whose label starts with `label` (e.g. `S3(PUT)`).
    pub fn heads(&self, label: &str) -> Vec<String> {
        let labels = self.requests.lock().unwrap().clone();
        let heads = self.heads.lock().unwrap().clone();
        labels.iter().zip(heads).filter(|((_, l), _)| l.starts_with(label)).map(|(_, h)| h).collect()
    }

    async fn serve(&self, n: usize, client: TcpStream, upstream: &str) {
        let mut client = BufReader::new(client);
        while let Some(head) = Head::read(&mut client).await {
            let mut body = vec![0; head.content_length];
            if client.read_exact(&mut body).await.is_err() {
                return;
            }
            let path = head.start.split(' ').nth(1).unwrap_or_default().split('?').next().unwrap_or_default();
            let label = match head.header("x-amz-target") {
                Some(_) => head.label(),
                None => format!("{} {path}", head.label()),
            };
            self.requests.lock().unwrap().push((n, label));
            self.heads.lock().unwrap().push(head.render(&[], "").to_ascii_lowercase());
            let Ok(mut server) = TcpStream::connect(upstream).await else { return };
            let mut response = Vec::new();
            if server.write_all(head.with_close().as_bytes()).await.is_err()
                || server.write_all(&body).await.is_err()
                || server.read_to_end(&mut response).await.is_err()
            {
                return;
            }
            // The whole response is read: send it on with its length, keeping the connection.
            let mut reader = BufReader::new(&response[..]);
            let Some(mut answer) = Head::read(&mut reader).await else { return };
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest).await;
            let framed =
                answer.header("content-length").is_some() || answer.header("transfer-encoding").is_some();
            if !framed {
                answer.headers.push(("Content-Length".into(), rest.len().to_string()));
            }
            let keep = answer.render(&["connection", "keep-alive"], "Connection: keep-alive\r\n");
            if client.get_mut().write_all(keep.as_bytes()).await.is_err()
                || client.get_mut().write_all(&rest).await.is_err()
            {
                return;
            }
        }
    }
}

/// Dropping the socket then resets the connection (RST) instead of closing it.
// A zero linger makes the drop immediate; the deprecation is about a positive linger blocking.
#[allow(deprecated)]
pub fn reset_on_drop(socket: &TcpStream) {
    let _ = socket.set_linger(Some(Duration::ZERO));
}

/// An HTTP/1.1 request or response head.
pub struct Head {
    start: String,
    headers: Vec<(String, String)>,
    content_length: usize,
}

impl Head {
    async fn read<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> Option<Head> {
        let mut start = String::new();
        reader.read_line(&mut start).await.ok().filter(|n| *n > 0)?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.ok().filter(|n| *n > 0)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':')?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let content_length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        Some(Head { start: start.trim_end().to_owned(), headers, content_length })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn is(&self, call: Call) -> bool {
        let method = self.start.split(' ').next().unwrap_or_default();
        let s3 = self.header("authorization").is_some_and(|a| a.contains("/s3/aws4_request"));
        match call {
            Call::Dynamo(op) => self.header("x-amz-target").is_some_and(|t| t.ends_with(&format!(".{op}"))),
            Call::S3(m) => s3 && method == m,
        }
    }

    /// The AWS operation: DynamoDB's from its target, S3's from the method (a PUT with a copy
    /// source is CopyObject).
    pub fn operation(&self) -> String {
        let method = self.start.split(' ').next().unwrap_or_default();
        match self.header("x-amz-target") {
            Some(target) => format!("dynamodb:{}", target.rsplit('.').next().unwrap_or_default()),
            None if self.header("x-amz-copy-source").is_some() => "s3:CopyObject".into(),
            None => format!(
                "s3:{}",
                match method {
                    "PUT" => "PutObject",
                    "GET" => "GetObject",
                    "HEAD" => "HeadObject",
                    "DELETE" => "DeleteObject",
                    "POST" => "Post",
                    other => other,
                }
            ),
        }
    }

    fn label(&self) -> String {
        match self.header("x-amz-target") {
            Some(target) => format!("Dynamo({})", target.rsplit('.').next().unwrap_or_default()),
            None => format!("S3({})", self.start.split(' ').next().unwrap_or_default()),
        }
    }

    /// The head without the `dropped` headers, with `extra` (whole header lines) added.
    fn render(&self, dropped: &[&str], extra: &str) -> String {
        let mut text = format!("{}\r\n", self.start);
        for (name, value) in &self.headers {
            if !dropped.iter().any(|d| name.eq_ignore_ascii_case(d)) {
                text += &format!("{name}: {value}\r\n");
            }
        }
        text + extra + "\r\n"
    }

    fn with_close(&self) -> String {
        self.render(&["connection", "keep-alive"], "Connection: close\r\n")
    }
}

/// A kind of fault `--faults` injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// DynamoDB's ThrottlingException, S3's 503 SlowDown.
    Throttle,
    /// The connection reset halfway through the request body.
    Reset,
    /// No answer at all: the SDK's attempt timeout ends it.
    Stall,
    /// A 500 InternalServerError (DynamoDB) or InternalError (S3).
    Error,
    /// The call reaches the emulator and takes effect, then its answer is lost (a reset).
    Lost,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Throttle, Kind::Reset, Kind::Stall, Kind::Error, Kind::Lost];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Throttle => "throttle",
            Kind::Reset => "reset",
            Kind::Stall => "stall",
            Kind::Error => "error",
            Kind::Lost => "lost",
        }
    }

    /// The fault, in the words of DynamoDB (`dynamo`) or S3.
    fn fault(self, dynamo: bool) -> Fault {
        match (self, dynamo) {
            (Kind::Throttle, true) => DYNAMO_THROTTLED,
            (Kind::Throttle, false) => S3_SLOW_DOWN,
            (Kind::Error, true) => DYNAMO_INTERNAL_ERROR,
            (Kind::Error, false) => S3_INTERNAL_ERROR,
            (Kind::Reset, _) => Fault::ResetMidBody,
            (Kind::Stall, _) => Fault::Stall,
            (Kind::Lost, _) => Fault::LoseResponse,
        }
    }
}

/// DynamoDB failing on its side.
pub const DYNAMO_INTERNAL_ERROR: Fault = Fault::Respond(
    500,
    "application/x-amz-json-1.0",
    r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error"}"#,
);

/// The rate of each kind of fault, per AWS call: `throttle=5%,reset=1%,stall=0.5%,error=1%`.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Spec {
    pub throttle: f64,
    pub reset: f64,
    pub stall: f64,
    pub error: f64,
    pub lost: f64,
}

impl Spec {
    fn rate(&self, kind: Kind) -> f64 {
        match kind {
            Kind::Throttle => self.throttle,
            Kind::Reset => self.reset,
            Kind::Stall => self.stall,
            Kind::Error => self.error,
            Kind::Lost => self.lost,
        }
    }

    /// Parse `kind=N%[,kind=N%...]`: each of throttle, reset, stall, error and lost at most once, the
    /// rates adding up to at most 100 %.
    pub fn parse(text: &str) -> Result<Spec, String> {
        let example = "like throttle=5%,reset=1%,stall=0.5%,error=1%";
        let mut spec = Spec::default();
        let mut given = Vec::new();
        for part in text.split(',') {
            let Some((name, rate)) = part.trim().split_once('=') else {
                return Err(format!("{part:?} is not kind=rate%: give faults {example}"));
            };
            let kind = Kind::ALL.into_iter().find(|k| k.name() == name.trim()).ok_or_else(|| {
                format!(
                    "{:?} is not a fault kind: use throttle, reset, stall, error or lost ({example})",
                    name.trim()
                )
            })?;
            if given.contains(&kind) {
                return Err(format!("{} is given twice", kind.name()));
            }
            given.push(kind);
            let percent = rate
                .trim()
                .strip_suffix('%')
                .and_then(|n| n.trim().parse::<f64>().ok())
                .filter(|n| n.is_finite() && (0.0..=100.0).contains(n))
                .ok_or_else(|| format!("{:?} is not a rate from 0% to 100% (e.g. 0.5%)", rate.trim()))?;
            let rate = percent / 100.0;
            match kind {
                Kind::Throttle => spec.throttle = rate,
                Kind::Reset => spec.reset = rate,
                Kind::Stall => spec.stall = rate,
                Kind::Error => spec.error = rate,
                Kind::Lost => spec.lost = rate,
            }
        }
        let total: f64 = Kind::ALL.iter().map(|k| spec.rate(*k)).sum();
        if total > 1.0 + 1e-9 {
            return Err(format!("the rates add up to {:.1}%, more than 100%", total * 100.0));
        }
        Ok(spec)
    }
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The kinds given (a zero rate is as good as none).
        let parts: Vec<String> = Kind::ALL
            .iter()
            .filter(|k| self.rate(**k) > 0.0)
            .map(|k| format!("{}={}%", k.name(), self.rate(*k) * 100.0))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The random faults: a [`Spec`] and the state of a SplitMix64 generator (a few lines, the same
/// sequence from the same seed on every machine).
struct Random {
    spec: Spec,
    state: u64,
}

impl Random {
    fn next(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A fault for the next request, or none, at the spec's rates.
    fn draw(&mut self) -> Option<Kind> {
        let mut draw = self.next();
        for kind in Kind::ALL {
            let rate = self.spec.rate(kind);
            if draw < rate {
                return Some(kind);
            }
            draw -= rate;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_parses_and_prints_back() {
        let spec = Spec::parse("throttle=5%,reset=1%,stall=0.5%,error=1%").unwrap();
        assert_eq!(spec, Spec { throttle: 0.05, reset: 0.01, stall: 0.005, error: 0.01, lost: 0.0 });
        assert_eq!(spec.to_string(), "throttle=5%,reset=1%,stall=0.5%,error=1%");
        assert_eq!(Spec::parse("stall=2%").unwrap(), Spec { stall: 0.02, ..Spec::default() });
        assert_eq!(Spec::parse("lost=1%").unwrap().to_string(), "lost=1%");
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, says) in [
            ("throttle", "is not kind=rate%"),
            ("slow=5%", "is not a fault kind"),
            ("throttle=5", "is not a rate"),
            ("throttle=-1%", "is not a rate"),
            ("throttle=abc%", "is not a rate"),
            ("throttle=5%,throttle=1%", "given twice"),
            ("throttle=60%,error=50%", "more than 100%"),
            ("", "is not kind=rate%"),
        ] {
            let err = Spec::parse(spec).unwrap_err();
            assert!(err.contains(says), "{spec:?}: {err}");
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_faults_at_about_the_rates() {
        let spec = Spec { throttle: 0.1, reset: 0.05, stall: 0.0, error: 0.2, lost: 0.05 };
        let draws = |seed| {
            let mut random = Random { spec, state: seed };
            (0..20_000).map(|_| random.draw()).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
        let all = draws(7);
        let share = |kind| all.iter().filter(|d| **d == Some(kind)).count() as f64 / all.len() as f64;
        assert!((share(Kind::Throttle) - 0.1).abs() < 0.01, "{}", share(Kind::Throttle));
        assert!((share(Kind::Reset) - 0.05).abs() < 0.01, "{}", share(Kind::Reset));
        assert!((share(Kind::Error) - 0.2).abs() < 0.015, "{}", share(Kind::Error));
        assert!((share(Kind::Lost) - 0.05).abs() < 0.01, "{}", share(Kind::Lost));
        assert_eq!(share(Kind::Stall), 0.0);
    }
}
