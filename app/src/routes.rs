//! The HTTP API: one router, used by the Lambda runtime, the local server and the tests.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::Instrument;

use crate::auth::{AuthenticatedUser, Caller, Claimed};
use crate::domain::{AuthKey, Cursor, FileName, Record, RecordId, UserId};
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::{Claim, Deleted, StoredRecord, WriteFailed};

const DEFAULT_PAGE: i32 = 50;
const MAX_PAGE: i32 = 100;
/// How long after its URL expires a large upload's window stays open: a PUT that started in time
/// may still be arriving, and then needs its `complete`.
const UPLOAD_GRACE: time::Duration = time::Duration::minutes(10);

/// The service's HTTP API and web recorder: one router for Lambda, local mode and the tests.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.max_upload_bytes;
    let metrics = state.settings.metrics;
    Router::new()
        .route("/health", get(health))
        .route("/health/ready", get(ready))
        .route("/login", get(login_unverified).post(login_verified))
        .route("/logout", post(logout))
        .route("/upload/record/{file_name}", put(upload))
        .route("/record/list", get(list))
        .route("/record/uploads", post(start_large_upload))
        .route("/record/{record_id}/complete", post(complete_large_upload))
        .route("/record/{record_id}", get(get_record).delete(delete_record))
        .merge(crate::web::routes())
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(move |request: Request, next: Next| access_log(request, next, metrics)))
        // Answers carry auth keys, presigned URLs and users' records: no cache (browser, proxy or
        // CDN) may keep them. (The web page's files say for themselves how they may be cached.)
        .layer(SetResponseHeaderLayer::if_not_present(CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Give every request an id (the caller's `x-request-id`, or a new one), run it within a span
/// that carries the id, and echo the id back so a client's report can be matched to the log.
async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request.headers().get("x-request-id").filter(|v| v.len() <= 128).cloned().unwrap_or_else(|| {
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unavailable"))
    });
    request.headers_mut().insert("x-request-id", id.clone());
    let span = tracing::info_span!("request", id = ?id);
    let mut response = next.run(request).instrument(span).await;
    response.headers_mut().insert("x-request-id", id);
    response
}

/// One access line per request: method, matched route (never the raw path, which holds file
/// names), status, latency, response size, and the user id when the caller was authenticated;
/// with `metrics`, also an EMF line (count, latency, 5xx by route).
async fn access_log(mut request: Request, next: Next, metrics: bool) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("(no route)", |p| p.as_str()).to_owned();
    let method = request.method().clone();
    let user = AuthenticatedUser::default();
    request.extensions_mut().insert(user.clone());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = response.status().as_u16();
    let bytes = axum::body::HttpBody::size_hint(response.body()).exact().unwrap_or(0);
    match user.0.get() {
        Some(user) => tracing::info!(%method, route, status, latency_ms, bytes, user = %user, "access"),
        None => tracing::info!(%method, route, status, latency_ms, bytes, "access"),
    }
    if metrics {
        crate::metrics::emit_request(method.as_str(), &route, status, latency_ms);
    }
    response
}

type ApiResult = Result<Json<Value>, ApiError>;

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Whether this function can do its work: one cheap call to each table and to the bucket, with
/// the function's own role, concurrently and within the request budget. deploy invokes it on a
/// new version before any traffic reaches that version. A failure is logged (a denial as the
/// line `check-iam explain` reads) and answered 503, naming what failed but never why.
async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let (users, records, objects) =
        tokio::join!(state.users.warm_up(), state.records.probe(), state.objects.probe());
    let mut failed = Vec::new();
    for (what, result) in [("user table", users), ("record table", records), ("bucket", objects)] {
        if let Err(err) = result {
            crate::error::log_storage_failure(&err, "readiness check failed");
            failed.push(what);
        }
    }
    if failed.is_empty() {
        Ok(Json(json!({ "status": "ready", "checks": ["user table", "record table", "bucket"] })))
    } else {
        Err(ApiError::NotReady(failed.join(", ")))
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    social_id: Option<String>,
    social_type: Option<String>,
}

/// The seed's login: trusts the social id it is given, so it only works where configured.
async fn login_unverified(
    State(state): State<AppState>,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> ApiResult {
    if !state.settings.allow_unverified_login {
        return Err(ApiError::UnverifiedLoginDisabled);
    }
    let Query(q) = query.map_err(|_| ApiError::MissingSocialLogin)?;
    let social_type = q.social_type.as_deref().unwrap_or_default();
    let user = UserId::from_social(social_type, q.social_id.as_deref().unwrap_or_default())?;
    // A provider's users sign in with its tokens only: `idp` + `u1` must not become `idp_u1`.
    if state.oidc.has_provider(social_type) {
        return Err(ApiError::ProviderLoginOnly(social_type.to_owned()));
    }
    issue_key(&state, &user).await
}

#[derive(Deserialize)]
struct VerifiedLogin {
    provider: String,
    id_token: String,
}

/// Verified login: the provider's signed ID token proves who the user is.
async fn login_verified(
    State(state): State<AppState>,
    body: Result<Json<VerifiedLogin>, JsonRejection>,
) -> ApiResult {
    let Json(login) =
        body.map_err(|_| ApiError::BadRequest("body must be JSON {\"provider\", \"id_token\"}".into()))?;
    let token = state.oidc.verify(&login.provider, &login.id_token).await?;
    // A subject our ids cannot hold is refused like any other bad token.
    let user = UserId::from_social(&login.provider, &token.subject)
        .map_err(|_| ApiError::Login(crate::oidc::OidcError::InvalidToken))?;
    // One key per token: a replayed (stolen, logged) token gets nothing.
    if !state.users.claim_id_token(&login.provider, &token.token_id, token.expires_at).await? {
        return Err(ApiError::Login(crate::oidc::OidcError::AlreadyUsed));
    }
    issue_key(&state, &user).await
}

/// A new key for `user`, stored as its hash with an expiry; the seed's response shape.
///
/// The key is written first and the user's keys listed after, so every login sees the keys of
/// the logins before it and the last one sees them all: however many run at once, at most the
/// cap stay live. Each login keeps its own key and revokes the expired ones and the oldest
/// beyond the cap (ordered by the millisecond their login began). A login that began before a
/// "sign out everywhere" it then sees revokes its own key instead.
async fn issue_key(state: &AppState, user: &UserId) -> ApiResult {
    let key = AuthKey::generate();
    let hash = key.hash();
    let now = time::OffsetDateTime::now_utc();
    let began_ms = epoch_ms(now);
    let expires = now + state.settings.key_ttl;
    state.users.add_key(user, &hash, began_ms, expires.unix_timestamp()).await?;
    let listed = state.users.list_keys(user).await?;
    if listed.signed_out_at_ms.is_some_and(|signed_out| signed_out >= began_ms) {
        state.users.remove_key(user, &hash).await?;
        return Err(ApiError::SignedOutDuringLogin);
    }
    let (expired, mut others): (Vec<_>, Vec<_>) = listed
        .keys
        .into_iter()
        .filter(|k| k.hash != hash.as_str())
        .partition(|k| k.expires_at <= now.unix_timestamp());
    // Newest first; this login's key takes one of the cap's places.
    others.sort_by(|a, b| (b.issued_at_ms, &b.hash).cmp(&(a.issued_at_ms, &a.hash)));
    let keep = state.settings.max_keys_per_user.saturating_sub(1);
    let revoke: Vec<String> =
        expired.into_iter().chain(others.into_iter().skip(keep)).map(|k| k.hash).collect();
    // The login itself succeeded: a failed revocation is logged (the next login retries it),
    // not a reason to withhold the new key.
    if let Err(err) = state.users.remove_keys(user, revoke).await {
        crate::error::log_storage_failure(&err, "could not revoke a user's oldest or expired keys");
    }
    Ok(Json(json!({
        "auth_key": key.expose(),
        "user_id": user.as_str(),
        "expires_at": crate::domain::timestamp(expires),
    })))
}

/// Epoch milliseconds: keys are ordered, and sign-outs compared, at this precision.
fn epoch_ms(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[derive(Deserialize)]
struct LogoutQuery {
    all: Option<String>,
}

/// Revoke the presented key, or with `?all=true` every key of the caller ("sign out everywhere").
async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<LogoutQuery>, QueryRejection>,
) -> ApiResult {
    let all = match query.map(|Query(q)| q.all) {
        Ok(None) => false,
        Ok(Some(all)) if all == "true" || all == "false" => all == "true",
        _ => return Err(ApiError::BadRequest("all must be true or false".into())),
    };
    if !all {
        state.users.remove_key(&caller.user, &caller.key.hash()).await?;
        return Ok(Json(json!({ "result": "success", "revoked": 1 })));
    }
    // Recorded first, so a login in flight that lists after this revokes its own key; the keys
    // it wrote before this listing are revoked here.
    let now = time::OffsetDateTime::now_utc();
    let at_ms = epoch_ms(now);
    state.users.mark_signed_out(&caller.user, at_ms, (now + state.settings.key_ttl).unix_timestamp()).await?;
    let keys: Vec<String> = state
        .users
        .list_keys(&caller.user)
        .await?
        .keys
        .into_iter()
        .filter(|k| k.issued_at_ms <= at_ms)
        .map(|k| k.hash)
        .collect();
    let revoked = keys.len();
    state.users.remove_keys(&caller.user, keys).await?;
    Ok(Json(json!({ "result": "success", "revoked": revoked })))
}

async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    file_name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Path(file_name) =
        file_name.map_err(|_| ApiError::BadRequest("file name is not valid UTF-8".into()))?;
    let file_name = FileName::parse(&file_name)?;
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge { limit: state.settings.max_upload_bytes as u64 }
        }
        _ => ApiError::BadRequest("could not read the request body".into()),
    })?;
    if body.is_empty() {
        return Err(ApiError::BadRequest("recording body is empty".into()));
    }
    let content_type = content_type(&headers)?;
    let record = Record::new(&caller.user, &file_name, body.len() as u64, content_type);
    state.quotas.reserve_published(&caller.user, record.size).await??;

    // Object first, then the row: a row never points at a missing object. If the row is surely
    // not written, the object is removed again so nothing is orphaned, and the charge given back.
    if let Err(err) = state.objects.put(&record.object_key, body, &record.content_type).await {
        // An unanswered attempt may have stored it all the same: the key is this request's own.
        delete_object(&state, &record.object_key).await;
        release(&caller.user, state.quotas.release_published(&caller.user, record.size).await);
        return Err(err.into());
    }
    match state.records.insert(&record).await {
        Ok(()) => Ok(Json(json!({ "result": "success", "record": record }))),
        // The row may be there (an unanswered attempt): the object and the charge must stay.
        // Either the record is whole, or the object is an orphan and the charge too much: both
        // logged for reconcile.
        Err(WriteFailed { error, maybe_written: true }) => {
            let _key = tracing::error_span!("orphan", key = %record.object_key).entered();
            crate::error::log_storage_failure(&error, crate::storage::UPLOAD_ROW_IN_DOUBT);
            crate::storage::log_doubt(&caller.user, "an upload's row");
            Err(error.into())
        }
        Err(WriteFailed { error, maybe_written: false }) => {
            if let Err(cleanup) = state.objects.delete(&record.object_key).await {
                let _key = tracing::error_span!("orphan", key = %record.object_key).entered();
                crate::error::log_storage_failure(&cleanup, "could not remove the object of a failed upload");
            }
            release(&caller.user, state.quotas.release_published(&caller.user, record.size).await);
            Err(error.into())
        }
    }
}

/// Log a quota refund that failed: the user is charged for nothing until an operator fixes the
/// usage row, which is better than failing the request it belongs to.
fn release(user: &UserId, result: Result<(), crate::storage::StorageError>) {
    if let Err(err) = result {
        // The user, so `cargo xtask reconcile`'s findings can be matched to this line.
        let _user = tracing::error_span!("refund", user = %user).entered();
        let what = format!("could not give back a quota charge: {}", crate::storage::COUNTERS_MAY_BE_OFF);
        crate::error::log_storage_failure(&err, &what);
    }
}

/// The upload's audio type, or `application/octet-stream` (the seed's only type) when none is sent.
fn content_type(headers: &HeaderMap) -> Result<String, ApiError> {
    let value = headers.get(CONTENT_TYPE).map(|v| v.to_str().map_err(|_| ApiError::UnsupportedMediaType));
    Ok(crate::domain::audio_type(value.transpose()?)?)
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<String>,
    next: Option<String>,
}

/// A page of the caller's records, serialised straight from the records (no JSON tree first).
#[derive(serde::Serialize)]
struct Page {
    records: Vec<crate::storage::ListedRecord>,
    next: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    claimed: Claimed,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let (limit, after) = match list_args(query) {
        Ok(args) => args,
        // A caller who is not signed in hears that first, whatever the query.
        Err(err) => return Err(claimed.verify(&state).await.err().unwrap_or(err)),
    };
    // The key check and the claimed user's query together; the page only goes out once the key
    // checked out, and a failed check wins over a failed query.
    let user = claimed.user().clone();
    let (caller, page) =
        tokio::join!(claimed.verify(&state), state.records.list_for_user(&user, limit, after.as_ref()));
    caller?;
    let page = page?;
    Ok(Json(Page { records: page.records, next: page.next.map(|c| c.to_token()) }))
}

/// The page size and cursor of a list request.
fn list_args(query: Result<Query<ListQuery>, QueryRejection>) -> Result<(i32, Option<Cursor>), ApiError> {
    let Query(q) = query.map_err(|_| ApiError::BadRequest("query string is not valid".into()))?;
    let limit = match q.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(l) => l.parse().ok().filter(|l| (1..=MAX_PAGE).contains(l)).ok_or_else(|| {
            ApiError::BadRequest(format!("limit must be a whole number from 1 to {MAX_PAGE}"))
        })?,
    };
    let after = q.next.as_deref().map(Cursor::from_token).transpose()?;
    Ok((limit, after))
}

/// Ids are opaque to clients: one that cannot be ours is as absent as one that is not theirs.
fn record_id(id: Result<Path<String>, PathRejection>) -> Result<RecordId, ApiError> {
    id.ok().and_then(|Path(id)| RecordId::parse(&id)).ok_or(ApiError::RecordNotFound)
}

async fn get_record(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = record_id(id)?;
    let record = state.records.get_for_user(&id, &caller.user).await?.ok_or(ApiError::RecordNotFound)?;
    let url = state.objects.download_url(&record, state.settings.download_url_ttl).await?;
    Ok(Json(json!({
        "record": record,
        "download_url": url,
        "download_url_expires_in": state.settings.download_url_ttl.as_secs(),
    })))
}

async fn delete_record(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = record_id(id)?;
    let stored = match state.records.delete_for_user(&id, &caller.user).await.map_err(|failed| {
        // An unanswered attempt may have deleted the row: then its object and charge are left,
        // and the client's retry hears 404. Said for reconcile, with the key every upload uses.
        if failed.maybe_written {
            let key = crate::domain::object_key(&caller.user, &id);
            let _key = tracing::error_span!("orphan", key = %key).entered();
            crate::error::log_storage_failure(
                &failed.error,
                "a record's delete may or may not have been applied",
            );
            crate::storage::log_doubt(&caller.user, "a record's delete");
        }
        failed.error
    })? {
        Deleted::Row(stored) => stored,
        Deleted::Absent => return Err(ApiError::RecordNotFound),
        // Deleted for the user; what the row held is unknown. Its audio is where every upload
        // puts it; its charge (size unknown) is left to reconcile, and said so.
        Deleted::Unanswered => {
            crate::storage::log_doubt(&caller.user, "a record's delete");
            delete_object(&state, &crate::domain::object_key(&caller.user, &id)).await;
            return Ok(Json(json!({ "result": "success" })));
        }
    };
    let record = match stored {
        StoredRecord::Published(record) => {
            release(&caller.user, state.quotas.release_published(&caller.user, record.size).await);
            record
        }
        StoredRecord::Pending(record) => {
            release(&caller.user, state.quotas.release_pending(&caller.user, &record.id, record.size).await);
            // Its staged object too: the window keeps its bytes charged until it closes.
            if let Err(err) = state.objects.delete(&crate::storage::staging_key(&record.object_key)).await {
                crate::error::log_storage_failure(&err, "could not remove a deleted upload's staged object");
            }
            record
        }
    };
    delete_object(&state, &record.object_key).await;
    Ok(Json(json!({ "result": "success" })))
}

/// The object of a deleted record (or of a failed upload). Its row is gone, so the record is
/// deleted for the user; a failure here leaves an object no row points at, logged for cleanup
/// rather than reported as a failed delete.
async fn delete_object(state: &AppState, key: &str) {
    if let Err(err) = state.objects.delete(key).await {
        let _key = tracing::error_span!("orphan", key = %key).entered();
        crate::error::log_storage_failure(&err, "could not delete an object no record points at");
    }
}

#[derive(Deserialize)]
struct LargeUploadRequest {
    file_name: String,
    content_type: Option<String>,
    size: u64,
}

/// Start an upload too large for a request body (Lambda caps those near 6 MB): a pending record
/// and a presigned PUT that accepts exactly the declared size and type.
async fn start_large_upload(
    State(state): State<AppState>,
    caller: Caller,
    request: Result<Json<LargeUploadRequest>, JsonRejection>,
) -> ApiResult {
    let Json(request) = request.map_err(|e| {
        ApiError::BadRequest(format!(
            "body must be JSON {{\"file_name\", \"content_type\", \"size\"}}: {}",
            e.body_text()
        ))
    })?;
    let file_name = FileName::parse(&request.file_name)?;
    if request.size == 0 {
        return Err(ApiError::BadRequest("size must be at least 1 byte".into()));
    }
    if request.size > state.settings.max_large_upload_bytes {
        return Err(ApiError::PayloadTooLarge { limit: state.settings.max_large_upload_bytes });
    }
    let content_type = crate::domain::audio_type(request.content_type.as_deref())?;
    let record = Record::new(&caller.user, &file_name, request.size, content_type);
    let staged = crate::storage::staging_key(&record.object_key);
    let upload = state
        .objects
        .upload_url(&staged, record.size, &record.content_type, state.settings.upload_url_ttl)
        .await?;
    // The upload's window: its URL's lifetime, and then time for a PUT that started in it to
    // finish and be completed. The row, the quota's charge and the staged bytes last as long.
    let closes =
        (time::OffsetDateTime::now_utc() + state.settings.upload_url_ttl + UPLOAD_GRACE).unix_timestamp();
    state.quotas.reserve_pending(&caller.user, &record.id, record.size, closes, &staged).await??;
    // A pending row that may have been written all the same is harmless: it is never listed,
    // and its expiry removes it; its window is given back either way.
    if let Err(WriteFailed { error, .. }) = state.records.insert_pending(&record, closes).await {
        release(&caller.user, state.quotas.release_pending(&caller.user, &record.id, record.size).await);
        return Err(error.into());
    }
    Ok(Json(json!({
        "record_id": record.id,
        "upload_url": upload.url,
        "method": "PUT",
        "headers": upload.headers,
        "expires_in": state.settings.upload_url_ttl.as_secs(),
    })))
}

/// Publish a large upload once its object is in the bucket with the declared size. Exactly one
/// request publishes it (the one that claims its quota window); a concurrent or repeated
/// `complete` answers with the record as it is now, or 409 while the winner is still at work.
/// Nothing is deleted but what this request wrote itself.
async fn complete_large_upload(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = record_id(id)?;
    let record = match state.records.find_for_user(&id, &caller.user).await? {
        None => return Err(ApiError::RecordNotFound),
        Some(StoredRecord::Published(record)) => return Ok(published(record)),
        Some(StoredRecord::Pending(record)) => record,
    };
    let staged = crate::storage::staging_key(&record.object_key);
    let etag = match state.objects.head(&staged).await? {
        // A concurrent `complete` may have published it and removed the staged object since.
        None => {
            let nothing =
                ApiError::BadRequest("nothing was uploaded yet: PUT the file to upload_url first".into());
            return as_it_is_now(&state, &id, &caller.user, nothing).await;
        }
        Some((size, _)) if size != record.size => {
            return Err(ApiError::BadRequest(format!(
                "the uploaded object is {size} bytes but {} were declared: upload the declared file again",
                record.size
            )))
        }
        Some((_, etag)) => etag,
    };
    match state.quotas.claim_pending(&caller.user, &record.id).await? {
        Claim::Won => {}
        Claim::Taken => return as_it_is_now(&state, &id, &caller.user, ApiError::CompletionInProgress).await,
        Claim::Closed => return Err(ApiError::UploadClosed),
        Claim::Exceeded(exceeded) => return Err(exceeded.into()),
    }
    // Published bytes are a copy of exactly the object checked above: a later PUT to the upload
    // URL only changes the staged object.
    let unclaim =
        || async { release(&caller.user, state.quotas.unclaim(&caller.user, &record.id, record.size).await) };
    match state.objects.copy_if_unchanged(&staged, &etag, &record.object_key, &record.content_type).await {
        Ok(true) => {}
        Ok(false) => {
            unclaim().await;
            return Err(ApiError::UploadChanged);
        }
        Err(err) => {
            unclaim().await;
            return Err(err.into());
        }
    }
    let created_at = crate::domain::timestamp(time::OffsetDateTime::now_utc());
    match state.records.publish(&record, &created_at).await {
        Ok(true) => {}
        // The row may have been written though the answer was lost: keep the copy and the claim
        // (a retry finds the record published, or the window closes with the charge held).
        Err(err @ crate::storage::StorageError::Unavailable { .. }) => return Err(err.into()),
        // Deleted meanwhile, or refused: the copy this request made must not outlive its row.
        failed => {
            if let Err(cleanup) = state.objects.delete(&record.object_key).await {
                let _key = tracing::error_span!("orphan", key = %record.object_key).entered();
                crate::error::log_storage_failure(
                    &cleanup,
                    "could not remove the copy of an unpublished upload",
                );
            }
            unclaim().await;
            return Err(failed.err().map_or(ApiError::RecordNotFound, ApiError::from));
        }
    }
    // The window keeps the staged bytes charged until it closes; the object goes now.
    if let Err(err) = state.objects.delete(&staged).await {
        crate::error::log_storage_failure(&err, "could not remove a completed upload's staged object");
    }
    Ok(published(Record { created_at, ..record }))
}

/// A `complete` that did not publish answers with the record as it is now: published (by a
/// concurrent or earlier `complete`), still pending (`pending`'s error), or gone.
async fn as_it_is_now(state: &AppState, id: &RecordId, user: &UserId, pending: ApiError) -> ApiResult {
    match state.records.find_for_user(id, user).await? {
        Some(StoredRecord::Published(record)) => Ok(published(record)),
        Some(StoredRecord::Pending(_)) => Err(pending),
        None => Err(ApiError::RecordNotFound),
    }
}

/// The answer of a successful (or repeated) `complete`.
fn published(record: Record) -> Json<Value> {
    Json(json!({ "result": "success", "record": record }))
}
