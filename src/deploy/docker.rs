//! The Docker Engine API through bollard, which only this module and its submodules import:
//! the engine's connection, API version and errors. `containers` and `swarm` implement the
//! two engine traits on it; `images` (an image's files) and `replica` (a container made like
//! another) serve `containers`.

mod containers;
mod images;
mod replica;
mod swarm;

use std::time::Duration;

use bollard::Docker;

use crate::error::{DockerFailure, Error, Result};

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

/// The engine is gone (no socket, refused, or the connection dropped), as opposed to an
/// engine that answered with an error: the operator's next step differs.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::ContainerEngine;

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
}
