//! The checks behind `verify`: files, drift, stale containers, leaks, health, vault access,
//! the audit chain and Swarm versions. Each names what it concerns; none prints a value.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::docker::ContainerInfo;
use crate::manifest::{Manifest, SecretSource, SecretSpec};
use crate::secret::{fingerprint_bytes, SecretValue};
use crate::secret_files::SecretDir;
use crate::state::State;
use crate::store::{SecretStore, VersionInfo};
use crate::swarm::SwarmEngine;

/// Secret values shorter than this are not searched for in env, labels and commands:
/// a two-letter value would "leak" everywhere.
const MIN_LEAK_LEN: usize = 6;

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
}

impl Findings {
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
}

/// What is on disk for one declared file secret (value kept only for leak matching).
pub struct LocalSecret<'m> {
    pub spec: &'m SecretSpec,
    pub file_name: String,
    pub value: Option<SecretValue>,
    pub fingerprint: Option<String>,
    pub mtime: Option<i64>,
}

/// Files: directory and each declared secret's file (exists, non-empty, mode, owner), strays.
pub fn check_files<'m>(
    f: &mut Findings,
    manifest: &'m Manifest,
    secrets_dir: &Path,
) -> Vec<LocalSecret<'m>> {
    let dir_name = secrets_dir.display().to_string();
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
                "the secrets directory is a symlink",
            );
            None
        }
        Ok((mode, uid, _, false)) => {
            if mode != 0o700 {
                f.add(
                    Status::Fail,
                    "files",
                    &dir_name,
                    format!("directory mode is {mode:04o}, expected 0700"),
                );
            } else if uid != euid {
                f.add(
                    Status::Fail,
                    "files",
                    &dir_name,
                    format!("directory owned by uid {uid}, expected {euid}"),
                );
            } else {
                f.add(
                    Status::Pass,
                    "files",
                    &dir_name,
                    "directory 0700, owned by the running user",
                );
            }
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
            mtime: None,
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
                if spec.owner_uid.is_some_and(|u| u != st.uid)
                    || spec.owner_gid.is_some_and(|g| g != st.gid)
                {
                    problems.push(format!(
                        "owner {}:{}, expected {}:{}",
                        st.uid,
                        st.gid,
                        spec.owner_uid.map_or_else(|| "-".into(), |u| u.to_string()),
                        spec.owner_gid.map_or_else(|| "-".into(), |g| g.to_string())
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
                local.mtime = Some(st.mtime);
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

/// Drift: each file against the source's current version, by fingerprint and version id.
pub async fn check_drift(
    f: &mut Findings,
    locals: &[LocalSecret<'_>],
    store: &dyn SecretStore,
    state: &State,
    remote: bool,
) {
    let listing: Option<BTreeMap<String, VersionInfo>> = if remote {
        match store.list_properties().await {
            Ok(list) => Some(
                list.into_iter()
                    .map(|i| (i.name.to_ascii_lowercase(), i))
                    .collect(),
            ),
            Err(e) => {
                f.add(
                    Status::Fail,
                    "drift",
                    store.describe(),
                    format!("cannot list the vault: {e}"),
                );
                return;
            }
        }
    } else {
        None
    };
    for local in locals {
        let name = &local.spec.name;
        let Some(file_fp) = &local.fingerprint else {
            continue;
        };
        if let Some(listing) = &listing {
            let saved = state.secrets.get(name);
            match (
                listing.get(&local.spec.vault_name.to_ascii_lowercase()),
                saved,
            ) {
                (None, _) => f.add(Status::Fail, "drift", name, "not in the vault"),
                (_, None) => f.add(
                    Status::Warn,
                    "drift",
                    name,
                    "no record of the loaded version; run `compose-secrets load`",
                ),
                (Some(_), Some(s)) if &s.fingerprint != file_fp => {
                    f.add(
                        Status::Fail,
                        "drift",
                        name,
                        "the file was changed since it was loaded (digest differs)",
                    );
                }
                (Some(l), Some(s))
                    if local.spec.pinned_version.is_none()
                        && l.updated.is_some()
                        && l.updated > s.updated =>
                {
                    f.add(
                        Status::Fail,
                        "drift",
                        name,
                        format!(
                            "stale: the vault has a newer version than the loaded {}; run `compose-secrets load`",
                            s.version.as_deref().map_or("one", |v| v.get(..8).unwrap_or(v))
                        ),
                    );
                }
                (Some(_), Some(s)) => f.add(
                    Status::Pass,
                    "drift",
                    name,
                    format!(
                        "matches version {}",
                        s.version
                            .as_deref()
                            .map_or("-", |v| v.get(..8).unwrap_or(v))
                    ),
                ),
            }
        } else {
            match store.get_latest(&local.spec.env_key).await {
                Ok(current) if &current.value.fingerprint() == file_fp => {
                    f.add(
                        Status::Pass,
                        "drift",
                        name,
                        format!("matches {}", local.spec.env_key),
                    );
                }
                Ok(_) => f.add(
                    Status::Fail,
                    "drift",
                    name,
                    format!(
                        "the file differs from {} in {}; run `compose-secrets load`",
                        local.spec.env_key,
                        store.describe()
                    ),
                ),
                Err(e) => f.add(Status::Fail, "drift", name, e.to_string()),
            }
        }
    }
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
            &manifest.project_name,
            "no containers of this Compose project; nothing to check for staleness",
        );
    }
    for c in containers {
        let subject = format!("{} ({})", c.name, c.service);
        if !c.running {
            f.add(
                Status::Warn,
                "containers",
                &subject,
                format!("not running ({})", c.status),
            );
            continue;
        }
        let started = c.started_at.as_deref().and_then(parse_rfc3339);
        let mut stale = Vec::new();
        for local in locals
            .iter()
            .filter(|l| l.spec.services().contains(&c.service))
        {
            if let (Some(mtime), Some(started)) = (local.mtime, started) {
                if mtime > started {
                    stale.push(local.spec.name.clone());
                }
            }
        }
        if stale.is_empty() {
            f.add(
                Status::Pass,
                "containers",
                &subject,
                "started after its secret files were last written",
            );
        } else {
            f.add(
                Status::Fail,
                "containers",
                &subject,
                format!(
                    "started before {} was last written: it still holds the old value; restart service {}",
                    stale.join(", "),
                    c.service
                ),
            );
        }
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
                format!("secret value exposed: {}", leaked.join("; ")),
            );
        }
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

/// Compose `environment:` must not carry a secret value.
pub fn check_compose_environment(
    f: &mut Findings,
    manifest: &Manifest,
    locals: &[LocalSecret<'_>],
) {
    for service in manifest.services.values() {
        let hits: Vec<String> = locals
            .iter()
            .filter(|l| {
                l.value.as_ref().is_some_and(|v| {
                    v.len() >= MIN_LEAK_LEN
                        && service
                            .environment
                            .iter()
                            .any(|(_, e)| e.contains(v.expose()))
                })
            })
            .map(|l| l.spec.name.clone())
            .collect();
        if hits.is_empty() {
            f.add(
                Status::Pass,
                "leaks",
                format!("service {}", service.name),
                "no secret value in Compose `environment:`",
            );
        } else {
            f.add(
                Status::Fail,
                "leaks",
                format!("service {}", service.name),
                format!(
                    "Compose `environment:` holds the value of {}; use the secret file instead",
                    hits.join(", ")
                ),
            );
        }
    }
}

/// `.env` and `.runtime/` are git-ignored and were never committed; `.env` is 0600.
pub fn check_git_and_env(f: &mut Findings, cwd: &Path, env_file: &Path, runtime_dir: &Path) {
    if let Ok((mode, _, _, symlink)) = crate::secret_files::describe_mode(env_file) {
        if symlink {
            f.add(
                Status::Fail,
                "leaks",
                env_file.display().to_string(),
                "is a symlink",
            );
        } else if mode & 0o077 != 0 {
            f.add(
                Status::Fail,
                "leaks",
                env_file.display().to_string(),
                format!("mode {mode:04o}, expected 0600"),
            );
        } else {
            f.add(
                Status::Pass,
                "leaks",
                env_file.display().to_string(),
                format!("mode {mode:04o}"),
            );
        }
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(cwd)
            .output()
    };
    match git(&["rev-parse", "--is-inside-work-tree"]) {
        Ok(out) if out.status.success() => {}
        _ => {
            f.add(
                Status::Warn,
                "git",
                cwd.display().to_string(),
                "not a git repository; ignore rules and history not checked",
            );
            return;
        }
    }
    for path in [env_file, runtime_dir] {
        let rel = path.strip_prefix(cwd).unwrap_or(path).display().to_string();
        let ignored =
            git(&["check-ignore", "-q", "--no-index", &rel]).is_ok_and(|o| o.status.success());
        if ignored {
            f.add(Status::Pass, "git", &rel, "git-ignored");
        } else {
            f.add(
                Status::Fail,
                "git",
                &rel,
                "not git-ignored: add it to .gitignore",
            );
        }
        let history = git(&["log", "--all", "--format=%h", "--", &rel])
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        match history {
            Ok(h) if !h.is_empty() => f.add(
                Status::Fail,
                "git",
                &rel,
                format!("committed in history ({}); rotate every secret it held and purge it from history", h.lines().next().unwrap_or_default()),
            ),
            _ => f.add(Status::Pass, "git", &rel, "never committed"),
        }
    }
}

/// HTTP health checks of the services that declare one.
pub async fn check_http_health(f: &mut Findings, manifest: &Manifest, running: &[String]) {
    for service in manifest.services.values() {
        let Some(url) = &service.health_url else {
            continue;
        };
        if !running.contains(&service.name) {
            f.add(
                Status::Skip,
                "health",
                format!("service {}", service.name),
                "no running container to check",
            );
            continue;
        }
        if url.contains('{') {
            f.add(
                Status::Skip,
                "health",
                format!("service {}", service.name),
                "per-container health URL; checked by rotate",
            );
            continue;
        }
        match crate::health::wait_http_healthy(url, Duration::from_secs(3)).await {
            Ok(h) => f.add(
                Status::Pass,
                "health",
                format!("service {}", service.name),
                format!("{url}: HTTP {}", h.status),
            ),
            Err(e) => f.add(
                Status::Fail,
                "health",
                format!("service {}", service.name),
                e.to_string(),
            ),
        }
    }
}

/// The vault answers and the identity may `get` (load) and `set` (rotate), probed without writing.
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
        Some(false) => f.add(
            Status::Fail,
            "vault",
            &subject,
            "the identity lacks the secrets `list` permission (needed by load)",
        ),
        _ => f.add(Status::Pass, "vault", &subject, "`list` permitted"),
    }
    match probe.can_get {
        Some(true) => f.add(Status::Pass, "vault", &subject, "`get` permitted (load)"),
        Some(false) => f.add(
            Status::Fail,
            "vault",
            &subject,
            "the identity lacks the secrets `get` permission (needed by load)",
        ),
        None => f.add(Status::Warn, "vault", &subject, "`get` could not be probed"),
    }
    match probe.can_set {
        Some(true) => f.add(Status::Pass, "vault", &subject, "`set` permitted (rotate)"),
        Some(false) => f.add(
            Status::Warn,
            "vault",
            &subject,
            "the identity lacks the secrets `set` permission: `rotate` will fail (fine for a load-only VM)",
        ),
        None => f.add(Status::Warn, "vault", &subject, format!("`set` not probed: {}", probe.detail)),
    }
}

/// The audit log's HMAC chain.
pub fn check_audit(f: &mut Findings, path: &Path, keys: &[crate::audit::AuditKey]) {
    if !path.exists() {
        f.add(
            Status::Skip,
            "audit",
            path.display().to_string(),
            "no audit log yet",
        );
        return;
    }
    match crate::audit::verify_chain_with_keys(path, keys) {
        Ok(report) => match report.first_bad_line {
            None => f.add(
                Status::Pass,
                "audit",
                path.display().to_string(),
                format!("HMAC chain intact ({} lines)", report.lines),
            ),
            Some(line) => f.add(
                Status::Fail,
                "audit",
                path.display().to_string(),
                format!(
                    "chain broken at line {line}: {}",
                    report.reason.unwrap_or_default()
                ),
            ),
        },
        Err(e) => f.add(
            Status::Fail,
            "audit",
            path.display().to_string(),
            e.to_string(),
        ),
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

fn parse_rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

/// Secrets whose value a leak check needs: file sources only.
pub fn is_file_secret(spec: &SecretSpec) -> bool {
    matches!(spec.source, SecretSource::File(_))
}
