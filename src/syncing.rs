//! `sync`: follow the store. A version set elsewhere (the portal, an Azure Function, another
//! host's `rotate`) reaches this host's containers, health-gated, one secret at a time.
//!
//! One step: take the lock, list the store (the warm path of `load`: a listing, and a GET only
//! for what changed), then run the rotate transaction minus the push for each changed secret
//! (`rotation::follow`). A version that makes a service unhealthy is put back and held in the
//! state, so the next step leaves it alone until the store moves on or `--retry-held`.
//! `watch` repeats the step until stopped.

pub mod watch;

use std::time::Duration;

use serde::Serialize;

use crate::audit::Outcome;
use crate::compose::{Project, SecretSpec};
use crate::deploy::DockerEngine;
use crate::error::{Error, Result};
use crate::files::layout::{Layout, OpenDirs};
use crate::files::state::State;
use crate::loading::{self, Candidate};
use crate::output::{short_version, Report, ReportItem};
use crate::rotation::{self, Run, SecretPlan};
use crate::secret::{FingerprintKey, MAX_VALUE_BYTES};
use crate::store::{FetchedSecret, Naming, SecretStore, VersionInfo};
use crate::transaction::{close, run_settings, Site, TargetRequest, Transaction};

/// A rotation hook never runs in `sync` (it belongs to whoever set the version).
const HOOK_TIMEOUT: Duration = Duration::from_secs(1);

/// How a step runs.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub dry_run: bool,
    /// Try held versions again.
    pub retry_held: bool,
    pub health_url: Option<String>,
    pub health_timeout: Duration,
}

/// What stays open from one step to the next: the store's client (its token cached) and the
/// Docker engine. Both are opened on first use.
#[derive(Default)]
pub struct Session {
    /// The store, and the fingerprint key it was opened with (a step keyed otherwise, as the
    /// first one to make the per-install key, opens it again).
    store: Option<(FingerprintKey, Box<dyn SecretStore>)>,
    engine: Option<DockerEngine>,
}

/// How a step shows things: the reporter (progress bars), and the directory paths are
/// shown relative to.
#[derive(Clone, Copy)]
pub struct Display<'a> {
    pub reporter: &'a crate::output::Reporter,
    pub shown_from: &'a std::path::Path,
}

/// A secret whose store version is not what this host runs, with that version in hand.
pub struct Change {
    pub secret: String,
    pub fetched: FetchedSecret,
}

/// What a step did to one changed secret, for `--watch`'s one line per change and `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub secret: String,
    pub outcome: Outcome,
    pub old_version: Option<String>,
    pub new_version: Option<String>,
    pub restarted: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The end of a step that got as far as reading the store.
pub struct StepOutcome {
    pub report: Report,
    pub applied: Vec<Applied>,
    /// A held version (`SyncHeld`, exit 6), or the failure that stopped the step.
    pub failure: Option<Error>,
}

/// What a step is given instead of the command line: where it runs, and how to read the
/// project and open the store. The project is read afresh each step (its files may change
/// while `--watch` runs).
pub struct Parts<'a> {
    pub site: Site<'a>,
    /// The Compose project and where its secret files go.
    pub project: &'a dyn Fn() -> Result<(Project, Layout)>,
    /// How the store names secrets, known without opening it.
    pub naming: Naming,
    pub open_store: &'a dyn Fn(&FingerprintKey) -> Result<Box<dyn SecretStore>>,
}

/// One reconciliation: everything in the store that this host does not run yet is applied.
/// An error means nothing was changed.
pub async fn step(
    parts: &Parts<'_>,
    session: &mut Session,
    request: &SyncRequest,
) -> Result<StepOutcome> {
    let (project, layout) = (parts.project)()?;
    let mut owners = crate::owners::Cache::open(parts.site.runtime_dir);
    let project = crate::owners::resolved(project, &mut owners).await?;
    let specs: Vec<&SecretSpec> = project.secrets_in_use().collect();
    parts.naming.check_keys(&specs)?;
    let txn = Transaction::open(parts.site, request.dry_run).await?;
    // Saved under the lock, once the runtime directory is there; a dry run writes nothing.
    if !request.dry_run {
        owners.save();
    }
    let store = session_store(&mut session.store, parts, &txn).await?;
    let mut report = Report::new("sync", store.describe(), request.dry_run);
    txn.recover(&project, &layout, store, &mut report).await?;
    let mut state = txn.state(store)?;
    let display = Display {
        reporter: parts.site.reporter,
        shown_from: parts.site.shown_from,
    };
    let changes = find_changes(
        (&project, &layout),
        store,
        &txn.fingerprints,
        &mut state,
        request.retry_held,
        display,
        &mut report,
    )
    .await?;
    tracing::debug!(changed = changes.len(), "store listed");
    if changes.is_empty() {
        keep_confirmed(&txn, store, &state)?;
        return Ok(finished(report, Vec::new(), None));
    }
    let target_request = TargetRequest {
        restart: true,
        detect_swarm: !request.dry_run,
        dry_run: request.dry_run,
        next_step: "",
    };
    let (stack, slot) = (&project.name, &mut session.engine);
    let targets = txn
        .targets(stack, slot, &target_request, &mut report)
        .await?;
    let containers = targets.containers.as_deref();
    let plans = plan_changes(&project, &layout, store, &changes, containers, request)?;
    if request.dry_run {
        describe_changes(&plans, &changes, &state, &mut report);
        return Ok(finished(report, Vec::new(), None));
    }
    let settings = run_settings(
        &parts.site,
        &project,
        true,
        request.health_timeout,
        HOOK_TIMEOUT,
    );
    let mut run = txn
        .run(&project, &layout, store, &targets, settings, state)
        .await?;
    tracing::debug!("plans made; applying");
    let (applied, failure) = apply_changes(&mut run, &plans, &changes, display, &mut report).await;
    // Anchored once the step's lines are in; a step that applied nothing appended nothing.
    if !applied.is_empty() {
        close(&run, &project, &parts.site).await;
    }
    Ok(finished(report, applied, failure))
}

/// The session's store, reloaded; opened again when this step's fingerprint key is not the
/// one it was opened with (a `sync --watch` that outlived an install's key).
async fn session_store<'s>(
    slot: &'s mut Option<(FingerprintKey, Box<dyn SecretStore>)>,
    parts: &Parts<'_>,
    txn: &Transaction<'_>,
) -> Result<&'s dyn SecretStore> {
    match slot {
        Some((key, store)) if key.same_as(&txn.fingerprints) => store.reload().await?,
        _ => {
            let store = (parts.open_store)(&txn.fingerprints)?;
            *slot = Some((txn.fingerprints.clone(), store));
        }
    }
    let Some(store) = slot.as_ref().map(|(_, s)| s.as_ref()) else {
        unreachable!("the store was opened above")
    };
    Ok(store)
}

/// One plan per change, in the order of `changes`.
fn plan_changes(
    project: &Project,
    layout: &Layout,
    store: &dyn SecretStore,
    changes: &[Change],
    containers: Option<&[crate::deploy::ContainerInfo]>,
    request: &SyncRequest,
) -> Result<Vec<SecretPlan>> {
    let changed: Vec<&SecretSpec> = changes
        .iter()
        .filter_map(|c| project.secret(&c.secret))
        .collect();
    let health_url = request.health_url.as_deref();
    rotation::plan(project, layout, store, &changed, containers, health_url)
}

/// Nothing changed, but versions confirmed by a GET are trusted from the listing next time.
fn keep_confirmed(txn: &Transaction<'_>, store: &dyn SecretStore, state: &State) -> Result<()> {
    if let Some(w) = &txn.writing {
        if State::read(Some(&w.runtime), &store.describe())? != *state {
            state.write(&w.runtime)?;
        }
    }
    Ok(())
}

/// A dry run: each change, and the containers it would restart.
fn describe_changes(plans: &[SecretPlan], changes: &[Change], state: &State, report: &mut Report) {
    for (plan, change) in plans.iter().zip(changes) {
        let loaded = state.secrets.get(&change.secret);
        report.push(
            ReportItem::new(&change.secret, "would-sync").with_detail(format!(
                "version {} → {}, file {}",
                shown_version(loaded.and_then(|s| s.version.as_deref())),
                shown_version(change.fetched.info.version.as_deref()),
                plan.placement.path.display()
            )),
        );
        report.items.extend(rotation::describe_restarts(plan));
    }
}

/// Follow each change in turn; the parts of one certificate move together (written, then
/// each user restarted once, rolled back together). A held version does not stop the step;
/// any other failure does, the rest reported `not-attempted`. Returns what was applied and
/// the step's failure.
async fn apply_changes(
    run: &mut Run<'_>,
    plans: &[SecretPlan],
    changes: &[Change],
    display: Display<'_>,
    report: &mut Report,
) -> (Vec<Applied>, Option<Error>) {
    let mut applied = Vec::new();
    let mut held = Vec::new();
    let groups =
        crate::certificate::together(plans.iter().map(|p| (&p.spec, p.store_key.as_str())));
    for (g, group) in groups.iter().enumerate() {
        let records = match group.as_slice() {
            [i] => vec![rotation::follow(run, &plans[*i], &changes[*i].fetched).await],
            parts => {
                let parts: Vec<_> = parts
                    .iter()
                    .map(|&i| (&plans[i], &changes[i].fetched))
                    .collect();
                rotation::follow_together(run, &parts).await
            }
        };
        let mut stop = None;
        for mut record in records {
            report.items.append(&mut record.steps);
            let error = record.take_error();
            applied.push(Applied {
                secret: record.secret.clone(),
                outcome: record.outcome,
                old_version: record.old_version.clone(),
                new_version: record.new_version.clone(),
                restarted: record.restarted.clone(),
                error: error.as_ref().map(ToString::to_string),
            });
            if let Some(e) = record.audit_error.take() {
                display.reporter.note(&format!(
                    "compose-secrets: could not write the audit log: {e}"
                ));
                if error.is_none() {
                    return (applied, Some(e));
                }
            }
            match error {
                None => {}
                Some(e @ Error::SyncHeld { .. }) => held.push(e),
                Some(e) => stop = stop.or(Some(e)),
            }
        }
        if let Some(e) = stop {
            for rest in groups[g + 1..].iter().flatten() {
                report.push(
                    ReportItem::new(&changes[*rest].secret, "not-attempted")
                        .with_detail("an earlier secret in this sync failed"),
                );
            }
            return (applied, Some(e));
        }
    }
    (applied, Error::all(held).err())
}

fn finished(mut report: Report, applied: Vec<Applied>, failure: Option<Error>) -> StepOutcome {
    report
        .extra
        .insert("changes".into(), serde_json::json!(applied));
    StepOutcome {
        report,
        applied,
        failure,
    }
}

/// List the store and compare with what this host runs: a secret whose listing matches the
/// state (file intact) costs no GET; the rest are fetched, and those whose version is what is
/// loaded (or held) are confirmed in `state` without a change. Returns the changes, in
/// declaration order. Reports `unchanged` and `held` lines.
pub async fn find_changes(
    (project, layout): (&Project, &Layout),
    store: &dyn SecretStore,
    fingerprints: &FingerprintKey,
    state: &mut State,
    retry_held: bool,
    ctx: Display<'_>,
    report: &mut Report,
) -> Result<Vec<Change>> {
    let compare = Compare {
        store,
        layout,
        existing: OpenDirs::open(layout, false)?,
        fingerprints,
        shown_from: ctx.shown_from,
        listed_at: crate::clock::unix_now(),
        retry_held,
    };
    let candidates: Vec<Candidate<'_>> = loading::candidates(project, layout, store)
        .into_iter()
        .filter(|c| c.spec.in_use)
        .collect();
    let snapshot = state.clone();
    let is_cached = |i: usize, listed: Option<&VersionInfo>| -> bool {
        compare.is_cached(&snapshot, &candidates[i], listed)
    };
    let concurrency = store.concurrency();
    let fetched =
        loading::warm_fetch(store, &candidates, &is_cached, concurrency, ctx.reporter).await?;

    let (mut problems, mut missing, mut changes) = (Vec::new(), Vec::new(), Vec::new());
    let mut results = fetched.results;
    results.sort_by_key(|(i, _)| *i);
    let fetched_indices: Vec<usize> = results.iter().map(|(i, _)| *i).collect();
    for (i, result) in results {
        let c = &candidates[i];
        let name = &c.spec.name;
        let mut f = match usable(c, result) {
            Ok(Some(f)) => f,
            Ok(None) => {
                missing.push(name.clone());
                continue;
            }
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        // The listing's timestamp is what the next listing is compared with.
        if let Some(listed) = fetched.listed.get(&i) {
            f.info.updated = listed.updated.or(f.info.updated);
        }
        match compare.fetched(c, f, state, report) {
            Verdict::Settled => {}
            Verdict::Changed(change) => changes.push(change),
            Verdict::Refused(e) => problems.push(e),
        }
    }
    Error::all(problems)?;
    none_missing(missing, store)?;
    for (i, c) in candidates.iter().enumerate() {
        if !fetched_indices.contains(&i) {
            compare.not_fetched(c, fetched.listed.get(&i), state, report);
        }
    }
    Ok(changes)
}

/// Every secret has a value in the store, or the step stops naming those without.
/// A fetched value as this step can use it: `None` when the store has none (missing, or
/// empty), an error when it is over the size limit, a bad certificate bundle, or a failure.
fn usable(c: &Candidate<'_>, result: Result<FetchedSecret>) -> Result<Option<FetchedSecret>> {
    match result {
        Ok(f) if f.value.is_empty() => Ok(None),
        Ok(f) if f.value.len() > MAX_VALUE_BYTES => Err(Error::manifest(
            &c.spec.name,
            format!("its value is over Key Vault's limit of {MAX_VALUE_BYTES} bytes"),
        )),
        Ok(f) => crate::certificate::file_value(c.spec, &c.key, f).map(Some),
        Err(Error::SecretNotFound { .. } | Error::MissingSecrets { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn none_missing(mut missing: Vec<String>, store: &dyn SecretStore) -> Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    missing.sort();
    Err(Error::MissingSecrets {
        names: missing,
        origin: store.describe(),
    })
}

/// What a fetched version is to this host.
enum Verdict {
    /// Loaded already, or held: nothing to apply.
    Settled,
    Changed(Change),
    /// It would replace a file compose-secrets did not write.
    Refused(Error),
}

/// What `find_changes` compares the store's versions with: the state, and the files.
struct Compare<'a> {
    store: &'a dyn SecretStore,
    layout: &'a Layout,
    existing: OpenDirs,
    fingerprints: &'a FingerprintKey,
    shown_from: &'a std::path::Path,
    listed_at: i64,
    retry_held: bool,
}

impl Compare<'_> {
    fn shown(&self, c: &Candidate<'_>) -> String {
        loading::shown(c.placement, self.shown_from)
    }

    /// The candidate's file is there, intact, with the value of `fingerprint`.
    fn file_current(&self, c: &Candidate<'_>, fingerprint: &str) -> bool {
        self.existing
            .read(c.placement)
            .ok()
            .flatten()
            .is_some_and(|st| loading::file_is_current(&st, c.spec, fingerprint, self.fingerprints))
    }

    /// The listing alone settles it: what is loaded (file intact), or what is held.
    fn is_cached(&self, state: &State, c: &Candidate<'_>, listed: Option<&VersionInfo>) -> bool {
        let pinned = c.spec.pinned_version.as_deref();
        let loaded = state.secrets.get(&c.spec.name).is_some_and(|s| {
            s.matches_listing(listed, pinned) && self.file_current(c, &s.fingerprint)
        });
        let held = !self.retry_held
            && state
                .held
                .get(&c.spec.name)
                .is_some_and(|h| h.matches_listing(listed, pinned));
        loaded || held
    }

    /// A fetched version: the one loaded (confirmed in `state`), a held one, or a change.
    fn fetched(
        &self,
        c: &Candidate<'_>,
        f: FetchedSecret,
        state: &mut State,
        report: &mut Report,
    ) -> Verdict {
        let name = &c.spec.name;
        let on_disk = c
            .spec
            .certificate
            .and_then(|_| self.existing.read(c.placement).ok().flatten());
        let on_disk = on_disk.as_ref().map(|st| &st.contents[..]);
        let f = crate::certificate::keep_same_pfx(c.spec, &c.key, f, on_disk);
        let version = f
            .info
            .version
            .clone()
            .unwrap_or_else(|| f.value.fingerprint(self.fingerprints));
        if self.loaded_already(c, &f, &version, state, report) {
            release_hold(state, name, report);
            return Verdict::Settled;
        }
        if !self.retry_held {
            if let Some(held) = state.held.get_mut(name) {
                if held.is(Some(&version)) {
                    if self.store.keeps_versions() {
                        held.entry.checked_at = self.listed_at;
                    }
                    report.push(held_item(name, held));
                    return Verdict::Settled;
                }
            }
        }
        if !state.secrets.contains_key(name) {
            let key = self.fingerprints;
            if let Some(e) = loading::unmanaged_file(&self.existing, c, &f, state, self.layout, key)
            {
                return Verdict::Refused(e);
            }
        }
        Verdict::Changed(Change {
            secret: name.clone(),
            fetched: f,
        })
    }

    /// Whether this host runs `f` already: the same version (file intact), or a new version
    /// with the value already in use (a rollback elsewhere puts the previous value back as a
    /// new version), which is recorded and restarts nothing. Reports `unchanged`.
    fn loaded_already(
        &self,
        c: &Candidate<'_>,
        f: &FetchedSecret,
        version: &str,
        state: &mut State,
        report: &mut Report,
    ) -> bool {
        let name = &c.spec.name;
        let Some(loaded) = state.secrets.get_mut(name) else {
            return false;
        };
        let same = |v: Option<&str>| v.is_some_and(|v| v.eq_ignore_ascii_case(version));
        if !same(loaded.version.as_deref())
            && loaded.fingerprint == f.value.fingerprint(self.fingerprints)
            && self.file_current(c, &loaded.fingerprint)
        {
            loaded.version = f.info.version.clone();
            loaded.updated = f.info.updated;
            loaded.checked_at = self.listed_at;
            report.push(ReportItem::new(name, "unchanged").with_detail(format!(
                "{}: version {}, with the value already in use",
                self.shown(c),
                shown_version(f.info.version.as_deref())
            )));
            return true;
        }
        if same(loaded.version.as_deref()) && self.file_current(c, &loaded.fingerprint) {
            // Confirmed by a GET: trusted from the listing next time (a store without
            // versions is read in full every time, so there is nothing to remember).
            if self.store.keeps_versions() {
                loaded.checked_at = self.listed_at;
            }
            report.push(ReportItem::new(name, "unchanged").with_detail(self.shown(c)));
            return true;
        }
        false
    }

    /// Not fetched: the listing matched either what is loaded or what is held.
    fn not_fetched(
        &self,
        c: &Candidate<'_>,
        listed: Option<&VersionInfo>,
        state: &mut State,
        report: &mut Report,
    ) {
        let name = &c.spec.name;
        let pinned = c.spec.pinned_version.as_deref();
        let loaded = state.secrets.get(name).is_some_and(|s| {
            s.matches_listing(listed, pinned) && self.file_current(c, &s.fingerprint)
        });
        match state.held.get(name) {
            Some(held) if !loaded => report.push(held_item(name, held)),
            _ => {
                report.push(ReportItem::new(name, "unchanged").with_detail(self.shown(c)));
                release_hold(state, name, report);
            }
        }
    }
}

/// The store is back to the version this host runs (`.env` reverted after a bad value was
/// held, or the running value set again as a new version): the hold no longer describes the
/// store, and kept it would make `verify` warn for ever while every `sync` says `unchanged`.
fn release_hold(state: &mut State, name: &str, report: &mut Report) {
    if let Some(held) = state.held.remove(name) {
        report.push(ReportItem::new(name, "released").with_detail(format!(
            "version {} was held; the store is back to the version this host runs",
            shown_version(held.entry.version.as_deref())
        )));
    }
}

fn held_item(name: &str, held: &crate::files::state::HeldVersion) -> ReportItem {
    ReportItem::new(name, "held").with_detail(format!(
        "version {} is held since {} ({}); `sync --retry-held` tries it again",
        shown_version(held.entry.version.as_deref()),
        crate::clock::rfc3339(held.held_at),
        held.reason
    ))
}

fn shown_version(version: Option<&str>) -> String {
    version.map_or_else(|| "-".into(), |v| short_version(v).to_string())
}

#[cfg(test)]
mod tests;
