//! The DynamoDB schema: the single source of truth for table names, keys, indexes and TTL.
//!
//! Pure data with no dependencies, so `xtask` can read it without compiling the service. With the
//! `dynamodb-schema` feature the same data is also available as AWS SDK types.

/// A DynamoDB scalar attribute type used in a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    /// String.
    S,
    /// Number.
    N,
}

impl AttrType {
    /// The DynamoDB attribute type letter (`S`, `N`).
    pub const fn as_str(self) -> &'static str {
        match self {
            AttrType::S => "S",
            AttrType::N => "N",
        }
    }
}

/// One key attribute: its name and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAttr {
    /// The attribute's name.
    pub name: &'static str,
    /// Its type.
    pub ty: AttrType,
}

/// A global secondary index, projecting all attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    /// The index's name.
    pub name: &'static str,
    /// Its partition key.
    pub hash: KeyAttr,
    /// Its sort key, if any.
    pub range: Option<KeyAttr>,
}

/// A table as the service expects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    /// The default table name (no prefix), as the original app named it.
    pub base_name: &'static str,
    /// The partition key.
    pub hash: KeyAttr,
    /// The sort key, if any.
    pub range: Option<KeyAttr>,
    /// Its global secondary indexes.
    pub indexes: &'static [Index],
    /// The attribute DynamoDB's TTL deletes items by, if any.
    pub ttl_attribute: Option<&'static str>,
}

impl TableSpec {
    /// The table's name under a prefix (empty prefix: the original name).
    pub fn name(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.base_name)
    }

    /// Every attribute that appears in a key of the table or of one of its indexes, each once.
    pub fn key_attributes(&self) -> Vec<KeyAttr> {
        let mut attrs = vec![self.hash];
        let index_keys = self.indexes.iter().flat_map(|i| [Some(i.hash), i.range]);
        for attr in [self.range].into_iter().chain(index_keys).flatten() {
            if !attrs.iter().any(|a| a.name == attr.name) {
                attrs.push(attr);
            }
        }
        attrs
    }
}

/// Billing mode of every table: on-demand, no capacity to manage.
pub const BILLING_MODE: &str = "PAY_PER_REQUEST";

/// Attribute names of `record_user`.
pub mod user {
    /// `{social_type}_{social_id}`.
    pub const ID: &str = "id";
    /// Lowercase hex SHA-256 of the issued key; the key itself is never stored.
    pub const AUTH_KEY_HASH: &str = "auth_key";
    /// Epoch seconds when the key was issued.
    pub const CREATED_AT: &str = "created_at";
    /// Epoch milliseconds when the login that issued the key began: keys are ordered by it (the
    /// oldest beyond the cap are revoked), and "sign out everywhere" compares it with its own.
    pub const ISSUED_AT_MS: &str = "issued_at_ms";
    /// Epoch seconds; DynamoDB's TTL removes expired keys.
    pub const EXPIRES_AT: &str = "expires_at";
    /// The sort key of a user's "signed out everywhere" row (a key hash is 64 hex digits, never
    /// this); its `issued_at_ms` is when it happened.
    pub const SIGNED_OUT: &str = "signed-out";
    /// Before a user id, the `id` of that user's quota usage row (no user id has this form).
    pub const USAGE_PREFIX: &str = "usage#";
}

/// Attribute names of `record_record`.
pub mod record {
    /// The record id (HASH key), time-ordered.
    pub const ID: &str = "id";
    /// The owner's user id (RANGE key, and the index's HASH key).
    pub const USER_ID: &str = "user_id";
    /// The name the recording was uploaded as.
    pub const FILE_NAME: &str = "file_name";
    /// RFC 3339 UTC with milliseconds, so string order is time order.
    pub const CREATED_AT: &str = "created_at";
    /// The recording's size in bytes.
    pub const SIZE: &str = "size";
    /// The audio type it is served as.
    pub const CONTENT_TYPE: &str = "content_type";
    /// Where the audio lives in the bucket.
    pub const OBJECT_KEY: &str = "object_key";
    /// Set instead of `created_at` while a large upload is pending: without `created_at` the
    /// row is not in the index, so pending uploads are never listed.
    pub const REQUESTED_AT: &str = "requested_at";
    /// The index a user's list is queried on, newest first.
    pub const BY_USER_INDEX: &str = "user_id-created_at-index";
    /// Epoch seconds, on pending uploads only: DynamoDB's TTL removes a pending row that was
    /// never completed (the bucket's lifecycle rule removes its staged object). Removed on publish.
    pub const EXPIRES_AT: &str = "expires_at";
}

/// Where every recording's audio lives in the bucket: `recordings/<user>/<record id>`.
pub const RECORDINGS_PREFIX: &str = "recordings/";

/// Where presigned uploads land in the bucket until they are completed: the bucket's lifecycle
/// rule deletes what stays there longer than a day.
pub const STAGING_PREFIX: &str = "staging/";

/// Users: one row per issued key, so a user can be signed in on several devices.
pub const USER_TABLE: TableSpec = TableSpec {
    base_name: "record_user",
    hash: KeyAttr { name: user::ID, ty: AttrType::S },
    range: Some(KeyAttr { name: user::AUTH_KEY_HASH, ty: AttrType::S }),
    indexes: &[],
    ttl_attribute: Some(user::EXPIRES_AT),
};

/// Recordings: one row per uploaded file, listed per user through the GSI.
pub const RECORD_TABLE: TableSpec = TableSpec {
    base_name: "record_record",
    hash: KeyAttr { name: record::ID, ty: AttrType::S },
    range: Some(KeyAttr { name: record::USER_ID, ty: AttrType::S }),
    indexes: &[Index {
        name: record::BY_USER_INDEX,
        hash: KeyAttr { name: record::USER_ID, ty: AttrType::S },
        range: Some(KeyAttr { name: record::CREATED_AT, ty: AttrType::S }),
    }],
    ttl_attribute: Some(record::EXPIRES_AT),
};

/// Both tables, in the order the original script printed them.
pub const TABLES: [TableSpec; 2] = [USER_TABLE, RECORD_TABLE];

/// A table prefix must keep the full name valid for DynamoDB (`[A-Za-z0-9_.-]`, 3-255 chars).
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    let longest = TABLES.iter().map(|t| t.base_name.len()).max().unwrap_or(0);
    if prefix.len() + longest > 255 {
        return Err(format!("table prefix is {} bytes: at most {} allowed", prefix.len(), 255 - longest));
    }
    match prefix.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        Some(c) => {
            Err(format!("table prefix {prefix:?} contains {c:?}: use only letters, digits, '_', '-' and '.'"))
        }
        None => Ok(()),
    }
}

mod sdk {
    //! The schema as AWS SDK for Rust types, for creating and comparing tables.
    use super::{AttrType, Index, KeyAttr, TableSpec};
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
        ScalarAttributeType,
    };

    impl From<AttrType> for ScalarAttributeType {
        fn from(ty: AttrType) -> Self {
            match ty {
                AttrType::S => ScalarAttributeType::S,
                AttrType::N => ScalarAttributeType::N,
            }
        }
    }

    // The SDK builder fails only when a required field is unset; all are set from constants.
    #[allow(clippy::expect_used)]
    fn element(attr: KeyAttr, key_type: KeyType) -> KeySchemaElement {
        KeySchemaElement::builder()
            .attribute_name(attr.name)
            .key_type(key_type)
            .build()
            .expect("attribute name and key type are set")
    }

    fn key_schema(hash: KeyAttr, range: Option<KeyAttr>) -> Vec<KeySchemaElement> {
        let mut keys = vec![element(hash, KeyType::Hash)];
        keys.extend(range.map(|r| element(r, KeyType::Range)));
        keys
    }

    impl Index {
        /// The key schema in the SDK's form.
        pub fn key_schema(&self) -> Vec<KeySchemaElement> {
            key_schema(self.hash, self.range)
        }

        // The SDK builder fails only when a required field is unset; all are set from constants.
        #[allow(clippy::expect_used)]
        /// The index in the SDK's form, projecting every attribute.
        pub fn to_sdk(&self) -> GlobalSecondaryIndex {
            GlobalSecondaryIndex::builder()
                .index_name(self.name)
                .set_key_schema(Some(self.key_schema()))
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .expect("index name, key schema and projection are set")
        }
    }

    impl TableSpec {
        /// The key schema in the SDK's form.
        pub fn key_schema(&self) -> Vec<KeySchemaElement> {
            key_schema(self.hash, self.range)
        }

        // The SDK builder fails only when a required field is unset; all are set from constants.
        #[allow(clippy::expect_used)]
        /// Every key attribute of the table and its indexes, once each.
        pub fn attribute_definitions(&self) -> Vec<AttributeDefinition> {
            self.key_attributes()
                .into_iter()
                .map(|a| {
                    AttributeDefinition::builder()
                        .attribute_name(a.name)
                        .attribute_type(a.ty.into())
                        .build()
                        .expect("attribute name and type are set")
                })
                .collect()
        }

        /// The indexes in the SDK's form.
        pub fn global_secondary_indexes(&self) -> Vec<GlobalSecondaryIndex> {
            self.indexes.iter().map(Index::to_sdk).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_the_original_ones() {
        assert_eq!(USER_TABLE.name(""), "record_user");
        assert_eq!(RECORD_TABLE.name("dev-"), "dev-record_record");
    }

    #[test]
    fn key_attributes_list_each_attribute_once_including_index_keys() {
        let names: Vec<_> = RECORD_TABLE.key_attributes().iter().map(|a| a.name).collect();
        assert_eq!(names, ["id", "user_id", "created_at"]);
    }

    #[test]
    fn prefixes_with_characters_dynamodb_rejects_are_refused() {
        assert!(validate_prefix("stage-1_a.").is_ok());
        assert!(validate_prefix("bad/prefix").unwrap_err().contains("'/'"));
        assert!(validate_prefix(&"x".repeat(250)).is_err());
    }
}
