//! Where containers run: the Compose containers of a project and the services of a Swarm stack.
//!
//! Everything outside `deploy::docker` sees containers through [`ContainerEngine`] and swarms
//! through [`swarm::SwarmEngine`]; `deploy::docker` and its submodules are the only ones that
//! import bollard, and the in-memory twins in `deploy::memory` stand in for tests.

pub mod docker;
pub mod health;
#[cfg(test)]
pub mod memory;
pub mod replace;
pub mod swarm;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

pub use docker::DockerEngine;

use crate::error::{Error, Result};
use swarm::SwarmEngine as _;

/// Compose's labels on the containers it creates.
pub mod labels {
    pub const PROJECT: &str = "com.docker.compose.project";
    pub const SERVICE: &str = "com.docker.compose.service";
    pub const NUMBER: &str = "com.docker.compose.container-number";
    /// On a container compose-secrets started in place of another: the one it replaces.
    pub const REPLACES: &str = "io.compose-secrets.replaces";
}

/// What compose-secrets needs to know about one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub project: String,
    pub service: String,
    pub number: Option<u32>,
    pub running: bool,
    pub status: String,
    /// `healthy`, `unhealthy` or `starting`; `None` when the container has no HEALTHCHECK.
    pub health: Option<String>,
    /// `State.StartedAt`, RFC 3339 as Docker reports it.
    pub started_at: Option<String>,
    pub image: String,
    pub user: String,
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub command: Vec<String>,
    pub ip_addresses: Vec<String>,
}

#[async_trait]
pub trait ContainerEngine: Send + Sync {
    /// Where the engine is (tests check the endpoint a connection names).
    #[cfg(any(test, feature = "testing"))]
    fn describe(&self) -> String;

    /// Fail fast, naming the endpoint, when the engine cannot be reached.
    async fn ping(&self) -> Result<()>;

    /// Every container of a Compose project (any state), inspected, by service then number.
    async fn project_containers(&self, project: &str) -> Result<Vec<ContainerInfo>>;

    async fn inspect(&self, id: &str) -> Result<ContainerInfo>;

    async fn restart(&self, id: &str, stop_timeout: Duration) -> Result<()>;

    async fn start(&self, id: &str) -> Result<()>;

    /// A local image's ID (its content digest, `sha256:…`): a rebuilt image has a new one. A
    /// missing image is an error ([`DockerFailure::Refused`] 404); nothing is pulled.
    ///
    /// [`DockerFailure::Refused`]: crate::error::DockerFailure::Refused
    async fn image_id(&self, image: &str) -> Result<String>;

    /// Files of a local image, without running it: each of `paths`' contents (`None` where
    /// the image has no such file), at most `limit` bytes each. A missing image is an error
    /// ([`DockerFailure::Refused`] 404); nothing is pulled.
    ///
    /// [`DockerFailure::Refused`]: crate::error::DockerFailure::Refused
    async fn image_files(
        &self,
        image: &str,
        paths: &[&str],
        limit: usize,
    ) -> Result<Vec<Option<Vec<u8>>>>;

    /// Create (not start) a container configured as `template` is (image, command,
    /// environment, mounts, host config, networks), named `name`, with `labels` set over the
    /// template's; on its networks it answers to its own name only (see `join_like`).
    /// Returns the new container's id.
    async fn create_like(
        &self,
        template: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<String>;

    /// Give container `id` the network aliases `template` has (the service's name among
    /// them), `template`'s own name replaced by `id`'s: until then, a container made by
    /// `create_like` answers only to its own name.
    async fn join_like(&self, template: &str, id: &str) -> Result<()>;

    /// Stop a container (SIGTERM, then SIGKILL after `stop_timeout`).
    async fn stop(&self, id: &str, stop_timeout: Duration) -> Result<()>;

    /// Remove a container, stopping it first if it still runs; one already gone is no error.
    async fn remove(&self, id: &str) -> Result<()>;
}

/// Where containers run: plain Compose, a Swarm stack, or whichever the engine shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Auto,
    Compose,
    Swarm,
}

impl Target {
    /// The words `--target` and `COMPOSE_SECRETS_TARGET` take.
    pub const NAMES: [&'static str; 3] = ["auto", "compose", "swarm"];

    pub fn parse(text: &str) -> Option<Target> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Target::Auto),
            "compose" => Some(Target::Compose),
            "swarm" => Some(Target::Swarm),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::Auto => "auto",
            Target::Compose => "compose",
            Target::Swarm => "swarm",
        }
    }
}

/// Whether to act on a swarm: `Swarm` insists, `Auto` looks for a manager running the stack.
pub async fn detect_swarm(choice: Target, stack: &str) -> Result<Option<DockerEngine>> {
    if choice == Target::Compose {
        return Ok(None);
    }
    let probe = async {
        let engine = DockerEngine::connect()?;
        engine.ping().await?;
        let manager = engine.is_manager().await?;
        let deployed = manager && !engine.stack_services(stack).await?.is_empty();
        Ok::<_, Error>((engine, manager, deployed))
    };
    match (choice, probe.await) {
        (Target::Swarm, Ok((engine, true, _))) => Ok(Some(engine)),
        (Target::Swarm, Ok((_, false, _))) => Err(Error::Docker {
            kind: crate::error::DockerFailure::Other,
            message: "--target swarm: this Docker engine is not a swarm manager (docker swarm init, or use a manager's DOCKER_HOST)".into(),
        }),
        (Target::Swarm, Err(e)) => Err(e),
        (_, Ok((engine, _, true))) => Ok(Some(engine)),
        (_, Ok(_)) => Ok(None),
        (_, Err(e)) => {
            tracing::debug!("swarm detection skipped: {e}");
            Ok(None)
        }
    }
}
