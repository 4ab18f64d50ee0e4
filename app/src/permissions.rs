//! The IAM permissions the service needs at run time: one catalogue, read by `xtask` to render the
//! Lambda execution role's policy and to check it, and tested against the calls the code makes.

pub use iam::{Action, ResourceKind};

/// One action on one kind of resource, with the reason the service needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// The IAM action, e.g. `dynamodb:Query`.
    pub action: Action,
    /// What it acts on, made concrete by the tooling for each stage.
    pub resource: ResourceKind,
    /// The routes (or platform duty) that need it, for people reading a policy.
    pub why: &'static str,
    /// The routes that fail without it (what check-iam reports for a role that lacks it).
    pub routes: &'static [&'static str],
}

const fn p(
    action: Action,
    resource: ResourceKind,
    why: &'static str,
    routes: &'static [&'static str],
) -> Permission {
    Permission { action, resource, why, routes }
}

/// Every route that takes an auth key.
const AUTHENTICATED: &[&str] = &[
    "POST /logout",
    "PUT /upload/record/{file_name}",
    "GET /record/list",
    "POST /record/uploads",
    "POST /record/{record_id}/complete",
    "GET /record/{record_id}",
    "DELETE /record/{record_id}",
];
const LOGIN: &[&str] = &["GET /login", "POST /login"];
/// Used by Lambda itself on the role's behalf, not by the service's code: without it the
/// function's logs are lost, no route fails.
pub const LAMBDA: &[&str] = &["(the function's logs, written by Lambda)"];

/// Everything the running service calls. Nothing else is granted to its role.
pub const RUNTIME: &[Permission] = &[
    p(Action::DynamoDbGetItem, ResourceKind::UserTable, "check a presented auth key", AUTHENTICATED),
    p(Action::DynamoDbPutItem, ResourceKind::UserTable, "store a newly issued auth key", LOGIN),
    p(
        Action::DynamoDbDeleteItem,
        ResourceKind::UserTable,
        "revoke a key on logout, or a user's oldest keys beyond the cap on login",
        &["POST /logout"],
    ),
    p(
        Action::DynamoDbUpdateItem,
        ResourceKind::UserTable,
        "charge and refund the per-user quotas (pending uploads, recordings, bytes)",
        &[
            "PUT /upload/record/{file_name}",
            "POST /record/uploads",
            "POST /record/{record_id}/complete",
            "DELETE /record/{record_id}",
        ],
    ),
    p(
        Action::DynamoDbQuery,
        ResourceKind::UserTable,
        "list a user's keys: cap them on login, revoke them all on logout?all=true",
        &["GET /login", "POST /login", "POST /logout"],
    ),
    p(
        Action::DynamoDbPutItem,
        ResourceKind::RecordTable,
        "store an uploaded record",
        &["PUT /upload/record/{file_name}", "POST /record/uploads"],
    ),
    p(
        Action::DynamoDbGetItem,
        ResourceKind::RecordTable,
        "read one of the caller's records",
        &["GET /record/{record_id}", "POST /record/{record_id}/complete", "DELETE /record/{record_id}"],
    ),
    p(
        Action::DynamoDbDeleteItem,
        ResourceKind::RecordTable,
        "delete one of the caller's records",
        &["DELETE /record/{record_id}"],
    ),
    p(
        Action::DynamoDbUpdateItem,
        ResourceKind::RecordTable,
        "publish a completed large upload",
        &["POST /record/{record_id}/complete"],
    ),
    p(
        Action::DynamoDbQuery,
        ResourceKind::RecordIndex,
        "list the caller's records, newest first",
        &["GET /record/list"],
    ),
    p(
        Action::S3PutObject,
        ResourceKind::BucketObjects,
        "store an uploaded recording (directly, or by the presigned URL)",
        &["PUT /upload/record/{file_name}", "POST /record/uploads"],
    ),
    p(
        Action::S3GetObject,
        ResourceKind::BucketObjects,
        "presigned download; check a large upload (HeadObject)",
        &["GET /record/{record_id}", "POST /record/{record_id}/complete"],
    ),
    p(
        Action::S3DeleteObject,
        ResourceKind::BucketObjects,
        "delete a recording, or undo a failed upload",
        &["DELETE /record/{record_id}"],
    ),
    p(
        Action::LogsCreateLogGroup,
        ResourceKind::LogGroup,
        "Lambda creates the log group on first run",
        LAMBDA,
    ),
    p(Action::LogsCreateLogStream, ResourceKind::LogGroup, "Lambda writes each sandbox to a stream", LAMBDA),
    p(Action::LogsPutLogEvents, ResourceKind::LogGroup, "Lambda ships the service's logs", LAMBDA),
];

/// The runtime actions on one kind of resource, each once, in catalogue order.
pub fn actions_on(kind: ResourceKind) -> Vec<Action> {
    RUNTIME.iter().filter(|p| p.resource == kind).map(|p| p.action).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_action_is_listed_twice_for_the_same_resource() {
        for (i, a) in RUNTIME.iter().enumerate() {
            assert!(
                !RUNTIME[i + 1..].iter().any(|b| b.action == a.action && b.resource == a.resource),
                "{} on {:?} is listed twice",
                a.action,
                a.resource
            );
        }
    }

    #[test]
    fn the_list_route_may_only_query_the_index() {
        assert_eq!(actions_on(ResourceKind::RecordIndex), [Action::DynamoDbQuery]);
    }
}
