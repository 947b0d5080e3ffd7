//! The checks behind `verify`: files, drift, stale containers, leaks, health, vault access,
//! the audit chain and Swarm versions.
//!
//! Each check is a function over what `verify` read and gathered: the project, its layout
//! and files, and what [`gather`] (the one module here that asks Docker, git, Compose v2, the
//! store or a health URL anything) found. Unit tests build those facts by hand or gather them
//! from `MemoryStore` and `MemoryEngine`. Every finding
//! names the secret, file, service or container it concerns. Values are read into memory
//! only to be compared (by fingerprint, or as substrings for leak detection); no message
//! ever contains one.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::compose::{Project, SecretSpec};
use crate::deploy::swarm::SwarmEngine;
use crate::deploy::ContainerInfo;
use crate::files::state::{SecretState, State};
use crate::secret::{FingerprintKey, SecretValue};
use crate::store::{SecretStore, VersionInfo};

/// Secret values shorter than this are not searched for in env, labels and commands:
/// a two-letter value would "leak" everywhere.
const MIN_LEAK_LEN: usize = 6;

/// One GET per service: verify reports health, it does not wait for it (rotate does).
const HTTP_HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub status: Status,
    /// files, drift, containers, leaks, git, health, vault, audit, swarm, sync, policy
    pub category: &'static str,
    /// The secret, file, service or container concerned.
    pub subject: String,
    pub message: String,
    /// A certificate's `notAfter` (RFC 3339), on the certificate checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

/// The checks found so far.
#[derive(Debug, Default)]
pub struct Findings {
    pub checks: Vec<Check>,
    /// Paths under this directory are shown relative to it (`.env`, `.runtime/secrets`).
    display_root: Option<PathBuf>,
}

impl Findings {
    /// Findings whose path subjects are shown relative to `root` (the working directory).
    pub fn relative_to(root: &Path) -> Self {
        Self {
            checks: Vec::new(),
            display_root: Some(root.to_path_buf()),
        }
    }

    pub fn add(
        &mut self,
        status: Status,
        category: &'static str,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.checks.push(Check {
            status,
            category,
            subject: subject.into(),
            message: message.into(),
            not_after: None,
        });
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// A path as a subject: relative to the display root when below it, else absolute.
    pub fn path_subject(&self, path: &Path) -> String {
        self.display_root
            .as_deref()
            .and_then(|root| path.strip_prefix(root).ok())
            .filter(|rel| !rel.as_os_str().is_empty())
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// What is on disk for one declared file secret (value kept only for leak matching).
pub struct LocalSecret<'m> {
    pub spec: &'m SecretSpec,
    pub path: PathBuf,
    pub value: Option<SecretValue>,
    pub fingerprint: Option<String>,
    /// Last write of the file, in Unix nanoseconds: container start times have nanoseconds
    /// too, and a rewrite in the same second as a start must not look older than it.
    pub mtime_ns: Option<i128>,
}

mod audit;
mod certificates;
mod compose;
mod containers;
mod drift;
mod facts;
mod files;
#[cfg(test)]
mod fixture;
pub mod gather;
mod git;
mod health;
mod held;
mod leaks;
mod policy;
mod swarm;
pub mod table;
mod vault;

pub use audit::{audit_log_path, check_audit, check_failed_rollbacks};
pub use certificates::check_certificates;
pub use compose::check_compose_model;
pub use containers::check_docker;
pub use drift::check_drift;
pub use files::check_files;
pub use git::check_git;
pub use health::check_http_health;
pub use held::check_held;
pub use leaks::{check_compose_environment, check_env_file};
pub use policy::check_policy;
pub use swarm::check_swarm;
pub use vault::check_vault;

/// Values at least this long count as leaked wherever they appear inside a text.
const SUBSTRING_LEAK_LEN: usize = 12;

/// Whether `text` holds the secret `value`. A long value counts anywhere; a short one (a
/// sample such as `change-me`) only as a whole token, so that `change-me-meilisearch` is not
/// taken for it while `postgres://app:change-me@db` is.
pub(crate) fn holds_value(text: &str, value: &str) -> bool {
    if value.is_empty() {
        return false;
    }
    if value.len() >= SUBSTRING_LEAK_LEN {
        return text.contains(value);
    }
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(value).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + value.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() {
        "state unknown"
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_value_leaks_only_as_a_whole_token() {
        assert!(holds_value("change-me", "change-me"));
        assert!(holds_value("postgres://app:change-me@db/x", "change-me"));
        assert!(holds_value("PASSWORD=change-me", "change-me"));
        assert!(!holds_value("change-me-meilisearch", "change-me"));
        assert!(!holds_value("xchange-me", "change-me"));
        let long = "0123456789abcdef0123";
        assert!(holds_value(&format!("prefix{long}suffix"), long));
        assert!(!holds_value("anything", ""));
    }

    #[test]
    fn paths_are_shown_relative_to_the_working_directory() {
        let f = Findings::relative_to(Path::new("/srv/app"));
        assert_eq!(
            f.path_subject(Path::new("/srv/app/.runtime/secrets")),
            ".runtime/secrets"
        );
        assert_eq!(f.path_subject(Path::new("/etc/app.env")), "/etc/app.env");
        assert_eq!(f.path_subject(Path::new("/srv/app")), "/srv/app");
    }
}
