//! `cargo xtask reconcile --stage S [--dry-run] [--json]`: find and repair what a failure left
//! behind in a stage's data, safely while the service serves traffic.
//!
//! It reads everything twice: once, then again after `--settle` (longer than any request of the
//! service may take), and acts only on what both readings agree on, so a request in flight (a
//! charge whose row is not written yet, an object whose row is coming) is never taken for debris.
//! Every repair is a conditional write (or a delete of an object no row or window names, older
//! than `--grace`), so a concurrent request wins over a repair, and a second run writes nothing.
//! - objects under `recordings/` or `staging/` that no row and no open upload window names:
//!   deleted (a recording whose delete failed, a staged upload left after its window);
//! - closed upload windows still charged: refunded as the service refunds them (staged object
//!   first, then its place and bytes);
//! - usage counters that differ from the rows and windows: set, only while still as read;
//! - published rows whose object is missing: reported; deleted (and their charge given back) only
//!   with `--delete-dangling-rows`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::aws::Aws;
use crate::catalogue::Task;
use crate::flags::Reconcile;
use crate::names::Names;
use crate::stored::{windows_of, Counters, Stored};

/// At most this many repairs run at once.
const PARALLEL: usize = 8;

/// One thing found, and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Finding {
    /// An object no row and no open window names, older than the grace time.
    OrphanObject { key: String, bytes: u64 },
    /// A user's upload windows that have closed and are still charged.
    ClosedWindows { user: String, windows: usize },
    /// A user's counters that differ from their rows and windows.
    Miscounted { user: String, counters: Counters, expected: Counters },
    /// A published row whose object is missing.
    DanglingRow { user: String, id: String, object_key: String, bytes: u64 },
}

impl Finding {
    /// When its repair runs: objects, then windows and dangling rows, whose repairs change the
    /// counters, then the counters.
    fn phase(&self) -> u8 {
        match self {
            Finding::OrphanObject { .. } => 0,
            Finding::ClosedWindows { .. } => 1,
            Finding::DanglingRow { .. } => 2,
            Finding::Miscounted { .. } => 3,
        }
    }
}

/// A dangling row's outcome without `--delete-dangling-rows`.
const REPORTED: &str = "reported (pass --delete-dangling-rows to remove it)";

#[derive(Debug, Serialize)]
pub struct Item {
    #[serde(flatten)]
    pub finding: Finding,
    /// `repaired`, `would repair` (dry run), `reported`, or `skipped: <why>`.
    pub outcome: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub stage: String,
    pub dry_run: bool,
    pub user_table: String,
    pub record_table: String,
    pub bucket: String,
    pub rows: usize,
    pub objects: usize,
    pub users: usize,
    pub found: usize,
    pub repaired: usize,
    pub writes: usize,
    pub seconds: f64,
    pub items: Vec<Item>,
}

/// Everything `stored` says is debris, `now` being epoch seconds.
pub fn findings(stored: &Stored, now: i64, grace: Duration) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut named: BTreeSet<&str> = stored.rows.iter().map(|r| r.object_key.as_str()).collect();
    let windows: BTreeMap<&String, Vec<crate::stored::Window>> =
        stored.usage.iter().map(|(user, usage)| (user, windows_of(usage))).collect();
    for window in windows.values().flatten() {
        if let Some(key) = &window.key {
            named.insert(key);
        }
    }
    let ours = |key: &str| {
        key.starts_with(app::schema::RECORDINGS_PREFIX)
            || key
                .strip_prefix(app::schema::STAGING_PREFIX)
                .is_some_and(|k| k.starts_with(app::schema::RECORDINGS_PREFIX))
    };
    for (key, object) in &stored.objects {
        if ours(key) && !named.contains(key.as_str()) && object.last_modified < now - grace.as_secs() as i64 {
            found.push(Finding::OrphanObject { key: key.clone(), bytes: object.size });
        }
    }
    for (user, windows) in &windows {
        let closed = windows.iter().filter(|w| w.expires < now).count();
        if closed > 0 {
            found.push(Finding::ClosedWindows { user: (*user).clone(), windows: closed });
        }
    }
    for row in stored.rows.iter().filter(|r| r.published && !stored.objects.contains_key(&r.object_key)) {
        found.push(Finding::DanglingRow {
            user: row.user_id.clone(),
            id: row.id.clone(),
            object_key: row.object_key.clone(),
            bytes: row.size,
        });
    }
    for user in stored.users() {
        let (counters, expected) = (stored.counters(&user), stored.expected(&user));
        if counters != expected {
            found.push(Finding::Miscounted { user, counters, expected });
        }
    }
    found
}

/// The stores the repairs go through: the service's own code for the usage row and the rows.
struct Stores {
    records: app::storage::RecordStore,
    quotas: app::storage::QuotaStore,
    objects: app::storage::ObjectStore,
}

impl Stores {
    fn new(target: &Target) -> Stores {
        let dynamodb = target.dynamodb.clone();
        let objects =
            app::storage::ObjectStore::new(target.s3.clone(), target.bucket.clone(), target.owner.clone());
        // Refunds and corrections check no limit: any will do.
        let limits = app::storage::Limits { pending_uploads: 0, recordings: 0, bytes: 0 };
        Stores {
            records: app::storage::RecordStore::new(dynamodb.clone(), target.record_table.clone()),
            quotas: app::storage::QuotaStore::new(
                dynamodb,
                target.user_table.clone(),
                limits,
                objects.clone(),
            ),
            objects,
        }
    }
}

/// A stage's data: where reconcile reads and repairs.
pub struct Target {
    pub stage: String,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub user_table: String,
    pub record_table: String,
    pub bucket: String,
    /// The account the bucket must belong to (S3's expected-bucket-owner check), on AWS.
    pub owner: Option<String>,
}

impl Target {
    fn of(aws: &Aws, names: &Names) -> Target {
        Target {
            stage: names.stage.clone(),
            dynamodb: aws.dynamodb(),
            s3: aws.s3(),
            user_table: names.user_table(),
            record_table: names.record_table(),
            bucket: names.bucket.clone(),
            owner: aws.endpoint.is_none().then(|| names.account.clone()),
        }
    }
}

/// How reconcile runs.
pub struct Options {
    pub dry_run: bool,
    pub delete_dangling_rows: bool,
    pub grace: Duration,
    pub settle: Duration,
}

fn user_id(user: &str) -> app::domain::UserId {
    app::domain::UserId::from_stored(user.to_owned())
}

/// Apply one finding's repair; `Ok(true)` when something was written.
async fn repair(
    stores: &Stores,
    finding: &Finding,
    delete_dangling: bool,
    corrected: &BTreeMap<String, (Counters, Counters)>,
) -> anyhow::Result<(String, usize)> {
    Ok(match finding {
        Finding::OrphanObject { key, .. } => {
            stores.objects.delete(key).await.with_context(|| format!("s3:DeleteObject of {key} failed"))?;
            ("repaired".into(), 1)
        }
        Finding::ClosedWindows { user, .. } => {
            let refunded = stores
                .quotas
                .refund_closed_windows(&user_id(user))
                .await
                .with_context(|| format!("refunding {user}'s closed upload windows failed"))?;
            if refunded {
                ("repaired".into(), 1)
            } else {
                (
                    "skipped: changed meanwhile, or a staged object could not be removed (see the log)"
                        .into(),
                    0,
                )
            }
        }
        Finding::DanglingRow { user, id, object_key, .. } if delete_dangling => {
            let Some(record_id) = app::domain::RecordId::parse(id) else {
                return Ok(("skipped: its id is not a record id".into(), 0));
            };
            let owner = user_id(user);
            let deleted = stores
                .records
                .delete_published_at(&record_id, &owner, object_key)
                .await
                .with_context(|| format!("deleting the row {id} failed"))?;
            match deleted {
                Some(app::storage::StoredRecord::Published(r)) => {
                    stores
                        .quotas
                        .release_published(&owner, r.size)
                        .await
                        .with_context(|| format!("giving back {user}'s charge for {id} failed"))?;
                    ("repaired".into(), 2)
                }
                _ => ("skipped: changed meanwhile".into(), 0),
            }
        }
        Finding::DanglingRow { .. } => (REPORTED.into(), 0),
        Finding::Miscounted { user, .. } => {
            let Some(&(from, to)) = corrected.get(user) else {
                return Ok(("skipped: changed meanwhile".into(), 0));
            };
            let set = stores
                .quotas
                .correct_counters(&user_id(user), array(from), array(to))
                .await
                .with_context(|| format!("correcting {user}'s counters failed"))?;
            if set {
                ("repaired".into(), 1)
            } else {
                ("skipped: changed meanwhile".into(), 0)
            }
        }
    })
}

fn array(c: Counters) -> [i64; 4] {
    [c.published, c.bytes, c.pending, c.staged]
}

impl Reconcile {
    pub async fn run(self) -> anyhow::Result<()> {
        crate::names::validate_stage(&self.target.stage)?;
        let aws = self.aws.load(Task::Reconcile).await?;
        let account = crate::aws::account(&aws).await?;
        let (names, _) = crate::stage::existing(&aws, &self.target, &account).await?;
        let options = Options {
            dry_run: self.dry_run,
            delete_dangling_rows: self.delete_dangling_rows,
            grace: self.grace,
            settle: self.settle,
        };
        let report = reconcile(&Target::of(&aws, &names), &options).await?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print(&report);
        }
        Ok(())
    }
}

/// Find the debris in `target`'s data, and repair what two readings `options.settle` apart agree
/// on (everything of it, with `options.dry_run`, only reported).
pub async fn reconcile(target: &Target, options: &Options) -> anyhow::Result<Report> {
    let started = std::time::Instant::now();
    let read = |round: &'static str| async move {
        let bar = crate::progress::Counter::new(&format!("{round}: reading rows, usage and objects"));
        let seen = AtomicU64::new(0);
        let stored = Stored::read(
            &target.dynamodb,
            &target.s3,
            &target.user_table,
            &target.record_table,
            &target.bucket,
            &|n| bar.set(seen.fetch_add(n, Ordering::Relaxed) + n),
        )
        .await;
        bar.finish();
        stored
    };
    let now = || time::OffsetDateTime::now_utc().unix_timestamp();
    let first = read("first reading").await?;
    let found = findings(&first, now(), options.grace);
    let (mut confirmed, mut corrected) = (Vec::new(), BTreeMap::new());
    let mut last = first;
    if !found.is_empty() {
        let spinner = crate::progress::Spinner::new(&format!(
            "{} finding(s); waiting {} s for requests in flight to finish (--settle)",
            found.len(),
            options.settle.as_secs()
        ));
        spinner.tick();
        tokio::time::sleep(options.settle).await;
        spinner.finish();
        let second = read("second reading").await?;
        let first = &last;
        // Only what both readings agree on: a request in flight changes one of them.
        let again = findings(&second, now(), options.grace);
        let now = now();
        for finding in found {
            let same = match &finding {
                // A user's counters are corrected only if neither their usage row nor their
                // rows changed between the readings: then no request of theirs was in flight
                // at the second one (the wait is longer than any request), and a request
                // after it changes the counters the correction is conditional on.
                Finding::Miscounted { user, .. } => {
                    let rows = |s: &Stored| -> BTreeSet<(String, bool)> {
                        s.rows
                            .iter()
                            .filter(|r| &r.user_id == user)
                            .map(|r| (r.id.clone(), r.published))
                            .collect()
                    };
                    first.usage.get(user) == second.usage.get(user) && rows(first) == rows(&second)
                }
                other => again.contains(other),
            };
            if !same {
                continue;
            }
            if let Finding::Miscounted { user, counters, expected } = &finding {
                // The repairs made before the correction (refunds of closed windows, with
                // --delete-dangling-rows the removal of rows without objects) change the
                // counters and what they must be alike: both are taken off here, and the
                // correction's condition fails if one of them was not made.
                let mut taken = Counters::default();
                let usage = second.usage.get(user);
                for w in usage.map(windows_of).unwrap_or_default().iter().filter(|w| w.expires < now) {
                    taken.pending += 1;
                    taken.staged += w.size;
                    if !w.done {
                        taken.bytes += w.size;
                    }
                }
                if options.delete_dangling_rows {
                    for f in &again {
                        if let Finding::DanglingRow { user: u, bytes, .. } = f {
                            if u == user {
                                taken.published += 1;
                                taken.bytes += *bytes as i64;
                            }
                        }
                    }
                }
                let less = |c: &Counters| Counters {
                    published: c.published - taken.published,
                    bytes: c.bytes - taken.bytes,
                    pending: c.pending - taken.pending,
                    staged: c.staged - taken.staged,
                };
                corrected.insert(user.clone(), (less(counters), less(expected)));
            }
            confirmed.push(finding);
        }
        last = second;
    }
    let stores = Stores::new(target);
    let mut items = Vec::new();
    let mut writes = 0;
    // One kind after the other, each kind's repairs at once: windows and dangling rows before the
    // counters, as they change the counters the correction then sets.
    for phase in 0..4 {
        let batch: Vec<&Finding> = confirmed.iter().filter(|f| f.phase() == phase).collect();
        let results: Vec<anyhow::Result<(String, usize)>> = if options.dry_run {
            batch
                .iter()
                .map(|f| {
                    Ok((
                        match f {
                            Finding::DanglingRow { .. } if !options.delete_dangling_rows => {
                                REPORTED.to_owned()
                            }
                            _ => "would repair".to_owned(),
                        },
                        0,
                    ))
                })
                .collect()
        } else {
            use futures::StreamExt;
            futures::stream::iter(
                batch.iter().map(|f| repair(&stores, f, options.delete_dangling_rows, &corrected)),
            )
            .buffered(PARALLEL)
            .collect()
            .await
        };
        for (finding, result) in batch.into_iter().zip(results) {
            let (outcome, wrote) = result?;
            writes += wrote;
            items.push(Item { finding: finding.clone(), outcome });
        }
    }
    let repaired = items.iter().filter(|i| i.outcome == "repaired").count();
    Ok(Report {
        stage: target.stage.clone(),
        dry_run: options.dry_run,
        user_table: target.user_table.clone(),
        record_table: target.record_table.clone(),
        bucket: target.bucket.clone(),
        rows: last.rows.len(),
        objects: last.objects.len(),
        users: last.users().len(),
        found: items.len(),
        repaired,
        writes,
        seconds: started.elapsed().as_secs_f64(),
        items,
    })
}

fn print(r: &Report) {
    println!(
        "stage {}: {} rows, {} objects, {} users read from {}, {} and {}",
        r.stage, r.rows, r.objects, r.users, r.record_table, r.user_table, r.bucket
    );
    for item in &r.items {
        let what = match &item.finding {
            Finding::OrphanObject { key, bytes } => format!("object {key} ({bytes} bytes) has no row"),
            Finding::ClosedWindows { user, windows } => {
                format!("user {user}: {windows} closed upload window(s) still charged")
            }
            Finding::Miscounted { user, counters, expected } => format!(
                "user {user}: counters published {} bytes {} pending {} staged {}, rows say {} {} {} {}",
                counters.published,
                counters.bytes,
                counters.pending,
                counters.staged,
                expected.published,
                expected.bytes,
                expected.pending,
                expected.staged
            ),
            Finding::DanglingRow { user, id, object_key, .. } => {
                format!("user {user}: recording {id} has no object ({object_key})")
            }
        };
        println!("  {what}: {}", item.outcome);
    }
    let verb = if r.dry_run { "would make" } else { "made" };
    println!(
        "{} found, {} repaired; {verb} {} write(s) in {:.1} s",
        r.found, r.repaired, r.writes, r.seconds
    );
}
