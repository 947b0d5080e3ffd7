//! `.runtime/state.json`: the version id and fingerprint last written per secret — never a value —
//! so an unchanged secret is neither fetched nor rewritten; the versions `sync` held back; the
//! directories compose-secrets created; and the head of the audit chain, so a truncated log is
//! noticed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::runtime_dir::{RuntimeDir, STATE};
use crate::error::Result;
use crate::secret::FingerprintKey;

/// A state file is a few hundred bytes per secret.
const MAX_STATE_BYTES: u64 = 16 * 1024 * 1024;

const FORMAT: u32 = 1;

/// What a store's listing says of one secret, as far as the state compares it; the store
/// layer, above this one, implements it for its listing.
pub trait Listed {
    fn enabled(&self) -> bool;
    fn version(&self) -> Option<&str>;
    fn updated(&self) -> Option<i64>;
}

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
    pub fn matches_listing(&self, listed: Option<&impl Listed>, pinned: Option<&str>) -> bool {
        if let Some(pinned) = pinned {
            return self.version.as_deref() == Some(pinned);
        }
        match listed {
            Some(l) => {
                l.enabled()
                    && match (l.version(), &self.version) {
                        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                        // `updated` has one-second resolution: a change in the same second as our
                        // last check would look unchanged, so only trust strictly older stamps.
                        _ => l
                            .updated()
                            .is_some_and(|u| Some(u) == self.updated && u < self.checked_at),
                    }
            }
            None => false,
        }
    }
}

/// A version `sync` put back because a service that uses it did not come back healthy: the
/// store keeps it, the file and the containers run the previous one, and `sync` does not try it
/// again until the store moves on or `sync --retry-held`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeldVersion {
    /// The held version as the store lists it (version id, timestamp, fingerprint).
    #[serde(flatten)]
    pub entry: SecretState,
    /// Unix seconds when it was held.
    pub held_at: i64,
    /// Why, in the words of the health failure (never a value).
    pub reason: String,
}

impl HeldVersion {
    /// Whether the store's listing still names the held version.
    pub fn matches_listing(&self, listed: Option<&impl Listed>, pinned: Option<&str>) -> bool {
        self.entry.matches_listing(listed, pinned)
    }

    /// Whether `version` (an id, or a demo fingerprint) is the held one.
    pub fn is(&self, version: Option<&str>) -> bool {
        matches!((self.entry.version.as_deref(), version), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    pub format: u32,
    /// The store the versions belong to; a different source invalidates the cache.
    pub source: String,
    pub secrets: BTreeMap<String, SecretState>,
    /// Versions `sync` held back, by secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub held: BTreeMap<String, HeldVersion>,
    /// Directories compose-secrets created for secret files: only there are stray files
    /// reported and pruned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created_dirs: Vec<std::path::PathBuf>,
    /// Every secret file compose-secrets has written (absolute), with the fingerprint of what
    /// it wrote there: `--prune` removes only a file that is listed here and still holds
    /// exactly that. An empty fingerprint (a state file from before fingerprints were kept)
    /// matches nothing, so such a file is never pruned until a load writes it again.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "written_compat"
    )]
    pub written: BTreeMap<PathBuf, String>,
    /// The audit log's last line as of the last write: how many lines, and the last `mac`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<AuditHead>,
}

/// Where the audit chain ended when compose-secrets last appended to it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditHead {
    pub lines: usize,
    pub mac: String,
}

impl State {
    pub fn new(source: &str) -> Self {
        Self {
            format: FORMAT,
            source: source.to_string(),
            secrets: BTreeMap::new(),
            held: BTreeMap::new(),
            created_dirs: Vec::new(),
            written: BTreeMap::new(),
            audit_head: None,
        }
    }

    /// The saved state for this source, or an empty one (no runtime directory, no file, an
    /// unreadable or foreign one). What is not about the source (the directories created, the files written, the
    /// audit head) is kept whatever the source.
    ///
    /// A state file that is a symlink, a FIFO or anything but a regular file is an error, never
    /// followed or waited on; one that does not parse is ignored (it only saves work).
    pub fn read(runtime: Option<&RuntimeDir>, source: &str) -> Result<Self> {
        let bytes = match runtime {
            Some(r) => r.read(STATE, MAX_STATE_BYTES)?,
            None => None,
        };
        let saved = bytes
            .and_then(|b| serde_json::from_slice::<State>(&b).ok())
            .filter(|s| s.format == FORMAT);
        Ok(match saved {
            Some(s) if s.source == source => s,
            Some(s) => Self {
                created_dirs: s.created_dirs,
                written: s.written,
                audit_head: s.audit_head,
                ..Self::new(source)
            },
            None => Self::new(source),
        })
    }

    pub fn write(&self, runtime: &RuntimeDir) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        runtime.write(STATE, &json, 0o600)
    }

    /// Remember that compose-secrets wrote `fingerprint`'s content to `path`.
    pub fn record_written(&mut self, path: &std::path::Path, fingerprint: &str) {
        self.written
            .insert(path.to_path_buf(), fingerprint.to_string());
    }

    /// Whether `contents`, read from `path`, is what compose-secrets last recorded writing
    /// there. Being listed proves nothing on its own: a hand-edited state.json can list any
    /// path, and a file edited by someone since holds something else; an entry without a
    /// fingerprint (a state file from before they were kept) matches nothing.
    pub fn still_holds_written(
        &self,
        path: &std::path::Path,
        contents: &[u8],
        key: &FingerprintKey,
    ) -> bool {
        self.written
            .get(path)
            .is_some_and(|fingerprint| key.fingerprint(contents) == *fingerprint)
    }

    /// Remember directories created for secret files (absolute, once each).
    pub fn record_created(&mut self, dirs: &[std::path::PathBuf]) {
        for d in dirs {
            if !self.created_dirs.contains(d) {
                self.created_dirs.push(d.clone());
            }
        }
    }
}

/// `written` as this version keeps it (path to fingerprint), or as earlier versions kept it
/// (a list of paths): those are kept without a fingerprint, so that the rest of the state
/// (held versions, the audit head) survives an upgrade and nothing unverified is pruned.
fn written_compat<'de, D>(d: D) -> std::result::Result<BTreeMap<PathBuf, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Fingerprinted(BTreeMap<PathBuf, String>),
        Paths(BTreeSet<PathBuf>),
    }
    Ok(match Written::deserialize(d)? {
        Written::Fingerprinted(map) => map,
        Written::Paths(paths) => paths.into_iter().map(|p| (p, String::new())).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_paths_from_an_earlier_version_are_kept_without_a_fingerprint() {
        let old = r#"{"format":1,"source":"s","secrets":{},"written":["/p/a","/p/b"],
            "audit_head":{"lines":3,"mac":"m"}}"#;
        let state: State = serde_json::from_str(old).unwrap();
        assert_eq!(state.written.len(), 2);
        assert!(state.written.values().all(String::is_empty));
        assert_eq!(state.audit_head.unwrap().lines, 3);
        let mut new = State::new("s");
        new.record_written(std::path::Path::new("/p/a"), "hmac:00");
        let back: State = serde_json::from_slice(&serde_json::to_vec(&new).unwrap()).unwrap();
        assert_eq!(back.written, new.written);
    }
}
