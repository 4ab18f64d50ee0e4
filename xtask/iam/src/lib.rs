//! The project's model of AWS permissions, shared by the service (`app`, its runtime list) and
//! the tooling (`xtask`: policies, check-iam's probes, the coverage of recorded calls):
//! - [`Action`]: every IAM action the project uses, defined once, with its service, resource
//!   type and access level;
//! - [`ResourceKind`]: the service's runtime resources;
//! - [`PolicyDocument`]: policies as types, and their evaluation;
//! - [`Arns`]: ARNs, with the partition taken from the region;
//! - [`ErrorReply`]: what AWS answered to a failed call, read one way by both crates.
//!
//! It builds without the AWS SDK: its tests compile and run in seconds.

mod action;
mod arn;
pub mod policy;
mod reply;

pub use action::{Access, Action, ResourceType, Service};
pub use arn::{Arns, Partition};
pub use policy::{Effect, Evaluation, PolicyDocument, Statement, Strings};
pub use reply::{xml_tag, ErrorReply};

/// The kind of runtime resource the service acts on; the tooling turns each into ARNs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    /// The `record_user` table.
    UserTable,
    /// The `record_record` table.
    RecordTable,
    /// The `user_id-created_at-index` of `record_record`.
    RecordIndex,
    /// Objects in the recordings bucket (`arn:aws:s3:::bucket/*`).
    BucketObjects,
    /// The function's CloudWatch Logs group and its streams.
    LogGroup,
}
