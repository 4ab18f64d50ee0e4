//! `POST /login` with OpenID Connect ID tokens, against a JWKS endpoint served by the test,
//! with key pairs the test generates.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::{assert_error, Setup, TestApp, User};

const ISSUER: &str = "https://idp.example.test";
const AUDIENCE: &str = "recording-app";

fn b64url(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(bytes).trim_end_matches('=').replace('+', "-").replace('/', "_")
}

/// One DER TLV: (contents, rest).
fn der(input: &[u8]) -> (&[u8], &[u8]) {
    let (len, start) = match input[1] {
        n if n < 0x80 => (n as usize, 2),
        n => {
            let count = (n & 0x7f) as usize;
            (input[2..2 + count].iter().fold(0usize, |acc, b| acc << 8 | *b as usize), 2 + count)
        }
    };
    (&input[start..start + len], &input[start + len..])
}

/// A signing key and its public JWK.
struct Signer {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
    jwk: Value,
    public_der: Vec<u8>,
}

fn rsa(kid: &str) -> Signer {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    // jsonwebtoken's aws-lc backend takes PKCS#1: unwrap it from the PKCS#8 PrivateKeyInfo
    // (SEQUENCE { version, algorithm, privateKey OCTET STRING }).
    let pkcs8 = pair.as_der().unwrap();
    let (info, _) = der(pkcs8.as_ref());
    let (_version, rest) = der(info);
    let (_algorithm, rest) = der(rest);
    let (pkcs1, _) = der(rest);
    let public = pair.public_key().as_ref().to_vec();
    // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
    let (sequence, _) = der(&public);
    let (n, rest) = der(sequence);
    let (e, _) = der(rest);
    let n = if n[0] == 0 { &n[1..] } else { n };
    Signer {
        kid: kid.into(),
        alg: Algorithm::RS256,
        key: EncodingKey::from_rsa_der(pkcs1),
        jwk: json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64url(n), "e": b64url(e)}),
        public_der: public,
    }
}

fn ec(kid: &str) -> Signer {
    let alg = &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(alg).unwrap();
    let pkcs8 = pair.to_pkcs8v1().unwrap();
    let point = pair.public_key().as_ref().to_vec();
    Signer {
        kid: kid.into(),
        alg: Algorithm::ES256,
        key: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({"kty": "EC", "kid": kid, "alg": "ES256", "crv": "P-256", "x": b64url(&point[1..33]), "y": b64url(&point[33..65])}),
        public_der: point,
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A fresh token's claims: each has its own `jti`, as providers issue them.
fn claims() -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "1234567890", "iat": now(), "nbf": now() - 5, "exp": now() + 600,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

fn sign(signer: &Signer, claims: &Value) -> String {
    let mut header = Header::new(signer.alg);
    header.kid = Some(signer.kid.clone());
    jsonwebtoken::encode(&header, claims, &signer.key).unwrap()
}

/// A JWKS endpoint whose keys the test can rotate, counting its fetches. With `failing` set,
/// it answers 500 after that long.
struct Idp {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    failing: Arc<Mutex<Option<std::time::Duration>>>,
}

async fn idp(keys: &[&Signer]) -> Idp {
    let keys = Arc::new(Mutex::new(keys.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>()));
    let fetches = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(Mutex::new(None));
    let (served, counted, fails) = (keys.clone(), fetches.clone(), failing.clone());
    let router = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let (served, counted, fails) = (served.clone(), counted.clone(), fails.clone());
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                let failing = *fails.lock().unwrap();
                if let Some(delay) = failing {
                    tokio::time::sleep(delay).await;
                    return Err(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
                }
                let keys = served.lock().unwrap().clone();
                Ok(axum::Json(json!({ "keys": keys })))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Idp { url, keys, fetches, failing }
}

async fn app_for(jwks_url: &str) -> TestApp {
    app_with_refetch(jwks_url, std::time::Duration::ZERO).await
}

async fn app_with_refetch(jwks_url: &str, min_refetch: std::time::Duration) -> TestApp {
    let provider = app::oidc::ProviderConfig {
        name: "google".into(),
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into()],
        jwks_url: jwks_url.into(),
        client_id: None,
        authorization_endpoint: None,
    };
    TestApp::spawn_with(Setup {
        oidc_providers: vec![provider],
        allow_unverified_login: false,
        oidc_min_refetch: min_refetch,
        ..Setup::default()
    })
    .await
}

async fn login(app: &TestApp, token: &str) -> reqwest::Response {
    let body = json!({"provider": "google", "id_token": token});
    app.http.post(app.url("/login")).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn a_valid_rs256_or_es256_token_signs_in_and_the_key_works() {
    let (logs, _guard) = crate::helpers::Logs::capture();
    let (rsa, ec) = (rsa("r1"), ec("e1"));
    let idp = idp(&[&rsa, &ec]).await;
    let app = app_for(&idp.url).await;

    for signer in [&rsa, &ec] {
        let token = sign(signer, &claims());
        let response = login(&app, &token).await;
        // The ID token never reaches a log line, not even its signature.
        let signature = token.rsplit('.').next().unwrap();
        assert!(!logs.text().contains(signature), "the ID token in the logs:\n{}", logs.text());
        assert_eq!(response.status(), 200, "{:?}", signer.alg);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["user_id"], "google_1234567890");
        let user = User {
            id: body["user_id"].as_str().unwrap().into(),
            key: body["auth_key"].as_str().unwrap().into(),
        };
        assert_eq!(app.get(&user, "/record/list").await.status(), 200);
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1, "the JWKS is cached");
}

#[tokio::test]
async fn forged_expired_or_misaddressed_tokens_are_refused_with_401() {
    let good = rsa("r1");
    let idp = idp(&[&good]).await;
    let app = app_for(&idp.url).await;
    let impostor = Signer { kid: "r1".into(), ..rsa("other") };
    let with = |field: &str, value: Value| {
        let mut c = claims();
        c[field] = value;
        c
    };
    let hs256 = {
        // HS256 "signed" with the public key: the classic algorithm-confusion attack.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("r1".into());
        jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(&good.public_der)).unwrap()
    };
    let none =
        format!("{}.{}.", b64url(br#"{"alg":"none","kid":"r1"}"#), b64url(claims().to_string().as_bytes()));
    let cases = [
        ("wrong signature", sign(&impostor, &claims())),
        ("wrong audience", sign(&good, &with("aud", json!("someone-else")))),
        ("wrong issuer", sign(&good, &with("iss", json!("https://evil.example")))),
        ("expired", sign(&good, &with("exp", json!(now() - 3600)))),
        ("not yet valid", sign(&good, &with("nbf", json!(now() + 3600)))),
        ("issued in the future", sign(&good, &with("iat", json!(now() + 3600)))),
        ("unknown kid", sign(&rsa("nobody"), &claims())),
        ("alg none", none),
        ("HS256 with the public key", hs256),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (case, token) in cases {
        let response = login(&app, &token).await;
        assert_eq!(response.status(), 401, "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"error": "id token is not valid"}), "{case}: no detail for attackers");
    }
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_by_one_refetch() {
    let (old, new) = (rsa("2025"), rsa("2026"));
    let idp = idp(&[&old]).await;
    let app = app_for(&idp.url).await;
    assert_eq!(login(&app, &sign(&old, &claims())).await.status(), 200);

    *idp.keys.lock().unwrap() = vec![new.jwk.clone()];
    let response = login(&app, &sign(&new, &claims())).await;

    assert_eq!(response.status(), 200);
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
}

/// At the default refetch limit (30 s between two fetches of a provider's keys), a token signed
/// with a key published right after a fetch is refused (401) until the interval has passed, and
/// then accepted after one more fetch: what a user sees in that window. Providers publish keys
/// well before they sign with them, so the window is met only by a key used within 30 s of its
/// publication and of our last fetch.
#[tokio::test]
async fn at_the_default_refetch_limit_a_key_rotated_right_after_a_fetch_works_once_the_interval_passes() {
    let default = app::config::Config::from_lookup(|name| (name == "RECORD_BUCKET").then(|| "b".to_owned()))
        .unwrap()
        .oidc_min_refetch;
    assert_eq!(default, std::time::Duration::from_secs(30));
    let (old, new) = (rsa("before"), rsa("after"));
    let idp = idp(&[&old]).await;
    let app = app_with_refetch(&idp.url, default).await;
    assert_eq!(login(&app, &sign(&old, &claims())).await.status(), 200);
    *idp.keys.lock().unwrap() = vec![new.jwk.clone()];

    let within = login(&app, &sign(&new, &claims())).await;
    assert_eq!(within.status(), 401, "refused within the interval");
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1, "no fetch within the interval");

    tokio::time::sleep(default + std::time::Duration::from_millis(200)).await;
    assert_eq!(login(&app, &sign(&new, &claims())).await.status(), 200, "accepted after it");
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
}

/// While the provider is slow and failing, forged `kid`s can neither make it fetch more than once
/// per backoff window nor hold up a login whose key is cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_kids_against_a_failing_provider_cause_one_fetch_and_never_delay_a_cached_key() {
    use std::time::{Duration, Instant};
    let (real, forged) = (rsa("real"), rsa("forged"));
    let idp = idp(&[&real]).await;
    // Failed fetches then back off for 2 s (the refetch interval, at least 1 s).
    let app = app_with_refetch(&idp.url, Duration::from_secs(2)).await;
    assert_eq!(login(&app, &sign(&real, &claims())).await.status(), 200);
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);

    // The provider now takes 5 s to fail. Past the refetch interval, 8 clients send forged kids.
    *idp.failing.lock().unwrap() = Some(Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let attack = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = Vec::new();
    for _ in 0..8 {
        let (app_url, http, stop) = (app.url("/login"), app.http.clone(), stop.clone());
        let token = sign(&forged, &claims());
        attackers.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let body = json!({"provider": "google", "id_token": token});
                let response = http.post(&app_url).json(&body).send().await.unwrap();
                statuses.push(response.status().as_u16());
            }
            statuses
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Meanwhile, logins with the cached key do not wait for the fetch in flight.
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let token = sign(&real, &claims());
        let started = Instant::now();
        assert_eq!(login(&app, &token).await.status(), 200);
        slowest = slowest.max(started.elapsed());
    }
    eprintln!("slowest cached-key login while forged kids hammered a failing provider: {slowest:?}");
    // Waiting on the fetch would take over 4 s; a loaded test run's slowest login took 1.1 s.
    assert!(slowest < Duration::from_millis(2500), "a cached-key login waited on the fetch: {slowest:?}");
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2, "one fetch in flight, however many forged kids");

    // The failed fetch ends about 5 s into the attack; until 2 s later, forged kids are refused
    // without a fetch (backoff).
    tokio::time::sleep((attack + Duration::from_millis(6000)).saturating_duration_since(Instant::now()))
        .await;
    stop.store(true, Ordering::SeqCst);
    for attacker in attackers {
        let statuses = attacker.await.unwrap();
        assert!(statuses.iter().all(|s| *s == 401 || *s == 503), "{statuses:?}");
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2, "no fetch within the backoff after a failure");
    assert_eq!(login(&app, &sign(&real, &claims())).await.status(), 200, "the cached key still works");
}

/// A stolen or logged ID token is worth nothing once exchanged: by its `jti`, or by the whole
/// token when the provider sets none.
#[tokio::test]
async fn an_id_token_is_exchanged_for_a_key_once() {
    let signer = rsa("once");
    let idp = idp(&[&signer]).await;
    let app = app_for(&idp.url).await;
    let used = "this id token was already exchanged for a key: get a new one from the provider";

    let first = claims();
    let token = sign(&signer, &first);
    assert_eq!(login(&app, &token).await.status(), 200);
    assert_error(login(&app, &token).await, 401, used).await;
    // Another token with the same jti (issued later, so signed differently) is the same token.
    let mut same_jti = claims();
    same_jti["jti"] = first["jti"].clone();
    same_jti["iat"] = json!(now() - 1);
    assert_error(login(&app, &sign(&signer, &same_jti)).await, 401, used).await;

    let mut without_jti = claims();
    without_jti.as_object_mut().unwrap().remove("jti");
    let token = sign(&signer, &without_jti);
    assert_eq!(login(&app, &token).await.status(), 200);
    assert_error(login(&app, &token).await, 401, used).await;
    assert_eq!(login(&app, &sign(&signer, &claims())).await.status(), 200, "a new token still works");
}

/// The same ES256 token with its other valid signature, (r, n − s): ECDSA signatures are
/// malleable, so whoever holds a token can make a second string that verifies.
fn other_signature(token: &str) -> String {
    const ORDER: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc,
        0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
    ];
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut standard = signature.replace('-', "+").replace('_', "/");
    while standard.len() % 4 != 0 {
        standard.push('=');
    }
    let mut bytes = aws_smithy_types::base64::decode(&standard).unwrap();
    assert_eq!(bytes.len(), 64, "ES256 signatures are r || s");
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let difference = ORDER[i] as i16 - bytes[32 + i] as i16 - borrow;
        borrow = i16::from(difference < 0);
        bytes[32 + i] = difference.rem_euclid(256) as u8;
    }
    format!("{signed}.{}", b64url(&bytes))
}

/// Without a `jti`, a token is identified by what its signature signs: the other form of an
/// ES256 signature is the same token, and is refused once either was exchanged.
#[tokio::test]
async fn an_es256_token_without_jti_is_exchanged_once_whatever_form_its_signature_takes() {
    let signer = ec("malleable");
    let idp = idp(&[&signer]).await;
    let app = app_for(&idp.url).await;
    let mut without_jti = claims();
    without_jti.as_object_mut().unwrap().remove("jti");
    let token = sign(&signer, &without_jti);
    let twin = other_signature(&token);
    assert_ne!(twin, token);

    assert_eq!(login(&app, &twin).await.status(), 200, "the other signature verifies");
    let used = "this id token was already exchanged for a key: get a new one from the provider";
    assert_error(login(&app, &token).await, 401, used).await;
    assert_error(login(&app, &twin).await, 401, used).await;
}

/// With a provider configured, its name cannot be used as the unverified login's social_type:
/// `GET /login?social_type=google&social_id=u1` would otherwise sign in as google's user u1.
#[tokio::test]
async fn the_unverified_login_refuses_a_providers_name() {
    let provider = app::oidc::ProviderConfig {
        name: "google".into(),
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into()],
        jwks_url: "http://127.0.0.1:9/jwks".into(),
        client_id: None,
        authorization_endpoint: None,
    };
    let app = TestApp::spawn_with(Setup { oidc_providers: vec![provider], ..Setup::default() }).await;
    let response = app.http.get(app.url("/login?social_type=google&social_id=u1")).send().await.unwrap();
    assert_error(response, 403, "social_type google is a verified provider here: sign in with POST /login")
        .await;
    assert!(app.rows(&app::schema::USER_TABLE).await.is_empty());
    app.login("u1").await;
}

#[tokio::test]
async fn an_unreachable_jwks_endpoint_gives_503() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = app_for(&format!("http://127.0.0.1:{port}/jwks")).await;

    let response = login(&app, &sign(&rsa("r1"), &claims())).await;

    assert_error(response, 503, "the identity provider's keys could not be fetched").await;
}

#[tokio::test]
async fn an_unknown_provider_or_a_malformed_body_is_a_400() {
    let app = app_for("http://127.0.0.1:9/jwks").await;
    let other = app
        .http
        .post(app.url("/login"))
        .json(&json!({"provider": "myspace", "id_token": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(other, 400, "unknown provider").await;
    let bad = app
        .http
        .post(app.url("/login"))
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}
