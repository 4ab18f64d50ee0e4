//! What a converging task did, or with `--dry-run` would do, to one resource: one type for
//! create-tables, deploy (its bucket, tables, role, function, URL, policy and log group) and
//! destroy.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Create,
    Update,
    /// Take over data another stage (or no stage) owns: deploy's `--adopt-data`.
    Adopt,
    Delete,
    Unchanged,
}

impl Outcome {
    /// `Create` if it was created, else `Update` if anything changed, else `Unchanged`.
    pub fn of(created: bool, changed: bool) -> Outcome {
        match (created, changed) {
            (true, _) => Outcome::Create,
            (false, true) => Outcome::Update,
            (false, false) => Outcome::Unchanged,
        }
    }

    /// The verb deploy prints per step: `create`, or `would create` in a dry run.
    pub fn verb(self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (Outcome::Unchanged, _) => "unchanged",
            (Outcome::Create, false) => "create",
            (Outcome::Create, true) => "would create",
            (Outcome::Update, false) => "update",
            (Outcome::Update, true) => "would update",
            (Outcome::Adopt, false) => "adopt",
            (Outcome::Adopt, true) => "would adopt",
            (Outcome::Delete, false) => "delete",
            (Outcome::Delete, true) => "would delete",
        }
    }

    /// What was done, as create-tables and destroy report it: `created`, `up to date`,
    /// `would update`, `deleted`, `already gone`.
    pub fn done(self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (Outcome::Unchanged, _) => "up to date",
            (Outcome::Create, false) => "created",
            (Outcome::Update, false) => "updated",
            (Outcome::Adopt, false) => "adopted",
            (Outcome::Delete, false) => "deleted",
            (other, true) => other.verb(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_read_as_each_task_reports_them() {
        assert_eq!(Outcome::of(true, false), Outcome::Create);
        assert_eq!(Outcome::of(false, true), Outcome::Update);
        assert_eq!(Outcome::of(false, false).verb(true), "unchanged");
        assert_eq!(Outcome::Update.verb(true), "would update");
        assert_eq!(Outcome::Create.done(false), "created");
        assert_eq!(Outcome::Unchanged.done(false), "up to date");
        assert_eq!(Outcome::Create.done(true), "would create");
        assert_eq!(serde_json::to_value(Outcome::Unchanged).unwrap(), "unchanged");
    }
}
