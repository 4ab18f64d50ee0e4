//! `record_record`: one row per recording, keyed by (record id, owner), listed per owner through
//! the `user_id-created_at-index` GSI. Every read and delete names the owner in the key, so a
//! user can never reach another user's record.

use aws_sdk_dynamodb::types::ReturnValue;
use aws_sdk_dynamodb::Client;

use super::{n, number_attr, s, string_attr, take_string, Item, StorageError};
use crate::domain::{Cursor, FileName, Record, RecordId, UserId};
use crate::schema::record;

#[derive(Clone, Debug)]
/// The record table: one row per recording, listed per owner through the index.
pub struct RecordStore {
    client: Client,
    table: String,
}

/// A row as stored: a published record, or a large upload still waiting for its object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredRecord {
    /// A published recording.
    Published(Record),
    /// `created_at` holds the time the upload was requested.
    Pending(Record),
}

/// What the log says of an upload whose row may or may not have been written (in an
/// `orphan{key=…}` span): its object stays. The bench reads it to tell such a record, listed
/// though its upload answered 503, from a lost one.
pub const UPLOAD_ROW_IN_DOUBT: &str = "the row of an upload may or may not be written: its object stays";

/// A row's write (or delete) that failed.
#[derive(Debug)]
pub struct WriteFailed {
    /// Why it failed.
    pub error: StorageError,
    /// Whether it may have been applied all the same (an attempt went unanswered, or the row
    /// could not be read back): then nothing it touches may be undone.
    pub maybe_written: bool,
}

/// What [`RecordStore::delete_for_user`] did.
#[derive(Debug)]
pub enum Deleted {
    /// It deleted this row.
    Row(StoredRecord),
    /// The owner has no such record; nothing changed.
    Absent,
    /// The row is gone, but what it held is not known: an attempt went unanswered and the SDK's
    /// retry found the row deleted already, most likely by that attempt (see [`super::Doubt`]).
    /// The row was there when the delete began: its absence is a clear answer, not a doubt.
    Unanswered,
}

/// A record as its owner's list shows it. The list reads it from the index with a projection:
/// neither the owner (the Query's key, known) nor the object key (never shown) is read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListedRecord {
    /// Its id.
    pub id: RecordId,
    /// Its owner: the caller.
    pub user_id: UserId,
    /// The name it was uploaded as.
    pub file_name: FileName,
    /// RFC 3339 UTC with milliseconds.
    pub created_at: String,
    /// Its size in bytes.
    pub size: u64,
    /// The audio type it is served as.
    pub content_type: String,
}

/// One page of a user's records, newest first.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// The records, newest first.
    pub records: Vec<ListedRecord>,
    /// Where the next page starts, if there may be one.
    pub next: Option<Cursor>,
    /// Items DynamoDB read to answer: equal to the records returned, whatever the table size.
    pub scanned_count: i32,
}

impl RecordStore {
    /// The store of `table`.
    pub fn new(client: Client, table: String) -> Self {
        RecordStore { client, table }
    }

    /// Store a new record. The id is fresh, and the condition makes sure no row is overwritten.
    pub async fn insert(&self, r: &Record) -> Result<(), WriteFailed> {
        self.put_new(r, to_item(r)).await
    }

    /// Store a large upload's row before its object exists. It has no `created_at`, so the
    /// index (and every list) leaves it out until `publish`; TTL removes it after `expires_at`
    /// (epoch seconds) if it is never published.
    pub async fn insert_pending(&self, r: &Record, expires_at: i64) -> Result<(), WriteFailed> {
        let mut item = to_item(r);
        if let Some(requested_at) = item.remove(record::CREATED_AT) {
            item.insert(record::REQUESTED_AT.to_owned(), requested_at);
        }
        item.insert(record::EXPIRES_AT.to_owned(), super::n(expires_at));
        self.put_new(r, item).await
    }

    /// Write `item`, the row of the new record `r`, unless a row with its id exists.
    ///
    /// A write whose answer was lost (a reset, a timeout after DynamoDB applied it) is sent again
    /// by the SDK, and then its condition fails on the row it wrote itself. So a failed condition
    /// is read back: a row identical to `item` is this write having succeeded, not a clash; the
    /// caller must not undo the upload for it. A failure after an unanswered attempt, or whose
    /// read-back failed, may have left the row written: it says so.
    async fn put_new(&self, r: &Record, item: Item) -> Result<(), WriteFailed> {
        let doubt = super::Doubt::default();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item.clone()))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", record::ID)
            .customize()
            .interceptor(doubt.clone())
            .send()
            .await;
        let failed = |error| WriteFailed { error, maybe_written: doubt.raised() };
        if super::conditional(result, "PutItem on the record table").map_err(failed)?.is_some() {
            return Ok(());
        }
        match self.row(&r.id, &r.user_id).await {
            Ok(Some(existing)) if existing == item => Ok(()),
            Ok(_) => Err(failed(StorageError::Corrupt(format!("record id {} already exists", r.id)))),
            Err(error) => Err(WriteFailed { error, maybe_written: true }),
        }
    }

    /// Publish a pending upload at `created_at`; `false` if it was not pending (any more).
    ///
    /// As with [`Self::insert`], a failed condition is read back: the row published at exactly
    /// `created_at` (this request's own time) is this write, retried after its answer was lost.
    pub async fn publish(&self, r: &Record, created_at: &str) -> Result<bool, StorageError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(record::ID, s(r.id.to_string()))
            .key(record::USER_ID, s(r.user_id.as_str()))
            .update_expression("SET #created = :created REMOVE #requested, #expires")
            .condition_expression("attribute_exists(#id) AND attribute_not_exists(#created)")
            .expression_attribute_names("#id", record::ID)
            .expression_attribute_names("#created", record::CREATED_AT)
            .expression_attribute_names("#requested", record::REQUESTED_AT)
            .expression_attribute_names("#expires", record::EXPIRES_AT)
            .expression_attribute_values(":created", s(created_at))
            .send()
            .await;
        if super::conditional(result, "UpdateItem on the record table")?.is_some() {
            return Ok(true);
        }
        Ok(matches!(
            self.find_for_user(&r.id, &r.user_id).await?,
            Some(StoredRecord::Published(now)) if now.created_at == created_at
        ))
    }

    /// The row `id` if `owner` owns it, published or pending.
    pub async fn find_for_user(
        &self,
        id: &RecordId,
        owner: &UserId,
    ) -> Result<Option<StoredRecord>, StorageError> {
        self.row(id, owner).await?.map(|item| stored_from_item(&item)).transpose()
    }

    /// The row (`id`, `owner`) as stored, strongly consistent.
    async fn row(&self, id: &RecordId, owner: &UserId) -> Result<Option<Item>, StorageError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(record::ID, s(id.to_string()))
            .key(record::USER_ID, s(owner.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StorageError::aws("GetItem on the record table", e))?;
        Ok(output.item)
    }

    /// One read of a row that never exists (record ids are UUIDs): proves the function's role may
    /// read the table, for `GET /health/ready`.
    pub async fn probe(&self) -> Result<(), StorageError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key(record::ID, s("health-ready"))
            .key(record::USER_ID, s("health-ready"))
            .send()
            .await
            .map_err(|e| StorageError::aws("GetItem on the record table", e))?;
        Ok(())
    }

    /// The published record `id` if `owner` owns it.
    pub async fn get_for_user(&self, id: &RecordId, owner: &UserId) -> Result<Option<Record>, StorageError> {
        Ok(match self.find_for_user(id, owner).await? {
            Some(StoredRecord::Published(r)) => Some(r),
            _ => None,
        })
    }

    /// Delete the record `id` if `owner` owns it. A failure says whether an unanswered attempt
    /// may have deleted the row all the same (`maybe_written`).
    pub async fn delete_for_user(&self, id: &RecordId, owner: &UserId) -> Result<Deleted, WriteFailed> {
        let doubt = super::Doubt::default();
        let request = self
            .delete_of(id, owner)
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", record::ID);
        let result = request.customize().interceptor(doubt.clone()).send().await;
        let deleted =
            Self::deleted(result).map_err(|error| WriteFailed { error, maybe_written: doubt.raised() })?;
        Ok(match deleted {
            Some(row) => Deleted::Row(row),
            None if doubt.raised() => Deleted::Unanswered,
            None => Deleted::Absent,
        })
    }

    /// Delete the published record `id` of `owner` only if it still points at `object_key`:
    /// the operator's removal of a row whose object is gone. What was deleted, if anything.
    pub async fn delete_published_at(
        &self,
        id: &RecordId,
        owner: &UserId,
        object_key: &str,
    ) -> Result<Option<StoredRecord>, StorageError> {
        let request = self
            .delete_of(id, owner)
            .condition_expression("attribute_exists(#created) AND #key = :key")
            .expression_attribute_names("#created", record::CREATED_AT)
            .expression_attribute_names("#key", record::OBJECT_KEY)
            .expression_attribute_values(":key", s(object_key));
        Self::deleted(request.send().await)
    }

    /// A DeleteItem of the row (`id`, `owner`) that returns what it deleted.
    fn delete_of(
        &self,
        id: &RecordId,
        owner: &UserId,
    ) -> aws_sdk_dynamodb::operation::delete_item::builders::DeleteItemFluentBuilder {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(record::ID, s(id.to_string()))
            .key(record::USER_ID, s(owner.as_str()))
            .return_values(ReturnValue::AllOld)
    }

    /// The row a conditional delete removed; `None` when its condition failed.
    fn deleted(
        result: Result<
            aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput,
            aws_sdk_dynamodb::error::SdkError<
                aws_sdk_dynamodb::operation::delete_item::DeleteItemError,
                aws_sdk_dynamodb::config::http::HttpResponse,
            >,
        >,
    ) -> Result<Option<StoredRecord>, StorageError> {
        super::conditional(result, "DeleteItem on the record table")?
            .and_then(|output| output.attributes)
            .map(|item| stored_from_item(&item))
            .transpose()
    }

    /// One page of `owner`'s records, newest first: a Query on the owner's partition of the
    /// index, so the cost depends on the page size, never on the table size.
    pub async fn list_for_user(
        &self,
        owner: &UserId,
        limit: i32,
        after: Option<&Cursor>,
    ) -> Result<ListPage, StorageError> {
        let start_key = after.map(|c| {
            Item::from([
                (record::ID.to_owned(), s(&c.record_id)),
                (record::USER_ID.to_owned(), s(owner.as_str())),
                (record::CREATED_AT.to_owned(), s(&c.created_at)),
            ])
        });
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(record::BY_USER_INDEX)
            .key_condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", record::USER_ID)
            .expression_attribute_values(":owner", s(owner.as_str()))
            // What a `ListedRecord` shows, nothing more.
            .projection_expression("#id, #file, #created, #size, #type")
            .expression_attribute_names("#id", record::ID)
            .expression_attribute_names("#file", record::FILE_NAME)
            .expression_attribute_names("#created", record::CREATED_AT)
            .expression_attribute_names("#size", record::SIZE)
            .expression_attribute_names("#type", record::CONTENT_TYPE)
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .map_err(|e| StorageError::aws("Query on the record index", e))?;
        let records = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| listed_from_item(item, owner))
            .collect::<Result<Vec<_>, _>>()?;
        let next = match output.last_evaluated_key {
            Some(key) => Some(Cursor {
                created_at: string_attr(&key, record::CREATED_AT)?,
                record_id: string_attr(&key, record::ID)?,
            }),
            None => None,
        };
        Ok(ListPage { records, next, scanned_count: output.scanned_count })
    }
}

fn to_item(r: &Record) -> Item {
    Item::from([
        (record::ID.to_owned(), s(r.id.to_string())),
        (record::USER_ID.to_owned(), s(r.user_id.as_str())),
        (record::FILE_NAME.to_owned(), s(r.file_name.as_str())),
        (record::CREATED_AT.to_owned(), s(&r.created_at)),
        (record::SIZE.to_owned(), n(r.size)),
        (record::CONTENT_TYPE.to_owned(), s(&r.content_type)),
        (record::OBJECT_KEY.to_owned(), s(&r.object_key)),
    ])
}

/// A listed item, its strings moved out rather than copied (the index holds only published
/// rows: pending ones have no `created_at`).
fn listed_from_item(mut item: Item, owner: &UserId) -> Result<ListedRecord, StorageError> {
    Ok(ListedRecord {
        id: id_of(&take_string(&mut item, record::ID)?)?,
        user_id: owner.clone(),
        file_name: FileName::from_stored(take_string(&mut item, record::FILE_NAME)?),
        created_at: take_string(&mut item, record::CREATED_AT)?,
        size: size_of(&item)?,
        content_type: take_string(&mut item, record::CONTENT_TYPE)?,
    })
}

/// A stored record id: one that is not a UUID was not written by the service.
fn id_of(id: &str) -> Result<RecordId, StorageError> {
    RecordId::parse(id).ok_or_else(|| StorageError::Corrupt(format!("record id {id:?} is not a UUID")))
}

/// A stored record's size, never negative.
fn size_of(item: &Item) -> Result<u64, StorageError> {
    let size = number_attr(item, record::SIZE)?;
    u64::try_from(size).map_err(|_| StorageError::Corrupt(format!("record size is negative: {size}")))
}

fn stored_from_item(item: &Item) -> Result<StoredRecord, StorageError> {
    let (created_at, published) = match item.get(record::CREATED_AT) {
        Some(_) => (string_attr(item, record::CREATED_AT)?, true),
        None => (string_attr(item, record::REQUESTED_AT)?, false),
    };
    let r = Record {
        id: id_of(&string_attr(item, record::ID)?)?,
        user_id: UserId::from_stored(string_attr(item, record::USER_ID)?),
        file_name: FileName::from_stored(string_attr(item, record::FILE_NAME)?),
        created_at,
        size: size_of(item)?,
        content_type: string_attr(item, record::CONTENT_TYPE)?,
        object_key: string_attr(item, record::OBJECT_KEY)?,
    };
    Ok(if published { StoredRecord::Published(r) } else { StoredRecord::Pending(r) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_item(item: &Item) -> Result<Record, StorageError> {
        match stored_from_item(item)? {
            StoredRecord::Published(r) => Ok(r),
            StoredRecord::Pending(r) => {
                Err(StorageError::Corrupt(format!("record {} is pending, not listed", r.id)))
            }
        }
    }

    #[test]
    fn a_record_survives_the_trip_through_an_item() {
        let user = UserId::from_social("kakao", "42").unwrap();
        let file = crate::domain::FileName::parse("memo.m4a").unwrap();
        let r = Record::new(&user, &file, 12, "audio/mp4".into());
        assert_eq!(from_item(&to_item(&r)).unwrap(), r);
    }

    #[test]
    fn an_item_missing_an_attribute_is_reported_not_defaulted() {
        let user = UserId::from_social("kakao", "42").unwrap();
        let file = crate::domain::FileName::parse("memo.m4a").unwrap();
        let mut item = to_item(&Record::new(&user, &file, 12, "audio/mp4".into()));
        item.remove(record::OBJECT_KEY);
        assert!(from_item(&item).unwrap_err().to_string().contains("object_key"));
    }

    #[test]
    fn a_listed_item_shows_what_a_record_shows_to_its_owner() {
        let user = UserId::from_social("kakao", "42").unwrap();
        let file = crate::domain::FileName::parse("memo.m4a").unwrap();
        let r = Record::new(&user, &file, 12, "audio/mp4".into());
        let mut item = to_item(&r);
        item.remove(record::USER_ID);
        item.remove(record::OBJECT_KEY);

        let listed = listed_from_item(item, &user).unwrap();

        assert_eq!(serde_json::to_value(&listed).unwrap(), serde_json::to_value(&r).unwrap());
    }

    #[test]
    fn a_listed_item_missing_an_attribute_is_reported_not_defaulted() {
        let user = UserId::from_social("kakao", "42").unwrap();
        let file = crate::domain::FileName::parse("memo.m4a").unwrap();
        for name in [record::ID, record::FILE_NAME, record::CREATED_AT, record::SIZE, record::CONTENT_TYPE] {
            let mut item = to_item(&Record::new(&user, &file, 12, "audio/mp4".into()));
            item.remove(name);
            let err = listed_from_item(item, &user).unwrap_err().to_string();
            assert!(err.contains(name), "{name}: {err}");
        }
    }
}
