//! After a load on a swarm manager running the stack: every declared secret gets a swarm
//! secret holding its current version (never copied twice), and services still mounting
//! another version (such as the unversioned `<stack>_<name>` that `docker stack deploy`
//! makes from a file) are rolled onto it, health-gated by Swarm, the old one removed after.

use super::Loaded;
use crate::deploy::swarm::{self, SwarmEngine, SwarmLoadAction};
use crate::error::Result;
use crate::files::layout::{Layout, OpenDirs};
use crate::files::state::State;
use crate::output::{Report, ReportItem};
use crate::secret::SecretValue;

pub async fn sync_swarm(
    engine: &dyn SwarmEngine,
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
        // Values fetched this run are in memory; unchanged ones are exactly what the file holds,
        // as bytes: a certificate's `pfx` part is not text, and Swarm takes any bytes.
        let value = match loaded.by_secret.get(secret) {
            Some(v) => v.clone(),
            None => match dirs.read(placement)? {
                Some(st) => SecretValue::binary(st.contents.to_vec()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::memory::MemorySwarm;
    use crate::files::layout::Placement;
    use crate::files::state::SecretState;

    /// A project directory whose `certs/tls-pfx` holds `bytes`, the state as a load left it.
    fn loaded_before(dir: &std::path::Path, bytes: &[u8]) -> (Layout, State) {
        let certs = dir.join("certs");
        std::fs::create_dir(&certs).unwrap();
        std::fs::write(certs.join("tls-pfx"), bytes).unwrap();
        let layout = Layout {
            project_dir: dir.to_path_buf(),
            runtime_dir: dir.join(".runtime"),
            secrets_dir: dir.join(".runtime/secrets"),
            placements: vec![Placement {
                secret: "tls-pfx".into(),
                path: certs.join("tls-pfx"),
                dir: certs,
                file_name: "tls-pfx".into(),
            }],
            protected: Default::default(),
        };
        let mut state = State::new("test");
        state.secrets.insert(
            "tls-pfx".into(),
            SecretState {
                version: Some("0123456789abcdef".into()),
                updated: None,
                fingerprint: "hmac:00".into(),
                checked_at: 0,
            },
        );
        (layout, state)
    }

    #[tokio::test]
    async fn a_file_that_is_not_text_goes_to_the_swarm_as_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        // The start of a DER-encoded PKCS#12; 0xff and 0xfe are never UTF-8.
        let pfx = [0x30, 0x82, 0x0a, 0xff, 0x02, 0x01, 0x03, 0x00, 0xfe];
        let (layout, state) = loaded_before(dir.path(), &pfx);
        let swarm = MemorySwarm::new();
        let mut report = Report::new("load", "test", false);
        // Nothing fetched this run: the value comes from the file.
        sync_swarm(
            &swarm,
            "st",
            &layout,
            &state,
            &Loaded::default(),
            &mut report,
        )
        .await
        .unwrap();
        let name = swarm::versioned_name("st", "tls-pfx", "0123456789ab");
        assert_eq!(swarm.secret_names(), vec![name.clone()]);
        let held = swarm.secret_value(&name).expect("the swarm secret");
        assert_eq!(held.expose_bytes(), pfx, "the file's bytes, as they are");
        assert!(report
            .items
            .iter()
            .any(|i| i.name == "tls-pfx" && i.action == "swarm-created"));
    }
}
