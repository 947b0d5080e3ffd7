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

use hmac::{Hmac, Mac as _};
use serde::Serialize;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::files::secret_dir::SecretDir;
use crate::files::state::{SecretState, State};
use crate::manifest::{Manifest, SecretSpec};
use crate::secret::SecretValue;
use crate::store::SecretStore;

type HmacSha256 = Hmac<Sha256>;

/// The secret whose value keys the chain when the project declares it.
pub const SIGNING_KEY_SECRET: &str = "audit-log-signing-key";

/// File name of the per-install fallback key, inside the runtime directory.
pub const LOCAL_KEY_FILE: &str = "audit.key";

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

/// Which key signs the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KeySource {
    #[serde(rename = "audit-log-signing-key")]
    SigningKeySecret,
    #[serde(rename = "local")]
    Local,
}

/// An HMAC key for the chain; its bytes are wiped on drop.
#[derive(Clone)]
pub struct AuditKey {
    source: KeySource,
    bytes: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey({:?}, id {})", self.source, self.id())
    }
}

impl AuditKey {
    /// A key from the `audit-log-signing-key` secret's value.
    pub fn from_signing_secret(value: &SecretValue) -> AuditKey {
        AuditKey {
            source: KeySource::SigningKeySecret,
            bytes: Zeroizing::new(value.expose().as_bytes().to_vec()),
        }
    }

    /// The per-install key in `<runtime_dir>/audit.key`, created (0600, 32 random bytes) on first use.
    pub fn local(runtime_dir: &Path) -> Result<AuditKey> {
        let path = runtime_dir.join(LOCAL_KEY_FILE);
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&path);
        match created {
            Ok(mut file) => {
                let mut raw = Zeroizing::new([0u8; 32]);
                rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut *raw).map_err(
                    |e| Error::Io {
                        path: path.clone(),
                        action: "read OS randomness",
                        source: std::io::Error::other(e.to_string()),
                    },
                )?;
                let encoded = Zeroizing::new(hex::encode(*raw));
                file.write_all(encoded.as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(Error::io(&path, "write audit key"))?;
                Ok(AuditKey {
                    source: KeySource::Local,
                    bytes: Zeroizing::new(encoded.as_bytes().to_vec()),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::read_local(&path),
            Err(e) => Err(Error::io(&path, "create audit key")(e)),
        }
    }

    /// The per-install key if it exists (for verifying without creating one).
    pub fn existing_local(runtime_dir: &Path) -> Result<Option<AuditKey>> {
        let path = runtime_dir.join(LOCAL_KEY_FILE);
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        Self::read_local(&path).map(Some)
    }

    fn read_local(path: &Path) -> Result<AuditKey> {
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(nix::libc::ELOOP) => Error::UnsafePath {
                    path: path.to_path_buf(),
                    message: "the audit key is a symlink; remove it".into(),
                },
                _ => Error::io(path, "read audit key")(e),
            })?;
        let mut bytes = Zeroizing::new(Vec::new());
        std::io::Read::by_ref(&mut file)
            .take(4096)
            .read_to_end(&mut bytes)
            .map_err(Error::io(path, "read audit key"))?;
        while bytes.last().is_some_and(u8::is_ascii_whitespace) {
            bytes.pop();
        }
        if bytes.is_empty() {
            return Err(Error::config(path, "the audit key file is empty"));
        }
        Ok(AuditKey {
            source: KeySource::Local,
            bytes,
        })
    }

    /// The signing secret's value when available, else the per-install key.
    pub fn resolve(runtime_dir: &Path, signing_value: Option<&SecretValue>) -> Result<AuditKey> {
        match signing_value.filter(|v| !v.is_empty()) {
            Some(v) => Ok(Self::from_signing_secret(v)),
            None => Self::local(runtime_dir),
        }
    }

    pub fn source(&self) -> KeySource {
        self.source
    }

    /// A one-way id of the key (HMAC of a constant, 8 bytes hex): tells keys apart, reveals nothing.
    pub fn id(&self) -> String {
        let mut mac = self.hmac();
        mac.update(b"compose-secrets audit key id");
        hex::encode(&mac.finalize().into_bytes()[..8])
    }

    fn hmac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; this cannot fail.
        <HmacSha256 as hmac::Mac>::new_from_slice(&self.bytes)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
    }

    fn mac(&self, prev: &str, body: &str) -> String {
        let mut mac = self.hmac();
        mac.update(prev.as_bytes());
        mac.update(body.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
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
        "key": key.source,
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

/// JSON with object keys sorted at every level and no whitespace: the bytes the MAC covers.
pub fn canonical(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Result of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Lines read (non-empty ones).
    pub lines: usize,
    /// 1-based number of the first line that fails, if any.
    pub first_bad_line: Option<usize>,
    /// Why it fails (never any line content).
    pub reason: Option<String>,
}

impl ChainReport {
    pub fn ok(&self) -> bool {
        self.first_bad_line.is_none()
    }
}

/// Check every line's MAC and link with one key. A missing log is an empty, valid chain.
pub fn verify_chain(path: &Path, key: &AuditKey) -> Result<ChainReport> {
    verify_chain_with_keys(path, std::slice::from_ref(key))
}

/// As [`verify_chain`], with every key that may have signed lines (e.g. all versions of a
/// rotated `audit-log-signing-key`); each line names its key by `key_id`.
pub fn verify_chain_with_keys(path: &Path, keys: &[AuditKey]) -> Result<ChainReport> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ChainReport {
                lines: 0,
                first_bad_line: None,
                reason: None,
            })
        }
        Err(e) => return Err(Error::io(path, "open audit log")(e)),
    };
    let mut text = Vec::new();
    file.take(512 * 1024 * 1024)
        .read_to_end(&mut text)
        .map_err(Error::io(path, "read audit log"))?;
    let ids: Vec<(String, &AuditKey)> = keys.iter().map(|k| (k.id(), k)).collect();
    let mut prev = String::new();
    let mut lines = 0;
    let mut bad: Option<(usize, String)> = None;
    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        if raw.is_empty() {
            continue;
        }
        lines += 1;
        if bad.is_some() {
            continue;
        }
        match check_line(raw, &prev, &ids) {
            Ok(mac) => prev = mac,
            Err(reason) => bad = Some((number, reason)),
        }
    }
    if bad.is_none() && !text.is_empty() && text.last() != Some(&b'\n') {
        bad = Some((
            lines,
            "the last line is incomplete (no trailing newline)".into(),
        ));
    }
    Ok(ChainReport {
        lines,
        first_bad_line: bad.as_ref().map(|(n, _)| *n),
        reason: bad.map(|(_, r)| r),
    })
}

fn check_line(
    raw: &[u8],
    prev: &str,
    keys: &[(String, &AuditKey)],
) -> std::result::Result<String, String> {
    if raw.len() > MAX_LINE_BYTES {
        return Err("line too long".into());
    }
    let text = std::str::from_utf8(raw).map_err(|_| "not UTF-8".to_string())?;
    let mut doc: serde_json::Value =
        serde_json::from_str(text).map_err(|_| "not valid JSON".to_string())?;
    if canonical(&doc) != text {
        return Err("not in canonical form (edited by hand?)".into());
    }
    let obj = doc
        .as_object_mut()
        .ok_or_else(|| "not a JSON object".to_string())?;
    let mac = match obj.remove("mac") {
        Some(serde_json::Value::String(m)) => m,
        _ => return Err("no `mac` field".into()),
    };
    let line_prev = obj.get("prev").and_then(|p| p.as_str()).unwrap_or_default();
    if line_prev != prev {
        return Err(if prev.is_empty() {
            "the chain does not start here (lines before it were removed?)".into()
        } else {
            "`prev` does not match the previous line's mac (a line was removed, reordered or edited)"
                .into()
        });
    }
    let key_id = obj
        .get("key_id")
        .and_then(|k| k.as_str())
        .unwrap_or_default();
    let key = keys
        .iter()
        .find(|(id, _)| id == key_id)
        .map(|(_, k)| *k)
        .ok_or_else(|| {
            format!("signed with a key not given to verify (key_id {key_id}); wrong key, or the signing key was rotated")
        })?;
    let body = canonical(&doc);
    // Constant-time compare via the hmac crate.
    let mut check = key.hmac();
    check.update(prev.as_bytes());
    check.update(body.as_bytes());
    let given = hex::decode(&mac).map_err(|_| "`mac` is not hex".to_string())?;
    check
        .verify_slice(&given)
        .map_err(|_| "mac mismatch: the line was altered or signed with another key".to_string())?;
    Ok(mac)
}

/// The chain key for this project: the `audit-log-signing-key` secret's value when the manifest
/// declares it and the value is at hand (its file under the secrets directory, else the store),
/// else the per-install key.
pub async fn project_key(
    runtime_dir: &Path,
    secrets_dir: &Path,
    manifest: Option<&Manifest>,
    store: Option<&dyn SecretStore>,
) -> Result<AuditKey> {
    let value = match manifest.and_then(|m| m.lookup(SIGNING_KEY_SECRET)) {
        Some(spec) => signing_value(secrets_dir, spec, store).await,
        None => None,
    };
    AuditKey::resolve(runtime_dir, value.as_ref())
}

async fn signing_value(
    secrets_dir: &Path,
    spec: &SecretSpec,
    store: Option<&dyn SecretStore>,
) -> Option<SecretValue> {
    let from_file = spec
        .file_path()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|name| {
            let dir = SecretDir::open(secrets_dir, false).ok()?;
            let state = dir.read(name).ok()??;
            SecretValue::from_bytes(state.contents.to_vec()).ok()
        })
        .filter(|v| !v.is_empty());
    if from_file.is_some() {
        return from_file;
    }
    let store = store?;
    let key = if store.is_remote() {
        &spec.vault_name
    } else {
        &spec.env_key
    };
    store
        .get_latest(key)
        .await
        .ok()
        .map(|f| f.value)
        .filter(|v| !v.is_empty())
}

/// Record a successful, non-dry-run `load`: every secret it covered with the version
/// (Key Vault) or fingerprint (demo) before and after.
pub async fn record_load(
    ctx: &Context,
    manifest: &Manifest,
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
    let key = project_key(
        &ctx.runtime_dir,
        &ctx.secrets_dir,
        Some(manifest),
        Some(store),
    )
    .await?;
    append(&ctx.audit_log(), &key, &event)
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

/// Now, as RFC 3339 UTC with second precision (`2025-10-25T14:30:00Z`).
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Unix seconds of an RFC 3339 timestamp.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
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
