//! The web recorder: one page, its script and its stylesheet, compiled into the binary, so page
//! and API are versioned (and rolled back) together. Served with a strict Content-Security-Policy
//! (no inline script or style, no eval; connections and media only to the service and the
//! bucket), `nosniff`, no referrer, and an ETag: the page may be cached and revalidated, while
//! every API answer stays `no-store`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::OnceCell;

use crate::state::AppState;

/// One file of the page.
#[derive(Clone)]
struct Asset {
    body: &'static str,
    content_type: &'static str,
    /// A strong validator: the content's SHA-256, shortened.
    etag: HeaderValue,
}

impl Asset {
    fn new(body: &'static str, content_type: &'static str) -> Asset {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(body.as_bytes());
        let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        let etag = HeaderValue::from_str(&format!("\"{hex}\"")).unwrap_or(HeaderValue::from_static("\"0\""));
        Asset { body, content_type, etag }
    }
}

/// The page's routes: `/`, `/app.js`, `/app.css`, and `/config` (what the page needs to know
/// about this deployment).
pub fn routes() -> Router<AppState> {
    let assets = [
        ("/", Asset::new(include_str!("../web/index.html"), "text/html; charset=utf-8")),
        ("/app.js", Asset::new(include_str!("../web/app.js"), "text/javascript; charset=utf-8")),
        ("/app.css", Asset::new(include_str!("../web/app.css"), "text/css; charset=utf-8")),
    ];
    // No icon: an empty answer, so browsers stop asking (and log no 404).
    let mut router = Router::new()
        .route("/config", get(config))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }));
    // The policy names the bucket's origin, which cannot change while the service runs: worked
    // out at the first page request, then served as it is.
    let policy: Arc<OnceCell<HeaderValue>> = Arc::default();
    for (path, asset) in assets {
        let policy = policy.clone();
        router = router.route(
            path,
            get(move |State(state): State<AppState>, headers: HeaderMap| {
                serve(asset.clone(), policy.clone(), state, headers)
            }),
        );
    }
    router
}

async fn serve(
    asset: Asset,
    policy: Arc<OnceCell<HeaderValue>>,
    state: AppState,
    request: HeaderMap,
) -> Response {
    let unchanged = request.get(IF_NONE_MATCH).is_some_and(|tag| tag == asset.etag);
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(ETAG, asset.etag);
    // Cached, but revalidated on every use: a deploy or rollback shows at once.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff"));
    headers.insert(HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer"));
    // Only a policy naming the bucket is kept; without the origin (it could not be signed) the
    // stricter one goes out and the next request tries again.
    let policy = match policy
        .get_or_try_init(|| async {
            let origin = state.objects.origin().await.map_err(|_| ())?;
            HeaderValue::from_str(&content_security_policy(Some(&origin))).map_err(|_| ())
        })
        .await
    {
        Ok(policy) => Some(policy.clone()),
        Err(()) => HeaderValue::from_str(&content_security_policy(None)).ok(),
    };
    if let Some(policy) = policy {
        response.headers_mut().insert(HeaderName::from_static("content-security-policy"), policy);
    }
    response
}

/// The page's policy: its own script, style and API, the bucket (presigned uploads, playback)
/// and its own recordings before upload (`blob:` previews); nothing else, and no framing.
fn content_security_policy(bucket: Option<&str>) -> String {
    let bucket = bucket.map(|b| format!(" {b}")).unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'{bucket}; media-src 'self' blob:{bucket}; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
}

/// What the page needs to know: the direct upload limit (above it, the presigned path), whether
/// the demo sign-in is available, and the providers it can send the browser to.
async fn config(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "max_upload_bytes": state.settings.max_upload_bytes,
        "unverified_login": state.settings.allow_unverified_login,
        "providers": state.oidc.browser_sign_in(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_only_the_service_and_the_bucket() {
        let policy = content_security_policy(Some("https://b.s3.eu-west-1.amazonaws.com"));
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(policy.contains("connect-src 'self' https://b.s3.eu-west-1.amazonaws.com;"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(!policy.contains("unsafe"), "{policy}");
    }

    #[test]
    fn the_page_and_its_assets_fit_the_budget_and_load_nothing_from_elsewhere() {
        let page = [
            include_str!("../web/index.html"),
            include_str!("../web/app.js"),
            include_str!("../web/app.css"),
        ];
        let total: usize = page.iter().map(|f| f.len()).sum();
        assert!(total <= 40 * 1024, "the page is {total} bytes, over 40 KB");
        for file in page {
            assert!(
                !file.contains("http://") && !file.contains("https://"),
                "a file loads from another origin"
            );
            assert!(!file.contains("innerHTML") && !file.contains("eval("), "HTML from strings, or eval");
        }
        assert!(!page[0].contains("style=") && !page[0].contains("<script>"), "inline style or script");
    }
}
