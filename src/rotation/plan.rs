//! The plan for one secret, resolved before anything changes: its store key, its file, and the
//! containers to restart in order.

use std::collections::BTreeMap;
use std::path::Path;

use super::{select::rotatable, Settings};
use crate::deploy::{labels, ContainerInfo};
use crate::error::{Error, Result};
use crate::manifest::{Manifest, SecretSpec};
use crate::output::ReportItem;

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
}

/// Everything the transaction for one secret needs, resolved before anything changes.
#[derive(Debug, Clone)]
pub struct SecretPlan {
    pub spec: SecretSpec,
    /// The secret's key in the store (vault name or `.env` key).
    pub store_key: String,
    /// File name directly inside the secrets directory.
    pub file_name: String,
    /// Every service that mounts the secret, in declaration order.
    pub services: Vec<ServiceTarget>,
}

/// Resolve the store key, file and (unless `containers` is `None`) the containers to restart.
///
/// `containers` is the project's container listing; each service that mounts the
/// secret gets its running containers in container-number order.
pub fn plan(
    manifest: &Manifest,
    specs: &[&SecretSpec],
    secrets_dir: &Path,
    remote: bool,
    containers: Option<&[ContainerInfo]>,
    health_url_override: Option<&str>,
) -> Result<Vec<SecretPlan>> {
    let file_names: BTreeMap<String, String> =
        manifest.file_names_in(secrets_dir)?.into_iter().collect();
    let mut plans = Vec::new();
    for spec in specs {
        rotatable(spec)?;
        check_owner(spec, secrets_dir)?;
        let file_name = file_names.get(&spec.name).cloned().ok_or_else(|| {
            Error::manifest(&spec.name, "has no file under the secrets directory")
        })?;
        let services = spec
            .services()
            .into_iter()
            .map(|service| {
                let (running, stopped) = containers
                    .map(|all| service_containers(all, &manifest.project_name, &service))
                    .unwrap_or_default();
                ServiceTarget {
                    listed: containers.is_some(),
                    health_url: health_url_override.map(str::to_string).or_else(|| {
                        manifest
                            .services
                            .get(&service)
                            .and_then(|s| s.health_url.clone())
                    }),
                    service,
                    containers: running,
                    stopped,
                }
            })
            .collect();
        plans.push(SecretPlan {
            spec: (*spec).clone(),
            store_key: if remote {
                spec.vault_name.clone()
            } else {
                spec.env_key.clone()
            },
            file_name,
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

/// Refuse, before anything changes, an owner the process cannot give (as `load` does).
fn check_owner(spec: &SecretSpec, secrets_dir: &Path) -> Result<()> {
    let euid = nix::unistd::Uid::effective();
    if euid.is_root() {
        return Ok(());
    }
    let egid = nix::unistd::Gid::effective().as_raw();
    let in_group = |g: u32| {
        g == egid
            || nix::unistd::getgroups()
                .map(|gs| gs.iter().any(|x| x.as_raw() == g))
                .unwrap_or(false)
    };
    if spec.owner_uid.is_some_and(|u| u != euid.as_raw())
        || spec.owner_gid.is_some_and(|g| !in_group(g))
    {
        return Err(Error::UnsafePath {
            path: secrets_dir.join(&spec.name),
            message: format!(
                "secret `{}` declares an owner that uid {euid} cannot give; run as root or as that user",
                spec.name
            ),
        });
    }
    Ok(())
}

/// The plan as report lines, for `--dry-run`: nothing is read from or written to the store.
pub fn describe(
    plan: &SecretPlan,
    settings: &Settings,
    store_describe: &str,
    from_stdin: bool,
) -> Vec<ReportItem> {
    let name = &plan.spec.name;
    let mut items = vec![ReportItem::new(name, "would-rotate").with_detail(format!(
        "new value from {}, pushed to `{}` in {store_describe}, file {}",
        if from_stdin {
            "stdin".to_string()
        } else {
            format!("generator {}", plan.spec.generator)
        },
        plan.store_key,
        plan.file_name
    ))];
    if let Some(hook) = &plan.spec.rotation_hook {
        items.push(ReportItem::new(name, "would-run-hook").with_detail(format!(
            "`{}` with the new value on stdin, before the push",
            hook.join(" ")
        )));
    }
    if !settings.restart {
        items
            .push(ReportItem::new(name, "would-not-restart").with_detail(
                "--no-restart: running containers keep the old value until restarted",
            ));
        return items;
    }
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
                "service {}: {} one at a time; {checks}",
                service.service,
                names.join(" → ")
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
