//! Swarm: every service mounts the current version of each secret.

use super::*;

/// Swarm: every service mounts the current version of each secret; no stale versions left.
/// `swarm` is what [`super::gather::swarm`] listed.
pub fn check_swarm(
    f: &mut Findings,
    swarm: &super::facts::SwarmFacts,
    stack: &str,
    locals: &[LocalSecret<'_>],
    state: &State,
) {
    let (secrets, services) = match swarm {
        Ok((s, v)) => (s, v),
        Err(e) => {
            f.add(Status::Fail, "swarm", stack, e);
            return;
        }
    };
    for local in locals {
        let name = &local.spec.name;
        let Some(saved) = state.secrets.get(name) else {
            continue;
        };
        let current =
            crate::deploy::swarm::version_label_from(saved.version.as_deref(), &saved.fingerprint);
        let versions: Vec<_> = secrets
            .iter()
            .filter(|s| s.secret_name(stack).as_deref() == Some(name))
            .collect();
        let mounted: Vec<_> = services
            .iter()
            .flat_map(|svc| svc.secrets.iter().map(move |m| (svc, m)))
            .filter_map(|(svc, m)| {
                versions
                    .iter()
                    .find(|v| v.id == m.secret_id)
                    .map(|v| (svc, *v))
            })
            .collect();
        for (svc, v) in &mounted {
            if v.version() == Some(current.as_str()) {
                f.add(
                    Status::Pass,
                    "swarm",
                    format!("{} / {name}", svc.name),
                    format!("mounts the current version ({})", v.name),
                );
            } else {
                f.add(
                    Status::Fail,
                    "swarm",
                    format!("{} / {name}", svc.name),
                    format!("mounts {}, not the current version {current}; run `compose-secrets rotate` or redeploy", v.name),
                );
            }
        }
        for v in versions.iter().filter(|v| {
            !mounted.iter().any(|(_, m)| m.id == v.id) && v.version() != Some(current.as_str())
        }) {
            f.add(
                Status::Warn,
                "swarm",
                name,
                format!("stale secret version {} is left behind", v.name),
            );
        }
    }
}
