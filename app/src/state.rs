//! Application state: built once per cold start, cloned cheaply into every request.

use std::time::Duration;

use crate::config::Config;
use crate::schema::{RECORD_TABLE, USER_TABLE};
use crate::storage::{ObjectStore, RecordStore, UserStore};

/// The stores (each a client paired with its resource) and the request-time settings.
#[derive(Clone, Debug)]
pub struct AppState {
    pub users: UserStore,
    pub records: RecordStore,
    pub objects: ObjectStore,
    pub oidc: crate::oidc::Verifier,
    pub settings: Settings,
}

/// The parts of [`Config`] handlers use.
#[derive(Clone, Debug)]
pub struct Settings {
    pub max_upload_bytes: usize,
    pub max_large_upload_bytes: u64,
    pub upload_url_ttl: Duration,
    pub allow_unverified_login: bool,
    pub key_ttl: Duration,
    pub download_url_ttl: Duration,
}

impl AppState {
    /// Create the AWS clients from one shared SDK config.
    pub fn new(sdk: &aws_config::SdkConfig, config: &Config) -> Self {
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let s3_config = aws_sdk_s3::config::Builder::from(sdk).force_path_style(config.s3_path_style).build();
        AppState {
            users: UserStore::new(dynamodb.clone(), USER_TABLE.name(&config.table_prefix)),
            records: RecordStore::new(dynamodb, RECORD_TABLE.name(&config.table_prefix)),
            objects: ObjectStore::new(aws_sdk_s3::Client::from_conf(s3_config), config.bucket.clone()),
            oidc: crate::oidc::Verifier::new(&config.oidc_providers, config.oidc_min_refetch),
            settings: Settings {
                max_upload_bytes: config.max_upload_bytes,
                max_large_upload_bytes: config.max_large_upload_bytes,
                upload_url_ttl: config.upload_url_ttl,
                allow_unverified_login: config.allow_unverified_login,
                key_ttl: config.key_ttl,
                download_url_ttl: config.download_url_ttl,
            },
        }
    }
}
