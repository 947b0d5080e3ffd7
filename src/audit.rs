//! The local audit log: one value-free JSON line per `load`, `rotate` and `sync`, chained with
//! HMAC-SHA256, written ahead of every change to a store.
//!
//! Each line carries `prev` (the previous line's `mac`) and its own `mac`, an HMAC-SHA256 over
//! `prev || canonical JSON of the line without mac`. Editing, reordering or deleting a line
//! therefore breaks the chain at that line, and the chain's head (line count and last `mac`)
//! is kept in `state.json`, so dropping the newest lines, emptying or deleting the log is
//! noticed too. A rotation writes an `intent` line before it pushes anything and its outcome
//! after, so no pushed value goes unrecorded. The key is the `audit-log-signing-key` secret
//! when the project declares one and its value is at hand, else the per-install key in
//! `.runtime/audit.key`; when it changes, a `key-rotation` line signed with the old key
//! carries the old key wrapped under the new one (see `key.rs`), so the current key verifies
//! the whole chain.
//!
//! Everything above lives in `.runtime`, which the people this log is meant to catch may be able
//! to write. So when the project declares the signing key and the store holds it, `verify` trusts
//! the store's copy alone (a per-install key only where a key-rotation line hands it over), and
//! with Key Vault the head is also anchored in the store (`anchor.rs`), out of `.runtime`'s reach.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};

use nix::fcntl::OFlag;
use serde::Serialize;

use crate::compose::Project;
use crate::error::{Error, Result};
use crate::files::layout::Layout;
use crate::files::runtime_dir::{RuntimeDir, AUDIT_LOG};
use crate::files::state::{AuditHead, SecretState, State};
use crate::store::SecretStore;

pub mod anchor;
mod chain;
mod key;

pub use crate::clock::{now_rfc3339, parse_rfc3339};
#[cfg(any(test, feature = "testing"))]
pub use chain::verify_log;
pub use chain::{
    canonical, compare_with_anchor, verify_chain, AnchorStatus, ChainReport, HeadStatus,
};
pub use key::{fingerprint_key, project_key, AuditKey, KeySource};

/// The secret whose value keys the chain when the project declares it.
pub const SIGNING_KEY_SECRET: &str = "audit-log-signing-key";

/// Lines longer than this are not ours; refuse to parse them rather than allocate without bound.
const MAX_LINE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Load,
    Rotate,
    Sync,
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
    /// Written before a rotation changes anything; its outcome follows.
    Intent,
    Ok,
    RolledBack,
    RollbackFailed,
    Failed,
    /// `sync`: the new version broke a service and was put back; the vault keeps it.
    SyncHeld,
    /// A later run closed an intent a crash left open: the file and the state now hold the
    /// store's current version (see `rotation::recover`).
    Recovered,
}

/// What happened to the rotation hook, for the audit line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookOutcome {
    /// Ran with the new value and succeeded.
    Ok,
    /// Failed with the new value: nothing was pushed.
    Failed,
    /// Ran again with the previous value after a later step failed.
    RolledBack,
    /// Running it again with the previous value failed.
    RollbackFailed,
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
    /// The rotation hook's part, when the secret has one and it ran.
    pub hook: Option<HookOutcome>,
    /// What failed, in the words of the error (which never holds a value).
    pub error: Option<String>,
}

/// The audit log of one run: its key, resolved once, and the key it replaced this run.
pub struct AuditLog<'r> {
    runtime: &'r RuntimeDir,
    key: AuditKey,
    /// The key the log's last line was signed with, when this run changed keys; the next
    /// append records the change.
    previous: Option<AuditKey>,
}

impl<'r> AuditLog<'r> {
    pub fn new(runtime: &'r RuntimeDir, key: AuditKey) -> Self {
        Self {
            runtime,
            key,
            previous: None,
        }
    }

    /// Fail now, before anything changes, if the log could not be appended to later (a FIFO,
    /// a symlink or a directory in its place).
    pub fn check_appendable(&self) -> Result<()> {
        self.runtime
            .open_file(AUDIT_LOG, OFlag::O_RDONLY, 0o600)
            .map(|_| ())
    }

    /// Sign from now on with `key` (the signing key was rotated or loaded anew).
    pub fn change_key(&mut self, key: AuditKey) {
        if key.id() == self.key.id() {
            return;
        }
        let old = std::mem::replace(&mut self.key, key);
        // Several changes before one append: the log still ends with the first key's line.
        self.previous.get_or_insert(old);
    }

    /// Append `event` (after a `key-rotation` line when the key changed), fsync, and return the
    /// new head of the chain. `head` is the head as `state.json` last recorded it.
    ///
    /// An exclusive `flock` on the log itself is held from reading the last line to the fsync,
    /// so two writers never interleave or fork the chain.
    pub fn append(&mut self, event: &AuditEvent, head: Option<&AuditHead>) -> Result<AuditHead> {
        let path = self.runtime.file(AUDIT_LOG);
        self.runtime.flush_staged()?;
        let file = self
            .runtime
            .open_file(
                AUDIT_LOG,
                OFlag::O_RDWR | OFlag::O_APPEND | OFlag::O_CREAT,
                0o600,
            )?
            .ok_or_else(|| {
                Error::io(&path, "open audit log")(std::io::ErrorKind::NotFound.into())
            })?;
        let mut file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::io(&path, "lock audit log")(e.into()))?;
        let (last, ends_with_newline) =
            last_line(&mut file).map_err(Error::io(&path, "read audit log"))?;
        let last: Option<serde_json::Value> =
            last.as_deref().and_then(|l| serde_json::from_str(l).ok());
        let field = |k: &str| {
            last.as_ref()
                .and_then(|v| v.get(k))
                .and_then(|m| m.as_str())
                .map(str::to_string)
        };
        let mut prev = field("mac").unwrap_or_default();
        let mut lines = match head {
            Some(h) if h.mac == prev => h.lines,
            _ => count_lines(&mut file).map_err(Error::io(&path, "read audit log"))?,
        };
        let mut text = String::new();
        if !ends_with_newline {
            // A torn last line from a crash stays visible (verify flags it); ours starts on its own line.
            text.push('\n');
        }
        let time = now_rfc3339();
        if let Some(old) = self.handing_over_from(field("key_id").as_deref()) {
            let line = key_rotation_line(&old, &self.key, &prev, &time);
            prev = mac_of(&line);
            text.push_str(&line);
            text.push('\n');
            lines += 1;
        }
        let line = signed_line(&self.key, event, &prev, &time);
        prev = mac_of(&line);
        text.push_str(&line);
        text.push('\n');
        lines += 1;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(Error::io(&path, "append to audit log"))?;
        Ok(AuditHead { lines, mac: prev })
    }
}

impl AuditLog<'_> {
    /// The key the log's last line (signed with `last_key`) hands over from, when this run signs
    /// with another: the key this run changed from, or else the per-install key (a signing key
    /// declared after the log began, first used by a `rotate` or `sync` that changed no key).
    /// `verify` trusts no key change without such a line.
    fn handing_over_from(&mut self, last_key: Option<&str>) -> Option<AuditKey> {
        let previous = self.previous.take();
        let last_key = last_key.filter(|k| *k != self.key.id())?;
        match previous {
            Some(old) if old.id() == last_key => Some(old),
            _ => AuditKey::local(self.runtime, false)
                .ok()
                .flatten()
                .filter(|local| local.id() == last_key),
        }
    }
}

fn mac_of(line: &str) -> String {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("mac").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_default()
}

/// Non-empty lines in the file.
fn count_lines(file: &mut File) -> std::io::Result<usize> {
    file.seek(SeekFrom::Start(0))?;
    let mut count = 0;
    let mut in_line = false;
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if b == b'\n' {
                if in_line {
                    count += 1;
                }
                in_line = false;
            } else {
                in_line = true;
            }
        }
    }
    Ok(count + usize::from(in_line))
}

/// The line that hands the chain from `old` to `new`: signed with `old`, and carrying `old`
/// wrapped under `new`, so that `new` alone verifies every line before it.
fn key_rotation_line(old: &AuditKey, new: &AuditKey, prev: &str, time: &str) -> String {
    let (user, _) = current_user();
    let mut doc = serde_json::json!({
        "time": time,
        "user": user,
        "host": host_name(),
        "action": "key-rotation",
        "key": old.source(),
        "key_id": old.id(),
        "next_key": new.source(),
        "next_key_id": new.id(),
        "wrapped_key": new.wrap(old, prev),
        "prev": prev,
    });
    let mac = old.mac(prev, &canonical(&doc));
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("mac".into(), mac.into());
    }
    canonical(&doc)
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
        if let Some(h) = event.hook {
            obj.insert("hook".into(), serde_json::json!(h));
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

/// The event of a successful, non-dry-run `load`: every secret it covered with the version
/// (Key Vault) or fingerprint (demo) before and after.
pub fn load_event(before: &State, after: &State) -> AuditEvent {
    let version =
        |s: &SecretState| Some(s.version.clone().unwrap_or_else(|| s.fingerprint.clone()));
    let names: Vec<String> = after.secrets.keys().cloned().collect();
    AuditEvent {
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
        hook: None,
        error: None,
    }
}

/// Whose keys `verify` trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Basis {
    /// The store's signing key (and the version this host loaded): any other key counts only
    /// when a key-rotation line hands it over to one of them.
    Store,
    /// No store-held signing key (why): the per-install key and the signing key's file are
    /// taken as they are.
    Local(String),
}

/// Where the chain's head is anchored outside `.runtime`, as `verify` found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// Not kept (why: a store without tags, no signing key declared).
    NotKept(String),
    /// Kept, but nothing anchored yet.
    Missing,
    /// The store did not answer (the error).
    Unreadable(String),
    At(AuditHead),
}

/// What `verify` checks the chain with: the keys, whose they are, and the anchored head.
#[derive(Debug)]
pub struct Verification {
    pub keys: Vec<AuditKey>,
    pub basis: Basis,
    pub anchor: Anchor,
}

/// The keys and anchor for `verify`. With a declared signing key the store holds, only the
/// store's keys are trusted: `.runtime` (the key file, the signing key's file, state.json) is
/// writable by whoever this is meant to catch. Otherwise the project's chain key and the
/// per-install key, as they are.
pub async fn verification(
    runtime: Option<&RuntimeDir>,
    runtime_dir: &std::path::Path,
    project: &Project,
    layout: Option<&Layout>,
    store: Option<&dyn SecretStore>,
    state: &State,
) -> Verification {
    let anchor = read_anchor(project, store, runtime_dir).await;
    match store_keys(project, store, state).await {
        Ok(keys) => Verification {
            keys,
            basis: Basis::Store,
            anchor,
        },
        Err(why) => {
            let mut keys = Vec::new();
            if let Some(runtime) = runtime {
                let project_key =
                    project_key(runtime, project_and(project, layout), store, false).await;
                keys.extend(project_key.ok().flatten());
                keys.extend(AuditKey::local(runtime, false).ok().flatten());
            }
            Verification {
                keys,
                basis: Basis::Local(why),
                anchor,
            }
        }
    }
}

/// The store's signing key, and the version this host last loaded when the store has moved on
/// since (the chain is signed with it until the next load or sync hands over).
async fn store_keys(
    project: &Project,
    store: Option<&dyn SecretStore>,
    state: &State,
) -> std::result::Result<Vec<AuditKey>, String> {
    let spec = project
        .lookup(SIGNING_KEY_SECRET)
        .ok_or_else(|| format!("no {SIGNING_KEY_SECRET} is declared"))?;
    let store = store.ok_or_else(|| "the store could not be opened".to_string())?;
    let name = store.key_for(spec);
    let latest = store
        .get_latest(&name)
        .await
        .map_err(|e| format!("the store's {SIGNING_KEY_SECRET} could not be read ({e})"))?;
    if latest.value.is_empty() {
        return Err(format!("the store holds no value for {SIGNING_KEY_SECRET}"));
    }
    let mut keys = vec![AuditKey::from_signing_secret(&latest.value)];
    let loaded = state
        .secrets
        .get(&spec.name)
        .and_then(|s| s.version.as_deref());
    if let (Some(loaded), Some(current)) = (loaded, latest.info.version.as_deref()) {
        if store.keeps_versions() && !loaded.eq_ignore_ascii_case(current) {
            if let Ok(older) = store.get_version(&name, loaded).await {
                keys.extend(
                    (!older.value.is_empty()).then(|| AuditKey::from_signing_secret(&older.value)),
                );
            }
        }
    }
    Ok(keys)
}

async fn read_anchor(
    project: &Project,
    store: Option<&dyn SecretStore>,
    runtime_dir: &std::path::Path,
) -> Anchor {
    let Some(store) = store else {
        return Anchor::NotKept("the store could not be opened".into());
    };
    let Some(name) = anchor::anchor_name(project, store, runtime_dir) else {
        return Anchor::NotKept(if project.lookup(SIGNING_KEY_SECRET).is_none() {
            format!("no {SIGNING_KEY_SECRET} is declared")
        } else {
            "demo mode: the .env store keeps no tags".to_string()
        });
    };
    match anchor::read(store, &name).await {
        Ok(Some(head)) => Anchor::At(head),
        Ok(None) => Anchor::Missing,
        Err(e) => Anchor::Unreadable(e.to_string()),
    }
}

fn project_and<'a>(
    project: &'a Project,
    layout: Option<&'a Layout>,
) -> Option<(&'a Project, &'a Layout)> {
    layout.map(|l| (project, l))
}

/// Time the last `ok` rotation of `secret` was recorded, as Unix seconds (for `--older-than`
/// with stores that keep no tags). Unverified: a hint, not evidence.
pub fn last_rotation(runtime: Option<&RuntimeDir>, secret: &str) -> Option<i64> {
    let bytes = runtime?.read(AUDIT_LOG, 512 * 1024 * 1024).ok()??;
    let text = String::from_utf8_lossy(&bytes);
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["action"] == "rotate" && v["outcome"] == "ok" && v["secret"].as_str() == Some(secret)
        })
        .filter_map(|v| v["time"].as_str().and_then(parse_rfc3339))
        .max()
}

/// Time (Unix seconds) this host last saw `secret` get a new value: a `rotate` or `sync` that
/// committed, or a `load` that wrote another version than it had. For the rotation policy of
/// stores that keep no history (`.env`). Unverified: a hint, not evidence.
pub fn last_change(runtime: Option<&RuntimeDir>, secret: &str) -> Option<i64> {
    let bytes = runtime?.read(AUDIT_LOG, 512 * 1024 * 1024).ok()??;
    let text = String::from_utf8_lossy(&bytes);
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            let committed = v["outcome"] == "ok";
            match v["action"].as_str() {
                Some("rotate" | "sync") => committed && v["secret"].as_str() == Some(secret),
                Some("load") => {
                    let new = &v["new_version"][secret];
                    committed && !new.is_null() && *new != v["old_version"][secret]
                }
                _ => false,
            }
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
mod tests;
