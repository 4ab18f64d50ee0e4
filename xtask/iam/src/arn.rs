//! ARNs, built in one place, with the partition taken from the region.

/// An AWS partition: the second field of every ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    /// Standard regions: `aws`.
    Aws,
    /// China (`cn-north-1`, `cn-northwest-1`): `aws-cn`.
    China,
    /// GovCloud (`us-gov-west-1`, `us-gov-east-1`): `aws-us-gov`.
    GovCloud,
}

impl Partition {
    /// The partition a region belongs to.
    pub fn of_region(region: &str) -> Partition {
        if region.starts_with("cn-") {
            Partition::China
        } else if region.starts_with("us-gov-") {
            Partition::GovCloud
        } else {
            Partition::Aws
        }
    }

    /// `aws`, `aws-cn` or `aws-us-gov`.
    pub fn name(self) -> &'static str {
        match self {
            Partition::Aws => "aws",
            Partition::China => "aws-cn",
            Partition::GovCloud => "aws-us-gov",
        }
    }
}

/// Builds the ARNs of one account in one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arns {
    partition: Partition,
    region: String,
    account: String,
}

impl Arns {
    /// ARNs in `region` of `account`.
    pub fn new(region: &str, account: &str) -> Arns {
        Arns {
            partition: Partition::of_region(region),
            region: region.to_owned(),
            account: account.to_owned(),
        }
    }

    /// The partition, e.g. `aws`.
    pub fn partition(&self) -> Partition {
        self.partition
    }

    fn p(&self) -> &'static str {
        self.partition.name()
    }

    /// A DynamoDB table.
    pub fn table(&self, table: &str) -> String {
        format!("arn:{}:dynamodb:{}:{}:table/{table}", self.p(), self.region, self.account)
    }

    /// An index of a DynamoDB table.
    pub fn index(&self, table: &str, index: &str) -> String {
        format!("{}/index/{index}", self.table(table))
    }

    /// An S3 bucket (bucket ARNs name no region or account).
    pub fn bucket(&self, bucket: &str) -> String {
        format!("arn:{}:s3:::{bucket}", self.p())
    }

    /// Every object of an S3 bucket.
    pub fn objects(&self, bucket: &str) -> String {
        format!("{}/*", self.bucket(bucket))
    }

    /// An IAM role (IAM is global: no region).
    pub fn role(&self, role: &str) -> String {
        format!("arn:{}:iam::{}:role/{role}", self.p(), self.account)
    }

    /// An IAM user; `None` for the policy variable `${aws:username}`.
    pub fn user(&self, user: Option<&str>) -> String {
        format!("arn:{}:iam::{}:user/{}", self.p(), self.account, user.unwrap_or("${aws:username}"))
    }

    /// Every IAM group of the account.
    pub fn groups(&self) -> String {
        format!("arn:{}:iam::{}:group/*", self.p(), self.account)
    }

    /// A managed policy of the account.
    pub fn policy(&self, name: &str) -> String {
        format!("arn:{}:iam::{}:policy/{name}", self.p(), self.account)
    }

    /// Every managed policy, AWS's and any account's.
    pub fn any_policy(&self) -> String {
        format!("arn:{}:iam::*:policy/*", self.p())
    }

    /// A Lambda function (unqualified).
    pub fn function(&self, function: &str) -> String {
        format!("arn:{}:lambda:{}:{}:function:{function}", self.p(), self.region, self.account)
    }

    /// A CloudWatch Logs group, as IAM names it for group-level calls.
    pub fn log_group(&self, group: &str) -> String {
        format!("arn:{}:logs:{}:{}:log-group:{group}", self.p(), self.region, self.account)
    }

    /// A log group with `:*`: its streams, and the group as CloudWatch Logs reports its ARN.
    pub fn log_streams(&self, group: &str) -> String {
        format!("{}:*", self.log_group(group))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_follows_the_region() {
        assert_eq!(Arns::new("eu-west-1", "1").table("t"), "arn:aws:dynamodb:eu-west-1:1:table/t");
        assert_eq!(Arns::new("cn-north-1", "1").bucket("b"), "arn:aws-cn:s3:::b");
        assert_eq!(Arns::new("us-gov-west-1", "1").role("r"), "arn:aws-us-gov:iam::1:role/r");
        assert_eq!(Arns::new("us-east-1", "1").user(None), "arn:aws:iam::1:user/${aws:username}");
        assert_eq!(Arns::new("us-east-1", "1").log_streams("/g"), "arn:aws:logs:us-east-1:1:log-group:/g:*");
    }
}
