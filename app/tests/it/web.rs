//! The web recorder's files: served from the binary with a strict policy, cacheable by ETag,
//! while every API answer stays `no-store`.

use crate::helpers::TestApp;

#[tokio::test]
async fn the_page_is_served_with_a_strict_policy_and_an_etag() {
    let app = TestApp::spawn().await;
    let page = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-cache");
    let policy = headers["content-security-policy"].to_str().unwrap();
    // Connections and media: the service and the bucket's origin (the emulator here), nothing else.
    let bucket = crate::helpers::endpoint();
    assert!(policy.contains(&format!("connect-src 'self' {bucket};")), "{policy}");
    assert!(policy.contains(&format!("media-src 'self' blob: {bucket};")), "{policy}");
    assert!(policy.contains("script-src 'self';") && policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(!policy.contains("unsafe"), "{policy}");
    assert!(page.text().await.unwrap().contains("<script src=\"/app.js\" defer></script>"));

    let etag = headers["etag"].clone();
    let again = app.http.get(app.url("/")).header("If-None-Match", etag.clone()).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag);

    let script = app.http.get(app.url("/app.js")).send().await.unwrap();
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_ne!(script.headers()["etag"], etag, "each file has its own validator");
    let style = app.http.get(app.url("/app.css")).send().await.unwrap();
    assert_eq!(style.headers()["content-type"], "text/css; charset=utf-8");

    // The API is never cached, and says what the page needs.
    let config = app.http.get(app.url("/config")).send().await.unwrap();
    assert_eq!(config.headers()["cache-control"], "no-store");
    let config: serde_json::Value = config.json().await.unwrap();
    assert_eq!(config["max_upload_bytes"], app::config::DEFAULT_MAX_UPLOAD_BYTES);
    assert_eq!(config["unverified_login"], true);
}
