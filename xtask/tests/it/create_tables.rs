//! `cargo xtask create-tables` against the emulator.

use app::schema::{RECORD_TABLE, USER_TABLE};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TimeToLiveStatus,
};

use crate::helpers::{dynamodb, is_write, shared_endpoint, unique_prefix, xtask, OwnMoto};

fn keys(table: &aws_sdk_dynamodb::types::TableDescription) -> Vec<(String, KeyType)> {
    table.key_schema().iter().map(|k| (k.attribute_name().to_owned(), k.key_type().clone())).collect()
}

#[tokio::test]
async fn a_fresh_create_makes_both_tables_with_keys_index_and_ttl() {
    let endpoint = shared_endpoint();
    let prefix = unique_prefix();

    let run = xtask(&endpoint, &["create-tables", "--table-prefix", &prefix]).ok();

    let user_table = USER_TABLE.name(&prefix);
    let record_table = RECORD_TABLE.name(&prefix);
    let lines: Vec<_> =
        run.stdout().lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(lines, [format!("{user_table} created"), format!("{record_table} created")]);

    let client = dynamodb(&endpoint).await;
    let user = client.describe_table().table_name(&user_table).send().await.unwrap().table.unwrap();
    assert_eq!(keys(&user), [("id".into(), KeyType::Hash), ("auth_key".into(), KeyType::Range)]);
    assert_eq!(user.billing_mode_summary().and_then(|b| b.billing_mode()), Some(&BillingMode::PayPerRequest));
    let ttl = client.describe_time_to_live().table_name(&user_table).send().await.unwrap();
    let ttl = ttl.time_to_live_description.unwrap();
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    assert_eq!(ttl.attribute_name(), Some("expires_at"));

    // Pending uploads expire: TTL on the record table too.
    let ttl = client.describe_time_to_live().table_name(&record_table).send().await.unwrap();
    let ttl = ttl.time_to_live_description.unwrap();
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    assert_eq!(ttl.attribute_name(), Some("expires_at"));

    let record = client.describe_table().table_name(&record_table).send().await.unwrap().table.unwrap();
    assert_eq!(keys(&record), [("id".into(), KeyType::Hash), ("user_id".into(), KeyType::Range)]);
    let index = &record.global_secondary_indexes()[0];
    assert_eq!(index.index_name(), Some("user_id-created_at-index"));
    let index_keys: Vec<_> = index.key_schema().iter().map(|k| k.attribute_name()).collect();
    assert_eq!(index_keys, ["user_id", "created_at"]);
}

#[tokio::test]
async fn a_second_run_is_up_to_date_and_makes_no_write_call() {
    let moto = OwnMoto::start();
    let prefix = unique_prefix();
    moto.start_recording().await;
    xtask(moto.endpoint(), &["create-tables", "--table-prefix", &prefix]).ok();
    let first = moto.stop_recording().await;
    // The recorder sees writes: the first run's creates are there.
    assert_eq!(first.iter().filter(|o| *o == "CreateTable").count(), 2, "{first:?}");
    assert!(first.contains(&"UpdateTimeToLive".to_owned()), "{first:?}");

    moto.start_recording().await;
    let run = xtask(moto.endpoint(), &["create-tables", "--table-prefix", &prefix, "--json"]).ok();
    let operations = moto.stop_recording().await;

    let report = run.json();
    let actions: Vec<_> = report.as_array().unwrap().iter().map(|t| t["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["up to date", "up to date"]);
    assert!(!operations.iter().any(|o| is_write(o)), "write calls on an up-to-date run: {operations:?}");
    let describes = operations.iter().filter(|o| *o == "DescribeTable").count();
    assert_eq!(describes, 2, "one DescribeTable per table: {operations:?}");
}

#[tokio::test]
async fn json_output_describes_each_table() {
    let endpoint = shared_endpoint();
    let prefix = unique_prefix();

    let report = xtask(&endpoint, &["create-tables", "--table-prefix", &prefix, "--json"]).ok().json();

    let tables = report.as_array().unwrap();
    assert_eq!(tables.len(), 2);
    assert_eq!(tables[0]["name"], USER_TABLE.name(&prefix));
    assert_eq!(tables[0]["status"], "ACTIVE");
    assert_eq!(tables[0]["key_schema"], serde_json::json!(["id HASH S", "auth_key RANGE S"]));
    assert_eq!(tables[1]["indexes"], serde_json::json!(["user_id-created_at-index"]));
}

#[tokio::test]
async fn a_table_with_a_different_key_fails_with_the_difference_and_is_left_untouched() {
    let endpoint = shared_endpoint();
    let prefix = unique_prefix();
    let client = dynamodb(&endpoint).await;
    let user_table = USER_TABLE.name(&prefix);
    client
        .create_table()
        .table_name(&user_table)
        .key_schema(KeySchemaElement::builder().attribute_name("id").key_type(KeyType::Hash).build().unwrap())
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();

    let run = xtask(&endpoint, &["create-tables", "--table-prefix", &prefix]);

    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert!(
        run.stderr().contains("exists with key (id HASH S) but expected (id HASH S, auth_key RANGE S)"),
        "{}",
        run.stderr()
    );
    let table = client.describe_table().table_name(&user_table).send().await.unwrap().table.unwrap();
    assert_eq!(keys(&table), [("id".into(), KeyType::Hash)]);
    let ttl = client.describe_time_to_live().table_name(&user_table).send().await.unwrap();
    assert_ne!(
        ttl.time_to_live_description.and_then(|d| d.time_to_live_status),
        Some(TimeToLiveStatus::Enabled),
        "TTL was turned on for a drifted table"
    );
}

#[tokio::test]
async fn a_missing_index_and_ttl_are_added() {
    let endpoint = shared_endpoint();
    let prefix = unique_prefix();
    let client = dynamodb(&endpoint).await;
    for spec in [USER_TABLE, RECORD_TABLE] {
        // Only the table's own key attributes: DynamoDB rejects definitions no key uses.
        let table_keys = [Some(spec.hash.name), spec.range.map(|r| r.name)];
        let definitions = spec
            .attribute_definitions()
            .into_iter()
            .filter(|d| table_keys.contains(&Some(d.attribute_name())))
            .collect();
        client
            .create_table()
            .table_name(spec.name(&prefix))
            .set_key_schema(Some(spec.key_schema()))
            .set_attribute_definitions(Some(definitions))
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap();
    }

    let run = xtask(&endpoint, &["create-tables", "--table-prefix", &prefix]).ok();

    let out = run.stdout();
    assert!(out.contains("updated (enable TTL on expires_at)"), "{out}");
    assert!(out.contains("updated (add index user_id-created_at-index, enable TTL on expires_at)"), "{out}");
    let record = client.describe_table().table_name(RECORD_TABLE.name(&prefix)).send().await.unwrap();
    let indexes = record.table.unwrap().global_secondary_indexes.unwrap_or_default();
    assert_eq!(indexes.len(), 1);
    assert_eq!(indexes[0].index_name(), Some("user_id-created_at-index"));
    let rerun = xtask(&endpoint, &["create-tables", "--table-prefix", &prefix]).ok();
    assert_eq!(rerun.stdout().matches("up to date").count(), 2, "{}", rerun.stdout());
}

#[tokio::test]
async fn dry_run_prints_the_plan_and_makes_no_write_call() {
    let moto = OwnMoto::start();
    let prefix = unique_prefix();

    moto.start_recording().await;
    let run = xtask(moto.endpoint(), &["create-tables", "--table-prefix", &prefix, "--dry-run"]).ok();
    let operations = moto.stop_recording().await;

    assert!(run.stdout().contains("would create (create table (PAY_PER_REQUEST), enable TTL on expires_at)"));
    assert!(!operations.iter().any(|o| is_write(o)), "write calls in a dry run: {operations:?}");
    let tables = dynamodb(moto.endpoint()).await.list_tables().send().await.unwrap();
    assert!(tables.table_names().is_empty(), "a dry run created {:?}", tables.table_names());
}

#[tokio::test]
async fn two_prefixes_side_by_side_do_not_interfere() {
    let endpoint = shared_endpoint();
    let (a, b) = (unique_prefix(), unique_prefix());

    xtask(&endpoint, &["create-tables", "--table-prefix", &a]).ok();
    let second = xtask(&endpoint, &["create-tables", "--table-prefix", &b]).ok();
    let again = xtask(&endpoint, &["create-tables", "--table-prefix", &a]).ok();

    assert_eq!(second.stdout().matches("created").count(), 2, "{}", second.stdout());
    assert_eq!(again.stdout().matches("up to date").count(), 2, "{}", again.stdout());
}

#[tokio::test]
async fn protect_turns_on_deletion_protection_and_point_in_time_recovery() {
    let endpoint = shared_endpoint();
    let prefix = unique_prefix();
    xtask(&endpoint, &["create-tables", "--table-prefix", &prefix]).ok();

    let run = xtask(&endpoint, &["create-tables", "--table-prefix", &prefix, "--protect"]).ok();

    assert!(run.stdout().contains("enable deletion protection"), "{}", run.stdout());
    let client = dynamodb(&endpoint).await;
    let name = USER_TABLE.name(&prefix);
    let table = client.describe_table().table_name(&name).send().await.unwrap().table.unwrap();
    assert_eq!(table.deletion_protection_enabled(), Some(true));
    let backups = client.describe_continuous_backups().table_name(&name).send().await.unwrap();
    let pitr = backups.continuous_backups_description.unwrap().point_in_time_recovery_description.unwrap();
    assert_eq!(pitr.point_in_time_recovery_status().map(|s| s.as_str()), Some("ENABLED"));
    let rerun = xtask(&endpoint, &["create-tables", "--table-prefix", &prefix, "--protect"]).ok();
    assert_eq!(rerun.stdout().matches("up to date").count(), 2, "{}", rerun.stdout());
}

#[tokio::test]
async fn an_unreachable_endpoint_is_named_in_the_error() {
    let port = xtask::emulator::free_port().unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");

    let run = xtask(&endpoint, &["create-tables", "--timeout", "10s"]);

    assert_eq!(run.code(), 1);
    assert!(run.stderr().contains(&format!("could not reach {endpoint}")), "{}", run.stderr());
}

#[tokio::test]
async fn usage_errors_exit_4_and_bad_prefixes_are_refused_before_any_call() {
    let endpoint = shared_endpoint();
    assert_eq!(xtask(&endpoint, &["create-tables", "--timeout", "soon"]).code(), 4);
    let run = xtask(&endpoint, &["create-tables", "--table-prefix", "bad/prefix"]);
    assert_eq!(run.code(), 4, "a bad prefix is a usage mistake");
    assert!(run.stderr().contains("table prefix \"bad/prefix\" contains '/'"), "{}", run.stderr());
}

/// Leave-one-out for the create-tables part of the deployer policy, under IAM enforcement (with
/// the any-resource rendering: moto matches DynamoDB statements against "*" only): without any
/// one of its actions, create-tables fails naming that action, on fresh tables or on existing
/// unprotected ones being protected. An action whose removal breaks neither is surplus.
#[tokio::test]
async fn every_create_tables_action_is_needed() {
    use xtask::catalogue::{render_policy, Task};
    use xtask::names::Names;

    let names = Names::new("dev", "123456789012", "us-east-1", "", None);
    let needs = Task::CreateTables.needs();
    let mut surplus = Vec::new();
    for need in &needs {
        let rest: Vec<_> = needs.iter().copied().filter(|n| n.action != need.action).collect();
        let policy = render_policy(&rest, &names, true);
        let mut named = false;
        for existing in [false, true] {
            let moto = OwnMoto::start();
            if existing {
                xtask(moto.endpoint(), &["create-tables"]).ok();
            }
            let keys = moto.user_with_policy("deployer", &policy).await;
            moto.enforce_iam().await;
            let run = crate::helpers::xtask_as(moto.endpoint(), &keys, &["create-tables", "--protect"]);
            if run.code() != 0 {
                assert!(
                    run.stderr().contains(need.action.name()),
                    "without {} create-tables failed naming something else:\n{}",
                    need.action,
                    run.stderr()
                );
                named = true;
                break;
            }
        }
        if !named {
            surplus.push(need.action.name());
        }
    }
    // Tag-on-create: AWS authorizes the tags of a CreateTable request as dynamodb:TagResource
    // (a dependent action); moto 5.2.5 checks only the request's own action. Listed so a moto
    // that starts checking it, or another surplus action, fails here.
    assert_eq!(
        surplus,
        ["dynamodb:TagResource"],
        "surplus create-tables actions (nothing fails without them), beyond the dependent one moto does not check"
    );
}
