//! The checks behind `verify`: files, drift, stale containers, leaks, health, vault access,
//! the audit chain and Swarm versions.
//!
//! Each check is a function over inputs the command gathered (the manifest, the secrets
//! directory, a [`SecretStore`], the containers an engine listed, the git work tree), so
//! unit tests drive them with `MemoryStore`, `MemoryEngine` and temp dirs. Every finding
//! names the secret, file, service or container it concerns. Values are read into memory
//! only to be compared (by fingerprint, or as substrings for leak detection); no message
//! ever contains one.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::docker::ContainerInfo;
use crate::manifest::{Manifest, SecretSource, SecretSpec};
use crate::secret::{fingerprint_bytes, SecretValue};
use crate::secret_files::SecretDir;
use crate::state::{SecretState, State};
use crate::store::{SecretStore, VersionInfo};
use crate::swarm::SwarmEngine;

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
    /// files, drift, containers, leaks, git, health, vault, audit, swarm
    pub category: &'static str,
    /// The secret, file, service or container concerned.
    pub subject: String,
    pub message: String,
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
    pub file_name: String,
    pub value: Option<SecretValue>,
    pub fingerprint: Option<String>,
    /// Last write of the file, in Unix nanoseconds: container start times have nanoseconds
    /// too, and a rewrite in the same second as a start must not look older than it.
    pub mtime_ns: Option<i128>,
}

/// Files: directory and each declared secret's file (exists, non-empty, mode, owner), strays.
pub fn check_files<'m>(
    f: &mut Findings,
    manifest: &'m Manifest,
    secrets_dir: &Path,
) -> Vec<LocalSecret<'m>> {
    let dir_name = f.path_subject(secrets_dir);
    let file_names = match manifest.file_names_in(secrets_dir) {
        Ok(names) => names,
        Err(e) => {
            f.add(Status::Fail, "files", &dir_name, e.to_string());
            return Vec::new();
        }
    };
    let euid = nix::unistd::Uid::effective().as_raw();
    let dir = match crate::secret_files::describe_mode(secrets_dir) {
        Err(_) => {
            f.add(
                Status::Fail,
                "files",
                &dir_name,
                "the secrets directory does not exist; run `compose-secrets load`",
            );
            None
        }
        Ok((_, _, _, true)) => {
            f.add(
                Status::Fail,
                "files",
                &dir_name,
                "the secrets directory is a symlink; replace it with a real directory (`compose-secrets load` creates it)",
            );
            None
        }
        Ok((mode, uid, _, false)) => {
            let mut problems = Vec::new();
            if mode != 0o700 {
                problems.push(format!("mode {mode:04o}, expected 0700"));
            }
            if uid != euid {
                problems.push(format!("owned by uid {uid}, expected {euid}"));
            }
            if problems.is_empty() {
                f.add(
                    Status::Pass,
                    "files",
                    &dir_name,
                    "directory 0700, owned by the running user",
                );
            } else {
                f.add(
                    Status::Fail,
                    "files",
                    &dir_name,
                    format!("directory {}", problems.join("; ")),
                );
            }
            // SecretDir refuses a group- or world-writable directory: its files are then
            // not checked one by one (the directory's failure above says why).
            SecretDir::open(secrets_dir, false).ok()
        }
    };
    let mut out = Vec::new();
    for (name, file_name) in &file_names {
        let Some(spec) = manifest.secret(name) else {
            continue;
        };
        let mut local = LocalSecret {
            spec,
            file_name: file_name.clone(),
            value: None,
            fingerprint: None,
            mtime_ns: None,
        };
        match dir.as_ref().map(|d| d.read(file_name)) {
            None => {}
            Some(Err(e)) => f.add(Status::Fail, "files", name, e.to_string()),
            Some(Ok(None)) => f.add(
                Status::Fail,
                "files",
                name,
                format!("{file_name} is missing; run `compose-secrets load`"),
            ),
            Some(Ok(Some(st))) => {
                let mut problems = Vec::new();
                if st.contents.is_empty() {
                    problems.push("the file is empty".to_string());
                }
                if st.mode != spec.mode {
                    problems.push(format!("mode {:04o}, expected {:04o}", st.mode, spec.mode));
                }
                // Without a declared owner, load leaves the file to the user who wrote it.
                let want_uid = spec.owner_uid.unwrap_or(euid);
                if want_uid != st.uid || spec.owner_gid.is_some_and(|g| g != st.gid) {
                    problems.push(format!(
                        "owner {}:{}, expected {}:{}",
                        st.uid,
                        st.gid,
                        want_uid,
                        spec.owner_gid.map_or_else(|| "*".into(), |g| g.to_string())
                    ));
                }
                if problems.is_empty() {
                    f.add(
                        Status::Pass,
                        "files",
                        name,
                        format!("{file_name}: {:04o}, {}:{}", st.mode, st.uid, st.gid),
                    );
                } else {
                    f.add(
                        Status::Fail,
                        "files",
                        name,
                        format!("{file_name}: {}", problems.join("; ")),
                    );
                }
                local.fingerprint = Some(fingerprint_bytes(&st.contents));
                local.value = SecretValue::from_bytes(st.contents.to_vec()).ok();
                local.mtime_ns = Some(
                    std::fs::symlink_metadata(secrets_dir.join(file_name))
                        .map_or(i128::from(st.mtime) * 1_000_000_000, |m| {
                            i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
                        }),
                );
            }
        }
        out.push(local);
    }
    if let Some(d) = &dir {
        let declared: Vec<&String> = file_names.iter().map(|(_, f)| f).collect();
        for entry in d.entries().unwrap_or_default() {
            if !declared.contains(&&entry) {
                f.add(
                    Status::Warn,
                    "files",
                    &entry,
                    "stray file: no declared secret owns it (`load --prune` removes it)",
                );
            }
        }
    }
    out
}

/// Drift: each file against the source's current version, by digest and version id.
///
/// Demo mode compares the file's fingerprint with the `.env` value's. Key Vault compares the
/// file with the fingerprint recorded at load (an edited file), and the version recorded at
/// load with the vault's current one (stale: rotated in the vault, not loaded yet).
pub async fn check_drift(
    f: &mut Findings,
    locals: &[LocalSecret<'_>],
    store: &dyn SecretStore,
    state: &State,
    remote: bool,
) {
    if !remote {
        for local in locals {
            let Some(file_fp) = &local.fingerprint else {
                continue;
            };
            let name = &local.spec.name;
            let key = &local.spec.env_key;
            match store.get_latest(key).await {
                Ok(current) if &current.value.fingerprint() == file_fp => {
                    f.add(Status::Pass, "drift", name, format!("matches {key}"));
                }
                Ok(_) => f.add(
                    Status::Fail,
                    "drift",
                    name,
                    format!(
                        "the file differs from {key} in {}; run `compose-secrets load`",
                        store.describe()
                    ),
                ),
                Err(e) => f.add(Status::Fail, "drift", name, e.to_string()),
            }
        }
        return;
    }
    let listing: BTreeMap<String, VersionInfo> = match store.list_properties().await {
        Ok(list) => list
            .into_iter()
            .map(|i| (i.name.to_ascii_lowercase(), i))
            .collect(),
        Err(e) => {
            f.add(
                Status::Fail,
                "drift",
                store.describe(),
                format!("cannot list the vault: {e}"),
            );
            return;
        }
    };
    for local in locals {
        let Some(file_fp) = &local.fingerprint else {
            continue;
        };
        let name = &local.spec.name;
        let listed = listing.get(&local.spec.vault_name.to_ascii_lowercase());
        let Some(saved) = state.secrets.get(name) else {
            f.add(
                Status::Warn,
                "drift",
                name,
                "no record of the loaded version; run `compose-secrets load`",
            );
            continue;
        };
        let Some(listed) = listed else {
            f.add(
                Status::Fail,
                "drift",
                name,
                format!("`{}` is not in the vault", local.spec.vault_name),
            );
            continue;
        };
        if &saved.fingerprint != file_fp {
            f.add(
                Status::Fail,
                "drift",
                name,
                "the file was changed since it was loaded (digest differs); run `compose-secrets load`",
            );
            continue;
        }
        match vault_currency(store, local.spec, listed, saved).await {
            Ok(Currency::Current) => f.add(
                Status::Pass,
                "drift",
                name,
                format!("matches version {}", short(saved.version.as_deref())),
            ),
            Ok(Currency::Stale { current }) => f.add(
                Status::Fail,
                "drift",
                name,
                format!(
                    "stale: the vault's current version is {}, the file holds {}; run `compose-secrets load`",
                    current.as_deref().map_or("newer".into(), |v| short(Some(v))),
                    short(saved.version.as_deref())
                ),
            ),
            Ok(Currency::Disabled) => f.add(
                Status::Fail,
                "drift",
                name,
                "the vault's current version is disabled",
            ),
            Err(e) => f.add(
                Status::Warn,
                "drift",
                name,
                format!("cannot confirm the vault's current version: {e}"),
            ),
        }
    }
}

enum Currency {
    Current,
    Stale { current: Option<String> },
    Disabled,
}

/// Whether the version recorded at load is still the vault's current (or pinned) one.
async fn vault_currency(
    store: &dyn SecretStore,
    spec: &SecretSpec,
    listed: &VersionInfo,
    saved: &SecretState,
) -> crate::error::Result<Currency> {
    let same = |a: Option<&str>, b: Option<&str>| matches!((a, b), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b));
    if let Some(pinned) = spec.pinned_version.as_deref() {
        return Ok(if same(saved.version.as_deref(), Some(pinned)) {
            Currency::Current
        } else {
            Currency::Stale {
                current: Some(pinned.to_string()),
            }
        });
    }
    if saved.matches_listing(Some(listed), None) {
        return Ok(Currency::Current);
    }
    if !listed.enabled {
        return Ok(Currency::Disabled);
    }
    let moved_on = match (&listed.version, &saved.version) {
        (Some(now), Some(_)) => !same(Some(now), saved.version.as_deref()),
        _ => matches!((listed.updated, saved.updated), (Some(now), Some(then)) if now > then),
    };
    if moved_on {
        return Ok(Currency::Stale {
            current: listed.version.clone(),
        });
    }
    // `updated` has one-second resolution and listings carry no version id: a rotation in
    // the second of the last load looks unchanged, so ask for the current version itself.
    let current = store.get_latest(&spec.vault_name).await?;
    let unchanged = match (&current.info.version, &saved.version) {
        (Some(now), Some(then)) => now.eq_ignore_ascii_case(then),
        _ => current.value.fingerprint() == saved.fingerprint,
    };
    Ok(if unchanged {
        Currency::Current
    } else {
        Currency::Stale {
            current: current.info.version,
        }
    })
}

/// The first 8 characters of a version id, for messages.
fn short(version: Option<&str>) -> String {
    version.map_or_else(|| "-".into(), |v| v.get(..8).unwrap_or(v).to_string())
}

/// Stale containers, leaks into container config, and Docker health.
pub fn check_containers(
    f: &mut Findings,
    manifest: &Manifest,
    locals: &[LocalSecret<'_>],
    containers: &[ContainerInfo],
) {
    if containers.is_empty() {
        f.add(
            Status::Warn,
            "containers",
            format!("project {}", manifest.project_name),
            "no containers of this Compose project; nothing to check for staleness",
        );
    }
    for c in containers {
        let subject = format!("{} ({})", c.name, c.service);
        let leaked = leaks_in_container(c, locals);
        if leaked.is_empty() {
            f.add(
                Status::Pass,
                "leaks",
                &subject,
                "no secret value in env, labels or command",
            );
        } else {
            f.add(
                Status::Fail,
                "leaks",
                &subject,
                format!(
                    "secret value exposed: {}; recreate the container without it",
                    leaked.join("; ")
                ),
            );
        }
        if !c.running {
            f.add(
                Status::Warn,
                "containers",
                &subject,
                format!("not running ({})", or_unknown(&c.status)),
            );
            continue;
        }
        check_staleness(f, &subject, c, locals);
        match c.health.as_deref() {
            Some("healthy") => f.add(Status::Pass, "health", &subject, "Docker health: healthy"),
            Some("unhealthy") => {
                f.add(Status::Fail, "health", &subject, "Docker health: unhealthy")
            }
            Some(other) => f.add(
                Status::Warn,
                "health",
                &subject,
                format!("Docker health: {other}"),
            ),
            None => f.add(Status::Skip, "health", &subject, "no HEALTHCHECK"),
        }
    }
}

/// How far a file's mtime may lag the moment it was written. A new file's timestamp comes
/// from the kernel's coarse clock, which advances once a tick (4 ms at HZ=250, 10 ms at
/// HZ=100), while Docker's `StartedAt` is exact: a container started a few milliseconds
/// before a write can look as if it started after it (seen here: a rollback writing the
/// file 1-4 ms after the engine restarted the container).
const MTIME_SLACK_NS: i128 = 10_000_000;

/// A running container that started before one of its secret files was last written still
/// holds the old value (Compose bind-mounts the file; the app read it at start). Within the
/// mtime's slack the order cannot be told, and a container that might be stale is reported
/// as stale: `load` or `rotate` and a restart are never that close together.
fn check_staleness(f: &mut Findings, subject: &str, c: &ContainerInfo, locals: &[LocalSecret<'_>]) {
    let Some(started) = c.started_at.as_deref().and_then(parse_rfc3339_ns) else {
        f.add(
            Status::Warn,
            "containers",
            subject,
            "Docker reports no start time; staleness not checked",
        );
        return;
    };
    let stale: Vec<&str> = locals
        .iter()
        .filter(|l| l.spec.services().contains(&c.service))
        .filter(|l| {
            l.mtime_ns
                .is_some_and(|written| written + MTIME_SLACK_NS > started)
        })
        .map(|l| l.spec.name.as_str())
        .collect();
    if stale.is_empty() {
        f.add(
            Status::Pass,
            "containers",
            subject,
            "started after its secret files were last written",
        );
    } else {
        f.add(
            Status::Fail,
            "containers",
            subject,
            format!(
                "service {} container {} started before secret {} was last written (or too close to the write to tell): \
                 it may still hold the old value; restart it (`load` and `rotate --no-restart` do not restart containers)",
                c.service,
                c.name,
                stale.join(", ")
            ),
        );
    }
}

/// Which secrets' values appear in a container's env, labels or command, and where.
fn leaks_in_container(c: &ContainerInfo, locals: &[LocalSecret<'_>]) -> Vec<String> {
    let mut leaked = Vec::new();
    for local in locals {
        let Some(value) = local.value.as_ref().filter(|v| v.len() >= MIN_LEAK_LEN) else {
            continue;
        };
        let v = value.expose();
        let places: Vec<&str> = [
            ("Config.Env", c.env.iter().any(|e| e.contains(v))),
            (
                "labels",
                c.labels.iter().any(|(k, l)| k.contains(v) || l.contains(v)),
            ),
            ("command", c.command.iter().any(|a| a.contains(v))),
        ]
        .into_iter()
        .filter_map(|(place, hit)| hit.then_some(place))
        .collect();
        if !places.is_empty() {
            leaked.push(format!("{} in {}", local.spec.name, places.join(" and ")));
        }
    }
    leaked
}

/// Compose `environment:` must not carry a secret value, literally, through `${VAR}`
/// interpolation of another variable, or by interpolating a secret's own `.env` key.
///
/// `variables` are those Compose interpolates with (process environment over `.env`).
pub fn check_compose_environment(
    f: &mut Findings,
    manifest: &Manifest,
    locals: &[LocalSecret<'_>],
    variables: &HashMap<String, String>,
) {
    let values: HashMap<&str, &SecretValue> = locals
        .iter()
        .filter_map(|l| Some((l.spec.name.as_str(), l.value.as_ref()?)))
        .filter(|(_, v)| v.len() >= MIN_LEAK_LEN)
        .collect();
    for service in manifest.services.values() {
        let mut hits: Vec<String> = Vec::new();
        for (key, raw) in &service.environment {
            let referenced = referenced_variables(raw);
            let interpolated = crate::manifest::interpolate(raw, variables).unwrap_or_default();
            for spec in manifest
                .secrets
                .iter()
                .filter(|s| s.source != SecretSource::External)
            {
                if referenced.contains(&spec.env_key.as_str()) {
                    hits.push(format!(
                        "{key} interpolates ${{{}}} (secret {})",
                        spec.env_key, spec.name
                    ));
                } else if values
                    .get(spec.name.as_str())
                    .is_some_and(|v| raw.contains(v.expose()) || interpolated.contains(v.expose()))
                {
                    hits.push(format!("{key} holds the value of secret {}", spec.name));
                }
            }
        }
        let subject = format!("service {}", service.name);
        if hits.is_empty() {
            f.add(
                Status::Pass,
                "leaks",
                subject,
                "no secret value in Compose `environment:`",
            );
        } else {
            f.add(
                Status::Fail,
                "leaks",
                subject,
                format!(
                    "Compose `environment:` {}; mount the secret file instead",
                    hits.join("; ")
                ),
            );
        }
    }
}

/// Names a Compose value interpolates: `$VAR`, `${VAR}`, `${VAR:-default}` and those nested
/// in defaults; `$$` is a literal dollar.
fn referenced_variables(value: &str) -> Vec<&str> {
    let bytes = value.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'$') => i += 2,
            Some(b'{') => {
                let start = i + 2;
                let len = value[start..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(value.len() - start);
                if len > 0 {
                    names.push(&value[start..start + len]);
                }
                i = start + len;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let start = i + 1;
                let len = value[start..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(value.len() - start);
                names.push(&value[start..start + len]);
                i = start + len;
            }
            _ => i += 1,
        }
    }
    names
}

/// `.env` is 0600 and not a symlink.
pub fn check_env_file(f: &mut Findings, env_file: &Path) {
    let subject = f.path_subject(env_file);
    match crate::secret_files::describe_mode(env_file) {
        Err(_) => f.add(Status::Skip, "leaks", subject, "no .env file"),
        Ok((_, _, _, true)) => f.add(
            Status::Fail,
            "leaks",
            subject,
            "is a symlink: its secrets live wherever it points; make it a regular 0600 file",
        ),
        Ok((mode, _, _, false)) if mode & 0o077 != 0 => f.add(
            Status::Fail,
            "leaks",
            subject,
            format!("mode {mode:04o}, expected 0600 (chmod 600)"),
        ),
        Ok((mode, _, _, false)) => {
            f.add(Status::Pass, "leaks", subject, format!("mode {mode:04o}"))
        }
    }
}

/// `.env` and the runtime directory are git-ignored and were never committed.
///
/// Runs `git` in `cwd` with paths only; no value is ever on its command line.
pub fn check_git(f: &mut Findings, cwd: &Path, env_file: &Path, runtime_dir: &Path) {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(cwd)
            .stdin(std::process::Stdio::null())
            .output()
    };
    let inside = git(&["rev-parse", "--is-inside-work-tree"])
        .is_ok_and(|out| out.status.success() && out.stdout.starts_with(b"true"));
    if !inside {
        f.add(
            Status::Warn,
            "git",
            f.path_subject(cwd),
            "not a git repository; ignore rules and history not checked",
        );
        return;
    }
    for path in [env_file, runtime_dir] {
        let subject = f.path_subject(path);
        let rel = path.strip_prefix(cwd).unwrap_or(path).display().to_string();
        // --no-index: a tracked file matched by .gitignore is still "ignored" here; the
        // history check below reports that it was committed.
        let ignored = git(&["check-ignore", "-q", "--no-index", "--", &rel])
            .is_ok_and(|o| o.status.success());
        if ignored {
            f.add(Status::Pass, "git", &subject, "git-ignored");
        } else {
            f.add(
                Status::Fail,
                "git",
                &subject,
                format!("not git-ignored: add {rel} to .gitignore"),
            );
        }
        match git(&["log", "--all", "--format=%h", "--", &rel]) {
            Ok(out) if out.status.success() => {
                let commits = String::from_utf8_lossy(&out.stdout);
                match commits.lines().last() {
                    Some(first) => f.add(
                        Status::Fail,
                        "git",
                        &subject,
                        format!(
                            "committed in history (first in {first}, {} commit(s)); rotate every secret it held \
                             and purge it from history",
                            commits.lines().count()
                        ),
                    ),
                    None => f.add(Status::Pass, "git", &subject, "never committed"),
                }
            }
            // A repository without commits yet has no history to leak.
            Ok(_) => f.add(
                Status::Pass,
                "git",
                &subject,
                "never committed (no commits yet)",
            ),
            Err(e) => f.add(
                Status::Warn,
                "git",
                &subject,
                format!("cannot read git history: {e}"),
            ),
        }
    }
}

/// HTTP health checks of the services that declare a `health-url` and have a running container.
pub async fn check_http_health(f: &mut Findings, manifest: &Manifest, running: &[String]) {
    for service in manifest.services.values() {
        let Some(url) = &service.health_url else {
            continue;
        };
        let subject = format!("service {}", service.name);
        if !running.contains(&service.name) {
            f.add(
                Status::Skip,
                "health",
                subject,
                "no running container to check",
            );
            continue;
        }
        if url.contains('{') {
            f.add(
                Status::Skip,
                "health",
                subject,
                "per-container health URL; checked by rotate",
            );
            continue;
        }
        match crate::health::wait_http_healthy(url, HTTP_HEALTH_TIMEOUT).await {
            Ok(h) => f.add(
                Status::Pass,
                "health",
                subject,
                format!("{url}: HTTP {}", h.status),
            ),
            Err(e) => f.add(Status::Fail, "health", subject, e.to_string()),
        }
    }
}

/// The vault answers and the identity may `list` and `get` (load) and `set` (rotate), probed
/// without writing wherever the API allows.
pub async fn check_vault(f: &mut Findings, store: &dyn SecretStore, names: &[String]) {
    let probe = store.probe_access(names).await;
    let subject = store.describe();
    if !probe.reachable {
        f.add(
            Status::Fail,
            "vault",
            &subject,
            format!("not reachable: {}", probe.detail),
        );
        return;
    }
    f.add(Status::Pass, "vault", &subject, "reachable");
    match probe.can_list {
        Some(true) => f.add(Status::Pass, "vault", &subject, "`list` permitted (load)"),
        Some(false) => f.add(
            Status::Fail,
            "vault",
            &subject,
            "the identity lacks the secrets `list` permission (needed by load)",
        ),
        None => f.add(
            Status::Warn,
            "vault",
            &subject,
            format!("`list` could not be probed: {}", probe.detail),
        ),
    }
    match probe.can_get {
        Some(true) => f.add(Status::Pass, "vault", &subject, "`get` permitted (load)"),
        Some(false) => f.add(
            Status::Fail,
            "vault",
            &subject,
            format!(
                "the identity lacks the secrets `get` permission (needed by load): {}",
                probe.detail
            ),
        ),
        None => f.add(
            Status::Warn,
            "vault",
            &subject,
            format!("`get` could not be probed: {}", probe.detail),
        ),
    }
    // Only rotate needs `set`; a load-only VM without it is a sound deployment.
    match probe.can_set {
        Some(true) => f.add(Status::Pass, "vault", &subject, "`set` permitted (rotate)"),
        Some(false) => f.add(
            Status::Warn,
            "vault",
            &subject,
            "the identity lacks the secrets `set` permission: `rotate` will fail (fine for a load-only VM)",
        ),
        None => f.add(
            Status::Warn,
            "vault",
            &subject,
            format!(
                "`set` (rotate) cannot be probed without writing: {}",
                probe.detail
            ),
        ),
    }
}

/// The audit log's HMAC chain, against any of `keys` (the signing key changes on rotation).
pub fn check_audit(f: &mut Findings, path: &Path, keys: &[crate::audit::AuditKey]) {
    let subject = f.path_subject(path);
    if !path.exists() {
        f.add(Status::Skip, "audit", subject, "no audit log yet");
        return;
    }
    match crate::audit::verify_chain_with_keys(path, keys) {
        Ok(report) => match report.first_bad_line {
            None => f.add(
                Status::Pass,
                "audit",
                subject,
                format!("HMAC chain intact ({} line(s))", report.lines),
            ),
            Some(line) => f.add(
                Status::Fail,
                "audit",
                subject,
                format!(
                    "chain broken at line {line}: {}",
                    report.reason.unwrap_or_default()
                ),
            ),
        },
        Err(e) => f.add(Status::Fail, "audit", subject, e.to_string()),
    }
}

/// Swarm: every service mounts the current version of each secret; no stale versions left.
pub async fn check_swarm(
    f: &mut Findings,
    swarm: &dyn SwarmEngine,
    stack: &str,
    locals: &[LocalSecret<'_>],
    state: &State,
) {
    let (secrets, services) = match (
        swarm.stack_secrets(stack).await,
        swarm.stack_services(stack).await,
    ) {
        (Ok(s), Ok(v)) => (s, v),
        (Err(e), _) | (_, Err(e)) => {
            f.add(Status::Fail, "swarm", stack, e.to_string());
            return;
        }
    };
    for local in locals {
        let name = &local.spec.name;
        let Some(saved) = state.secrets.get(name) else {
            continue;
        };
        let current =
            crate::swarm::version_label_from(saved.version.as_deref(), &saved.fingerprint);
        let versions: Vec<_> = secrets
            .iter()
            .filter(|s| s.secret_name(stack).as_deref() == Some(name))
            .collect();
        let mounted: Vec<_> = services
            .iter()
            .flat_map(|svc| svc.secrets.iter().map(move |m| (svc, m)))
            .filter_map(|(svc, m)| {
                versions
                    .iter()
                    .find(|v| v.id == m.secret_id)
                    .map(|v| (svc, *v))
            })
            .collect();
        for (svc, v) in &mounted {
            if v.version() == Some(current.as_str()) {
                f.add(
                    Status::Pass,
                    "swarm",
                    format!("{} / {name}", svc.name),
                    format!("mounts the current version ({})", v.name),
                );
            } else {
                f.add(
                    Status::Fail,
                    "swarm",
                    format!("{} / {name}", svc.name),
                    format!("mounts {} , not the current version {current}; run `compose-secrets rotate` or redeploy", v.name),
                );
            }
        }
        for v in versions.iter().filter(|v| {
            !mounted.iter().any(|(_, m)| m.id == v.id) && v.version() != Some(current.as_str())
        }) {
            f.add(
                Status::Warn,
                "swarm",
                name,
                format!("stale secret version {} is left behind", v.name),
            );
        }
    }
}

/// RFC 3339 (Docker's `State.StartedAt`, nanoseconds included) as Unix nanoseconds.
fn parse_rfc3339_ns(s: &str) -> Option<i128> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp_nanos)
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() {
        "state unknown"
    } else {
        s
    }
}

/// Secrets whose value a leak check needs: file sources only.
pub fn is_file_secret(spec: &SecretSpec) -> bool {
    matches!(spec.source, SecretSource::File(_))
}

#[cfg(test)]
mod tests {
    //! Each check fails for the right reason and passes once the cause is fixed, against
    //! temp dirs, `MemoryStore` and `MemoryEngine`.

    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::docker::{ContainerEngine as _, MemoryEngine};
    use crate::manifest::ManifestOptions;
    use crate::secret_files::Owner;
    use crate::store::memory::MemoryStore;
    use crate::store::AccessProbe;

    const PROJECT: &str = "unit";
    const VALUE: &str = "correct-horse-battery-staple";
    const COMPOSE: &str = "\
services:
  app:
    image: demo
    environment:
      PLAIN: hello
    secrets: [db-password]
  worker:
    image: demo
secrets:
  db-password:
    file: ./secrets/db-password
";

    /// A project directory with a Compose file and a loaded `db-password` file.
    struct Fixture {
        dir: tempfile::TempDir,
        manifest: Manifest,
    }

    impl Fixture {
        fn new(compose: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("compose.yaml"), compose).unwrap();
            let manifest = Manifest::load(&ManifestOptions {
                search_from: dir.path().to_path_buf(),
                project_name: Some(PROJECT.into()),
                ..ManifestOptions::default()
            })
            .unwrap();
            let fixture = Self { dir, manifest };
            fixture.write_secret(VALUE);
            fixture
        }

        fn secrets_dir(&self) -> PathBuf {
            self.dir.path().join("secrets")
        }

        fn secret_file(&self) -> PathBuf {
            self.secrets_dir().join("db-password")
        }

        /// Write the file as `load` does: atomically, mode 0400.
        fn write_secret(&self, value: &str) {
            SecretDir::open(&self.secrets_dir(), true)
                .unwrap()
                .write_atomic("db-password", value.as_bytes(), 0o400, Owner::default())
                .unwrap();
        }

        fn files(&self) -> (Findings, Vec<LocalSecret<'_>>) {
            let mut f = Findings::relative_to(self.dir.path());
            let locals = check_files(&mut f, &self.manifest, &self.secrets_dir());
            (f, locals)
        }
    }

    fn statuses(f: &Findings, category: &str, subject: &str) -> Vec<Status> {
        f.checks
            .iter()
            .filter(|c| c.category == category && c.subject.contains(subject))
            .map(|c| c.status)
            .collect()
    }

    #[track_caller]
    fn assert_only(f: &Findings, category: &str, subject: &str, want: Status, says: &str) {
        let found: Vec<&Check> = f
            .checks
            .iter()
            .filter(|c| c.category == category && c.subject.contains(subject))
            .collect();
        assert!(
            !found.is_empty() && found.iter().all(|c| c.status == want),
            "{category}/{subject}: want only {want:?}\n{:#?}",
            f.checks
        );
        assert!(
            found.iter().any(|c| c.message.contains(says)),
            "{category}/{subject}: no message says {says:?}\n{found:#?}"
        );
        assert_no_value(f);
    }

    #[track_caller]
    fn assert_no_value(f: &Findings) {
        for c in &f.checks {
            assert!(
                !c.message.contains(VALUE) && !c.subject.contains(VALUE),
                "a value leaked into {c:?}"
            );
        }
    }

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_loaded_file_passes() {
        let fx = Fixture::new(COMPOSE);
        let (f, locals) = fx.files();
        assert_only(&f, "files", "db-password", Status::Pass, "0400");
        assert_only(&f, "files", "secrets", Status::Pass, "0700");
        assert_eq!(f.checks.len(), 2, "{:#?}", f.checks);
        assert!(locals[0].fingerprint.is_some() && locals[0].mtime_ns.is_some());
    }

    #[test]
    fn a_missing_empty_or_loose_file_fails_until_rewritten() {
        let fx = Fixture::new(COMPOSE);
        std::fs::remove_file(fx.secret_file()).unwrap();
        assert_only(
            &fx.files().0,
            "files",
            "db-password",
            Status::Fail,
            "missing",
        );

        fx.write_secret("");
        assert_only(&fx.files().0, "files", "db-password", Status::Fail, "empty");

        fx.write_secret(VALUE);
        set_mode(&fx.secret_file(), 0o644);
        assert_only(
            &fx.files().0,
            "files",
            "db-password",
            Status::Fail,
            "mode 0644, expected 0400",
        );

        fx.write_secret(VALUE);
        assert_only(&fx.files().0, "files", "db-password", Status::Pass, "0400");
    }

    #[test]
    fn a_file_with_the_wrong_owner_fails() {
        let fx = Fixture::new(&COMPOSE.replace(
            "file: ./secrets/db-password",
            "file: ./secrets/db-password\n    x-compose-secrets:\n      owner: \"4242:4343\"",
        ));
        let euid = nix::unistd::Uid::effective().as_raw();
        let egid = nix::unistd::Gid::effective().as_raw();
        assert_only(
            &fx.files().0,
            "files",
            "db-password",
            Status::Fail,
            &format!("owner {euid}:{egid}, expected 4242:4343"),
        );
        // Only root can hand a file to another user.
        if euid == 0 {
            std::os::unix::fs::chown(fx.secret_file(), Some(4242), Some(4343)).unwrap();
            assert_only(
                &fx.files().0,
                "files",
                "db-password",
                Status::Pass,
                "4242:4343",
            );
        }
    }

    #[test]
    fn an_unsafe_or_symlinked_directory_fails_until_fixed() {
        let fx = Fixture::new(COMPOSE);
        for loose in [0o755, 0o777] {
            set_mode(&fx.secrets_dir(), loose);
            assert_only(
                &fx.files().0,
                "files",
                "secrets",
                Status::Fail,
                &format!("mode {loose:04o}, expected 0700"),
            );
        }
        set_mode(&fx.secrets_dir(), 0o700);
        assert_only(&fx.files().0, "files", "secrets", Status::Pass, "0700");

        let real = fx.dir.path().join("real");
        std::fs::rename(fx.secrets_dir(), &real).unwrap();
        std::os::unix::fs::symlink(&real, fx.secrets_dir()).unwrap();
        assert_only(&fx.files().0, "files", "secrets", Status::Fail, "symlink");

        std::fs::remove_file(fx.secrets_dir()).unwrap();
        std::fs::rename(&real, fx.secrets_dir()).unwrap();
        assert_only(&fx.files().0, "files", "secrets", Status::Pass, "0700");
    }

    #[test]
    fn a_stray_file_warns_until_removed() {
        let fx = Fixture::new(COMPOSE);
        std::fs::write(fx.secrets_dir().join("old-token"), "x").unwrap();
        assert_only(&fx.files().0, "files", "old-token", Status::Warn, "stray");
        std::fs::remove_file(fx.secrets_dir().join("old-token")).unwrap();
        assert!(statuses(&fx.files().0, "files", "old-token").is_empty());
    }

    #[tokio::test]
    async fn demo_drift_compares_the_file_with_the_env_value() {
        let fx = Fixture::new(COMPOSE);
        let store = MemoryStore::new();
        let set = |v: &str| {
            let store = &store;
            let v = v.to_string();
            async move {
                store
                    .set("DB_PASSWORD", &SecretValue::new(v), &BTreeMap::new())
                    .await
                    .unwrap()
            }
        };
        set("another-value-entirely").await;
        let (mut f, locals) = fx.files();
        check_drift(&mut f, &locals, &store, &State::new(""), false).await;
        assert_only(
            &f,
            "drift",
            "db-password",
            Status::Fail,
            "differs from DB_PASSWORD",
        );

        set(VALUE).await;
        let (mut f, locals) = fx.files();
        check_drift(&mut f, &locals, &store, &State::new(""), false).await;
        assert_only(
            &f,
            "drift",
            "db-password",
            Status::Pass,
            "matches DB_PASSWORD",
        );
    }

    #[tokio::test]
    async fn vault_drift_reports_an_edited_file_and_a_stale_version() {
        let fx = Fixture::new(COMPOSE);
        let store = MemoryStore::new();
        let loaded = store
            .set(
                "db-password",
                &SecretValue::new(VALUE.into()),
                &BTreeMap::new(),
            )
            .await
            .unwrap();
        let mut state = State::new("memory");
        state.secrets.insert(
            "db-password".into(),
            SecretState {
                version: loaded.version.clone(),
                updated: loaded.updated,
                fingerprint: fingerprint_bytes(VALUE.as_bytes()),
                checked_at: 0,
            },
        );
        let drift = |state: &State| {
            let (store, state, fx) = (&store, state.clone(), &fx);
            async move {
                let (mut f, locals) = fx.files();
                check_drift(&mut f, &locals, store, &state, true).await;
                f
            }
        };
        assert_only(
            &drift(&state).await,
            "drift",
            "db-password",
            Status::Pass,
            "matches version",
        );

        // Edited by hand: the digest no longer matches what was loaded.
        fx.write_secret("edited-by-hand-123");
        assert_only(
            &drift(&state).await,
            "drift",
            "db-password",
            Status::Fail,
            "digest differs",
        );
        fx.write_secret(VALUE);

        // Rotated in the vault, not loaded yet.
        let newer = store
            .set(
                "db-password",
                &SecretValue::new("rotated-value-456".into()),
                &BTreeMap::new(),
            )
            .await
            .unwrap();
        assert_only(
            &drift(&state).await,
            "drift",
            "db-password",
            Status::Fail,
            "stale",
        );

        // Loading the new version fixes it.
        fx.write_secret("rotated-value-456");
        let entry = state.secrets.get_mut("db-password").unwrap();
        entry.version = newer.version;
        entry.updated = newer.updated;
        entry.fingerprint = fingerprint_bytes(b"rotated-value-456");
        assert_only(
            &drift(&state).await,
            "drift",
            "db-password",
            Status::Pass,
            "matches version",
        );

        // Never loaded: nothing recorded to compare with.
        assert_only(
            &drift(&State::new("memory")).await,
            "drift",
            "db-password",
            Status::Warn,
            "no record",
        );
    }

    async fn containers(engine: &MemoryEngine) -> Vec<ContainerInfo> {
        engine.project_containers(PROJECT).await.unwrap()
    }

    async fn check_all(
        fx: &Fixture,
        locals: &[LocalSecret<'_>],
        engine: &MemoryEngine,
    ) -> Findings {
        let mut f = Findings::default();
        check_containers(&mut f, &fx.manifest, locals, &containers(engine).await);
        f
    }

    #[tokio::test]
    async fn a_container_started_before_its_secret_was_written_is_stale_until_restarted() {
        let fx = Fixture::new(COMPOSE);
        let engine = MemoryEngine::new();
        let app = engine.add(PROJECT, "app", 1, true);
        let worker = engine.add(PROJECT, "worker", 1, false);
        engine.update(&app, |c| {
            c.started_at = Some("2001-02-03T04:05:06.789Z".into())
        });
        engine.update(&worker, |c| {
            c.started_at = Some("2001-02-03T04:05:06Z".into())
        });
        let (mut f, locals) = fx.files();
        check_containers(&mut f, &fx.manifest, &locals, &containers(&engine).await);
        assert_only(
            &f,
            "containers",
            "(app)",
            Status::Fail,
            "service app container unit_app_1 started before secret db-password",
        );
        // The worker mounts no secret: nothing it holds can be stale.
        assert_only(&f, "containers", "(worker)", Status::Pass, "started after");

        // The app's verdict when it started `after_ns` past its secret's mtime.
        let written = locals[0].mtime_ns.unwrap();
        let start_app_at = |after_ns: i128| {
            let started = time::OffsetDateTime::from_unix_timestamp_nanos(written + after_ns)
                .unwrap()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            engine.update(&app, |c| c.started_at = Some(started));
        };
        // 3 ms after the mtime is within the coarse clock's slack, so maybe before the write
        // itself: stale. Past the slack: restarted after the write.
        for (after_ns, status, message) in [
            (3_000_000, Status::Fail, "started before secret"),
            (MTIME_SLACK_NS + 1, Status::Pass, "started after"),
        ] {
            start_app_at(after_ns);
            let mut f = Findings::default();
            check_containers(&mut f, &fx.manifest, &locals, &containers(&engine).await);
            assert_only(&f, "containers", "(app)", status, message);
        }
    }

    #[tokio::test]
    async fn a_value_in_env_labels_or_command_is_a_leak_named_without_the_value() {
        let fx = Fixture::new(COMPOSE);
        let (_, locals) = fx.files();
        let engine = MemoryEngine::new();
        let id = engine.add(PROJECT, "worker", 1, false);
        engine.set_env(&id, vec![format!("DB_URL=postgres://u:{VALUE}@db/app")]);
        assert_only(
            &check_all(&fx, &locals, &engine).await,
            "leaks",
            "(worker)",
            Status::Fail,
            "db-password in Config.Env",
        );
        engine.set_env(
            &id,
            vec!["DB_PASSWORD_FILE=/run/secrets/db-password".into()],
        );
        engine.update(&id, |c| {
            c.labels.insert("password".into(), VALUE.into());
        });
        assert_only(
            &check_all(&fx, &locals, &engine).await,
            "leaks",
            "(worker)",
            Status::Fail,
            "db-password in labels",
        );
        engine.update(&id, |c| {
            c.labels.remove("password");
            c.command = vec!["serve".into(), format!("--password={VALUE}")];
        });
        assert_only(
            &check_all(&fx, &locals, &engine).await,
            "leaks",
            "(worker)",
            Status::Fail,
            "db-password in command",
        );
        // A stopped container's config still holds what it was created with.
        engine.update(&id, |c| c.running = false);
        assert_only(
            &check_all(&fx, &locals, &engine).await,
            "leaks",
            "(worker)",
            Status::Fail,
            "command",
        );
        engine.update(&id, |c| c.command = vec!["serve".into()]);
        assert_only(
            &check_all(&fx, &locals, &engine).await,
            "leaks",
            "(worker)",
            Status::Pass,
            "no secret value",
        );
    }

    #[tokio::test]
    async fn docker_health_unhealthy_fails_starting_and_stopped_warn() {
        let fx = Fixture::new(COMPOSE);
        let (_, locals) = fx.files();
        let engine = MemoryEngine::new();
        let id = engine.add(PROJECT, "app", 1, true);
        engine.update(&id, |c| c.started_at = Some("2999-01-01T00:00:00Z".into()));
        engine.update(&id, |c| c.health = Some("unhealthy".into()));
        assert_only(
            &check_all(&fx, &locals, &engine).await,
            "health",
            "(app)",
            Status::Fail,
            "unhealthy",
        );
        engine.update(&id, |c| c.health = Some("starting".into()));
        assert_only(
            &check_all(&fx, &locals, &engine).await,
            "health",
            "(app)",
            Status::Warn,
            "starting",
        );
        engine.update(&id, |c| c.health = Some("healthy".into()));
        assert_only(
            &check_all(&fx, &locals, &engine).await,
            "health",
            "(app)",
            Status::Pass,
            "healthy",
        );
        engine.update(&id, |c| {
            c.running = false;
            c.status = "exited".into();
        });
        assert_only(
            &check_all(&fx, &locals, &engine).await,
            "containers",
            "(app)",
            Status::Warn,
            "not running (exited)",
        );

        let mut f = Findings::default();
        check_containers(&mut f, &fx.manifest, &locals, &[]);
        assert_only(
            &f,
            "containers",
            "project unit",
            Status::Warn,
            "no containers",
        );
    }

    #[test]
    fn a_secret_in_compose_environment_is_a_leak_literal_interpolated_or_by_reference() {
        let check = |env_line: &str, variables: &[(&str, &str)]| {
            let fx = Fixture::new(&COMPOSE.replace("PLAIN: hello", env_line));
            let (_, locals) = fx.files();
            let variables = variables
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let mut f = Findings::default();
            check_compose_environment(&mut f, &fx.manifest, &locals, &variables);
            f
        };
        let f = check(&format!("PASSWORD: \"{VALUE}\""), &[]);
        assert_only(
            &f,
            "leaks",
            "service app",
            Status::Fail,
            "PASSWORD holds the value of secret db-password",
        );
        let f = check("PASSWORD: ${DB_PASSWORD}", &[]);
        assert_only(
            &f,
            "leaks",
            "service app",
            Status::Fail,
            "PASSWORD interpolates ${DB_PASSWORD} (secret db-password)",
        );
        let f = check("DSN: postgres://app:${PGPASS:-x}@db", &[("PGPASS", VALUE)]);
        assert_only(
            &f,
            "leaks",
            "service app",
            Status::Fail,
            "DSN holds the value of secret db-password",
        );
        // `$$` is a literal dollar, not a reference.
        let f = check(
            "PASSWORD_FILE: /run/secrets/db-password$${DB_PASSWORD}",
            &[],
        );
        assert_only(&f, "leaks", "service app", Status::Pass, "no secret value");
        assert_only(
            &f,
            "leaks",
            "service worker",
            Status::Pass,
            "no secret value",
        );
    }

    #[test]
    fn referenced_variables_follow_compose_interpolation() {
        assert_eq!(
            referenced_variables("$A ${B} ${C:-${D}} ${E-x} $$F $1 ${G?err} $"),
            vec!["A", "B", "C", "D", "E", "G"]
        );
    }

    #[test]
    fn a_readable_env_file_fails_until_0600() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join(".env");
        std::fs::write(&env, "A=b\n").unwrap();
        set_mode(&env, 0o644);
        let mut f = Findings::relative_to(dir.path());
        check_env_file(&mut f, &env);
        assert_only(
            &f,
            "leaks",
            ".env",
            Status::Fail,
            "mode 0644, expected 0600",
        );
        set_mode(&env, 0o600);
        let mut f = Findings::relative_to(dir.path());
        check_env_file(&mut f, &env);
        assert_only(&f, "leaks", ".env", Status::Pass, "0600");
        assert_eq!(f.checks[0].subject, ".env");
    }

    fn git(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("git")
            .args(["-c", "user.email=t@example.invalid", "-c", "user.name=t"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn git_ignore_rules_and_history_are_checked_inside_a_work_tree_only() {
        let dir = tempfile::tempdir().unwrap();
        let (env, runtime) = (dir.path().join(".env"), dir.path().join(".runtime"));
        std::fs::write(&env, "A=b\n").unwrap();
        std::fs::create_dir(&runtime).unwrap();
        let run = || {
            let mut f = Findings::relative_to(dir.path());
            check_git(&mut f, dir.path(), &env, &runtime);
            f
        };
        // GIT_CEILING_DIRECTORIES is not needed: temp dirs are not inside a repository.
        assert_only(&run(), "git", "", Status::Warn, "not a git repository");

        git(dir.path(), &["init", "-q"]);
        let f = run();
        assert_eq!(
            statuses(&f, "git", ".env"),
            vec![Status::Fail, Status::Pass]
        );
        assert_eq!(
            statuses(&f, "git", ".runtime"),
            vec![Status::Fail, Status::Pass]
        );

        std::fs::write(dir.path().join(".gitignore"), ".env\n.runtime/\n").unwrap();
        assert_only(&run(), "git", ".env", Status::Pass, "git-ignored");

        git(dir.path(), &["add", "-f", ".env"]);
        git(dir.path(), &["commit", "-qm", "oops"]);
        git(dir.path(), &["rm", "-q", "--cached", ".env"]);
        git(dir.path(), &["commit", "-qm", "remove"]);
        let f = run();
        assert_eq!(
            statuses(&f, "git", ".env"),
            vec![Status::Pass, Status::Fail]
        );
        assert!(f
            .checks
            .iter()
            .any(|c| c.message.contains("committed in history")));
        assert_only(&f, "git", ".runtime", Status::Pass, "");
    }

    /// A store that only answers the access probe.
    struct Probed(AccessProbe);

    #[async_trait::async_trait]
    impl SecretStore for Probed {
        fn describe(&self) -> String {
            "https://probe.vault.azure.net".into()
        }
        fn is_remote(&self) -> bool {
            true
        }
        async fn get_latest(&self, _: &str) -> crate::error::Result<crate::store::FetchedSecret> {
            Err(crate::error::Error::Usage("probe only".into()))
        }
        async fn get_version(
            &self,
            _: &str,
            _: &str,
        ) -> crate::error::Result<crate::store::FetchedSecret> {
            Err(crate::error::Error::Usage("probe only".into()))
        }
        async fn set(
            &self,
            _: &str,
            _: &SecretValue,
            _: &BTreeMap<String, String>,
        ) -> crate::error::Result<VersionInfo> {
            Err(crate::error::Error::Usage("probe only".into()))
        }
        async fn list_properties(&self) -> crate::error::Result<Vec<VersionInfo>> {
            Ok(Vec::new())
        }
        async fn list_versions(&self, _: &str) -> crate::error::Result<Vec<VersionInfo>> {
            Ok(Vec::new())
        }
        async fn probe_access(&self, _: &[String]) -> AccessProbe {
            self.0.clone()
        }
    }

    #[tokio::test]
    async fn vault_access_names_the_missing_permission() {
        let probe = |reachable, can_get, can_set| {
            Probed(AccessProbe {
                reachable,
                can_list: Some(reachable),
                can_get,
                can_set,
                detail: "credential: managed identity".into(),
            })
        };
        let run = |store: Probed| async move {
            let mut f = Findings::default();
            check_vault(&mut f, &store, &["db-password".into()]).await;
            f
        };
        let f = run(probe(false, None, None)).await;
        assert_eq!(statuses(&f, "vault", "probe"), vec![Status::Fail]);
        assert!(f.checks[0].message.contains("not reachable"));

        let f = run(probe(true, Some(false), None)).await;
        let get = f
            .checks
            .iter()
            .find(|c| c.message.contains("`get`"))
            .unwrap();
        assert_eq!(get.status, Status::Fail);
        let set = f
            .checks
            .iter()
            .find(|c| c.message.contains("`set`"))
            .unwrap();
        assert_eq!(set.status, Status::Warn, "{set:?}");
        assert!(set.message.contains("without writing"));

        let f = run(probe(true, Some(true), Some(false))).await;
        assert_eq!(f.count(Status::Fail), 0, "{:#?}", f.checks);
        assert!(f
            .checks
            .iter()
            .any(|c| c.status == Status::Warn && c.message.contains("lacks the secrets `set`")));

        let f = run(probe(true, Some(true), Some(true))).await;
        assert_eq!(f.count(Status::Pass), 4, "{:#?}", f.checks);

        // The memory twin reports `set` from its injected failures.
        let store = MemoryStore::new();
        store.fail_sets(true);
        let mut f = Findings::default();
        check_vault(&mut f, &store, &[]).await;
        assert!(f
            .checks
            .iter()
            .any(|c| c.status == Status::Warn && c.message.contains("`set`")));
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
