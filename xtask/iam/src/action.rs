//! Every IAM action the project uses, defined once.
//!
//! Adding an AWS call is one line in the table below. The compiler then asks for the action's
//! probe (`xtask/src/check_iam/probe.rs`) and the requests that need it
//! (`xtask/src/coverage.rs`): both are exhaustive matches with no catch-all arm.

use std::fmt;

/// The AWS service an action belongs to (its IAM prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// `dynamodb:`
    DynamoDb,
    /// `s3:`
    S3,
    /// `iam:`
    Iam,
    /// `sts:`
    Sts,
    /// `lambda:`
    Lambda,
    /// `logs:` (CloudWatch Logs)
    Logs,
}

impl Service {
    /// The IAM prefix, which is also the SigV4 signing name of each of these services.
    pub const fn prefix(self) -> &'static str {
        match self {
            Service::DynamoDb => "dynamodb",
            Service::S3 => "s3",
            Service::Iam => "iam",
            Service::Sts => "sts",
            Service::Lambda => "lambda",
            Service::Logs => "logs",
        }
    }
}

/// The resource type an action is authorized on, as the Service Authorization Reference lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    /// A DynamoDB table (or, for Query, one of its indexes).
    Table,
    /// An S3 bucket.
    Bucket,
    /// An object in an S3 bucket.
    Object,
    /// An IAM role.
    Role,
    /// An IAM user.
    User,
    /// An IAM group.
    Group,
    /// A managed IAM policy.
    Policy,
    /// A Lambda function (or one of its versions or aliases).
    Function,
    /// A CloudWatch Logs group (or its streams).
    LogGroup,
    /// The action takes no resource: a policy grants it on `*`.
    None,
}

/// The access level the Service Authorization Reference gives an action. Policy linters
/// (parliament, IAM Access Analyzer) flag `PermissionsManagement` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Access {
    /// Lists resources or their sub-resources.
    List,
    /// Reads a resource.
    Read,
    /// Creates, changes or deletes a resource.
    Write,
    /// Tags a resource.
    Tagging,
    /// Changes who may do what: resource policies, roles' policies, public access.
    PermissionsManagement,
}

macro_rules! actions {
    ($(
        $(#[$meta:meta])*
        $variant:ident = $service:ident $name:literal, $resource:ident, $access:ident;
    )*) => {
        /// One IAM action. Its name, service, resource type and access level come from one table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action {
            $($(#[$meta])* #[doc = $name] $variant,)*
        }

        impl Action {
            /// Every action in the table, in table order.
            pub const ALL: &'static [Action] = &[$($(#[$meta])* Action::$variant,)*];

            /// The IAM name, e.g. `dynamodb:GetItem`.
            pub const fn name(self) -> &'static str {
                match self { $($(#[$meta])* Action::$variant => $name,)* }
            }

            /// The service the action belongs to.
            pub const fn service(self) -> Service {
                match self { $($(#[$meta])* Action::$variant => Service::$service,)* }
            }

            /// The resource type IAM authorizes it on.
            pub const fn resource_type(self) -> ResourceType {
                match self { $($(#[$meta])* Action::$variant => ResourceType::$resource,)* }
            }

            /// Its access level.
            pub const fn access(self) -> Access {
                match self { $($(#[$meta])* Action::$variant => Access::$access,)* }
            }
        }
    };
}

actions! {
    StsGetCallerIdentity = Sts "sts:GetCallerIdentity", None, Read;

    DynamoDbDescribeTable = DynamoDb "dynamodb:DescribeTable", Table, Read;
    DynamoDbCreateTable = DynamoDb "dynamodb:CreateTable", Table, Write;
    DynamoDbTagResource = DynamoDb "dynamodb:TagResource", Table, Tagging;
    DynamoDbListTagsOfResource = DynamoDb "dynamodb:ListTagsOfResource", Table, Read;
    DynamoDbUpdateTable = DynamoDb "dynamodb:UpdateTable", Table, Write;
    DynamoDbDescribeTimeToLive = DynamoDb "dynamodb:DescribeTimeToLive", Table, Read;
    DynamoDbUpdateTimeToLive = DynamoDb "dynamodb:UpdateTimeToLive", Table, Write;
    DynamoDbDescribeContinuousBackups = DynamoDb "dynamodb:DescribeContinuousBackups", Table, Read;
    DynamoDbUpdateContinuousBackups = DynamoDb "dynamodb:UpdateContinuousBackups", Table, Write;
    DynamoDbDeleteTable = DynamoDb "dynamodb:DeleteTable", Table, Write;
    DynamoDbGetItem = DynamoDb "dynamodb:GetItem", Table, Read;
    DynamoDbPutItem = DynamoDb "dynamodb:PutItem", Table, Write;
    DynamoDbUpdateItem = DynamoDb "dynamodb:UpdateItem", Table, Write;
    DynamoDbDeleteItem = DynamoDb "dynamodb:DeleteItem", Table, Write;
    DynamoDbQuery = DynamoDb "dynamodb:Query", Table, Read;
    DynamoDbScan = DynamoDb "dynamodb:Scan", Table, Read;

    S3CreateBucket = S3 "s3:CreateBucket", Bucket, Write;
    S3ListBucket = S3 "s3:ListBucket", Bucket, List;
    S3DeleteBucket = S3 "s3:DeleteBucket", Bucket, Write;
    S3GetBucketPublicAccessBlock = S3 "s3:GetBucketPublicAccessBlock", Bucket, Read;
    S3PutBucketPublicAccessBlock = S3 "s3:PutBucketPublicAccessBlock", Bucket, PermissionsManagement;
    S3GetEncryptionConfiguration = S3 "s3:GetEncryptionConfiguration", Bucket, Read;
    S3PutEncryptionConfiguration = S3 "s3:PutEncryptionConfiguration", Bucket, Write;
    S3GetBucketPolicy = S3 "s3:GetBucketPolicy", Bucket, Read;
    S3PutBucketPolicy = S3 "s3:PutBucketPolicy", Bucket, PermissionsManagement;
    S3GetBucketOwnershipControls = S3 "s3:GetBucketOwnershipControls", Bucket, Read;
    S3PutBucketOwnershipControls = S3 "s3:PutBucketOwnershipControls", Bucket, Write;
    S3GetLifecycleConfiguration = S3 "s3:GetLifecycleConfiguration", Bucket, Read;
    S3PutLifecycleConfiguration = S3 "s3:PutLifecycleConfiguration", Bucket, Write;
    S3GetBucketCors = S3 "s3:GetBucketCORS", Bucket, Read;
    S3PutBucketCors = S3 "s3:PutBucketCORS", Bucket, Write;
    S3GetObject = S3 "s3:GetObject", Object, Read;
    S3PutObject = S3 "s3:PutObject", Object, Write;
    S3DeleteObject = S3 "s3:DeleteObject", Object, Write;

    IamGetRole = Iam "iam:GetRole", Role, Read;
    IamCreateRole = Iam "iam:CreateRole", Role, Write;
    IamTagRole = Iam "iam:TagRole", Role, Tagging;
    IamUpdateAssumeRolePolicy = Iam "iam:UpdateAssumeRolePolicy", Role, PermissionsManagement;
    IamGetRolePolicy = Iam "iam:GetRolePolicy", Role, Read;
    IamPutRolePolicy = Iam "iam:PutRolePolicy", Role, PermissionsManagement;
    IamListRolePolicies = Iam "iam:ListRolePolicies", Role, List;
    IamListAttachedRolePolicies = Iam "iam:ListAttachedRolePolicies", Role, List;
    IamDeleteRolePolicy = Iam "iam:DeleteRolePolicy", Role, PermissionsManagement;
    IamDeleteRole = Iam "iam:DeleteRole", Role, Write;
    IamPassRole = Iam "iam:PassRole", Role, Write;
    IamListRoles = Iam "iam:ListRoles", None, List;
    IamSimulatePrincipalPolicy = Iam "iam:SimulatePrincipalPolicy", None, Read;
    IamGetUser = Iam "iam:GetUser", User, Read;
    IamListUserPolicies = Iam "iam:ListUserPolicies", User, List;
    IamGetUserPolicy = Iam "iam:GetUserPolicy", User, Read;
    IamListAttachedUserPolicies = Iam "iam:ListAttachedUserPolicies", User, List;
    IamListGroupsForUser = Iam "iam:ListGroupsForUser", User, List;
    IamListGroupPolicies = Iam "iam:ListGroupPolicies", Group, List;
    IamGetGroupPolicy = Iam "iam:GetGroupPolicy", Group, Read;
    IamListAttachedGroupPolicies = Iam "iam:ListAttachedGroupPolicies", Group, List;
    IamGetPolicy = Iam "iam:GetPolicy", Policy, Read;
    IamGetPolicyVersion = Iam "iam:GetPolicyVersion", Policy, Read;

    LambdaGetFunction = Lambda "lambda:GetFunction", Function, Read;
    LambdaGetFunctionConfiguration = Lambda "lambda:GetFunctionConfiguration", Function, Read;
    LambdaCreateFunction = Lambda "lambda:CreateFunction", Function, Write;
    LambdaTagResource = Lambda "lambda:TagResource", Function, Tagging;
    LambdaUpdateFunctionCode = Lambda "lambda:UpdateFunctionCode", Function, Write;
    LambdaUpdateFunctionConfiguration = Lambda "lambda:UpdateFunctionConfiguration", Function, Write;
    LambdaGetFunctionConcurrency = Lambda "lambda:GetFunctionConcurrency", Function, Read;
    LambdaPutFunctionConcurrency = Lambda "lambda:PutFunctionConcurrency", Function, Write;
    LambdaDeleteFunctionConcurrency = Lambda "lambda:DeleteFunctionConcurrency", Function, Write;
    LambdaGetFunctionUrlConfig = Lambda "lambda:GetFunctionUrlConfig", Function, Read;
    LambdaCreateFunctionUrlConfig = Lambda "lambda:CreateFunctionUrlConfig", Function, Write;
    LambdaUpdateFunctionUrlConfig = Lambda "lambda:UpdateFunctionUrlConfig", Function, Write;
    LambdaDeleteFunctionUrlConfig = Lambda "lambda:DeleteFunctionUrlConfig", Function, Write;
    LambdaGetPolicy = Lambda "lambda:GetPolicy", Function, Read;
    LambdaAddPermission = Lambda "lambda:AddPermission", Function, PermissionsManagement;
    LambdaDeleteFunction = Lambda "lambda:DeleteFunction", Function, Write;
    LambdaListVersionsByFunction = Lambda "lambda:ListVersionsByFunction", Function, List;
    LambdaListAliases = Lambda "lambda:ListAliases", Function, List;
    LambdaPublishVersion = Lambda "lambda:PublishVersion", Function, Write;
    LambdaGetAlias = Lambda "lambda:GetAlias", Function, Read;
    LambdaCreateAlias = Lambda "lambda:CreateAlias", Function, Write;
    LambdaUpdateAlias = Lambda "lambda:UpdateAlias", Function, Write;
    LambdaInvokeFunction = Lambda "lambda:InvokeFunction", Function, Write;
    LambdaRemovePermission = Lambda "lambda:RemovePermission", Function, PermissionsManagement;
    #[cfg(feature = "fake-action")]
    LambdaFakeAction = Lambda "lambda:FakeAction", Function, Write;

    LogsDescribeLogGroups = Logs "logs:DescribeLogGroups", None, List;
    LogsCreateLogGroup = Logs "logs:CreateLogGroup", LogGroup, Write;
    LogsPutRetentionPolicy = Logs "logs:PutRetentionPolicy", LogGroup, Write;
    LogsDeleteLogGroup = Logs "logs:DeleteLogGroup", LogGroup, Write;
    LogsFilterLogEvents = Logs "logs:FilterLogEvents", LogGroup, Read;
    LogsCreateLogStream = Logs "logs:CreateLogStream", LogGroup, Write;
    LogsPutLogEvents = Logs "logs:PutLogEvents", LogGroup, Write;
}

impl Action {
    /// Whether the action can change anything (every access level but List and Read).
    pub const fn writes(self) -> bool {
        !matches!(self.access(), Access::List | Access::Read)
    }

    /// The action IAM names `name` (compared without case, as IAM does), if the table has it.
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// The part after the service prefix, e.g. `GetItem`.
    pub fn operation(self) -> &'static str {
        let name = self.name();
        name.split_once(':').map_or(name, |(_, op)| op)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_carry_their_service_prefix() {
        for (i, a) in Action::ALL.iter().enumerate() {
            assert!(a.name().starts_with(&format!("{}:", a.service().prefix())), "{a}");
            assert!(!Action::ALL[i + 1..].iter().any(|b| b.name() == a.name()), "{a} twice");
            assert_eq!(Action::from_name(&a.name().to_uppercase()), Some(*a));
        }
    }

    #[test]
    fn reads_and_lists_are_the_only_actions_that_do_not_write() {
        let verb = |a: Action| a.operation().to_owned();
        for &action in Action::ALL {
            let reads = ["Get", "List", "Describe", "Filter", "Simulate", "Query", "Scan"]
                .iter()
                .any(|p| verb(action).starts_with(p));
            assert_eq!(!action.writes(), reads, "{action} is {:?}", action.access());
        }
    }

    #[test]
    fn only_actions_on_nothing_take_no_resource() {
        let none: Vec<&str> = Action::ALL
            .iter()
            .filter(|a| a.resource_type() == ResourceType::None)
            .map(|a| a.name())
            .collect();
        assert_eq!(
            none,
            [
                "sts:GetCallerIdentity",
                "iam:ListRoles",
                "iam:SimulatePrincipalPolicy",
                "logs:DescribeLogGroups"
            ]
        );
    }
}
