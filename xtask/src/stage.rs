//! What a deployed stage uses. The stage's function is the source of truth for its data: its
//! environment names the tables (`RECORD_TABLE_PREFIX`) and the bucket (`RECORD_BUCKET`). Tasks
//! that act on a stage take both from there; a flag that contradicts them is refused, naming
//! both values, and `deploy` treats a change as data-affecting, made only with `--change-data`.
//!
//! Ownership: a stage's own tables carry its `stage` tag (set when they are created), and its own
//! bucket has its default name. Nothing else is deleted or adopted without an explicit flag.

use anyhow::Context;
use aws_sdk_lambda::error::SdkError;

use crate::aws::Aws;
use crate::flags::StageArgs;
use crate::names::{function_name, Names};
use crate::Failure;

/// The data a deployed function uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub table_prefix: String,
    pub bucket: String,
}

/// The data the stage's function uses, or `None` if the stage has no function.
pub async fn deployed(aws: &Aws, stage: &str) -> anyhow::Result<Option<Deployed>> {
    let name = function_name(stage);
    let lambda = aws_sdk_lambda::Client::new(&aws.sdk);
    let config = match lambda.get_function_configuration().function_name(&name).send().await {
        Ok(config) => config,
        Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => return Ok(None),
        Err(e) => return Err(crate::aws::explain(e, "lambda:GetFunctionConfiguration", &name, aws)),
    };
    let variables = config.environment().and_then(|e| e.variables()).cloned().unwrap_or_default();
    let bucket = variables.get(app::config::env::BUCKET).cloned().with_context(|| {
        format!("function {name} has no RECORD_BUCKET: it was not deployed by `cargo xtask deploy`")
    })?;
    let table_prefix = variables.get(app::config::env::TABLE_PREFIX).cloned().unwrap_or_default();
    Ok(Some(Deployed { table_prefix, bucket }))
}

/// Refuse a flag whose value differs from the deployed stage's.
fn agree(stage: &str, flag: &str, given: Option<&str>, deployed: &str) -> anyhow::Result<()> {
    match given {
        Some(given) if given != deployed => Err(Failure::usage(anyhow::anyhow!(
                "{flag} {given:?} contradicts stage {stage}, whose function uses {deployed:?}: leave the flag out \
                 (the deployed function is the source of truth) or pass {flag} {deployed:?}"
        ))),
        _ => Ok(()),
    }
}

/// The names of a stage that may be deployed, for a task that acts on it (destroy): its tables
/// and bucket from its function when there is one (flags that contradict it refused), else from
/// the flags or the stage's defaults.
pub async fn existing(
    aws: &Aws,
    target: &StageArgs,
    account: &str,
) -> anyhow::Result<(Names, Option<Deployed>)> {
    let deployed = deployed(aws, &target.stage).await?;
    let names = match &deployed {
        Some(d) => {
            agree(&target.stage, "--table-prefix", target.table_prefix.as_deref(), &d.table_prefix)?;
            agree(&target.stage, "--bucket", target.bucket.as_deref(), &d.bucket)?;
            Names::new(&target.stage, account, &aws.region(), &d.table_prefix, Some(&d.bucket))
        }
        None => target.names(account, &aws.region()),
    };
    Ok((names, deployed))
}

/// Who a table belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableOwner {
    Absent,
    /// Its `stage` tag, if it has one (tables made by `create-tables` or `local` have theirs).
    Stage(Option<String>),
}

/// The owner of table `name` (by its `stage` tag).
pub async fn table_owner(aws: &Aws, names: &Names, table: &str) -> anyhow::Result<TableOwner> {
    let dynamodb = aws.dynamodb();
    match dynamodb.describe_table().table_name(table).send().await {
        Ok(_) => {}
        Err(aws_sdk_dynamodb::error::SdkError::ServiceError(e))
            if e.err().is_resource_not_found_exception() =>
        {
            return Ok(TableOwner::Absent)
        }
        Err(e) => return Err(crate::aws::explain(e, "dynamodb:DescribeTable", table, aws)),
    }
    let tags = dynamodb
        .list_tags_of_resource()
        .resource_arn(names.table_arn(table))
        .send()
        .await
        .map_err(|e| crate::aws::explain(e, "dynamodb:ListTagsOfResource", table, aws))?;
    let stage = tags.tags().iter().find(|t| t.key() == "stage").map(|t| t.value().to_owned());
    Ok(TableOwner::Stage(stage))
}

impl TableOwner {
    /// How to say who owns it, for a refusal or a kept table.
    pub fn describe(&self) -> String {
        match self {
            TableOwner::Absent => "does not exist".to_owned(),
            TableOwner::Stage(Some(stage)) => format!("belongs to stage {stage}"),
            TableOwner::Stage(None) => "has no stage tag".to_owned(),
        }
    }
}

/// Whether `bucket` is the stage's own: its default name (bucket names are global, so the default
/// includes the account and region).
pub fn owns_bucket(stage: &str, account: &str, region: &str, bucket: &str) -> bool {
    Names::new(stage, account, region, "", None).bucket == bucket
}
