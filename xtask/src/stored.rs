//! What a stage's tables and bucket hold, read whole: every record row, every user's usage row,
//! every object. Read by `bench --load`'s audit and by `reconcile`. Scans are consistent reads,
//! in parallel segments; the bucket is listed page by page.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;

use app::schema::{record, user};

/// Parallel segments of each table scan.
const SEGMENTS: i32 = 4;

pub type Item = HashMap<String, AttributeValue>;

/// One record row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub user_id: String,
    pub object_key: String,
    pub size: u64,
    /// Listed (it has `created_at`); otherwise a large upload still pending.
    pub published: bool,
}

/// One object of the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub size: u64,
    /// Seconds since the epoch.
    pub last_modified: i64,
}

/// The four counters of a usage row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    pub published: i64,
    pub bytes: i64,
    pub pending: i64,
    pub staged: i64,
}

/// One upload window of a usage row (`p_<record id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub name: String,
    pub size: i64,
    /// Epoch seconds.
    pub expires: i64,
    pub key: Option<String>,
    pub done: bool,
}

pub struct Stored {
    pub rows: Vec<Row>,
    /// By key.
    pub objects: BTreeMap<String, Object>,
    /// Each user's usage row, by user id.
    pub usage: BTreeMap<String, Item>,
}

fn attr(item: &Item, name: &str) -> String {
    item.get(name).and_then(|v| v.as_s().or_else(|_| v.as_n()).ok()).cloned().unwrap_or_default()
}

fn number(item: &Item, name: &str) -> i64 {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Every item of `table` (consistent reads, four segments at once); `seen` counts them.
pub async fn scan(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    seen: &(dyn Fn(u64) + Sync),
) -> anyhow::Result<Vec<Item>> {
    let segments = (0..SEGMENTS).map(|segment| async move {
        let mut items = Vec::new();
        let mut pages = dynamodb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .segment(segment)
            .total_segments(SEGMENTS)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.with_context(|| format!("dynamodb:Scan of {table} failed"))?;
            seen(page.items().len() as u64);
            items.extend(page.items.unwrap_or_default());
        }
        anyhow::Ok(items)
    });
    let mut all = Vec::new();
    for items in futures::future::join_all(segments).await {
        all.extend(items?);
    }
    Ok(all)
}

impl Stored {
    /// Read the record table, the usage rows of the user table and the bucket's objects, at once.
    pub async fn read(
        dynamodb: &aws_sdk_dynamodb::Client,
        s3: &aws_sdk_s3::Client,
        user_table: &str,
        record_table: &str,
        bucket: &str,
        seen: &(dyn Fn(u64) + Sync),
    ) -> anyhow::Result<Stored> {
        let rows = async {
            let items = scan(dynamodb, record_table, seen).await?;
            Ok::<_, anyhow::Error>(
                items
                    .iter()
                    .map(|item| Row {
                        id: attr(item, record::ID),
                        user_id: attr(item, record::USER_ID),
                        object_key: attr(item, record::OBJECT_KEY),
                        size: number(item, record::SIZE).max(0) as u64,
                        published: item.contains_key(record::CREATED_AT),
                    })
                    .collect::<Vec<_>>(),
            )
        };
        let usage = async {
            let items = scan(dynamodb, user_table, seen).await?;
            Ok::<_, anyhow::Error>(
                items
                    .into_iter()
                    .filter_map(|item| {
                        let id = attr(&item, user::ID);
                        id.strip_prefix(app::schema::user::USAGE_PREFIX).map(|u| (u.to_owned(), item.clone()))
                    })
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        let objects = async {
            let mut objects = BTreeMap::new();
            let mut pages = s3.list_objects_v2().bucket(bucket).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.with_context(|| format!("s3:ListBucket of {bucket} failed"))?;
                seen(page.contents().len() as u64);
                for object in page.contents() {
                    objects.insert(
                        object.key().unwrap_or_default().to_owned(),
                        Object {
                            size: object.size().unwrap_or(0).max(0) as u64,
                            last_modified: object.last_modified().map_or(0, |t| t.secs()),
                        },
                    );
                }
            }
            Ok::<_, anyhow::Error>(objects)
        };
        let (rows, usage, objects) = tokio::try_join!(rows, usage, objects)?;
        Ok(Stored { rows, objects, usage })
    }

    /// The counters of `user`'s usage row (0 where absent).
    pub fn counters(&self, user: &str) -> Counters {
        self.usage.get(user).map(counters_of).unwrap_or_default()
    }

    /// What `user`'s counters must be: `published` their published rows; `bytes` those rows'
    /// sizes and the sizes of the upload windows not yet completed or deleted (a pending upload
    /// is charged from its start until its completion moves the charge to its row, or its delete
    /// or its window's refund gives it back); `pending` and `staged` their open windows.
    pub fn expected(&self, user: &str) -> Counters {
        let published = self.rows.iter().filter(|r| r.user_id == user && r.published);
        let (count, bytes) = published.fold((0, 0), |(n, b), r| (n + 1, b + r.size as i64));
        let windows = self.usage.get(user).map(windows_of).unwrap_or_default();
        Counters {
            published: count,
            bytes: bytes + windows.iter().filter(|w| !w.done).map(|w| w.size).sum::<i64>(),
            pending: windows.len() as i64,
            staged: windows.iter().map(|w| w.size).sum(),
        }
    }

    /// Every user with rows or a usage row.
    pub fn users(&self) -> std::collections::BTreeSet<String> {
        let mut users: std::collections::BTreeSet<String> = self.usage.keys().cloned().collect();
        users.extend(self.rows.iter().map(|r| r.user_id.clone()));
        users
    }

    /// Users whose counters differ from what their rows and windows add up to.
    pub fn miscounted_users(&self) -> usize {
        self.users().iter().filter(|u| self.counters(u) != self.expected(u)).count()
    }

    /// Bytes in staging beyond what each user's open upload windows charge, summed over users.
    pub fn uncharged_staged_bytes(&self) -> u64 {
        let mut staged: BTreeMap<&str, u64> = BTreeMap::new();
        for (key, object) in &self.objects {
            let Some(path) = key.strip_prefix(app::schema::STAGING_PREFIX) else { continue };
            // staging/recordings/<user id>/<record id>
            let user = path.split('/').nth(1).unwrap_or_default();
            *staged.entry(user).or_default() += object.size;
        }
        staged
            .into_iter()
            .map(|(user, bytes)| bytes.saturating_sub(self.counters(user).staged.max(0) as u64))
            .sum()
    }
}

/// The counters of a usage row.
pub fn counters_of(usage: &Item) -> Counters {
    Counters {
        published: number(usage, "published"),
        bytes: number(usage, "bytes"),
        pending: number(usage, "pending"),
        staged: number(usage, "staged"),
    }
}

/// The upload windows of a usage row.
pub fn windows_of(usage: &Item) -> Vec<Window> {
    usage
        .iter()
        .filter(|(name, _)| name.starts_with("p_"))
        .filter_map(|(name, value)| {
            let entry = value.as_m().ok()?;
            Some(Window {
                name: name.clone(),
                size: number(entry, "size"),
                expires: entry.get("expires")?.as_n().ok()?.parse().ok()?,
                key: entry.get("key").and_then(|k| k.as_s().ok()).cloned(),
                done: entry.contains_key("done"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: i64) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }

    #[test]
    fn expected_counters_come_from_rows_and_open_windows() {
        let row = |id: &str, size: u64, published: bool| Row {
            id: id.into(),
            user_id: "u".into(),
            object_key: format!("recordings/u/{id}"),
            size,
            published,
        };
        let window =
            AttributeValue::M(HashMap::from([("size".to_owned(), n(7)), ("expires".to_owned(), n(9))]));
        let usage = HashMap::from([
            ("published".to_owned(), n(5)),
            ("bytes".to_owned(), n(100)),
            ("p_1".to_owned(), window),
        ]);
        let stored = Stored {
            rows: vec![row("a", 10, true), row("b", 7, false)],
            objects: BTreeMap::new(),
            usage: BTreeMap::from([("u".to_owned(), usage)]),
        };
        // The pending row's bytes are its window's: counted once.
        assert_eq!(stored.expected("u"), Counters { published: 1, bytes: 17, pending: 1, staged: 7 });
        assert_eq!(stored.counters("u"), Counters { published: 5, bytes: 100, pending: 0, staged: 0 });
        assert_eq!(stored.miscounted_users(), 1);
    }
}
