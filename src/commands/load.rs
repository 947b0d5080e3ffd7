//! `load`: fetch every declared secret from its source and write it to its file under the secrets directory.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use futures::StreamExt as _;

use crate::cli::LoadOpts;
use crate::context::Context;
use crate::dotenv::DotEnv;
use crate::error::{exit, Error, Result};
use crate::lock::RunLock;
use crate::manifest::{Manifest, SecretSpec};
use crate::output::{Report, ReportItem};
use crate::secret::{SecretValue, MAX_VALUE_BYTES};
use crate::secret_files::{write_file_atomic, Owner, SecretDir};
use crate::state::{SecretState, State};
use crate::store::{FetchedSecret, SecretStore, VersionInfo};

/// Default bound on concurrent vault requests.
const DEFAULT_CONCURRENCY: usize = 16;

pub async fn run(ctx: &Context, opts: &LoadOpts) -> Result<u8> {
    let store = ctx.store()?;
    let maps = parse_maps(&opts.maps)?;
    let manifest = if !maps.is_empty() && !ctx.has_manifest_source() {
        None
    } else {
        Some(ctx.manifest()?)
    };
    let mut report = Report::new("load", store.describe(), opts.dry_run);
    let _lock = if opts.dry_run {
        None
    } else {
        crate::runtime_dir::ensure(&ctx.runtime_dir)?;
        let lock = RunLock::acquire(&ctx.lock_file(), Duration::from_secs(30))?;
        crate::secret_files::remove_orphaned_temps_beside(&ctx.env_file)?;
        crate::secret_files::remove_orphaned_temps_beside(&ctx.state_file())?;
        Some(lock)
    };

    // A bad --env-output is found before any secret file is written.
    let env_output = match &opts.env_output {
        Some(output) => Some(open_env_output(ctx, output)?),
        None => None,
    };
    let outcome = match &manifest {
        Some(manifest) => load_files(ctx, manifest, store.as_ref(), opts, &mut report).await?,
        None => Loaded::default(),
    };

    if let Some((path, env, mode)) = env_output {
        let wanted: Vec<(String, String)> = if maps.is_empty() {
            manifest
                .iter()
                .flat_map(|m| m.secrets.iter())
                .filter(|s| s.file_path().is_some())
                .map(|s| (ctx.store_key(s, store.is_remote()), s.env_key.clone()))
                .collect()
        } else {
            maps
        };
        write_env_output(
            store.as_ref(),
            &path,
            env,
            mode,
            &wanted,
            &outcome.values,
            opts.dry_run,
            &mut report,
        )
        .await?;
    }

    ctx.reporter.print(&report);
    Ok(exit::OK)
}

/// Values fetched during this run, by store key, for reuse by `--env-output`.
#[derive(Default)]
struct Loaded {
    values: HashMap<String, SecretValue>,
    /// The same values by Compose secret name.
    by_secret: HashMap<String, SecretValue>,
}

struct Planned<'a> {
    spec: &'a SecretSpec,
    file_name: String,
    key: String,
    /// Listing metadata (Key Vault) used to skip unchanged secrets.
    listed: Option<VersionInfo>,
}

async fn load_files(
    ctx: &Context,
    manifest: &Manifest,
    store: &dyn SecretStore,
    opts: &LoadOpts,
    report: &mut Report,
) -> Result<Loaded> {
    let remote = store.is_remote();
    let file_names: BTreeMap<String, String> = manifest
        .file_names_in(&ctx.secrets_dir)?
        .into_iter()
        .collect();
    check_owners(manifest, &ctx.secrets_dir)?;

    let state = State::read(&ctx.state_file(), &store.describe());
    let listed_at = unix_now();
    let listing: Option<HashMap<String, VersionInfo>> = if remote {
        Some(
            store
                .list_properties()
                .await?
                .into_iter()
                .map(|i| (i.name.to_ascii_lowercase(), i))
                .collect(),
        )
    } else {
        None
    };

    // Opened read-only here; it is created only once every value is in hand.
    let existing_dir = open_existing_dir(&ctx.secrets_dir)?;
    let mut plans = Vec::new();
    let mut missing = Vec::new();
    for spec in manifest.secrets.iter() {
        let Some(file_name) = file_names.get(&spec.name) else {
            continue;
        };
        let key = ctx.store_key(spec, remote);
        let listed = listing
            .as_ref()
            .map(|l| l.get(&key.to_ascii_lowercase()).cloned());
        if let Some(None) = listed {
            if spec.pinned_version.is_none() {
                missing.push(spec.name.clone());
                continue;
            }
        }
        plans.push(Planned {
            spec,
            file_name: file_name.clone(),
            key,
            listed: listed.flatten(),
        });
    }
    if !missing.is_empty() {
        return Err(Error::MissingSecrets {
            names: missing,
            origin: store.describe(),
        });
    }

    // A secret whose listed version matches what we last wrote, with the file intact, needs no GET.
    let mut to_fetch = Vec::new();
    let mut unchanged = Vec::new();
    for plan in plans {
        let cached = (!opts.no_cache)
            .then(|| state.secrets.get(&plan.spec.name))
            .flatten()
            .filter(|s| {
                s.matches_listing(plan.listed.as_ref(), plan.spec.pinned_version.as_deref())
            })
            .filter(|s| {
                file_matches(
                    existing_dir.as_ref(),
                    &plan.file_name,
                    plan.spec,
                    &s.fingerprint,
                )
            });
        if cached.is_some() {
            unchanged.push(plan);
        } else {
            to_fetch.push(plan);
        }
    }

    let concurrency = ctx
        .lookup("COMPOSE_SECRETS_KV_CONCURRENCY")
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(DEFAULT_CONCURRENCY);
    let progress = ctx.reporter.progress(to_fetch.len(), "fetching");
    let fetched: Vec<(usize, Result<FetchedSecret>)> =
        futures::stream::iter(to_fetch.iter().enumerate())
            .map(|(i, plan)| {
                let progress = progress.clone();
                async move {
                    let result = match &plan.spec.pinned_version {
                        Some(v) if remote => store.get_version(&plan.key, v).await,
                        _ => store.get_latest(&plan.key).await,
                    };
                    if let Some(p) = &progress {
                        p.inc(1);
                    }
                    (i, result)
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
    if let Some(p) = progress {
        p.finish_and_clear();
    }

    let mut values: Vec<Option<FetchedSecret>> = (0..to_fetch.len()).map(|_| None).collect();
    let mut not_found = Vec::new();
    let mut first_error = None;
    for (i, result) in fetched {
        match result {
            Ok(f) if f.value.is_empty() => not_found.push(to_fetch[i].spec.name.clone()),
            Ok(f) if f.value.len() > MAX_VALUE_BYTES => {
                first_error.get_or_insert(Error::manifest(
                    &to_fetch[i].spec.name,
                    format!(
                        "its value is {} bytes, over Key Vault's limit of {MAX_VALUE_BYTES}; it could not be stored or rotated",
                        f.value.len()
                    ),
                ));
            }
            Ok(f) => values[i] = Some(f),
            Err(Error::SecretNotFound { .. } | Error::MissingSecrets { .. }) => {
                not_found.push(to_fetch[i].spec.name.clone());
            }
            Err(e) => {
                ctx.reporter
                    .note(&format!("failed  {}: {e}", to_fetch[i].spec.name));
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if !not_found.is_empty() {
        not_found.sort();
        return Err(Error::MissingSecrets {
            names: not_found,
            origin: store.describe(),
        });
    }

    drop(existing_dir);
    let dir = open_dir(&ctx.secrets_dir, opts.dry_run)?;
    let mut new_state = State::new(&store.describe());
    let mut loaded = Loaded::default();
    for plan in &unchanged {
        report.push(
            ReportItem::new(&plan.spec.name, "unchanged").with_detail(plan.file_name.clone()),
        );
        if let Some(s) = state.secrets.get(&plan.spec.name) {
            new_state.secrets.insert(
                plan.spec.name.clone(),
                SecretState {
                    checked_at: listed_at,
                    ..s.clone()
                },
            );
        }
    }
    for (plan, fetched) in to_fetch.iter().zip(values) {
        let Some(fetched) = fetched else { continue };
        let owner = Owner {
            uid: plan.spec.owner_uid,
            gid: plan.spec.owner_gid,
        };
        let bytes = fetched.value.expose().as_bytes();
        let same = dir
            .as_ref()
            .map(|d| file_is(d, &plan.file_name, bytes, plan.spec.mode, owner))
            .transpose()?
            .unwrap_or(false);
        let action = match (same, opts.dry_run) {
            (true, _) => "unchanged",
            (false, true) => "would-write",
            (false, false) => {
                if let Some(d) = &dir {
                    d.write_atomic(&plan.file_name, bytes, plan.spec.mode, owner)?;
                }
                "written"
            }
        };
        let mut item = ReportItem::new(&plan.spec.name, action).with_detail(plan.file_name.clone());
        if let Some(v) = &fetched.info.version {
            if remote {
                item = item.with_detail(format!("{} @ {}", plan.file_name, short(v)));
            }
        }
        report.push(item);
        new_state.secrets.insert(
            plan.spec.name.clone(),
            SecretState {
                version: fetched.info.version.clone(),
                updated: plan
                    .listed
                    .as_ref()
                    .and_then(|l| l.updated)
                    .or(fetched.info.updated),
                fingerprint: fetched.value.fingerprint(),
                checked_at: listed_at,
            },
        );
        loaded
            .by_secret
            .insert(plan.spec.name.clone(), fetched.value.clone());
        loaded.values.insert(plan.key.clone(), fetched.value);
    }

    if let Some(d) = &dir {
        let declared: Vec<&String> = file_names.values().collect();
        for entry in d.entries()? {
            if declared.contains(&&entry) {
                continue;
            }
            let action = match (opts.prune, opts.dry_run) {
                (true, true) => "would-prune",
                (true, false) => {
                    d.remove(&entry)?;
                    "pruned"
                }
                (false, _) => "stray",
            };
            report.push(
                ReportItem::new(entry, action).with_detail("no declared secret owns this file"),
            );
        }
    }
    if !opts.dry_run {
        new_state.write(&ctx.state_file())?;
        crate::audit::record_load(ctx, manifest, store, &state, &new_state).await?;
        if let (Some(d), Some(swarm)) = (
            &dir,
            crate::swarm::detect(ctx.target, &manifest.project_name).await?,
        ) {
            sync_swarm(
                &swarm,
                &manifest.project_name,
                d,
                &file_names,
                &new_state,
                &loaded,
                report,
            )
            .await?;
        }
    }
    report
        .extra
        .insert("fetched".into(), serde_json::json!(to_fetch.len()));
    Ok(loaded)
}

/// Give every declared secret a swarm secret holding its current version; never a second copy.
async fn sync_swarm(
    swarm: &crate::docker::DockerEngine,
    stack: &str,
    dir: &SecretDir,
    file_names: &BTreeMap<String, String>,
    state: &State,
    loaded: &Loaded,
    report: &mut Report,
) -> Result<()> {
    use crate::swarm::SwarmEngine as _;
    let existing = swarm.stack_secrets(stack).await?;
    for (secret, file_name) in file_names {
        let Some(entry) = state.secrets.get(secret) else {
            continue;
        };
        let version =
            crate::swarm::version_label_from(entry.version.as_deref(), &entry.fingerprint);
        // Values fetched this run are in memory; unchanged ones are exactly what the file holds.
        let value = match loaded.by_secret.get(secret) {
            Some(v) => v.clone(),
            None => match dir.read(file_name)? {
                Some(st) => SecretValue::from_bytes(st.contents.to_vec()).map_err(|_| {
                    Error::manifest(
                        secret,
                        "the secret file is not UTF-8; reload it with --no-cache",
                    )
                })?,
                None => continue,
            },
        };
        let (created, action) =
            crate::swarm::ensure_secret(swarm, stack, secret, &version, &value, &existing).await?;
        let verb = match action {
            crate::swarm::SwarmLoadAction::Created(_) => "swarm-created",
            crate::swarm::SwarmLoadAction::Unchanged(_) => "swarm-unchanged",
        };
        report.push(ReportItem::new(secret, verb).with_detail(created.name));
    }
    Ok(())
}

fn open_existing_dir(path: &Path) -> Result<Option<SecretDir>> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    SecretDir::open(path, false).map(Some)
}

fn open_dir(path: &Path, dry_run: bool) -> Result<Option<SecretDir>> {
    if dry_run && std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    let dir = SecretDir::open(path, !dry_run)?;
    if !dry_run {
        dir.remove_stale_temps()?;
    }
    Ok(Some(dir))
}

/// Refuse before writing anything if a declared owner cannot be given.
fn check_owners(manifest: &Manifest, secrets_dir: &Path) -> Result<()> {
    let euid = nix::unistd::Uid::effective();
    if euid.is_root() {
        return Ok(());
    }
    let egid = nix::unistd::Gid::effective().as_raw();
    for spec in &manifest.secrets {
        let uid_ok = spec.owner_uid.is_none_or(|u| u == euid.as_raw());
        let gid_ok = spec.owner_gid.is_none_or(|g| g == egid || user_in_group(g));
        if !(uid_ok && gid_ok) {
            return Err(Error::UnsafePath {
                path: secrets_dir.join(&spec.name),
                message: format!(
                    "secret `{}` declares owner {}:{}, but compose-secrets runs as uid {euid} and cannot chown. \
                     Run it as root (e.g. `sudo make load-secrets`), run it as that user, or remove `owner` \
                     (see README, \"File owners\")",
                    spec.name,
                    spec.owner_uid.map_or_else(|| "-".into(), |u| u.to_string()),
                    spec.owner_gid.map_or_else(|| "-".into(), |g| g.to_string()),
                ),
            });
        }
    }
    Ok(())
}

fn user_in_group(gid: u32) -> bool {
    nix::unistd::getgroups()
        .map(|groups| groups.iter().any(|g| g.as_raw() == gid))
        .unwrap_or(false)
}

fn file_is(dir: &SecretDir, name: &str, bytes: &[u8], mode: u32, owner: Owner) -> Result<bool> {
    Ok(dir.read(name)?.is_some_and(|st| {
        *st.contents == bytes
            && st.mode == mode
            && owner.uid.is_none_or(|u| u == st.uid)
            && owner.gid.is_none_or(|g| g == st.gid)
    }))
}

fn file_matches(dir: Option<&SecretDir>, name: &str, spec: &SecretSpec, fingerprint: &str) -> bool {
    let Some(dir) = dir else { return false };
    matches!(dir.read(name), Ok(Some(st))
        if crate::secret::fingerprint_bytes(&st.contents) == fingerprint
            && st.mode == spec.mode
            && spec.owner_uid.is_none_or(|u| u == st.uid)
            && spec.owner_gid.is_none_or(|g| g == st.gid))
}

fn parse_maps(maps: &[String]) -> Result<Vec<(String, String)>> {
    maps.iter()
        .map(|m| {
            let (vault, key) = m
                .split_once('=')
                .ok_or_else(|| Error::Usage(format!("--map {m}: expected VAULT_NAME=ENV_KEY")))?;
            if vault.is_empty() || !crate::secret::is_valid_env_key(key) {
                return Err(Error::Usage(format!(
                    "--map {m}: expected VAULT_NAME=ENV_KEY with a valid env key"
                )));
            }
            Ok((vault.to_string(), key.to_string()))
        })
        .collect()
}

/// Read and check the env file `--env-output` names: parsed, not a symlink. Returns its
/// absolute path, contents and mode (0600 for a new file).
fn open_env_output(ctx: &Context, output: &Path) -> Result<(std::path::PathBuf, DotEnv, u32)> {
    let path = if output.is_absolute() {
        output.to_path_buf()
    } else {
        ctx.cwd.join(output)
    };
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::UnsafePath {
            path,
            message: "is a symlink; compose-secrets never writes through one".into(),
        });
    }
    let mode = std::fs::metadata(&path).map_or(0o600, |m| {
        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777
    });
    let env = match DotEnv::read(&path)? {
        Some(env) => env,
        None => DotEnv::parse(&path, "")?,
    };
    Ok((path, env, mode))
}

#[allow(clippy::too_many_arguments)]
async fn write_env_output(
    store: &dyn SecretStore,
    path: &Path,
    mut env: DotEnv,
    mode: u32,
    wanted: &[(String, String)],
    already: &HashMap<String, SecretValue>,
    dry_run: bool,
    report: &mut Report,
) -> Result<()> {
    let mut missing = Vec::new();
    let mut changed = false;
    for (store_key, env_key) in wanted {
        let value = match already.get(store_key) {
            Some(v) => v.clone(),
            None => match store.get_latest(store_key).await {
                Ok(f) if !f.value.is_empty() => f.value,
                Ok(_) | Err(Error::SecretNotFound { .. } | Error::MissingSecrets { .. }) => {
                    missing.push(store_key.clone());
                    continue;
                }
                Err(e) => return Err(e),
            },
        };
        let same = env.get(env_key).is_some_and(|v| v == &value);
        if !same {
            env.set(env_key, &value);
            changed = true;
        }
        let action = match (same, dry_run) {
            (true, _) => "unchanged",
            (false, true) => "would-set",
            (false, false) => "set",
        };
        report.push(
            ReportItem::new(store_key, action)
                .with_detail(format!("{env_key} in {}", path.display())),
        );
    }
    if !missing.is_empty() {
        return Err(Error::MissingSecrets {
            names: missing,
            origin: store.describe(),
        });
    }
    if changed && !dry_run {
        write_file_atomic(path, env.render().as_bytes(), mode)?;
    }
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn short(version: &str) -> &str {
    version.get(..8).unwrap_or(version)
}
