//! The private recordings bucket. Objects are never public: clients read them through
//! short-lived presigned URLs.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use super::StorageError;

#[derive(Clone, Debug)]
pub struct ObjectStore {
    client: Client,
    bucket: String,
}

impl ObjectStore {
    pub fn new(client: Client, bucket: String) -> Self {
        ObjectStore { client, bucket }
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
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| StorageError::aws("PutObject", e))?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| StorageError::aws("DeleteObject", e))?;
        Ok(())
    }

    /// A URL that downloads the object for `ttl`, signed locally (no network call).
    pub async fn download_url(&self, key: &str, ttl: Duration) -> Result<String, StorageError> {
        let presigning = PresigningConfig::expires_in(ttl)
            .map_err(|e| StorageError::aws("presigning a download URL", e))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning)
            .await
            .map_err(|e| StorageError::aws("presigning a download URL", e))?;
        Ok(request.uri().to_owned())
    }
}
