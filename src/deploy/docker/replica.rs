//! The create request for a replica of a running container (its configuration, image and
//! networks) and the endpoints it joins with, for start-first replacement.

use std::collections::{BTreeMap, HashMap};

use bollard::Docker;

use super::DockerEngine;

impl DockerEngine {
    /// The image a replica runs: the template's image by the name it was created with while
    /// that name still means the same image, else by id, so a rotation never swaps the image.
    pub(super) async fn same_image(
        &self,
        client: &Docker,
        old: &bollard::models::ContainerInspectResponse,
    ) -> Option<String> {
        let id = old.image.clone();
        let name = old.config.as_ref().and_then(|c| c.image.clone());
        match (&name, &id) {
            (Some(name), Some(id)) => match client.inspect_image(name).await {
                Ok(image) if image.id.as_deref() == Some(id.as_str()) => Some(name.clone()),
                _ => Some(id.clone()),
            },
            _ => name.or(id),
        }
    }
}

/// `old`'s networks with the endpoint settings a container named `name` gets on each. Hidden,
/// its only alias is its own name: the service's name (and the other aliases) resolve to it
/// only once [`DockerEngine::join_like`] has run, so no client reaches it before its gate.
/// Docker's own traces of `old` are dropped: its short id and name among the aliases (the
/// new name takes the name's place), its addresses.
pub(super) fn endpoints_like(
    old: &bollard::models::ContainerInspectResponse,
    name: &str,
    hidden: bool,
) -> Vec<(String, bollard::models::EndpointSettings)> {
    let old_id = old.id.clone().unwrap_or_default();
    let short = old_id.get(..12).unwrap_or(&old_id).to_string();
    let old_name = old
        .name
        .clone()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_string();
    old.network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(network, e)| {
            let aliases = if hidden {
                Some(vec![name.to_string()])
            } else {
                e.aliases.map(|list| {
                    list.into_iter()
                        .filter(|a| *a != short && *a != old_id)
                        .map(|a| if a == old_name { name.to_string() } else { a })
                        .collect()
                })
            };
            let endpoint = bollard::models::EndpointSettings {
                aliases,
                ipam_config: e.ipam_config,
                links: e.links,
                driver_opts: e.driver_opts,
                ..Default::default()
            };
            (network, endpoint)
        })
        .collect()
}

/// The create request for a container configured as `old` (hidden on its networks, see
/// [`endpoints_like`]), and the networks to join after the create.
pub(super) fn replica_body(
    old: bollard::models::ContainerInspectResponse,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> (
    bollard::models::ContainerCreateBody,
    Vec<(String, bollard::models::EndpointSettings)>,
) {
    let mut endpoints = endpoints_like(&old, name, true);
    let short = old
        .id
        .as_deref()
        .map(|id| id.get(..12).unwrap_or(id).to_string())
        .unwrap_or_default();
    let c = old.config.unwrap_or_default();
    let mut all_labels = c.labels.unwrap_or_default();
    all_labels.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    let primary = old
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_default();
    // The network named by NetworkMode goes in the create; `host`, `none` and
    // `container:…` modes have no endpoints to give.
    let first = endpoints.iter().position(|(n, _)| *n == primary);
    let networking_config = first.map(|i| bollard::models::NetworkingConfig {
        endpoints_config: Some(HashMap::from([endpoints.remove(i)])),
    });
    if networking_config.is_none() {
        endpoints.clear();
    }
    let body = bollard::models::ContainerCreateBody {
        hostname: c.hostname.filter(|h| *h != short),
        domainname: c.domainname,
        user: c.user,
        attach_stdin: c.attach_stdin,
        attach_stdout: c.attach_stdout,
        attach_stderr: c.attach_stderr,
        exposed_ports: c.exposed_ports,
        tty: c.tty,
        open_stdin: c.open_stdin,
        stdin_once: c.stdin_once,
        env: c.env,
        cmd: c.cmd,
        healthcheck: c.healthcheck,
        args_escaped: c.args_escaped,
        image: c.image,
        volumes: c.volumes,
        working_dir: c.working_dir,
        entrypoint: c.entrypoint,
        network_disabled: c.network_disabled,
        on_build: c.on_build,
        labels: Some(all_labels),
        stop_signal: c.stop_signal,
        stop_timeout: c.stop_timeout,
        shell: c.shell,
        host_config: old.host_config,
        networking_config,
    };
    (body, endpoints)
}
