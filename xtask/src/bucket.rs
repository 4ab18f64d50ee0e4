//! The recordings bucket: private, public access blocked, encrypted by default, reachable only
//! over TLS, every object owned by the bucket owner (ACLs off), staged uploads expiring. Found
//! by name; read first, so an up-to-date bucket costs no write call.

use std::collections::BTreeMap;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    CreateBucketConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    ObjectOwnership, OwnershipControls, OwnershipControlsRule, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule,
};
use iam::{Arns, Effect, PolicyDocument, Statement};
use serde_json::Value;

use crate::aws::{Aws, ExplainExt};
use crate::outcome::Outcome;

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
const TLS_ONLY: &str = "TLS-only policy";
const OWNER_ENFORCED: &str = "bucket owner enforced";
const LIFECYCLE: &str = "lifecycle rules";
const ALL: [&str; 5] = [BLOCK_PUBLIC_ACCESS, DEFAULT_ENCRYPTION, TLS_ONLY, OWNER_ENFORCED, LIFECYCLE];

/// Where presigned uploads land until `complete` moves them: what no record points at yet.
pub const STAGING_PREFIX: &str = app::schema::STAGING_PREFIX;
/// Days before a staged upload that was never completed is deleted.
const STAGING_DAYS: i32 = 1;
const TLS_SID: &str = "DenyInsecureTransport";
const EXPIRE_STAGING: &str = "expire-staging";
const ABORT_MULTIPART: &str = "abort-incomplete-multipart-uploads";

/// Whether the bucket is reached over TLS: AWS, or an `https://` endpoint. A plain-HTTP endpoint
/// (an emulator on loopback) would be locked out by the TLS-only policy, so it does not get one
/// (moto would anyway deny everything: it ignores the policy's condition).
fn tls_reachable(aws: &Aws) -> bool {
    aws.endpoint.as_deref().is_none_or(|e| e.starts_with("https://"))
}

/// The protections this endpoint cannot take, with why: deploy says so instead of leaving them
/// out silently.
pub fn skipped_protections(aws: &Aws) -> Vec<String> {
    if tls_reachable(aws) {
        return Vec::new();
    }
    vec![format!(
        "{TLS_ONLY}: {} is plain HTTP, which the policy would lock out (set on AWS and https endpoints)",
        aws.target()
    )]
}

/// The statement that refuses every request not made over TLS.
fn tls_statement(arns: &Arns, bucket: &str) -> Statement {
    let mut statement = Statement::allow(
        TLS_SID,
        ["s3:*"].into_iter().collect(),
        [arns.bucket(bucket), arns.objects(bucket)].into_iter().collect(),
    );
    statement.effect = Effect::Deny;
    statement.principal = Some(Value::String("*".into()));
    statement.condition = Some(BTreeMap::from([(
        "Bool".to_owned(),
        BTreeMap::from([("aws:SecureTransport".to_owned(), Value::String("false".into()))]),
    )]));
    statement
}

/// `current` (the bucket's policy, if any) with the TLS statement in place of any of the same
/// Sid; other statements are kept.
fn with_tls_statement(current: Option<&str>, arns: &Arns, bucket: &str) -> PolicyDocument {
    let mut policy = current
        .and_then(|p| PolicyDocument::parse(p).ok())
        .unwrap_or_else(|| PolicyDocument::new(Vec::new()));
    policy.statement.retain(|s| s.sid.as_deref() != Some(TLS_SID));
    policy.statement.push(tls_statement(arns, bucket));
    policy
}

/// Compared by meaning: AWS may return the document reformatted.
fn has_tls_statement(policy: &str, arns: &Arns, bucket: &str) -> bool {
    PolicyDocument::parse(policy).is_ok_and(|p| p.statement.contains(&tls_statement(arns, bucket)))
}

/// ARNs in the partition of the endpoint's region (a bucket's ARN names no region or account).
fn arns(aws: &Aws) -> Arns {
    Arns::new(&aws.region(), "")
}

/// Our two lifecycle rules.
fn lifecycle_rules() -> Vec<LifecycleRule> {
    let staging = LifecycleRule::builder()
        .id(EXPIRE_STAGING)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(STAGING_PREFIX).build())
        .expiration(LifecycleExpiration::builder().days(STAGING_DAYS).build())
        .build()
        .expect("status is set");
    let multipart = LifecycleRule::builder()
        .id(ABORT_MULTIPART)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder().days_after_initiation(STAGING_DAYS).build(),
        )
        .build()
        .expect("status is set");
    vec![staging, multipart]
}

/// Whether `rules` hold ours, enabled, as we write them.
fn has_lifecycle_rules(rules: &[LifecycleRule]) -> bool {
    lifecycle_rules().iter().all(|ours| {
        rules.iter().any(|r| {
            r.id == ours.id
                && r.status == ours.status
                && r.expiration.as_ref().and_then(|e| e.days) == ours.expiration.as_ref().and_then(|e| e.days)
                && r.abort_incomplete_multipart_upload.as_ref().and_then(|a| a.days_after_initiation)
                    == ours.abort_incomplete_multipart_upload.as_ref().and_then(|a| a.days_after_initiation)
        })
    })
}

impl BucketPlan {
    pub fn outcome(&self) -> Outcome {
        match self {
            BucketPlan::Create => Outcome::Create,
            BucketPlan::Update(_) => Outcome::Update,
            BucketPlan::UpToDate => Outcome::Unchanged,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            BucketPlan::Create => {
                "create (private, public access blocked, encrypted, TLS only, owner enforced, lifecycle rules)"
                    .into()
            }
            BucketPlan::Update(missing) => format!("update ({})", missing.join(", ")),
            BucketPlan::UpToDate => "unchanged".into(),
        }
    }
}

/// Read the bucket's state: HeadBucket, then its public-access block and encryption.
/// `owner`: the account that must own the bucket (`ExpectedBucketOwner` on every call but
/// CreateBucket), so a same-named bucket of another account is neither read nor changed.
pub async fn plan_bucket(aws: &Aws, name: &str, owner: Option<&str>) -> anyhow::Result<BucketPlan> {
    let s3 = aws.s3();
    let resource = format!("bucket {name}");
    match s3.head_bucket().bucket(name).set_expected_bucket_owner(owner.map(str::to_owned)).send().await {
        Ok(_) => {}
        Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => return Ok(BucketPlan::Create),
        Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 403 => anyhow::bail!(
            "bucket {name} exists but you cannot access it (another account owns it, or s3:ListBucket is denied): choose another name with --bucket, or run `cargo xtask check-iam`"
        ),
        Err(e) => return Err(crate::aws::explain(e, "s3:ListBucket", &resource, aws)),
    }
    let mut missing = Vec::new();
    match s3
        .get_public_access_block()
        .bucket(name)
        .set_expected_bucket_owner(owner.map(str::to_owned))
        .send()
        .await
    {
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
    match s3
        .get_bucket_encryption()
        .bucket(name)
        .set_expected_bucket_owner(owner.map(str::to_owned))
        .send()
        .await
    {
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
    match s3.get_bucket_policy().bucket(name).set_expected_bucket_owner(owner.map(str::to_owned)).send().await
    {
        _ if !tls_reachable(aws) => {}
        Ok(output) if has_tls_statement(output.policy().unwrap_or_default(), &arns(aws), name) => {}
        Ok(_) => missing.push(TLS_ONLY),
        Err(SdkError::ServiceError(e)) if e.err().code() == Some("NoSuchBucketPolicy") => {
            missing.push(TLS_ONLY)
        }
        Err(e) => return Err(crate::aws::explain(e, "s3:GetBucketPolicy", &resource, aws)),
    }
    match s3
        .get_bucket_ownership_controls()
        .bucket(name)
        .set_expected_bucket_owner(owner.map(str::to_owned))
        .send()
        .await
    {
        Ok(output) => {
            let rules = output.ownership_controls.map(|c| c.rules).unwrap_or_default();
            if !rules.iter().any(|r| r.object_ownership == ObjectOwnership::BucketOwnerEnforced) {
                missing.push(OWNER_ENFORCED);
            }
        }
        Err(SdkError::ServiceError(e)) if e.err().code() == Some("OwnershipControlsNotFoundError") => {
            missing.push(OWNER_ENFORCED)
        }
        Err(e) => return Err(crate::aws::explain(e, "s3:GetBucketOwnershipControls", &resource, aws)),
    }
    match s3
        .get_bucket_lifecycle_configuration()
        .bucket(name)
        .set_expected_bucket_owner(owner.map(str::to_owned))
        .send()
        .await
    {
        Ok(output) if has_lifecycle_rules(output.rules()) => {}
        Ok(_) => missing.push(LIFECYCLE),
        Err(SdkError::ServiceError(e)) if e.err().code() == Some("NoSuchLifecycleConfiguration") => {
            missing.push(LIFECYCLE)
        }
        Err(e) => return Err(crate::aws::explain(e, "s3:GetLifecycleConfiguration", &resource, aws)),
    }
    Ok(if missing.is_empty() { BucketPlan::UpToDate } else { BucketPlan::Update(missing) })
}

/// Carry out a plan.
pub async fn apply_bucket(
    aws: &Aws,
    name: &str,
    owner: Option<&str>,
    plan: &BucketPlan,
) -> anyhow::Result<()> {
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
            ALL.into_iter().filter(|p| *p != TLS_ONLY || tls_reachable(aws)).collect()
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
            .set_expected_bucket_owner(owner.map(str::to_owned))
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
            .set_expected_bucket_owner(owner.map(str::to_owned))
            .server_side_encryption_configuration(sse)
            .send()
            .await
            .explain("s3:PutEncryptionConfiguration", &resource, aws)?;
    }
    if missing.contains(&OWNER_ENFORCED) {
        let rule =
            OwnershipControlsRule::builder().object_ownership(ObjectOwnership::BucketOwnerEnforced).build();
        let controls = OwnershipControls::builder().rules(rule.expect("ownership is set")).build();
        s3.put_bucket_ownership_controls()
            .bucket(name)
            .set_expected_bucket_owner(owner.map(str::to_owned))
            .ownership_controls(controls.expect("a rule is set"))
            .send()
            .await
            .explain("s3:PutBucketOwnershipControls", &resource, aws)?;
    }
    if missing.contains(&TLS_ONLY) {
        // Other statements someone added are kept.
        let current = match s3
            .get_bucket_policy()
            .bucket(name)
            .set_expected_bucket_owner(owner.map(str::to_owned))
            .send()
            .await
        {
            Ok(output) => output.policy,
            Err(_) => None,
        };
        let policy = with_tls_statement(current.as_deref(), &arns(aws), name);
        s3.put_bucket_policy()
            .bucket(name)
            .set_expected_bucket_owner(owner.map(str::to_owned))
            .policy(policy.to_value().to_string())
            .send()
            .await
            .explain("s3:PutBucketPolicy", &resource, aws)?;
    }
    if missing.contains(&LIFECYCLE) {
        // PutBucketLifecycleConfiguration replaces every rule: keep the ones that are not ours.
        let ours = lifecycle_rules();
        let mut rules: Vec<LifecycleRule> = match s3
            .get_bucket_lifecycle_configuration()
            .bucket(name)
            .set_expected_bucket_owner(owner.map(str::to_owned))
            .send()
            .await
        {
            Ok(output) => output.rules.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        rules.retain(|r| !ours.iter().any(|o| o.id == r.id));
        rules.extend(ours);
        let configuration = BucketLifecycleConfiguration::builder().set_rules(Some(rules)).build();
        s3.put_bucket_lifecycle_configuration()
            .bucket(name)
            .set_expected_bucket_owner(owner.map(str::to_owned))
            .lifecycle_configuration(configuration.expect("rules are set"))
            .send()
            .await
            .explain("s3:PutLifecycleConfiguration", &resource, aws)?;
    }
    Ok(())
}

/// Plan and apply; returns what was done.
pub async fn ensure_private_bucket(aws: &Aws, name: &str) -> anyhow::Result<BucketPlan> {
    let plan = plan_bucket(aws, name, None).await?;
    apply_bucket(aws, name, None, &plan).await?;
    Ok(plan)
}

/// The id of our CORS rule; rules with other ids are the user's own and are kept.
const CORS_RULE: &str = "recording-server-web-recorder";

/// The CORS rule the web recorder at `origin` needs: its presigned PUT (with every header the
/// service signs: the browser sets Content-Length itself) and playback; `ETag` readable.
fn cors_rule(origins: &[String]) -> aws_sdk_s3::types::CorsRule {
    aws_sdk_s3::types::CorsRule::builder()
        .id(CORS_RULE)
        .set_allowed_origins(Some(origins.to_vec()))
        .allowed_methods("PUT")
        .allowed_methods("GET")
        .allowed_methods("HEAD")
        .allowed_headers("content-type")
        .allowed_headers("content-disposition")
        .allowed_headers("x-amz-expected-bucket-owner")
        .expose_headers("ETag")
        .max_age_seconds(3600)
        .build()
        .expect("methods and origins are set")
}

/// The bucket's CORS rules if ours for `origins` is missing or differs (what `apply_cors`
/// writes); `None` when it is in place. Read-only, for plans and dry runs.
pub async fn plan_cors(
    aws: &Aws,
    bucket: &str,
    owner: Option<&str>,
    origins: &[String],
) -> anyhow::Result<Option<Vec<aws_sdk_s3::types::CorsRule>>> {
    let s3 = aws.s3();
    let request = s3.get_bucket_cors().bucket(bucket).set_expected_bucket_owner(owner.map(str::to_owned));
    let current = match request.send().await {
        Ok(output) => output.cors_rules().to_vec(),
        Err(SdkError::ServiceError(e)) if e.err().code() == Some("NoSuchCORSConfiguration") => Vec::new(),
        Err(e) => return Err(crate::aws::explain(e, "s3:GetBucketCORS", &format!("bucket {bucket}"), aws)),
    };
    let ours = cors_rule(origins);
    if current.iter().any(|r| r.id() == Some(CORS_RULE) && *r == ours) {
        return Ok(None);
    }
    let mut rules: Vec<_> = current.into_iter().filter(|r| r.id() != Some(CORS_RULE)).collect();
    rules.push(ours);
    Ok(Some(rules))
}

/// Write the CORS rules `plan_cors` returned (ours with the user's own).
pub async fn apply_cors(
    aws: &Aws,
    bucket: &str,
    owner: Option<&str>,
    rules: Vec<aws_sdk_s3::types::CorsRule>,
) -> anyhow::Result<()> {
    let configuration = aws_sdk_s3::types::CorsConfiguration::builder()
        .set_cors_rules(Some(rules))
        .build()
        .expect("rules are set");
    aws.s3()
        .put_bucket_cors()
        .bucket(bucket)
        .set_expected_bucket_owner(owner.map(str::to_owned))
        .cors_configuration(configuration)
        .send()
        .await
        .explain("s3:PutBucketCORS", &format!("bucket {bucket}"), aws)?;
    Ok(())
}

/// Converge the bucket's CORS configuration on our rule for `origins`, keeping the user's own
/// rules. Whether it wrote.
pub async fn ensure_cors(
    aws: &Aws,
    bucket: &str,
    owner: Option<&str>,
    origins: &[String],
) -> anyhow::Result<bool> {
    match plan_cors(aws, bucket, owner, origins).await? {
        Some(rules) => apply_cors(aws, bucket, owner, rules).await.map(|()| true),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn aws(endpoint: Option<&str>) -> Aws {
        let sdk = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        Aws { sdk, endpoint: endpoint.map(str::to_owned) }
    }

    /// AWS and https endpoints get the TLS-only policy (the tests' emulator never does, so the
    /// decision is tested here); a plain-HTTP endpoint is skipped, and deploy says so.
    #[test]
    fn the_tls_only_policy_is_planned_for_aws_and_https_and_skipped_over_plain_http() {
        for (endpoint, reachable) in
            [(None, true), (Some("https://s3.example.test"), true), (Some("http://127.0.0.1:5000"), false)]
        {
            let aws = aws(endpoint);
            assert_eq!(tls_reachable(&aws), reachable, "{endpoint:?}");
            assert_eq!(skipped_protections(&aws).is_empty(), reachable, "{endpoint:?}");
        }
        let skipped = skipped_protections(&aws(Some("http://127.0.0.1:5000")));
        assert_eq!(skipped, ["TLS-only policy: http://127.0.0.1:5000 is plain HTTP, which the policy would lock out (set on AWS and https endpoints)"]);
    }

    #[test]
    fn the_tls_statement_is_added_to_other_statements_once() {
        let other = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Theirs","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
        let arns = Arns::new("us-east-1", "");
        let policy = with_tls_statement(Some(other), &arns, "b");
        assert_eq!(policy.statement.len(), 2);
        let text = policy.to_value().to_string();
        assert!(has_tls_statement(&text, &arns, "b"));
        assert!(!has_tls_statement(other, &arns, "b"));
        let again = with_tls_statement(Some(&text), &arns, "b");
        assert_eq!(again, policy, "applying twice changes nothing");
        let fresh = with_tls_statement(None, &arns, "b").to_value();
        assert_eq!(fresh["Statement"][0]["Condition"]["Bool"]["aws:SecureTransport"], "false");
        assert_eq!(fresh["Statement"][0]["Resource"], json!(["arn:aws:s3:::b", "arn:aws:s3:::b/*"]));
        // Reformatted by AWS (one action as a string) it is still ours.
        let reformatted = text.replace(r#"["s3:*"]"#, r#""s3:*""#);
        assert!(has_tls_statement(&reformatted, &arns, "b"));
        let china = with_tls_statement(None, &Arns::new("cn-north-1", ""), "b").to_value();
        assert_eq!(china["Statement"][0]["Resource"][0], "arn:aws-cn:s3:::b");
    }
}
