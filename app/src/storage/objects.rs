//! The private recordings bucket. Objects are never public: clients read them through
//! short-lived presigned URLs.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use super::StorageError;
use crate::domain::Record;

/// The key `GET /health/ready` deletes: outside every prefix the service writes.
pub const READY_PROBE_KEY: &str = "health/ready-probe";

/// A presigned PUT: the URL and the headers the client must send with it.
#[derive(Debug, Clone)]
pub struct PresignedUpload {
    /// The URL to PUT to.
    pub url: String,
    /// The headers to send with it, as signed (a browser sets `content-length` itself).
    pub headers: std::collections::BTreeMap<String, String>,
}

/// Where a large upload's presigned PUT writes: under the bucket's staging prefix, which the
/// lifecycle rule empties after a day. `complete` copies it to `object_key`, so a PUT after
/// completion, or after a delete, never touches a published recording.
pub fn staging_key(object_key: &str) -> String {
    format!("{}{object_key}", crate::schema::STAGING_PREFIX)
}

/// Everything but `/` and RFC 3986's unreserved characters.
const PATH_RESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

/// A key as `x-amz-copy-source` wants it: percent-encoded except `/` and unreserved characters.
fn urlencode_path(key: &str) -> String {
    percent_encoding::utf8_percent_encode(key, PATH_RESERVED).to_string()
}

/// How every object is stored: a download, never rendered inline.
const STORED_DISPOSITION: &str = "attachment";

#[derive(Clone, Debug)]
/// The recordings bucket: objects, presigned uploads and downloads.
pub struct ObjectStore {
    client: Client,
    bucket: String,
    /// The account that must own the bucket (`ExpectedBucketOwner`): a request to a bucket of
    /// the same name in another account (deleted and re-created by someone else) fails instead
    /// of writing users' audio there.
    owner: Option<String>,
}

impl ObjectStore {
    /// The store of `bucket`, whose owner (`ExpectedBucketOwner`) must be `owner` when given.
    pub fn new(client: Client, bucket: String, owner: Option<String>) -> Self {
        ObjectStore { client, bucket, owner }
    }

    /// Store audio under `key`. No ACL is sent: the bucket's private default applies.
    pub async fn put(
        &self,
        key: &str,
        body: axum::body::Bytes,
        content_type: &str,
    ) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .set_expected_bucket_owner(self.owner.clone())
            .key(key)
            .content_type(content_type)
            .content_disposition(STORED_DISPOSITION)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| StorageError::aws("PutObject", e))?;
        Ok(())
    }

    /// Remove the object at `key` (absent is fine).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .set_expected_bucket_owner(self.owner.clone())
            .key(key)
            .send()
            .await
            .map_err(|e| StorageError::aws("DeleteObject", e))?;
        Ok(())
    }

    /// Copy `from` to `to` inside the bucket (server-side: no byte passes through the service), if
    /// `from` is still the object `etag` names (`CopySourceIfMatch`): `false` when it changed or
    /// is gone. The copy gets our type and disposition, never the source's metadata: headers
    /// outside the presigned PUT's signature (Content-Encoding, Cache-Control, ...) stay behind.
    /// A copy of up to the large-upload limit may take longer than one ordinary attempt, so its
    /// one attempt may use the whole operation budget.
    pub async fn copy_if_unchanged(
        &self,
        from: &str,
        etag: &str,
        to: &str,
        content_type: &str,
    ) -> Result<bool, StorageError> {
        let budget = self.client.config().timeout_config().and_then(|t| t.operation_timeout());
        let mut timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder();
        if let Some(budget) = budget {
            timeouts = timeouts.operation_attempt_timeout(budget);
        }
        let result = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .set_expected_bucket_owner(self.owner.clone())
            .set_expected_source_bucket_owner(self.owner.clone())
            .copy_source(format!("{}/{}", self.bucket, urlencode_path(from)))
            .copy_source_if_match(etag)
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .content_type(content_type)
            .content_disposition(STORED_DISPOSITION)
            .key(to)
            .customize()
            .config_override(aws_sdk_s3::config::Builder::default().timeout_config(timeouts.build()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(aws_sdk_s3::error::SdkError::ServiceError(e))
                if matches!(
                    aws_sdk_s3::error::ProvideErrorMetadata::code(e.err()),
                    Some("PreconditionFailed" | "NoSuchKey")
                ) || matches!(e.raw().status().as_u16(), 404 | 412) =>
            {
                Ok(false)
            }
            Err(e) => Err(StorageError::aws("CopyObject", e)),
        }
    }

    /// The stored object's size and ETag, or `None` if there is no such object.
    pub async fn head(&self, key: &str) -> Result<Option<(u64, String)>, StorageError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .set_expected_bucket_owner(self.owner.clone())
            .key(key)
            .send()
            .await
        {
            Ok(output) => Ok(Some((
                output.content_length.unwrap_or_default().max(0) as u64,
                output.e_tag.unwrap_or_default(),
            ))),
            Err(aws_sdk_s3::error::SdkError::ServiceError(e)) if e.err().is_not_found() => Ok(None),
            Err(e) => Err(StorageError::aws("HeadObject", e)),
        }
    }

    /// One cheap request that opens the bucket's connection before the first request needs it:
    /// a HEAD of a key that never exists (its 404, or 403 without s3:ListBucket, is expected).
    pub async fn warm_up(&self) -> Result<(), StorageError> {
        self.head("warm-up").await.map(|_| ())
    }

    /// Prove the function's role may act on the bucket's objects, for `GET /health/ready`: a
    /// DELETE of a key the service never writes. (A HEAD cannot prove it: without s3:ListBucket,
    /// which the role does not have, S3 answers a missing key with the same bodiless 403 as a
    /// denial. Deleting an absent key in an unversioned bucket answers 204 and changes nothing.)
    pub async fn probe(&self) -> Result<(), StorageError> {
        self.delete(READY_PROBE_KEY).await
    }

    /// A presigned PUT for `ttl` that only accepts exactly `size` bytes of `content_type`, with
    /// `Content-Disposition: attachment`: all three are signed headers, so S3 rejects an upload
    /// that differs (an uploader cannot choose how the object is served).
    pub async fn upload_url(
        &self,
        key: &str,
        size: u64,
        content_type: &str,
        ttl: Duration,
    ) -> Result<PresignedUpload, StorageError> {
        let presigning = PresigningConfig::expires_in(ttl)
            .map_err(|e| StorageError::aws("presigning an upload URL", e))?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            // A signed header of the presigned PUT, sent by the client with the others.
            .set_expected_bucket_owner(self.owner.clone())
            .key(key)
            .content_type(content_type)
            .content_length(size as i64)
            .content_disposition(STORED_DISPOSITION)
            .presigned(presigning)
            .await
            .map_err(|e| StorageError::aws("presigning an upload URL", e))?;
        Ok(PresignedUpload {
            url: request.uri().to_owned(),
            headers: request.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        })
    }

    /// The bucket's origin (`scheme://host[:port]`) as clients reach it: where the page's
    /// presigned PUTs and playback go. Read from a locally signed URL (no network call).
    pub async fn origin(&self) -> Result<String, StorageError> {
        let presigning = PresigningConfig::expires_in(Duration::from_secs(60))
            .map_err(|e| StorageError::aws("presigning a URL", e))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key("origin")
            .presigned(presigning)
            .await
            .map_err(|e| StorageError::aws("presigning a URL", e))?;
        let uri = request.uri();
        let authority = uri.find("://").map_or(uri.len(), |i| i + 3);
        let end = uri[authority..].find('/').map_or(uri.len(), |i| authority + i);
        Ok(uri[..end].to_owned())
    }

    /// A URL that downloads the recording for `ttl`, signed locally (no network call). Its signed
    /// overrides make S3 serve it as a file download named as uploaded, with the recorded audio
    /// type, whatever the object's own headers say.
    pub async fn download_url(&self, record: &Record, ttl: Duration) -> Result<String, StorageError> {
        let presigning = PresigningConfig::expires_in(ttl)
            .map_err(|e| StorageError::aws("presigning a download URL", e))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&record.object_key)
            .response_content_disposition(crate::domain::attachment(record.file_name.as_str()))
            // A user's audio behind a short-lived credential: no shared cache keeps it.
            .response_cache_control("private, no-store")
            .response_content_type(
                crate::domain::audio_type(Some(&record.content_type))
                    .unwrap_or_else(|_| crate::domain::DEFAULT_CONTENT_TYPE.to_owned()),
            )
            .presigned(presigning)
            .await
            .map_err(|e| StorageError::aws("presigning a download URL", e))?;
        Ok(request.uri().to_owned())
    }
}
