//! `record_user`: one row per issued key, keyed by (user id, SHA-256 of the key).

use aws_sdk_dynamodb::Client;

use super::{n, number_attr, s, string_attr, StorageError};
use crate::domain::{KeyHash, UserId};
use crate::schema::user;

/// The issued keys of every user.
#[derive(Clone, Debug)]
pub struct UserStore {
    client: Client,
    table: String,
}

/// One issued key of a user, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedKey {
    /// The key's hash (the row's sort key).
    pub hash: String,
    /// When its login began, epoch milliseconds.
    pub issued_at_ms: i64,
    pub expires_at: i64,
}

/// A user's partition: their keys, and when they last signed out everywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserKeys {
    pub keys: Vec<ListedKey>,
    /// Epoch milliseconds of the last "sign out everywhere", if any is still recorded.
    pub signed_out_at_ms: Option<i64>,
}

/// The partition of a provider's used ID tokens: no user id can have this form (user ids are
/// `<letters or digits>_<id>`), so these rows never authorize anything.
fn used_tokens_of(provider: &str) -> String {
    format!("id-token#{provider}")
}

/// What is stored about one issued key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Epoch seconds after which the key no longer works.
    pub expires_at: i64,
}

impl UserStore {
    /// The store of `table`.
    pub fn new(client: Client, table: String) -> Self {
        UserStore { client, table }
    }

    /// Record a newly issued key. Each login adds a row, so concurrent first logins of the same
    /// user each get a working key instead of racing to create one user row.
    pub async fn add_key(
        &self,
        user: &UserId,
        key: &KeyHash,
        issued_at_ms: i64,
        expires_at: i64,
    ) -> Result<(), StorageError> {
        self.put_dated_row(user, key.as_str(), issued_at_ms, expires_at).await
    }

    /// A row of `user`'s partition under `sort_key`, stamped with `at_ms` (epoch milliseconds)
    /// and expiring at `expires_at` (epoch seconds).
    async fn put_dated_row(
        &self,
        user: &UserId,
        sort_key: &str,
        at_ms: i64,
        expires_at: i64,
    ) -> Result<(), StorageError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(user::ID, s(user.as_str()))
            .item(user::AUTH_KEY_HASH, s(sort_key))
            .item(user::CREATED_AT, n(at_ms.div_euclid(1000)))
            .item(user::ISSUED_AT_MS, n(at_ms))
            .item(user::EXPIRES_AT, n(expires_at))
            .send()
            .await
            .map_err(|e| StorageError::aws("PutItem on the user table", e))?;
        Ok(())
    }

    /// Look up one issued key. Strongly consistent, so a key works right after login.
    pub async fn find_key(&self, user: &UserId, key: &KeyHash) -> Result<Option<StoredKey>, StorageError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(user::ID, s(user.as_str()))
            .key(user::AUTH_KEY_HASH, s(key.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StorageError::aws("GetItem on the user table", e))?;
        output
            .item
            .map(|item| Ok(StoredKey { expires_at: number_attr(&item, user::EXPIRES_AT)? }))
            .transpose()
    }

    /// Every key issued to `user`, expired ones included (TTL deletes them within days), and
    /// when they last signed out everywhere. Strongly consistent: a login sees every key added
    /// before it asked, its own included.
    pub async fn list_keys(&self, user: &UserId) -> Result<UserKeys, StorageError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#u = :u")
            .expression_attribute_names("#u", user::ID)
            .expression_attribute_values(":u", s(user.as_str()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut listed = UserKeys::default();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| StorageError::aws("Query on the user table", e))?;
            let hash = string_attr(&item, user::AUTH_KEY_HASH)?;
            // Keys written before `issued_at_ms` existed sort by their creation second.
            let issued_at_ms = number_attr(&item, user::ISSUED_AT_MS)
                .or_else(|_| number_attr(&item, user::CREATED_AT).map(|s| s.saturating_mul(1000)))?;
            if hash == user::SIGNED_OUT {
                listed.signed_out_at_ms = Some(issued_at_ms);
            } else {
                listed.keys.push(ListedKey {
                    hash,
                    issued_at_ms,
                    expires_at: number_attr(&item, user::EXPIRES_AT)?,
                });
            }
        }
        Ok(listed)
    }

    /// Record that `user` signed out everywhere at `at_ms` (epoch milliseconds): a login that
    /// began before then and finishes after revokes its own key. Kept until `expires_at` (epoch
    /// seconds), when every key issued before it has expired anyway.
    pub async fn mark_signed_out(
        &self,
        user: &UserId,
        at_ms: i64,
        expires_at: i64,
    ) -> Result<(), StorageError> {
        self.put_dated_row(user, user::SIGNED_OUT, at_ms, expires_at).await
    }

    /// Revoke the keys with these hashes, concurrently (so a whole device list costs one call's
    /// time). The first failure is returned, after every delete has finished.
    pub async fn remove_keys(&self, user: &UserId, hashes: Vec<String>) -> Result<(), StorageError> {
        let mut deletes = tokio::task::JoinSet::new();
        for hash in hashes {
            let request = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key(user::ID, s(user.as_str()))
                .key(user::AUTH_KEY_HASH, s(hash));
            deletes.spawn(request.send());
        }
        let mut first_error = None;
        while let Some(done) = deletes.join_next().await {
            let failed = match done {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(StorageError::aws("DeleteItem on the user table", e)),
                Err(e) => Some(StorageError::Corrupt(format!("a key revocation did not finish: {e}"))),
            };
            first_error = first_error.or(failed);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Mark an ID token as exchanged until it expires (`expires_at`, epoch seconds), unless it
    /// already was: `false` then. `token_id` is the hash of its `jti` (or of the token).
    pub async fn claim_id_token(
        &self,
        provider: &str,
        token_id: &str,
        expires_at: i64,
    ) -> Result<bool, StorageError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(user::ID, s(used_tokens_of(provider)))
            .item(user::AUTH_KEY_HASH, s(token_id))
            .item(user::CREATED_AT, n(now))
            .item(user::EXPIRES_AT, n(expires_at))
            // An expired claim TTL has not removed yet does not block: the token itself is
            // expired by then, and refused before this.
            .condition_expression("attribute_not_exists(#h) OR #e < :now")
            .expression_attribute_names("#h", user::AUTH_KEY_HASH)
            .expression_attribute_names("#e", user::EXPIRES_AT)
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        Ok(super::conditional(result, "PutItem on the user table (ID token)")?.is_some())
    }

    /// One cheap read that opens the table's connection (TLS included) before the first request
    /// needs it. Its outcome does not matter: a key row named `warm-up` never exists.
    pub async fn warm_up(&self) -> Result<(), StorageError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key(user::ID, s("warm-up"))
            .key(user::AUTH_KEY_HASH, s("warm-up"))
            .send()
            .await
            .map_err(|e| StorageError::aws("GetItem on the user table (warm-up)", e))?;
        Ok(())
    }

    /// Revoke one key; the user's other devices stay signed in.
    pub async fn remove_key(&self, user: &UserId, key: &KeyHash) -> Result<(), StorageError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(user::ID, s(user.as_str()))
            .key(user::AUTH_KEY_HASH, s(key.as_str()))
            .send()
            .await
            .map_err(|e| StorageError::aws("DeleteItem on the user table", e))?;
        Ok(())
    }
}
