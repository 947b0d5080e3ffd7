//! The rotation transaction, one secret at a time: intent → new value → hook → push → file →
//! restarts with health gates → outcome, rolled back on failure.
//!
//! Engine- and store-agnostic: it talks to a [`SecretStore`] and a [`ContainerEngine`] only,
//! so the same code runs against Key Vault and Docker or against their in-memory twins. A
//! bind-mounted file replaced by an atomic rename is invisible to a running container (the
//! mount pins the old inode), so every container that mounts the secret is restarted, one at
//! a time, and each must come back ready (running, a new `StartedAt`, Docker health `healthy`
//! where defined) and answer its HTTP health check before the next one goes down.
//!
//! The audit log gets an `intent` line before anything changes and the outcome after, so a
//! push is never unrecorded. Any failure after the rotation hook ran puts everything back:
//! the previous value in the store (tagged `rollback-of`), the previous file and state entry,
//! the hook run again with the previous value, and the containers restarted onto it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::audit::{
    self, Action, AuditEvent, AuditKey, AuditLog, HealthResult, HookOutcome, Outcome, Secrets,
    Versions,
};
use crate::deploy::ContainerEngine;
use crate::error::{Error, Result};
use crate::files::runtime_dir::RuntimeDir;
use crate::files::secret_dir::{FileState, SecretDir};
use crate::files::state::{SecretState, State};
use crate::output::{short_version, ReportItem};
use crate::secret::{FingerprintKey, SecretValue, MAX_VALUE_BYTES};
use crate::store::{tags, NewVersion, SecretStore, VersionInfo};

mod apply;
pub mod hook;
mod plan;
pub mod policy;
pub mod preflight;
pub mod recover;
mod rollback;
mod select;
mod sync;
mod together;

use apply::{apply, open_dir, NewValue, Progress};
use hook::Phase;
pub use plan::{describe, describe_restarts, plan, ContainerTarget, SecretPlan, ServiceTarget};
pub use recover::recover_intents;
use rollback::{roll_back, roll_back_hook};
pub use select::{Chosen, Selection};
pub use sync::follow;
pub use together::follow_together;

/// In a health URL, replaced by the restarted container's first IP address, so each replica
/// of a scaled service can be checked on its own (`http://{ip}:8000/health`).
pub const IP_PLACEHOLDER: &str = "{ip}";

/// A run that writes had no chain key, neither the signing secret's nor a per-install one it
/// could make: nothing is changed without an audit line.
pub fn no_audit_key(runtime_dir: &std::path::Path) -> Error {
    Error::config(runtime_dir, "no audit key could be made")
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Restart the containers that mount the secret (off with `--no-restart`).
    pub restart: bool,
    /// Per restarted container: how long to wait for readiness, then for the HTTP check.
    pub health_timeout: Duration,
    /// Docker's grace period before it kills a container being restarted.
    pub stop_timeout: Duration,
    pub hook_timeout: Duration,
    /// Directory the rotation hook runs in (the Compose project directory).
    pub hook_dir: PathBuf,
    /// `user@host`, for the `rotated-by` tag.
    pub rotated_by: String,
    /// Paths in the report are shown relative to this directory (the working directory).
    pub shown_from: PathBuf,
}

/// Everything a run of transactions acts on, opened once: the store, the engine, the runtime
/// directory, the state (kept in memory, written once per step) and the audit log (its key
/// resolved once).
pub struct Run<'a> {
    pub store: &'a dyn SecretStore,
    /// Required when `settings.restart` is on and a plan has containers.
    pub engine: Option<&'a dyn ContainerEngine>,
    pub settings: Settings,
    /// Roll the new version out to a swarm stack instead of restarting Compose containers.
    pub swarm: Option<SwarmTarget<'a>>,
    pub runtime: &'a RuntimeDir,
    /// The key this run's fingerprints are computed with (the state's and the audit log's).
    pub fingerprints: FingerprintKey,
    pub state: State,
    pub audit: AuditLog<'a>,
}

impl Run<'_> {
    fn save_state(&self) -> Result<()> {
        self.state.write(self.runtime)
    }

    /// Append `event` to the audit log and keep the chain's new head in the state file.
    pub fn record(&mut self, event: &AuditEvent) -> Result<()> {
        let head = self.audit.append(event, self.state.audit_head.as_ref())?;
        self.state.audit_head = Some(head);
        self.save_state()
    }
}

/// A swarm stack to roll a rotated secret out to.
pub struct SwarmTarget<'a> {
    pub engine: &'a dyn crate::deploy::swarm::SwarmEngine,
    pub stack: String,
    /// How long Swarm watches each new task before it calls the update a success.
    pub monitor: Duration,
    /// How long to wait for each service's update to converge.
    pub timeout: Duration,
}

/// What one transaction did, for the report and the audit log. Never holds a value.
#[derive(Debug)]
pub struct RotationRecord {
    /// `rotate`, or `sync` (a version set elsewhere, applied without a push).
    pub action: Action,
    pub secret: String,
    pub old_version: Option<String>,
    pub new_version: Option<String>,
    /// Container names restarted, in order (rollback restarts included, after the forward ones).
    pub restarted: Vec<String>,
    pub health: HealthResult,
    pub outcome: Outcome,
    pub hook: Option<HookOutcome>,
    pub steps: Vec<ReportItem>,
    pub error: Option<Error>,
    /// Writing the outcome line failed (the transaction itself is as `outcome` says).
    pub audit_error: Option<Error>,
}

impl RotationRecord {
    fn new(plan: &SecretPlan, action: Action) -> Self {
        Self {
            action,
            secret: plan.spec.name.clone(),
            old_version: None,
            new_version: None,
            restarted: Vec::new(),
            health: HealthResult::Skipped,
            outcome: Outcome::Ok,
            hook: None,
            steps: Vec::new(),
            error: None,
            audit_error: None,
        }
    }

    fn step(&mut self, action: &str, detail: impl Into<String>) {
        self.steps
            .push(ReportItem::new(&self.secret, action).with_detail(detail));
    }

    fn fail(mut self, outcome: Outcome, error: Error) -> Self {
        self.outcome = outcome;
        self.error = Some(error);
        self
    }

    pub fn audit_event(&self) -> AuditEvent {
        AuditEvent {
            action: self.action,
            secret: Secrets::One(self.secret.clone()),
            old_version: Versions::One(self.old_version.clone()),
            new_version: Versions::One(self.new_version.clone()),
            services_restarted: self.restarted.clone(),
            health: self.health,
            outcome: self.outcome,
            hook: self.hook,
            error: self.error.as_ref().map(ToString::to_string),
        }
    }

    /// The error that ended the transaction (`None`: it committed).
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }
}

/// What the transaction must be able to put back.
struct Previous {
    /// The store's latest version before the push, if any.
    store: Option<(SecretValue, VersionInfo)>,
    file: Option<FileState>,
    state: Option<SecretState>,
}

impl Previous {
    /// The value the secret had: the store's, else the file's (what the containers ran with).
    fn value(&self) -> Option<SecretValue> {
        self.store.as_ref().map(|(v, _)| v.clone()).or_else(|| {
            self.file
                .as_ref()
                .and_then(|f| SecretValue::from_bytes(f.contents.to_vec()).ok())
                .filter(|v| !v.is_empty())
        })
    }

    fn version(&self) -> Option<&str> {
        self.store.as_ref().and_then(|(_, i)| i.version.as_deref())
    }

    /// The previous version's expiry, given back to it when it is restored.
    fn expires(&self) -> Option<i64> {
        self.store.as_ref().and_then(|(_, i)| i.expires)
    }
}

/// Run the transaction for one secret. A failure before the push changes nothing (and a hook
/// that already ran is run again with the previous value).
///
/// `value`: the new value (from stdin), or `None` to draw one from the secret's generator.
pub async fn rotate(
    run: &mut Run<'_>,
    plan: &SecretPlan,
    value: Option<SecretValue>,
) -> RotationRecord {
    let mut record = RotationRecord::new(plan, Action::Rotate);
    let value = match new_value(plan, value) {
        Ok(v) => v,
        Err(e) => return finish(run, record.fail(Outcome::Failed, e)),
    };
    // The secret's directory is opened once, and every step of this transaction goes through it.
    let opened = match open_dir(plan) {
        Ok(dir) => read_previous(run, plan, &dir).await.map(|p| (dir, p)),
        Err(e) => Err(e),
    };
    let (dir, previous) = match opened {
        Ok(opened) => opened,
        Err(e) => return finish(run, record.fail(Outcome::Failed, e)),
    };
    record.old_version = previous.version().map(str::to_string);

    // From the intent line to the outcome line, a signal waits (see `crate::interrupt`).
    let _step = crate::interrupt::step();
    if !record_intent(run, &mut record) {
        return record;
    }
    let hook_ran = match run_hook(run, plan, &previous, &value, record).await {
        Ok((ran, r)) => {
            record = r;
            ran
        }
        Err(done) => return finish(run, done),
    };
    let pushed = match push(run, plan, &value, &mut record).await {
        Ok(info) => info,
        Err(e) => {
            return finish(
                run,
                push_failed(run, plan, &previous, hook_ran, record, e).await,
            )
        }
    };

    // From here on, any failure is rolled back.
    let mut progress = Progress::default();
    let next = NewValue {
        plan,
        dir: &dir,
        value: &value,
        version: &pushed,
    };
    let forward = apply(run, &next, &mut record, &mut progress).await;
    let Err(failure) = forward else {
        committed(run, &mut record, progress, &value);
        record.step("rotated", "committed");
        return finish(run, record);
    };
    forward_failed(&mut record, &progress, &failure);
    let left = roll_back(
        run,
        plan,
        &dir,
        &previous,
        &pushed,
        &progress,
        hook_ran,
        &mut record,
    )
    .await;
    rolled_back_restarts(&mut record, &progress);
    let restored = "previous value restored in the store, the file and the containers";
    finish(run, undone(record, failure, left, Some(restored)))
}

/// The forward path went through: the record says which containers passed their gates, and
/// a rotated audit-signing key signs the chain from now on (the log records the handover).
fn committed(
    run: &mut Run<'_>,
    record: &mut RotationRecord,
    progress: Progress,
    value: &SecretValue,
) {
    record.health = if progress.restarted.is_empty() {
        HealthResult::Skipped
    } else {
        HealthResult::Passed
    };
    record.restarted = progress.restarted;
    if record.secret == audit::SIGNING_KEY_SECRET {
        run.audit.change_key(AuditKey::from_signing_secret(value));
    }
}

/// The forward path stopped at `failure`, before anything is put back.
fn forward_failed(record: &mut RotationRecord, progress: &Progress, failure: &Error) {
    // Restarts had begun, so the last container did not pass its gate (or Docker refused it).
    if !progress.restarted.is_empty() {
        record.health = HealthResult::Failed;
    }
    record.step("failed", failure.to_string());
}

/// The forward restarts come first in the record, then the rollback's.
fn rolled_back_restarts(record: &mut RotationRecord, progress: &Progress) {
    record
        .restarted
        .splice(0..0, progress.restarted.iter().cloned());
}

/// The end of a rollback after `cause`: rolled back (with a `rolled-back` step saying what was
/// `restored`, when given), or failed with what is `left` to put back by hand.
fn undone(
    mut record: RotationRecord,
    cause: Error,
    left: Vec<String>,
    restored: Option<&str>,
) -> RotationRecord {
    let secret = record.secret.clone();
    if !left.is_empty() {
        let error = Error::RollbackFailed {
            secret,
            cause: Box::new(cause),
            left,
        };
        return record.fail(Outcome::RollbackFailed, error);
    }
    if let Some(restored) = restored {
        record.step("rolled-back", restored);
    }
    let error = Error::RolledBack {
        secret,
        cause: Box::new(cause),
    };
    record.fail(Outcome::RolledBack, error)
}

/// The new value: `given` (from stdin), else one drawn from the secret's generator; 1 to
/// [`MAX_VALUE_BYTES`] bytes.
fn new_value(plan: &SecretPlan, given: Option<SecretValue>) -> Result<SecretValue> {
    let spec = &plan.spec;
    let value = match given {
        Some(v) => v,
        None => spec.generator.generate().map_err(|e| Error::Io {
            path: plan.placement.path.clone(),
            action: "read OS randomness",
            source: std::io::Error::other(e.to_string()),
        })?,
    };
    if value.is_empty() || value.len() > MAX_VALUE_BYTES {
        return Err(Error::manifest(
            &spec.name,
            format!("a new value must be 1 to {MAX_VALUE_BYTES} bytes"),
        ));
    }
    Ok(value)
}

/// The rotation hook, when the secret has one, with the new value. `Ok((ran, record))` goes
/// on; `Err(record)` is the transaction's end (a hook that timed out is run again with the
/// previous value first).
async fn run_hook(
    run: &Run<'_>,
    plan: &SecretPlan,
    previous: &Previous,
    value: &SecretValue,
    mut record: RotationRecord,
) -> std::result::Result<(bool, RotationRecord), RotationRecord> {
    let spec = &plan.spec;
    let Some(hook) = &spec.rotation_hook else {
        return Ok((false, record));
    };
    let ran = hook::run(
        hook,
        spec,
        Phase::Rotate,
        previous.version(),
        value,
        &run.settings,
    )
    .await;
    match ran {
        Ok(()) => {
            record.hook = Some(HookOutcome::Ok);
            record.step("hook-ok", format!("`{}`", hook.join(" ")));
            Ok((true, record))
        }
        Err(e) => {
            record.hook = Some(HookOutcome::Failed);
            if hook::timed_out(&e) {
                // It may have changed its target before it was stopped: put it back.
                return Err(hook_timed_out(run, plan, previous, record, e).await);
            }
            Err(record.fail(Outcome::Failed, e))
        }
    }
}

/// Push the new value as the store's latest version, tagged with when, by whom and what it
/// replaces.
async fn push(
    run: &Run<'_>,
    plan: &SecretPlan,
    value: &SecretValue,
    record: &mut RotationRecord,
) -> Result<VersionInfo> {
    let spec = &plan.spec;
    let rotated_at = crate::clock::unix_now();
    let mut push = NewVersion {
        tags: BTreeMap::from([
            (tags::ROTATED_AT.to_string(), audit::now_rfc3339()),
            (
                tags::ROTATED_BY.to_string(),
                run.settings.rotated_by.clone(),
            ),
        ]),
        // Only a store with attributes keeps it; `.env` drops it.
        expires: policy::expiry(spec, rotated_at),
    };
    if let Some(v) = &record.old_version {
        push.tags
            .insert(tags::PREVIOUS_VERSION.to_string(), v.clone());
    }
    let pushed = run.store.set_version(&plan.store_key, value, &push).await?;
    record.new_version = pushed.version.clone();
    let store = crate::output::shown_path(&run.store.describe(), &run.settings.shown_from);
    record.step(
        "pushed",
        format!(
            "to {} @ {}",
            crate::compose::names::key_in(&spec.name, &plan.store_key, &store),
            short(pushed.version.as_deref())
        ),
    );
    Ok(pushed)
}

/// The push failed: nothing changed in the store, and a hook that ran is run again with the
/// previous value.
async fn push_failed(
    run: &Run<'_>,
    plan: &SecretPlan,
    previous: &Previous,
    hook_ran: bool,
    mut record: RotationRecord,
    cause: Error,
) -> RotationRecord {
    let mut left = Vec::new();
    if hook_ran {
        roll_back_hook(run, plan, previous, &mut record, &mut left).await;
    }
    if left.is_empty() {
        return record.fail(Outcome::Failed, cause);
    }
    let secret = record.secret.clone();
    let error = Error::RollbackFailed {
        secret,
        cause: Box::new(cause),
        left,
    };
    record.fail(Outcome::RollbackFailed, error)
}

/// A hook that timed out before the push: nothing was pushed, and the hook runs again with
/// the previous value (its rollback phase), so its target cannot keep the new one.
async fn hook_timed_out(
    run: &Run<'_>,
    plan: &SecretPlan,
    previous: &Previous,
    mut record: RotationRecord,
    cause: Error,
) -> RotationRecord {
    let mut left = Vec::new();
    roll_back_hook(run, plan, previous, &mut record, &mut left).await;
    undone(record, cause, left, None)
}

/// Write the intent line ahead of any change, so a run killed after it still leaves a line
/// saying it began. `false` when the log refused it: nothing changed, and the log could not
/// say so either, so the record is failed and nothing more is written.
fn record_intent(run: &mut Run<'_>, record: &mut RotationRecord) -> bool {
    let intent = AuditEvent {
        outcome: Outcome::Intent,
        ..record.audit_event()
    };
    match run.record(&intent) {
        Ok(()) => true,
        Err(e) => {
            record.error = Some(e);
            record.outcome = Outcome::Failed;
            false
        }
    }
}

/// Write the transaction's outcome line (after a key-rotation line when it rotated the key).
fn finish(run: &mut Run<'_>, mut record: RotationRecord) -> RotationRecord {
    if let Err(e) = run.record(&record.audit_event()) {
        record.audit_error = Some(e);
    }
    record
}

async fn read_previous(run: &Run<'_>, plan: &SecretPlan, dir: &SecretDir) -> Result<Previous> {
    let store = match run.store.get_latest(&plan.store_key).await {
        Ok(f) => Some((f.value, f.info)),
        Err(Error::SecretNotFound { .. } | Error::MissingSecrets { .. }) => None,
        Err(e) => return Err(e),
    };
    let file = dir.read(&plan.placement.file_name)?;
    let state = run.state.secrets.get(&plan.spec.name).cloned();
    Ok(Previous { store, file, state })
}

/// Rotate each plan in turn; the first failure stops the run, the rest reported
/// `not-attempted`. The steps go into `report` either way.
pub async fn rotate_all(
    run: &mut Run<'_>,
    plans: &[SecretPlan],
    mut value: Option<SecretValue>,
    report: &mut crate::output::Report,
) -> Result<()> {
    for (i, plan) in plans.iter().enumerate() {
        let mut record = rotate(run, plan, value.take()).await;
        report.items.append(&mut record.steps);
        let failed = record.take_error();
        if let Some(e) = record.audit_error.take() {
            match failed {
                None => return Err(e),
                Some(_) => report.push(
                    ReportItem::new(&plan.spec.name, "warning")
                        .with_detail(format!("could not write the audit log: {e}")),
                ),
            }
        }
        if let Some(error) = failed {
            for rest in &plans[i + 1..] {
                report.push(
                    ReportItem::new(&rest.spec.name, "not-attempted")
                        .with_detail("an earlier rotation in this run failed"),
                );
            }
            return Err(error);
        }
    }
    if !run.settings.restart && !plans.is_empty() {
        let services: std::collections::BTreeSet<String> =
            plans.iter().flat_map(|p| p.spec.services()).collect();
        report
            .extra
            .insert("restart_needed".into(), serde_json::json!(services));
    }
    Ok(())
}

fn short(version: Option<&str>) -> String {
    match version {
        None => "-".into(),
        // Demo-mode fingerprints are short already.
        Some(v) if v.starts_with(crate::secret::FINGERPRINT_PREFIX) => v.to_string(),
        Some(v) => short_version(v).to_string(),
    }
}

#[cfg(test)]
mod tests;
