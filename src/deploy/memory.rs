//! In-memory twins of the Docker engine and a swarm, for tests: containers and services
//! that restart, converge or fail as scripted.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::swarm::{SecretMount, SwarmEngine, SwarmSecret, SwarmService};
use super::{labels, ContainerEngine, ContainerInfo};
use crate::error::{Error, Result};
use crate::secret::SecretValue;

/// In-memory engine for unit tests: containers, scripted restart failures and health.
#[derive(Default)]
pub struct MemoryEngine {
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    containers: Vec<ContainerInfo>,
    restarts: Vec<String>,
    clock: u64,
    fail_restart: Vec<String>,
    unhealthy_after_restart: Vec<String>,
    unreachable: bool,
    /// Local images by ID, each with its files by path.
    images: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Image names (tags) and the ID each points to: adding an image again is a rebuild.
    tags: BTreeMap<String, String>,
    /// Image IDs inspected, in order.
    inspected: Vec<String>,
    /// Containers created to read an image's files (never started, always removed).
    image_reads: usize,
    /// Containers made by `create_like` report `unhealthy` once started.
    unhealthy_replicas: bool,
    created: Vec<String>,
    removed: Vec<String>,
    /// `join_like` calls: (template, replica).
    joined: Vec<(String, String)>,
}

impl MemoryEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a running container of `project`/`service` with replica `number`; returns its id.
    pub fn add(&self, project: &str, service: &str, number: u32, healthcheck: bool) -> String {
        let mut inner = self.lock();
        inner.clock += 1;
        let id = format!("{project}-{service}-{number}");
        let labels = BTreeMap::from([
            (labels::PROJECT.to_string(), project.to_string()),
            (labels::SERVICE.to_string(), service.to_string()),
            (labels::NUMBER.to_string(), number.to_string()),
        ]);
        let started_at = stamp(inner.clock);
        inner.containers.push(ContainerInfo {
            id: id.clone(),
            name: format!("{project}_{service}_{number}"),
            project: project.to_string(),
            service: service.to_string(),
            number: Some(number),
            running: true,
            status: "running".into(),
            health: healthcheck.then(|| "healthy".to_string()),
            started_at: Some(started_at),
            labels,
            ..ContainerInfo::default()
        });
        id
    }

    /// Make restarts of this container fail.
    pub fn fail_restart(&self, id: &str) {
        self.lock().fail_restart.push(id.to_string());
    }

    /// After its next restart this container reports `unhealthy`.
    pub fn unhealthy_after_restart(&self, id: &str) {
        self.lock().unhealthy_after_restart.push(id.to_string());
    }

    /// Undo `fail_restart` and `unhealthy_after_restart`: its next restart succeeds healthy
    /// (a rollback putting back a good value).
    pub fn recover(&self, id: &str) {
        let mut inner = self.lock();
        inner.fail_restart.retain(|f| f != id);
        inner.unhealthy_after_restart.retain(|u| u != id);
    }

    /// Containers created from now on come up `unhealthy` (a rejected value).
    pub fn unhealthy_replicas(&self, unhealthy: bool) {
        self.lock().unhealthy_replicas = unhealthy;
    }

    /// Ids created by `create_like` and removed by `remove`, in order.
    pub fn created_and_removed(&self) -> (Vec<String>, Vec<String>) {
        let inner = self.lock();
        (inner.created.clone(), inner.removed.clone())
    }

    /// The replicas `join_like` gave their template's aliases, as (template, replica).
    pub fn joined(&self) -> Vec<(String, String)> {
        self.lock().joined.clone()
    }

    /// Behave like an engine that cannot be reached.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.lock().unreachable = unreachable;
    }

    /// Make `image` present locally, holding `files` (path, contents), under a new ID (as a
    /// rebuild gives it).
    pub fn add_image(&self, image: &str, files: &[(&str, &[u8])]) {
        let files = files
            .iter()
            .map(|(p, c)| ((*p).to_string(), c.to_vec()))
            .collect();
        let mut inner = self.lock();
        let id = format!("sha256:memory-{}", inner.images.len());
        inner.images.insert(id.clone(), files);
        inner.tags.insert(image.to_string(), id);
    }

    /// How many times an image was inspected for its ID.
    pub fn image_inspections(&self) -> usize {
        self.lock().inspected.len()
    }

    /// How many times an image's files were read (one throwaway container each).
    pub fn image_reads(&self) -> usize {
        self.lock().image_reads
    }

    /// Ids restarted so far, in order.
    pub fn restarts(&self) -> Vec<String> {
        self.lock().restarts.clone()
    }

    pub fn set_env(&self, id: &str, env: Vec<String>) {
        self.update(id, |c| c.env = env);
    }

    /// Change a container in place (health, state, IPs...), as the engine would on its own.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut ContainerInfo)) {
        if let Some(c) = self.lock().containers.iter_mut().find(|c| c.id == id) {
            change(c);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check_reachable(inner: &MemoryInner) -> Result<()> {
        if inner.unreachable {
            return Err(Error::Docker {
                kind: crate::error::DockerFailure::Unreachable,
                message: "Docker engine not reachable at memory://: unreachable. Start Docker or set DOCKER_HOST".into(),
            });
        }
        Ok(())
    }
}

fn stamp(clock: u64) -> String {
    format!(
        "2026-01-01T00:{:02}:{:02}.000000000Z",
        (clock / 60) % 60,
        clock % 60
    )
}

#[async_trait]
impl ContainerEngine for MemoryEngine {
    fn describe(&self) -> String {
        "memory://".into()
    }

    async fn ping(&self) -> Result<()> {
        Self::check_reachable(&self.lock())
    }

    async fn project_containers(&self, project: &str) -> Result<Vec<ContainerInfo>> {
        let inner = self.lock();
        Self::check_reachable(&inner)?;
        let mut out: Vec<ContainerInfo> = inner
            .containers
            .iter()
            .filter(|c| c.project == project)
            .cloned()
            .collect();
        out.sort_by(|a, b| (&a.service, a.number).cmp(&(&b.service, b.number)));
        Ok(out)
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        let inner = self.lock();
        Self::check_reachable(&inner)?;
        inner
            .containers
            .iter()
            .find(|c| c.id == id)
            .cloned()
            .ok_or_else(|| Error::Docker {
                kind: crate::error::DockerFailure::Other,
                message: format!("no such container: {id}"),
            })
    }

    async fn restart(&self, id: &str, _stop_timeout: Duration) -> Result<()> {
        let mut inner = self.lock();
        Self::check_reachable(&inner)?;
        if inner.fail_restart.iter().any(|f| f == id) {
            return Err(Error::Docker {
                kind: crate::error::DockerFailure::Other,
                message: format!("restart container {id}: engine answered 500: injected failure"),
            });
        }
        inner.clock += 1;
        let clock = inner.clock;
        let unhealthy = inner.unhealthy_after_restart.iter().any(|u| u == id);
        inner.restarts.push(id.to_string());
        let container = inner
            .containers
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(|| Error::Docker {
                kind: crate::error::DockerFailure::Other,
                message: format!("no such container: {id}"),
            })?;
        container.running = true;
        container.status = "running".into();
        container.started_at = Some(stamp(clock));
        if container.health.is_some() {
            container.health = Some(if unhealthy { "unhealthy" } else { "healthy" }.to_string());
        }
        Ok(())
    }

    async fn start(&self, id: &str) -> Result<()> {
        self.restart(id, Duration::ZERO).await
    }

    async fn create_like(
        &self,
        template: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<String> {
        let mut inner = self.lock();
        Self::check_reachable(&inner)?;
        let mut copy = inner
            .containers
            .iter()
            .find(|c| c.id == template)
            .cloned()
            .ok_or_else(|| Error::Docker {
                kind: crate::error::DockerFailure::Other,
                message: format!("no such container: {template}"),
            })?;
        if inner.containers.iter().any(|c| c.name == name) {
            return Err(Error::Docker {
                kind: crate::error::DockerFailure::Refused { status: 409 },
                message: format!("create container {name}: engine answered 409: name in use"),
            });
        }
        copy.labels
            .extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        copy.id = format!("{name}-id");
        copy.name = name.to_string();
        copy.number = copy.labels.get(labels::NUMBER).and_then(|n| n.parse().ok());
        copy.running = false;
        copy.status = "created".into();
        copy.started_at = None;
        if copy.health.is_some() {
            copy.health = Some("starting".into());
        }
        if inner.unhealthy_replicas {
            let id = copy.id.clone();
            inner.unhealthy_after_restart.push(id);
        }
        inner.created.push(copy.id.clone());
        inner.containers.push(copy.clone());
        Ok(copy.id)
    }

    async fn join_like(&self, template: &str, id: &str) -> Result<()> {
        let mut inner = self.lock();
        Self::check_reachable(&inner)?;
        inner.joined.push((template.to_string(), id.to_string()));
        Ok(())
    }

    async fn stop(&self, id: &str, _stop_timeout: Duration) -> Result<()> {
        let mut inner = self.lock();
        Self::check_reachable(&inner)?;
        if let Some(c) = inner.containers.iter_mut().find(|c| c.id == id) {
            c.running = false;
            c.status = "exited".into();
        }
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let mut inner = self.lock();
        Self::check_reachable(&inner)?;
        inner.containers.retain(|c| c.id != id);
        inner.removed.push(id.to_string());
        Ok(())
    }

    async fn image_id(&self, image: &str) -> Result<String> {
        let mut inner = self.lock();
        Self::check_reachable(&inner)?;
        let Some(id) = inner.tags.get(image).cloned() else {
            return Err(Error::docker(
                crate::error::DockerFailure::Refused { status: 404 },
                format!("image {image} is not present locally"),
            ));
        };
        inner.inspected.push(id.clone());
        Ok(id)
    }

    async fn image_files(
        &self,
        image: &str,
        paths: &[&str],
        limit: usize,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let mut inner = self.lock();
        Self::check_reachable(&inner)?;
        let id = inner.tags.get(image).map_or(image, String::as_str);
        let Some(files) = inner.images.get(id).cloned() else {
            return Err(Error::docker(
                crate::error::DockerFailure::Refused { status: 404 },
                format!("image {image} is not present locally"),
            ));
        };
        inner.image_reads += 1;
        paths
            .iter()
            .map(|p| match files.get(*p) {
                Some(c) if c.len() > limit => Err(Error::docker(
                    crate::error::DockerFailure::Other,
                    format!("{p} in image {image} is over {limit} bytes"),
                )),
                other => Ok(other.cloned()),
            })
            .collect()
    }
}

/// In-memory swarm for unit tests: services converge or fail as scripted.

#[derive(Default)]
struct Inner {
    secrets: Vec<(SwarmSecret, SecretValue)>,
    services: Vec<(SwarmService, Vec<SwarmService>)>,
    counter: u64,
    fail_updates: bool,
}

#[derive(Default)]
pub struct MemorySwarm {
    inner: Mutex<Inner>,
}

impl MemorySwarm {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make the next rolling updates fail (as a task failing its health check would).
    pub fn fail_updates(&self, fail: bool) {
        self.lock().fail_updates = fail;
    }

    pub fn add_service(&self, name: &str, mounts: Vec<SecretMount>) -> String {
        let mut inner = self.lock();
        inner.counter += 1;
        let id = format!("svc{}", inner.counter);
        inner.services.push((
            SwarmService {
                id: id.clone(),
                name: name.to_string(),
                secrets: mounts,
                update_state: None,
                update_message: None,
            },
            Vec::new(),
        ));
        id
    }

    pub fn secret_names(&self) -> Vec<String> {
        self.lock()
            .secrets
            .iter()
            .map(|(s, _)| s.name.clone())
            .collect()
    }

    /// What the swarm secret `name` holds, as a task mounting it would read it.
    pub fn secret_value(&self, name: &str) -> Option<SecretValue> {
        self.lock()
            .secrets
            .iter()
            .find(|(s, _)| s.name == name)
            .map(|(_, v)| v.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl SwarmEngine for MemorySwarm {
    async fn is_manager(&self) -> Result<bool> {
        Ok(true)
    }

    async fn stack_secrets(&self, stack: &str) -> Result<Vec<SwarmSecret>> {
        Ok(self
            .lock()
            .secrets
            .iter()
            .map(|(s, _)| s.clone())
            .filter(|s| s.belongs_to(stack))
            .collect())
    }

    async fn create_secret(
        &self,
        name: &str,
        value: &SecretValue,
        labels: &BTreeMap<String, String>,
    ) -> Result<SwarmSecret> {
        let mut inner = self.lock();
        if inner.secrets.iter().any(|(s, _)| s.name == name) {
            return Err(Error::Docker {
                kind: crate::error::DockerFailure::Other,
                message: format!("secret {name} already exists"),
            });
        }
        inner.counter += 1;
        let secret = SwarmSecret {
            id: format!("sec{}", inner.counter),
            name: name.to_string(),
            labels: labels.clone(),
        };
        inner.secrets.push((secret.clone(), value.clone()));
        Ok(secret)
    }

    async fn remove_secret(&self, id: &str) -> Result<()> {
        let mut inner = self.lock();
        if inner
            .services
            .iter()
            .any(|(s, _)| s.secrets.iter().any(|m| m.secret_id == id))
        {
            return Err(Error::Docker {
                kind: crate::error::DockerFailure::Other,
                message: format!("secret {id} is in use"),
            });
        }
        inner.secrets.retain(|(s, _)| s.id != id);
        Ok(())
    }

    async fn stack_services(&self, _stack: &str) -> Result<Vec<SwarmService>> {
        Ok(self
            .lock()
            .services
            .iter()
            .map(|(s, _)| s.clone())
            .collect())
    }

    async fn service(&self, id: &str) -> Result<SwarmService> {
        self.lock()
            .services
            .iter()
            .find(|(s, _)| s.id == id)
            .map(|(s, _)| s.clone())
            .ok_or_else(|| Error::Docker {
                kind: crate::error::DockerFailure::Other,
                message: format!("no service {id}"),
            })
    }

    async fn update_service_secrets(
        &self,
        service_id: &str,
        swaps: &[(String, SwarmSecret)],
        _monitor: Duration,
    ) -> Result<()> {
        let mut inner = self.lock();
        let fail = inner.fail_updates;
        let (service, history) = inner
            .services
            .iter_mut()
            .find(|(s, _)| s.id == service_id)
            .ok_or_else(|| Error::Docker {
                kind: crate::error::DockerFailure::Other,
                message: format!("no service {service_id}"),
            })?;
        if fail {
            // Swarm applies the spec, the new tasks fail, and it rolls back by itself.
            service.update_state = Some("rollback_completed".into());
            service.update_message = Some("update rolled back due to failure".into());
            return Ok(());
        }
        history.push(service.clone());
        for (old, new) in swaps {
            for m in service.secrets.iter_mut().filter(|m| &m.secret_id == old) {
                m.secret_id = new.id.clone();
                m.secret_name = new.name.clone();
            }
        }
        service.update_state = Some("completed".into());
        Ok(())
    }

    async fn rollback_service(&self, service_id: &str) -> Result<()> {
        let mut inner = self.lock();
        if let Some((service, history)) =
            inner.services.iter_mut().find(|(s, _)| s.id == service_id)
        {
            if let Some(previous) = history.pop() {
                *service = SwarmService {
                    update_state: Some("rollback_completed".into()),
                    ..previous
                };
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[tokio::test]
    async fn memory_engine_restarts_bump_started_at_in_order() {
        let engine = MemoryEngine::new();
        let a = engine.add("p", "web", 1, true);
        let b = engine.add("p", "web", 2, true);
        engine.add("other", "web", 1, false);
        let before = engine.inspect(&a).await.unwrap().started_at;
        engine.restart(&b, Duration::ZERO).await.unwrap();
        engine.restart(&a, Duration::ZERO).await.unwrap();
        assert_ne!(engine.inspect(&a).await.unwrap().started_at, before);
        assert_eq!(engine.restarts(), vec![b, a]);
        assert_eq!(engine.project_containers("p").await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn memory_engine_scripts_failures_and_unhealthy_restarts() {
        let engine = MemoryEngine::new();
        let a = engine.add("p", "web", 1, true);
        let b = engine.add("p", "web", 2, false);
        engine.fail_restart(&a);
        let err = engine.restart(&a, Duration::ZERO).await.unwrap_err();
        assert!(matches!(err, Error::Docker { .. }));
        assert!(err.to_string().contains(&a), "{err}");
        assert!(
            engine.restarts().is_empty(),
            "a refused restart is not recorded"
        );
        engine.unhealthy_after_restart(&b);
        engine.restart(&b, Duration::ZERO).await.unwrap();
        // Without a HEALTHCHECK there is no health to turn bad.
        assert_eq!(engine.inspect(&b).await.unwrap().health, None);
        engine.recover(&a);
        engine.restart(&a, Duration::ZERO).await.unwrap();
        assert_eq!(engine.restarts(), [b.clone(), a.clone()]);
        assert_eq!(
            engine.inspect(&a).await.unwrap().health.as_deref(),
            Some("healthy")
        );
        engine.set_unreachable(true);
        assert!(matches!(engine.ping().await, Err(Error::Docker { .. })));
        assert!(engine.project_containers("p").await.is_err());
    }
}
