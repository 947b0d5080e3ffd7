//! `verify`'s gather phase, the one place its checks' I/O happens: `docker compose config`,
//! the store (listing, current values, access, rotation dates), Docker (containers, Swarm),
//! HTTP health and git. The checks are functions over what it returns and the project's own
//! files; unit tests gather from the in-memory twins, or build the facts by hand.

use std::ffi::OsString;

pub use super::facts::{ComposeReference, Containers, Current, GitPath, StoreFacts, SwarmFacts};
use super::*;
use crate::compose::reference::ComposeV2;
use crate::files::git::WorkTree;
use crate::files::runtime_dir::RuntimeDir;

pub async fn compose_reference(cwd: &Path, flags: &[OsString]) -> ComposeReference {
    let compose = match ComposeV2::find() {
        Ok(compose) => compose,
        Err(why) => return ComposeReference::Missing(why),
    };
    let described = compose.describe().to_string();
    match compose.config(cwd, flags).await {
        Ok(config) => ComposeReference::Config {
            compose: described,
            config,
        },
        Err(why) => ComposeReference::Refused {
            compose: described,
            why,
        },
    }
}

/// Everything the store-backed checks (drift, held, policy, vault) look at, in as few requests
/// as they allow: one listing, one probe, and single reads only where the listing is not enough.
pub async fn store_facts(
    store: &dyn SecretStore,
    project: &Project,
    locals: &[LocalSecret<'_>],
    state: &State,
    (runtime, fingerprints): (Option<&RuntimeDir>, &FingerprintKey),
) -> StoreFacts {
    let mut facts = StoreFacts {
        describe: store.describe(),
        keeps_versions: store.keeps_versions(),
        naming: store.naming(),
        listing: None,
        current: BTreeMap::new(),
        last_set: None,
        probe: None,
    };
    if facts.keeps_versions || !state.held.is_empty() {
        facts.listing = Some(
            crate::store::listing_by_name(store)
                .await
                .map_err(|e| e.to_string()),
        );
    }
    for local in locals.iter().filter(|l| l.fingerprint.is_some()) {
        let key = facts.key_for(local.spec);
        let needed = !facts.keeps_versions
            || match (facts.listed(&key), state.secrets.get(&local.spec.name)) {
                // An edited file fails drift before the vault's version matters.
                (Some(listed), Some(saved))
                    if local.fingerprint.as_ref() == Some(&saved.fingerprint) =>
                {
                    super::drift::listing_currency(local.spec, listed, saved).is_none()
                }
                _ => false,
            };
        if needed {
            let current = store.get_latest(&key).await.and_then(|c| {
                let fingerprint = c.value.fingerprint(fingerprints);
                let version = c.info.version.clone();
                // A certificate part is cut from the bundle the store holds.
                let matches_file = match &local.value {
                    Some(on_disk) if local.spec.certificate.is_some() => {
                        Some(crate::certificate::file_matches(
                            local.spec,
                            &key,
                            c,
                            on_disk.expose_bytes(),
                        )?)
                    }
                    _ => None,
                };
                Ok(Current {
                    fingerprint,
                    version,
                    matches_file,
                })
            });
            facts
                .current
                .insert(key, current.map_err(|e| e.to_string()));
        }
    }
    let specs = super::policy::with_policy(project);
    if !specs.is_empty() {
        let set = crate::rotation::policy::last_set(store, &specs, runtime).await;
        facts.last_set = Some(set.map_err(|e| e.to_string()));
    }
    if facts.keeps_versions {
        let names: Vec<String> = locals.iter().map(|l| facts.key_for(l.spec)).collect();
        facts.probe = Some(store.probe_access(&names).await);
    }
    facts
}

pub async fn containers(project: &str) -> Containers {
    use crate::deploy::ContainerEngine as _;
    let engine = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .map_or_else(
            || "docker engine".to_string(),
            |h| format!("DOCKER_HOST={h}"),
        );
    let connected = match crate::deploy::DockerEngine::connect() {
        Ok(client) => client.ping().await.map(|()| client),
        Err(e) => Err(e),
    };
    let client = match connected {
        Ok(client) => client,
        Err(e) => {
            return Containers::Unreachable {
                engine,
                why: e.to_string(),
            }
        }
    };
    match client.project_containers(project).await {
        Ok(listed) => Containers::Listed(listed),
        Err(e) => Containers::Failed(e.to_string()),
    }
}

pub async fn swarm(engine: &dyn SwarmEngine, stack: &str) -> SwarmFacts {
    match (
        engine.stack_secrets(stack).await,
        engine.stack_services(stack).await,
    ) {
        (Ok(s), Ok(v)) => Ok((s, v)),
        (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
    }
}

/// One GET of each running service's fixed `health-url`: the status, or why it failed.
pub async fn http_health(
    project: &Project,
    running: &[String],
) -> BTreeMap<String, std::result::Result<u16, String>> {
    let mut out = BTreeMap::new();
    for service in project.services.values() {
        let Some(url) = &service.health_url else {
            continue;
        };
        if running.contains(&service.name) && !url.contains('{') {
            let answer = crate::deploy::health::wait_http_healthy(url, HTTP_HEALTH_TIMEOUT).await;
            out.insert(
                service.name.clone(),
                answer.map(|h| h.status).map_err(|e| e.to_string()),
            );
        }
    }
    out
}

/// `path` as git is asked about it: relative to the project directory where it is inside.
pub fn relative(cwd: &Path, path: &Path) -> String {
    path.strip_prefix(cwd).unwrap_or(path).display().to_string()
}

/// What git says, by [`relative`] path: whether `.env` and the runtime directory are ignored
/// and were ever committed, and whether each secret file is tracked or ignored. `None`: not
/// in a work tree (or no git).
pub fn git(
    cwd: &Path,
    env_file: &Path,
    runtime_dir: &Path,
    secret_files: &[(&str, &Path)],
) -> Option<BTreeMap<String, GitPath>> {
    let tree = WorkTree::containing(cwd)?;
    let mut out: BTreeMap<String, GitPath> = BTreeMap::new();
    for (path, is_dir) in [(env_file, false), (runtime_dir, true)] {
        let rel = relative(cwd, path);
        // A directory is asked about with a trailing slash: `.runtime/` in .gitignore only
        // matches a directory, and before the first `load` there is none on disk to look at.
        let probe = if is_dir {
            format!("{rel}/")
        } else {
            rel.clone()
        };
        let facts = out.entry(rel.clone()).or_default();
        facts.ignored = tree.is_ignored(&probe);
        facts.commits = tree.commits_touching(&rel);
    }
    for (_, path) in secret_files {
        let rel = relative(cwd, path);
        let tracked = tree.is_tracked(path);
        let ignored = tree.is_ignored(&rel);
        let facts = out.entry(rel).or_default();
        facts.tracked = tracked;
        facts.ignored = ignored;
    }
    Some(out)
}
