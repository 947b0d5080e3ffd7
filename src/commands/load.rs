//! `load`: fetch every declared secret from its source and write it to its file under the secrets directory.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use futures::StreamExt as _;

use crate::cli::LoadOpts;
use crate::context::Context;
use crate::dotenv::DotEnv;
use crate::error::{exit, Error, Result};
use crate::files::lock::RunLock;
use crate::files::secret_dir::{write_file_atomic, Owner, SecretDir};
use crate::files::state::{SecretState, State};
use crate::manifest::{Manifest, SecretSpec};
use crate::output::{Report, ReportItem};
use crate::secret::{SecretValue, MAX_VALUE_BYTES};
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
        crate::files::runtime_dir::ensure(&ctx.runtime_dir)?;
        let lock = RunLock::acquire(&ctx.lock_file(), Duration::from_secs(30))?;
        crate::files::secret_dir::remove_orphaned_temps_beside(&ctx.env_file)?;
        crate::files::secret_dir::remove_orphaned_temps_beside(&ctx.state_file())?;
        Some(lock)
    };

    // A bad --env-output is found before any secret file is written.
    let env_output = match &opts.env_output {
        Some(output) => Some(open_env_output(ctx, output)?),
        None => None,
    };
    // Whether the stack runs on a swarm is asked of Docker while the vault is being read.
    let swarm_probe = manifest.as_ref().filter(|_| !opts.dry_run).map(|m| {
        let (target, stack) = (ctx.target, m.project_name.clone());
        tokio::spawn(async move { crate::deploy::detect_swarm(target, &stack).await })
    });
    let outcome = match &manifest {
        Some(manifest) => {
            load_files(
                ctx,
                manifest,
                store.as_ref(),
                opts,
                &mut report,
                swarm_probe,
            )
            .await?
        }
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

type SwarmProbe = tokio::task::JoinHandle<Result<Option<crate::deploy::DockerEngine>>>;

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
    swarm_probe: Option<SwarmProbe>,
) -> Result<Loaded> {
    let remote = store.is_remote();
    let file_names: BTreeMap<String, String> = manifest
        .file_names_in(&ctx.secrets_dir)?
        .into_iter()
        .collect();
    check_owners(manifest, &ctx.secrets_dir)?;

    let state = State::read(&ctx.state_file(), &store.describe());
    let listed_at = crate::clock::unix_now();
    // Opened read-only here; it is created only once every value is in hand.
    let existing_dir = open_existing_dir(&ctx.secrets_dir)?;

    // Every declared file secret, in manifest order: (spec, file name, store key).
    let candidates: Vec<(&SecretSpec, String, String)> = manifest
        .secrets
        .iter()
        .filter_map(|spec| {
            file_names
                .get(&spec.name)
                .map(|f| (spec, f.clone(), ctx.store_key(spec, remote)))
        })
        .collect();
    let by_key: HashMap<String, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, (_, _, key))| (key.to_ascii_lowercase(), i))
        .collect();
    // A secret whose listed version matches what we last wrote, with the file intact, needs no GET.
    let is_cached = |i: usize, listed: Option<&VersionInfo>| -> bool {
        let (spec, file_name, _) = &candidates[i];
        !opts.no_cache
            && state.secrets.get(&spec.name).is_some_and(|s| {
                s.matches_listing(listed, spec.pinned_version.as_deref())
                    && file_matches(existing_dir.as_ref(), file_name, spec, &s.fingerprint)
            })
    };
    let concurrency = ctx
        .lookup("COMPOSE_SECRETS_KV_CONCURRENCY")
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(DEFAULT_CONCURRENCY);
    let progress = ctx.reporter.progress(candidates.len(), "fetching");

    // Listing and fetching overlap: a secret is fetched as soon as the page naming it
    // arrives, instead of after the last page.
    let (wanted, wanted_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let listing = async {
        let wanted = wanted;
        let mut listed: HashMap<usize, VersionInfo> = HashMap::new();
        if !remote {
            for i in (0..candidates.len()).filter(|&i| !is_cached(i, None)) {
                let _ = wanted.send(i);
            }
            return Ok(listed);
        }
        // A pinned version does not depend on the listing.
        for (i, (spec, ..)) in candidates.iter().enumerate() {
            if spec.pinned_version.is_some() && !is_cached(i, None) {
                let _ = wanted.send(i);
            }
        }
        let mut stream = store.list_properties_stream();
        while let Some(item) = stream.next().await {
            let info = item?;
            if let Some(&i) = by_key.get(&info.name.to_ascii_lowercase()) {
                if candidates[i].0.pinned_version.is_none() && !is_cached(i, Some(&info)) {
                    let _ = wanted.send(i);
                }
                listed.insert(i, info);
            }
        }
        Ok::<_, Error>(listed)
    };
    let fetching = futures::stream::unfold(wanted_rx, |mut rx| async move {
        rx.recv().await.map(|i| (i, rx))
    })
    .map(|i| {
        let progress = progress.clone();
        let (spec, _, key) = &candidates[i];
        async move {
            let result = match &spec.pinned_version {
                Some(v) if remote => store.get_version(key, v).await,
                _ => store.get_latest(key).await,
            };
            if let Some(p) = &progress {
                p.inc(1);
            }
            (i, result)
        }
    })
    .buffer_unordered(concurrency)
    .collect::<Vec<_>>();
    let (listed, fetched_by_candidate) = tokio::join!(listing, fetching);
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    let mut listed = listed?;

    let missing: Vec<String> = candidates
        .iter()
        .enumerate()
        .filter(|(i, (spec, ..))| {
            remote && spec.pinned_version.is_none() && !listed.contains_key(i)
        })
        .map(|(_, (spec, ..))| spec.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(Error::MissingSecrets {
            names: missing,
            origin: store.describe(),
        });
    }
    let mut to_fetch = Vec::new();
    let mut unchanged = Vec::new();
    let mut position: HashMap<usize, usize> = HashMap::new();
    for (i, (spec, file_name, key)) in candidates.iter().enumerate() {
        let plan = Planned {
            spec,
            file_name: file_name.clone(),
            key: key.clone(),
            listed: listed.remove(&i),
        };
        if fetched_by_candidate.iter().any(|(c, _)| *c == i) {
            position.insert(i, to_fetch.len());
            to_fetch.push(plan);
        } else {
            unchanged.push(plan);
        }
    }
    let fetched: Vec<(usize, Result<FetchedSecret>)> = fetched_by_candidate
        .into_iter()
        .map(|(i, result)| (position[&i], result))
        .collect();

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
    let fetched_plans: Vec<(&Planned<'_>, FetchedSecret)> = to_fetch
        .iter()
        .zip(values)
        .filter_map(|(plan, fetched)| fetched.map(|f| (plan, f)))
        .collect();
    let actions = write_files(dir.as_ref(), &fetched_plans, opts.dry_run)?;
    for ((plan, fetched), action) in fetched_plans.into_iter().zip(actions) {
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
        let swarm = match swarm_probe {
            Some(probe) => probe.await.map_err(|e| Error::Docker {
                message: format!("swarm detection did not finish: {e}"),
            })??,
            None => None,
        };
        if let (Some(d), Some(swarm)) = (&dir, swarm) {
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
    swarm: &crate::deploy::DockerEngine,
    stack: &str,
    dir: &SecretDir,
    file_names: &BTreeMap<String, String>,
    state: &State,
    loaded: &Loaded,
    report: &mut Report,
) -> Result<()> {
    use crate::deploy::swarm::SwarmEngine as _;
    let existing = swarm.stack_secrets(stack).await?;
    for (secret, file_name) in file_names {
        let Some(entry) = state.secrets.get(secret) else {
            continue;
        };
        let version =
            crate::deploy::swarm::version_label_from(entry.version.as_deref(), &entry.fingerprint);
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
            crate::deploy::swarm::ensure_secret(swarm, stack, secret, &version, &value, &existing)
                .await?;
        let verb = match action {
            crate::deploy::swarm::SwarmLoadAction::Created(_) => "swarm-created",
            crate::deploy::swarm::SwarmLoadAction::Unchanged(_) => "swarm-unchanged",
        };
        report.push(ReportItem::new(secret, verb).with_detail(created.name));
    }
    Ok(())
}

/// Compare and write every fetched value; returns each one's action, in order.
///
/// Each atomic write waits on an fsync; run on a few threads the filesystem can merge
/// them into fewer journal commits, which is most of a cold load's local time.
fn write_files(
    dir: Option<&SecretDir>,
    items: &[(&Planned<'_>, FetchedSecret)],
    dry_run: bool,
) -> Result<Vec<&'static str>> {
    let one = |(plan, fetched): &(&Planned<'_>, FetchedSecret)| -> Result<&'static str> {
        let owner = Owner {
            uid: plan.spec.owner_uid,
            gid: plan.spec.owner_gid,
        };
        let bytes = fetched.value.expose().as_bytes();
        let same = dir
            .map(|d| file_is(d, &plan.file_name, bytes, plan.spec.mode, owner))
            .transpose()?
            .unwrap_or(false);
        Ok(match (same, dry_run, dir) {
            (true, _, _) => "unchanged",
            (false, true, _) | (false, false, None) => "would-write",
            (false, false, Some(d)) => {
                d.write_atomic(&plan.file_name, bytes, plan.spec.mode, owner)?;
                "written"
            }
        })
    };
    const WRITERS: usize = 8;
    if items.len() < 2 * WRITERS {
        return items.iter().map(one).collect();
    }
    let chunk = items.len().div_ceil(WRITERS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(one).collect::<Result<Vec<_>>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for handle in handles {
            let part = handle.join().map_err(|_| Error::Io {
                path: dir.map(|d| d.path().to_path_buf()).unwrap_or_default(),
                action: "write secret files",
                source: std::io::Error::other("a writer thread panicked"),
            })??;
            out.extend(part);
        }
        Ok(out)
    })
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

fn short(version: &str) -> &str {
    version.get(..8).unwrap_or(version)
}
