//! Python-packaged tools (the moto emulator; zig and cargo-lambda for Lambda builds; the
//! parliament policy linter for the tests), each installed on first use into its own
//! virtualenv under `<target>/tools`, pinned.

use std::path::{Path, PathBuf};

use anyhow::Context;
use xshell::{cmd, Shell};

/// A pinned set of PyPI packages and the executable that shows they are installed.
pub struct Tool {
    /// Directory name under `<target>/tools`, versioned so a bump installs afresh.
    pub name: &'static str,
    pub packages: &'static [&'static str],
    pub executable: &'static str,
    /// What the tool is for, in the progress message.
    pub purpose: &'static str,
}

/// Duo Labs' IAM policy linter, which the tests run on every rendered policy part (with its
/// community auditors: permissions management, privilege escalation).
pub const PARLIAMENT: Tool = Tool {
    name: "parliament-1.6.4",
    packages: &["parliament==1.6.4"],
    executable: "parliament",
    purpose: "the parliament IAM policy linter for the tests",
};

impl Tool {
    /// The virtualenv directory of this tool.
    pub fn venv(&self, target_dir: &Path) -> PathBuf {
        target_dir.join("tools").join(self.name)
    }

    /// Install the tool unless it is already there; returns its virtualenv directory.
    pub fn install(&self, sh: &Shell, target_dir: &Path) -> anyhow::Result<PathBuf> {
        let venv = self.venv(target_dir);
        // Written only after pip succeeded, so an interrupted install is redone, not trusted.
        let marker = venv.join("installed");
        if sh.path_exists(&marker) && sh.path_exists(venv.join("bin").join(self.executable)) {
            return Ok(venv);
        }
        cmd!(sh, "python3 --version").quiet().ignore_stdout().run().with_context(|| {
            format!(
                "python3 not found: install Python 3.9+ (e.g. `apt install python3 python3-venv`); it installs {}",
                self.purpose
            )
        })?;
        let packages = self.packages;
        eprintln!("installing {} into {} (first run only)...", packages.join(" "), venv.display());
        cmd!(sh, "python3 -m venv {venv}").quiet().run().context(
            "could not create a Python virtualenv: install the venv module (e.g. `apt install python3-venv`)",
        )?;
        let pip = venv.join("bin").join("pip");
        cmd!(sh, "{pip} install --quiet --disable-pip-version-check {packages...}").run().with_context(
            || format!("pip could not install {}: check access to PyPI, then rerun", packages.join(" ")),
        )?;
        sh.write_file(&marker, packages.join("\n"))?;
        Ok(venv)
    }
}
