//! `record_user`: one row per issued key, keyed by (user id, SHA-256 of the key).

use aws_sdk_dynamodb::Client;

use super::{n, number_attr, s, StorageError};
use crate::domain::{KeyHash, UserId};
use crate::schema::user;

/// The issued keys of every user.
#[derive(Clone, Debug)]
pub struct UserStore {
    client: Client,
    table: String,
}

/// What is stored about one issued key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Epoch seconds after which the key no longer works.
    pub expires_at: i64,
}

impl UserStore {
    pub fn new(client: Client, table: String) -> Self {
        UserStore { client, table }
    }

    /// Record a newly issued key. Each login adds a row, so concurrent first logins of the same
    /// user each get a working key instead of racing to create one user row.
    pub async fn add_key(
        &self,
        user: &UserId,
        key: &KeyHash,
        created_at: i64,
        expires_at: i64,
    ) -> Result<(), StorageError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(user::ID, s(user.as_str()))
            .item(user::AUTH_KEY_HASH, s(key.as_str()))
            .item(user::CREATED_AT, n(created_at))
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
