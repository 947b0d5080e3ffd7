//! Start-first replacement on plain Compose: a new container of the service, configured and
//! labelled as Compose's own, started beside the old one, gated, and only then the old one
//! stopped and removed; and the leftovers of a replacement a crash interrupted.
//!
//! A file secret is a bind mount of the host file, replaced by rename: a container started
//! after the rename mounts the new file while one started before keeps the old inode. So the
//! new container reads the new value while the old one keeps serving the old, and a client
//! behind a proxy sees no gap. Compose's `up` recognises the new container as its own: same
//! project, service and config-hash labels, the next container number, the name Compose
//! would give it, and the same network aliases.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{labels, ContainerEngine, ContainerInfo};
use crate::compose::update::{Singleton, UpdateConfig};
use crate::error::{Error, Result};
use crate::output::{Report, ReportItem};

/// How a rotation puts a service's containers onto the new file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Stop, then start (`docker restart`): a gap while the container is down.
    #[default]
    Restart,
    /// `deploy.update_config.order: start-first`: a new container before the old one goes.
    StartFirst(StartFirst),
}

/// `deploy.update_config` as start-first replacement honours it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartFirst {
    /// The new container must stay running and healthy this long after its gate passed.
    pub monitor: Duration,
    /// The pause between two containers of the service.
    pub delay: Duration,
}

impl Strategy {
    /// The strategy a service's model asks for; a start-first service that cannot run twice
    /// (`container_name`, a fixed host port) is refused, naming the key.
    pub fn of(
        service: &str,
        update: Option<&UpdateConfig>,
        singletons: &[Singleton],
    ) -> Result<Self> {
        let Some(update) = update.filter(|u| u.start_first) else {
            return Ok(Strategy::Restart);
        };
        if let Some(key) = singletons.first() {
            return Err(Error::Usage(format!(
                "service `{service}`: `deploy.update_config.order: start-first` needs a second \
                 container beside the first, and {key} allows only one. Remove it and publish the \
                 service through a reverse proxy that reaches it on the Compose network (as \
                 docker-rollout's README explains), or use `order: stop-first`"
            )));
        }
        Ok(Strategy::StartFirst(StartFirst {
            monitor: update.monitor.unwrap_or_default(),
            delay: update.delay.unwrap_or_default(),
        }))
    }

    /// For reports and `--dry-run`.
    pub fn describe(&self) -> String {
        match self {
            Strategy::Restart => "restart (stop-first)".into(),
            Strategy::StartFirst(s) => {
                let mut text =
                    "start-first (new container, gated, then the old one removed".to_string();
                if !s.monitor.is_zero() {
                    text.push_str(&format!("; monitor {}s", s.monitor.as_secs_f32()));
                }
                if !s.delay.is_zero() {
                    text.push_str(&format!("; delay {}s", s.delay.as_secs_f32()));
                }
                text.push(')');
                text
            }
        }
    }
}

/// The name and labels of the container that replaces `old`: the service's next container
/// number (above every container of the service, stopped ones included), the name Compose
/// gives that number, and the old one's id for crash recovery.
pub fn replica_identity(
    old: &ContainerInfo,
    siblings: &[ContainerInfo],
) -> (String, BTreeMap<String, String>) {
    let project = old.labels.get(labels::PROJECT).unwrap_or(&old.project);
    let service = old.labels.get(labels::SERVICE).unwrap_or(&old.service);
    let next = siblings
        .iter()
        .filter(|c| c.labels.get(labels::SERVICE) == Some(service))
        .filter_map(|c| c.number)
        .chain(old.number)
        .max()
        .unwrap_or(0)
        + 1;
    // Compose v2 joins with `-`; v1-era containers used `_`: follow the old container.
    let separator = if old.name == format!("{project}_{service}_{}", old.number.unwrap_or(0)) {
        '_'
    } else {
        '-'
    };
    let name = format!("{project}{separator}{service}{separator}{next}");
    let labels = BTreeMap::from([
        (labels::NUMBER.to_string(), next.to_string()),
        (labels::REPLACES.to_string(), old.id.clone()),
    ]);
    (name, labels)
}

/// How long the old container keeps serving after the replica joined the service's aliases.
const JOIN_SETTLE: Duration = Duration::from_secs(2);

/// What gates a new container: readiness, then (when the service has one) its HTTP check at
/// the address `health_url` gives for it.
pub struct Gate<'a> {
    pub health_timeout: Duration,
    pub stop_timeout: Duration,
    pub health_url: &'a (dyn Fn(&ContainerInfo) -> Option<String> + Sync),
}

/// Replace `old_id` start-first: create and start the replica, gate it (and watch it for
/// `monitor`), then stop and remove the old container. On any failure before the old one is
/// stopped, the replica is removed and the old container was never touched.
pub async fn replace_one(
    engine: &dyn ContainerEngine,
    old_id: &str,
    strategy: &StartFirst,
    gate: &Gate<'_>,
) -> Result<ContainerInfo> {
    let old = engine.inspect(old_id).await?;
    let siblings = engine.project_containers(&old.project).await?;
    let (name, labels) = replica_identity(&old, &siblings);
    tracing::debug!(old = %old.name, new = %name, "start-first: creating the replacement");
    let id = engine.create_like(&old.id, &name, &labels).await?;
    let started = start_and_gate(engine, &old.id, &id, strategy, gate).await;
    let new = match started {
        Ok(new) => new,
        Err(e) => {
            let removed = engine.remove(&id).await;
            let what = match removed {
                Ok(()) => format!("new container {name} removed; {} kept serving, untouched", old.name),
                Err(r) => format!(
                    "new container {name} could NOT be removed ({r}): remove it (`docker rm -f {name}`); {} kept serving, untouched",
                    old.name
                ),
            };
            return Err(Error::within(format!("start-first: {what}"), e));
        }
    };
    tracing::debug!(old = %old.name, new = %new.name, "start-first: healthy; removing the old container");
    engine.stop(&old.id, gate.stop_timeout).await.map_err(|e| {
        Error::within(
            format!(
                "start-first: {} is serving the new value but {} could not be stopped",
                new.name, old.name
            ),
            e,
        )
    })?;
    engine.remove(&old.id).await?;
    Ok(new)
}

/// Start the replica hidden (its own name its only alias), gate and monitor it, then give it
/// the service's aliases, so a client behind a proxy never reaches a replica that failed.
async fn start_and_gate(
    engine: &dyn ContainerEngine,
    old: &str,
    id: &str,
    strategy: &StartFirst,
    gate: &Gate<'_>,
) -> Result<ContainerInfo> {
    engine.start(id).await?;
    let ready = super::health::wait_container_ready(engine, id, None, gate.health_timeout).await?;
    if let Some(url) = (gate.health_url)(&ready) {
        super::health::wait_http_healthy(&url, gate.health_timeout).await?;
    }
    if !strategy.monitor.is_zero() {
        monitor(engine, id, strategy.monitor).await?;
    }
    engine.join_like(old, id).await?;
    // Joining again made a new endpoint: the check answers there before the old one goes.
    let joined = engine.inspect(id).await?;
    if let Some(url) = (gate.health_url)(&joined) {
        super::health::wait_http_healthy(&url, gate.health_timeout).await?;
    }
    // The host reaches the new endpoint at once, its peers not: a proxy's connects to it timed
    // out for up to ~1 s after the join (measured, BENCHMARKS.md). While the old container
    // still answers, a proxy that retries sends those requests there; stopped at once, the
    // old one's address timed out too and the client got a 502.
    tokio::time::sleep(JOIN_SETTLE).await;
    Ok(joined)
}

/// Watch a container that passed its gate: it must stay running and not turn unhealthy.
async fn monitor(engine: &dyn ContainerEngine, id: &str, period: Duration) -> Result<()> {
    let until = tokio::time::Instant::now() + period;
    loop {
        let info = engine.inspect(id).await?;
        if !info.running || info.health.as_deref() == Some("unhealthy") {
            return Err(Error::Health {
                message: format!(
                    "container {} failed within the monitor period of {}s (status {}, health {})",
                    info.name,
                    period.as_secs_f32(),
                    info.status,
                    info.health.as_deref().unwrap_or("none")
                ),
            });
        }
        if tokio::time::Instant::now() >= until {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250).min(period)).await;
    }
}

/// A replacement a crash interrupted: `replica` was made to replace `replaced`, and both exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub replica: String,
    pub replica_id: String,
    pub replaced: String,
    pub replaced_id: String,
    /// The old container still runs: the replica was never confirmed, so it goes. Otherwise the
    /// old one was already stopped after the replica passed its gate: the old one goes.
    pub replaced_running: bool,
}

impl Leftover {
    /// The container this leftover's clean-up removes: (id, name).
    pub fn extra(&self) -> (&str, &str) {
        if self.replaced_running {
            (&self.replica_id, &self.replica)
        } else {
            (&self.replaced_id, &self.replaced)
        }
    }

    pub fn describe(&self) -> String {
        if self.replaced_running {
            format!(
                "container {} is an unconfirmed start-first replacement of {} (interrupted); the next rotate, sync or load removes it",
                self.replica, self.replaced
            )
        } else {
            format!(
                "container {} was stopped by an interrupted start-first replacement ({} replaced it); the next rotate, sync or load removes it",
                self.replaced, self.replica
            )
        }
    }
}

/// The interrupted replacements among a project's containers.
pub fn leftovers(containers: &[ContainerInfo]) -> Vec<Leftover> {
    containers
        .iter()
        .filter_map(|replica| {
            let replaced_id = replica.labels.get(labels::REPLACES)?;
            let replaced = containers.iter().find(|c| &c.id == replaced_id)?;
            Some(Leftover {
                replica: replica.name.clone(),
                replica_id: replica.id.clone(),
                replaced: replaced.name.clone(),
                replaced_id: replaced.id.clone(),
                replaced_running: replaced.running,
            })
        })
        .collect()
}

/// Finish what an interrupted replacement left: remove the one extra container of each.
/// Returns what was removed, for the report.
#[cfg(test)]
pub async fn settle(engine: &dyn ContainerEngine, project: &str) -> Result<Vec<Leftover>> {
    let found = leftovers(&engine.project_containers(project).await?);
    for leftover in &found {
        engine.remove(leftover.extra().0).await?;
    }
    Ok(found)
}

/// What `load`, `rotate` and `sync` do first: settle the project's interrupted
/// replacements, each one a report line. Best effort: without a reachable engine there is
/// nothing to settle now (`verify` keeps naming them), and a container that will not go is
/// reported, not fatal, since the run changes no container of it.
pub async fn settle_reported(project: &str, report: &mut Report) {
    let Ok(engine) = super::DockerEngine::connect() else {
        return;
    };
    if let Err(e) = engine.ping().await {
        tracing::debug!("interrupted replacements not checked: {e}");
        return;
    }
    let found = match engine.project_containers(project).await {
        Ok(containers) => leftovers(&containers),
        Err(e) => {
            tracing::debug!("interrupted replacements not checked: {e}");
            return;
        }
    };
    for leftover in found {
        let (id, name) = leftover.extra();
        let item = match engine.remove(id).await {
            Ok(()) => ReportItem::new(name, "removed").with_detail(format!(
                "left by an interrupted start-first replacement ({} replaced {})",
                leftover.replica, leftover.replaced
            )),
            Err(e) => ReportItem::new(name, "not-removed")
                .with_detail(format!("{}; removing it failed: {e}", leftover.describe())),
        };
        report.push(item);
    }
}

#[cfg(test)]
mod tests;
