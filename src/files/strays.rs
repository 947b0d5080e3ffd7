//! Stray secret files: what `load` reports and `--prune` removes, and `verify` warns about.
//!
//! A file is removed only when every one of these holds, each known from a different place,
//! so that no one of them (a hand-edited `state.json` above all) can widen what is removed:
//! - it lies directly in a secrets directory of this run: the directory of a secret file the
//!   Compose model declares, or the secrets directory the settings name; never the runtime
//!   directory, and only a directory compose-secrets answers for (see [`owned`]);
//! - no declared secret names it, and it is not a file of the project (Compose, env,
//!   template, configs) or one git tracks;
//! - `state.json` says compose-secrets wrote it, with the fingerprint of what it wrote;
//! - it is still a regular file holding exactly that, checked again just before the unlink.
//!
//! A file compose-secrets wrote that holds something else now is reported, never removed; a
//! file it did not write is none of its business.

use std::path::{Path, PathBuf};

use super::git::WorkTree;
use super::layout::Layout;
use super::secret_dir::SecretDir;
use super::state::State;
use crate::error::Result;
use crate::secret::FingerprintKey;

/// The stray files of one directory, with the directory opened to remove them.
pub struct StrayDir {
    pub dir: SecretDir,
    /// Files that still hold what compose-secrets wrote, with that fingerprint: `--prune`
    /// removes these.
    pub names: Vec<(String, String)>,
    /// Files compose-secrets wrote that now hold something else (or are no longer regular
    /// files): reported, left in place.
    pub changed: Vec<String>,
}

impl StrayDir {
    /// The removable strays' paths.
    pub fn paths(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.names.iter().map(|(n, _)| self.dir.path().join(n))
    }

    /// The changed strays' paths.
    pub fn changed_paths(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.changed.iter().map(|n| self.dir.path().join(n))
    }
}

/// Whether compose-secrets answers for the files in `dir`.
pub fn owned(layout: &Layout, state: &State, dir: &Path) -> bool {
    dir.starts_with(&layout.runtime_dir) || state.created_dirs.iter().any(|c| c == dir)
}

/// The directories strays are looked for in: those of the declared secret files and the
/// secrets directory, from this run's model and settings alone; none below the runtime
/// directory but the secrets directory.
fn scope(layout: &Layout) -> Vec<PathBuf> {
    let mut dirs = layout.dirs();
    if !dirs.contains(&layout.secrets_dir) {
        dirs.push(layout.secrets_dir.clone());
    }
    dirs.retain(|d| !layout.is_runtime_path(d));
    dirs
}

/// Every stray file, by directory.
pub fn find(layout: &Layout, state: &State, key: &FingerprintKey) -> Result<Vec<StrayDir>> {
    let mut git: Option<Option<WorkTree>> = None;
    let mut out = Vec::new();
    for dir in scope(layout) {
        if !owned(layout, state, &dir) {
            continue;
        }
        let declared = layout.names_in(&dir);
        // The secrets directory holding no declared file is looked in only as a courtesy: if
        // it cannot be opened, the declared directories' own checks say why.
        let opened = match layout.open_existing(&dir) {
            Ok(Some(d)) => d,
            Ok(None) => continue,
            Err(_) if declared.is_empty() => continue,
            Err(e) => return Err(e),
        };
        let mut stray = StrayDir {
            dir: opened,
            names: Vec::new(),
            changed: Vec::new(),
        };
        for name in stray.dir.files()? {
            let path = dir.join(&name);
            let Some(fingerprint) = state.written.get(&path) else {
                continue;
            };
            if declared.contains(&name.as_str())
                || layout.protected.contains(&path)
                || layout.is_runtime_path(&path)
            {
                continue;
            }
            let tree = git.get_or_insert_with(|| WorkTree::containing(&layout.project_dir));
            if tree.as_ref().is_some_and(|t| t.is_tracked(&path)) {
                continue;
            }
            if stray.dir.holding(&name, fingerprint, key).is_some() {
                stray.names.push((name, fingerprint.clone()));
            } else {
                stray.changed.push(name);
            }
        }
        if !(stray.names.is_empty() && stray.changed.is_empty()) {
            out.push(stray);
        }
    }
    Ok(out)
}
