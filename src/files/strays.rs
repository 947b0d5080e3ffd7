//! Stray secret files: what `load` reports and `--prune` removes, and `verify` warns about.
//!
//! A file is stray only when compose-secrets answers for it: it sits in a directory
//! compose-secrets owns (its runtime directory, or one it created for secret files), no
//! declared secret names it, and either the directory is the runtime directory or
//! compose-secrets wrote the file itself. A file of the project (Compose, env, template,
//! configs) or one git tracks is never stray, wherever it is.

use std::path::{Path, PathBuf};

use super::git::WorkTree;
use super::layout::Layout;
use super::secret_dir::SecretDir;
use super::state::State;
use crate::error::Result;

/// The stray files of one directory, with the directory opened to remove them.
pub struct StrayDir {
    pub dir: SecretDir,
    pub names: Vec<String>,
}

impl StrayDir {
    pub fn paths(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.names.iter().map(|n| self.dir.path().join(n))
    }
}

/// Whether compose-secrets answers for the files in `dir`.
pub fn owned(layout: &Layout, state: &State, dir: &Path) -> bool {
    dir.starts_with(&layout.runtime_dir) || state.created_dirs.iter().any(|c| c == dir)
}

/// Every stray file, by directory: the directories of the layout and those of files
/// compose-secrets wrote for secrets no longer declared.
pub fn find(layout: &Layout, state: &State) -> Result<Vec<StrayDir>> {
    let mut dirs = layout.dirs();
    for path in &state.written {
        if let Some(dir) = path.parent() {
            if !dirs.iter().any(|d| d == dir) {
                dirs.push(dir.to_path_buf());
            }
        }
    }
    let mut git: Option<Option<WorkTree>> = None;
    let mut out = Vec::new();
    for dir in dirs {
        if !owned(layout, state, &dir) {
            continue;
        }
        let Some(opened) = layout.open_existing(&dir)? else {
            continue;
        };
        let declared = layout.names_in(&dir);
        let ours = dir.starts_with(&layout.runtime_dir);
        let mut names = Vec::new();
        for name in opened.files()? {
            let path = dir.join(&name);
            if declared.contains(&name.as_str())
                || layout.protected.contains(&path)
                || !(ours || state.written.contains(&path))
            {
                continue;
            }
            let tree = git.get_or_insert_with(|| WorkTree::containing(&layout.project_dir));
            if tree.as_ref().is_some_and(|t| t.is_tracked(&path)) {
                continue;
            }
            names.push(name);
        }
        if !names.is_empty() {
            out.push(StrayDir { dir: opened, names });
        }
    }
    Ok(out)
}
