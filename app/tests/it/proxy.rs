//! A fault-injecting HTTP proxy between the service and the emulator: it forwards each request,
//! or, when a rule matches it, stalls, delays, answers with an error of its own, or resets the
//! connection in the middle of the request body. It can also simulate an outage: in-flight
//! connections are reset and new ones dropped until it ends.
//!
//! One request per connection (it asks both sides for `Connection: close`), so every request is
//! seen whole; the SDK opens a new connection per request through it.

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
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let (outage, _) = watch::channel(false);
        let proxy =
            Proxy { address, rules: Arc::default(), outage, forwarded: Arc::default(), seen: Arc::default() };
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

    fn fault_for(&self, head: &Head) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap();
        let rule = rules.iter_mut().find(|r| r.times != Some(0) && head.is(r.call))?;
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
            None => {}
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
fn reset_on_drop(socket: &TcpStream) {
    let _ = socket.set_linger(Some(Duration::ZERO));
}

/// An HTTP/1.1 request or response head.
struct Head {
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

    fn header(&self, name: &str) -> Option<&str> {
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
