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
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut sources = Vec::new();
    let mut dirs = vec![root.join("app/src"), root.join("xtask/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("app/src/schema.rs") {
                sources.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    assert!(sources.len() > 40, "only {} source files found", sources.len());
    for path in sources {
        let code = repo_file(&path);
        let code = code.split("#[cfg(test)]").next().unwrap();
        for name in ["\"record_user\"", "\"record_record\"", "\"user_id-created_at-index\""] {
            assert!(!code.contains(name), "{path} spells {name}: read it from app::schema");
        }
    }
}

/// Each dependency's features as `cargo tree` resolves them for `args`: `name version` → features.
fn features(args: &[&str]) -> std::collections::BTreeMap<String, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let output = std::process::Command::new(cargo)
        .current_dir(root)
        .args(["tree", "--offline", "--locked", "--prefix", "none", "-f", "{p}|{f}"])
        .args(args)
        .output()
        .expect("run cargo tree");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    let mut map = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some((package, features)) = line.split_once('|') else { continue };
        let name_version: Vec<&str> = package.split(' ').take(2).collect();
        let features = features.trim_end_matches(" (*)").trim_end_matches(" (proc-macro)");
        map.insert(name_version.join(" "), features.to_owned());
    }
    map
}

/// `cargo xtask` builds xtask alone; `cargo build`, `cargo xtask local` (`--workspace --bin app`)
/// and `cargo clippy --workspace` the workspace without dev-dependencies; `cargo xtask test`,
/// `cargo test` and `cargo clippy --all-targets` the workspace with them. A dependency resolved
/// with other features in one of these builds is compiled twice (every SDK crate was, once).
#[test]
fn one_feature_set_per_dependency() {
    let workspace_tests = features(&["--workspace", "-e", "normal,build,dev"]);
    let mut differing = Vec::new();
    for (build, args) in [
        ("cargo xtask", &["-p", "xtask", "-e", "normal,build"][..]),
        ("cargo build", &["--workspace", "-e", "normal,build"][..]),
    ] {
        let resolved = features(args);
        assert!(resolved.len() > 100, "{build}: cargo tree listed too little: {resolved:?}");
        for (package, alone) in &resolved {
            if let Some(tests) = workspace_tests.get(package).filter(|tests| *tests != alone) {
                differing.push(format!("{package}: [{alone}] in {build}, [{tests}] in the tests"));
            }
        }
    }
    assert!(
        differing.is_empty(),
        "compiled twice, once per feature set: give the dependencies the test build's features\n{}",
        differing.join("\n")
    );
}

/// `rust-version` must be what the locked dependencies need: with an older toolchain the build
/// would fail inside a dependency instead of cargo saying which Rust to install.
#[test]
fn the_declared_rust_version_is_the_newest_a_dependency_needs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let output = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline"])
        .current_dir(root)
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let version = |v: &serde_json::Value| -> Vec<u32> {
        v.as_str().unwrap_or("0").split('.').map(|p| p.parse().unwrap()).collect()
    };
    let packages = metadata["packages"].as_array().unwrap();
    let ours = packages.iter().find(|p| p["name"] == "xtask").map(|p| version(&p["rust_version"])).unwrap();
    let (needed, by) = packages
        .iter()
        .filter(|p| p["source"].is_string())
        .map(|p| (version(&p["rust_version"]), p["name"].as_str().unwrap().to_owned()))
        .max()
        .unwrap();
    assert_eq!(ours, needed, "Cargo.toml's rust-version differs from {by}'s, the newest a dependency needs");
}

/// The front page orients a newcomer (two screens at most); detail lives in each crate's README,
/// and every file the front page points at exists.
#[test]
fn the_readme_fits_two_screens_and_its_links_resolve() {
    let readme = repo_file("README.md");
    let lines = readme.lines().count();
    assert!(lines <= 100, "README.md has {lines} lines: move detail to app/README.md or xtask/README.md");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for link in readme.split("](").skip(1).filter_map(|rest| rest.split(')').next()) {
        let path = link.split('#').next().unwrap();
        if !path.starts_with("http") {
            assert!(root.join(path).exists(), "README.md links to {path}, which does not exist");
        }
    }
    for crate_readme in ["app/README.md", "xtask/README.md"] {
        assert!(readme.contains(crate_readme), "README.md does not point at {crate_readme}");
    }
}

/// Each crate's README covers what it owns: every task in xtask's, every route in app's.
#[test]
fn the_crate_readmes_document_every_task_and_every_route() {
    let xtask = repo_file("xtask/README.md");
    for task in Xtask::command().get_subcommands() {
        let mention = format!("cargo xtask {}", task.get_name());
        assert!(xtask.contains(&mention), "xtask/README.md never mentions `{mention}`");
    }
    // Placeholders are compared by position only: `{record_id}` and `{id}` are the same route.
    let generic = |path: &str| {
        let mut out = String::new();
        let mut inside = false;
        for c in path.chars() {
            match c {
                '{' => {
                    inside = true;
                    out.push_str("{}");
                }
                '}' => inside = false,
                _ if !inside => out.push(c),
                _ => {}
            }
        }
        out
    };
    let app = generic(&repo_file("app/README.md"));
    let mut routes = 0;
    for source in ["app/src/routes.rs", "app/src/web.rs"] {
        let code = repo_file(source);
        for route in code.split(".route(\"").skip(1).filter_map(|r| r.split('"').next()) {
            routes += 1;
            assert!(
                app.contains(&format!("`{}", generic(route)))
                    || app.contains(&format!(" {}", generic(route))),
                "app/README.md does not document the route {route} ({source})"
            );
        }
    }
    assert!(routes >= 10, "found only {routes} routes: has the router moved?");
    let web = repo_file("app/src/web.rs");
    for asset in web.split("(\"/").skip(1).filter_map(|r| r.split('"').next()) {
        assert!(app.contains(&format!("/{asset}")), "app/README.md does not document /{asset}");
    }
}
