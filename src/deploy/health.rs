//! The health gate: a restarted container is running, new, and healthy; then its HTTP check answers 2xx.
//!
//! Engine-agnostic: it sees containers only through [`ContainerEngine`], so the same gate
//! runs against Docker and the in-memory twin. Messages name the container, its service
//! and the last status seen; they never carry a response body (it could hold anything).

use std::time::{Duration, Instant};

use crate::deploy::{ContainerEngine, ContainerInfo};
use crate::error::{Error, Result};

/// How often the gate looks again.
const POLL: Duration = Duration::from_millis(100);
/// One HTTP attempt may take this long before it counts as a failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// What the HTTP health check answered: the status only. The gate reads no body, so a
/// service cannot make it buffer or parse anything.
#[derive(Debug, Clone)]
pub struct HttpHealth {
    pub status: u16,
}

/// Wait until the container runs, has a `StartedAt` other than `previous_started_at`, and — if it
/// has a HEALTHCHECK — reports `healthy`. Fails at once if it exits or turns `unhealthy`, or at `timeout`.
pub async fn wait_container_ready(
    engine: &dyn ContainerEngine,
    id: &str,
    previous_started_at: Option<&str>,
    timeout: Duration,
) -> Result<ContainerInfo> {
    let started = Instant::now();
    loop {
        let info = engine.inspect(id).await?;
        match readiness(&info, previous_started_at) {
            Readiness::Ready => return Ok(info),
            Readiness::Failed(why) => {
                return Err(Error::Health {
                    message: format!("{} {why}", describe(&info)),
                })
            }
            Readiness::NotYet => {}
        }
        if started.elapsed() >= timeout {
            return Err(Error::Health {
                message: format!(
                    "{} not ready within {}s (status {}, health {}{})",
                    describe(&info),
                    timeout.as_secs_f32().ceil(),
                    or_unknown(&info.status),
                    info.health.as_deref().unwrap_or("none"),
                    if is_new(&info, previous_started_at) {
                        ""
                    } else {
                        ", not restarted yet"
                    }
                ),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

enum Readiness {
    Ready,
    NotYet,
    Failed(String),
}

fn readiness(info: &ContainerInfo, previous_started_at: Option<&str>) -> Readiness {
    if !is_new(info, previous_started_at) {
        return Readiness::NotYet;
    }
    if !info.running {
        // Still being created or restarted: wait. Exited or dead: it will not come back by itself.
        return if matches!(info.status.as_str(), "exited" | "dead") {
            Readiness::Failed(format!("exited after the restart (status {})", info.status))
        } else {
            Readiness::NotYet
        };
    }
    // Docker keeps `running` true while a crash-looping container restarts, and while paused.
    if matches!(info.status.as_str(), "restarting" | "paused") {
        return Readiness::NotYet;
    }
    match info.health.as_deref() {
        None | Some("healthy") => Readiness::Ready,
        // Docker says so only after the image's retries failed in a row: no point waiting.
        Some("unhealthy") => Readiness::Failed("is unhealthy after the restart".into()),
        Some(_) => Readiness::NotYet,
    }
}

/// Whether this is a run that began after the one we knew (any run when we knew none).
fn is_new(info: &ContainerInfo, previous_started_at: Option<&str>) -> bool {
    previous_started_at.is_none_or(|p| info.started_at.as_deref() != Some(p))
}

fn describe(info: &ContainerInfo) -> String {
    let name = if info.name.is_empty() {
        &info.id
    } else {
        &info.name
    };
    if info.service.is_empty() {
        format!("container {name}")
    } else {
        format!("container {name} (service {})", info.service)
    }
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() {
        "unknown"
    } else {
        s
    }
}

/// GET `url` until it answers 2xx or `timeout` passes. Only `http://` and `https://` URLs.
pub async fn wait_http_healthy(url: &str, timeout: Duration) -> Result<HttpHealth> {
    check_url(url)?;
    // reqwest is built without a crypto provider of its own (one provider, ring, in the
    // product): install it before any client is built; a second call is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if url
        .get(.."http://".len())
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
    {
        // Plain HTTP needs no trust roots: without this, building the client fails where none
        // are installed (compose-secrets' own FROM scratch image).
        builder = builder.tls_certs_only(std::iter::empty());
    }
    let client = builder.build().map_err(|e| Error::Health {
        message: format!("cannot build an HTTP client for {url}: {}", cause(&e)),
    })?;
    let started = Instant::now();
    loop {
        // Never let one slow attempt overrun the whole budget.
        let attempt_timeout = REQUEST_TIMEOUT
            .min(timeout.saturating_sub(started.elapsed()))
            .max(Duration::from_millis(100));
        let last = match client.get(url).timeout(attempt_timeout).send().await {
            Ok(response) if response.status().is_success() => {
                return Ok(HttpHealth {
                    status: response.status().as_u16(),
                })
            }
            Ok(response) => format!("HTTP {}", response.status().as_u16()),
            Err(e) if e.is_timeout() => {
                format!("no answer within {}ms", attempt_timeout.as_millis())
            }
            Err(e) => cause(&e),
        };
        if started.elapsed() >= timeout {
            return Err(Error::Health {
                message: format!(
                    "{url} did not answer 2xx within {}s (last: {last})",
                    timeout.as_secs_f32().ceil()
                ),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

fn check_url(url: &str) -> Result<()> {
    let scheme_ok = ["http://", "https://"].iter().any(|scheme| {
        url.get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    });
    if scheme_ok && url.len() > "https://".len() {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "health URL {url:?} must be an http:// or https:// URL"
        )))
    }
}

/// The innermost cause ("Connection refused", "dns error: ..."): what a user can act on.
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = e;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::memory::MemoryEngine;
    use std::io::{Read as _, Write as _};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn ready_after_restart_and_unhealthy_is_reported() {
        let engine = MemoryEngine::new();
        let a = engine.add("p", "web", 1, true);
        let before = engine.inspect(&a).await.unwrap().started_at;
        engine.restart(&a, Duration::ZERO).await.unwrap();
        let ready = wait_container_ready(&engine, &a, before.as_deref(), Duration::from_secs(1))
            .await
            .unwrap();
        assert_ne!(ready.started_at, before);

        engine.unhealthy_after_restart(&a);
        let before = engine.inspect(&a).await.unwrap().started_at;
        engine.restart(&a, Duration::ZERO).await.unwrap();
        let err = wait_container_ready(&engine, &a, before.as_deref(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Health { .. }));
        let message = err.to_string();
        assert!(message.contains("unhealthy"), "{message}");
        assert!(message.contains("p_web_1"), "{message}");
        assert!(message.contains("service web"), "{message}");
    }

    #[tokio::test]
    async fn not_restarted_times_out_naming_the_container_and_status() {
        let engine = MemoryEngine::new();
        let a = engine.add("p", "web", 1, false);
        let same = engine.inspect(&a).await.unwrap().started_at;
        let err = wait_container_ready(&engine, &a, same.as_deref(), Duration::from_millis(250))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Health { .. }));
        let message = err.to_string();
        assert!(message.contains("p_web_1"), "{message}");
        assert!(message.contains("status running"), "{message}");
        assert!(message.contains("not restarted yet"), "{message}");
    }

    #[tokio::test]
    async fn waits_through_starting_until_healthy() {
        let engine = Arc::new(MemoryEngine::new());
        let a = engine.add("p", "web", 1, true);
        engine.update(&a, |c| c.health = Some("starting".into()));
        let later = Arc::clone(&engine);
        let id = a.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            later.update(&id, |c| c.health = Some("healthy".into()));
        });
        let started = Instant::now();
        let ready = wait_container_ready(engine.as_ref(), &a, None, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(ready.health.as_deref(), Some("healthy"));
        assert!(started.elapsed() >= Duration::from_millis(250));
    }

    #[tokio::test]
    async fn an_exited_container_fails_at_once() {
        let engine = MemoryEngine::new();
        let a = engine.add("p", "worker", 1, false);
        engine.update(&a, |c| {
            c.running = false;
            c.status = "exited".into();
        });
        let started = Instant::now();
        let err = wait_container_ready(&engine, &a, None, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(err.to_string().contains("exited"), "{err}");
        assert!(err.to_string().contains("service worker"), "{err}");
    }

    #[tokio::test]
    async fn restarting_or_paused_is_not_ready() {
        let engine = MemoryEngine::new();
        let a = engine.add("p", "web", 1, false);
        for status in ["restarting", "paused"] {
            engine.update(&a, |c| c.status = status.into());
            let err = wait_container_ready(&engine, &a, None, Duration::from_millis(200))
                .await
                .unwrap_err();
            assert!(err.to_string().contains(status), "{err}");
        }
    }

    #[tokio::test]
    async fn engine_errors_pass_through_unchanged() {
        let engine = MemoryEngine::new();
        let err = wait_container_ready(&engine, "nope", None, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Docker { .. }), "{err:?}");
    }

    /// Answers `statuses` in turn (the last one repeats), counting requests.
    fn serve(statuses: &'static [&'static str]) -> (String, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        std::thread::spawn(move || {
            for stream in listener.incoming().take(200) {
                let Ok(mut stream) = stream else { continue };
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let status_line = statuses[n.min(statuses.len() - 1)];
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                let body = "{\"status\":\"ok\"}";
                let _ = write!(stream, "{status_line}\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{body}", body.len());
            }
        });
        (url, count)
    }

    #[tokio::test]
    async fn http_health_passes_on_2xx_and_fails_with_the_status() {
        let (ok, _) = serve(&["HTTP/1.1 200 OK"]);
        let h = wait_http_healthy(&ok, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(h.status, 200);
        let (bad, _) = serve(&["HTTP/1.1 503 Service Unavailable"]);
        let err = wait_http_healthy(&bad, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Health { .. }));
        assert!(err.to_string().contains("HTTP 503"), "{err}");
        assert!(err.to_string().contains(&bad), "{err}");
    }

    #[tokio::test]
    async fn http_health_retries_until_2xx() {
        let (url, count) = serve(&[
            "HTTP/1.1 503 Service Unavailable",
            "HTTP/1.1 502 Bad Gateway",
            "HTTP/1.1 204 No Content",
        ]);
        let h = wait_http_healthy(&url, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(h.status, 204);
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn http_health_reports_a_refused_connection_in_time() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/health");
        let started = Instant::now();
        let err = wait_http_healthy(&url, Duration::from_millis(400))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(matches!(err, Error::Health { .. }));
        assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
    }

    #[tokio::test]
    async fn only_http_urls_are_checked() {
        for url in [
            "file:///etc/passwd",
            "ftp://x/health",
            "127.0.0.1:8000",
            "http://",
        ] {
            let err = wait_http_healthy(url, Duration::from_millis(100))
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Usage(_)), "{url}: {err:?}");
        }
        assert!(check_url("HTTPS://example.test/health").is_ok());
    }
}
