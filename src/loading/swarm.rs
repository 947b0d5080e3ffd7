//! After a load on a swarm manager running the stack: every declared secret gets a swarm
//! secret holding its current version, and no version is ever copied twice.

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
        report.push(ReportItem::new(secret, verb).with_detail(created.name));
    }
    Ok(())
}
