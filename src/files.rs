//! Everything compose-secrets keeps on disk: secret files in checked directories, and the
//! runtime directory's state, lock and temp-file hygiene.

pub mod git;
pub mod layout;
pub mod lock;
pub mod runtime_dir;
pub mod secret_dir;
pub mod state;
pub mod strays;

use std::path::{Component, Path, PathBuf};

/// Resolve `.` and `..` without touching the filesystem.
pub fn lexical_normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}
