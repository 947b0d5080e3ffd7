//! Recovery of rotations a crash cut short: an `intent` audit line with no outcome after it.
//!
//! Like a write-ahead log's redo/undo pass, the next writing command (`load`, `sync`, `rotate`,
//! the Compose provider) calls [`recover_intents`] under the run lock before it reads the state.
//! The store decides: a `.env` or Key Vault push cannot be taken back (Key Vault keeps every
//! version; superseding it with the old value would be a new rotation nobody asked for), so the
//! store's current version is the truth. When it differs from the intent's old version the push
//! landed and the rotation is finished; otherwise nothing was pushed and it is undone. Either
//! way the file and the state are made to hold the store's current value, and a `recovered`
//! line closes the intent.
//!
//! Containers are named, not restarted: a restart onto a value whose health gate never ran
//! could take a healthy service down, which `load` never does. `verify`'s stale-container check
//! keeps pointing at them until they are restarted.

use crate::audit::{
    self, Action, AuditEvent, AuditLog, HealthResult, Outcome, Secrets, Versions,
    SIGNING_KEY_SECRET,
};
use crate::compose::{Project, SecretSpec};
use crate::error::{Error, Result};
use crate::files::layout::{Layout, OpenDirs, Placement};
use crate::files::runtime_dir::{RuntimeDir, AUDIT_LOG};
use crate::files::secret_dir::Owner;
use crate::files::state::{SecretState, State};
use crate::output::{Report, ReportItem};
use crate::secret::FingerprintKey;
use crate::store::{FetchedSecret, SecretStore};

/// The logs compose-secrets writes stay far below this (as `verify` reads them).
const MAX_LOG_BYTES: u64 = 512 * 1024 * 1024;

/// A rotation whose last audit line is its `intent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenIntent {
    /// 1-based line number in the audit log.
    pub line: usize,
    pub action: Action,
    pub secret: String,
    /// The version (or demo fingerprint) the secret had when the rotation began.
    pub old_version: Option<String>,
}

/// How one intent was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The store has a version other than the intent's old one: the push landed.
    Finished,
    /// The store still has the old version: nothing was pushed.
    Undone,
    /// The secret is no longer declared, or the store has no value for it.
    Abandoned,
}

/// Close every open intent in the runtime's audit log (see the module doc). Call it holding the
/// run lock, before the state is read for the command's own work. Does nothing (reading only
/// the log) when no intent is open.
pub async fn recover_intents(
    runtime: &RuntimeDir,
    project: &Project,
    layout: &Layout,
    store: &dyn SecretStore,
    fingerprints: &FingerprintKey,
    report: &mut Report,
) -> Result<Vec<(OpenIntent, Resolution)>> {
    let open = open_intents(runtime)?;
    if open.is_empty() {
        return Ok(Vec::new());
    }
    // The key the intent lines were signed with; a recovered signing key is handed over below.
    let key = audit::project_key(runtime, Some((project, layout)), None, true)
        .await?
        .ok_or_else(|| super::no_audit_key(runtime.path()))?;
    let mut log = AuditLog::new(runtime, key);
    log.check_appendable()?;
    let mut state = State::read(Some(runtime), &store.describe())?;
    let mut done = Vec::new();
    for intent in open {
        let (resolution, new_version) = resolve(
            project,
            layout,
            store,
            fingerprints,
            &intent,
            &mut state,
            report,
        )
        .await?;
        if intent.secret == SIGNING_KEY_SECRET {
            // The file may hold a new signing key now; the log records the handover.
            if let Some(key) =
                audit::project_key(runtime, Some((project, layout)), None, true).await?
            {
                log.change_key(key);
            }
        }
        let event = AuditEvent {
            action: intent.action,
            secret: Secrets::One(intent.secret.clone()),
            old_version: Versions::One(intent.old_version.clone()),
            new_version: Versions::One(new_version),
            services_restarted: Vec::new(),
            health: HealthResult::Skipped,
            outcome: Outcome::Recovered,
            hook: None,
            error: None,
        };
        state.audit_head = Some(log.append(&event, state.audit_head.as_ref())?);
        state.write(runtime)?;
        done.push((intent, resolution));
    }
    Ok(done)
}

/// Settle one intent against the store; returns how, and the store's current version.
async fn resolve(
    project: &Project,
    layout: &Layout,
    store: &dyn SecretStore,
    fingerprints: &FingerprintKey,
    intent: &OpenIntent,
    state: &mut State,
    report: &mut Report,
) -> Result<(Resolution, Option<String>)> {
    let spec = project.secret(&intent.secret).filter(|s| s.in_use);
    if let Some((spec, placement)) = spec.and_then(|s| Some((s, layout.of(&s.name)?))) {
        match store.get_latest(&store.key_for(spec)).await {
            Ok(f) if !f.value.is_empty() => {
                let current = Current {
                    version: version_of(&f, fingerprints),
                    fingerprint: f.value.fingerprint(fingerprints),
                    fetched: &f,
                    fingerprints,
                };
                let resolution = settle(layout, spec, placement, &current, intent, state, report)?;
                return Ok((resolution, Some(current.version)));
            }
            Ok(_) | Err(Error::SecretNotFound { .. } | Error::MissingSecrets { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    report.push(
        ReportItem::new(&intent.secret, "recovered").with_detail(format!(
            "audit line {}: a `{}` stopped after its intent; the secret is no longer declared \
         or the store has no value for it, so nothing was written",
            intent.line,
            action_name(intent.action)
        )),
    );
    Ok((Resolution::Abandoned, None))
}

/// Make the file and the state hold the store's current value `fetched`, and say what the
/// intent turned out to be.
fn settle(
    layout: &Layout,
    spec: &SecretSpec,
    placement: &Placement,
    current: &Current<'_>,
    intent: &OpenIntent,
    state: &mut State,
    report: &mut Report,
) -> Result<Resolution> {
    let (fetched, fingerprint) = (current.fetched, current.fingerprint.clone());
    let fingerprints = current.fingerprints;
    let current = &current.version;
    let pushed = !intent
        .old_version
        .as_deref()
        .is_some_and(|old| old.eq_ignore_ascii_case(current));
    let dirs = OpenDirs::open(layout, true)?;
    state.record_created(&dirs.created);
    let on_disk = dirs.read(placement)?;
    let intact = on_disk
        .as_ref()
        .is_some_and(|st| crate::loading::file_is_current(st, spec, &fingerprint, fingerprints));
    if !intact {
        let dir = dirs
            .get(&placement.dir)
            .ok_or_else(|| Error::config(&placement.dir, "the secret's directory is missing"))?;
        dir.write_atomic(
            &placement.file_name,
            fetched.value.expose_bytes(),
            spec.mode,
            Owner {
                uid: spec.owner_uid,
                gid: spec.owner_gid,
            },
        )?;
    }
    state.record_written(&placement.path, &fingerprint);
    state.secrets.insert(
        spec.name.clone(),
        SecretState {
            version: fetched.info.version.clone(),
            updated: fetched.info.updated,
            fingerprint,
            checked_at: crate::clock::unix_now(),
        },
    );
    let resolution = if pushed {
        Resolution::Finished
    } else {
        Resolution::Undone
    };
    report_settled(spec, intent, current, resolution, intact, report);
    Ok(resolution)
}

/// What `settle` did, for the report: the resolution, the containers that may run the previous
/// value, and a rotation hook that may disagree with the store.
fn report_settled(
    spec: &SecretSpec,
    intent: &OpenIntent,
    current: &str,
    resolution: Resolution,
    intact: bool,
    report: &mut Report,
) {
    let pushed = resolution == Resolution::Finished;
    let what = if pushed {
        "the push had landed, so the rotation is finished"
    } else {
        "nothing had been pushed, so the rotation is undone"
    };
    let file = if intact {
        "the file already held it"
    } else {
        "the file was rewritten"
    };
    report.push(
        ReportItem::new(&spec.name, "recovered").with_detail(format!(
        "audit line {}: a `{}` stopped after its intent; the store has version {}: {what} ({file})",
        intent.line,
        action_name(intent.action),
        crate::output::short_version(current),
    )),
    );
    let services = spec.services();
    if (pushed || !intact) && !services.is_empty() {
        report.push(
            ReportItem::new(&spec.name, "restart-needed").with_detail(format!(
                "containers of {} may still run the previous value; restart them \
                 (`compose-secrets verify` names stale ones)",
                services.join(", ")
            )),
        );
    }
    // Pushed, the hook's target and the store agree. Not pushed, the hook may have applied a
    // value that is gone now; running it again needs that target up, which a `load` cannot
    // know, so it is named rather than run.
    if !pushed && intent.action == Action::Rotate && spec.rotation_hook.is_some() {
        report.push(ReportItem::new(&spec.name, "warning").with_detail(
            "its rotation hook may have run with a value that was never pushed; \
             `compose-secrets rotate` sets its target and the store together again",
        ));
    }
}

/// The store's current value, as an intent is settled against it.
struct Current<'f> {
    fetched: &'f FetchedSecret,
    /// The key `fingerprint` was computed with, as files are compared.
    fingerprints: &'f FingerprintKey,
    /// What the audit log calls it (see [`version_of`]).
    version: String,
    fingerprint: String,
}

/// The version the audit log calls the store's current value: its id, or its fingerprint.
fn version_of(fetched: &FetchedSecret, fingerprints: &FingerprintKey) -> String {
    fetched
        .info
        .version
        .clone()
        .unwrap_or_else(|| fetched.value.fingerprint(fingerprints))
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Load => "load",
        Action::Rotate => "rotate",
        Action::Sync => "sync",
    }
}

/// Rotations and syncs whose last line in the audit log is an `intent` (as `verify` counts
/// them). The lines are not authenticated here: recovery only ever makes the file agree with the
/// store, which a forged intent cannot turn into anything `load` would not do.
pub fn open_intents(runtime: &RuntimeDir) -> Result<Vec<OpenIntent>> {
    let Some(bytes) = runtime.read(AUDIT_LOG, MAX_LOG_BYTES)? else {
        return Ok(Vec::new());
    };
    let mut last: std::collections::BTreeMap<String, Option<OpenIntent>> = Default::default();
    let lines = bytes.split(|&b| b == b'\n').enumerate();
    for (i, raw) in lines.filter(|(_, raw)| !raw.is_empty()) {
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(raw) else {
            continue;
        };
        let action = match doc.get("action").and_then(|a| a.as_str()) {
            Some("rotate") => Action::Rotate,
            Some("sync") => Action::Sync,
            _ => continue,
        };
        let Some(secret) = doc.get("secret").and_then(|s| s.as_str()) else {
            continue;
        };
        let intent =
            (doc.get("outcome").and_then(|o| o.as_str()) == Some("intent")).then(|| OpenIntent {
                line: i + 1,
                action,
                secret: secret.to_string(),
                old_version: doc
                    .get("old_version")
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
            });
        last.insert(secret.to_string(), intent);
    }
    let mut open: Vec<OpenIntent> = last.into_values().flatten().collect();
    open.sort_by_key(|o| o.line);
    Ok(open)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Fixture, OLD};
    use super::*;
    use crate::secret::SecretValue;

    /// Leave the fixture as a `rotate` of `s1` killed after its intent leaves it.
    async fn intent(f: &Fixture) {
        let runtime = f.runtime();
        let mut run = f.run(&runtime, false);
        let old = f.latest().await.info.version;
        let event = AuditEvent {
            action: Action::Rotate,
            secret: Secrets::One("s1".into()),
            old_version: Versions::One(old),
            new_version: Versions::One(None),
            services_restarted: Vec::new(),
            health: HealthResult::Skipped,
            outcome: Outcome::Intent,
            hook: None,
            error: None,
        };
        run.record(&event).unwrap();
        assert_eq!(open_intents(&runtime).unwrap().len(), 1);
    }

    async fn recover(f: &Fixture) -> (Vec<(OpenIntent, Resolution)>, Report) {
        let runtime = f.runtime();
        let mut report = Report::new("load", "memory", false);
        let key = crate::audit::fingerprint_key(Some(&runtime), true).unwrap();
        let done = recover_intents(
            &runtime,
            &f.manifest,
            &f.layout(),
            &f.store,
            &key,
            &mut report,
        )
        .await
        .unwrap();
        (done, report)
    }

    /// The chain as `verify` checks it: intact, at its head, and no intent left open.
    fn assert_closed(f: &Fixture) {
        let runtime = f.runtime();
        let key = crate::audit::AuditKey::local(&runtime, false)
            .unwrap()
            .unwrap();
        let chain = crate::audit::verify_log(Some(&runtime), &[key], f.state().audit_head.as_ref())
            .unwrap();
        assert!(chain.ok(), "{chain:?}");
        assert!(chain.pending.is_empty(), "{:?}", chain.pending);
        assert!(open_intents(&runtime).unwrap().is_empty());
        let last = f.audit().pop().unwrap();
        assert_eq!(last["outcome"], "recovered");
        assert_eq!(last["action"], "rotate");
    }

    #[tokio::test]
    async fn a_pushed_version_is_finished_and_its_users_named() {
        let f = Fixture::new(None).await;
        intent(&f).await;
        f.store
            .set(
                "s1",
                &SecretValue::new("pushed-new".into()),
                &Default::default(),
            )
            .await
            .unwrap();
        let (done, report) = recover(&f).await;
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].1, Resolution::Finished);
        assert_eq!(f.file(), "pushed-new");
        assert_eq!(
            f.state().secrets["s1"].version,
            f.latest().await.info.version
        );
        let restart = report.items.iter().find(|i| i.action == "restart-needed");
        let detail = restart.and_then(|i| i.detail.clone()).unwrap_or_default();
        assert!(
            detail.contains("app") && detail.contains("worker"),
            "{detail}"
        );
        assert_closed(&f);
        // Once closed, nothing is left to do.
        assert!(recover(&f).await.0.is_empty());
    }

    #[tokio::test]
    async fn a_rotation_killed_before_its_push_is_undone() {
        let f = Fixture::new(None).await;
        intent(&f).await;
        let (done, report) = recover(&f).await;
        assert_eq!(done[0].1, Resolution::Undone);
        assert_eq!(f.file(), OLD);
        assert_eq!(report.count("restart-needed"), 0, "the file never changed");
        assert_closed(&f);
    }
}
