//! The Docker Engine API through bollard, the only module that imports it: containers of a
//! Compose project (inspect, restart) and the Swarm objects of a stack (secrets, services).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bollard::Docker;

use super::swarm::{SecretMount, SwarmEngine, SwarmSecret, SwarmService};
use super::{labels, ContainerEngine, ContainerInfo};
use crate::error::{DockerFailure, Error, Result};
use crate::secret::SecretValue;

/// Seconds bollard waits for one API call before giving up: inspect and list answer in
/// milliseconds, so a daemon this slow is stuck, not busy.
const API_TIMEOUT_SECS: u64 = 30;
/// Added to the stop timeout for a restart: Docker answers only once the container is
/// stopped (up to the stop timeout, then SIGKILL) and started again.
const RESTART_MARGIN: Duration = Duration::from_secs(30);
/// How long `ping` (and the version negotiation) may take: an unreachable engine must fail fast.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// The real engine, through bollard.
pub struct DockerEngine {
    client: Docker,
    endpoint: String,
    /// Where the raw `/_ping` goes (see `ping_api_version`).
    address: Address,
    /// The client after version negotiation, agreed once on first use. bollard speaks a
    /// newer API than many engines in the field (20.10 speaks 1.41) and would be refused.
    negotiated: tokio::sync::OnceCell<Docker>,
}

impl DockerEngine {
    /// Connect as the Docker CLI does: `DOCKER_HOST`, else the local socket.
    pub fn connect() -> Result<Self> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        Self::connect_to(&host)
    }

    /// Connect to `unix:///path`, `tcp://host:port` or `http://host:port`. Only a missing
    /// socket fails here; an engine that does not answer fails at the first call (see `ping`).
    pub fn connect_to(host: &str) -> Result<Self> {
        let unreachable = |e: bollard::errors::Error| Error::Docker {
            kind: DockerFailure::Unreachable,
            message: format!(
                "Docker engine not reachable at {host}: {}. Start Docker or set DOCKER_HOST",
                summary(&e)
            ),
        };
        let address = if let Some(path) = host.strip_prefix("unix://") {
            Address::Unix(path.to_string())
        } else if let Some(rest) = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
        {
            Address::Tcp(rest.split('/').next().unwrap_or(rest).to_string())
        } else {
            return Err(Error::Docker {
                kind: DockerFailure::Other,
                message: format!(
                    "Docker engine endpoint {host} is not supported: use unix://, tcp:// or http:// in DOCKER_HOST"
                ),
            });
        };
        let client =
            client_for(host, &address, bollard::API_DEFAULT_VERSION).map_err(unreachable)?;
        Ok(Self {
            client,
            endpoint: host.to_string(),
            address,
            negotiated: tokio::sync::OnceCell::new(),
        })
    }

    fn error(&self, action: &str, e: &bollard::errors::Error) -> Error {
        if engine_unreachable(e) {
            return Error::docker(
                DockerFailure::Unreachable,
                format!(
                    "{action}: Docker engine not reachable at {}: {}",
                    self.endpoint,
                    summary(e)
                ),
            );
        }
        let kind = match e {
            bollard::errors::Error::DockerResponseServerError { status_code, .. } => {
                DockerFailure::Refused {
                    status: *status_code,
                }
            }
            _ => DockerFailure::Other,
        };
        Error::docker(
            kind,
            format!("{action} ({}): {}", self.endpoint, summary(e)),
        )
    }

    /// The client, with the API version agreed with the daemon (once; retried after a failure).
    async fn negotiated(&self) -> Result<Docker> {
        self.negotiated
            .get_or_try_init(|| self.negotiate())
            .await
            .cloned()
    }

    /// The API version from `/_ping`'s `Api-Version` header when the engine sends one: a
    /// fraction of a millisecond, where bollard's `/version` makes a 20.10 engine ask
    /// containerd and runc for theirs (about 7 ms, on every command). An engine or proxy that
    /// sends no such header gets bollard's negotiation.
    async fn negotiate(&self) -> Result<Docker> {
        let pinged = tokio::time::timeout(PING_TIMEOUT, ping_api_version(&self.address)).await;
        if let Ok(Ok(Some(version))) = pinged {
            // Never above what bollard speaks: a newer engine still serves older versions.
            let version = match version < *bollard::API_DEFAULT_VERSION {
                true => version,
                false => *bollard::API_DEFAULT_VERSION,
            };
            if let Ok(client) = client_for(&self.endpoint, &self.address, &version) {
                return Ok(client);
            }
        }
        tokio::time::timeout(PING_TIMEOUT, self.client.clone().negotiate_version())
            .await
            .map_err(|_| Error::Docker {
                kind: DockerFailure::Unreachable,
                message: format!(
                    "Docker engine at {} did not answer within {}s. Start Docker or set DOCKER_HOST",
                    self.endpoint,
                    PING_TIMEOUT.as_secs()
                ),
            })?
            .map_err(|e| Error::Docker {
                kind: DockerFailure::Unreachable,
                message: format!(
                    "Docker engine not reachable at {}: {}. Start Docker or set DOCKER_HOST",
                    self.endpoint,
                    summary(&e)
                ),
            })
    }
}

/// The engine is gone (no socket, refused, or the connection dropped), as opposed to an
/// engine that answered with an error: the operator's next step differs.
/// Where the engine listens, for the one request made without bollard.
enum Address {
    Unix(String),
    /// `host:port`.
    Tcp(String),
}

fn client_for(
    host: &str,
    address: &Address,
    version: &bollard::ClientVersion,
) -> std::result::Result<Docker, bollard::errors::Error> {
    match address {
        Address::Unix(path) => Docker::connect_with_unix(path, API_TIMEOUT_SECS, version),
        Address::Tcp(_) => Docker::connect_with_http(host, API_TIMEOUT_SECS, version),
    }
}

/// `GET /_ping` by hand, because bollard returns only its body and the version is in a header.
/// `None` when the answer is not a 200 with an `Api-Version` header (bollard then asks).
async fn ping_api_version(address: &Address) -> std::io::Result<Option<bollard::ClientVersion>> {
    let head = match address {
        Address::Unix(path) => ping_head(tokio::net::UnixStream::connect(path).await?).await?,
        Address::Tcp(authority) => {
            ping_head(tokio::net::TcpStream::connect(authority.as_str()).await?).await?
        }
    };
    Ok(api_version_of(&head))
}

/// The head of the answer to `GET /_ping`: read up to the blank line, not to the end, so a
/// proxy that keeps the connection open costs nothing.
async fn ping_head<S>(mut stream: S) -> std::io::Result<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const REQUEST: &[u8] = b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n";
    /// A ping's headers are a few hundred bytes; more is not an engine.
    const MAX_HEAD: usize = 16 * 1024;
    stream.write_all(REQUEST).await?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while head.len() < MAX_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await? {
            0 => break,
            n => head.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(head)
}

/// The `Api-Version` of a 200 answer's headers.
fn api_version_of(answer: &[u8]) -> Option<bollard::ClientVersion> {
    let text = String::from_utf8_lossy(answer);
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?;
    if status.split_whitespace().nth(1) != Some("200") {
        return None;
    }
    let value = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("api-version")
            .then(|| value.trim())
    })?;
    let (major, minor) = value.split_once('.')?;
    Some(bollard::ClientVersion {
        major_version: major.parse().ok()?,
        minor_version: minor.parse().ok()?,
    })
}

fn engine_unreachable(e: &bollard::errors::Error) -> bool {
    use std::io::ErrorKind;
    if matches!(e, bollard::errors::Error::SocketNotFoundError(_)) {
        return true;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ErrorKind::NotFound
                    | ErrorKind::ConnectionRefused
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::BrokenPipe
                    | ErrorKind::UnexpectedEof
            );
        }
        // hyper's "incomplete message" has no io::Error beneath it; its wording is the only
        // handle on it short of depending on hyper directly.
        if c.to_string()
            .contains("connection closed before message completed")
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// A short, value-free description of a bollard error.
fn summary(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => {
            format!("engine answered {status_code}: {message}")
        }
        // The message names the socket already (`not reachable at unix:///…`).
        bollard::errors::Error::SocketNotFoundError(_) => "no such socket".into(),
        // The transport's own words ("client error (Connect)") say nothing a user can act
        // on; the innermost cause ("Connection refused", "Permission denied") does.
        other => {
            let mut innermost: &(dyn std::error::Error + 'static) = other;
            while let Some(source) = innermost.source() {
                innermost = source;
            }
            innermost.to_string()
        }
    }
}

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
            }) => Err(Error::docker(
                DockerFailure::Refused { status: 404 },
                format!(
                    "image {image} is not present locally ({}); nothing is pulled",
                    self.endpoint
                ),
            )),
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
            }) => {
                return Err(Error::docker(
                    DockerFailure::Refused { status: 404 },
                    format!(
                        "image {image} is not present locally ({}); nothing is pulled",
                        self.endpoint
                    ),
                ))
            }
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
    /// One file of a container, through the archive API (a tar of it); `None` when absent.
    async fn archived_file(
        &self,
        client: &Docker,
        id: &str,
        path: &str,
        limit: usize,
    ) -> Result<Option<Vec<u8>>> {
        use futures::StreamExt as _;
        let options = bollard::query_parameters::DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let mut stream = client.download_from_container(id, Some(options));
        let mut tar = Vec::new();
        // Headers and padding come on top of the file itself.
        let cap = limit.saturating_add(16 * 1024);
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => tar.extend_from_slice(&bytes),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => return Ok(None),
                Err(e) => return Err(self.error(&format!("read {path} of container {id}"), &e)),
            }
            if tar.len() > cap {
                return Err(Error::docker(
                    DockerFailure::Other,
                    format!("{path} in the image is over {limit} bytes"),
                ));
            }
        }
        single_file(&tar)
            .map(Some)
            .map_err(|m| Error::docker(DockerFailure::Other, format!("{path} in the image: {m}")))
    }
}

/// The contents of the one regular file in a tar archive, as the archive API sends a file.
fn single_file(tar: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut at = 0;
    while at + 512 <= tar.len() {
        let header = &tar[at..at + 512];
        if header.iter().all(|&b| b == 0) {
            break;
        }
        let size_field = std::str::from_utf8(&header[124..136])
            .map_err(|_| "a malformed tar header".to_string())?;
        let size =
            usize::from_str_radix(size_field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
                .map_err(|_| "a malformed tar header".to_string())?;
        let data = at + 512;
        let end = data
            .checked_add(size)
            .filter(|&e| e <= tar.len())
            .ok_or_else(|| "a truncated archive".to_string())?;
        match header[156] {
            b'0' | 0 => return Ok(tar[data..end].to_vec()),
            // Long names and extended attributes come before the entry they describe.
            b'x' | b'g' | b'L' | b'K' => {}
            b'1' | b'2' => {
                return Err("a link, not a file: compose-secrets does not follow it".into())
            }
            _ => return Err("not a regular file".into()),
        }
        at = data + size.div_ceil(512) * 512;
    }
    Err("an empty archive".into())
}

impl DockerEngine {
    /// The image a replica runs: the template's image by the name it was created with while
    /// that name still means the same image, else by id, so a rotation never swaps the image.
    async fn same_image(
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
fn endpoints_like(
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
fn replica_body(
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

    #[test]
    fn the_api_version_comes_from_a_200_pings_header() {
        let ok = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nOstype: linux\r\n\r\nOK";
        let v = api_version_of(ok).unwrap();
        assert_eq!((v.major_version, v.minor_version), (1, 41));
        let lower = b"HTTP/1.0 200 OK\r\napi-version:1.24\r\n\r\n";
        assert_eq!(api_version_of(lower).unwrap().minor_version, 24);
        // Anything else leaves the negotiation to bollard.
        for answer in [
            &b"HTTP/1.1 404 Not Found\r\nApi-Version: 1.41\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nServer: proxy\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nApi-Version: one\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nApi-Version: 1.41",
            b"",
        ] {
            assert!(
                api_version_of(answer).is_none(),
                "{}",
                String::from_utf8_lossy(answer)
            );
        }
    }

    #[tokio::test]
    async fn the_ping_reads_the_head_only_and_an_engine_is_asked_at_its_version() {
        // A server that answers a ping and keeps the connection open: the head is enough.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 512];
            let n = socket.read(&mut request).await.unwrap();
            assert!(request[..n].starts_with(b"GET /_ping "));
            socket
                .write_all(b"HTTP/1.1 200 OK\r\nApi-Version: 1.40\r\nContent-Length: 2\r\n\r\nOK")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let address = Address::Tcp(format!("127.0.0.1:{port}"));
        let version = tokio::time::timeout(Duration::from_secs(5), ping_api_version(&address))
            .await
            .expect("the head alone answers")
            .unwrap()
            .unwrap();
        assert_eq!((version.major_version, version.minor_version), (1, 40));
        server.abort();
    }

    #[tokio::test]
    async fn unreachable_engine_names_the_endpoint() {
        let err = match DockerEngine::connect_to("unix:///nonexistent/docker.sock") {
            Ok(engine) => engine.ping().await.unwrap_err(),
            Err(e) => e,
        };
        assert!(matches!(err, Error::Docker { .. }));
        assert!(
            err.to_string().contains("/nonexistent/docker.sock"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_says_so() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let host = format!("tcp://127.0.0.1:{port}");
        let err = DockerEngine::connect_to(&host)
            .unwrap()
            .ping()
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&host), "{message}");
        assert!(message.to_lowercase().contains("refused"), "{message}");
        assert!(message.contains("DOCKER_HOST"), "{message}");
    }

    /// A tar of entries (name, type flag, contents), as the archive API sends them.
    fn tar(entries: &[(&str, u8, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, kind, data) in entries {
            let mut header = [0u8; 512];
            header[..name.len()].copy_from_slice(name.as_bytes());
            let size = format!("{:011o}\0", data.len());
            header[124..136].copy_from_slice(size.as_bytes());
            header[156] = *kind;
            out.extend_from_slice(&header);
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn the_archive_of_one_file_gives_its_contents() {
        let passwd = b"root:x:0:0::/root:/bin/sh\n".as_slice();
        assert_eq!(
            single_file(&tar(&[("passwd", b'0', passwd)])),
            Ok(passwd.to_vec())
        );
        let pax = b"30 path=a/very/long/name/passwd\n".as_slice();
        assert_eq!(
            single_file(&tar(&[("PaxHeader", b'x', pax), ("passwd", b'0', passwd)])),
            Ok(passwd.to_vec()),
            "an extended header before the file"
        );
    }

    #[test]
    fn links_truncated_and_empty_archives_are_refused() {
        assert!(single_file(&tar(&[("passwd", b'2', b"")]))
            .unwrap_err()
            .contains("link"));
        let mut cut = tar(&[("passwd", b'0', &[b'a'; 600])]);
        cut.truncate(700);
        assert_eq!(single_file(&cut), Err("a truncated archive".into()));
        assert_eq!(single_file(&[0u8; 1024]), Err("an empty archive".into()));
    }
}
