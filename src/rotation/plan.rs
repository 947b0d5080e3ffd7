//! The plan for one secret, resolved before anything changes: its store key, its file, and the
//! containers to restart in order.

use std::path::PathBuf;

use super::{select::rotatable, Settings};
use crate::compose::{Project, SecretSpec};
use crate::deploy::replace::Strategy;
use crate::deploy::{labels, ContainerInfo};
use crate::error::{Error, Result};
use crate::files::layout::{check_owners, Layout, Placement};
use crate::output::ReportItem;
use crate::store::SecretStore;

/// One container to restart, as listed before anything changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerTarget {
    pub id: String,
    pub name: String,
    pub number: Option<u32>,
}

/// A service that mounts the secret and what restarting it involves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTarget {
    pub service: String,
    /// Running containers, in container-number order: restarted in this order.
    pub containers: Vec<ContainerTarget>,
    /// Stopped containers: not started by a rotation, they read the new file when started.
    pub stopped: Vec<String>,
    /// Whether the containers were listed (a dry run without Docker cannot list them).
    pub listed: bool,
    pub health_url: Option<String>,
    /// Restart, or start-first replacement (`deploy.update_config.order: start-first`).
    pub strategy: Strategy,
}

/// Everything the transaction for one secret needs, resolved before anything changes.
#[derive(Debug, Clone)]
pub struct SecretPlan {
    pub spec: SecretSpec,
    /// The secret's key in the store (vault name or `.env` key).
    pub store_key: String,
    /// Its file.
    pub placement: Placement,
    /// The directory its directory is opened below, and whether it is compose-secrets' own.
    pub root: PathBuf,
    pub ours: bool,
    /// Every service that mounts the secret, in declaration order.
    pub services: Vec<ServiceTarget>,
}

/// Resolve the store key, file and (unless `containers` is `None`) the containers to restart.
///
/// `containers` is the project's container listing; each service that mounts the
/// secret gets its running containers in container-number order.
pub fn plan(
    project: &Project,
    layout: &Layout,
    store: &dyn SecretStore,
    specs: &[&SecretSpec],
    containers: Option<&[ContainerInfo]>,
    health_url_override: Option<&str>,
) -> Result<Vec<SecretPlan>> {
    for spec in specs {
        rotatable(spec)?;
    }
    check_owners(specs.iter().copied())?;
    let mut plans = Vec::new();
    for spec in specs {
        let placement = layout
            .of(&spec.name)
            .cloned()
            .ok_or_else(|| Error::manifest(&spec.name, "has no file to rotate"))?;
        let services = spec
            .services()
            .into_iter()
            .map(|service| {
                let (running, stopped) = containers
                    .map(|all| service_containers(all, &project.name, &service))
                    .unwrap_or_default();
                let model = project.services.get(&service);
                Ok(ServiceTarget {
                    listed: containers.is_some(),
                    health_url: health_url_override
                        .map(str::to_string)
                        .or_else(|| model.and_then(|s| s.health_url.clone())),
                    strategy: model.map_or(Ok(Strategy::Restart), |m| {
                        Strategy::of(&service, m.update.as_ref(), &m.singletons)
                    })?,
                    service,
                    containers: running,
                    stopped,
                })
            })
            .collect::<Result<_>>()?;
        plans.push(SecretPlan {
            spec: (*spec).clone(),
            store_key: store.key_for(spec),
            root: layout.root_for(&placement.dir),
            ours: layout.is_ours(&placement.dir),
            placement,
            services,
        });
    }
    Ok(plans)
}

/// A service's containers in this project: (running, in number order; names of stopped ones).
pub fn service_containers(
    all: &[ContainerInfo],
    project: &str,
    service: &str,
) -> (Vec<ContainerTarget>, Vec<String>) {
    let mut mine: Vec<&ContainerInfo> = all
        .iter()
        .filter(|c| {
            let label = |k: &str| c.labels.get(k).map(String::as_str);
            (c.project == project || label(labels::PROJECT) == Some(project))
                && (c.service == service || label(labels::SERVICE) == Some(service))
        })
        .collect();
    mine.sort_by(|a, b| {
        a.number
            .unwrap_or(u32::MAX)
            .cmp(&b.number.unwrap_or(u32::MAX))
            .then_with(|| a.name.cmp(&b.name))
    });
    let running = mine
        .iter()
        .filter(|c| c.running)
        .map(|c| ContainerTarget {
            id: c.id.clone(),
            name: c.name.clone(),
            number: c.number,
        })
        .collect();
    let stopped = mine
        .iter()
        .filter(|c| !c.running)
        .map(|c| c.name.clone())
        .collect();
    (running, stopped)
}

/// The plan as report lines, for `--dry-run`: nothing is read from or written to the store.
pub fn describe(
    plan: &SecretPlan,
    settings: &Settings,
    store_describe: &str,
    from_stdin: bool,
) -> Vec<ReportItem> {
    let name = &plan.spec.name;
    let store = crate::output::shown_path(store_describe, &settings.shown_from);
    let mut items = vec![ReportItem::new(name, "would-rotate").with_detail(format!(
        "new value from {}, pushed to {}, file {}",
        if from_stdin {
            "stdin".to_string()
        } else {
            format!("generator {}", plan.spec.generator)
        },
        crate::compose::names::key_in(name, &plan.store_key, &store),
        crate::loading::shown(&plan.placement, &settings.shown_from)
    ))];
    if let Some(hook) = &plan.spec.rotation_hook {
        items.push(ReportItem::new(name, "would-run-hook").with_detail(format!(
            "`{}` with the new value on stdin, before the push",
            hook.join(" ")
        )));
    }
    if !settings.restart {
        items.push(
            ReportItem::new(name, "would-not-restart")
                .with_detail("running containers keep the old value until their next start"),
        );
        return items;
    }
    items.extend(describe_restarts(plan));
    items
}

/// The restarts a plan makes, one line per service, for a dry run.
pub fn describe_restarts(plan: &SecretPlan) -> Vec<ReportItem> {
    let name = &plan.spec.name;
    let mut items = Vec::new();
    for service in &plan.services {
        let checks = health_description(service);
        let detail = if !service.listed {
            format!(
                "service {}: containers unknown (Docker not reachable); {checks}",
                service.service
            )
        } else if service.containers.is_empty() {
            format!("service {}: no running container", service.service)
        } else {
            let names: Vec<&str> = service.containers.iter().map(|c| c.name.as_str()).collect();
            format!(
                "service {}: {} one at a time, {}; {checks}",
                service.service,
                names.join(" → "),
                service.strategy.describe()
            )
        };
        items.push(ReportItem::new(name, "would-restart").with_detail(detail));
        if !service.stopped.is_empty() {
            items.push(ReportItem::new(name, "stopped").with_detail(format!(
                "service {}: {} not running, not started",
                service.service,
                service.stopped.join(", ")
            )));
        }
    }
    items
}

fn health_description(service: &ServiceTarget) -> String {
    match &service.health_url {
        Some(url) => format!(
            "health: running + new StartedAt + Docker healthcheck, then GET {url} until 2xx"
        ),
        None => "health: running + new StartedAt + Docker healthcheck (no health URL)".into(),
    }
}
