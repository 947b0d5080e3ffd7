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

use crate::audit::{self, Outcome};
use crate::compose::{Project, SecretSpec};
use crate::context::Context;
use crate::deploy::{ContainerEngine as _, DockerEngine};
use crate::error::{Error, Result};
use crate::files::layout::{Layout, OpenDirs};
use crate::files::state::State;
use crate::loading::{self, Candidate};
use crate::output::{short_version, Report, ReportItem};
use crate::rotation::{self, Run, Settings};
use crate::secret::MAX_VALUE_BYTES;
use crate::store::{FetchedSecret, SecretStore, VersionInfo};

/// Docker's grace period for a container being restarted (as `docker restart`).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How a step runs.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub dry_run: bool,
    /// Try held versions again.
    pub retry_held: bool,
    pub health_url: Option<String>,
    pub health_timeout: Duration,
    pub lock_timeout: Duration,
}

/// What stays open from one step to the next: the store's client (its token cached) and the
/// Docker engine. Both are opened on first use.
#[derive(Default)]
pub struct Session {
    store: Option<Box<dyn SecretStore>>,
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

/// One reconciliation: everything in the store that this host does not run yet is applied.
/// An error means nothing was changed.
pub async fn step(
    ctx: &Context,
    session: &mut Session,
    request: &SyncRequest,
) -> Result<StepOutcome> {
    let project = crate::owners::resolved(ctx.project()?).await?;
    let layout = ctx.layout(&project)?;
    let specs: Vec<&SecretSpec> = project.secrets_in_use().collect();
    ctx.naming()?.check_keys(&specs)?;
    // The lock comes before the store is read: what it reads is what the last run committed.
    let writing = if request.dry_run {
        None
    } else {
        Some(ctx.begin_writing(request.lock_timeout).await?)
    };
    let read_only = match &writing {
        Some(_) => None,
        None => ctx.begin_reading()?,
    };
    let runtime = writing.as_ref().map(|w| &w.runtime).or(read_only.as_ref());
    match &session.store {
        Some(store) => store.reload().await?,
        None => session.store = Some(ctx.store()?),
    }
    let Some(store) = session.store.as_deref() else {
        unreachable!("the store was opened above")
    };
    let mut report = Report::new("sync", store.describe(), request.dry_run);
    if let Some(w) = &writing {
        // A rotation a crash cut short is closed before this step reads the state.
        rotation::recover_intents(&w.runtime, &project, &layout, store, &mut report).await?;
        crate::deploy::replace::settle_reported(&project.name, &mut report).await;
    }
    let mut state = State::read(runtime, &store.describe())?;
    let changes = find_changes(
        &project,
        &layout,
        store,
        &mut state,
        request.retry_held,
        Display {
            reporter: &ctx.reporter,
            shown_from: &ctx.cwd,
        },
        &mut report,
    )
    .await?;
    tracing::debug!(changed = changes.len(), "store listed");
    if changes.is_empty() {
        // Versions confirmed by a GET are trusted from the listing next time.
        if let Some(w) = &writing {
            if State::read(Some(&w.runtime), &store.describe())? != state {
                state.write(&w.runtime)?;
            }
        }
        return Ok(finished(report, Vec::new(), None));
    }

    let swarm = if request.dry_run {
        None
    } else {
        crate::deploy::detect_swarm(ctx.target, &project.name).await?
    };
    if swarm.is_none() && session.engine.is_none() {
        session.engine =
            crate::rotation::preflight::connect_docker(true, request.dry_run, &mut report, "")
                .await?;
    }
    let engine = session.engine.as_ref().filter(|_| swarm.is_none());
    let containers = match engine {
        Some(engine) => Some(engine.project_containers(&project.name).await?),
        None => None,
    };
    let changed: Vec<&SecretSpec> = changes
        .iter()
        .filter_map(|c| project.secret(&c.secret))
        .collect();
    let plans = rotation::plan(
        &project,
        &layout,
        store,
        &changed,
        containers.as_deref(),
        request.health_url.as_deref(),
    )?;
    if request.dry_run {
        for (plan, change) in plans.iter().zip(&changes) {
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
        return Ok(finished(report, Vec::new(), None));
    }

    let Some(writing) = &writing else {
        unreachable!("a run that is not a dry run holds the runtime directory")
    };
    let key = audit::project_key(
        &writing.runtime,
        Some((&project, &layout)),
        Some(store),
        true,
    )
    .await?
    .ok_or_else(|| Error::config(&ctx.runtime_dir, "no audit key could be made"))?;
    let mut run = Run {
        store,
        engine: engine.map(|e| e as &dyn crate::deploy::ContainerEngine),
        settings: Settings {
            restart: true,
            health_timeout: request.health_timeout,
            stop_timeout: STOP_TIMEOUT,
            hook_timeout: Duration::from_secs(1),
            hook_dir: project.directory.clone(),
            rotated_by: audit::user_at_host(),
            shown_from: ctx.cwd.clone(),
        },
        swarm: swarm.as_ref().map(|engine| rotation::SwarmTarget {
            engine,
            stack: project.name.clone(),
            monitor: crate::deploy::swarm::MONITOR,
            timeout: Duration::from_secs(request.health_timeout.as_secs().max(30) * 4),
        }),
        runtime: &writing.runtime,
        state,
        audit: audit::AuditLog::new(&writing.runtime, key),
    };
    tracing::debug!("plans made; applying");
    let mut applied = Vec::new();
    let mut held = Vec::new();
    let mut failure = None;
    let groups =
        crate::certificate::together(plans.iter().map(|p| (&p.spec, p.store_key.as_str())));
    'groups: for (g, group) in groups.iter().enumerate() {
        let records = match group.as_slice() {
            [i] => vec![rotation::follow(&mut run, &plans[*i], &changes[*i].fetched).await],
            parts => {
                let parts: Vec<_> = parts
                    .iter()
                    .map(|&i| (&plans[i], &changes[i].fetched))
                    .collect();
                rotation::follow_together(&mut run, &parts).await
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
                ctx.reporter.note(&format!(
                    "compose-secrets: could not write the audit log: {e}"
                ));
                if error.is_none() {
                    failure = Some(e);
                    break 'groups;
                }
            }
            match error {
                None => {}
                Some(e @ Error::SyncHeld { .. }) => held.push(e),
                Some(e) => {
                    stop = stop.or(Some(e));
                }
            }
        }
        if let Some(e) = stop {
            for rest in groups[g + 1..].iter().flatten() {
                report.push(
                    ReportItem::new(&changes[*rest].secret, "not-attempted")
                        .with_detail("an earlier secret in this sync failed"),
                );
            }
            failure = Some(e);
            break;
        }
    }
    // Anchored once the step's lines are in; a step that applied nothing appended nothing.
    if !applied.is_empty() {
        let head = run.state.audit_head.as_ref();
        let anchored =
            audit::anchor::update_for(store, &project, &ctx.runtime_dir, &writing.runtime, head);
        if let Some(warning) = anchored.await {
            ctx.reporter.warn(&warning);
        }
    }
    let failure = failure.or_else(|| Error::all(held).err());
    Ok(finished(report, applied, failure))
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
    project: &Project,
    layout: &Layout,
    store: &dyn SecretStore,
    state: &mut State,
    retry_held: bool,
    ctx: Display<'_>,
    report: &mut Report,
) -> Result<Vec<Change>> {
    let reporter = ctx.reporter;
    let shown = |c: &Candidate<'_>| loading::shown(c.placement, ctx.shown_from);
    let listed_at = crate::clock::unix_now();
    let existing = OpenDirs::open(layout, false)?;
    let candidates: Vec<Candidate<'_>> = loading::candidates(project, layout, store)
        .into_iter()
        .filter(|c| c.spec.in_use)
        .collect();
    let file_current = |c: &Candidate<'_>, fingerprint: &str| {
        existing
            .read(c.placement)
            .ok()
            .flatten()
            .is_some_and(|st| loading::file_is_current(&st, c.spec, fingerprint))
    };
    let snapshot = state.clone();
    let is_cached = |i: usize, listed: Option<&VersionInfo>| -> bool {
        let c = &candidates[i];
        let pinned = c.spec.pinned_version.as_deref();
        let loaded = snapshot
            .secrets
            .get(&c.spec.name)
            .is_some_and(|s| s.matches_listing(listed, pinned) && file_current(c, &s.fingerprint));
        let held = !retry_held
            && snapshot
                .held
                .get(&c.spec.name)
                .is_some_and(|h| h.matches_listing(listed, pinned));
        loaded || held
    };
    let fetched = loading::warm_fetch(
        store,
        &candidates,
        &is_cached,
        store.concurrency(),
        reporter,
    )
    .await?;

    let mut problems = Vec::new();
    let mut missing = Vec::new();
    let mut changes = Vec::new();
    let mut results = fetched.results;
    results.sort_by_key(|(i, _)| *i);
    let fetched_indices: Vec<usize> = results.iter().map(|(i, _)| *i).collect();
    for (i, result) in results {
        let c = &candidates[i];
        let name = &c.spec.name;
        let mut f = match result {
            Ok(f) if f.value.is_empty() => {
                missing.push(name.clone());
                continue;
            }
            Ok(f) if f.value.len() > MAX_VALUE_BYTES => {
                problems.push(Error::manifest(
                    name,
                    format!("its value is over Key Vault's limit of {MAX_VALUE_BYTES} bytes"),
                ));
                continue;
            }
            Ok(f) => match crate::certificate::file_value(c.spec, &c.key, f) {
                Ok(f) => f,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            },
            Err(Error::SecretNotFound { .. } | Error::MissingSecrets { .. }) => {
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
        let version = f
            .info
            .version
            .clone()
            .unwrap_or_else(|| f.value.fingerprint());
        let same = |v: Option<&str>| v.is_some_and(|v| v.eq_ignore_ascii_case(&version));
        if let Some(loaded) = state.secrets.get_mut(name) {
            // A new version with the value this host already runs (a rollback elsewhere puts
            // the previous value back as a new version): recorded, nothing restarted.
            if !same(loaded.version.as_deref())
                && loaded.fingerprint == f.value.fingerprint()
                && file_current(c, &loaded.fingerprint)
            {
                loaded.version = f.info.version.clone();
                loaded.updated = f.info.updated;
                loaded.checked_at = listed_at;
                report.push(ReportItem::new(name, "unchanged").with_detail(format!(
                    "{}: version {}, with the value already in use",
                    shown(c),
                    shown_version(f.info.version.as_deref())
                )));
                release_hold(state, name, report);
                continue;
            }
            if same(loaded.version.as_deref()) && file_current(c, &loaded.fingerprint) {
                // Confirmed by a GET: trusted from the listing next time (a store without
                // versions is read in full every time, so there is nothing to remember).
                if store.keeps_versions() {
                    loaded.checked_at = listed_at;
                }
                report.push(ReportItem::new(name, "unchanged").with_detail(shown(c)));
                release_hold(state, name, report);
                continue;
            }
        }
        if !retry_held {
            if let Some(held) = state.held.get_mut(name) {
                if held.is(Some(&version)) {
                    if store.keeps_versions() {
                        held.entry.checked_at = listed_at;
                    }
                    report.push(held_item(name, held));
                    continue;
                }
            }
        }
        if !state.secrets.contains_key(name) {
            if let Some(e) = loading::unmanaged_file(&existing, c, &f, state, layout) {
                problems.push(e);
                continue;
            }
        }
        changes.push(Change {
            secret: name.clone(),
            fetched: f,
        });
    }
    Error::all(problems)?;
    if !missing.is_empty() {
        missing.sort();
        return Err(Error::MissingSecrets {
            names: missing,
            origin: store.describe(),
        });
    }
    for (i, c) in candidates.iter().enumerate() {
        if fetched_indices.contains(&i) {
            continue;
        }
        // Not fetched: the listing matched either what is loaded or what is held.
        let name = &c.spec.name;
        let listed = fetched.listed.get(&i);
        let pinned = c.spec.pinned_version.as_deref();
        let loaded = state
            .secrets
            .get(name)
            .is_some_and(|s| s.matches_listing(listed, pinned) && file_current(c, &s.fingerprint));
        match state.held.get(name) {
            Some(held) if !loaded => report.push(held_item(name, held)),
            _ => {
                report.push(ReportItem::new(name, "unchanged").with_detail(shown(c)));
                release_hold(state, name, report);
            }
        }
    }
    Ok(changes)
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
