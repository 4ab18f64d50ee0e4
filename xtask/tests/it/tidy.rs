//! Offline checks of the repository itself.

use clap::CommandFactory;
use xtask::flags::Xtask;

fn repo_file(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

#[test]
fn the_readme_documents_every_task() {
    let readme = repo_file("README.md");
    for task in Xtask::command().get_subcommands() {
        let mention = format!("cargo xtask {}", task.get_name());
        assert!(readme.contains(&mention), "README.md never mentions `{mention}`");
    }
}

#[test]
fn ci_runs_the_readmes_test_command() {
    assert!(repo_file(".ci/run").lines().any(|l| l.trim() == "cargo xtask test"));
    assert!(repo_file("README.md").contains("cargo xtask test"));
}

#[test]
fn no_table_name_is_written_outside_the_schema() {
    for path in [
        "app/src/storage/users.rs",
        "app/src/storage/records.rs",
        "xtask/src/create_tables.rs",
        "xtask/src/names.rs",
    ] {
        let code = repo_file(path);
        let code = code.split("#[cfg(test)]").next().unwrap();
        for name in ["\"record_user\"", "\"record_record\"", "\"user_id-created_at-index\""] {
            assert!(!code.contains(name), "{path} spells {name}: read it from app::schema");
        }
    }
}
