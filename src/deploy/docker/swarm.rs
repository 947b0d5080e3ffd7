//! The [`SwarmEngine`] half of [`DockerEngine`]: a stack's secrets and services, and the
//! rolling update that swaps the secrets a service mounts.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;

use super::DockerEngine;
use crate::deploy::swarm::{SecretMount, SwarmEngine, SwarmSecret, SwarmService};
use crate::error::{DockerFailure, Error, Result};
use crate::secret::SecretValue;

/// A swarm secret's `Data`: the value's bytes, base64-encoded in the JSON body (never in argv
/// or env). Bytes, not text: a certificate's `pfx` part is binary, and `expose` would see it
/// as empty.
fn secret_data(value: &SecretValue) -> zeroize::Zeroizing<String> {
    zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(value.expose_bytes()))
}

fn to_swarm_secret(s: bollard::models::Secret) -> SwarmSecret {
    let spec = s.spec.unwrap_or_default();
    SwarmSecret {
        id: s.id.unwrap_or_default(),
        name: spec.name.unwrap_or_default(),
        labels: spec.labels.unwrap_or_default().into_iter().collect(),
    }
}

fn to_swarm_service(s: bollard::models::Service) -> SwarmService {
    let spec = s.spec.unwrap_or_default();
    let secrets = spec
        .task_template
        .and_then(|t| t.container_spec)
        .and_then(|c| c.secrets)
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let file = m.file.unwrap_or_default();
            SecretMount {
                secret_id: m.secret_id.unwrap_or_default(),
                secret_name: m.secret_name.unwrap_or_default(),
                target: file.name.unwrap_or_default(),
                uid: file.uid.unwrap_or_else(|| "0".into()),
                gid: file.gid.unwrap_or_else(|| "0".into()),
                mode: file.mode.unwrap_or(0o444),
            }
        })
        .collect();
    let status = s.update_status;
    SwarmService {
        id: s.id.unwrap_or_default(),
        name: spec.name.unwrap_or_default(),
        secrets,
        update_state: status
            .as_ref()
            .and_then(|u| u.state.as_ref())
            .map(ToString::to_string)
            .filter(|s| !s.is_empty()),
        update_message: status.and_then(|u| u.message),
    }
}

impl DockerEngine {
    async fn raw_service(&self, id: &str) -> Result<bollard::models::Service> {
        let client = self.negotiated().await?;
        client
            .inspect_service(id, None)
            .await
            .map_err(|e| self.error(&format!("inspect swarm service {id}"), &e))
    }

    async fn push_service_spec(
        &self,
        service: bollard::models::Service,
        spec: bollard::models::ServiceSpec,
        rollback: bool,
    ) -> Result<()> {
        let client = self.negotiated().await?;
        let id = service.id.clone().unwrap_or_default();
        let version = service.version.and_then(|v| v.index).unwrap_or_default();
        let options = bollard::query_parameters::UpdateServiceOptions {
            version: i32::try_from(version).unwrap_or(i32::MAX),
            rollback: rollback.then(|| "previous".to_string()),
            ..Default::default()
        };
        client
            .update_service(&id, spec, options, None)
            .await
            .map(|_| ())
            .map_err(|e| self.error(&format!("update swarm service {id}"), &e))
    }
}

#[async_trait]
impl SwarmEngine for DockerEngine {
    async fn is_manager(&self) -> Result<bool> {
        // `GET /swarm` answers only on a manager (503 elsewhere) in a fraction of a
        // millisecond; `/info` takes about 8 ms on a 20.10 engine, on every `--target auto`.
        let client = self.negotiated().await?;
        match client.inspect_swarm().await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 503, ..
            }) => Ok(false),
            Err(e) => Err(self.error("ask whether this engine is a swarm manager", &e)),
        }
    }

    async fn stack_secrets(&self, stack: &str) -> Result<Vec<SwarmSecret>> {
        let client = self.negotiated().await?;
        let secrets = client
            .list_secrets(None::<bollard::query_parameters::ListSecretsOptions>)
            .await
            .map_err(|e| self.error("list swarm secrets", &e))?;
        Ok(secrets
            .into_iter()
            .map(to_swarm_secret)
            .filter(|s| s.belongs_to(stack))
            .collect())
    }

    async fn create_secret(
        &self,
        name: &str,
        value: &SecretValue,
        labels: &BTreeMap<String, String>,
    ) -> Result<SwarmSecret> {
        let client = self.negotiated().await?;
        let data = secret_data(value);
        let spec = bollard::models::SecretSpec {
            name: Some(name.to_string()),
            labels: Some(labels.clone().into_iter().collect()),
            data: Some(data.to_string()),
            ..Default::default()
        };
        let created = client
            .create_secret(spec)
            .await
            .map_err(|e| self.error(&format!("create swarm secret {name}"), &e))?;
        Ok(SwarmSecret {
            id: created.id,
            name: name.to_string(),
            labels: labels.clone(),
        })
    }

    async fn remove_secret(&self, id: &str) -> Result<()> {
        let client = self.negotiated().await?;
        client
            .delete_secret(id)
            .await
            .map_err(|e| self.error(&format!("remove swarm secret {id}"), &e))
    }

    async fn stack_services(&self, stack: &str) -> Result<Vec<SwarmService>> {
        let client = self.negotiated().await?;
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{}={stack}", crate::deploy::swarm::labels::STACK)],
        )]);
        let options = bollard::query_parameters::ListServicesOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let services = client
            .list_services(Some(options))
            .await
            .map_err(|e| self.error(&format!("list services of stack {stack}"), &e))?;
        let mut out: Vec<SwarmService> = services.into_iter().map(to_swarm_service).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn service(&self, id: &str) -> Result<SwarmService> {
        self.raw_service(id).await.map(to_swarm_service)
    }

    async fn update_service_secrets(
        &self,
        service_id: &str,
        swaps: &[(String, SwarmSecret)],
        monitor: Duration,
    ) -> Result<()> {
        use bollard::models::{
            ServiceSpecRollbackConfig, ServiceSpecRollbackConfigFailureActionEnum,
            ServiceSpecRollbackConfigOrderEnum, ServiceSpecUpdateConfig,
            ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum,
        };
        let service = self.raw_service(service_id).await?;
        let mut spec = service.spec.clone().unwrap_or_default();
        let mounts = spec
            .task_template
            .as_mut()
            .and_then(|t| t.container_spec.as_mut())
            .and_then(|c| c.secrets.as_mut())
            .ok_or_else(|| Error::Docker {
                kind: DockerFailure::Other,
                message: format!("swarm service {service_id} mounts no secrets"),
            })?;
        for mount in mounts.iter_mut() {
            if let Some((_, new)) = swaps
                .iter()
                .find(|(old, _)| mount.secret_id.as_deref() == Some(old.as_str()))
            {
                // Same target, uid, gid and mode: only the secret behind the file changes.
                mount.secret_id = Some(new.id.clone());
                mount.secret_name = Some(new.name.clone());
            }
        }
        let monitor_ns = i64::try_from(monitor.as_nanos()).unwrap_or(i64::MAX);
        spec.update_config = Some(ServiceSpecUpdateConfig {
            parallelism: Some(1),
            delay: Some(0),
            failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
            monitor: Some(monitor_ns),
            max_failure_ratio: Some(0.0),
            order: Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST),
        });
        // The rollback must be as gentle as the update: start the old task before stopping the new.
        spec.rollback_config = Some(ServiceSpecRollbackConfig {
            parallelism: Some(1),
            delay: Some(0),
            failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
            monitor: Some(monitor_ns),
            max_failure_ratio: Some(0.0),
            order: Some(ServiceSpecRollbackConfigOrderEnum::START_FIRST),
        });
        self.push_service_spec(service, spec, false).await
    }

    async fn rollback_service(&self, service_id: &str) -> Result<()> {
        let service = self.raw_service(service_id).await?;
        let spec = service.spec.clone().unwrap_or_default();
        self.push_service_spec(service, spec, true).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swarm_secret_carries_the_value_s_bytes_even_when_they_are_not_text() {
        let pfx = vec![0x30, 0x82, 0x0a, 0xff, 0x00, 0xfe, b'k'];
        let data = secret_data(&SecretValue::binary(pfx.clone()));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(data.as_bytes())
            .unwrap();
        assert_eq!(decoded, pfx);
        let text = secret_data(&SecretValue::new("hunter2".into()));
        assert_eq!(
            *text,
            base64::engine::general_purpose::STANDARD.encode("hunter2")
        );
    }
}
