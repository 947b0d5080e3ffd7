//! The forward path of a transaction, after the new value is known: the file, the state, then
//! the containers one at a time, each gated on its health (or a swarm rolling update).

use super::{
    ContainerTarget, RotationRecord, Run, SecretPlan, ServiceTarget, Settings, IP_PLACEHOLDER,
};
use crate::deploy::replace::{Gate, Strategy};
use crate::deploy::{ContainerEngine, ContainerInfo};
use crate::error::{DockerFailure, Error, Result};
use crate::files::secret_dir::{Owner, SecretDir};
use crate::files::state::SecretState;
use crate::secret::SecretValue;
use crate::store::{FetchedSecret, VersionInfo};

/// How far the forward path got, so the rollback undoes exactly that. Each flag is set once
/// its step is known to have happened.
#[derive(Default)]
pub(super) struct Progress {
    pub file_written: bool,
    pub state_written: bool,
    /// Containers restarted so far (the failing one included), in order.
    pub restarted: Vec<String>,
    pub restarted_targets: Vec<(ContainerTarget, ServiceTarget)>,
}

/// A new value and where it goes: the secret's plan, its opened directory, and the version
/// the state records for it.
#[derive(Clone, Copy)]
pub(super) struct NewValue<'a> {
    pub plan: &'a SecretPlan,
    pub dir: &'a SecretDir,
    pub value: &'a SecretValue,
    pub version: &'a VersionInfo,
}

impl<'a> NewValue<'a> {
    /// A version set elsewhere, as fetched from the store (`sync`).
    pub fn fetched(plan: &'a SecretPlan, dir: &'a SecretDir, fetched: &'a FetchedSecret) -> Self {
        Self {
            plan,
            dir,
            value: &fetched.value,
            version: &fetched.info,
        }
    }
}

/// The forward path shared by `rotate` (after its push) and `sync` (with a version set
/// elsewhere): the file written atomically, the state recorded, then each container that
/// mounts the secret restarted and gated one at a time (or the swarm stack rolled out).
pub(super) async fn apply(
    run: &mut Run<'_>,
    next: &NewValue<'_>,
    record: &mut RotationRecord,
    progress: &mut Progress,
) -> Result<()> {
    write_file_and_state(run, next, record, progress)?;
    if !run.settings.restart {
        record.step(
            "not-restarted",
            "running containers keep the old value until their next start",
        );
        return Ok(());
    }
    if run.swarm.is_some() {
        return roll_out_swarm(run, next, record, progress).await;
    }
    for service in &next.plan.services {
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
        for (i, container) in service.containers.iter().enumerate() {
            if let Strategy::StartFirst(start_first) = &service.strategy {
                if i > 0 {
                    tokio::time::sleep(start_first.delay).await;
                }
                // Only a completed replacement is undone by the rollback: a failed one has
                // already removed its new container and never touched the old one.
                let new = replace_and_gate(engine, container, service, &run.settings).await?;
                record.step(
                    "replaced",
                    format!(
                        "service {} container {} → {}: healthy, the old one removed (start-first)",
                        service.service, container.name, new.name
                    ),
                );
                progress.restarted.push(new.name.clone());
                progress.restarted_targets.push((new, service.clone()));
                continue;
            }
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

/// The file written atomically, then the state recorded (the progress says which happened).
fn write_file_and_state(
    run: &mut Run<'_>,
    next: &NewValue<'_>,
    record: &mut RotationRecord,
    progress: &mut Progress,
) -> Result<()> {
    let (plan, dir, value) = (next.plan, next.dir, next.value);
    let spec = &plan.spec;
    let name = &plan.placement.file_name;
    let written = dir.write_atomic(
        name,
        value.expose_bytes(),
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
            .is_some_and(|st| *st.contents == *value.expose_bytes()),
    };
    written?;
    record.step(
        "written",
        format!(
            "{}, {:04o}",
            crate::loading::shown(&plan.placement, &run.settings.shown_from),
            spec.mode
        ),
    );

    run.state
        .record_written(&plan.placement.path, &value.fingerprint(&run.fingerprints));
    run.state.secrets.insert(
        spec.name.clone(),
        SecretState {
            version: next.version.version.clone(),
            updated: next.version.updated,
            fingerprint: value.fingerprint(&run.fingerprints),
            checked_at: crate::clock::unix_now(),
        },
    );
    run.save_state()?;
    progress.state_written = true;
    Ok(())
}

/// A swarm stack: a new swarm secret for the version, and a start-first rolling update of the
/// stack's services onto it (rolled back by Swarm itself on failure).
async fn roll_out_swarm(
    run: &Run<'_>,
    next: &NewValue<'_>,
    record: &mut RotationRecord,
    progress: &mut Progress,
) -> Result<()> {
    let Some(swarm) = &run.swarm else {
        return Ok(());
    };
    let (spec, value) = (&next.plan.spec, next.value);
    let fingerprint = value.fingerprint(&run.fingerprints);
    let version =
        crate::deploy::swarm::version_label_from(next.version.version.as_deref(), &fingerprint);
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
    Ok(())
}

/// Replace one container start-first (see `deploy::replace`); the new container, as a target.
pub(super) async fn replace_and_gate(
    engine: &dyn ContainerEngine,
    container: &ContainerTarget,
    service: &ServiceTarget,
    settings: &Settings,
) -> Result<ContainerTarget> {
    let Strategy::StartFirst(start_first) = &service.strategy else {
        restart_and_gate(engine, container, service, settings).await?;
        return Ok(container.clone());
    };
    let url_for = |info: &ContainerInfo| {
        service
            .health_url
            .as_ref()
            .map(|url| match info.ip_addresses.first() {
                Some(ip) => url.replace(IP_PLACEHOLDER, ip),
                None => url.clone(),
            })
    };
    let gate = Gate {
        health_timeout: settings.health_timeout,
        stop_timeout: settings.stop_timeout,
        health_url: &url_for,
    };
    let new = crate::deploy::replace::replace_one(engine, &container.id, start_first, &gate)
        .await
        .map_err(|e| {
            Error::within(
                format!("service {} container {}", service.service, container.name),
                e,
            )
        })?;
    Ok(ContainerTarget {
        id: new.id,
        name: new.name,
        number: new.number,
    })
}

/// Restart one container and wait until it is ready and its health check answers 2xx.
pub(super) async fn restart_and_gate(
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
    tracing::debug!(container = %container.name, "restarting");
    engine
        .restart(&container.id, settings.stop_timeout)
        .await
        .map_err(context)?;
    tracing::debug!(container = %container.name, "restarted; waiting until it is ready");
    let ready = crate::deploy::health::wait_container_ready(
        engine,
        &container.id,
        before.started_at.as_deref(),
        settings.health_timeout,
    )
    .await
    .map_err(context)?;
    tracing::debug!(container = %container.name, "ready");
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

/// The plan's directory, opened (and created when missing) below its root.
pub(super) fn open_dir(plan: &SecretPlan) -> Result<SecretDir> {
    let (dir, _) = SecretDir::open_below(&plan.root, &plan.placement.dir, true, plan.ours)?
        .ok_or_else(|| Error::Io {
            path: plan.placement.dir.clone(),
            action: "open directory",
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })?;
    dir.remove_orphaned_temps()?;
    Ok(dir)
}
