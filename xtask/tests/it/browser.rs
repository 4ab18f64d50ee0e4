//! The web recorder in a real browser: Debian's Chromium, driven by playwright-core, records
//! from a fake microphone (a WAV this test writes) against `cargo xtask local`'s whole stack,
//! with the direct upload limit lowered so a longer take goes through the presigned path.
//! The browser script (`tests/browser/recorder.mjs`) reports what the page did; this test
//! asserts on that and on what the emulator stored. Missing Chromium or playwright-core fails
//! the test: `cargo xtask test` installs both.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use crate::helpers::Scratch;

/// The direct limit for this run: a 2 s take (about 9 KB of Opus) goes directly, a 6 s one
/// (about 25 KB) through the presigned PUT.
const DIRECT_LIMIT: &str = "16000";

/// A mono 16-bit WAV: a 440 Hz tone, `seconds` long (Chromium loops it as the microphone).
fn tone_wav(seconds: u32) -> Vec<u8> {
    let rate: u32 = 48_000;
    let samples: Vec<i16> = (0..rate * seconds)
        .map(|i| {
            (12_000.0 * (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / f64::from(rate)).sin()) as i16
        })
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes()); // bytes per second
    wav.extend_from_slice(&2u16.to_le_bytes()); // block align
    wav.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        wav.extend_from_slice(&sample.to_le_bytes());
    }
    wav
}

/// `xtask local`, killed when the test ends however it ends (its emulator and service follow it).
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `cargo xtask test`, which installs Chromium and playwright-core")
    })
}

#[tokio::test]
async fn the_web_recorder_records_uploads_plays_and_deletes_in_chromium() {
    let chromium = required_env("RECORDING_CHROMIUM");
    let playwright = required_env("RECORDING_PLAYWRIGHT_CORE");
    let screenshots = required_env("RECORDING_SCREENSHOTS");
    assert!(std::path::Path::new(&chromium).exists(), "no Chromium at {chromium}");
    std::fs::create_dir_all(&screenshots).unwrap();
    let scratch = Scratch::dir("browser");
    let wav = scratch.join("tone.wav");
    std::fs::write(&wav, tone_wav(10)).unwrap();

    let idp = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let providers = serde_json::json!([{
        "name": "testidp", "issuer": format!("http://127.0.0.1:{idp}"), "audiences": ["recorder"],
        "jwks_url": format!("http://127.0.0.1:{idp}/jwks"), "client_id": "recorder",
        "authorization_endpoint": format!("http://127.0.0.1:{idp}/authorize"),
    }])
    .to_string();
    let (local, port, emulator, _output) =
        crate::local::start_local_with(&["--max-upload-bytes", DIRECT_LIMIT, "--oidc-providers", &providers]);
    let _local = Stopped(local);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/recorder.mjs");
    let output = tokio::process::Command::new("node")
        .args([script, &format!("http://127.0.0.1:{port}"), wav.to_str().unwrap(), &chromium, &screenshots])
        .env("PLAYWRIGHT_CORE", &playwright)
        .env("IDP_PORT", idp.to_string())
        .env("AXE_CORE", std::path::Path::new(&playwright).parent().unwrap().join("axe-core"))
        .kill_on_drop(true)
        .output();
    let output =
        tokio::time::timeout(Duration::from_secs(180), output).await.expect("the browser run hung").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "node failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the browser script printed no report ({e}): {stdout}"));
    assert!(seen["failure"].is_null(), "the browser run failed: {}\n{seen:#}", seen["failure"]);

    // Nothing failed in the page: no uncaught error, no CSP refusal; the only failed loads are the
    // 401 that sent the signed-out session back to sign-in, the refused type's 415, and the lost
    // delete's reset and its retry's 404.
    assert_eq!(seen["pageErrors"], serde_json::json!([]), "{seen:#}");
    for error in seen["consoleErrors"].as_array().unwrap() {
        let error = error.as_str().unwrap();
        assert!(
            ["status of 401", "status of 415", "status of 404", "ERR_CONNECTION_RESET"]
                .iter()
                .any(|e| error.contains(e)),
            "a console error: {error}\n{seen:#}"
        );
    }
    // The only dialogs were the deletes' confirmations (the lost one's retry asks again): the
    // HTML file name ran nothing.
    let dialogs: Vec<&str> =
        seen["dialogs"].as_array().unwrap().iter().map(|d| d["type"].as_str().unwrap()).collect();
    assert_eq!(dialogs, ["confirm"; 3], "{seen:#}");
    assert_eq!(seen["xss"]["shown"], seen["xss"]["fileName"]);
    assert_eq!(seen["xss"]["images"], 0);

    // axe-core finds no serious or critical accessibility violation, signed out or in.
    assert_eq!(seen["a11ySignedOut"], serde_json::json!([]), "{seen:#}");
    assert_eq!(seen["a11ySignedIn"], serde_json::json!([]), "{seen:#}");
    assert!(seen["level"].as_f64().unwrap() > 0.0, "the level meter never moved: {seen:#}");
    assert!(seen["played"]["currentTime"].as_f64().unwrap() > 0.3, "{seen:#}");
    // A MediaRecorder WebM has no duration in its header: Chromium reports it once played
    // through, or as Infinity; either way not zero or NaN.
    let duration = &seen["played"]["duration"];
    assert!(duration.is_null() || duration.as_f64().is_some_and(|d| d > 0.0), "{seen:#}");
    assert_eq!(seen["large"]["progress"], 1, "the progress bar reached the end: {seen:#}");
    assert_eq!(seen["oneMiB"]["listed"], true, "{seen:#}");
    assert_eq!(
        seen["download"]["suggested"], seen["direct"]["fileName"],
        "the download is named as uploaded"
    );
    assert_eq!(
        seen["stagingPuts"], 2,
        "the long take and the 1 MiB one went through the presigned PUT: {seen:#}"
    );
    // The browser's PUT carries every header the service signed, with the signed values: the
    // type without parameters, the fixed disposition, and the declared length.
    let put = &seen["stagingPut"];
    let url = put["url"].as_str().unwrap();
    let signed = url.split(['?', '&']).find_map(|p| p.strip_prefix("X-Amz-SignedHeaders=")).unwrap();
    let headers = put["headers"].as_object().unwrap();
    for header in signed.split("%3B") {
        assert!(headers.contains_key(header), "the browser did not send the signed header {header}: {put:#}");
    }
    assert_eq!(headers["content-type"], "audio/webm", "{put:#}");
    assert_eq!(headers["content-disposition"], "attachment", "{put:#}");
    // And S3's own check (moto makes none): the browser's exact PUT, re-signed, matches its
    // signature; another type or disposition, or the URL after its expiry, does not. So does the
    // presigned GET the player used.
    let sent: Vec<(String, String)> =
        headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap().to_owned())).collect();
    crate::sigv4::check_presigned("PUT", url, &sent)
        .unwrap_or_else(|e| panic!("S3 would refuse the browser's PUT: {e}"));
    for (name, value) in [("content-type", "audio/ogg"), ("content-disposition", "inline")] {
        let tampered: Vec<(String, String)> = sent
            .iter()
            .map(|(n, v)| (n.clone(), if n == name { value.to_owned() } else { v.clone() }))
            .collect();
        let refused = crate::sigv4::check_presigned("PUT", url, &tampered).unwrap_err();
        assert!(refused.starts_with("SignatureDoesNotMatch"), "{name}: {refused}");
    }
    let stale = url.replacen("X-Amz-Date=20", "X-Amz-Date=19", 1);
    assert_eq!(crate::sigv4::check_presigned("PUT", &stale, &sent), Err("the URL has expired".to_owned()));
    let played = seen["played"]["src"].as_str().unwrap();
    crate::sigv4::check_presigned("GET", played, &[])
        .unwrap_or_else(|e| panic!("S3 would refuse the playback: {e}"));
    // The lost answer: the service had deleted it; the page offered Retry, and took the retry's
    // 404 for what it is (deleted), not for an error.
    let lost = &seen["lostDelete"];
    assert_eq!(lost["firstAnswer"], 200, "{seen:#}");
    assert!(lost["error"].as_str().unwrap().contains("cannot be reached"), "{seen:#}");
    assert_eq!(
        (&lost["status"], &lost["errorShown"]),
        (&serde_json::json!("Deleted <img src=x onerror=alert(1)>.webm."), &Value::Bool(false))
    );
    assert_eq!(seen["narrowOverflow"], false, "the page scrolls sideways at 360 px");
    assert!(seen["signedOutMessage"].as_str().unwrap().contains("sign in again"), "{seen:#}");
    assert!(
        seen["refusedMessage"].as_str().unwrap().starts_with("Microphone access was refused"),
        "{seen:#}"
    );
    // Signed in through the provider by redirect; a token with another nonce, or an answer with
    // another state, is refused by the page.
    assert_eq!(seen["providerUser"], "Signed in as testidp_carol", "{seen:#}");
    assert_eq!(seen["tokenLeftInUrl"], false, "the ID token stays in the address bar");
    assert!(seen["bad-nonce"]["error"].as_str().unwrap().contains("(nonce)"), "{seen:#}");
    assert!(seen["bad-state"]["error"].as_str().unwrap().contains("(state)"), "{seen:#}");
    assert_eq!(
        (&seen["bad-nonce"]["signedIn"], &seen["bad-state"]["signedIn"]),
        (&Value::Bool(false), &Value::Bool(false))
    );
    assert!(
        seen["unsupportedMessage"].as_str().unwrap().starts_with("content type is not accepted: send one of"),
        "the service's 415 message is shown: {seen:#}"
    );

    // What the emulator holds: the long take and the HTML-named one, as audio/webm objects of
    // the listed size; the deleted one is gone, row and object.
    let aws = xtask::aws::Aws::emulator(&format!("http://127.0.0.1:{emulator}")).await;
    let rows = aws.dynamodb().scan().table_name(app::schema::RECORD_TABLE.name("")).send().await.unwrap();
    let rows: Vec<_> =
        rows.items().iter().filter(|r| r["user_id"] == AttributeValue::S("demo_alice".into())).collect();
    let one_mib = rows.iter().find(|r| r["file_name"] == AttributeValue::S("one-mib.webm".into()));
    assert_eq!(one_mib.map(|r| r["size"].as_n().unwrap().as_str()), Some("1048576"), "the 1 MiB take");
    let id = |r: &&std::collections::HashMap<String, AttributeValue>| r["id"].as_s().unwrap().clone();
    let mut stored: Vec<String> =
        rows.iter().filter(|r| r["file_name"] != AttributeValue::S("one-mib.webm".into())).map(id).collect();
    stored.sort();
    assert_eq!(stored, [seen["large"]["id"].as_str().unwrap()], "rows after the run");
    let large =
        rows.iter().find(|r| r["id"].as_s().unwrap() == seen["large"]["id"].as_str().unwrap()).unwrap();
    assert_eq!(
        headers["content-length"].as_str().unwrap(),
        large["size"].as_n().unwrap(),
        "the browser's PUT has the declared (signed) length"
    );
    let s3 = aws.s3();
    for row in &rows {
        let key = row["object_key"].as_s().unwrap();
        let object = s3.head_object().bucket(xtask::local::LOCAL_BUCKET).key(key).send().await.unwrap();
        assert_eq!(object.content_type(), Some("audio/webm"), "{key}");
        assert_eq!(object.content_length().unwrap().to_string(), *row["size"].as_n().unwrap(), "{key}");
        assert_eq!(row["content_type"].as_s().unwrap(), "audio/webm");
    }
    // The page's origin may PUT with the signed headers and read the ETag (moto enforces a rule
    // once one exists: the uploads above passed its check).
    let cors = s3.get_bucket_cors().bucket(xtask::local::LOCAL_BUCKET).send().await.unwrap();
    let rule = &cors.cors_rules()[0];
    assert!(rule.allowed_origins().contains(&format!("http://127.0.0.1:{port}")), "{rule:?}");
    for header in ["content-type", "content-disposition"] {
        assert!(rule.allowed_headers().iter().any(|h| h == header), "{rule:?}");
    }
    assert_eq!(rule.expose_headers(), ["ETag"]);
    for deleted in [&seen["deleted"], &seen["xss"]["id"]] {
        let key = format!("recordings/demo_alice/{}", deleted.as_str().unwrap());
        assert!(s3.head_object().bucket(xtask::local::LOCAL_BUCKET).key(&key).send().await.is_err(), "{key}");
    }
    println!(
        "budgets: interactive in {} ms; stop to listed {} ms (direct), {} ms (presigned), {} ms (1 MiB, presigned)",
        seen["interactiveMs"], seen["direct"]["stopToListedMs"], seen["large"]["stopToListedMs"], seen["oneMiB"]["ms"]
    );
}
