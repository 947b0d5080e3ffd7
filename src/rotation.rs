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
    self, AuditEvent, AuditKey, AuditLog, HealthResult, HookOutcome, Outcome, Secrets, Versions,
};
use crate::deploy::ContainerEngine;
use crate::error::{DockerFailure, Error, Result};
use crate::files::runtime_dir::RuntimeDir;
use crate::files::secret_dir::{FileState, Owner, SecretDir};
use crate::files::state::{SecretState, State};
use crate::output::{short_version, ReportItem};
use crate::secret::{SecretValue, MAX_VALUE_BYTES};
use crate::store::{tags, SecretStore, VersionInfo};

pub mod hook;
mod plan;
pub mod preflight;
mod select;

use hook::Phase;
pub use plan::{describe, plan, service_containers, ContainerTarget, SecretPlan, ServiceTarget};
pub use select::{all_rotatable, last_rotated, older_than, parse_age, read_value, resolve_names};

/// In a health URL, replaced by the restarted container's first IP address, so each replica
/// of a scaled service can be checked on its own (`http://{ip}:8000/health`).
pub const IP_PLACEHOLDER: &str = "{ip}";

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
    pub secret: String,
    pub store_key: String,
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
    fn new(plan: &SecretPlan) -> Self {
        Self {
            secret: plan.spec.name.clone(),
            store_key: plan.store_key.clone(),
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
            action: audit::Action::Rotate,
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
    store: Option<(SecretValue, Option<String>)>,
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
        self.store.as_ref().and_then(|(_, v)| v.as_deref())
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
    let record = RotationRecord::new(plan);
    let spec = &plan.spec;
    let value = match value.map(Ok).unwrap_or_else(|| {
        spec.generator.generate().map_err(|e| Error::Io {
            path: plan.placement.path.clone(),
            action: "read OS randomness",
            source: std::io::Error::other(e.to_string()),
        })
    }) {
        Ok(v) => v,
        Err(e) => return finish(run, record.fail(Outcome::Failed, e)),
    };
    if value.is_empty() || value.len() > MAX_VALUE_BYTES {
        let error = Error::manifest(
            &spec.name,
            format!("a new value must be 1 to {MAX_VALUE_BYTES} bytes"),
        );
        return finish(run, record.fail(Outcome::Failed, error));
    }
    // The secret's directory is opened once, and every step of this transaction goes through it.
    let dir = match open_dir(plan) {
        Ok(dir) => dir,
        Err(e) => return finish(run, record.fail(Outcome::Failed, e)),
    };
    let previous = match read_previous(run, plan, &dir).await {
        Ok(p) => p,
        Err(e) => return finish(run, record.fail(Outcome::Failed, e)),
    };
    let mut record = record;
    record.old_version = previous.version().map(str::to_string);

    // Written ahead: a run killed after the push still leaves a line saying it began.
    let intent = AuditEvent {
        outcome: Outcome::Intent,
        ..record.audit_event()
    };
    if let Err(e) = run.record(&intent) {
        record.error = Some(e);
        record.outcome = Outcome::Failed;
        // Nothing changed, and the log could not say so either: report, write nothing more.
        return record;
    }

    let hook_ran = match &spec.rotation_hook {
        None => false,
        Some(hook) => match hook::run(
            hook,
            spec,
            Phase::Rotate,
            previous.version(),
            &value,
            &run.settings,
        )
        .await
        {
            Ok(()) => {
                record.hook = Some(HookOutcome::Ok);
                record.step("hook-ok", format!("`{}`", hook.join(" ")));
                true
            }
            Err(e) => {
                record.hook = Some(HookOutcome::Failed);
                return finish(run, record.fail(Outcome::Failed, e));
            }
        },
    };

    let mut push_tags = BTreeMap::from([
        (tags::ROTATED_AT.to_string(), audit::now_rfc3339()),
        (
            tags::ROTATED_BY.to_string(),
            run.settings.rotated_by.clone(),
        ),
    ]);
    if let Some(v) = &record.old_version {
        push_tags.insert(tags::PREVIOUS_VERSION.to_string(), v.clone());
    }
    let pushed = match run.store.set(&plan.store_key, &value, &push_tags).await {
        Ok(info) => info,
        Err(e) => {
            let mut left = Vec::new();
            if hook_ran {
                roll_back_hook(run, plan, &previous, &mut record, &mut left).await;
            }
            let record = if left.is_empty() {
                record.fail(Outcome::Failed, e)
            } else {
                let secret = record.secret.clone();
                record.fail(
                    Outcome::RollbackFailed,
                    Error::RollbackFailed {
                        secret,
                        cause: Box::new(e),
                        left,
                    },
                )
            };
            return finish(run, record);
        }
    };
    record.new_version = pushed.version.clone();
    record.step(
        "pushed",
        format!(
            "`{}` in {} @ {}",
            plan.store_key,
            run.store.describe(),
            short(pushed.version.as_deref())
        ),
    );

    // From here on, any failure is rolled back.
    let mut progress = Progress::default();
    let forward = apply(run, plan, &dir, &value, &pushed, &mut record, &mut progress).await;
    let Err(failure) = forward else {
        record.health = if progress.restarted.is_empty() {
            HealthResult::Skipped
        } else {
            HealthResult::Passed
        };
        record.restarted = progress.restarted;
        record.step("rotated", "committed");
        if spec.name == audit::SIGNING_KEY_SECRET {
            // The chain is signed with this secret from now on; the log records the handover.
            run.audit.change_key(AuditKey::from_signing_secret(&value));
        }
        return finish(run, record);
    };
    // Restarts had begun, so the last container did not pass its gate (or Docker refused it).
    if !progress.restarted.is_empty() {
        record.health = HealthResult::Failed;
    }
    record.step("failed", failure.to_string());
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
    record
        .restarted
        .splice(0..0, progress.restarted.iter().cloned());
    let secret = record.secret.clone();
    let record = if left.is_empty() {
        record.step(
            "rolled-back",
            "previous value restored in the store, the file and the containers",
        );
        record.fail(
            Outcome::RolledBack,
            Error::RolledBack {
                secret,
                cause: Box::new(failure),
            },
        )
    } else {
        record.fail(
            Outcome::RollbackFailed,
            Error::RollbackFailed {
                secret,
                cause: Box::new(failure),
                left,
            },
        )
    };
    finish(run, record)
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
        Ok(f) => Some((f.value, f.info.version)),
        Err(Error::SecretNotFound { .. } | Error::MissingSecrets { .. }) => None,
        Err(e) => return Err(e),
    };
    let file = dir.read(&plan.placement.file_name)?;
    let state = run.state.secrets.get(&plan.spec.name).cloned();
    Ok(Previous { store, file, state })
}

/// How far the forward path got, so the rollback undoes exactly that. Each flag is set once
/// its step is known to have happened.
#[derive(Default)]
struct Progress {
    file_written: bool,
    state_written: bool,
    /// Containers restarted so far (the failing one included), in order.
    restarted: Vec<String>,
    restarted_targets: Vec<(ContainerTarget, ServiceTarget)>,
}

#[allow(clippy::too_many_arguments)]
async fn apply(
    run: &mut Run<'_>,
    plan: &SecretPlan,
    dir: &SecretDir,
    value: &SecretValue,
    pushed: &VersionInfo,
    record: &mut RotationRecord,
    progress: &mut Progress,
) -> Result<()> {
    let spec = &plan.spec;
    let name = &plan.placement.file_name;
    let written = dir.write_atomic(
        name,
        value.expose().as_bytes(),
        spec.mode,
        Owner {
            uid: spec.owner_uid,
            gid: spec.owner_gid,
        },
    );
    // A write that failed before its rename left the old file: a rollback must not claim to
    // restore what was never replaced, nor leave a replaced one behind.
    progress.file_written = match &written {
        Ok(()) => true,
        Err(_) => dir
            .read(name)
            .ok()
            .flatten()
            .is_some_and(|st| *st.contents == *value.expose().as_bytes()),
    };
    written?;
    record.step(
        "written",
        format!("{} ({:04o})", plan.placement.path.display(), spec.mode),
    );

    run.state.secrets.insert(
        spec.name.clone(),
        SecretState {
            version: pushed.version.clone(),
            updated: pushed.updated,
            fingerprint: value.fingerprint(),
            checked_at: crate::clock::unix_now(),
        },
    );
    run.save_state()?;
    progress.state_written = true;

    if !run.settings.restart {
        record.step(
            "not-restarted",
            "--no-restart: running containers keep the old value until restarted",
        );
        return Ok(());
    }
    if let Some(swarm) = &run.swarm {
        let version = crate::deploy::swarm::version_label(pushed.version.as_deref(), value);
        let existing = swarm.engine.stack_secrets(&swarm.stack).await?;
        let (secret, _) = crate::deploy::swarm::ensure_secret(
            swarm.engine,
            &swarm.stack,
            &spec.name,
            &version,
            value,
            &existing,
        )
        .await?;
        // On failure roll_out has already rolled the services back and removed the new secret.
        let rollout = crate::deploy::swarm::roll_out(
            swarm.engine,
            &swarm.stack,
            &spec.name,
            &secret,
            swarm.monitor,
            swarm.timeout,
        )
        .await?;
        for service in &rollout.services_updated {
            progress.restarted.push(format!("swarm:{service}"));
            record.step(
                "updated",
                format!("swarm service {service}: converged on {}", secret.name),
            );
        }
        for removed in &rollout.secrets_removed {
            record.step("removed", format!("old swarm secret {removed}"));
        }
        return Ok(());
    }
    for service in &plan.services {
        if service.containers.is_empty() {
            record.step(
                "no-containers",
                format!("service {}: nothing running to restart", service.service),
            );
            continue;
        }
        let engine = run.engine.ok_or_else(|| {
            Error::docker(
                DockerFailure::Other,
                "no Docker engine to restart containers with",
            )
        })?;
        for container in &service.containers {
            progress.restarted.push(container.name.clone());
            progress
                .restarted_targets
                .push((container.clone(), service.clone()));
            restart_and_gate(engine, container, service, &run.settings).await?;
            record.step(
                "restarted",
                format!(
                    "service {} container {}: healthy",
                    service.service, container.name
                ),
            );
        }
    }
    Ok(())
}

/// Restart one container and wait until it is ready and its health check answers 2xx.
async fn restart_and_gate(
    engine: &dyn ContainerEngine,
    container: &ContainerTarget,
    service: &ServiceTarget,
    settings: &Settings,
) -> Result<()> {
    let context = |e: Error| {
        Error::within(
            format!("service {} container {}", service.service, container.name),
            e,
        )
    };
    // Read StartedAt right before the restart: an earlier rotation in this run may have restarted it.
    let before = engine.inspect(&container.id).await.map_err(context)?;
    engine
        .restart(&container.id, settings.stop_timeout)
        .await
        .map_err(context)?;
    let ready = crate::deploy::health::wait_container_ready(
        engine,
        &container.id,
        before.started_at.as_deref(),
        settings.health_timeout,
    )
    .await
    .map_err(context)?;
    if let Some(url) = &service.health_url {
        let url = match ready.ip_addresses.first() {
            Some(ip) => url.replace(IP_PLACEHOLDER, ip),
            None => url.clone(),
        };
        crate::deploy::health::wait_http_healthy(&url, settings.health_timeout)
            .await
            .map_err(context)?;
    }
    Ok(())
}

/// Undo what `apply` did, in the order a consumer needs it: the store, the file and the state,
/// then the hook's target, then the containers onto the previous value. Returns what could not
/// be undone (empty: fully rolled back).
#[allow(clippy::too_many_arguments)]
async fn roll_back(
    run: &mut Run<'_>,
    plan: &SecretPlan,
    dir: &SecretDir,
    previous: &Previous,
    pushed: &VersionInfo,
    progress: &Progress,
    hook_ran: bool,
    record: &mut RotationRecord,
) -> Vec<String> {
    let mut left = Vec::new();
    let new_version = pushed.version.clone().unwrap_or_default();

    // The store: the previous value becomes the current version again. With no previous
    // version, the previous file's contents are what the containers ran with.
    match previous.value() {
        Some(old) => {
            let rollback_tags = BTreeMap::from([
                (tags::ROTATED_AT.to_string(), audit::now_rfc3339()),
                (
                    tags::ROTATED_BY.to_string(),
                    run.settings.rotated_by.clone(),
                ),
                (tags::ROLLBACK_OF.to_string(), new_version.clone()),
                (tags::PREVIOUS_VERSION.to_string(), new_version.clone()),
            ]);
            match run.store.set(&plan.store_key, &old, &rollback_tags).await {
                Ok(info) => record.step(
                    "store-restored",
                    format!(
                        "`{}` @ {} (rollback-of {})",
                        plan.store_key,
                        short(info.version.as_deref()),
                        short(Some(&new_version))
                    ),
                ),
                Err(e) => left.push(format!(
                    "the store still holds the new version {} of `{}` (restoring the previous value failed: {e})",
                    short(Some(&new_version)),
                    plan.store_key
                )),
            }
        }
        None => left.push(format!(
            "the store keeps the new version {} of `{}`: there was no previous value to restore",
            short(Some(&new_version)),
            plan.store_key
        )),
    }

    if progress.file_written {
        let path = plan.placement.path.display().to_string();
        let name = &plan.placement.file_name;
        let restored = match &previous.file {
            Some(f) => dir.write_atomic(
                name,
                &f.contents,
                f.mode,
                Owner {
                    uid: Some(f.uid),
                    gid: Some(f.gid),
                },
            ),
            None => match dir.read(name) {
                Ok(Some(_)) => dir.remove(name),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            },
        };
        match restored {
            Ok(()) => record.step("file-restored", path),
            Err(e) => left.push(format!(
                "{path} holds the NEW value (restoring it failed: {e})"
            )),
        }
    }
    if progress.state_written {
        match &previous.state {
            Some(e) => run.state.secrets.insert(plan.spec.name.clone(), e.clone()),
            None => run.state.secrets.remove(&plan.spec.name),
        };
        if let Err(e) = run.save_state() {
            left.push(format!(
                "state.json describes the new version ({e}); the next load refetches"
            ));
        }
    }
    if hook_ran {
        roll_back_hook(run, plan, previous, record, &mut left).await;
    }

    // The same containers, in the same order, back onto the previous file.
    if let Some(engine) = run.engine {
        for (container, service) in &progress.restarted_targets {
            let name = &container.name;
            record.restarted.push(name.clone());
            match restart_and_gate(engine, container, service, &run.settings).await {
                Ok(()) => record.step(
                    "restarted-back",
                    format!("service {} container {name}: healthy", service.service),
                ),
                Err(e) => left.push(container_left_behind(name, &e)),
            }
        }
    }
    left
}

/// What to tell the operator about a container the rollback could not confirm: an engine
/// that is gone is waited for; a container that will not come back healthy is looked at.
fn container_left_behind(name: &str, e: &Error) -> String {
    match e.innermost() {
        Error::Docker {
            kind: DockerFailure::Unreachable,
            ..
        } => format!(
            "container {name} is not confirmed running on the previous value ({e}); once the engine answers, \
             restart it (`docker restart {name}`)"
        ),
        Error::Health { .. } => format!(
            "container {name} did not come back healthy on the previous value ({e}); look at why \
             (`docker logs {name}`) and restart it (`docker restart {name}`)"
        ),
        _ => format!(
            "container {name} is not confirmed running on the previous value ({e}); restart it \
             (`docker restart {name}`)"
        ),
    }
}

/// Run the hook again with the previous value, so its target goes back with everything else.
async fn roll_back_hook(
    run: &Run<'_>,
    plan: &SecretPlan,
    previous: &Previous,
    record: &mut RotationRecord,
    left: &mut Vec<String>,
) {
    let Some(hook) = &plan.spec.rotation_hook else {
        return;
    };
    let Some(old) = previous.value() else {
        record.hook = Some(HookOutcome::RollbackFailed);
        left.push(format!(
            "the rotation hook `{}` was given the new value and there is no previous value to give it back",
            hook.join(" ")
        ));
        return;
    };
    match hook::run(
        hook,
        &plan.spec,
        Phase::Rollback,
        previous.version(),
        &old,
        &run.settings,
    )
    .await
    {
        Ok(()) => {
            record.hook = Some(HookOutcome::RolledBack);
            record.step("hook-rolled-back", format!("`{}`", hook.join(" ")));
        }
        Err(e) => {
            record.hook = Some(HookOutcome::RollbackFailed);
            left.push(format!(
                "the rotation hook's target may still hold the new value: {e}"
            ));
        }
    }
}

/// The plan's directory, opened (and created when missing) below its root.
fn open_dir(plan: &SecretPlan) -> Result<SecretDir> {
    let (dir, _) = SecretDir::open_below(&plan.root, &plan.placement.dir, true, plan.ours)?
        .ok_or_else(|| Error::Io {
            path: plan.placement.dir.clone(),
            action: "open directory",
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })?;
    dir.remove_orphaned_temps()?;
    Ok(dir)
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
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::compose::{Project, ProjectOptions, SecretSource, SecretSpec};
    use crate::deploy::{labels, ContainerInfo};
    use crate::files::layout::{Layout, Protected};
    use crate::files::runtime_dir::RuntimeDir;
    use crate::store::memory::MemoryStore;

    /// Containers whose restarts can be scripted to fail or come back unhealthy.
    #[derive(Default)]
    struct ScriptedEngine {
        containers: Mutex<BTreeMap<String, ContainerInfo>>,
        restarts: Mutex<Vec<String>>,
        /// Container name -> how many of its next restarts come back unhealthy.
        unhealthy: Mutex<BTreeMap<String, usize>>,
        /// Container name -> how many of its next restarts Docker refuses.
        refuse_restart: Mutex<BTreeMap<String, usize>>,
        clock: Mutex<u64>,
    }

    impl ScriptedEngine {
        fn with(containers: &[(&str, &str, u32)]) -> Self {
            let engine = Self::default();
            for (service, name, number) in containers {
                let info = ContainerInfo {
                    id: format!("id-{name}"),
                    name: (*name).into(),
                    project: "proj".into(),
                    service: (*service).into(),
                    number: Some(*number),
                    running: true,
                    started_at: Some("t0".into()),
                    labels: BTreeMap::from([
                        (labels::PROJECT.into(), "proj".into()),
                        (labels::SERVICE.into(), (*service).into()),
                    ]),
                    ..ContainerInfo::default()
                };
                engine
                    .containers
                    .lock()
                    .unwrap()
                    .insert(info.id.clone(), info);
            }
            engine
        }

        fn restarts(&self) -> Vec<String> {
            self.restarts.lock().unwrap().clone()
        }

        fn all(&self) -> Vec<ContainerInfo> {
            self.containers.lock().unwrap().values().cloned().collect()
        }
    }

    #[async_trait]
    impl ContainerEngine for ScriptedEngine {
        fn describe(&self) -> String {
            "scripted".into()
        }
        async fn ping(&self) -> Result<()> {
            Ok(())
        }
        async fn project_containers(&self, _project: &str) -> Result<Vec<ContainerInfo>> {
            Ok(self.all())
        }
        async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
            self.containers
                .lock()
                .unwrap()
                .get(id)
                .cloned()
                .ok_or_else(|| Error::Docker {
                    kind: crate::error::DockerFailure::Other,
                    message: format!("no such container {id}"),
                })
        }
        async fn restart(&self, id: &str, _stop_timeout: Duration) -> Result<()> {
            let mut containers = self.containers.lock().unwrap();
            let c = containers.get_mut(id).expect("known container");
            self.restarts.lock().unwrap().push(c.name.clone());
            if let Some(n) = self.refuse_restart.lock().unwrap().get_mut(&c.name) {
                if *n > 0 {
                    *n -= 1;
                    return Err(Error::Docker {
                        kind: crate::error::DockerFailure::Other,
                        message: "restart refused (scripted)".into(),
                    });
                }
            }
            let mut clock = self.clock.lock().unwrap();
            *clock += 1;
            c.started_at = Some(format!("t{clock}"));
            let mut unhealthy = self.unhealthy.lock().unwrap();
            c.health = match unhealthy.get_mut(&c.name) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    Some("unhealthy".into())
                }
                _ => Some("healthy".into()),
            };
            Ok(())
        }
        async fn start(&self, _id: &str) -> Result<()> {
            Ok(())
        }
    }

    const OLD: &str = "old-value-0123456789";

    struct Fixture {
        dir: tempfile::TempDir,
        manifest: Project,
        store: MemoryStore,
        engine: ScriptedEngine,
    }

    impl Fixture {
        async fn new(hook: Option<&str>) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let hook = hook
                .map(|h| format!("      rotation-hook: [\"sh\", \"-c\", {h:?}]\n"))
                .unwrap_or_default();
            let compose = format!(
                "name: proj\nservices:\n  app:\n    image: x\n    secrets: [s1]\n  worker:\n    image: x\n    secrets: [s1]\n  other:\n    image: x\n\
                 secrets:\n  s1:\n    file: ./secrets/s1\n    x-compose-secrets:\n      generator: hex:16\n{hook}"
            );
            std::fs::write(dir.path().join("compose.yaml"), compose).unwrap();
            let manifest = Project::load(&ProjectOptions {
                cwd: dir.path().to_path_buf(),
                ..ProjectOptions::default()
            })
            .unwrap();
            let store = MemoryStore::new();
            store
                .set("s1", &SecretValue::new(OLD.into()), &BTreeMap::new())
                .await
                .unwrap();
            let secrets = SecretDir::open(&dir.path().join("secrets"), true).unwrap();
            secrets
                .write_atomic("s1", OLD.as_bytes(), 0o400, Owner::default())
                .unwrap();
            // Listed out of order on purpose: restarts follow container numbers.
            let engine = ScriptedEngine::with(&[
                ("app", "proj-app-2", 2),
                ("worker", "proj-worker-1", 1),
                ("app", "proj-app-1", 1),
                ("other", "proj-other-1", 1),
            ]);
            Fixture {
                dir,
                manifest,
                store,
                engine,
            }
        }

        fn plan(&self) -> SecretPlan {
            let specs = resolve_names(&self.manifest, &["s1".into()]).unwrap();
            let containers = self.engine.all();
            plan(
                &self.manifest,
                &self.layout(),
                &self.store,
                &specs,
                Some(&containers),
                None,
            )
            .unwrap()
            .remove(0)
        }

        fn layout(&self) -> Layout {
            let runtime = self.dir.path().join(".runtime");
            Layout::plan(
                &self.manifest,
                &runtime,
                &runtime.join("secrets"),
                &Protected {
                    project: &self.manifest,
                    env_file: &self.dir.path().join(".env"),
                    template: &self.dir.path().join(".env.demo"),
                },
            )
            .unwrap()
        }

        fn secrets_dir(&self) -> PathBuf {
            self.dir.path().join("secrets")
        }

        fn runtime(&self) -> RuntimeDir {
            RuntimeDir::open(&self.dir.path().join(".runtime"), true)
                .unwrap()
                .unwrap()
        }

        fn state(&self) -> State {
            State::read(Some(&self.runtime()), "memory").unwrap()
        }

        /// The audit log's lines as JSON.
        fn audit(&self) -> Vec<serde_json::Value> {
            std::fs::read_to_string(self.dir.path().join(".runtime/audit.log"))
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }

        fn run<'a>(&'a self, runtime: &'a RuntimeDir, restart: bool) -> Run<'a> {
            let key = AuditKey::local(runtime, true).unwrap().unwrap();
            Run {
                store: &self.store,
                engine: Some(&self.engine),
                settings: Settings {
                    restart,
                    health_timeout: Duration::from_secs(2),
                    stop_timeout: Duration::from_secs(1),
                    hook_timeout: Duration::from_secs(20),
                    hook_dir: self.dir.path().to_path_buf(),
                    rotated_by: "tester@host".into(),
                },
                swarm: None,
                runtime,
                state: State::read(Some(runtime), "memory").unwrap(),
                audit: AuditLog::new(runtime, key),
            }
        }

        async fn rotate(&self, value: Option<&str>) -> RotationRecord {
            let runtime = self.runtime();
            let mut run = self.run(&runtime, true);
            rotate(
                &mut run,
                &self.plan(),
                value.map(|v| SecretValue::new(v.into())),
            )
            .await
        }

        fn file(&self) -> String {
            String::from_utf8(std::fs::read(self.secrets_dir().join("s1")).unwrap()).unwrap()
        }

        async fn latest(&self) -> crate::store::FetchedSecret {
            self.store.get_latest("s1").await.unwrap()
        }

        async fn versions(&self) -> usize {
            self.store.list_versions("s1").await.unwrap().len()
        }
    }

    fn mode(path: &std::path::Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[tokio::test]
    async fn success_pushes_with_tags_rewrites_the_file_and_restarts_in_order() {
        let f = Fixture::new(None).await;
        let old_version = f.latest().await.info.version;
        let mut record = f.rotate(None).await;
        assert!(record.take_error().is_none(), "{:?}", record.steps);
        assert_eq!(record.outcome, Outcome::Ok);
        assert_eq!(record.health, HealthResult::Passed);

        let latest = f.latest().await;
        assert_ne!(latest.value.expose(), OLD);
        assert_eq!(latest.value.len(), 32, "hex:16");
        assert_eq!(
            latest.info.tags.get(tags::PREVIOUS_VERSION),
            old_version.as_ref()
        );
        assert_eq!(
            latest.info.tags.get(tags::ROTATED_BY).map(String::as_str),
            Some("tester@host")
        );
        let at = latest.info.tags.get(tags::ROTATED_AT).expect("rotated-at");
        assert!(audit::parse_rfc3339(at).is_some(), "{at}");
        assert_eq!(record.old_version, old_version);
        assert_eq!(record.new_version, latest.info.version);

        assert_eq!(f.file(), latest.value.expose());
        assert_eq!(mode(&f.secrets_dir().join("s1")), 0o400);
        let state = f.state();
        assert_eq!(state.secrets["s1"].version, latest.info.version);
        assert_eq!(state.secrets["s1"].fingerprint, latest.value.fingerprint());

        let order = vec!["proj-app-1", "proj-app-2", "proj-worker-1"];
        assert_eq!(f.engine.restarts(), order);
        assert_eq!(record.restarted, order);
        let event = record.audit_event();
        assert_eq!(event.outcome, Outcome::Ok);
    }

    #[tokio::test]
    async fn the_hook_gets_the_value_on_stdin_only() {
        let f = Fixture::new(Some(
            "cat > hook.stdin; printf '%s %s' \"$$COMPOSE_SECRETS_SECRET\" \"$$COMPOSE_SECRETS_HOOK_PHASE\" > hook.env; printf '%s' \"$$#\" > hook.argc",
        ))
        .await;
        let mut record = f.rotate(Some("given-value-42")).await;
        assert!(record.take_error().is_none(), "{:?}", record.steps);
        let read = |n: &str| std::fs::read_to_string(f.dir.path().join(n)).unwrap();
        assert_eq!(read("hook.stdin"), "given-value-42");
        assert_eq!(read("hook.env"), "s1 rotate");
        assert_eq!(read("hook.argc"), "0");
        assert_eq!(f.latest().await.value.expose(), "given-value-42");
    }

    #[tokio::test]
    async fn a_failing_hook_changes_nothing() {
        // The hook echoes its stdin (the value) to stderr and stdout, then fails.
        let f = Fixture::new(Some("tee /dev/stderr; exit 3")).await;
        let mut record = f.rotate(Some("hook-echoed-value")).await;
        let error = record.take_error().expect("hook failure");
        let message = error.to_string();
        assert!(
            message.contains("s1") && message.contains("status 3"),
            "{message}"
        );
        assert!(
            !message.contains("hook-echoed-value"),
            "hook output is never echoed: {message}"
        );
        assert_eq!(record.outcome, Outcome::Failed);
        assert_eq!(f.versions().await, 1);
        assert_eq!(f.latest().await.value.expose(), OLD);
        assert_eq!(f.file(), OLD);
        assert!(f.engine.restarts().is_empty());
        assert!(!f.state().secrets.contains_key("s1"));
        let outcomes: Vec<String> = f
            .audit()
            .iter()
            .map(|l| l["outcome"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(outcomes, ["intent", "failed"]);
    }

    #[tokio::test]
    async fn a_refused_push_changes_nothing() {
        let f = Fixture::new(None).await;
        f.store.fail_sets(true);
        let mut record = f.rotate(None).await;
        assert!(record.take_error().is_some());
        assert_eq!(record.outcome, Outcome::Failed);
        assert_eq!(record.health, HealthResult::Skipped);
        f.store.fail_sets(false);
        assert_eq!(f.versions().await, 1);
        assert_eq!(f.file(), OLD);
        assert!(f.engine.restarts().is_empty());
    }

    #[tokio::test]
    async fn a_health_failure_rolls_everything_back() {
        let f = Fixture::new(None).await;
        f.engine
            .unhealthy
            .lock()
            .unwrap()
            .insert("proj-app-2".into(), 1);
        let mut record = f.rotate(None).await;
        let error = record.take_error().expect("rolled back");
        assert!(
            matches!(error, Error::RolledBack { .. }) && error.exit_code() == 6,
            "{error}"
        );
        assert!(error.to_string().contains("proj-app-2"), "{error}");
        assert_eq!(error.exit_code(), 6);
        assert_eq!(record.outcome, Outcome::RolledBack);
        assert_eq!(record.health, HealthResult::Failed);

        let versions = f.store.list_versions("s1").await.unwrap();
        assert_eq!(versions.len(), 3, "old, failed new, rollback");
        let failed = versions[1].version.clone().unwrap();
        let latest = f.latest().await;
        assert_eq!(latest.value.expose(), OLD);
        assert_eq!(latest.info.tags.get(tags::ROLLBACK_OF), Some(&failed));
        assert_eq!(f.file(), OLD);
        assert_eq!(mode(&f.secrets_dir().join("s1")), 0o400);
        // The worker was never restarted; the two app containers go back in the same order.
        assert_eq!(
            f.engine.restarts(),
            vec!["proj-app-1", "proj-app-2", "proj-app-1", "proj-app-2"]
        );
        assert_eq!(record.restarted, f.engine.restarts());
    }

    #[tokio::test]
    async fn a_docker_failure_rolls_back_with_the_docker_exit_code() {
        let f = Fixture::new(None).await;
        f.engine
            .refuse_restart
            .lock()
            .unwrap()
            .insert("proj-worker-1".into(), 1);
        let mut record = f.rotate(None).await;
        let error = record.take_error().expect("rolled back");
        assert!(
            matches!(error, Error::RolledBack { .. }) && error.exit_code() == 5,
            "{error}"
        );
        assert!(error.to_string().contains("proj-worker-1"), "{error}");
        assert_eq!(f.file(), OLD);
        assert_eq!(f.latest().await.value.expose(), OLD);
        // The refused container is restarted in the rollback too: it may have been stopped.
        assert_eq!(
            f.engine.restarts(),
            vec![
                "proj-app-1",
                "proj-app-2",
                "proj-worker-1",
                "proj-app-1",
                "proj-app-2",
                "proj-worker-1"
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_rollback_says_what_is_left() {
        let f = Fixture::new(None).await;
        f.engine
            .unhealthy
            .lock()
            .unwrap()
            .insert("proj-app-1".into(), 5);
        let mut record = f.rotate(None).await;
        let error = record.take_error().expect("rollback failed");
        assert!(matches!(error, Error::RollbackFailed { .. }), "{error}");
        assert_eq!(error.exit_code(), 9);
        assert!(error.to_string().contains("proj-app-1"), "{error}");
        assert_eq!(record.outcome, Outcome::RollbackFailed);
        // Store and file were still put back.
        assert_eq!(f.latest().await.value.expose(), OLD);
        assert_eq!(f.file(), OLD);
    }

    #[tokio::test]
    async fn no_restart_pushes_and_writes_only() {
        let f = Fixture::new(None).await;
        let runtime = f.runtime();
        let mut run = f.run(&runtime, false);
        run.engine = None;
        let specs = resolve_names(&f.manifest, &["S1".into()]).unwrap();
        let plan = plan(&f.manifest, &f.layout(), &f.store, &specs, None, None)
            .unwrap()
            .remove(0);
        let mut record = rotate(&mut run, &plan, None).await;
        assert!(record.take_error().is_none());
        assert_eq!(record.health, HealthResult::Skipped);
        assert_eq!(f.file(), f.latest().await.value.expose());
        assert!(f.engine.restarts().is_empty());
        assert!(record.steps.iter().any(|s| s.action == "not-restarted"));
    }

    /// A hook that keeps what it was given (and in which phase) in `target`, as a database
    /// keeps a password; `fail_on` makes it fail in that phase.
    fn recording_hook(fail_on: &str) -> String {
        format!(
            "cat > target.new && mv target.new target && echo \"$$COMPOSE_SECRETS_HOOK_PHASE\" >> phases \
             && [ \"$$COMPOSE_SECRETS_HOOK_PHASE\" != '{fail_on}' ]"
        )
    }

    fn hook_target(f: &Fixture) -> (String, Vec<String>) {
        let read = |n: &str| std::fs::read_to_string(f.dir.path().join(n)).unwrap_or_default();
        (
            read("target"),
            read("phases").lines().map(str::to_string).collect(),
        )
    }

    #[tokio::test]
    async fn a_rollback_runs_the_hook_again_with_the_previous_value() {
        let f = Fixture::new(Some(&recording_hook("never"))).await;
        f.engine
            .unhealthy
            .lock()
            .unwrap()
            .insert("proj-app-1".into(), 1);
        let mut record = f.rotate(Some("new-value-for-the-db")).await;
        let error = record.take_error().expect("rolled back");
        assert_eq!(error.exit_code(), 6, "{error}");
        assert_eq!(record.hook, Some(HookOutcome::RolledBack));
        let (target, phases) = hook_target(&f);
        assert_eq!(
            target, OLD,
            "the hook's target is back on the previous value"
        );
        assert_eq!(phases, ["rotate", "rollback"]);
        assert_eq!(f.latest().await.value.expose(), OLD);
        let last = f.audit().pop().unwrap();
        assert_eq!(last["outcome"], "rolled-back");
        assert_eq!(last["hook"], "rolled-back");
    }

    #[tokio::test]
    async fn a_refused_push_after_the_hook_puts_the_hook_back() {
        let f = Fixture::new(Some(&recording_hook("never"))).await;
        f.store.fail_sets(true);
        let mut record = f.rotate(Some("new-value-for-the-db")).await;
        let error = record.take_error().expect("failed");
        assert_eq!(record.outcome, Outcome::Failed);
        assert_eq!(error.exit_code(), crate::error::exit::VAULT, "{error}");
        let (target, phases) = hook_target(&f);
        assert_eq!(target, OLD);
        assert_eq!(phases, ["rotate", "rollback"]);
    }

    #[tokio::test]
    async fn a_hook_that_fails_its_rollback_is_a_failed_rollback_naming_it() {
        let f = Fixture::new(Some(&recording_hook("rollback"))).await;
        f.engine
            .unhealthy
            .lock()
            .unwrap()
            .insert("proj-app-1".into(), 1);
        let mut record = f.rotate(Some("new-value-for-the-db")).await;
        let error = record.take_error().expect("rollback failed");
        assert_eq!(error.exit_code(), 9, "{error}");
        assert!(error.to_string().contains("rotation hook"), "{error}");
        assert!(!error.to_string().contains("new-value-for-the-db"));
        assert_eq!(record.outcome, Outcome::RollbackFailed);
        assert_eq!(record.hook, Some(HookOutcome::RollbackFailed));
        // Everything else went back.
        assert_eq!(f.latest().await.value.expose(), OLD);
        assert_eq!(f.file(), OLD);
    }

    #[tokio::test]
    async fn every_transaction_writes_its_intent_before_it_pushes() {
        let f = Fixture::new(None).await;
        let mut record = f.rotate(None).await;
        assert!(record.take_error().is_none());
        let lines = f.audit();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["outcome"], "intent");
        assert_eq!(lines[0]["new_version"], serde_json::Value::Null);
        assert_eq!(lines[1]["outcome"], "ok");
        assert_eq!(
            f.state().audit_head.unwrap().mac,
            lines[1]["mac"].as_str().unwrap(),
            "the state keeps the chain's head"
        );
    }

    #[tokio::test]
    async fn the_dry_run_plan_names_containers_in_order() {
        let f = Fixture::new(None).await;
        let settings = Settings {
            restart: true,
            health_timeout: Duration::from_secs(1),
            stop_timeout: Duration::from_secs(1),
            hook_timeout: Duration::from_secs(1),
            hook_dir: PathBuf::new(),
            rotated_by: String::new(),
        };
        let items = describe(&f.plan(), &settings, "memory", false);
        let text: Vec<String> = items
            .iter()
            .map(|i| format!("{} {:?}", i.action, i.detail))
            .collect();
        assert!(text[0].starts_with("would-rotate"), "{text:?}");
        assert!(
            text.iter().any(|t| t.contains("proj-app-1 → proj-app-2")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("service worker: proj-worker-1")),
            "{text:?}"
        );
        assert!(!text.iter().any(|t| t.contains("other")), "{text:?}");
    }

    #[test]
    fn unknown_names_are_usage_errors_naming_them() {
        let manifest = Project {
            name: "p".into(),
            directory: PathBuf::new(),
            compose_files: vec![],
            files_read: vec![],
            env_files: vec![],
            config_files: vec![],
            variables: BTreeMap::new(),
            profiles: vec![],
            secrets: vec![],
            services: BTreeMap::new(),
        };
        let e = resolve_names(&manifest, &["nope".into()]).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::USAGE);
        assert!(e.to_string().contains("nope"));
    }

    #[test]
    fn ages() {
        assert_eq!(parse_age("90d").unwrap(), Duration::from_secs(90 * 86_400));
        assert_eq!(parse_age("12h").unwrap(), Duration::from_secs(12 * 3600));
        assert_eq!(parse_age("30m").unwrap(), Duration::from_secs(1800));
        for bad in ["", "d", "10", "10y", "-1d", "1.5d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn older_than_keeps_old_and_never_rotated() {
        let spec = |n: &str| SecretSpec {
            name: n.into(),
            vault_name: n.into(),
            env_key: n.to_uppercase(),
            generator: crate::generator::Generator::default(),
            source: SecretSource::File(PathBuf::from(n)),
            owner_uid: None,
            owner_gid: None,
            mode: 0o400,
            pinned_version: None,
            rotation_hook: None,
            hook_env: vec![],
            rotate_every: None,
            expiry_grace: None,
            uses: vec![],
            in_use: true,
        };
        let (a, b, c) = (spec("a"), spec("b"), spec("c"));
        let rotated = BTreeMap::from([
            ("a".into(), Some(1000)),
            ("b".into(), Some(9000)),
            ("c".into(), None),
        ]);
        let due = older_than(
            vec![&a, &b, &c],
            &rotated,
            Duration::from_secs(5000),
            10_000,
        );
        let names: Vec<&str> = due.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
    }

    #[test]
    fn stdin_values() {
        assert_eq!(read_value(&b"abc\n"[..]).unwrap().expose(), "abc");
        assert_eq!(read_value(&b"abc\n\n"[..]).unwrap().expose(), "abc\n");
        assert_eq!(read_value(&b"abc"[..]).unwrap().expose(), "abc");
        assert!(read_value(&b""[..]).is_err());
        assert!(read_value(&b"\n"[..]).is_err());
        assert!(read_value(&vec![b'a'; MAX_VALUE_BYTES + 1][..]).is_err());
        assert!(read_value(&vec![b'a'; MAX_VALUE_BYTES][..]).is_ok());
    }
}
