//! No request input makes the service fail or panic: property-based requests against the real
//! router (every route, arbitrary methods, percent-encoded and non-UTF-8 paths and queries,
//! headers and bodies, signed in or not), with no backend fault injected. Each must get a
//! status below 500, and every 4xx a JSON body with an `error` message.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::helpers::{TestApp, User};

#[derive(Debug, Clone)]
struct Input {
    method: &'static str,
    path: String,
    query: Option<String>,
    auth: Auth,
    content_type: Option<String>,
    request_id: Option<String>,
    body: Vec<u8>,
}

#[derive(Debug, Clone)]
enum Auth {
    None,
    Valid,
    /// The valid user id with a wrong key, or anything at all.
    WrongKey,
    Garbage(String),
}

/// Bytes as a URL path or query piece: unreserved characters as they are, the rest (non-UTF-8
/// sequences included) percent-encoded.
fn encoded(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9._-]{0,12}",
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(|b| encoded(&b)),
        Just("..".to_owned()),
        Just("%2e%2e%2f".to_owned()),
        Just("01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned()),
    ]
}

fn path() -> impl Strategy<Value = String> {
    let route = prop_oneof![
        Just("/health"),
        Just("/login"),
        Just("/logout"),
        Just("/upload/record/"),
        Just("/record/list"),
        Just("/record/uploads"),
        Just("/record/"),
        Just("/"),
    ];
    (route, piece(), prop_oneof![Just(""), Just("/complete"), Just("/"), Just("//x")])
        .prop_map(|(route, piece, tail)| format!("{route}{piece}{tail}"))
}

fn query() -> impl Strategy<Value = Option<String>> {
    let pair = (
        prop_oneof![
            Just("social_id".to_owned()),
            Just("social_type".to_owned()),
            Just("next".to_owned()),
            piece()
        ],
        piece(),
    )
        .prop_map(|(k, v)| format!("{k}={v}"));
    proptest::option::of(proptest::collection::vec(pair, 0..4).prop_map(|pairs| pairs.join("&")))
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let json = (piece(), piece(), any::<i64>()).prop_map(|(name, kind, size)| {
        serde_json::json!({ "file_name": name, "content_type": kind, "size": size, "provider": name, "id_token": kind })
            .to_string()
            .into_bytes()
    });
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..2048), json, Just(Vec::new())]
}

fn input() -> impl Strategy<Value = Input> {
    let method = prop_oneof![
        Just("GET"),
        Just("POST"),
        Just("PUT"),
        Just("DELETE"),
        Just("PATCH"),
        Just("HEAD"),
        Just("OPTIONS")
    ];
    let auth = prop_oneof![
        Just(Auth::None),
        Just(Auth::Valid),
        Just(Auth::Valid),
        Just(Auth::WrongKey),
        "[ -~]{0,80}".prop_map(Auth::Garbage),
    ];
    let content_type = proptest::option::of(prop_oneof![
        Just("audio/mp4".to_owned()),
        Just("application/json".to_owned()),
        "[ -~]{0,40}",
    ]);
    (method, path(), query(), auth, content_type, proptest::option::of("[ -~]{0,200}"), body()).prop_map(
        |(method, path, query, auth, content_type, request_id, body)| Input {
            method,
            path,
            query,
            auth,
            content_type,
            request_id,
            body,
        },
    )
}

async fn check(app: &TestApp, user: &User, input: Input) -> Result<(), TestCaseError> {
    let mut url = format!("{}{}", app.address, input.path);
    if let Some(query) = &input.query {
        url = format!("{url}?{query}");
    }
    let method = reqwest::Method::from_bytes(input.method.as_bytes()).unwrap();
    let mut request = app.http.request(method, &url).body(input.body.clone());
    match &input.auth {
        Auth::None => {}
        Auth::Valid => request = request.header("Authorization", user.header()),
        Auth::WrongKey => {
            request = request.header("Authorization", format!("{} {}", user.id, "0".repeat(64)))
        }
        Auth::Garbage(text) => request = request.header("Authorization", text),
    }
    if let Some(content_type) = &input.content_type {
        request = request.header("Content-Type", content_type);
    }
    if let Some(id) = &input.request_id {
        request = request.header("x-request-id", id);
    }
    let response =
        request.send().await.map_err(|e| TestCaseError::fail(format!("no answer ({e}) for {input:?}")))?;
    let status = response.status().as_u16();
    prop_assert!(status < 500, "{status} for {input:?}: {}", response.text().await.unwrap_or_default());
    if (400..500).contains(&status) && input.method != "HEAD" {
        let text = response.text().await.unwrap_or_default();
        let body: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
            TestCaseError::fail(format!("{status} without a JSON body ({text:?}) for {input:?}"))
        })?;
        prop_assert!(body["error"].is_string(), "{status} body {body} for {input:?}");
    }
    Ok(())
}

#[test]
fn no_request_input_gets_a_5xx_or_a_4xx_without_a_json_error() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (app, user) = runtime.block_on(async {
        let app = TestApp::spawn().await;
        let user = app.login("1").await;
        (app, user)
    });
    let config = Config { cases: 300, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&input(), |input| runtime.block_on(check(&app, &user, input)));
    if let Err(err) = result {
        panic!("{err}");
    }
}
