//! `cargo xtask destroy`: remove a stage's function URL, function and execution role; its
//! tables and bucket only with --include-data. Everything is found by name; what is already gone
//! is reported as such, so re-running is harmless.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::bail;
use aws_sdk_lambda::error::SdkError;

use crate::aws::{Aws, ExplainExt};
use crate::flags::Destroy;
use crate::names::validate_stage;
use crate::outcome::Outcome;
use crate::stage::TableOwner;

impl Destroy {
    pub async fn run(self) -> anyhow::Result<()> {
        validate_stage(&self.target.stage)?;
        if !self.yes && !std::io::stdin().is_terminal() {
            return Err(crate::Failure::usage(anyhow::anyhow!(
                "destroy asks for confirmation on a terminal: pass --yes to run it unattended"
            )));
        }
        let aws = self.aws.load(crate::catalogue::Task::Destroy).await?;
        let account = crate::aws::account(&aws).await?;
        let (names, deployed) = crate::stage::existing(&aws, &self.target, &account).await?;
        let mut doomed =
            vec![format!("function {} and its URL", names.function), format!("role {}", names.role)];
        if !self.keep_logs {
            doomed.push(format!("log group {} with the function's logs", names.log_group()));
        }
        // Only what is the stage's own: tables with its stage tag, its default-named bucket.
        let own_bucket =
            crate::stage::owns_bucket(&names.stage, &names.account, &names.region, &names.bucket);
        let mut own_tables = Vec::new();
        let mut kept = Vec::new();
        if self.include_data {
            for table in [names.user_table(), names.record_table()] {
                match crate::stage::table_owner(&aws, &names, &table).await? {
                    TableOwner::Absent => own_tables.push(table),
                    TableOwner::Stage(Some(stage)) if stage == names.stage => {
                        doomed.push(format!("table {table} with all its rows"));
                        own_tables.push(table);
                    }
                    owner => kept.push(format!(
                        "table {table}: it {}, not stage {}",
                        owner.describe(),
                        names.stage
                    )),
                }
            }
            if own_bucket {
                doomed.push(format!("bucket {} with every recording", names.bucket));
            } else {
                kept.push(format!(
                    "bucket {}: not stage {}'s default bucket, so it may hold other data; empty and delete it yourself if it is this stage's",
                    names.bucket, names.stage
                ));
            }
        }
        if deployed.is_none() && !self.include_data && !role_exists(&aws, &names.role).await? {
            return Err(anyhow::anyhow!(
                "no stage {} here: no function {} or role {} in {} (check --stage, --region and --profile)",
                names.stage,
                names.function,
                names.role,
                aws.target()
            ));
        }
        // On a thread of its own, so Ctrl-C at the prompt stops xtask at once (exit 130).
        let stage = names.stage.clone();
        let confirmed = self.yes
            || tokio::task::spawn_blocking(move || confirm(&stage, &doomed))
                .await
                .map_err(|e| anyhow::anyhow!("the confirmation prompt failed: {e}"))??;
        if !confirmed {
            bail!("nothing was destroyed");
        }
        let lambda = aws_sdk_lambda::Client::new(&aws.sdk);
        let function = &names.function;
        // The URL on `live`, then one on $LATEST left by a deploy from before aliases.
        let live_url = lambda
            .delete_function_url_config()
            .function_name(function)
            .qualifier(crate::deploy::release::LIVE)
            .send()
            .await;
        let live_url = gone_if_missing(live_url, "lambda:DeleteFunctionUrlConfig", function, &aws)?;
        report("url", &format!("{function}:{}", crate::deploy::release::LIVE), live_url);
        report(
            "url",
            function,
            gone_if_missing(
                lambda.delete_function_url_config().function_name(function).send().await,
                "lambda:DeleteFunctionUrlConfig",
                function,
                &aws,
            )?,
        );
        // The URL's permission statements are part of the function's policies, and its versions
        // and aliases part of the function: all go with it.
        report(
            "function",
            function,
            gone_if_missing(
                lambda.delete_function().function_name(function).send().await,
                "lambda:DeleteFunction",
                function,
                &aws,
            )?,
        );
        report("role", &names.role, delete_role(&aws, &names.role).await?);
        let group = names.log_group();
        if self.keep_logs {
            println!("kept     log group {group} (--keep-logs)");
        } else {
            let logs = aws_sdk_cloudwatchlogs::Client::new(&aws.sdk);
            let deleted = logs.delete_log_group().log_group_name(&group).send().await;
            report("logs", &group, gone_if_missing(deleted, "logs:DeleteLogGroup", &group, &aws)?);
        }
        if self.include_data {
            for table in &own_tables {
                report("table", table, delete_table(&aws, table).await?);
            }
            if own_bucket {
                report("bucket", &names.bucket, delete_bucket(&aws, &names.bucket, &names.account).await?);
            }
            for item in &kept {
                println!("kept     {item}");
            }
        } else {
            println!(
                "kept     tables {} and {}, bucket {} (pass --include-data to delete them)",
                names.user_table(),
                names.record_table(),
                names.bucket
            );
        }
        Ok(())
    }
}

/// Whether the stage's execution role exists.
async fn role_exists(aws: &Aws, role: &str) -> anyhow::Result<bool> {
    let iam = aws_sdk_iam::Client::new(&aws.sdk);
    match iam.list_role_policies().role_name(role).send().await {
        Ok(_) => Ok(true),
        Err(aws_sdk_iam::error::SdkError::ServiceError(e)) if e.err().is_no_such_entity_exception() => {
            Ok(false)
        }
        Err(e) => Err(crate::aws::explain(e, "iam:ListRolePolicies", role, aws)),
    }
}

fn confirm(stage: &str, doomed: &[String]) -> anyhow::Result<bool> {
    eprintln!("this deletes, for stage {stage}:");
    for item in doomed {
        eprintln!("  - {item}");
    }
    eprint!("type the stage name to confirm: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == stage)
}

fn report(resource: &str, name: &str, outcome: Outcome) {
    let done = if outcome == Outcome::Unchanged { "already gone" } else { outcome.done(false) };
    println!("{resource:<8} {name:<40} {done}");
}

/// `Delete` if deleted, `Unchanged` if it did not exist.
fn gone_if_missing<O, E>(
    result: Result<O, SdkError<E, crate::aws::HttpResponse>>,
    action: &str,
    name: &str,
    aws: &Aws,
) -> anyhow::Result<Outcome>
where
    E: aws_sdk_lambda::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(Outcome::Delete),
        Err(SdkError::ServiceError(e))
            if matches!(
                e.err().code(),
                Some("ResourceNotFoundException" | "NoSuchEntity" | "NoSuchBucket" | "ResourceNotFound")
            ) =>
        {
            Ok(Outcome::Unchanged)
        }
        Err(e) => Err(crate::aws::explain(e, action, name, aws)),
    }
}

async fn delete_role(aws: &Aws, role: &str) -> anyhow::Result<Outcome> {
    let iam = aws_sdk_iam::Client::new(&aws.sdk);
    let policies = match iam.list_role_policies().role_name(role).send().await {
        Ok(output) => output.policy_names,
        Err(aws_sdk_iam::error::SdkError::ServiceError(e)) if e.err().is_no_such_entity_exception() => {
            return Ok(Outcome::Unchanged)
        }
        Err(e) => return Err(crate::aws::explain(e, "iam:ListRolePolicies", role, aws)),
    };
    for policy in policies {
        iam.delete_role_policy().role_name(role).policy_name(&policy).send().await.explain(
            "iam:DeleteRolePolicy",
            role,
            aws,
        )?;
    }
    gone_if_missing(iam.delete_role().role_name(role).send().await, "iam:DeleteRole", role, aws)
}

async fn delete_table(aws: &Aws, table: &str) -> anyhow::Result<Outcome> {
    let dynamodb = aws.dynamodb();
    // Deploys of protected stages turn deletion protection on; --include-data means it goes.
    let protected = match dynamodb.describe_table().table_name(table).send().await {
        Ok(output) => output.table.and_then(|t| t.deletion_protection_enabled).unwrap_or(false),
        Err(aws_sdk_dynamodb::error::SdkError::ServiceError(e))
            if e.err().is_resource_not_found_exception() =>
        {
            return Ok(Outcome::Unchanged)
        }
        Err(e) => return Err(crate::aws::explain(e, "dynamodb:DescribeTable", table, aws)),
    };
    if protected {
        // Said out loud: protection goes off only for a table that is the stage's own.
        println!("table    {table:<40} deletion protection switched off (stage's own table, --include-data)");
        dynamodb.update_table().table_name(table).deletion_protection_enabled(false).send().await.explain(
            "dynamodb:UpdateTable",
            table,
            aws,
        )?;
    }
    gone_if_missing(
        dynamodb.delete_table().table_name(table).send().await,
        "dynamodb:DeleteTable",
        table,
        aws,
    )
}

async fn delete_bucket(aws: &Aws, bucket: &str, owner: &str) -> anyhow::Result<Outcome> {
    let s3 = aws.s3();
    let mut pages = s3.list_objects_v2().bucket(bucket).expected_bucket_owner(owner).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(aws_sdk_s3::error::SdkError::ServiceError(e)) if e.err().is_no_such_bucket() => {
                return Ok(Outcome::Unchanged)
            }
            Err(e) => return Err(crate::aws::explain(e, "s3:ListBucket", bucket, aws)),
        };
        for object in page.contents() {
            let key = object.key().unwrap_or_default();
            s3.delete_object().bucket(bucket).expected_bucket_owner(owner).key(key).send().await.explain(
                "s3:DeleteObject",
                bucket,
                aws,
            )?;
        }
    }
    gone_if_missing(
        s3.delete_bucket().bucket(bucket).expected_bucket_owner(owner).send().await,
        "s3:DeleteBucket",
        bucket,
        aws,
    )
}
