//! HTTP health of the services that declare a `health-url`.

use super::*;

/// HTTP health of the services that declare a `health-url`: `answers` is what
/// [`super::gather::http_health`] got from those with a running container.
pub fn check_http_health(
    f: &mut Findings,
    manifest: &Project,
    running: &[String],
    answers: &BTreeMap<String, std::result::Result<u16, String>>,
) {
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
        match answers.get(&service.name) {
            Some(Ok(status)) => f.add(
                Status::Pass,
                "health",
                subject,
                format!("{url}: HTTP {status}"),
            ),
            Some(Err(why)) => f.add(Status::Fail, "health", subject, why),
            None => f.add(Status::Fail, "health", subject, "not asked"),
        }
    }
}
