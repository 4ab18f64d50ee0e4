//! Storage: DynamoDB for metadata, S3 for audio. Each store pairs a client with the one resource
//! it uses; item ⇄ domain conversion happens here and nowhere else.

mod doubt;
mod objects;
mod quotas;
mod records;
mod users;

pub use doubt::Doubt;
pub use objects::{staging_key, ObjectStore, PresignedUpload};
pub use quotas::{log_doubt, Claim, Exceeded, Limits, QuotaStore, COUNTERS_MAY_BE_OFF};
pub use records::{
    Deleted, ListPage, ListedRecord, RecordStore, StoredRecord, WriteFailed, UPLOAD_ROW_IN_DOUBT,
};
pub use users::{StoredKey, UserStore};

use std::collections::HashMap;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A storage call failed, or returned something the service did not write.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// AWS answered with an error that retrying will not fix (a denial, a bad request): a bug or a
    /// misconfiguration, 500.
    #[error("{operation} failed: {message}")]
    Aws {
        /// The call, as the logs name it.
        operation: &'static str,
        /// What the SDK said, with its context.
        message: String,
        /// AWS's code, message and request id.
        detail: Box<AwsDetail>,
        /// The SDK's error.
        source: BoxError,
    },
    /// The backend timed out, refused or dropped the connection, failed (5xx) or throttled us,
    /// and the retries are spent: not a bug, the client should retry later.
    #[error("{operation} failed: the backend is unavailable: {message}")]
    Unavailable {
        /// The call, as the logs name it.
        operation: &'static str,
        /// What the SDK said, with its context.
        message: String,
        /// The SDK's error.
        source: BoxError,
    },
    #[error("stored item is not valid: {0}")]
    /// A row that does not have the shape the service writes.
    Corrupt(String),
}

impl StorageError {
    /// Wrap an SDK error, keeping its full context (code, message, request id) for the log.
    fn aws<E>(operation: &'static str, err: E) -> Self
    where
        E: std::error::Error + Availability + Send + Sync + 'static,
    {
        let message = DisplayErrorContext(&err).to_string();
        if err.unavailable() {
            StorageError::Unavailable { operation, message, source: err.into() }
        } else {
            StorageError::Aws { operation, message, detail: Box::new(err.detail()), source: err.into() }
        }
    }
}

/// What AWS said, for the log (`check-iam explain` reads AccessDenied messages from it): the
/// tooling reads AWS's answers the same way.
pub use iam::ErrorReply as AwsDetail;

/// Whether an error means the backend is unavailable rather than that we asked wrongly.
pub trait Availability {
    /// Whether retrying later can help.
    fn unavailable(&self) -> bool;

    /// AWS's code, message and request id, when there are any.
    fn detail(&self) -> AwsDetail {
        AwsDetail::default()
    }
}

impl<E> Availability for aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    fn unavailable(&self) -> bool {
        use aws_sdk_dynamodb::error::SdkError;
        match self {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(_) => self.detail().is_transient(),
            _ => false,
        }
    }

    fn detail(&self) -> AwsDetail {
        let aws_sdk_dynamodb::error::SdkError::ServiceError(e) = self else { return AwsDetail::default() };
        let raw = e.raw();
        let body = raw.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
        AwsDetail::read(raw.status().as_u16(), e.err().code(), e.err().message(), &body, |name| {
            raw.headers().get(name).map(str::to_owned)
        })
    }
}

impl Availability for aws_sdk_s3::presigning::PresigningConfigError {
    fn unavailable(&self) -> bool {
        false
    }
}

type Item = HashMap<String, AttributeValue>;

fn string_attr(item: &Item, name: &str) -> Result<String, StorageError> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        _ => Err(StorageError::Corrupt(format!("attribute {name} is missing or not a string"))),
    }
}

/// `string_attr`, moving the string out of the item instead of copying it.
fn take_string(item: &mut Item, name: &str) -> Result<String, StorageError> {
    match item.remove(name) {
        Some(AttributeValue::S(s)) => Ok(s),
        _ => Err(StorageError::Corrupt(format!("attribute {name} is missing or not a string"))),
    }
}

fn number_attr(item: &Item, name: &str) -> Result<i64, StorageError> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => {
            n.parse().map_err(|_| StorageError::Corrupt(format!("attribute {name} is not an integer: {n}")))
        }
        _ => Err(StorageError::Corrupt(format!("attribute {name} is missing or not a number"))),
    }
}

/// The outcome of a conditional DynamoDB write: `Some(output)` if it was applied, `None` if only
/// its condition failed (the item was not as the write required), which each caller turns into
/// an answer of its own; any other failure is `operation`'s error.
fn conditional<O, E>(
    result: Result<O, aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
    operation: &'static str,
) -> Result<Option<O>, StorageError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(output) => Ok(Some(output)),
        Err(aws_sdk_dynamodb::error::SdkError::ServiceError(e))
            if e.err().code() == Some("ConditionalCheckFailedException") =>
        {
            Ok(None)
        }
        Err(e) => Err(StorageError::aws(operation, e)),
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

#[cfg(test)]
mod detail_tests {
    use super::*;
    use aws_sdk_dynamodb::config::http::HttpResponse;
    use aws_sdk_dynamodb::error::{ErrorMetadata, SdkError};
    use aws_sdk_dynamodb::operation::query::QueryError;

    fn denied(body: &str) -> SdkError<QueryError, HttpResponse> {
        let raw = HttpResponse::new(403.try_into().unwrap(), aws_smithy_types::body::SdkBody::from(body));
        SdkError::service_error(QueryError::generic(ErrorMetadata::builder().build()), raw)
    }

    #[test]
    fn a_denial_in_an_xml_body_is_read_for_the_log() {
        let err = denied("<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: arn:aws:sts::123456789012:assumed-role/r/s is not authorized to perform: dynamodb:Query</Message></Error></Errors><RequestId>r-1</RequestId></ErrorResponse>");
        let detail = err.detail();
        assert!(detail.is_access_denied(), "{detail:?}");
        assert_eq!(detail.request_id.as_deref(), Some("r-1"));
        assert!(detail.message.unwrap().ends_with("perform: dynamodb:Query"));
        assert!(!err.unavailable(), "a denial is not an outage");
        assert!(matches!(StorageError::aws("Query", err), StorageError::Aws { .. }));
    }
}

#[cfg(test)]
mod tests {
    //! The IAM catalogue must cover every call the storage code makes, and nothing it doesn't.
    use crate::permissions::{Action, ResourceKind, RUNTIME};

    const SOURCES: [(&str, &str); 4] = [
        ("users.rs", include_str!("users.rs")),
        ("quotas.rs", include_str!("quotas.rs")),
        ("records.rs", include_str!("records.rs")),
        ("objects.rs", include_str!("objects.rs")),
    ];

    /// SDK builder method → IAM action. HeadObject and presigned GETs are `s3:GetObject`;
    /// CopyObject needs both object actions.
    const CALLS: [(&str, Action); 11] = [
        (".copy_object()", Action::S3GetObject),
        (".copy_object()", Action::S3PutObject),
        (".get_item()", Action::DynamoDbGetItem),
        (".put_item()", Action::DynamoDbPutItem),
        (".delete_item()", Action::DynamoDbDeleteItem),
        (".query()", Action::DynamoDbQuery),
        (".update_item()", Action::DynamoDbUpdateItem),
        (".put_object()", Action::S3PutObject),
        (".get_object()", Action::S3GetObject),
        (".head_object()", Action::S3GetObject),
        (".delete_object()", Action::S3DeleteObject),
    ];

    /// Calls the runtime policy must never need: a scan reads every user's rows.
    const NEVER: [&str; 2] = [".scan()", ".batch_write_item()"];

    fn resource_of(file: &str, action: Action) -> ResourceKind {
        match (file, action) {
            ("users.rs" | "quotas.rs", _) => ResourceKind::UserTable,
            ("records.rs", Action::DynamoDbQuery) => ResourceKind::RecordIndex,
            ("records.rs", _) => ResourceKind::RecordTable,
            _ => ResourceKind::BucketObjects,
        }
    }

    #[test]
    fn permission_catalogue_matches_the_calls_the_storage_code_makes() {
        let mut called = Vec::new();
        for (file, source) in SOURCES {
            // Only the production part of each file: its tests may call anything.
            let code = source.split("#[cfg(test)]").next().unwrap();
            for (method, action) in CALLS {
                if code.contains(method) {
                    called.push((action, resource_of(file, action)));
                }
            }
            for method in NEVER {
                assert!(!code.contains(method), "{file} calls {method}");
            }
        }
        for (action, resource) in &called {
            assert!(
                RUNTIME.iter().any(|p| p.action == *action && p.resource == *resource),
                "the code calls {action} on {resource:?} but app::permissions::RUNTIME lacks it"
            );
        }
        for p in RUNTIME.iter().filter(|p| p.resource != ResourceKind::LogGroup) {
            assert!(
                called.contains(&(p.action, p.resource)),
                "app::permissions::RUNTIME grants {} on {:?} but no code calls it",
                p.action,
                p.resource
            );
        }
    }
}
