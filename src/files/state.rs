//! `.runtime/state.json`: the version id and fingerprint last written per secret — never a value —
//! so an unchanged secret is neither fetched nor rewritten.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::files::secret_dir::write_file_atomic;
use crate::store::VersionInfo;

const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SecretState {
    pub version: Option<String>,
    pub updated: Option<i64>,
    pub fingerprint: String,
    /// Unix seconds when the store was last listed before this entry was confirmed.
    #[serde(default)]
    pub checked_at: i64,
}

impl SecretState {
    /// Whether the store's listing still describes what we wrote last time.
    pub fn matches_listing(&self, listed: Option<&VersionInfo>, pinned: Option<&str>) -> bool {
        if let Some(pinned) = pinned {
            return self.version.as_deref() == Some(pinned);
        }
        match listed {
            Some(l) => {
                l.enabled
                    && match (&l.version, &self.version) {
                        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                        // `updated` has one-second resolution: a change in the same second as our
                        // last check would look unchanged, so only trust strictly older stamps.
                        _ => l
                            .updated
                            .is_some_and(|u| Some(u) == self.updated && u < self.checked_at),
                    }
            }
            None => false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    pub format: u32,
    /// The store the versions belong to; a different source invalidates the cache.
    pub source: String,
    pub secrets: BTreeMap<String, SecretState>,
    /// Directories compose-secrets created for secret files: only there are stray files
    /// reported and pruned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created_dirs: Vec<std::path::PathBuf>,
}

impl State {
    pub fn new(source: &str) -> Self {
        Self {
            format: FORMAT,
            source: source.to_string(),
            secrets: BTreeMap::new(),
            created_dirs: Vec::new(),
        }
    }

    /// The saved state for this source, or an empty one (missing, unreadable or foreign file).
    /// The directories compose-secrets created stay known whatever the source.
    pub fn read(path: &Path, source: &str) -> Self {
        let saved = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<State>(&b).ok())
            .filter(|s| s.format == FORMAT);
        match saved {
            Some(s) if s.source == source => s,
            Some(s) => Self {
                created_dirs: s.created_dirs,
                ..Self::new(source)
            },
            None => Self::new(source),
        }
    }

    /// Remember directories created for secret files (absolute, once each).
    pub fn record_created(&mut self, dirs: &[std::path::PathBuf]) {
        for d in dirs {
            if !self.created_dirs.contains(d) {
                self.created_dirs.push(d.clone());
            }
        }
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        write_file_atomic(path, &json, 0o600)
    }
}
