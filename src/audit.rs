//! The local audit log: one value-free JSON line per `load` and `rotate`, chained with HMAC-SHA256.
//!
//! Each line carries `prev` (the previous line's `mac`) and its own `mac`, an
//! HMAC-SHA256 over `prev || canonical JSON of the line without mac`. Editing,
//! reordering or deleting a line therefore breaks the chain at that line. The
//! key is the `audit-log-signing-key` secret when the project declares one and
//! its value is at hand, else a random per-install key in `.runtime/audit.key`;
//! each line says which (`key`) and carries a one-way `key_id`, so a verifier
//! holding several keys (for instance every version of a rotated signing key)
//! knows which to use. Truncating the newest lines cannot be detected from the
//! file alone: that needs an anchor kept elsewhere (for instance a copy of the
//! last `mac`).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use serde::Serialize;

use crate::compose::Project;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::files::layout::Layout;
use crate::files::state::{SecretState, State};
use crate::store::SecretStore;

mod chain;
mod key;

pub use crate::clock::{now_rfc3339, parse_rfc3339};
pub use chain::{canonical, verify_chain, verify_chain_with_keys, ChainReport};
pub use key::{project_key, AuditKey, KeySource, LOCAL_KEY_FILE};

/// The secret whose value keys the chain when the project declares it.
pub const SIGNING_KEY_SECRET: &str = "audit-log-signing-key";

/// Lines longer than this are not ours; refuse to parse them rather than allocate without bound.
const MAX_LINE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Load,
    Rotate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealthResult {
    Passed,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Ok,
    RolledBack,
    RollbackFailed,
    Failed,
}

/// A secret name (rotate) or the list of names (load).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Secrets {
    One(String),
    Many(Vec<String>),
}

/// Version ids (Key Vault) or fingerprints (demo): one for rotate, one per secret for load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Versions {
    One(Option<String>),
    PerSecret(BTreeMap<String, Option<String>>),
}

/// What happened, as recorded. Holds names, ids and fingerprints only, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub action: Action,
    pub secret: Secrets,
    pub old_version: Versions,
    pub new_version: Versions,
    /// Container names restarted (in order), rollback restarts included.
    pub services_restarted: Vec<String>,
    pub health: HealthResult,
    pub outcome: Outcome,
    /// What failed, in the words of the error (which never holds a value).
    pub error: Option<String>,
}

/// Append one event to the log at `path` (created 0600), chained to the last line, and fsync it.
///
/// An exclusive `flock` on the log itself is held from reading the last line to
/// the fsync, so two writers never interleave or fork the chain.
pub fn append(path: &Path, key: &AuditKey, event: &AuditEvent) -> Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(nix::libc::ELOOP) => Error::UnsafePath {
                path: path.to_path_buf(),
                message: "the audit log is a symlink; remove it".into(),
            },
            _ => Error::io(path, "open audit log")(e),
        })?;
    let mut file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::io(path, "lock audit log")(e.into()))?;
    let (last, ends_with_newline) =
        last_line(&mut file).map_err(Error::io(path, "read audit log"))?;
    let prev = last
        .as_deref()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v.get("mac").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_default();
    let line = signed_line(key, event, &prev, &now_rfc3339());
    let mut bytes = Vec::with_capacity(line.len() + 2);
    if !ends_with_newline {
        // A torn last line from a crash stays visible (verify flags it); ours starts on its own line.
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(Error::io(path, "append to audit log"))?;
    Ok(())
}

fn signed_line(key: &AuditKey, event: &AuditEvent, prev: &str, time: &str) -> String {
    let (user, sudo_user) = current_user();
    let mut doc = serde_json::json!({
        "time": time,
        "user": user,
        "host": host_name(),
        "action": event.action,
        "secret": event.secret,
        "old_version": event.old_version,
        "new_version": event.new_version,
        "services_restarted": event.services_restarted,
        "health": event.health,
        "outcome": event.outcome,
        "key": key.source(),
        "key_id": key.id(),
        "prev": prev,
    });
    if let Some(obj) = doc.as_object_mut() {
        if let Some(s) = sudo_user {
            obj.insert("sudo_user".into(), s.into());
        }
        if let Some(e) = &event.error {
            obj.insert("error".into(), e.clone().into());
        }
    }
    let body = canonical(&doc);
    let mac = key.mac(prev, &body);
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("mac".into(), mac.into());
    }
    canonical(&doc)
}

/// The last non-empty line of the file, and whether the file ends with a newline (true when empty).
fn last_line(file: &mut File) -> std::io::Result<(Option<String>, bool)> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok((None, true));
    }
    let mut window: u64 = 8 * 1024;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        std::io::Read::by_ref(file)
            .take(len - start)
            .read_to_end(&mut buf)?;
        let ends_with_newline = buf.last() == Some(&b'\n');
        let trimmed = buf.strip_suffix(b"\n").unwrap_or(&buf);
        match trimmed.iter().rposition(|&b| b == b'\n') {
            Some(i) => {
                return Ok((
                    Some(String::from_utf8_lossy(&trimmed[i + 1..]).into_owned()),
                    ends_with_newline,
                ))
            }
            None if start == 0 || window as usize > MAX_LINE_BYTES => {
                return Ok((
                    Some(String::from_utf8_lossy(trimmed).into_owned()),
                    ends_with_newline,
                ))
            }
            None => window *= 4,
        }
    }
}

/// Record a successful, non-dry-run `load`: every secret it covered with the version
/// (Key Vault) or fingerprint (demo) before and after.
pub async fn record_load(
    ctx: &Context,
    project: &Project,
    layout: &Layout,
    store: &dyn SecretStore,
    before: &State,
    after: &State,
) -> Result<()> {
    let version =
        |s: &SecretState| Some(s.version.clone().unwrap_or_else(|| s.fingerprint.clone()));
    let names: Vec<String> = after.secrets.keys().cloned().collect();
    let event = AuditEvent {
        action: Action::Load,
        secret: Secrets::Many(names.clone()),
        old_version: Versions::PerSecret(
            names
                .iter()
                .map(|n| (n.clone(), before.secrets.get(n).and_then(version)))
                .collect(),
        ),
        new_version: Versions::PerSecret(
            after
                .secrets
                .iter()
                .map(|(n, s)| (n.clone(), version(s)))
                .collect(),
        ),
        services_restarted: Vec::new(),
        health: HealthResult::Skipped,
        outcome: Outcome::Ok,
        error: None,
    };
    let key = project_key(&ctx.runtime_dir, Some((project, layout)), Some(store)).await?;
    append(&ctx.audit_log(), &key, &event)
}

/// The current signing key, plus earlier versions of it from the vault: lines written before a
/// rotation of `audit-log-signing-key` were signed with the value of that time.
pub async fn verification_keys(
    runtime_dir: &Path,
    project: &Project,
    layout: Option<&Layout>,
    store: Option<&dyn SecretStore>,
) -> Vec<AuditKey> {
    let mut keys = Vec::new();
    if let Some(layout) = layout {
        if let Ok(key) = project_key(runtime_dir, Some((project, layout)), store).await {
            keys.push(key);
        }
    }
    if let Ok(Some(local)) = AuditKey::existing_local(runtime_dir) {
        keys.push(local);
    }
    if let (Some(store), Some(spec)) = (
        store.filter(|s| s.keeps_versions()),
        project.lookup(SIGNING_KEY_SECRET),
    ) {
        if let Ok(versions) = store.list_versions(&store.key_for(spec)).await {
            for v in versions
                .iter()
                .rev()
                .take(10)
                .filter_map(|v| v.version.as_deref())
            {
                if let Ok(old) = store.get_version(&store.key_for(spec), v).await {
                    keys.push(AuditKey::from_signing_secret(&old.value));
                }
            }
        }
    }
    keys
}

/// Time the last `ok` rotation of `secret` was recorded, as Unix seconds (for `--older-than`
/// with stores that keep no tags). Unverified: a hint, not evidence.
pub fn last_rotation(path: &Path, secret: &str) -> Option<i64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["action"] == "rotate" && v["outcome"] == "ok" && v["secret"].as_str() == Some(secret)
        })
        .filter_map(|v| v["time"].as_str().and_then(parse_rfc3339))
        .max()
}

/// (effective user name, the invoking user when run through sudo).
pub fn current_user() -> (String, Option<String>) {
    let uid = nix::unistd::Uid::effective();
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name);
    let sudo = std::env::var("SUDO_USER").ok().filter(|s| !s.is_empty());
    (name, sudo)
}

pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// `user@host`, for the `rotated-by` tag.
pub fn user_at_host() -> String {
    format!("{}@{}", current_user().0, host_name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretValue;

    fn event(n: usize) -> AuditEvent {
        AuditEvent {
            action: Action::Rotate,
            secret: Secrets::One(format!("secret-{n}")),
            old_version: Versions::One(Some(format!("v{n}"))),
            new_version: Versions::One(Some(format!("v{}", n + 1))),
            services_restarted: vec!["app-1".into()],
            health: HealthResult::Passed,
            outcome: Outcome::Ok,
            error: None,
        }
    }

    fn log_with_three_lines() -> (tempfile::TempDir, std::path::PathBuf, AuditKey) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let key = AuditKey::local(dir.path()).unwrap();
        for n in 0..3 {
            append(&path, &key, &event(n)).unwrap();
        }
        (dir, path, key)
    }

    #[test]
    fn three_lines_verify_and_file_is_private() {
        let (dir, path, key) = log_with_three_lines();
        let report = verify_chain(&path, &key).unwrap();
        assert_eq!(report.lines, 3);
        assert!(report.ok(), "{report:?}");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join(LOCAL_KEY_FILE)), 0o600);
        let first: serde_json::Value = serde_json::from_str(
            std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(first["prev"], "");
        assert_eq!(first["key"], "local");
        assert_eq!(first["action"], "rotate");
        assert_eq!(first["health"], "passed");
    }

    #[test]
    fn an_edited_byte_names_its_line() {
        let (_dir, path, key) = log_with_three_lines();
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = text.replacen("secret-1", "secret-X", 1);
        assert_ne!(text, edited);
        std::fs::write(&path, edited).unwrap();
        let report = verify_chain(&path, &key).unwrap();
        assert_eq!(report.first_bad_line, Some(2), "{report:?}");
    }

    #[test]
    fn a_deleted_line_is_detected() {
        let (_dir, path, key) = log_with_three_lines();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        let report = verify_chain(&path, &key).unwrap();
        assert_eq!(report.first_bad_line, Some(2), "{report:?}");
        std::fs::write(&path, format!("{}\n{}\n", lines[1], lines[2])).unwrap();
        let report = verify_chain(&path, &key).unwrap();
        assert_eq!(report.first_bad_line, Some(1), "{report:?}");
    }

    #[test]
    fn a_wrong_key_is_detected() {
        let (_dir, path, _key) = log_with_three_lines();
        let other = AuditKey::from_signing_secret(&SecretValue::new("another-key".into()));
        let report = verify_chain(&path, &other).unwrap();
        assert_eq!(report.first_bad_line, Some(1), "{report:?}");
    }

    #[test]
    fn a_forged_key_id_still_fails_the_mac() {
        let (_dir, path, key) = log_with_three_lines();
        let attacker = AuditKey::from_signing_secret(&SecretValue::new("attacker".into()));
        // A line signed with another key but claiming ours: the mac check catches it.
        let event = event(9);
        let mut line: serde_json::Value =
            serde_json::from_str(&signed_line(&attacker, &event, "", "2025-01-01T00:00:00Z"))
                .unwrap();
        line["key_id"] = key.id().into();
        std::fs::write(&path, format!("{}\n", canonical(&line))).unwrap();
        assert_eq!(verify_chain(&path, &key).unwrap().first_bad_line, Some(1));
    }

    #[test]
    fn lines_signed_by_two_keys_verify_with_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let old = AuditKey::from_signing_secret(&SecretValue::new("old".into()));
        let new = AuditKey::from_signing_secret(&SecretValue::new("new".into()));
        append(&path, &old, &event(0)).unwrap();
        append(&path, &new, &event(1)).unwrap();
        assert!(verify_chain_with_keys(&path, &[old.clone(), new.clone()])
            .unwrap()
            .ok());
        assert_eq!(verify_chain(&path, &new).unwrap().first_bad_line, Some(1));
    }

    #[test]
    fn a_torn_last_line_is_reported_and_appends_continue() {
        let (_dir, path, key) = log_with_three_lines();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"trunc").unwrap();
        drop(f);
        append(&path, &key, &event(5)).unwrap();
        let report = verify_chain(&path, &key).unwrap();
        assert_eq!(report.lines, 5);
        assert_eq!(report.first_bad_line, Some(4));
    }

    #[test]
    fn load_events_list_secrets_and_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let key = AuditKey::local(dir.path()).unwrap();
        let event = AuditEvent {
            action: Action::Load,
            secret: Secrets::Many(vec!["a".into(), "b".into()]),
            old_version: Versions::PerSecret(BTreeMap::from([("a".into(), None)])),
            new_version: Versions::PerSecret(BTreeMap::from([("a".into(), Some("v1".into()))])),
            services_restarted: vec![],
            health: HealthResult::Skipped,
            outcome: Outcome::Ok,
            error: None,
        };
        append(&path, &key, &event).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
        assert_eq!(v["secret"], serde_json::json!(["a", "b"]));
        assert_eq!(v["new_version"]["a"], "v1");
        assert_eq!(v["action"], "load");
        assert!(verify_chain(&path, &key).unwrap().ok());
    }

    #[test]
    fn the_local_key_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = AuditKey::local(dir.path()).unwrap();
        let b = AuditKey::local(dir.path()).unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(
            AuditKey::existing_local(dir.path()).unwrap().unwrap().id(),
            a.id()
        );
    }

    #[test]
    fn timestamps_round_trip() {
        let now = now_rfc3339();
        assert!(now.ends_with('Z'), "{now}");
        assert!(parse_rfc3339(&now).is_some());
        assert_eq!(parse_rfc3339("1970-01-01T00:01:00Z"), Some(60));
    }
}
