//! The service's errors and the one place they become HTTP responses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::storage::StorageError;

/// Everything a request can fail with. Client mistakes are 4xx with a message that says what to
/// fix; server faults are 500 with a generic body, logged once with the request id.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    // The seed's messages, kept verbatim for existing clients.
    /// No `Authorization` header (the seed's message).
    #[error("Authorization Header is required.")]
    MissingAuthorization,
    /// An unknown, revoked or expired key (the seed's message).
    #[error("Not Authorization")]
    NotAuthorized,
    /// The unverified login lacks a parameter (the seed's message).
    #[error("social_id or social_type is null.")]
    MissingSocialLogin,

    /// An `Authorization` header not of the form `<user_id> <auth_key>`.
    #[error("authorization header must be '<user_id> <auth_key>'")]
    MalformedAuthorization,
    /// Any other client mistake, with what to fix.
    #[error("{0}")]
    BadRequest(String),
    /// The seed's unverified login is off here.
    #[error("unverified login is disabled here: sign in with POST /login")]
    UnverifiedLoginDisabled,
    /// The unverified login named a verified provider.
    #[error("social_type {0} is a verified provider here: sign in with POST /login")]
    ProviderLoginOnly(String),
    /// No such record of the caller's.
    #[error("record not found")]
    RecordNotFound,
    /// No such route.
    #[error("no such route: see the README for the API")]
    RouteNotFound,
    /// The route exists, not with this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// A content type that is not audio.
    #[error("content type is not accepted: send one of audio/mpeg, audio/mp4, audio/x-m4a, audio/aac, audio/ogg, audio/opus, audio/webm, audio/wav, audio/x-wav, audio/flac, audio/3gpp, audio/amr or application/octet-stream")]
    UnsupportedMediaType,
    /// The per-user limit of open upload windows.
    #[error("quota reached: at most {0} pending uploads per user; complete or delete one first")]
    TooManyPendingUploads(u64),
    /// The per-user limit of recordings.
    #[error("quota reached: at most {0} recordings per user; delete one first")]
    TooManyRecordings(u64),
    /// The per-user limit of stored bytes.
    #[error("quota reached: at most {0} bytes stored per user; delete recordings first")]
    StorageQuota(u64),
    /// The bytes that open upload windows hold would pass the bytes limit.
    #[error("quota reached: uploads started in the last minutes hold up to {0} bytes until their upload windows close, even when completed or deleted: retry later")]
    StagedQuota(u64),
    /// Another `complete` of the same upload is at work.
    #[error("this upload is being completed by another request: retry shortly")]
    CompletionInProgress,
    /// The staged object changed between its check and its copy.
    #[error("the uploaded object changed while it was being completed: complete it again")]
    UploadChanged,
    /// The upload's window has closed.
    #[error("this upload's window has closed: start a new upload")]
    UploadClosed,
    /// A sign-out everywhere began after this login did.
    #[error("signed out everywhere while this login was in flight: sign in again")]
    SignedOutDuringLogin,
    /// A body over the upload limit.
    #[error("recording is larger than the {limit}-byte upload limit")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// A verified login was refused.
    #[error("{0}")]
    Login(#[from] crate::oidc::OidcError),
    /// `GET /health/ready`: these resources cannot be reached with the function's role.
    #[error("not ready: cannot reach the {0} (the function's log says why)")]
    NotReady(String),
    /// A storage call failed: 503 when the backend is unavailable, else 500.
    #[error("internal error")]
    Storage(#[from] StorageError),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingAuthorization
            | ApiError::MissingSocialLogin
            | ApiError::MalformedAuthorization
            | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotAuthorized => StatusCode::UNAUTHORIZED,
            ApiError::UnverifiedLoginDisabled | ApiError::ProviderLoginOnly(_) => StatusCode::FORBIDDEN,
            ApiError::RecordNotFound | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyPendingUploads(_) | ApiError::TooManyRecordings(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::StorageQuota(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::StagedQuota(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::CompletionInProgress | ApiError::UploadChanged | ApiError::SignedOutDuringLogin => {
                StatusCode::CONFLICT
            }
            ApiError::UploadClosed => StatusCode::GONE,
            ApiError::Login(crate::oidc::OidcError::UnknownProvider) => StatusCode::BAD_REQUEST,
            ApiError::Login(crate::oidc::OidcError::InvalidToken | crate::oidc::OidcError::AlreadyUsed) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Login(crate::oidc::OidcError::Unavailable) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Storage(StorageError::Unavailable { .. }) | ApiError::NotReady(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Log a failed storage call at error level. A denied call gets its own line, with the
/// operation, AWS's code, request id and message: what `cargo xtask check-iam explain --since …`
/// reads from the logs. Anything else is logged as `what` with the error.
pub fn log_storage_failure(err: &StorageError, what: &str) {
    match err {
        StorageError::Aws { operation, detail, .. } if detail.is_access_denied() => {
            tracing::error!(
                operation,
                code = detail.code.as_deref().unwrap_or_default(),
                aws_request_id = detail.request_id.as_deref().unwrap_or_default(),
                "aws call denied: {}",
                detail.message.as_deref().unwrap_or_default()
            );
        }
        other => tracing::error!(error = %other, "{what}"),
    }
}

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECONDS: &str = "1";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Storage(StorageError::Unavailable { .. }) => {
                "a backend service is unavailable or slow: retry shortly".to_owned()
            }
            other => other.to_string(),
        };
        // The request span carries the request id; the body never carries the cause.
        if let ApiError::Storage(source) = &self {
            log_storage_failure(source, "request failed");
        }
        let mut response = (status, Json(serde_json::json!({ "error": message }))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

impl From<crate::domain::DomainError> for ApiError {
    fn from(err: crate::domain::DomainError) -> Self {
        use crate::domain::DomainError;
        match err {
            DomainError::MissingSocialLogin => ApiError::MissingSocialLogin,
            DomainError::Invalid(what) => ApiError::BadRequest(what),
            DomainError::NotAudio => ApiError::UnsupportedMediaType,
        }
    }
}

impl From<crate::storage::Exceeded> for ApiError {
    fn from(exceeded: crate::storage::Exceeded) -> Self {
        match exceeded {
            crate::storage::Exceeded::PendingUploads(n) => ApiError::TooManyPendingUploads(n),
            crate::storage::Exceeded::Recordings(n) => ApiError::TooManyRecordings(n),
            crate::storage::Exceeded::Bytes(n) => ApiError::StorageQuota(n),
            crate::storage::Exceeded::StagedBytes(n) => ApiError::StagedQuota(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn server_errors_do_not_leak_their_cause() {
        let err = ApiError::Storage(StorageError::Corrupt("secret table detail".into()));
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], br#"{"error":"internal error"}"#);
    }
}
