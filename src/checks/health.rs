//! HTTP health of the services that declare a `health-url`.

use super::*;

/// HTTP health checks of the services that declare a `health-url` and have a running container.
pub async fn check_http_health(f: &mut Findings, manifest: &Project, running: &[String]) {
    for service in manifest.services.values() {
        let Some(url) = &service.health_url else {
            continue;
        };
        let subject = format!("service {}", service.name);
        if !running.contains(&service.name) {
            f.add(
                Status::Skip,
                "health",
                subject,
                "no running container to check",
            );
            continue;
        }
        if url.contains('{') {
            f.add(
                Status::Skip,
                "health",
                subject,
                "per-container health URL; checked by rotate",
            );
            continue;
        }
        match crate::deploy::health::wait_http_healthy(url, HTTP_HEALTH_TIMEOUT).await {
            Ok(h) => f.add(
                Status::Pass,
                "health",
                subject,
                format!("{url}: HTTP {}", h.status),
            ),
            Err(e) => f.add(Status::Fail, "health", subject, e.to_string()),
        }
    }
}
