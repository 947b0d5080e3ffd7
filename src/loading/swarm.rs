//! After a load on a swarm manager running the stack: every declared secret gets a swarm
//! secret holding its current version (never copied twice), and services still mounting
//! another version (such as the unversioned `<stack>_<name>` that `docker stack deploy`
//! makes from a file) are rolled onto it, health-gated by Swarm, the old one removed after.

use super::Loaded;
use crate::deploy::swarm::{self, SwarmEngine as _, SwarmLoadAction};
use crate::deploy::DockerEngine;
use crate::error::{Error, Result};
use crate::files::layout::{Layout, OpenDirs};
use crate::files::state::State;
use crate::output::{Report, ReportItem};
use crate::secret::SecretValue;

pub async fn sync_swarm(
    engine: &DockerEngine,
    stack: &str,
    layout: &Layout,
    state: &State,
    loaded: &Loaded,
    report: &mut Report,
) -> Result<()> {
    let existing = engine.stack_secrets(stack).await?;
    let dirs = OpenDirs::open(layout, false)?;
    for placement in &layout.placements {
        let secret = &placement.secret;
        let Some(entry) = state.secrets.get(secret) else {
            continue;
        };
        let version = swarm::version_label_from(entry.version.as_deref(), &entry.fingerprint);
        // Values fetched this run are in memory; unchanged ones are exactly what the file holds.
        let value = match loaded.by_secret.get(secret) {
            Some(v) => v.clone(),
            None => match dirs.read(placement)? {
                Some(st) => SecretValue::from_bytes(st.contents.to_vec()).map_err(|_| {
                    Error::manifest(
                        secret,
                        "the secret file is not UTF-8; reload it with --no-cache",
                    )
                })?,
                None => continue,
            },
        };
        let (created, action) =
            swarm::ensure_secret(engine, stack, secret, &version, &value, &existing).await?;
        let verb = match action {
            SwarmLoadAction::Created(_) => "swarm-created",
            SwarmLoadAction::Unchanged(_) => "swarm-unchanged",
        };
        report.push(ReportItem::new(secret, verb).with_detail(created.name.clone()));
        let rollout = swarm::roll_out(
            engine,
            stack,
            secret,
            &created,
            swarm::MONITOR,
            swarm::LOAD_ROLLOUT_TIMEOUT,
        )
        .await?;
        for service in rollout.services_updated {
            report.push(
                ReportItem::new(secret, "swarm-updated")
                    .with_detail(format!("service {service} now mounts {}", created.name)),
            );
        }
        for removed in rollout.secrets_removed {
            report.push(ReportItem::new(secret, "swarm-removed").with_detail(removed));
        }
    }
    Ok(())
}
