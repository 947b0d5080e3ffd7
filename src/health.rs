//! The health gate: a restarted container is running, new, and healthy; then its HTTP check answers 2xx.

use std::time::{Duration, Instant};

use crate::docker::{ContainerEngine, ContainerInfo};
use crate::error::{Error, Result};

/// How often the gate looks again.
const POLL: Duration = Duration::from_millis(100);
/// One HTTP attempt may take this long before it counts as a failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// What the HTTP health check answered.
#[derive(Debug, Clone)]
pub struct HttpHealth {
    pub status: u16,
    pub body: Option<serde_json::Value>,
}

/// Wait until the container runs, has a `StartedAt` other than `previous_started_at`, and — if it
/// has a HEALTHCHECK — reports `healthy`. Fails at once if it exits, or at `timeout`.
pub async fn wait_container_ready(
    engine: &dyn ContainerEngine,
    id: &str,
    previous_started_at: Option<&str>,
    timeout: Duration,
) -> Result<ContainerInfo> {
    let started = Instant::now();
    loop {
        let info = engine.inspect(id).await?;
        let restarted = previous_started_at.is_none_or(|p| info.started_at.as_deref() != Some(p));
        if info.running && restarted {
            match info.health.as_deref() {
                None | Some("healthy") => return Ok(info),
                Some("unhealthy") => {
                    return Err(Error::Health {
                        message: format!("container {} is unhealthy after the restart", info.name),
                    })
                }
                _ => {}
            }
        }
        if !info.running && restarted && matches!(info.status.as_str(), "exited" | "dead") {
            return Err(Error::Health {
                message: format!(
                    "container {} exited after the restart (status {})",
                    info.name, info.status
                ),
            });
        }
        if started.elapsed() >= timeout {
            return Err(Error::Health {
                message: format!(
                    "container {} not ready within {}s (status {}, health {})",
                    info.name,
                    timeout.as_secs(),
                    info.status,
                    info.health.as_deref().unwrap_or("none")
                ),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// GET `url` until it answers 2xx or `timeout` passes.
pub async fn wait_http_healthy(url: &str, timeout: Duration) -> Result<HttpHealth> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Error::Usage(format!(
            "health URL {url} must be http:// or https://"
        )));
    }
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::Health {
            message: format!("cannot build an HTTP client for {url}: {e}"),
        })?;
    let started = Instant::now();
    loop {
        let last = match client.get(url).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                if response.status().is_success() {
                    let body = response
                        .bytes()
                        .await
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok());
                    return Ok(HttpHealth { status, body });
                }
                format!("HTTP {status}")
            }
            // The error names the URL and the cause; it never carries a body.
            Err(e) if e.is_timeout() => "timed out".to_string(),
            Err(_) => "connection failed".to_string(),
        };
        if started.elapsed() >= timeout {
            return Err(Error::Health {
                message: format!(
                    "{url} did not answer 2xx within {}s (last: {last})",
                    timeout.as_secs()
                ),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::MemoryEngine;
    use std::io::{Read as _, Write as _};

    #[tokio::test]
    async fn ready_after_restart_and_unhealthy_is_reported() {
        let engine = MemoryEngine::new();
        let a = engine.add("p", "web", 1, true);
        let before = engine.inspect(&a).await.unwrap().started_at;
        engine.restart(&a, Duration::ZERO).await.unwrap();
        wait_container_ready(&engine, &a, before.as_deref(), Duration::from_secs(1))
            .await
            .unwrap();

        engine.unhealthy_after_restart(&a);
        let before = engine.inspect(&a).await.unwrap().started_at;
        engine.restart(&a, Duration::ZERO).await.unwrap();
        let err = wait_container_ready(&engine, &a, before.as_deref(), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("unhealthy"), "{err}");
    }

    #[tokio::test]
    async fn not_restarted_times_out() {
        let engine = MemoryEngine::new();
        let a = engine.add("p", "web", 1, false);
        let same = engine.inspect(&a).await.unwrap().started_at;
        let err = wait_container_ready(&engine, &a, same.as_deref(), Duration::from_millis(250))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Health { .. }));
    }

    fn serve(status_line: &'static str, times: usize) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().take(times) {
                let mut stream = stream.unwrap();
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                let body = "{\"status\":\"ok\"}";
                let _ = write!(stream, "{status_line}\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{body}", body.len());
            }
        });
        url
    }

    #[tokio::test]
    async fn http_health_passes_on_2xx_and_fails_with_the_status() {
        let ok = serve("HTTP/1.1 200 OK", 1);
        let h = wait_http_healthy(&ok, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.body.unwrap()["status"], "ok");
        let bad = serve("HTTP/1.1 503 Service Unavailable", 100);
        let err = wait_http_healthy(&bad, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("HTTP 503"), "{err}");
    }
}
