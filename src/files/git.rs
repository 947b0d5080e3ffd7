//! What git says about the project's paths: whether a file is tracked, ignored or was ever
//! committed. `git` runs with paths only on its command line, never a value, and a machine
//! without git (or a directory outside any work tree) simply has no answers.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A git work tree, asked from a directory inside it.
pub struct WorkTree {
    dir: std::path::PathBuf,
}

impl WorkTree {
    /// The work tree `dir` is in, or `None` (no git, or not inside one).
    pub fn containing(dir: &Path) -> Option<WorkTree> {
        let tree = WorkTree {
            dir: dir.to_path_buf(),
        };
        tree.run(&["rev-parse", "--is-inside-work-tree"])
            .filter(|out| out.status.success() && out.stdout.starts_with(b"true"))
            .map(|_| tree)
    }

    fn run(&self, args: &[&str]) -> Option<Output> {
        Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
    }

    /// Whether git tracks `path` (absolute or relative to the directory asked from).
    pub fn is_tracked(&self, path: &Path) -> bool {
        let path = path.to_string_lossy();
        self.run(&["ls-files", "--error-unmatch", "--", &path])
            .is_some_and(|o| o.status.success())
    }

    /// Whether an ignore rule matches `path` (a directory is asked with a trailing `/`);
    /// `None` when git cannot say (a path outside the work tree). `--no-index`: a tracked file
    /// matched by a rule still counts as ignored; tracking is asked separately.
    pub fn is_ignored(&self, path: &str) -> Option<bool> {
        let out = self.run(&["check-ignore", "-q", "--no-index", "--", path])?;
        match out.status.code() {
            Some(0) => Some(true),
            Some(1) => Some(false),
            _ => None,
        }
    }

    /// The commits that ever touched `path`, newest first; `None` when the history cannot be
    /// read, empty in a repository without commits.
    pub fn commits_touching(&self, path: &str) -> Option<Vec<String>> {
        let out = self.run(&["log", "--all", "--format=%h", "--", path])?;
        if !out.status.success() {
            return Some(Vec::new());
        }
        Some(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect(),
        )
    }
}
