//! `cargo xtask create-tables`: make the DynamoDB tables match `app::schema`, concurrently and
//! idempotently. Existing tables are compared, never replaced: a key mismatch stops with the
//! difference, a missing index or TTL setting is added.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use app::schema::{TableSpec, BILLING_MODE, TABLES};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndexUpdate,
    IndexStatus, KeySchemaElement, PointInTimeRecoverySpecification, TableDescription, TableStatus, Tag,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;
use serde::Serialize;

use crate::aws::{Aws, ExplainExt};
use crate::flags::CreateTables;
use crate::outcome::Outcome;

/// How to converge the tables.
#[derive(Debug, Clone)]
pub struct Options {
    pub prefix: String,
    pub stage: String,
    /// Point-in-time recovery and deletion protection.
    pub protect: bool,
    pub dry_run: bool,
    pub timeout: Duration,
}

/// What happened to one table, printed as text or JSON.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub name: String,
    /// `created`, `up to date`, `updated`, `would create` or `would update`: the outcome as
    /// create-tables reports it.
    pub action: &'static str,
    #[serde(skip)]
    pub outcome: Outcome,
    /// The changes made (or, with --dry-run, planned).
    pub changes: Vec<String>,
    pub status: String,
    pub key_schema: Vec<String>,
    pub indexes: Vec<String>,
}

impl CreateTables {
    pub async fn run(self) -> anyhow::Result<()> {
        app::schema::validate_prefix(&self.table_prefix).map_err(anyhow::Error::msg)?;
        let aws = self.aws.load(crate::catalogue::Task::CreateTables).await?;
        let options = Options {
            prefix: self.table_prefix,
            stage: self.stage,
            protect: self.protect,
            dry_run: self.dry_run,
            timeout: self.timeout,
        };
        let results = ensure_tables(&aws, &options).await;
        let mut failed = Vec::new();
        let mut reports = Vec::new();
        for result in results {
            match result {
                Ok(report) => reports.push(report),
                Err(err) => failed.push(err),
            }
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&reports)?);
        } else {
            for r in &reports {
                let changes =
                    if r.changes.is_empty() { String::new() } else { format!(" ({})", r.changes.join(", ")) };
                println!("{:<32} {}{changes}", r.name, r.action);
            }
        }
        match failed.len() {
            0 => Ok(()),
            1 => Err(failed.remove(0)),
            _ => bail!(failed.iter().map(|e| format!("{e:#}")).collect::<Vec<_>>().join("\n")),
        }
    }
}

/// Converge every table of the schema at once; one result per table, in schema order.
pub async fn ensure_tables(aws: &Aws, options: &Options) -> Vec<anyhow::Result<TableReport>> {
    let client = aws.dynamodb();
    let progress = crate::progress::Spinner::new("waiting for tables to become ACTIVE");
    let tasks = TABLES.iter().map(|spec| ensure_table(&client, aws, spec, options, &progress));
    let results = futures::future::join_all(tasks).await;
    progress.finish();
    results
}

/// One change to an existing table.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    AddIndex(app::schema::Index),
    EnableTtl(&'static str),
    EnableDeletionProtection,
    EnablePointInTimeRecovery,
}

impl Change {
    fn describe(&self) -> String {
        match self {
            Change::AddIndex(i) => format!("add index {}", i.name),
            Change::EnableTtl(a) => format!("enable TTL on {a}"),
            Change::EnableDeletionProtection => "enable deletion protection".into(),
            Change::EnablePointInTimeRecovery => "enable point-in-time recovery".into(),
        }
    }
}

async fn ensure_table(
    client: &Client,
    aws: &Aws,
    spec: &TableSpec,
    options: &Options,
    progress: &crate::progress::Spinner,
) -> anyhow::Result<TableReport> {
    let name = spec.name(&options.prefix);
    let (table, created) = match describe(client, aws, &name).await? {
        Some(table) => (table, false),
        None if options.dry_run => {
            let mut changes = vec![format!("create table ({BILLING_MODE})")];
            changes.extend(post_create_changes(spec, options).iter().map(Change::describe));
            return Ok(TableReport {
                name,
                action: Outcome::Create.done(true),
                outcome: Outcome::Create,
                changes,
                status: "absent".into(),
                key_schema: render_keys(&spec.key_schema(), &spec.attribute_definitions()),
                indexes: spec.indexes.iter().map(|i| i.name.to_owned()).collect(),
            });
        }
        None => match create(client, aws, spec, &name, options).await? {
            // Someone else created it meanwhile: treat it like any existing table.
            None => (required_description(client, aws, &name).await?, false),
            Some(table) => (table, true),
        },
    };
    check_key_schema(spec, &table)?;
    let changes = if created {
        post_create_changes(spec, options)
    } else {
        changes_for_existing(client, aws, spec, &table, options).await?
    };
    let outcome = Outcome::of(created, !changes.is_empty());
    let mut table = table;
    if !options.dry_run {
        if created || !changes.is_empty() {
            table = wait_until_active(client, aws, &name, options.timeout, progress).await?;
        }
        for change in &changes {
            apply(client, aws, spec, &name, change).await?;
            if matches!(change, Change::AddIndex(_)) {
                table = wait_until_active(client, aws, &name, options.timeout, progress).await?;
            }
        }
    }
    Ok(TableReport {
        name,
        action: outcome.done(options.dry_run),
        outcome,
        // A fresh table's settings are part of "created", not changes to report.
        changes: if created { Vec::new() } else { changes.iter().map(Change::describe).collect() },
        status: table.table_status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        key_schema: render_keys(table.key_schema(), table.attribute_definitions()),
        indexes: table
            .global_secondary_indexes()
            .iter()
            .filter_map(|i| i.index_name().map(str::to_owned))
            .collect(),
    })
}

/// `None` when the table does not exist.
async fn describe(client: &Client, aws: &Aws, name: &str) -> anyhow::Result<Option<TableDescription>> {
    match client.describe_table().table_name(name).send().await {
        Ok(output) => Ok(output.table),
        Err(SdkError::ServiceError(e))
            if matches!(e.err(), DescribeTableError::ResourceNotFoundException(_)) =>
        {
            Ok(None)
        }
        Err(e) => Err(crate::aws::explain(e, "dynamodb:DescribeTable", name, aws)),
    }
}

async fn required_description(client: &Client, aws: &Aws, name: &str) -> anyhow::Result<TableDescription> {
    describe(client, aws, name)
        .await?
        .with_context(|| format!("table {name} disappeared while being set up: rerun"))
}

/// Create the table; `None` if it already exists (created concurrently by someone else).
async fn create(
    client: &Client,
    aws: &Aws,
    spec: &TableSpec,
    name: &str,
    options: &Options,
) -> anyhow::Result<Option<TableDescription>> {
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().expect("key and value are set");
    let indexes = spec.global_secondary_indexes();
    let result = client
        .create_table()
        .table_name(name)
        .set_key_schema(Some(spec.key_schema()))
        .set_attribute_definitions(Some(spec.attribute_definitions()))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .billing_mode(BillingMode::from(BILLING_MODE))
        .deletion_protection_enabled(options.protect)
        .tags(tag("project", "recording-server"))
        .tags(tag("stage", &options.stage))
        .send()
        .await;
    match result {
        Ok(output) => Ok(output.table_description),
        Err(SdkError::ServiceError(e)) if matches!(e.err(), CreateTableError::ResourceInUseException(_)) => {
            Ok(None)
        }
        Err(e) => Err(crate::aws::explain(e, "dynamodb:CreateTable", name, aws)),
    }
}

/// What a newly created table still needs: TTL (and PITR when protected) cannot be set at
/// creation. Deletion protection can, and was.
fn post_create_changes(spec: &TableSpec, options: &Options) -> Vec<Change> {
    let mut changes: Vec<Change> = spec.ttl_attribute.map(Change::EnableTtl).into_iter().collect();
    if options.protect {
        changes.push(Change::EnablePointInTimeRecovery);
    }
    changes
}

/// Compare an existing table with the schema: describe calls only.
async fn changes_for_existing(
    client: &Client,
    aws: &Aws,
    spec: &TableSpec,
    table: &TableDescription,
    options: &Options,
) -> anyhow::Result<Vec<Change>> {
    let name = spec.name(&options.prefix);
    let mut changes = Vec::new();
    for index in spec.indexes {
        let existing = table.global_secondary_indexes().iter().find(|i| i.index_name() == Some(index.name));
        match existing {
            None => changes.push(Change::AddIndex(*index)),
            Some(found) => {
                let expected = render_keys(&index.key_schema(), &spec.attribute_definitions());
                let actual = render_keys(found.key_schema(), table.attribute_definitions());
                if expected != actual {
                    bail!(drift_message(&name, &format!("index {} has key", index.name), &actual, &expected));
                }
            }
        }
    }
    if let Some(attribute) = spec.ttl_attribute {
        let ttl = client.describe_time_to_live().table_name(&name).send().await.explain(
            "dynamodb:DescribeTimeToLive",
            &name,
            aws,
        )?;
        let description = ttl.time_to_live_description;
        let status = description.as_ref().and_then(|d| d.time_to_live_status());
        let on = matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
        let current = description.as_ref().and_then(|d| d.attribute_name());
        match (on, current) {
            (true, Some(a)) if a != attribute => bail!(
                "table {name} has TTL on {a} but expected {attribute}: nothing was changed; disable TTL on the table (it allows one TTL attribute), then rerun"
            ),
            (true, _) => {}
            (false, _) => changes.push(Change::EnableTtl(attribute)),
        }
    }
    if options.protect {
        if table.deletion_protection_enabled() != Some(true) {
            changes.push(Change::EnableDeletionProtection);
        }
        let backups = client.describe_continuous_backups().table_name(&name).send().await.explain(
            "dynamodb:DescribeContinuousBackups",
            &name,
            aws,
        )?;
        let pitr_on = backups
            .continuous_backups_description
            .and_then(|d| d.point_in_time_recovery_description)
            .and_then(|p| p.point_in_time_recovery_status)
            .is_some_and(|s| s.as_str() == "ENABLED");
        if !pitr_on {
            changes.push(Change::EnablePointInTimeRecovery);
        }
    }
    Ok(changes)
}

async fn apply(
    client: &Client,
    aws: &Aws,
    spec: &TableSpec,
    name: &str,
    change: &Change,
) -> anyhow::Result<()> {
    match change {
        Change::AddIndex(index) => {
            let create = CreateGlobalSecondaryIndexAction::builder()
                .index_name(index.name)
                .set_key_schema(Some(index.key_schema()))
                .projection(index.to_sdk().projection().cloned().expect("the schema sets a projection"))
                .build()
                .expect("name, keys and projection are set");
            client
                .update_table()
                .table_name(name)
                .set_attribute_definitions(Some(spec.attribute_definitions()))
                .global_secondary_index_updates(GlobalSecondaryIndexUpdate::builder().create(create).build())
                .send()
                .await
                .explain("dynamodb:UpdateTable", name, aws)?;
        }
        Change::EnableTtl(attribute) => {
            let ttl = TimeToLiveSpecification::builder()
                .attribute_name(*attribute)
                .enabled(true)
                .build()
                .expect("attribute and flag are set");
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(ttl)
                .send()
                .await
                .explain("dynamodb:UpdateTimeToLive", name, aws)?;
        }
        Change::EnableDeletionProtection => {
            client.update_table().table_name(name).deletion_protection_enabled(true).send().await.explain(
                "dynamodb:UpdateTable",
                name,
                aws,
            )?;
        }
        Change::EnablePointInTimeRecovery => {
            let pitr = PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .expect("the flag is set");
            client
                .update_continuous_backups()
                .table_name(name)
                .point_in_time_recovery_specification(pitr)
                .send()
                .await
                .explain("dynamodb:UpdateContinuousBackups", name, aws)?;
        }
    }
    Ok(())
}

/// Poll DescribeTable about once a second until the table and its indexes are ACTIVE. (The SDK's
/// waiter sleeps at least 20 s between polls.)
async fn wait_until_active(
    client: &Client,
    aws: &Aws,
    name: &str,
    timeout: Duration,
    progress: &crate::progress::Spinner,
) -> anyhow::Result<TableDescription> {
    let deadline = Instant::now() + timeout;
    loop {
        let table = required_description(client, aws, name).await?;
        let indexes_active =
            table.global_secondary_indexes().iter().all(|i| i.index_status() == Some(&IndexStatus::Active));
        if table.table_status() == Some(&TableStatus::Active) && indexes_active {
            return Ok(table);
        }
        if Instant::now() >= deadline {
            bail!(
                "table {name} is still {} after {timeout:?}: it keeps converging on AWS's side; rerun later, or pass a longer --timeout",
                table.table_status().map_or("unknown", |s| s.as_str())
            );
        }
        progress.tick();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Refuse to touch a table whose primary key differs from the schema.
fn check_key_schema(spec: &TableSpec, table: &TableDescription) -> anyhow::Result<()> {
    let expected = render_keys(&spec.key_schema(), &spec.attribute_definitions());
    let actual = render_keys(table.key_schema(), table.attribute_definitions());
    if expected != actual {
        bail!(drift_message(
            table.table_name().unwrap_or(spec.base_name),
            "exists with key",
            &actual,
            &expected
        ));
    }
    Ok(())
}

fn drift_message(name: &str, what: &str, actual: &[String], expected: &[String]) -> String {
    format!(
        "table {name} {what} ({}) but expected ({}): nothing was changed; a key cannot be altered in place, so delete the table (after backing up its data) or use --table-prefix for a separate set",
        actual.join(", "),
        expected.join(", ")
    )
}

/// `id HASH S`, one per key element, with the attribute's type.
fn render_keys(keys: &[KeySchemaElement], definitions: &[AttributeDefinition]) -> Vec<String> {
    keys.iter()
        .map(|k| {
            let ty = definitions
                .iter()
                .find(|d| d.attribute_name() == k.attribute_name())
                .map_or("?", |d| d.attribute_type().as_str());
            format!("{} {} {ty}", k.attribute_name(), k.key_type().as_str())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::schema::{RECORD_TABLE, USER_TABLE};

    fn table_with(spec: &TableSpec, keys: Vec<KeySchemaElement>) -> TableDescription {
        TableDescription::builder()
            .table_name(spec.base_name)
            .set_key_schema(Some(keys))
            .set_attribute_definitions(Some(spec.attribute_definitions()))
            .build()
    }

    #[test]
    fn a_table_with_the_schemas_key_passes() {
        check_key_schema(&USER_TABLE, &table_with(&USER_TABLE, USER_TABLE.key_schema())).unwrap();
    }

    #[test]
    fn a_drifted_key_is_refused_with_expected_and_actual() {
        let only_hash = vec![USER_TABLE.key_schema().remove(0)];
        let err = check_key_schema(&USER_TABLE, &table_with(&USER_TABLE, only_hash)).unwrap_err().to_string();
        assert!(
            err.contains("exists with key (id HASH S) but expected (id HASH S, auth_key RANGE S)"),
            "{err}"
        );
        assert!(err.contains("nothing was changed"), "{err}");
    }

    #[test]
    fn new_tables_get_ttl_and_pitr_only_when_asked() {
        let options = |protect| Options {
            prefix: String::new(),
            stage: "dev".into(),
            protect,
            dry_run: false,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(post_create_changes(&USER_TABLE, &options(false)), [Change::EnableTtl("expires_at")]);
        assert_eq!(
            post_create_changes(&RECORD_TABLE, &options(true)),
            [Change::EnableTtl("expires_at"), Change::EnablePointInTimeRecovery]
        );
    }
}
