//! The recordings bucket: private, public access blocked, encrypted by default. Found by name.

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::create_bucket::CreateBucketError;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule,
};

use crate::aws::{Aws, ExplainExt};

/// Create the bucket if needed and (re)apply its protections; `true` if it was created.
pub async fn ensure_private_bucket(aws: &Aws, name: &str) -> anyhow::Result<bool> {
    let s3 = aws.s3();
    let resource = format!("bucket {name}");
    let mut create = s3.create_bucket().bucket(name);
    // us-east-1 is the one region that rejects an explicit location constraint.
    let region = aws.region();
    if region != "us-east-1" {
        let config = CreateBucketConfiguration::builder()
            .location_constraint(BucketLocationConstraint::from(region.as_str()))
            .build();
        create = create.create_bucket_configuration(config);
    }
    let created = match create.send().await {
        Ok(_) => true,
        Err(SdkError::ServiceError(e))
            if matches!(e.err(), CreateBucketError::BucketAlreadyOwnedByYou(_)) =>
        {
            false
        }
        Err(SdkError::ServiceError(e)) if matches!(e.err(), CreateBucketError::BucketAlreadyExists(_)) => {
            anyhow::bail!(
                "bucket {name} belongs to another AWS account: bucket names are global; choose another name"
            )
        }
        Err(e) => return Err(crate::aws::explain(e, "s3:CreateBucket", &resource, aws)),
    };
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
    let sse = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::Aes256)
                        .build()
                        .expect("the algorithm is set"),
                )
                .build(),
        )
        .build()
        .expect("one rule is set");
    s3.put_bucket_encryption().bucket(name).server_side_encryption_configuration(sse).send().await.explain(
        "s3:PutEncryptionConfiguration",
        &resource,
        aws,
    )?;
    Ok(created)
}
