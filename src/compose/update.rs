//! A service's `deploy.update_config` and what decides whether it can run twice at once
//! (`container_name`, fixed host ports), for rotations that start the new container first.

use std::time::Duration;

use serde_norway::Value;

use super::merge::scalar_text;

/// `deploy.update_config` as a rotation reads it. Plain `docker compose up` ignores it;
/// Swarm and compose-secrets' start-first replacement honour it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateConfig {
    /// `order: start-first`: the new container runs and is healthy before the old one stops.
    pub start_first: bool,
    /// `monitor`: how long the new container must stay healthy before the old one goes.
    pub monitor: Option<Duration>,
    /// `delay`: the pause between two containers of the service.
    pub delay: Option<Duration>,
    /// `failure_action`, as written (`rollback`, `pause`, `continue`).
    pub failure_action: Option<String>,
}

/// What stops a second container of the service from running beside the first: the key that
/// says so, for the refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Singleton {
    ContainerName(String),
    HostPort(String),
}

impl std::fmt::Display for Singleton {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Singleton::ContainerName(n) => write!(f, "`container_name: {n}`"),
            Singleton::HostPort(p) => write!(f, "`ports: {p}` (a fixed host port)"),
        }
    }
}

pub(super) fn update_config(body: &Value) -> Option<UpdateConfig> {
    let config = body.get("deploy")?.get("update_config")?;
    let text = |k: &str| config.get(k).map(scalar_text).filter(|s| !s.is_empty());
    Some(UpdateConfig {
        start_first: text("order").as_deref() == Some("start-first"),
        monitor: text("monitor").as_deref().and_then(go_duration),
        delay: text("delay").as_deref().and_then(go_duration),
        failure_action: text("failure_action"),
    })
}

/// `container_name`, then each `ports:` entry that names a host port (short or long syntax).
pub(super) fn singletons(body: &Value) -> Vec<Singleton> {
    let mut out = Vec::new();
    if let Some(name) = body.get("container_name").map(scalar_text) {
        if !name.is_empty() {
            out.push(Singleton::ContainerName(name));
        }
    }
    for port in body
        .get("ports")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let fixed = match port {
            Value::Mapping(_) => port
                .get("published")
                .map(scalar_text)
                .filter(|p| !p.is_empty())
                .map(|p| format!("published: {p}")),
            other => {
                let text = scalar_text(other);
                short_host_port(&text).then_some(text)
            }
        };
        out.extend(fixed.map(Singleton::HostPort));
    }
    out
}

/// `8080:80`, `127.0.0.1:8080:80/tcp` name a host port; `80` and `127.0.0.1::80` do not.
fn short_host_port(text: &str) -> bool {
    let spec = text.split('/').next().unwrap_or_default();
    // An IPv6 host address is bracketed; what follows it is `:host:container`.
    let spec = spec.rsplit_once(']').map_or(spec, |(_, rest)| rest);
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        [_] => false,
        [host, _] => !host.is_empty(),
        [.., host, _] => !host.is_empty(),
        [] => false,
    }
}

/// A Go duration as Compose writes them: `10s`, `1m30s`, `500ms`, `1h`.
pub fn go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let seconds = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        let n: f64 = number.parse().ok()?;
        total += Duration::try_from_secs_f64(n * seconds).ok()?;
        rest = tail;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_norway::from_str(text).unwrap()
    }

    #[test]
    fn update_config_reads_order_monitor_delay_and_failure_action() {
        let body = yaml(
            "deploy:\n  update_config:\n    order: start-first\n    monitor: 1m30s\n    delay: 500ms\n    failure_action: rollback\n",
        );
        assert_eq!(
            update_config(&body),
            Some(UpdateConfig {
                start_first: true,
                monitor: Some(Duration::from_secs(90)),
                delay: Some(Duration::from_millis(500)),
                failure_action: Some("rollback".into()),
            })
        );
        let stop_first = yaml("deploy:\n  update_config:\n    order: stop-first\n");
        assert!(!update_config(&stop_first).unwrap().start_first);
        assert_eq!(update_config(&yaml("image: x\n")), None);
    }

    #[test]
    fn fixed_host_ports_and_container_name_are_singletons() {
        let body = yaml(
            "container_name: web\nports:\n  - \"80\"\n  - \"127.0.0.1::81\"\n  - \"8080:80\"\n  - \"127.0.0.1:8443:443/tcp\"\n  - target: 90\n  - target: 91\n    published: \"9091\"\n",
        );
        assert_eq!(
            singletons(&body),
            vec![
                Singleton::ContainerName("web".into()),
                Singleton::HostPort("8080:80".into()),
                Singleton::HostPort("127.0.0.1:8443:443/tcp".into()),
                Singleton::HostPort("published: 9091".into()),
            ]
        );
        assert!(singletons(&yaml("ports: [\"80\", \"[::1]::80\"]\n")).is_empty());
    }

    #[test]
    fn go_durations_add_up_and_nonsense_is_none() {
        assert_eq!(go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(go_duration("1h1m1s"), Some(Duration::from_secs(3661)));
        assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(go_duration("0"), Some(Duration::ZERO));
        assert_eq!(go_duration("10"), None);
        assert_eq!(go_duration("ten seconds"), None);
    }
}
