//! Undoing a rotation that failed after its push: the store, the file and the state, the
//! hook's target, then the containers, each step recorded, and what could not be undone
//! named for the operator.

use std::collections::BTreeMap;

use super::apply::{replace_and_gate, Progress};
use super::hook::{self, Phase};
use super::{short, Previous, RotationRecord, Run, SecretPlan};
use crate::audit::{self, HookOutcome};
use crate::error::{DockerFailure, Error};
use crate::files::secret_dir::{Owner, SecretDir};
use crate::store::{tags, NewVersion, VersionInfo};

/// Undo what `apply` did, in the order a consumer needs it: the store, the file and the state,
/// then the hook's target, then the containers onto the previous value. Returns what could not
/// be undone (empty: fully rolled back).
#[allow(clippy::too_many_arguments)]
pub(super) async fn roll_back(
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
    restore_store(run, plan, previous, pushed, record, &mut left).await;
    restore_local(run, plan, dir, previous, progress, record, &mut left);
    if hook_ran {
        roll_back_hook(run, plan, previous, record, &mut left).await;
    }
    restart_back(run, progress, record, &mut left).await;
    left
}

/// The store: the previous value becomes the current version again (with the previous
/// version's expiry). With no previous version, the previous file's contents are what the
/// containers ran with.
async fn restore_store(
    run: &Run<'_>,
    plan: &SecretPlan,
    previous: &Previous,
    pushed: &VersionInfo,
    record: &mut RotationRecord,
    left: &mut Vec<String>,
) {
    let new_version = pushed.version.clone().unwrap_or_default();
    match previous.value() {
        Some(old) => {
            let rollback = NewVersion {
                tags: BTreeMap::from([
                    (tags::ROTATED_AT.to_string(), audit::now_rfc3339()),
                    (
                        tags::ROTATED_BY.to_string(),
                        run.settings.rotated_by.clone(),
                    ),
                    (tags::ROLLBACK_OF.to_string(), new_version.clone()),
                    (tags::PREVIOUS_VERSION.to_string(), new_version.clone()),
                ]),
                expires: previous.expires(),
            };
            match run
                .store
                .set_version(&plan.store_key, &old, &rollback)
                .await
            {
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
}

/// The file and the state entry, back to what they were before `apply`.
pub(super) fn restore_local(
    run: &mut Run<'_>,
    plan: &SecretPlan,
    dir: &SecretDir,
    previous: &Previous,
    progress: &Progress,
    record: &mut RotationRecord,
    left: &mut Vec<String>,
) {
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
            Ok(()) => {
                // The file holds what compose-secrets just put back, not the new value: later
                // loads and prunes compare the file with this.
                match &previous.file {
                    Some(f) => run.state.record_written(
                        &plan.placement.path,
                        &run.fingerprints.fingerprint(&f.contents),
                    ),
                    None => {
                        run.state.written.remove(&plan.placement.path);
                    }
                }
                record.step("file-restored", path);
            }
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
}

/// The same containers, in the same order, back onto the previous file.
pub(super) async fn restart_back(
    run: &Run<'_>,
    progress: &Progress,
    record: &mut RotationRecord,
    left: &mut Vec<String>,
) {
    if let Some(engine) = run.engine {
        for (container, service) in &progress.restarted_targets {
            let name = &container.name;
            record.restarted.push(name.clone());
            match replace_and_gate(engine, container, service, &run.settings).await {
                Ok(back) if back.id != container.id => record.step(
                    "replaced-back",
                    format!(
                        "service {} container {name} → {}: healthy on the previous value (start-first)",
                        service.service, back.name
                    ),
                ),
                Ok(_) => record.step(
                    "restarted-back",
                    format!("service {} container {name}: healthy", service.service),
                ),
                Err(e) => left.push(container_left_behind(name, &e)),
            }
        }
    }
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
pub(super) async fn roll_back_hook(
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
