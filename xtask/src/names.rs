//! Deterministic names and ARNs of a stage's resources: deploy, destroy and check-iam find
//! everything by these, so there is no state file to lose.

use app::permissions::ResourceKind;
use app::schema::{record, RECORD_TABLE, USER_TABLE};

/// Stage names become parts of resource names: keep them short and plain.
pub fn validate_stage(stage: &str) -> anyhow::Result<()> {
    let ok = !stage.is_empty()
        && stage.len() <= 20
        && stage.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        anyhow::bail!("stage {stage:?} is not valid: use 1-20 lowercase letters, digits or '-'");
    }
    Ok(())
}

/// A stage's tables when nothing else says: named after the stage, so two stages never share
/// them by default. `--table-prefix ''` names the seed's `record_user` and `record_record`.
pub fn default_prefix(stage: &str) -> String {
    format!("{stage}-")
}

/// A bucket name as S3 accepts it (general purpose buckets): 3-63 characters of lowercase
/// letters, digits, dots and hyphens, starting and ending with a letter or digit, no `..`, not an
/// IP address, none of the reserved prefixes and suffixes.
pub fn validate_bucket(name: &str) -> Result<(), String> {
    let problem = if !(3..=63).contains(&name.len()) {
        Some(format!("is {} characters long; S3 allows 3 to 63", name.len()))
    } else if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-') {
        Some("may hold only lowercase letters, digits, '.' and '-'".to_owned())
    } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        Some("must start and end with a letter or digit".to_owned())
    } else if name.contains("..") {
        Some("must not contain '..'".to_owned())
    } else if name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok()) {
        Some("must not be an IP address".to_owned())
    } else if ["xn--", "sthree-", "amzn-s3-demo-"].iter().any(|p| name.starts_with(p))
        || ["-s3alias", "--ol-s3", "--x-s3", "--table-s3"].iter().any(|s| name.ends_with(s))
    {
        Some("uses a prefix or suffix S3 reserves".to_owned())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(format!("bucket name {name:?} {problem}")),
        None => Ok(()),
    }
}

/// A stage's function: its name depends on the stage alone.
pub fn function_name(stage: &str) -> String {
    format!("recording-server-{stage}")
}

/// The log group Lambda writes the stage's function's output to.
pub fn log_group(stage: &str) -> String {
    format!("/aws/lambda/{}", function_name(stage))
}

/// The names of one stage's resources in one account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub stage: String,
    pub account: String,
    pub region: String,
    pub table_prefix: String,
    pub function: String,
    pub role: String,
    pub bucket: String,
    /// The IAM user name of whoever runs the task, when known (check-iam's own rows).
    pub caller_user: Option<String>,
}

impl Names {
    /// `bucket` overrides the default `recording-server-<stage>-<account>-<region>` (bucket names
    /// are global, so the default includes the account and region).
    pub fn new(stage: &str, account: &str, region: &str, table_prefix: &str, bucket: Option<&str>) -> Self {
        Names {
            stage: stage.to_owned(),
            account: account.to_owned(),
            region: region.to_owned(),
            table_prefix: table_prefix.to_owned(),
            function: function_name(stage),
            role: format!("recording-server-{stage}-lambda"),
            bucket: bucket
                .map_or_else(|| format!("recording-server-{stage}-{account}-{region}"), str::to_owned),
            caller_user: None,
        }
    }

    pub fn user_table(&self) -> String {
        USER_TABLE.name(&self.table_prefix)
    }

    pub fn record_table(&self) -> String {
        RECORD_TABLE.name(&self.table_prefix)
    }

    pub fn log_group(&self) -> String {
        log_group(&self.stage)
    }

    /// The ARN builder of this account and region (its partition included).
    pub fn arns(&self) -> iam::Arns {
        iam::Arns::new(&self.region, &self.account)
    }

    pub fn table_arn(&self, table: &str) -> String {
        self.arns().table(table)
    }

    pub fn role_arn(&self) -> String {
        self.arns().role(&self.role)
    }

    pub fn function_arn(&self) -> String {
        self.arns().function(&self.function)
    }

    pub fn bucket_arn(&self) -> String {
        self.arns().bucket(&self.bucket)
    }

    /// The ARNs a runtime permission applies to.
    pub fn runtime_arns(&self, kind: ResourceKind) -> Vec<String> {
        match kind {
            ResourceKind::UserTable => vec![self.table_arn(&self.user_table())],
            ResourceKind::RecordTable => vec![self.table_arn(&self.record_table())],
            ResourceKind::RecordIndex => vec![self.arns().index(&self.record_table(), record::BY_USER_INDEX)],
            ResourceKind::BucketObjects => vec![self.arns().objects(&self.bucket)],
            ResourceKind::LogGroup => vec![self.arns().log_streams(&self.log_group())],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3s_rules() {
        assert!(validate_bucket("recording-server-dev-123456789012-eu-west-1").is_ok());
        let long = Names::new("abcdefghijklmnopqrst", "123456789012", "ap-southeast-2", "", None).bucket;
        assert!(validate_bucket(&long).unwrap_err().contains("65 characters"), "{long}");
        assert!(validate_bucket("UPPER_bad").unwrap_err().contains("lowercase"));
        assert!(validate_bucket("192.168.1.1").is_err());
        assert!(validate_bucket("a..b").is_err());
        assert!(validate_bucket("-ab").is_err());
    }

    #[test]
    fn names_are_derived_from_stage_account_and_region() {
        let n = Names::new("prod", "123456789012", "eu-west-1", "prod-", None);
        assert_eq!(n.function, "recording-server-prod");
        assert_eq!(n.bucket, "recording-server-prod-123456789012-eu-west-1");
        assert_eq!(n.runtime_arns(ResourceKind::RecordIndex), [
            "arn:aws:dynamodb:eu-west-1:123456789012:table/prod-record_record/index/user_id-created_at-index"
        ]);
        assert_eq!(
            n.runtime_arns(ResourceKind::LogGroup),
            ["arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/recording-server-prod:*"]
        );
    }
}
