//! Per-user quotas, kept in one usage row of `record_user` (id `usage#<user id>`, which no user
//! id can be). Every charge is one conditional `UpdateItem`: the limit is checked by DynamoDB in
//! the same write, so concurrent requests cannot together pass it (no read-then-write).
//!
//! The row holds:
//! - `published`: recordings;
//! - `bytes`: the recordings' bytes and those of large uploads still pending;
//! - `pending`: open upload windows, one per large upload started;
//! - `staged`: the bytes the open windows' presigned URLs may have put in staging;
//! - one `p_<record id>` map per open window: its `size`, when it closes (`expires`), its staged
//!   object (`key`), and `done` once the upload was completed or deleted.
//!
//! A presigned PUT cannot be revoked: until its window closes, its URL can write to staging again,
//! after a `complete` and after a delete. So a window keeps its place and its staged bytes charged
//! until it closes, whatever happened to its upload. When a limit stands in the way, closed
//! windows are refunded: their staged objects removed first, then their charges given back in one
//! conditional write. Staged bytes are therefore always charged, and never exceed the bytes limit.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::{n, number_attr, s, ObjectStore, StorageError};
use crate::domain::{RecordId, UserId};
use crate::schema::user;

/// The limits of one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open upload windows.
    pub pending_uploads: u64,
    /// Recordings.
    pub recordings: u64,
    /// Stored bytes (recordings and pending uploads).
    pub bytes: u64,
}

/// Which limit a charge would cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// The open upload windows' limit.
    PendingUploads(u64),
    /// The recordings' limit.
    Recordings(u64),
    /// The bytes' limit.
    Bytes(u64),
    /// The bytes of upload windows still open (completed or deleted uploads included).
    StagedBytes(u64),
}

impl Exceeded {
    /// The limit itself.
    fn value(self) -> u64 {
        match self {
            Exceeded::PendingUploads(n)
            | Exceeded::Recordings(n)
            | Exceeded::Bytes(n)
            | Exceeded::StagedBytes(n) => n,
        }
    }
}

/// What `claim_pending` found: the one request that moves an upload's window to `done` is the
/// one that completes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This request holds the upload: its recording is charged, and only it may publish.
    Won,
    /// Another request completed the upload, is completing it, or deleted it.
    Taken,
    /// The upload's window closed (and may already be refunded): it can no longer be completed.
    Closed,
    /// A limit stands in the way (the recordings').
    Exceeded(Exceeded),
}

const PENDING: &str = "pending";
const PUBLISHED: &str = "published";
const BYTES: &str = "bytes";
const STAGED: &str = "staged";
const DONE: &str = "done";
const USAGE_SORT_KEY: &str = "usage";
const UPDATE: &str = "UpdateItem on the user table (quota)";

type Usage = HashMap<String, AttributeValue>;

/// A counter of the usage row (absent: never charged, 0).
fn count(usage: &Usage, name: &str) -> u64 {
    number_attr(usage, name).map_or(0, |n| u64::try_from(n).unwrap_or(0))
}

fn entry_name(record_id: &RecordId) -> String {
    format!("p_{}", record_id.to_string().replace('-', ""))
}

/// What every log line about a user's possibly wrong quota counters says (a refund that failed;
/// a charge or refund an unanswered attempt may have applied twice). The bench matches
/// reconcile's "miscounted" findings to the lines with this and the user.
pub const COUNTERS_MAY_BE_OFF: &str =
    "the user's quota counters may be off until `cargo xtask reconcile` corrects them";

/// Log that `what` was sent again after an attempt went unanswered (see [`super::Doubt`]), so
/// `user`'s counters may be off by its charge.
pub fn log_doubt(user: &UserId, what: &str) {
    let _user = tracing::error_span!("quota", user = %user).entered();
    tracing::error!("{what} was sent again after an attempt went unanswered: {COUNTERS_MAY_BE_OFF}");
}

/// Send an update of `user`'s counters; when an attempt went unanswered, so that it may have
/// applied twice, log that `what` may have put them off.
async fn send_counted(
    user: &UserId,
    what: &str,
    request: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
) -> Result<
    aws_sdk_dynamodb::operation::update_item::UpdateItemOutput,
    aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::update_item::UpdateItemError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
> {
    let doubt = super::Doubt::default();
    let result = request.customize().interceptor(doubt.clone()).send().await;
    if doubt.raised() {
        log_doubt(user, what);
    }
    result
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// One upload window of the usage row.
#[derive(Debug)]
struct Window<'a> {
    name: &'a str,
    size: i64,
    expires: i64,
    /// Its staged object (absent in windows written before it was recorded).
    key: Option<String>,
    done: bool,
    /// The claim that made it `done`, when a `complete` did (a deleted upload's is `true`).
    claim: Option<&'a str>,
}

fn windows(usage: &Usage) -> impl Iterator<Item = Window<'_>> {
    usage.iter().filter(|(name, _)| name.starts_with("p_")).filter_map(|(name, value)| {
        let AttributeValue::M(entry) = value else { return None };
        Some(Window {
            name,
            size: number_attr(entry, "size").unwrap_or(0),
            expires: number_attr(entry, "expires").ok()?,
            key: entry.get("key").and_then(|k| k.as_s().ok()).cloned(),
            done: entry.contains_key(DONE),
            claim: entry.get(DONE).and_then(|v| v.as_s().ok()).map(String::as_str),
        })
    })
}

/// The usage rows of every user.
#[derive(Clone, Debug)]
pub struct QuotaStore {
    client: Client,
    table: String,
    limits: Limits,
    /// Where closed windows' staged objects are removed before their bytes are given back.
    objects: ObjectStore,
}

impl QuotaStore {
    /// The usage rows in `table`, enforcing `limits`; `objects` holds the staged uploads to remove on refunds.
    pub fn new(client: Client, table: String, limits: Limits, objects: ObjectStore) -> Self {
        QuotaStore { client, table, limits, objects }
    }

    fn update(
        &self,
        user: &UserId,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(user::ID, s(format!("{}{user}", user::USAGE_PREFIX)))
            .key(user::AUTH_KEY_HASH, s(USAGE_SORT_KEY))
    }

    /// Charge a new large upload of `size` bytes whose presigned URL writes `staged_key`, in a
    /// window that closes at `closes` (epoch seconds): a pending place, its bytes, and its staged
    /// bytes.
    pub async fn reserve_pending(
        &self,
        user: &UserId,
        record_id: &RecordId,
        size: u64,
        closes: i64,
        staged_key: &str,
    ) -> Result<Result<(), Exceeded>, StorageError> {
        let entry = AttributeValue::M(HashMap::from([
            ("size".to_owned(), n(size)),
            ("expires".to_owned(), n(closes)),
            ("key".to_owned(), s(staged_key)),
        ]));
        let charge = Charge {
            counter: PENDING,
            limit: Exceeded::PendingUploads(self.limits.pending_uploads),
            size,
            window: Some((entry_name(record_id), entry)),
        };
        self.charge_refunding(user, &charge).await
    }

    /// Charge a directly uploaded recording of `size` bytes.
    pub async fn reserve_published(
        &self,
        user: &UserId,
        size: u64,
    ) -> Result<Result<(), Exceeded>, StorageError> {
        let charge = Charge {
            counter: PUBLISHED,
            limit: Exceeded::Recordings(self.limits.recordings),
            size,
            window: None,
        };
        self.charge_refunding(user, &charge).await
    }

    /// `charge`, and when a limit stands in the way, refund the closed windows and try once more:
    /// an expired upload's charge never blocks a new one.
    async fn charge_refunding(
        &self,
        user: &UserId,
        charge: &Charge,
    ) -> Result<Result<(), Exceeded>, StorageError> {
        let (exceeded, usage) = match self.charge(user, charge).await? {
            Ok(()) => return Ok(Ok(())),
            Err(refused) => refused,
        };
        if !self.refund_closed(user, &usage).await? {
            return Ok(Err(exceeded));
        }
        Ok(self.charge(user, charge).await?.map_err(|(exceeded, _)| exceeded))
    }

    async fn usage(&self, user: &UserId) -> Result<Usage, StorageError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(user::ID, s(format!("{}{user}", user::USAGE_PREFIX)))
            .key(user::AUTH_KEY_HASH, s(USAGE_SORT_KEY))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StorageError::aws("GetItem on the user table (quota)", e))?;
        Ok(output.item.unwrap_or_default())
    }

    /// Refund `user`'s closed upload windows, as a refused charge does (their staged objects
    /// removed first; a window whose object could not be removed keeps its charge). For the
    /// operator's repair (`cargo xtask reconcile`): the service itself refunds lazily, when a limit
    /// stands in the way. Whether any was refunded.
    pub async fn refund_closed_windows(&self, user: &UserId) -> Result<bool, StorageError> {
        let usage = self.usage(user).await?;
        self.refund_closed(user, &usage).await
    }

    /// Set `user`'s counters (published, bytes, pending, staged) to `to`, only while they still
    /// are `from`: a charge or a refund in between changes them, and then nothing is written.
    /// The operator's repair of counters that a failed refund left wrong. Whether they were set.
    pub async fn correct_counters(
        &self,
        user: &UserId,
        from: [i64; 4],
        to: [i64; 4],
    ) -> Result<bool, StorageError> {
        let names = [PUBLISHED, BYTES, PENDING, STAGED];
        let mut request = self.update(user);
        let mut set = Vec::new();
        let mut condition = Vec::new();
        for (i, ((name, from), to)) in names.iter().zip(from).zip(to).enumerate() {
            request = request
                .expression_attribute_names(format!("#c{i}"), *name)
                .expression_attribute_values(format!(":from{i}"), n(from))
                .expression_attribute_values(format!(":to{i}"), n(to));
            set.push(format!("#c{i} = :to{i}"));
            condition.push(if from == 0 {
                format!("(attribute_not_exists(#c{i}) OR #c{i} = :from{i})")
            } else {
                format!("#c{i} = :from{i}")
            });
        }
        let result = request
            .update_expression(format!("SET {}", set.join(", ")))
            .condition_expression(condition.join(" AND "))
            .send()
            .await;
        Ok(super::conditional(result, UPDATE)?.is_some())
    }

    /// Refund every window of `usage` that has closed: remove its staged object (concurrently),
    /// then give back its place, its staged bytes and, if its upload was never completed or
    /// deleted, its bytes, in one conditional write (each window must still be as read, so a
    /// concurrent refund or claim is never counted twice). A window whose staged object could not
    /// be removed keeps its charge. Whether any was refunded.
    async fn refund_closed(&self, user: &UserId, usage: &Usage) -> Result<bool, StorageError> {
        let now = now();
        let closed: Vec<Window> = windows(usage).filter(|w| w.expires < now).collect();
        let mut removals = tokio::task::JoinSet::new();
        for (i, window) in closed.iter().enumerate() {
            let (objects, key) = (self.objects.clone(), window.key.clone());
            removals.spawn(async move {
                let removal = match &key {
                    Some(key) => objects.delete(key).await,
                    None => Ok(()),
                };
                (i, key, removal)
            });
        }
        // A window whose removal failed (or did not finish) is not in `removed`: it keeps its charge.
        let mut removed = std::collections::HashSet::new();
        while let Some(done) = removals.join_next().await {
            match done {
                Ok((i, _, Ok(()))) => {
                    removed.insert(i);
                }
                Ok((_, key, Err(err))) => {
                    let _key = tracing::error_span!("staged", key = key.as_deref()).entered();
                    crate::error::log_storage_failure(
                        &err,
                        "could not remove a closed upload's staged object",
                    );
                }
                Err(_) => {}
            }
        }
        let refunded: Vec<Window> =
            closed.into_iter().enumerate().filter(|(i, _)| removed.contains(i)).map(|(_, w)| w).collect();
        if refunded.is_empty() {
            return Ok(false);
        }
        let mut request = self
            .update(user)
            .expression_attribute_names("#pending", PENDING)
            .expression_attribute_names("#bytes", BYTES)
            .expression_attribute_names("#staged", STAGED)
            .expression_attribute_names("#done", DONE);
        let mut removed = Vec::new();
        let mut condition = Vec::new();
        for (i, window) in refunded.iter().enumerate() {
            request = request.expression_attribute_names(format!("#e{i}"), window.name);
            removed.push(format!("#e{i}"));
            condition.push(if window.done {
                format!("attribute_exists(#e{i}.#done)")
            } else {
                format!("attribute_exists(#e{i}) AND attribute_not_exists(#e{i}.#done)")
            });
        }
        let staged: i64 = refunded.iter().map(|w| w.size).sum();
        let bytes: i64 = refunded.iter().filter(|w| !w.done).map(|w| w.size).sum();
        let result = request
            .update_expression(format!(
                "REMOVE {} ADD #pending :minus, #staged :staged, #bytes :bytes",
                removed.join(", ")
            ))
            .condition_expression(condition.join(" AND "))
            .expression_attribute_values(":minus", n(-(refunded.len() as i64)))
            .expression_attribute_values(":staged", n(-staged))
            .expression_attribute_values(":bytes", n(-bytes))
            .send()
            .await;
        // Applied, or changed by someone else meanwhile (refunded, claimed): the charge is tried
        // again either way, and a window left behind is refunded by a later refusal.
        super::conditional(result, UPDATE)?;
        Ok(true)
    }

    /// One conditional charge of a new item: `counter` + 1 while below `limit`, and `size` bytes
    /// while they fit the bytes limit (and the staged bytes' too, for an upload window); the
    /// entry set in the same write. When refused, the limit it met and the usage row as it is now
    /// (empty when `size` alone is too large).
    async fn charge(
        &self,
        user: &UserId,
        charge: &Charge,
    ) -> Result<Result<(), (Exceeded, Usage)>, StorageError> {
        let bytes_limit = Exceeded::Bytes(self.limits.bytes);
        let Some(room) = self.limits.bytes.checked_sub(charge.size) else {
            // Too large for the limit whatever the usage: refused without a write.
            return Ok(Err((bytes_limit, HashMap::new())));
        };
        // An upload window is set in the same write, and its bytes count as staged too.
        let (set, staged_add, staged_condition) = if charge.window.is_some() {
            (
                "SET #entry = :entry ",
                ", #staged :size",
                " AND (attribute_not_exists(#staged) OR #staged <= :room)",
            )
        } else {
            ("", "", "")
        };
        let mut request = self
            .update(user)
            .expression_attribute_names("#counter", charge.counter)
            .expression_attribute_names("#bytes", BYTES)
            .update_expression(format!("{set}ADD #counter :one, #bytes :size{staged_add}"))
            .condition_expression(format!(
                "(attribute_not_exists(#counter) OR #counter < :max) AND (attribute_not_exists(#bytes) OR #bytes <= :room){staged_condition}"
            ))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":size", n(charge.size))
            .expression_attribute_values(":max", n(charge.limit.value()))
            .expression_attribute_values(":room", n(room));
        if let Some((name, value)) = &charge.window {
            request = request
                .expression_attribute_names("#staged", STAGED)
                .expression_attribute_names("#entry", name)
                .expression_attribute_values(":entry", value.clone());
        }
        // Applied twice, or refused by its own first attempt's charge: logged either way.
        let result = send_counted(user, "a quota charge", request).await;
        if super::conditional(result, UPDATE)?.is_some() {
            return Ok(Ok(()));
        }
        let usage = self.usage(user).await?;
        let exceeded = if count(&usage, charge.counter) >= charge.limit.value() {
            charge.limit
        } else if count(&usage, BYTES) > room {
            bytes_limit
        } else if charge.window.is_some() {
            Exceeded::StagedBytes(self.limits.bytes)
        } else {
            bytes_limit
        };
        Ok(Err((exceeded, usage)))
    }

    /// Claim a pending upload for publishing: mark its window `done` and charge a recording, in
    /// one conditional write that only one request can make. Its bytes, charged at start, become
    /// the recording's; its window stays open (and its staged bytes charged) until it closes.
    ///
    /// `done` holds a token of this claim: when the write's answer is lost and the SDK's retry
    /// then fails its condition, the token read back tells this claim from another request's.
    pub async fn claim_pending(&self, user: &UserId, record_id: &RecordId) -> Result<Claim, StorageError> {
        let entry = entry_name(record_id);
        let claim = uuid::Uuid::new_v4().to_string();
        let result = self
            .update(user)
            .expression_attribute_names("#entry", &entry)
            .expression_attribute_names("#done", DONE)
            .expression_attribute_names("#expires", "expires")
            .expression_attribute_names("#published", PUBLISHED)
            .update_expression("SET #entry.#done = :claim ADD #published :one")
            .condition_expression(
                "attribute_exists(#entry) AND attribute_not_exists(#entry.#done) AND #entry.#expires >= :now \
                 AND (attribute_not_exists(#published) OR #published < :max)",
            )
            .expression_attribute_values(":claim", s(&claim))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now()))
            .expression_attribute_values(":max", n(self.limits.recordings))
            .send()
            .await;
        if super::conditional(result, UPDATE)?.is_some() {
            return Ok(Claim::Won);
        }
        let usage = self.usage(user).await?;
        let claim = match windows(&usage).find(|w| w.name == entry) {
            None => Claim::Closed,
            Some(w) if w.claim == Some(claim.as_str()) => Claim::Won,
            Some(w) if w.done => Claim::Taken,
            Some(w) if w.expires < now() => Claim::Closed,
            Some(_) => Claim::Exceeded(Exceeded::Recordings(self.limits.recordings)),
        };
        Ok(claim)
    }

    /// Give up a claim whose upload could not be published: the upload is pending again, and its
    /// recording's charge given back. If its window was refunded meanwhile (closed during the
    /// attempt), that refund took the bytes as the recording's: they are given back here.
    pub async fn unclaim(&self, user: &UserId, record_id: &RecordId, size: u64) -> Result<(), StorageError> {
        let request = self
            .update(user)
            .expression_attribute_names("#entry", entry_name(record_id))
            .expression_attribute_names("#done", DONE)
            .expression_attribute_names("#published", PUBLISHED)
            .update_expression("REMOVE #entry.#done ADD #published :minus")
            .condition_expression("attribute_exists(#entry.#done)")
            .expression_attribute_values(":minus", n(-1));
        let result = send_counted(user, "giving back a claim", request).await;
        if super::conditional(result, UPDATE)?.is_none() {
            self.release_published(user, size).await?;
        }
        Ok(())
    }

    /// Give back a recording's charge (deleted, or its upload failed).
    pub async fn release_published(&self, user: &UserId, size: u64) -> Result<(), StorageError> {
        let request = self
            .update(user)
            .expression_attribute_names("#published", PUBLISHED)
            .expression_attribute_names("#bytes", BYTES)
            .update_expression("ADD #published :minus, #bytes :bytes")
            .expression_attribute_values(":minus", n(-1))
            .expression_attribute_values(":bytes", n(-(size as i64)));
        send_counted(user, "a quota refund", request).await.map_err(|e| StorageError::aws(UPDATE, e))?;
        Ok(())
    }

    /// A pending upload was deleted: give back its bytes and mark its window `done`. The window
    /// keeps its place and staged bytes until it closes. Nothing changes if the window is gone
    /// (refunded, bytes included) or already `done` (a `complete` holds it: when its publish
    /// fails on the deleted row, it gives the claim back, and the closing window's refund returns
    /// the bytes).
    pub async fn release_pending(
        &self,
        user: &UserId,
        record_id: &RecordId,
        size: u64,
    ) -> Result<(), StorageError> {
        let result = self
            .update(user)
            .expression_attribute_names("#entry", entry_name(record_id))
            .expression_attribute_names("#done", DONE)
            .expression_attribute_names("#bytes", BYTES)
            .update_expression("SET #entry.#done = :true ADD #bytes :bytes")
            .condition_expression("attribute_exists(#entry) AND attribute_not_exists(#entry.#done)")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":bytes", n(-(size as i64)))
            .send()
            .await;
        super::conditional(result, UPDATE)?;
        Ok(())
    }
}

/// A charge of one new item.
struct Charge {
    /// The counter the item counts against, and its limit.
    counter: &'static str,
    limit: Exceeded,
    size: u64,
    /// For an upload window, its entry (name, value): set in the same write, and its bytes count
    /// as staged too.
    window: Option<(String, AttributeValue)>,
}
