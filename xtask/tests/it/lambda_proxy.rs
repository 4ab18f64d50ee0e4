//! The Lambda endpoint of the release tests: moto behind a proxy that does what moto cannot.
//! Every request goes on to moto except:
//! - `Invoke`: runs the real binary of the invoked version (found by its CodeSha256 among the
//!   binaries a test registered), with that version's environment, under cargo-lambda's runtime
//!   emulator, and answers as Lambda does (`X-Amz-Log-Result`, `X-Amz-Function-Error:
//!   Unhandled` with `Runtime.ExitError` when the process exits before answering);
//! - alias revisions: moto never changes an alias's RevisionId and ignores it on UpdateAlias, so
//!   the proxy keeps a revision per alias and refuses a stale one with AWS's
//!   `PreconditionFailedException`;
//! - the service's own calls (signed with the key the proxy gives the process): checked against
//!   its execution role's inline policies in moto with the project's IAM evaluator, and denied in
//!   DynamoDB's or S3's words when the role does not allow them (moto cannot enforce IAM while
//!   its Lambda API is in use).
//!
//! The invocations are recorded with their qualifier (moto ignores it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncBufReadExt;

/// The access key the service's process signs with: how the proxy tells its calls apart.
const SERVICE_KEY: &str = "ASIATESTSERVICEROLE";
/// cargo-lambda's name for the one function it serves with `--only-lambda-apis`.
const RUNTIME_FUNCTION: &str = "_";

/// One invocation, as sent.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub function: String,
    pub qualifier: Option<String>,
    pub log_type: Option<String>,
}

struct State {
    moto: String,
    http: reqwest::Client,
    lambda: aws_sdk_lambda::Client,
    iam: aws_sdk_iam::Client,
    runtime: String,
    endpoint: String,
    binaries: Mutex<HashMap<String, PathBuf>>,
    invocations: Mutex<Vec<Invocation>>,
    revisions: tokio::sync::Mutex<HashMap<String, u64>>,
    /// Invocations wait here (a test makes two deploys prove their versions at once).
    barrier: Mutex<Option<Arc<tokio::sync::Barrier>>>,
    /// One invocation runs at a time: the runtime emulator serves one function, and a process
    /// that answered one event could take the next one's before it is stopped.
    running: tokio::sync::Mutex<()>,
}

pub struct LambdaProxy {
    pub endpoint: String,
    state: Arc<State>,
    _runtime: tokio::process::Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl LambdaProxy {
    pub async fn start(moto: &str) -> LambdaProxy {
        let tools = std::env::var("RECORDING_ZIG_TOOLS").expect(
            "RECORDING_ZIG_TOOLS is not set: run the tests with `cargo xtask test`, which installs cargo-lambda",
        );
        let port = free_port();
        let runtime = tokio::process::Command::new(Path::new(&tools).join("bin").join("cargo-lambda"))
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start cargo lambda watch");
        let started = std::time::Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "cargo lambda watch did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let aws = xtask::aws::Aws::emulator(moto).await;
        let state = Arc::new(State {
            moto: moto.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap(),
            lambda: aws_sdk_lambda::Client::new(&aws.sdk),
            iam: aws_sdk_iam::Client::new(&aws.sdk),
            runtime: format!("http://127.0.0.1:{port}"),
            endpoint: endpoint.clone(),
            binaries: Mutex::default(),
            invocations: Mutex::default(),
            revisions: tokio::sync::Mutex::default(),
            barrier: Mutex::default(),
            running: tokio::sync::Mutex::default(),
        });
        let serving = state.clone();
        let app = axum::Router::new()
            .fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = serving.clone();
                async move { state.handle(method, uri, headers, body).await }
            })
            // CreateFunction and UpdateFunctionCode carry the whole package.
            .layer(axum::extract::DefaultBodyLimit::disable());
        tokio::spawn(async move { axum::serve(listener, app).await });
        LambdaProxy { endpoint, state, _runtime: runtime }
    }

    /// Let invocations of the code deploy packages from `binary` run it.
    pub fn register(&self, binary: &Path) {
        let bytes = std::fs::read(binary).unwrap();
        let sha =
            xtask::deploy::package::code_sha256(&xtask::deploy::package::zip_bootstrap(&bytes).unwrap());
        self.state.binaries.lock().unwrap().insert(sha, binary.to_owned());
    }

    pub fn invocations(&self) -> Vec<Invocation> {
        self.state.invocations.lock().unwrap().clone()
    }

    /// The next `n` invocations start together, once all `n` have arrived.
    pub fn hold_invocations(&self, n: usize) {
        *self.state.barrier.lock().unwrap() = Some(Arc::new(tokio::sync::Barrier::new(n)));
    }
}

fn aws_error(status: u16, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "Type": "User", "message": message, "Message": message });
    let mut response = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
    response.headers_mut().insert("x-amzn-errortype", HeaderValue::from_str(code).unwrap());
    response
}

impl State {
    async fn handle(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        let path = uri.path().to_owned();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let query: HashMap<String, String> = uri.query().map(url_pairs).unwrap_or_default();
        let from_service = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains(&format!("Credential={SERVICE_KEY}/")));
        if from_service {
            if let Some(denied) = self.deny_for_role(&method, &segments, &headers, &body).await {
                return denied;
            }
        }
        match (&method, segments.as_slice()) {
            (&Method::POST, ["2015-03-31", "functions", name, "invocations"]) => {
                let invocation = Invocation {
                    function: (*name).to_owned(),
                    qualifier: query.get("Qualifier").cloned(),
                    log_type: headers.get("x-amz-log-type").and_then(|v| v.to_str().ok()).map(str::to_owned),
                };
                self.invocations.lock().unwrap().push(invocation.clone());
                self.invoke(invocation, body).await
            }
            (_, ["2015-03-31", "functions", name, "aliases", ..]) => {
                let name = (*name).to_owned();
                self.alias_call(method, uri, headers, body, &name, segments.get(4).copied()).await
            }
            _ => self.forward(method, &uri, headers, body).await,
        }
    }

    async fn forward(&self, method: Method, uri: &Uri, headers: HeaderMap, body: Bytes) -> Response {
        let url = format!("{}{}", self.moto, uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
        let mut request = self.http.request(method, url).body(body);
        for (name, value) in &headers {
            if name != "host" && name != "content-length" {
                request = request.header(name, value);
            }
        }
        match request.send().await {
            Ok(answer) => {
                let status = answer.status();
                let headers = answer.headers().clone();
                let bytes = answer.bytes().await.unwrap_or_default();
                let mut response = (status, bytes).into_response();
                for (name, value) in &headers {
                    if name != "content-length" && name != "transfer-encoding" {
                        response.headers_mut().insert(name, value.clone());
                    }
                }
                response
            }
            Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
        }
    }

    /// Alias calls with revisions as AWS keeps them: a new one on every write, checked when the
    /// request names one.
    async fn alias_call(
        &self,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
        function: &str,
        alias: Option<&str>,
    ) -> Response {
        let mut revisions = self.revisions.lock().await;
        let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let alias = alias.map(str::to_owned).or_else(|| request["Name"].as_str().map(str::to_owned));
        let key = format!("{function}:{}", alias.clone().unwrap_or_default());
        if method == Method::PUT {
            if let Some(sent) = request["RevisionId"].as_str() {
                let current = revisions.get(&key).copied().unwrap_or(0);
                if sent != current.to_string() {
                    return aws_error(
                        412,
                        "PreconditionFailedException",
                        "The Revision Id provided does not match the latest Revision Id. Call the GetAlias API to retrieve the latest Revision Id",
                    );
                }
            }
        }
        let response = self.forward(method.clone(), &uri, headers, body).await;
        if !response.status().is_success() {
            return response;
        }
        if method == Method::PUT || method == Method::POST {
            *revisions.entry(key.clone()).or_insert(0) += 1;
        }
        if alias.is_none() {
            return response;
        }
        // The answer carries the proxy's revision instead of moto's constant one.
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
        let mut answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if answer.get("RevisionId").is_some() {
            answer["RevisionId"] = revisions.get(&key).copied().unwrap_or(0).to_string().into();
        }
        let mut response = (parts.status, axum::Json(answer)).into_response();
        response.headers_mut().extend(
            parts.headers.into_iter().filter_map(|(n, v)| {
                n.filter(|n| n != "content-length" && n != "content-type").map(|n| (n, v))
            }),
        );
        response
    }

    /// Run the invoked version's binary for one event, as Lambda would.
    async fn invoke(&self, invocation: Invocation, event: Bytes) -> Response {
        let barrier = self.barrier.lock().unwrap().clone();
        if let Some(barrier) = barrier {
            // Bounded: a test whose deploys do not both invoke fails on its assertions, not by hanging.
            if let Ok(result) = tokio::time::timeout(Duration::from_secs(20), barrier.wait()).await {
                if result.is_leader() {
                    *self.barrier.lock().unwrap() = None;
                }
            }
        }
        let _running = self.running.lock().await;
        let qualifier = invocation.qualifier.clone().unwrap_or_else(|| "$LATEST".into());
        let config = self
            .lambda
            .get_function_configuration()
            .function_name(&invocation.function)
            .qualifier(&qualifier)
            .send()
            .await;
        let Ok(config) = config else {
            return aws_error(404, "ResourceNotFoundException", &format!("Function not found: {qualifier}"));
        };
        let sha = config.code_sha256().unwrap_or_default().to_owned();
        let Some(binary) = self.binaries.lock().unwrap().get(&sha).cloned() else {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("test proxy: no binary registered for {sha}"),
            )
                .into_response();
        };
        let environment = config.environment().and_then(|e| e.variables()).cloned().unwrap_or_default();
        let mut child = tokio::process::Command::new(&binary)
            .envs(environment)
            .env("AWS_LAMBDA_RUNTIME_API", format!("{}/.rt", self.runtime))
            .env("AWS_LAMBDA_FUNCTION_NAME", RUNTIME_FUNCTION)
            .env("AWS_LAMBDA_FUNCTION_VERSION", config.version().unwrap_or("$LATEST"))
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", config.memory_size().unwrap_or(128).to_string())
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", SERVICE_KEY)
            .env("AWS_SECRET_ACCESS_KEY", "test-service-secret")
            .env("AWS_REGION", "us-east-1")
            .env("RECORDING_TEST_ROLE", config.role().unwrap_or_default())
            .env_remove("PORT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the version's binary");
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let url = format!("{}/2015-03-31/functions/{RUNTIME_FUNCTION}/invocations", self.runtime);
        let answer = tokio::select! {
            answer = self.http.post(url).body(event).send() => match answer {
                Ok(a) => Ok((a.status().as_u16(), a.bytes().await.unwrap_or_default())),
                Err(e) => Err(format!("the runtime emulator failed: {e}")),
            },
            status = child.wait() => Err(format!(
                "RequestId: {} Error: Runtime exited with error: {}",
                uuid::Uuid::new_v4(),
                status.map(|s| s.to_string()).unwrap_or_default()
            )),
        };
        let _ = child.kill().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let log = log.lock().unwrap().clone();
        let tail = &log[log.len().saturating_sub(4096)..];
        let (body, error) = match answer {
            Ok((200, bytes)) => (bytes.to_vec(), None),
            Ok((_, bytes)) => (bytes.to_vec(), Some("Unhandled")),
            Err(message) => (
                serde_json::to_vec(
                    &serde_json::json!({ "errorType": "Runtime.ExitError", "errorMessage": message }),
                )
                .unwrap(),
                Some("Unhandled"),
            ),
        };
        let mut response = (StatusCode::OK, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            "x-amz-executed-version",
            HeaderValue::from_str(config.version().unwrap_or_default()).unwrap(),
        );
        if let Some(error) = error {
            headers.insert("x-amz-function-error", HeaderValue::from_static(error));
        }
        if invocation.log_type.as_deref() == Some("Tail") {
            let encoded = aws_smithy_types::base64::encode(tail.as_bytes());
            headers.insert("x-amz-log-result", HeaderValue::from_str(&encoded).unwrap());
        }
        response
    }

    /// The service's call, if its role's inline policies do not allow it: AWS's denial.
    async fn deny_for_role(
        &self,
        method: &Method,
        segments: &[&str],
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Option<Response> {
        let (action, resource, dynamo) = match headers.get("x-amz-target").and_then(|t| t.to_str().ok()) {
            Some(target) => {
                let operation = target.rsplit('.').next().unwrap_or_default();
                let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
                let table = request["TableName"].as_str().unwrap_or_default();
                (
                    format!("dynamodb:{operation}"),
                    format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}"),
                    true,
                )
            }
            None => {
                let action = match *method {
                    Method::GET | Method::HEAD => "s3:GetObject",
                    Method::PUT | Method::POST => "s3:PutObject",
                    Method::DELETE => "s3:DeleteObject",
                    _ => return None,
                };
                (action.to_owned(), format!("arn:aws:s3:::{}", segments.join("/")), false)
            }
        };
        // Which role: the one the running version names (one service process at a time here).
        let role_arn = self.current_role().await?;
        let role = role_arn.rsplit('/').next().unwrap_or_default().to_owned();
        let mut documents = Vec::new();
        let names = self.iam.list_role_policies().role_name(&role).send().await.ok()?;
        for name in names.policy_names() {
            let policy = self.iam.get_role_policy().role_name(&role).policy_name(name).send().await.ok()?;
            let text = percent_encoding::percent_decode_str(policy.policy_document())
                .decode_utf8_lossy()
                .into_owned();
            documents.push(iam::PolicyDocument::parse(&text).ok()?);
        }
        if iam::policy::evaluate(&documents, &action, &resource, &[]) == iam::policy::Evaluation::Allow {
            return None;
        }
        let message = format!(
            "User: arn:aws:sts::123456789012:assumed-role/{role}/{RUNTIME_FUNCTION} is not authorized to perform: {action} on resource: {resource} because no identity-based policy allows the {action} action"
        );
        Some(if dynamo {
            let body = serde_json::json!({ "__type": "com.amazon.coral.service#AccessDeniedException", "Message": message });
            let mut response = (StatusCode::BAD_REQUEST, body.to_string()).into_response();
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/x-amz-json-1.0"));
            response
        } else {
            let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>{message}</Message><RequestId>TESTPROXY</RequestId></Error>");
            let mut response = (StatusCode::FORBIDDEN, body).into_response();
            response.headers_mut().insert("content-type", HeaderValue::from_static("application/xml"));
            response
        })
    }

    /// The execution role of the function the proxy last invoked.
    async fn current_role(&self) -> Option<String> {
        let function = self.invocations.lock().unwrap().last()?.function.clone();
        let config = self.lambda.get_function_configuration().function_name(function).send().await.ok()?;
        config.role().map(str::to_owned)
    }
}

fn url_pairs(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            (k.to_owned(), percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
        })
        .collect()
}
