//! `.runtime/owners.json`: the uid:gid each named user resolved to, per image ID (the content
//! digest one inspect call gives), so an unchanged image is read once and a rebuilt one (a new
//! ID) again. It holds ids only, never a file's contents or a value.
//!
//! It is a cache: a missing, unreadable or malformed file is an empty one, and a failure to
//! save it is a warning, never a failed run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::runtime_dir::RuntimeDir;

pub const OWNERS: &str = "owners.json";

/// A few dozen bytes per image and user.
const MAX_BYTES: u64 = 1 << 20;

const FORMAT: u32 = 1;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Contents {
    format: u32,
    /// Image ID, then the `user:` as the service gives it, then `[uid, gid]`.
    images: BTreeMap<String, BTreeMap<String, [u32; 2]>>,
}

/// The cache as read, and what this run looked up.
#[derive(Debug, Default)]
pub struct Cache {
    runtime_dir: Option<PathBuf>,
    read: Contents,
    /// The entries of the images this run used: only those are saved, so images that are gone
    /// (or were rebuilt) drop out.
    used: Contents,
}

impl Cache {
    /// The cache in `runtime_dir`, read without creating anything.
    pub fn open(runtime_dir: &Path) -> Cache {
        let read = RuntimeDir::open(runtime_dir, false)
            .ok()
            .flatten()
            .and_then(|dir| dir.read(OWNERS, MAX_BYTES).ok().flatten())
            .and_then(|bytes| serde_json::from_slice::<Contents>(&bytes).ok())
            .filter(|c| c.format == FORMAT)
            .unwrap_or_default();
        Cache {
            runtime_dir: Some(runtime_dir.to_path_buf()),
            read,
            used: Contents::default(),
        }
    }

    /// The ids `user` has in image `id`, when an earlier run (or this one) looked them up.
    pub(super) fn get(&mut self, id: &str, user: &str) -> Option<(u32, u32)> {
        let [uid, gid] = *self
            .used
            .images
            .get(id)
            .or_else(|| self.read.images.get(id))?
            .get(user)?;
        self.put(id, user, (uid, gid));
        Some((uid, gid))
    }

    pub(super) fn put(&mut self, id: &str, user: &str, (uid, gid): (u32, u32)) {
        self.used
            .images
            .entry(id.to_string())
            .or_default()
            .insert(user.to_string(), [uid, gid]);
    }

    /// Write what this run used, atomically, when it differs from what was read; only into a
    /// runtime directory that exists (the run that wrote secrets made it).
    pub fn save(&self) {
        let Some(path) = &self.runtime_dir else {
            return;
        };
        let used = Contents {
            format: FORMAT,
            images: self.used.images.clone(),
        };
        if used.images.is_empty() || used == self.read {
            return;
        }
        let saved = RuntimeDir::open(path, false).and_then(|dir| match dir {
            Some(dir) => {
                let text = serde_json::to_vec_pretty(&used).unwrap_or_default();
                dir.write(OWNERS, &text, 0o600)
            }
            None => Ok(()),
        });
        if let Err(e) = saved {
            tracing::warn!("the cache of image owners was not saved: {e}");
        }
    }
}
