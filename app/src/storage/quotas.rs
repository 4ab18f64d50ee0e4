//! Per-user quotas, kept in one usage row of `record_user` (id `usage#<user id>`, which no user
//! id can be). Every charge is one conditional `UpdateItem`: the limit is checked by DynamoDB in
//! the same write, so concurrent requests cannot together pass it (no read-then-write).
//!
//! The row holds `pending` (live pending uploads), `published` (recordings), `bytes` (both
//! together), and one `p_<record id>` map per pending upload with its `size` and `expires`, so an
//! upload that expires without being completed is refunded by the next start.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::{n, number_attr, s, StorageError};
use crate::domain::UserId;
use crate::schema::user;

/// The limits of one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub pending_uploads: u64,
    pub recordings: u64,
    pub bytes: u64,
}

/// Which limit a charge would cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    PendingUploads(u64),
    Recordings(u64),
    Bytes(u64),
}

impl Exceeded {
    /// The limit itself.
    fn value(self) -> u64 {
        match self {
            Exceeded::PendingUploads(n) | Exceeded::Recordings(n) | Exceeded::Bytes(n) => n,
        }
    }
}

const PENDING: &str = "pending";
const PUBLISHED: &str = "published";
const BYTES: &str = "bytes";
const USAGE_SORT_KEY: &str = "usage";
const UPDATE: &str = "UpdateItem on the user table (quota)";

/// A counter of the usage row (absent: never charged, 0).
fn count(usage: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    number_attr(usage, name).map_or(0, |n| u64::try_from(n).unwrap_or(0))
}

fn entry_name(record_id: &str) -> String {
    format!("p_{}", record_id.replace('-', ""))
}

/// The usage rows of every user.
#[derive(Clone, Debug)]
pub struct QuotaStore {
    client: Client,
    table: String,
    limits: Limits,
}

impl QuotaStore {
    pub fn new(client: Client, table: String, limits: Limits) -> Self {
        QuotaStore { client, table, limits }
    }

    fn update(
        &self,
        user: &UserId,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(user::ID, s(format!("usage#{user}")))
            .key(user::AUTH_KEY_HASH, s(USAGE_SORT_KEY))
    }

    /// Charge a new pending upload of `size` bytes, expiring at `expires` (epoch seconds). When
    /// a limit stands in the way, expired pending uploads are refunded and the charge retried
    /// once.
    pub async fn reserve_pending(
        &self,
        user: &UserId,
        record_id: &str,
        size: u64,
        expires: i64,
    ) -> Result<Result<(), Exceeded>, StorageError> {
        let entry = || {
            let value = AttributeValue::M(HashMap::from([
                ("size".to_owned(), n(size)),
                ("expires".to_owned(), n(expires)),
            ]));
            Some((entry_name(record_id), value))
        };
        for attempt in 0..2 {
            let limit = Exceeded::PendingUploads(self.limits.pending_uploads);
            let (exceeded, usage) = match self.charge(user, PENDING, limit, size, entry()).await? {
                Ok(()) => return Ok(Ok(())),
                Err(refused) => refused,
            };
            if attempt == 0 && self.refund_expired(user, &usage).await? {
                continue;
            }
            return Ok(Err(exceeded));
        }
        // The second attempt always returns above.
        Ok(Err(Exceeded::PendingUploads(self.limits.pending_uploads)))
    }

    async fn usage(&self, user: &UserId) -> Result<HashMap<String, AttributeValue>, StorageError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(user::ID, s(format!("usage#{user}")))
            .key(user::AUTH_KEY_HASH, s(USAGE_SORT_KEY))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StorageError::aws("GetItem on the user table (quota)", e))?;
        Ok(output.item.unwrap_or_default())
    }

    /// Refund every pending upload of `usage` past its expiry, in one conditional write (each
    /// entry must still be there, so a concurrent refund is never counted twice). Whether any was.
    async fn refund_expired(
        &self,
        user: &UserId,
        usage: &HashMap<String, AttributeValue>,
    ) -> Result<bool, StorageError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let expired: Vec<(&String, i64)> = usage
            .iter()
            .filter(|(name, _)| name.starts_with("p_"))
            .filter_map(|(name, value)| {
                let AttributeValue::M(entry) = value else { return None };
                let expires = number_attr(entry, "expires").ok()?;
                (expires < now).then(|| (name, number_attr(entry, "size").unwrap_or(0)))
            })
            .collect();
        if expired.is_empty() {
            return Ok(false);
        }
        let mut request = self
            .update(user)
            .expression_attribute_names("#pending", PENDING)
            .expression_attribute_names("#bytes", BYTES);
        let mut removed = Vec::new();
        for (i, (name, _)) in expired.iter().enumerate() {
            request = request.expression_attribute_names(format!("#e{i}"), name.as_str());
            removed.push(format!("#e{i}"));
        }
        let bytes: i64 = expired.iter().map(|(_, size)| size).sum();
        let condition: Vec<String> = removed.iter().map(|r| format!("attribute_exists({r})")).collect();
        let result = request
            .update_expression(format!("REMOVE {} ADD #pending :minus, #bytes :bytes", removed.join(", ")))
            .condition_expression(condition.join(" AND "))
            .expression_attribute_values(":minus", n(-(expired.len() as i64)))
            .expression_attribute_values(":bytes", n(-bytes))
            .send()
            .await;
        // Applied, or refunded by someone else meanwhile: either way they are refunded.
        super::conditional(result, UPDATE)?;
        Ok(true)
    }

    /// Charge a directly uploaded recording of `size` bytes.
    pub async fn reserve_published(
        &self,
        user: &UserId,
        size: u64,
    ) -> Result<Result<(), Exceeded>, StorageError> {
        let limit = Exceeded::Recordings(self.limits.recordings);
        Ok(self.charge(user, PUBLISHED, limit, size, None).await?.map_err(|(exceeded, _)| exceeded))
    }

    /// One conditional charge of a new item: `counter` + 1 while below `limit`, and `size` bytes
    /// while they fit the bytes limit; `entry` (name, value) set in the same write. When refused,
    /// the limit it met and the usage row as it is now (empty when `size` alone is too large).
    async fn charge(
        &self,
        user: &UserId,
        counter: &str,
        limit: Exceeded,
        size: u64,
        entry: Option<(String, AttributeValue)>,
    ) -> Result<Result<(), (Exceeded, HashMap<String, AttributeValue>)>, StorageError> {
        let bytes_limit = Exceeded::Bytes(self.limits.bytes);
        let Some(room) = self.limits.bytes.checked_sub(size) else {
            // Too large for the limit whatever the usage: refused without a write.
            return Ok(Err((bytes_limit, HashMap::new())));
        };
        let set = if entry.is_some() { "SET #entry = :entry " } else { "" };
        let mut request = self
            .update(user)
            .expression_attribute_names("#counter", counter)
            .expression_attribute_names("#bytes", BYTES)
            .update_expression(format!("{set}ADD #counter :one, #bytes :size"))
            .condition_expression(
                "(attribute_not_exists(#counter) OR #counter < :max) AND (attribute_not_exists(#bytes) OR #bytes <= :room)",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":size", n(size))
            .expression_attribute_values(":max", n(limit.value()))
            .expression_attribute_values(":room", n(room));
        if let Some((name, value)) = entry {
            request = request
                .expression_attribute_names("#entry", name)
                .expression_attribute_values(":entry", value);
        }
        if super::conditional(request.send().await, UPDATE)?.is_some() {
            return Ok(Ok(()));
        }
        let usage = self.usage(user).await?;
        let exceeded = if count(&usage, counter) >= limit.value() { limit } else { bytes_limit };
        Ok(Err((exceeded, usage)))
    }

    /// Turn a pending upload into a recording: its bytes stay charged. One refunded as expired
    /// meanwhile is charged afresh.
    pub async fn publish_pending(
        &self,
        user: &UserId,
        record_id: &str,
        size: u64,
    ) -> Result<Result<(), Exceeded>, StorageError> {
        let result = self
            .update(user)
            .expression_attribute_names("#pending", PENDING)
            .expression_attribute_names("#published", PUBLISHED)
            .update_expression("REMOVE #entry ADD #pending :minus, #published :one")
            .condition_expression(
                "attribute_exists(#entry) AND (attribute_not_exists(#published) OR #published < :max)",
            )
            .expression_attribute_names("#entry", entry_name(record_id))
            .expression_attribute_values(":minus", n(-1))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(self.limits.recordings))
            .send()
            .await;
        if super::conditional(result, UPDATE)?.is_some() {
            Ok(Ok(()))
        } else if self.usage(user).await?.contains_key(&entry_name(record_id)) {
            Ok(Err(Exceeded::Recordings(self.limits.recordings)))
        } else {
            self.reserve_published(user, size).await
        }
    }

    /// Give back a recording's charge (deleted, or its upload failed).
    pub async fn release_published(&self, user: &UserId, size: u64) -> Result<(), StorageError> {
        self.update(user)
            .expression_attribute_names("#published", PUBLISHED)
            .expression_attribute_names("#bytes", BYTES)
            .update_expression("ADD #published :minus, #bytes :bytes")
            .expression_attribute_values(":minus", n(-1))
            .expression_attribute_values(":bytes", n(-(size as i64)))
            .send()
            .await
            .map_err(|e| StorageError::aws(UPDATE, e))?;
        Ok(())
    }

    /// Give back a pending upload's charge, once (an expired one may already be refunded).
    pub async fn release_pending(
        &self,
        user: &UserId,
        record_id: &str,
        size: u64,
    ) -> Result<(), StorageError> {
        let result = self
            .update(user)
            .expression_attribute_names("#pending", PENDING)
            .expression_attribute_names("#bytes", BYTES)
            .update_expression("REMOVE #entry ADD #pending :minus, #bytes :bytes")
            .condition_expression("attribute_exists(#entry)")
            .expression_attribute_names("#entry", entry_name(record_id))
            .expression_attribute_values(":minus", n(-1))
            .expression_attribute_values(":bytes", n(-(size as i64)))
            .send()
            .await;
        // Not there: already refunded as expired.
        super::conditional(result, UPDATE)?;
        Ok(())
    }
}
