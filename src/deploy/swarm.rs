//! Docker Swarm target: versioned, immutable swarm secrets and rotation by rolling service update.
//!
//! Swarm secrets cannot be changed, only replaced, so every value gets its own
//! secret named `<stack>_<name>_<version>` and labelled with the source version.
//! A rotation creates the new secret, points every service of the stack that
//! mounted the old one at it (same target, uid, gid and mode) with a
//! start-first rolling update that Swarm rolls back by itself on failure, waits
//! for the update to converge, and only then removes the old secret.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::secret::SecretValue;

/// Labels compose-secrets puts on the swarm secrets it creates.
pub mod labels {
    /// Set by `docker stack deploy`; we set it too so `docker stack rm` sees our secrets.
    pub const STACK: &str = "com.docker.stack.namespace";
    pub const SECRET: &str = "com.compose-secrets.secret";
    pub const VERSION: &str = "com.compose-secrets.version";
}

/// How long Swarm watches a task after an update before calling it healthy.
pub const MONITOR: std::time::Duration = std::time::Duration::from_secs(5);
/// How long `load` waits for a service's rolling update onto a new version.
pub const LOAD_ROLLOUT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(240);

/// Docker limits secret names to 64 characters.
const MAX_SECRET_NAME: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmSecret {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl SwarmSecret {
    /// Whether the stack owns it: its label says so, or `docker stack deploy`'s naming does.
    pub fn belongs_to(&self, stack: &str) -> bool {
        self.labels.get(labels::STACK).map(String::as_str) == Some(stack)
            || self.name.starts_with(&format!("{stack}_"))
    }

    /// The compose secret this swarm secret holds a version of, if we can tell.
    pub fn secret_name(&self, stack: &str) -> Option<String> {
        if let Some(name) = self.labels.get(labels::SECRET) {
            return Some(name.clone());
        }
        // `docker stack deploy` names file secrets `<stack>_<name>` with no version.
        self.name
            .strip_prefix(&format!("{stack}_"))
            .map(str::to_string)
    }

    pub fn version(&self) -> Option<&str> {
        self.labels.get(labels::VERSION).map(String::as_str)
    }
}

/// One secret mounted into a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMount {
    pub secret_id: String,
    pub secret_name: String,
    /// File name under /run/secrets.
    pub target: String,
    pub uid: String,
    pub gid: String,
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmService {
    pub id: String,
    pub name: String,
    pub secrets: Vec<SecretMount>,
    /// `UpdateStatus.State`: updating, completed, paused, rollback_started, rollback_completed, …
    pub update_state: Option<String>,
    pub update_message: Option<String>,
}

#[async_trait]
pub trait SwarmEngine: Send + Sync {
    /// Whether the engine is a manager of an active swarm.
    async fn is_manager(&self) -> Result<bool>;

    /// Secrets that belong to the stack (by label or by the `<stack>_` name prefix).
    async fn stack_secrets(&self, stack: &str) -> Result<Vec<SwarmSecret>>;

    async fn create_secret(
        &self,
        name: &str,
        value: &SecretValue,
        labels: &BTreeMap<String, String>,
    ) -> Result<SwarmSecret>;

    async fn remove_secret(&self, id: &str) -> Result<()>;

    /// Services of the stack (label `com.docker.stack.namespace`).
    async fn stack_services(&self, stack: &str) -> Result<Vec<SwarmService>>;

    async fn service(&self, id: &str) -> Result<SwarmService>;

    /// Swap secret mounts (old secret id → new secret, same target/uid/gid/mode) and roll the
    /// service: order start-first, the given monitor period, `failure_action: rollback`.
    async fn update_service_secrets(
        &self,
        service_id: &str,
        swaps: &[(String, SwarmSecret)],
        monitor: Duration,
    ) -> Result<()>;

    /// Ask Swarm to roll the service back to its previous spec.
    async fn rollback_service(&self, service_id: &str) -> Result<()>;
}

/// `<stack>_<name>_<version>`, cut to Docker's 64-character limit (the version is kept whole
/// where possible, since it is what makes the name unique).
pub fn versioned_name(stack: &str, secret: &str, version: &str) -> String {
    let version: String = version
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    let mut base = format!("{stack}_{secret}");
    let room = MAX_SECRET_NAME.saturating_sub(version.len() + 1);
    if base.len() > room {
        base.truncate(room);
    }
    format!("{base}_{version}")
}

/// The version label from what the state file keeps: the store's version id, else the fingerprint.
pub fn version_label_from(store_version: Option<&str>, fingerprint: &str) -> String {
    match store_version {
        Some(v) if !v.starts_with(crate::secret::FINGERPRINT_PREFIX) => {
            v.chars().take(12).collect()
        }
        _ => fingerprint
            .trim_start_matches(crate::secret::FINGERPRINT_PREFIX)
            .chars()
            .take(12)
            .collect(),
    }
}

/// What `load` did to one secret on the swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwarmLoadAction {
    Unchanged(String),
    Created(String),
}

/// Make sure a swarm secret holds this version; never create a second copy of it.
pub async fn ensure_secret(
    engine: &dyn SwarmEngine,
    stack: &str,
    secret: &str,
    version: &str,
    value: &SecretValue,
    existing: &[SwarmSecret],
) -> Result<(SwarmSecret, SwarmLoadAction)> {
    if let Some(found) = existing.iter().find(|s| {
        s.labels.get(labels::SECRET).map(String::as_str) == Some(secret)
            && s.version() == Some(version)
    }) {
        return Ok((
            found.clone(),
            SwarmLoadAction::Unchanged(found.name.clone()),
        ));
    }
    let name = versioned_name(stack, secret, version);
    let labels = BTreeMap::from([
        (labels::STACK.to_string(), stack.to_string()),
        (labels::SECRET.to_string(), secret.to_string()),
        (labels::VERSION.to_string(), version.to_string()),
    ]);
    let created = engine.create_secret(&name, value, &labels).await?;
    Ok((created.clone(), SwarmLoadAction::Created(created.name)))
}

/// The result of rolling one secret out to the stack's services.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rollout {
    pub services_updated: Vec<String>,
    pub secrets_removed: Vec<String>,
}

/// Point every service that mounts an older version of `secret` at `new`, wait for the
/// rolling updates to converge, then remove the versions no service uses any more.
///
/// On failure, services already updated are rolled back (Swarm does this itself
/// with `failure_action: rollback`; we make sure), the new secret is removed once
/// nothing uses it, and the error says what failed.
pub async fn roll_out(
    engine: &dyn SwarmEngine,
    stack: &str,
    secret: &str,
    new: &SwarmSecret,
    monitor: Duration,
    timeout: Duration,
) -> Result<Rollout> {
    let secrets = engine.stack_secrets(stack).await?;
    let old_ids: Vec<String> = secrets
        .iter()
        .filter(|s| s.id != new.id && s.secret_name(stack).as_deref() == Some(secret))
        .map(|s| s.id.clone())
        .collect();
    let services = engine.stack_services(stack).await?;
    let mut rollout = Rollout::default();
    let mut updated: Vec<&SwarmService> = Vec::new();
    for service in &services {
        let swaps: Vec<(String, SwarmSecret)> = service
            .secrets
            .iter()
            .filter(|m| old_ids.contains(&m.secret_id))
            .map(|m| (m.secret_id.clone(), new.clone()))
            .collect();
        if swaps.is_empty() {
            continue;
        }
        let result = match engine
            .update_service_secrets(&service.id, &swaps, monitor)
            .await
        {
            Ok(()) => wait_converged(engine, &service.id, &service.name, timeout).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            undo(engine, &updated, service, new).await;
            return Err(e);
        }
        updated.push(service);
        rollout.services_updated.push(service.name.clone());
    }
    // Old versions are removed only once no service of the stack mounts them.
    let in_use: Vec<String> = engine
        .stack_services(stack)
        .await?
        .iter()
        .flat_map(|s| s.secrets.iter().map(|m| m.secret_id.clone()))
        .collect();
    for s in secrets
        .iter()
        .filter(|s| old_ids.contains(&s.id) && !in_use.contains(&s.id))
    {
        engine.remove_secret(&s.id).await?;
        rollout.secrets_removed.push(s.name.clone());
    }
    Ok(rollout)
}

async fn undo(
    engine: &dyn SwarmEngine,
    updated: &[&SwarmService],
    failed: &SwarmService,
    new: &SwarmSecret,
) {
    // Swarm's own rollback handles the failed service; the ones that converged need ours.
    let current = engine.service(&failed.id).await;
    if let Ok(current) = current {
        if current.secrets.iter().any(|m| m.secret_id == new.id) {
            let _ = engine.rollback_service(&failed.id).await;
        }
    }
    for service in updated {
        let _ = engine.rollback_service(&service.id).await;
    }
    let _ = engine.remove_secret(&new.id).await;
}

/// Poll the service's update status until it completes, or fails/rolls back, or time runs out.
pub async fn wait_converged(
    engine: &dyn SwarmEngine,
    id: &str,
    name: &str,
    timeout: Duration,
) -> Result<()> {
    let started = Instant::now();
    loop {
        let service = engine.service(id).await?;
        match service.update_state.as_deref() {
            Some("completed") => return Ok(()),
            Some(
                state @ ("paused" | "rollback_started" | "rollback_paused" | "rollback_completed"),
            ) => {
                return Err(Error::Health {
                    message: format!(
                        "swarm service `{name}`: update {state}{}",
                        service
                            .update_message
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    ),
                })
            }
            _ => {}
        }
        if started.elapsed() > timeout {
            return Err(Error::Health {
                message: format!(
                    "swarm service `{name}`: update did not converge within {}s (state {})",
                    timeout.as_secs(),
                    service.update_state.as_deref().unwrap_or("unknown")
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::memory::MemorySwarm;

    fn mount(secret: &SwarmSecret, target: &str) -> SecretMount {
        SecretMount {
            secret_id: secret.id.clone(),
            secret_name: secret.name.clone(),
            target: target.into(),
            uid: "1000".into(),
            gid: "1000".into(),
            mode: 0o400,
        }
    }

    #[test]
    fn names_fit_docker_limits() {
        assert_eq!(
            versioned_name("demo", "db-password", "0123456789abcdef"),
            "demo_db-password_0123456789ab"
        );
        let long = versioned_name(&"s".repeat(40), &"n".repeat(40), "abcdef012345");
        assert!(long.len() <= 64);
        assert!(long.ends_with("_abcdef012345"));
    }

    #[tokio::test]
    async fn ensure_secret_never_duplicates_a_version() {
        let swarm = MemorySwarm::new();
        let v = SecretValue::new("one".into());
        let (first, action) = ensure_secret(&swarm, "st", "s", "v1", &v, &[])
            .await
            .unwrap();
        assert!(matches!(action, SwarmLoadAction::Created(_)));
        let existing = swarm.stack_secrets("st").await.unwrap();
        let (again, action) = ensure_secret(&swarm, "st", "s", "v1", &v, &existing)
            .await
            .unwrap();
        assert_eq!(first, again);
        assert!(matches!(action, SwarmLoadAction::Unchanged(_)));
        assert_eq!(swarm.secret_names().len(), 1);
    }

    /// A stack `st` whose service `st_web` mounts version `st_s` of secret `s`, and a second
    /// version of `s` created beside it; `fail` makes service updates fail.
    async fn web_with_a_new_version(fail: bool) -> (MemorySwarm, String, SwarmSecret, SwarmSecret) {
        let swarm = MemorySwarm::new();
        let old = swarm
            .create_secret("st_s", &SecretValue::new("old".into()), &BTreeMap::new())
            .await
            .unwrap();
        let id = swarm.add_service("st_web", vec![mount(&old, "s")]);
        swarm.fail_updates(fail);
        let (new, _) = ensure_secret(
            &swarm,
            "st",
            "s",
            "v2",
            &SecretValue::new("new".into()),
            &[],
        )
        .await
        .unwrap();
        (swarm, id, old, new)
    }

    async fn roll_out_new(swarm: &MemorySwarm, new: &SwarmSecret) -> Result<Rollout> {
        roll_out(
            swarm,
            "st",
            "s",
            new,
            Duration::from_secs(1),
            Duration::from_secs(5),
        )
        .await
    }

    #[tokio::test]
    async fn roll_out_swaps_mounts_and_removes_the_old_version_after_success() {
        let (swarm, id, _old, new) = web_with_a_new_version(false).await;
        let rollout = roll_out_new(&swarm, &new).await.unwrap();
        assert_eq!(rollout.services_updated, vec!["st_web".to_string()]);
        assert_eq!(rollout.secrets_removed, vec!["st_s".to_string()]);
        let service = swarm.service(&id).await.unwrap();
        assert_eq!(service.secrets[0].secret_id, new.id);
        assert_eq!(service.secrets[0].target, "s");
        assert_eq!(swarm.secret_names(), vec![new.name]);
    }

    #[tokio::test]
    async fn a_failed_update_keeps_the_old_secret_and_removes_the_new_one() {
        let (swarm, id, old, new) = web_with_a_new_version(true).await;
        let err = roll_out_new(&swarm, &new).await.unwrap_err();
        assert!(err.to_string().contains("st_web"), "{err}");
        assert_eq!(
            swarm.service(&id).await.unwrap().secrets[0].secret_id,
            old.id
        );
        assert_eq!(swarm.secret_names(), vec!["st_s".to_string()]);
    }
}
