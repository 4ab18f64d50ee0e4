//! The Lambda builders, on a tiny standalone crate (building the real service in release mode
//! takes minutes). The zig tools come from `cargo xtask test`, which installs them before the
//! tests run, so the tests themselves never reach PyPI.

use std::path::{Path, PathBuf};

use xshell::Shell;
use xtask::deploy::build::{build, BuildSpec, Builder};
use xtask::deploy::package::{check_binary, read_elf, Arch};

use crate::helpers::Scratch;

/// A fresh crate whose binary prints a greeting and calls into glibc.
fn fixture_crate() -> Scratch {
    let dir = Scratch::dir("build");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"hello-lambda\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("src/main.rs"),
        "fn main() {\n    let args: Vec<String> = std::env::args().skip(1).collect();\n    println!(\"hello from {}\", args.join(\" \"));\n}\n",
    )
    .unwrap();
    dir
}

fn zig_venv() -> PathBuf {
    let venv = std::env::var("RECORDING_ZIG_TOOLS").expect(
        "RECORDING_ZIG_TOOLS is not set: run the tests with `cargo xtask test`, which installs zig and cargo-lambda",
    );
    PathBuf::from(venv)
}

fn spec(crate_dir: &Path, arch: Arch, builder: Builder) -> BuildSpec {
    BuildSpec {
        manifest: crate_dir.join("Cargo.toml"),
        package: "hello-lambda".into(),
        bin: "hello-lambda".into(),
        arch,
        builder,
        target_dir: crate_dir.join("target"),
        profile: "release".into(),
    }
}

/// What the fixture binary prints when run with `arg`.
fn greeting(binary: &Path, arg: &str) -> String {
    let output = std::process::Command::new(binary).arg(arg).output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_zig_builder_links_against_glibc_2_17_and_the_binary_passes_the_guard_and_runs() {
    let sh = Shell::new().unwrap();
    let dir = fixture_crate();

    let binary = build(&sh, &spec(&dir, Arch::X86_64, Builder::Zig), Some(&zig_venv())).unwrap();

    let bytes = std::fs::read(&binary).unwrap();
    let facts = check_binary(&bytes, Arch::X86_64).unwrap();
    assert_eq!(facts.machine, 0x3E);
    let newest = facts.newest_glibc.expect("a glibc-linked binary names its glibc versions");
    assert!(newest <= (2, 17), "the zig build needs glibc {newest:?}");
    assert_eq!(greeting(&binary, "zig"), "hello from zig\n");
}

#[test]
fn the_cargo_builder_builds_for_the_host_glibc() {
    let sh = Shell::new().unwrap();
    let dir = fixture_crate();

    let binary = build(&sh, &spec(&dir, Arch::X86_64, Builder::Cargo), None).unwrap();

    let facts = read_elf(&std::fs::read(&binary).unwrap()).unwrap();
    assert_eq!(facts.machine, 0x3E);
    assert!(facts.newest_glibc.is_some());
    assert_eq!(greeting(&binary, "cargo"), "hello from cargo\n");
}

#[test]
fn arm64_builds_for_aarch64_or_says_how_to_add_the_target() {
    let sh = Shell::new().unwrap();
    let dir = fixture_crate();
    let libdir = std::process::Command::new("rustc")
        .args(["--print", "target-libdir", "--target", "aarch64-unknown-linux-gnu"])
        .output()
        .unwrap();
    let installed = Path::new(String::from_utf8_lossy(&libdir.stdout).trim()).exists();

    let result = build(&sh, &spec(&dir, Arch::Arm64, Builder::Zig), Some(&zig_venv()));

    if installed {
        let facts = check_binary(&std::fs::read(result.unwrap()).unwrap(), Arch::Arm64).unwrap();
        assert_eq!(facts.machine, 0xB7);
    } else {
        let message = format!("{:#}", result.unwrap_err());
        assert!(message.contains("rustup target add aarch64-unknown-linux-gnu"), "{message}");
        assert!(!dir.join("target").exists(), "nothing should be built for a missing target");
    }
}
