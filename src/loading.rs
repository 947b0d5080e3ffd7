//! `load` as a domain operation: fetch every declared file secret from the store (only what
//! changed), write the files atomically, report strays in compose-secrets' own directories,
//! record the state and the audit line, and bring a swarm stack along.
//!
//! The data's path: `fetch` lists and fetches (overlapped, bounded), this module checks what
//! came back and writes it, `swarm` mirrors it into versioned swarm secrets, and
//! `env_output` writes the `get_secrets.sh`-style env file.

mod env_output;
mod fetch;
mod swarm;

pub use swarm::sync_swarm;

use std::collections::HashMap;

pub use env_output::{open_env_output, parse_maps, write_env_output, EnvLine};

use crate::compose::{Project, SecretSpec};
use crate::error::{Error, Result};
use crate::files::layout::{check_owners, Layout, OpenDirs, Placement};
use crate::files::secret_dir::{FileState, Owner, SecretDir};
use crate::files::state::{SecretState, State};
use crate::output::{Report, ReportItem};
use crate::secret::{FingerprintKey, SecretValue, MAX_VALUE_BYTES};
use crate::store::{FetchedSecret, SecretStore, VersionInfo};

/// How a load runs.
pub struct LoadRequest {
    /// Paths in the report are shown relative to this directory (the working directory).
    pub shown_from: std::path::PathBuf,
    pub dry_run: bool,
    pub prune: bool,
    /// Replace a secret file compose-secrets did not write even when it holds another value.
    pub overwrite: bool,
    pub no_cache: bool,
    pub concurrency: usize,
    /// The key files and values are fingerprinted with (the state's).
    pub fingerprints: FingerprintKey,
}

/// Values fetched during this run, for reuse by `--env-output` and the swarm.
#[derive(Default)]
pub struct Loaded {
    /// By store key.
    pub values: HashMap<String, SecretValue>,
    /// By Compose secret name.
    pub by_secret: HashMap<String, SecretValue>,
}

/// One declared file secret and where it goes.
pub(crate) struct Candidate<'a> {
    pub spec: &'a SecretSpec,
    pub placement: &'a Placement,
    pub key: String,
}

/// Every file secret of the layout that a service uses, with its store key.
pub(crate) fn candidates<'a>(
    project: &'a Project,
    layout: &'a Layout,
    store: &dyn SecretStore,
) -> Vec<Candidate<'a>> {
    layout
        .placements
        .iter()
        .filter_map(|placement| {
            let spec = project.secret(&placement.secret)?;
            Some(Candidate {
                spec,
                placement,
                key: store.key_for(spec),
            })
        })
        .collect()
}

pub(crate) use fetch::fetch as warm_fetch;

/// Fetch, write and record every file secret of `project`.
#[allow(clippy::too_many_arguments)]
pub async fn load_files(
    project: &Project,
    layout: &Layout,
    store: &dyn SecretStore,
    state: State,
    request: &LoadRequest,
    reporter: &crate::output::Reporter,
    report: &mut Report,
) -> Result<(Loaded, State, State)> {
    check_owners(project.secrets_in_use())?;
    report_fileless(project, report);
    let listed_at = crate::clock::unix_now();
    let candidates = candidates(project, layout, store);
    let parts = (layout, store, &state);
    let (values, listed) = fetch_values(parts, &candidates, request, reporter).await?;

    let dirs = OpenDirs::open(layout, !request.dry_run)?;
    let mut new_state = State::new(&store.describe());
    new_state.created_dirs = state.created_dirs.clone();
    new_state.written = state.written.clone();
    new_state.audit_head = state.audit_head.clone();
    new_state.held = state.held.clone();
    new_state.record_created(&dirs.created);
    report_dirs(layout, &dirs, request, report);
    if !request.dry_run {
        tidy_dirs(layout, &dirs, &new_state, report)?;
    }
    let fetched_names: Vec<usize> = values.iter().map(|(i, _)| *i).collect();
    for (i, c) in candidates.iter().enumerate() {
        if fetched_names.contains(&i) {
            continue;
        }
        report.push(
            ReportItem::new(&c.spec.name, "unchanged")
                .with_detail(shown(c.placement, &request.shown_from)),
        );
        // Kept as it was, `checked_at` too: the entry matched the listing as it stands, so a
        // later stamp would change no comparison, only make a no-change load rewrite state.json.
        if let Some(s) = state.secrets.get(&c.spec.name) {
            new_state.secrets.insert(c.spec.name.clone(), s.clone());
        }
    }
    let written = write_files(&dirs, &candidates, &values, request.dry_run)?;
    warn_tracked(layout, &candidates, &values, &written, report);
    let mut loaded = Loaded::default();
    for ((i, fetched), action) in values.into_iter().zip(written) {
        let c = &candidates[i];
        let mut detail = shown(c.placement, &request.shown_from);
        if let Some(v) = fetched
            .info
            .version
            .as_ref()
            .filter(|_| store.keeps_versions())
        {
            detail = format!("{detail} @ {}", crate::output::short_version(v));
        }
        report.push(ReportItem::new(&c.spec.name, action).with_detail(detail));
        let updated = listed.get(&i).and_then(|l| l.updated);
        let entry = SecretState {
            version: fetched.info.version.clone(),
            updated: updated.or(fetched.info.updated),
            fingerprint: fetched.value.fingerprint(&request.fingerprints),
            checked_at: listed_at,
        };
        let entry = unless_only_checked(state.secrets.get(&c.spec.name), entry);
        new_state.secrets.insert(c.spec.name.clone(), entry);
        loaded
            .by_secret
            .insert(c.spec.name.clone(), fetched.value.clone());
        loaded.values.insert(c.key.clone(), fetched.value);
    }
    record_files_and_release_holds(&candidates, &mut new_state, report);
    strays(layout, &mut new_state, request, report)?;
    report
        .extra
        .insert("fetched".into(), serde_json::json!(fetched_names.len()));
    Ok((loaded, state, new_state))
}

/// The entry as it was when only `checked_at` would move and no comparison would change:
/// `checked_at` counts only against an `updated` stamp (see `matches_listing`), so it is
/// moved when there is none older than it. Else a store without listed versions (demo mode
/// fetches every value) would rewrite state.json on every load that changed nothing.
fn unless_only_checked(old: Option<&SecretState>, new: SecretState) -> SecretState {
    match old {
        Some(old)
            if old.updated.is_none_or(|u| u < old.checked_at)
                && *old
                    == (SecretState {
                        checked_at: old.checked_at,
                        ..new.clone()
                    }) =>
        {
            old.clone()
        }
        _ => new,
    }
}

/// Report the secrets a load writes no file for: unused ones, and `environment:` ones.
fn report_fileless(project: &Project, report: &mut Report) {
    for spec in project
        .secrets
        .iter()
        .filter(|s| !s.in_use && s.file_path().is_some())
    {
        report.push(ReportItem::new(&spec.name, "skipped").with_detail(spec.unused_reason()));
    }
    for spec in project.secrets_in_use() {
        if let crate::compose::SecretSource::Environment(var) = &spec.source {
            report.push(ReportItem::new(&spec.name, "no-file").with_detail(format!(
                "an `environment:` secret: Compose copies {var} in when it creates the containers"
            )));
        }
    }
}

/// Cold (no state for any of them, or --no-cache): every secret is fetched whatever a
/// listing says, so its pages would only add round trips; each GET brings its version.
fn listing_for(candidates: &[Candidate<'_>], state: &State, no_cache: bool) -> fetch::Listing {
    let cold = candidates
        .iter()
        .all(|c| no_cache || !state.secrets.contains_key(&c.spec.name));
    if cold {
        fetch::Listing::Direct
    } else {
        fetch::Listing::Listed
    }
}

/// Fetch what changed (a secret whose listed version matches what was last written, with the
/// file intact, needs no GET), in declaration order, with the listing's entries. Every value
/// must be there, within the size limit, and replace no file compose-secrets did not write
/// (unless `--overwrite`); nothing is written otherwise.
async fn fetch_values(
    (layout, store, state): (&Layout, &dyn SecretStore, &State),
    candidates: &[Candidate<'_>],
    request: &LoadRequest,
    reporter: &crate::output::Reporter,
) -> Result<(Vec<(usize, FetchedSecret)>, HashMap<usize, VersionInfo>)> {
    // Opened read-only here; missing directories are created only once every value is in hand.
    let existing = OpenDirs::open(layout, false)?;
    let is_cached = |i: usize, listed: Option<&VersionInfo>| -> bool {
        let c = &candidates[i];
        !request.no_cache
            && state.secrets.get(&c.spec.name).is_some_and(|s| {
                s.matches_listing(listed, c.spec.pinned_version.as_deref())
                    && existing.read(c.placement).ok().flatten().is_some_and(|st| {
                        file_is_current(&st, c.spec, &s.fingerprint, &request.fingerprints)
                    })
            })
    };
    let concurrency = request.concurrency;
    let how = listing_for(candidates, state, request.no_cache);
    let outcome =
        fetch::fetch_with(store, candidates, &is_cached, concurrency, reporter, how).await?;
    let mut problems = Vec::new();
    let mut not_found = Vec::new();
    let mut values: Vec<(usize, FetchedSecret)> = Vec::new();
    for (i, result) in outcome.results {
        let name = &candidates[i].spec.name;
        match result {
            Ok(f) if f.value.is_empty() => not_found.push(name.clone()),
            Ok(f) if f.value.len() > MAX_VALUE_BYTES => problems.push(Error::manifest(
                name,
                format!(
                    "its value is {} bytes, over Key Vault's limit of {MAX_VALUE_BYTES}; it could not be stored or rotated",
                    f.value.len()
                ),
            )),
            Ok(f) => match crate::certificate::file_value(candidates[i].spec, &candidates[i].key, f) {
                Ok(f) => values.push((i, same_pfx(&existing, &candidates[i], f))),
                Err(e) => problems.push(e),
            },
            Err(Error::SecretNotFound { .. } | Error::MissingSecrets { .. }) => {
                not_found.push(name.clone());
            }
            Err(e) => {
                reporter.note(&format!("failed  {name}: {e}"));
                problems.push(e);
            }
        }
    }
    if let Some(first) = problems.into_iter().next() {
        return Err(first);
    }
    if !not_found.is_empty() {
        not_found.sort();
        return Err(Error::MissingSecrets {
            names: not_found,
            origin: store.describe(),
        });
    }
    values.sort_by_key(|(i, _)| *i);
    crate::certificate::check_one_version(
        values
            .iter()
            .map(|(i, f)| (candidates[*i].spec, candidates[*i].key.as_str(), f)),
    )?;
    if !request.overwrite {
        Error::all(
            values
                .iter()
                .filter_map(|(i, f)| {
                    let key = &request.fingerprints;
                    unmanaged_file(&existing, &candidates[*i], f, state, layout, key)
                })
                .collect(),
        )?;
    }
    Ok((values, outcome.listed))
}

/// A `pfx` part keeps its file's bytes when they hold the same certificate (see
/// `certificate::keep_same_pfx`), so the state's fingerprint is the file's.
fn same_pfx(existing: &OpenDirs, c: &Candidate<'_>, f: FetchedSecret) -> FetchedSecret {
    if c.spec.certificate.is_none() {
        return f;
    }
    let on_disk = existing.read(c.placement).ok().flatten();
    crate::certificate::keep_same_pfx(
        c.spec,
        &c.key,
        f,
        on_disk.as_ref().map(|st| &st.contents[..]),
    )
}

/// The directories a load creates (or would create).
fn report_dirs(layout: &Layout, dirs: &OpenDirs, request: &LoadRequest, report: &mut Report) {
    let rel = |p: &std::path::Path| {
        p.strip_prefix(&request.shown_from)
            .unwrap_or(p)
            .display()
            .to_string()
    };
    for dir in layout.dirs() {
        if request.dry_run && dirs.get(&dir).is_none() {
            report.push(ReportItem::new(rel(&dir), "would-create").with_detail("directory, 0700"));
        } else if dirs.created.contains(&dir) {
            report.push(ReportItem::new(rel(&dir), "created").with_detail("directory, 0700"));
        }
    }
}

/// What each declared file holds now is what the store holds: the fingerprint a later prune
/// compares with (this also refreshes one a rollback or an older version left). And every
/// hold is released: the held version is applied now (a load writes it whatever sync
/// decided), the store moved past it, or it went back to the version that was running (kept,
/// that hold would make `verify` warn for ever while `sync` says `unchanged`).
fn record_files_and_release_holds(
    candidates: &[Candidate<'_>],
    new_state: &mut State,
    report: &mut Report,
) {
    for c in candidates {
        let fingerprint = new_state
            .secrets
            .get(&c.spec.name)
            .map(|s| s.fingerprint.clone())
            .unwrap_or_default();
        new_state.record_written(&c.placement.path, &fingerprint);
    }
    for (name, held) in std::mem::take(&mut new_state.held) {
        report.push(ReportItem::new(&name, "released").with_detail(format!(
            "version {} was held by `sync`; the file now holds the store's current version",
            held.entry
                .version
                .as_deref()
                .map_or("-", crate::output::short_version)
        )));
    }
}

/// A file about to be replaced that compose-secrets did not write, holding another value:
/// replacing it would lose, say, the password a database was initialised with. Files in the
/// runtime directory are compose-secrets' own whatever their history. Elsewhere a file is
/// compose-secrets' to replace only while it holds what compose-secrets recorded writing
/// there (or the value state.json records for the secret): a path listed in state.json
/// proves nothing about the file, and one edited by hand since holds someone else's value.
pub(crate) fn unmanaged_file(
    existing: &OpenDirs,
    candidate: &Candidate<'_>,
    fetched: &FetchedSecret,
    state: &State,
    layout: &Layout,
    key: &FingerprintKey,
) -> Option<Error> {
    let placement = candidate.placement;
    if placement.path.starts_with(&layout.runtime_dir) {
        return None;
    }
    let on_disk = existing.read(placement).ok().flatten()?;
    let value = fetched.value.expose_bytes();
    let contents: &[u8] = &on_disk.contents;
    let same = contents.is_empty()
        || contents == value
        || contents
            .strip_suffix(b"\n")
            .is_some_and(|c| c == value || c.strip_suffix(b"\r") == Some(value));
    let recorded = state.still_holds_written(&placement.path, contents, key)
        || state
            .secrets
            .get(&candidate.spec.name)
            .is_some_and(|s| key.fingerprint(contents) == s.fingerprint);
    let listed = if state.written.contains_key(&placement.path) {
        " (state.json lists it, but it no longer holds what compose-secrets recorded writing there: \
         edited since?)"
    } else {
        ""
    };
    (!same && !recorded).then(|| {
        Error::manifest(
            &candidate.spec.name,
            format!(
                "its file {} already holds a different value, which compose-secrets did not write{listed}; \
                 `compose-secrets ensure` adopts it when its .env key is empty, or pass `load --overwrite` to \
                 replace it (the old value is lost)",
                placement.path.display()
            ),
        )
    })
}

/// A secret file git tracks is written (adopting `db/password.txt` is the point), with a
/// warning: the next commit would publish the new value.
fn warn_tracked(
    layout: &Layout,
    candidates: &[Candidate<'_>],
    values: &[(usize, FetchedSecret)],
    actions: &[&str],
    report: &mut Report,
) {
    let mut tree = None;
    for ((i, _), action) in values.iter().zip(actions) {
        let c = &candidates[*i];
        if !matches!(*action, "written" | "would-write")
            || c.placement.path.starts_with(&layout.runtime_dir)
        {
            continue;
        }
        let git = tree
            .get_or_insert_with(|| crate::files::git::WorkTree::containing(&layout.project_dir));
        if git
            .as_ref()
            .is_some_and(|g| g.is_tracked(&c.placement.path))
        {
            let rel = c
                .placement
                .path
                .strip_prefix(&layout.project_dir)
                .unwrap_or(&c.placement.path)
                .display()
                .to_string();
            report.push(ReportItem::new(&c.spec.name, "warning").with_detail(format!(
                "{rel} is tracked by git, and now holds the secret: `git rm --cached {rel}` and add it to .gitignore"
            )));
        }
    }
}

/// A secret's file as the report shows it, relative to `from`: the directory alone when the
/// file is named after the secret (`in .runtime/secrets`), else the file (`db/password.txt`).
pub fn shown(placement: &Placement, from: &std::path::Path) -> String {
    let rel = |p: &std::path::Path| {
        p.strip_prefix(from)
            .ok()
            .filter(|r| !r.as_os_str().is_empty())
            .unwrap_or(p)
            .display()
            .to_string()
    };
    if placement.file_name == placement.secret {
        format!("in {}", rel(&placement.dir))
    } else {
        rel(&placement.path)
    }
}

/// Whether the file on disk still is what the state recorded, with the declared mode and owner.
pub(crate) fn file_is_current(
    st: &FileState,
    spec: &SecretSpec,
    fingerprint: &str,
    key: &FingerprintKey,
) -> bool {
    key.fingerprint(&st.contents) == fingerprint
        && st.mode == spec.mode
        && spec.owner_uid.is_none_or(|u| u == st.uid)
        && spec.owner_gid.is_none_or(|g| g == st.gid)
}

/// Compare and write every fetched value; returns each one's action, in order.
///
/// Every changed file is staged first (written and fsynced under a temporary name, on a few
/// threads so the filesystem can merge the syncs into fewer journal commits), then all are
/// renamed and each directory is synced once. A file that cannot be staged leaves every
/// file as it was; one fsync per file instead of two (file and directory) halves a cold
/// load's local time.
fn write_files(
    dirs: &OpenDirs,
    candidates: &[Candidate<'_>],
    values: &[(usize, FetchedSecret)],
    dry_run: bool,
) -> Result<Vec<&'static str>> {
    let one = |(i, fetched): &(usize, FetchedSecret)| -> Result<Written<'_>> {
        let c = &candidates[*i];
        let owner = Owner {
            uid: c.spec.owner_uid,
            gid: c.spec.owner_gid,
        };
        let bytes = fetched.value.expose_bytes();
        let dir = dirs.get(&c.placement.dir);
        let same = dir
            .map(|d| file_is(d, &c.placement.file_name, bytes, c.spec.mode, owner))
            .transpose()?
            .unwrap_or(false);
        Ok(match (same, dry_run, dir) {
            (true, _, _) => Written::Unchanged,
            (false, true, _) | (false, false, None) => Written::Would,
            (false, false, Some(d)) => {
                let staged = d.stage(&c.placement.file_name, bytes, c.spec.mode, owner)?;
                Written::Staged(d, staged)
            }
        })
    };
    let staged = on_writer_threads(values, one)?;
    let mut synced: Vec<&SecretDir> = Vec::new();
    let mut actions = Vec::with_capacity(staged.len());
    for written in staged {
        actions.push(match written {
            Written::Unchanged => "unchanged",
            Written::Would => "would-write",
            Written::Staged(dir, file) => {
                file.rename()?;
                if !synced.iter().any(|d| std::ptr::eq(*d, dir)) {
                    synced.push(dir);
                }
                "written"
            }
        });
    }
    for dir in synced {
        dir.sync()?;
    }
    Ok(actions)
}

/// What `write_files` did with one value before the renames.
enum Written<'d> {
    Unchanged,
    Would,
    Staged(&'d SecretDir, crate::files::secret_dir::Staged<'d>),
}

/// `one` over every value, in order: on 8 threads when there are enough values to share.
fn on_writer_threads<'d, F>(
    values: &'d [(usize, FetchedSecret)],
    one: F,
) -> Result<Vec<Written<'d>>>
where
    F: Fn(&'d (usize, FetchedSecret)) -> Result<Written<'d>> + Sync,
{
    const WRITERS: usize = 8;
    if values.len() < 2 * WRITERS {
        return values.iter().map(one).collect();
    }
    let chunk = values.len().div_ceil(WRITERS);
    let one = &one;
    std::thread::scope(|scope| {
        let handles: Vec<_> = values
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(one).collect::<Result<Vec<_>>>()))
            .collect();
        let mut out = Vec::with_capacity(values.len());
        let mut first_error = None;
        for handle in handles {
            let part = handle.join().map_err(|_| Error::Io {
                path: std::path::PathBuf::new(),
                action: "write secret files",
                source: std::io::Error::other("a writer thread panicked"),
            });
            // Every thread is joined before an error returns, so each staged file is dropped
            // (and removed) either way.
            match part.and_then(|p| p) {
                Ok(part) => out.extend(part),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(out),
        }
    })
}

fn file_is(dir: &SecretDir, name: &str, bytes: &[u8], mode: u32, owner: Owner) -> Result<bool> {
    Ok(dir.read(name)?.is_some_and(|st| {
        *st.contents == bytes
            && st.mode == mode
            && owner.uid.is_none_or(|u| u == st.uid)
            && owner.gid.is_none_or(|g| g == st.gid)
    }))
}

/// Before writing: clear temp files killed runs left, and put a directory compose-secrets
/// created back to 0700 if its mode was loosened (a directory it did not create keeps its
/// mode, whatever it is; see `Layout::may_tighten` for why state.json alone is not enough).
fn tidy_dirs(layout: &Layout, dirs: &OpenDirs, state: &State, report: &mut Report) -> Result<()> {
    for dir in layout.dirs() {
        let Some(d) = dirs.get(&dir) else { continue };
        let cleanup = d.remove_orphaned_temps()?;
        for skipped in cleanup.skipped {
            report.push(
                ReportItem::new(skipped.display().to_string(), "left-alone")
                    .with_detail("named like a temp file, but not a file; remove it by hand"),
            );
        }
        if state.created_dirs.contains(&dir) && layout.may_tighten(&dir) && d.tighten()? {
            report.push(
                ReportItem::new(dir.display().to_string(), "tightened").with_detail(
                    "compose-secrets created this directory 0700; its mode was loosened",
                ),
            );
        }
    }
    Ok(())
}

/// Record a load: the audit line (after handing over to a new chain key when the load
/// changed the signing key), then `after` as the state with the chain's new head.
pub async fn commit(
    runtime: &crate::files::runtime_dir::RuntimeDir,
    project: &Project,
    layout: &Layout,
    log: &mut crate::audit::AuditLog<'_>,
    before: &State,
    after: &mut State,
) -> Result<()> {
    if let Some(key) =
        crate::audit::project_key(runtime, Some((project, layout)), None, true).await?
    {
        log.change_key(key);
    }
    after.audit_head = Some(log.append(
        &crate::audit::load_event(before, after),
        after.audit_head.as_ref(),
    )?);
    after.write(runtime)
}

/// The lines `--env-output` fills: the `--map`s given, else every file secret in use. The
/// parts of one certificate share a vault object and a `.env` key, so each gets a line named
/// after its Compose secret (`TLS_CERT`) unless it sets its own `env-key`; a `pfx` (binary)
/// cannot go in an env line and is refused, before any file is written.
pub fn env_output_keys<'a>(
    project: Option<&'a Project>,
    store: &dyn SecretStore,
    maps: Vec<(String, String)>,
) -> Result<Vec<EnvLine<'a>>> {
    if !maps.is_empty() {
        return Ok(maps
            .into_iter()
            .map(|(store_key, env_key)| EnvLine {
                store_key,
                env_key,
                part: None,
            })
            .collect());
    }
    let mut lines: Vec<EnvLine<'a>> = Vec::new();
    for s in project
        .iter()
        .flat_map(|p| p.secrets_in_use())
        .filter(|s| s.file_path().is_some())
    {
        let env_key = match s.certificate {
            None => s.env_key.clone(),
            Some(c) if c.part == crate::certificate::Part::Pfx => {
                return Err(Error::manifest(
                    &s.name,
                    format!(
                        "is the `pfx` part of the certificate `{}`: PKCS#12 bytes cannot go in                          an env line; leave it out with `--map`s, or load it as a file only",
                        s.vault_name
                    ),
                ))
            }
            Some(_) if s.env_key == crate::compose::names::default_env_key(&s.vault_name) => {
                crate::compose::names::default_env_key(&s.name)
            }
            Some(_) => s.env_key.clone(),
        };
        if let Some(other) = lines.iter().find(|l| l.env_key == env_key) {
            let first = other.part.map_or(other.store_key.as_str(), |p| &p.name);
            return Err(Error::manifest(
                &s.name,
                format!("its env line `{env_key}` is also `{first}`'s; give one an `env-key`"),
            ));
        }
        lines.push(EnvLine {
            store_key: store.key_for(s),
            env_key,
            part: s.certificate.is_some().then_some(s),
        });
    }
    Ok(lines)
}

/// Stray files (see `files::strays`): reported, and removed with `--prune` when they still
/// hold what compose-secrets wrote. Afterwards the state remembers the declared files and
/// the strays left in place, nothing else.
fn strays(
    layout: &Layout,
    state: &mut State,
    request: &LoadRequest,
    report: &mut Report,
) -> Result<()> {
    let found = crate::files::strays::find(layout, state, &request.fingerprints)?;
    let mut kept: Vec<std::path::PathBuf> = Vec::new();
    let shown = |path: &std::path::Path| {
        crate::output::shown_path(&path.display().to_string(), &request.shown_from)
    };
    for stray in &found {
        for ((name, fingerprint), path) in stray.names.iter().zip(stray.paths()) {
            let (action, detail) = match (request.prune, request.dry_run) {
                (true, true) => ("would-prune", "no declared secret owns it now"),
                (true, false)
                    if stray
                        .dir
                        .remove_if_holds(name, fingerprint, &request.fingerprints)? =>
                {
                    ("pruned", "no declared secret owns it now")
                }
                (true, false) => (
                    "stray",
                    "it changed while being pruned; left in place, remove it by hand",
                ),
                (false, _) => ("stray", "no declared secret owns it now"),
            };
            if action != "pruned" {
                kept.push(path.clone());
            }
            report.push(ReportItem::new(shown(&path), action).with_detail(detail));
        }
        for path in stray.changed_paths() {
            report.push(ReportItem::new(shown(&path), "stray").with_detail(
                "no declared secret owns it now, but it does not hold what compose-secrets recorded \
                 writing (changed since, or written before fingerprints were kept); left in place, \
                 --prune too: remove it by hand",
            ));
            kept.push(path);
        }
    }
    state
        .written
        .retain(|p, _| layout.placements.iter().any(|pl| &pl.path == p) || kept.contains(p));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(updated: Option<i64>, checked_at: i64) -> SecretState {
        SecretState {
            version: Some("v1".into()),
            updated,
            fingerprint: "hmac:00".into(),
            checked_at,
        }
    }

    #[test]
    fn checked_at_moves_only_when_it_could_change_a_comparison() {
        let kept = |old: SecretState, new: SecretState| unless_only_checked(Some(&old), new);
        // No stamp, or one older than the last check: the old entry, state.json untouched.
        assert_eq!(kept(entry(None, 10), entry(None, 20)).checked_at, 10);
        assert_eq!(kept(entry(Some(5), 10), entry(Some(5), 20)).checked_at, 10);
        // A stamp in the second of the last check: moved, so the next listing can match.
        assert_eq!(
            kept(entry(Some(10), 10), entry(Some(10), 20)).checked_at,
            20
        );
        // Anything else that differs: the new entry.
        let mut other = entry(None, 20);
        other.fingerprint = "hmac:11".into();
        assert_eq!(kept(entry(None, 10), other.clone()), other);
        assert_eq!(unless_only_checked(None, entry(None, 20)).checked_at, 20);
    }
}
