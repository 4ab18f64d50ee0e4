//! The recordings bucket: private, public access blocked, encrypted by default. Found by name;
//! read first, so an up-to-date bucket costs no write call.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule,
};

use crate::aws::{Aws, ExplainExt};

/// What the bucket needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketPlan {
    Create,
    /// Exists; these protections are missing.
    Update(Vec<&'static str>),
    UpToDate,
}

const BLOCK_PUBLIC_ACCESS: &str = "block public access";
const DEFAULT_ENCRYPTION: &str = "default encryption";

impl BucketPlan {
    pub fn describe(&self) -> String {
        match self {
            BucketPlan::Create => "create (private, public access blocked, encrypted)".into(),
            BucketPlan::Update(missing) => format!("update ({})", missing.join(", ")),
            BucketPlan::UpToDate => "unchanged".into(),
        }
    }
}

/// Read the bucket's state: HeadBucket, then its public-access block and encryption.
pub async fn plan_bucket(aws: &Aws, name: &str) -> anyhow::Result<BucketPlan> {
    let s3 = aws.s3();
    let resource = format!("bucket {name}");
    match s3.head_bucket().bucket(name).send().await {
        Ok(_) => {}
        Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => return Ok(BucketPlan::Create),
        Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 403 => anyhow::bail!(
            "bucket {name} exists but you cannot access it (another account owns it, or s3:ListBucket is denied): choose another name with --bucket, or run `cargo xtask check-iam`"
        ),
        Err(e) => return Err(crate::aws::explain(e, "s3:ListBucket", &resource, aws)),
    }
    let mut missing = Vec::new();
    match s3.get_public_access_block().bucket(name).send().await {
        Ok(output) => {
            let all = output.public_access_block_configuration.is_some_and(|c| {
                [c.block_public_acls, c.ignore_public_acls, c.block_public_policy, c.restrict_public_buckets]
                    .iter()
                    .all(|flag| *flag == Some(true))
            });
            if !all {
                missing.push(BLOCK_PUBLIC_ACCESS);
            }
        }
        Err(SdkError::ServiceError(e)) if e.err().code() == Some("NoSuchPublicAccessBlockConfiguration") => {
            missing.push(BLOCK_PUBLIC_ACCESS)
        }
        Err(e) => return Err(crate::aws::explain(e, "s3:GetBucketPublicAccessBlock", &resource, aws)),
    }
    match s3.get_bucket_encryption().bucket(name).send().await {
        Ok(output) => {
            let rules = output.server_side_encryption_configuration.map(|c| c.rules).unwrap_or_default();
            if rules.is_empty() {
                missing.push(DEFAULT_ENCRYPTION);
            }
        }
        Err(SdkError::ServiceError(e))
            if e.err().code() == Some("ServerSideEncryptionConfigurationNotFoundError") =>
        {
            missing.push(DEFAULT_ENCRYPTION)
        }
        Err(e) => return Err(crate::aws::explain(e, "s3:GetEncryptionConfiguration", &resource, aws)),
    }
    Ok(if missing.is_empty() { BucketPlan::UpToDate } else { BucketPlan::Update(missing) })
}

/// Carry out a plan.
pub async fn apply_bucket(aws: &Aws, name: &str, plan: &BucketPlan) -> anyhow::Result<()> {
    let s3 = aws.s3();
    let resource = format!("bucket {name}");
    let missing = match plan {
        BucketPlan::UpToDate => return Ok(()),
        BucketPlan::Update(missing) => missing.clone(),
        BucketPlan::Create => {
            let mut create = s3.create_bucket().bucket(name);
            // us-east-1 is the one region that rejects an explicit location constraint.
            let region = aws.region();
            if region != "us-east-1" {
                let config = CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build();
                create = create.create_bucket_configuration(config);
            }
            create.send().await.explain("s3:CreateBucket", &resource, aws)?;
            vec![BLOCK_PUBLIC_ACCESS, DEFAULT_ENCRYPTION]
        }
    };
    if missing.contains(&BLOCK_PUBLIC_ACCESS) {
        let block_all = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        s3.put_public_access_block()
            .bucket(name)
            .public_access_block_configuration(block_all)
            .send()
            .await
            .explain("s3:PutBucketPublicAccessBlock", &resource, aws)?;
    }
    if missing.contains(&DEFAULT_ENCRYPTION) {
        let by_default = ServerSideEncryptionByDefault::builder()
            .sse_algorithm(ServerSideEncryption::Aes256)
            .build()
            .expect("the algorithm is set");
        let sse = ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(by_default)
                    .build(),
            )
            .build()
            .expect("one rule is set");
        s3.put_bucket_encryption()
            .bucket(name)
            .server_side_encryption_configuration(sse)
            .send()
            .await
            .explain("s3:PutEncryptionConfiguration", &resource, aws)?;
    }
    Ok(())
}

/// Plan and apply; returns what was done.
pub async fn ensure_private_bucket(aws: &Aws, name: &str) -> anyhow::Result<BucketPlan> {
    let plan = plan_bucket(aws, name).await?;
    apply_bucket(aws, name, &plan).await?;
    Ok(plan)
}
