//! The [`ContainerEngine`] half of [`DockerEngine`]: a Compose project's containers (list,
//! inspect, restart, stop, remove, replicas made like a template) and an image's ID and files.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;

use super::replica::{endpoints_like, replica_body};
use super::{DockerEngine, PING_TIMEOUT, RESTART_MARGIN};
use crate::deploy::{labels, ContainerEngine, ContainerInfo};
use crate::error::{DockerFailure, Error, Result};

fn container_info(r: bollard::models::ContainerInspectResponse) -> ContainerInfo {
    let config = r.config.unwrap_or_default();
    let state = r.state.unwrap_or_default();
    let labels: BTreeMap<String, String> = config.labels.unwrap_or_default().into_iter().collect();
    let health = state
        .health
        .and_then(|h| h.status)
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty() && s != "none");
    let mut command = config.entrypoint.unwrap_or_default();
    command.extend(config.cmd.unwrap_or_default());
    let ip_addresses = r
        .network_settings
        .and_then(|n| n.networks)
        .map(|nets| {
            let mut ips: Vec<String> = nets
                .into_values()
                .filter_map(|e| e.ip_address)
                .filter(|ip| !ip.is_empty())
                .collect();
            ips.sort();
            ips
        })
        .unwrap_or_default();
    ContainerInfo {
        id: r.id.unwrap_or_default(),
        name: r
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        project: labels.get(labels::PROJECT).cloned().unwrap_or_default(),
        service: labels.get(labels::SERVICE).cloned().unwrap_or_default(),
        number: labels.get(labels::NUMBER).and_then(|n| n.parse().ok()),
        running: state.running.unwrap_or(false),
        status: state.status.map(|s| s.to_string()).unwrap_or_default(),
        health,
        started_at: state.started_at,
        image: config.image.unwrap_or_default(),
        user: config.user.unwrap_or_default(),
        env: config.env.unwrap_or_default(),
        labels,
        command,
        ip_addresses,
    }
}

#[async_trait]
impl ContainerEngine for DockerEngine {
    #[cfg(any(test, feature = "testing"))]
    fn describe(&self) -> String {
        self.endpoint.clone()
    }

    async fn ping(&self) -> Result<()> {
        let client = self.negotiated().await?;
        tokio::time::timeout(PING_TIMEOUT, client.ping())
            .await
            .map_err(|_| Error::Docker {
                kind: DockerFailure::Unreachable,
                message: format!("Docker engine at {} did not answer a ping", self.endpoint),
            })?
            .map(|_| ())
            .map_err(|e| self.error("ping", &e))
    }

    async fn project_containers(&self, project: &str) -> Result<Vec<ContainerInfo>> {
        let client = self.negotiated().await?;
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{}={project}", labels::PROJECT)],
        )]);
        let options = bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let summaries = client
            .list_containers(Some(options))
            .await
            .map_err(|e| self.error(&format!("list containers of project {project}"), &e))?;
        let mut out = Vec::new();
        for s in summaries {
            let Some(id) = s.id else { continue };
            match client.inspect_container(&id, None).await {
                Ok(r) => out.push(container_info(r)),
                // Removed between the listing and the inspect (a concurrent `down`): not ours to report.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(e) => {
                    return Err(
                        self.error(&format!("inspect container {id} of project {project}"), &e)
                    )
                }
            }
        }
        out.sort_by(|a, b| (&a.service, a.number, &a.name).cmp(&(&b.service, b.number, &b.name)));
        Ok(out)
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        let client = self.negotiated().await?;
        client
            .inspect_container(id, None)
            .await
            .map(container_info)
            .map_err(|e| self.error(&format!("inspect container {id}"), &e))
    }

    async fn restart(&self, id: &str, stop_timeout: Duration) -> Result<()> {
        // The call lasts as long as the stop, so it gets the stop timeout plus a margin.
        let client = self
            .negotiated()
            .await?
            .with_timeout(stop_timeout + RESTART_MARGIN);
        let options = bollard::query_parameters::RestartContainerOptions {
            t: Some(i32::try_from(stop_timeout.as_secs()).unwrap_or(i32::MAX)),
            signal: None,
        };
        client
            .restart_container(id, Some(options))
            .await
            .map_err(|e| self.error(&format!("restart container {id}"), &e))
    }

    async fn start(&self, id: &str) -> Result<()> {
        let client = self.negotiated().await?;
        client
            .start_container(id, None)
            .await
            .map_err(|e| self.error(&format!("start container {id}"), &e))
    }

    async fn create_like(
        &self,
        template: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<String> {
        let client = self.negotiated().await?;
        let old = client
            .inspect_container(template, None)
            .await
            .map_err(|e| self.error(&format!("inspect container {template}"), &e))?;
        let image = self.same_image(&client, &old).await;
        let (mut body, others) = replica_body(old, name, labels);
        body.image = image;
        let options = bollard::query_parameters::CreateContainerOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        let created = client
            .create_container(Some(options), body)
            .await
            .map_err(|e| self.error(&format!("create container {name} like {template}"), &e))?;
        // API 1.41 (Docker 20.10) takes one network at create; the others are joined here.
        for (network, endpoint) in others {
            let request = bollard::models::NetworkConnectRequest {
                container: created.id.clone(),
                endpoint_config: Some(endpoint),
            };
            if let Err(e) = client.connect_network(&network, request).await {
                let _ = self.remove(&created.id).await;
                return Err(self.error(&format!("connect {name} to network {network}"), &e));
            }
        }
        Ok(created.id)
    }

    async fn join_like(&self, template: &str, id: &str) -> Result<()> {
        let client = self.negotiated().await?;
        let inspect = |c: &str| {
            let client = client.clone();
            let c = c.to_string();
            async move {
                client
                    .inspect_container(&c, None)
                    .await
                    .map_err(|e| self.error(&format!("inspect container {c}"), &e))
            }
        };
        let old = inspect(template).await?;
        let new = inspect(id).await?;
        let name = new.name.clone().unwrap_or_default();
        let name = name.trim_start_matches('/');
        let joined: Vec<String> = new
            .network_settings
            .and_then(|n| n.networks)
            .map(|n| n.into_keys().collect())
            .unwrap_or_default();
        // An endpoint's aliases are fixed when it joins: leave and join again with them.
        for (network, endpoint) in endpoints_like(&old, name, false) {
            if joined.contains(&network) {
                let leave = bollard::models::NetworkDisconnectRequest {
                    container: id.to_string(),
                    force: Some(false),
                };
                client
                    .disconnect_network(&network, leave)
                    .await
                    .map_err(|e| self.error(&format!("disconnect {name} from {network}"), &e))?;
            }
            let join = bollard::models::NetworkConnectRequest {
                container: id.to_string(),
                endpoint_config: Some(endpoint),
            };
            client
                .connect_network(&network, join)
                .await
                .map_err(|e| self.error(&format!("connect {name} to {network}"), &e))?;
        }
        Ok(())
    }

    async fn stop(&self, id: &str, stop_timeout: Duration) -> Result<()> {
        let client = self
            .negotiated()
            .await?
            .with_timeout(stop_timeout + RESTART_MARGIN);
        let options = bollard::query_parameters::StopContainerOptions {
            t: Some(i32::try_from(stop_timeout.as_secs()).unwrap_or(i32::MAX)),
            signal: None,
        };
        match client.stop_container(id, Some(options)).await {
            // 304: already stopped.
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(self.error(&format!("stop container {id}"), &e)),
        }
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let client = self.negotiated().await?.with_timeout(RESTART_MARGIN * 2);
        let options = bollard::query_parameters::RemoveContainerOptions {
            force: true,
            v: false,
            link: false,
        };
        match client.remove_container(id, Some(options)).await {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(self.error(&format!("remove container {id}"), &e)),
        }
    }

    async fn image_id(&self, image: &str) -> Result<String> {
        let client = self.negotiated().await?;
        match client.inspect_image(image).await {
            Ok(inspected) => inspected.id.ok_or_else(|| {
                Error::docker(
                    DockerFailure::Other,
                    format!("image {image} has no ID ({})", self.endpoint),
                )
            }),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(self.image_absent(image)),
            Err(e) => Err(self.error(&format!("inspect image {image}"), &e)),
        }
    }

    async fn image_files(
        &self,
        image: &str,
        paths: &[&str],
        limit: usize,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let client = self.negotiated().await?;
        // Created, never started: the image's files are read through the archive API, so
        // nothing of the image runs. A command is given because an image without one (FROM
        // scratch) cannot be created otherwise.
        let body = bollard::models::ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(vec!["/compose-secrets-never-started".into()]),
            network_disabled: Some(true),
            labels: Some(HashMap::from([(
                "io.compose-secrets.purpose".to_string(),
                "read /etc/passwd and /etc/group".to_string(),
            )])),
            ..Default::default()
        };
        let created = match client
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                body,
            )
            .await
        {
            Ok(created) => created,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Err(self.image_absent(image)),
            Err(e) => return Err(self.error(&format!("create a container of image {image}"), &e)),
        };
        let mut out = Vec::new();
        let mut result = Ok(());
        for path in paths {
            match self.archived_file(&client, &created.id, path, limit).await {
                Ok(file) => out.push(file),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let options = bollard::query_parameters::RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        let removed = client
            .remove_container(&created.id, Some(options))
            .await
            .map_err(|e| {
                self.error(
                    &format!("remove container {} of image {image}", created.id),
                    &e,
                )
            });
        result?;
        removed?;
        Ok(out)
    }
}

impl DockerEngine {
    /// An image the engine does not have: compose-secrets reads only local images.
    fn image_absent(&self, image: &str) -> Error {
        Error::docker(
            DockerFailure::Refused { status: 404 },
            format!(
                "image {image} is not present locally ({}); nothing is pulled",
                self.endpoint
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docker inspect` as Engine 20.10 (API 1.41) answers it, trimmed to what we read:
    /// bollard's models are generated for a newer API, and must still take this.
    const INSPECT_API_1_41: &str = r#"{
      "Id": "0e2c2114071e",
      "Name": "/proj_web_2",
      "State": {"Status": "running", "Running": true, "Paused": false, "Restarting": false,
        "OOMKilled": false, "Dead": false, "Pid": 25278, "ExitCode": 0, "Error": "",
        "StartedAt": "2026-11-22T10:57:14.345264157Z", "FinishedAt": "0001-01-01T00:00:00Z",
        "Health": {"Status": "starting", "FailingStreak": 0, "Log": []}},
      "Image": "sha256:0f53979b35b1",
      "Config": {"User": "1000:1000", "Env": ["PATH=/bin", "DEMO_REQUIRED_SECRETS=k"],
        "Cmd": ["serve"], "Image": "compose-secrets-demo:latest", "Entrypoint": ["/demo-app"],
        "Labels": {"com.docker.compose.container-number": "2",
          "com.docker.compose.project": "proj", "com.docker.compose.service": "web"},
        "ExposedPorts": {"8000/tcp": {}},
        "Healthcheck": {"Test": ["CMD", "/demo-app", "healthcheck"], "Interval": 1000000000,
          "Timeout": 2000000000, "StartPeriod": 1000000000, "Retries": 3}},
      "NetworkSettings": {"Ports": {"8000/tcp": null}, "Networks": {
        "proj_default": {"IPAMConfig": null, "Links": null, "Aliases": ["web"],
          "NetworkID": "c6be7df06ef1", "EndpointID": "4d984cba3cdf", "Gateway": "172.18.0.1",
          "IPAddress": "172.18.0.3", "IPPrefixLen": 16, "IPv6Gateway": "",
          "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "02:42:ac:12:00:03",
          "DriverOpts": null},
        "bridge": {"IPAddress": "172.17.0.2"}}}
    }"#;

    #[test]
    fn an_api_1_41_inspect_maps_to_container_info() {
        let response: bollard::models::ContainerInspectResponse =
            serde_json::from_str(INSPECT_API_1_41).expect("API 1.41 JSON");
        let info = container_info(response);
        assert_eq!(info.id, "0e2c2114071e");
        assert_eq!(info.name, "proj_web_2", "leading slash dropped");
        assert_eq!(
            (info.project.as_str(), info.service.as_str(), info.number),
            ("proj", "web", Some(2))
        );
        assert!(info.running);
        assert_eq!(info.status, "running");
        assert_eq!(info.health.as_deref(), Some("starting"));
        assert_eq!(
            info.started_at.as_deref(),
            Some("2026-11-22T10:57:14.345264157Z")
        );
        assert_eq!(
            info.image, "compose-secrets-demo:latest",
            "the name, not the digest"
        );
        assert_eq!(info.user, "1000:1000");
        assert_eq!(info.command, ["/demo-app", "serve"], "entrypoint then cmd");
        assert_eq!(info.env.len(), 2);
        assert_eq!(info.ip_addresses, ["172.17.0.2", "172.18.0.3"]);
        assert_eq!(info.labels.len(), 3);
    }

    #[test]
    fn no_healthcheck_means_no_health() {
        for state in [
            r#"{"Status": "exited", "Running": false}"#,
            r#"{"Status": "running", "Running": true, "Health": {"Status": "none"}}"#,
            r#"{"Status": "running", "Running": true, "Health": {"Status": ""}}"#,
        ] {
            let json = format!(r#"{{"Id": "x", "Name": "/x", "State": {state}}}"#);
            let info = container_info(serde_json::from_str(&json).unwrap());
            assert_eq!(info.health, None, "{state}");
            assert_eq!(info.number, None);
            assert!(info.ip_addresses.is_empty());
        }
    }
}
