//! `sync` of the parts of one certificate (`x-compose-secrets.certificate`) as one step: a
//! renewed version is written to every part's file, the services that use any part are
//! restarted once behind their health gates, and a failure puts every part back together.
//!
//! A key and a certificate that do not belong together make a TLS server fail to start, so
//! the parts never move one at a time as separate secrets do (`sync::follow`).

use super::apply::{apply, open_dir, NewValue, Progress};
use super::rollback::{restart_back, restore_local};
use super::sync::hold_version;
use super::{finish, record_intent, Previous, RotationRecord, Run, SecretPlan, ServiceTarget};
use crate::audit::{Action, HealthResult, Outcome};
use crate::error::Error;
use crate::files::secret_dir::SecretDir;
use crate::store::FetchedSecret;

/// Apply one version to every part in `parts` (plans with what the store answered for each),
/// restarting each user once. One record per part, in order.
pub async fn follow_together(
    run: &mut Run<'_>,
    parts: &[(&SecretPlan, &FetchedSecret)],
) -> Vec<RotationRecord> {
    let mut records = Vec::new();
    let mut opened: Vec<(SecretDir, Previous)> = Vec::new();
    let mut failed_open = None;
    for (plan, fetched) in parts {
        let mut record = RotationRecord::new(plan, Action::Sync);
        let state = run.state.secrets.get(&plan.spec.name).cloned();
        record.old_version = state.as_ref().map(super::sync::version_of);
        record.new_version = fetched
            .info
            .version
            .clone()
            .or_else(|| Some(fetched.value.fingerprint(&run.fingerprints)));
        let one = open_dir(plan).and_then(|dir| {
            let file = dir.read(&plan.placement.file_name)?;
            Ok((dir, file))
        });
        match one {
            Ok((dir, file)) => opened.push((
                dir,
                Previous {
                    store: None,
                    file,
                    state,
                },
            )),
            Err(e) if failed_open.is_none() => failed_open = Some((records.len(), e)),
            Err(_) => {}
        }
        records.push(record);
    }
    if let Some((at, e)) = failed_open {
        return not_opened(run, records, at, e);
    }
    // From the intent lines to the outcome lines, a signal waits (see `crate::interrupt`).
    let _step = crate::interrupt::step();
    for record in &mut records {
        if !record_intent(run, record) {
            return records;
        }
    }
    let mut progress: Vec<Progress> = parts.iter().map(|_| Progress::default()).collect();
    let failure = forward(run, parts, &opened, &mut records, &mut progress).await;
    let Err((at, failure)) = failure else {
        return records
            .into_iter()
            .zip(progress)
            .map(|(record, progress)| committed(run, record, progress))
            .collect();
    };
    roll_back_all(run, parts, &opened, records, &progress, at, failure).await
}

/// A part's directory or file could not be read: nothing was written, every part fails.
fn not_opened(
    run: &mut Run<'_>,
    records: Vec<RotationRecord>,
    at: usize,
    e: Error,
) -> Vec<RotationRecord> {
    let name = records[at].secret.clone();
    let mut e = Some(e);
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let own = if i == at { e.take() } else { None };
            let error = own.unwrap_or_else(|| {
                Error::manifest(
                    &r.secret,
                    format!(
                        "not synced: `{name}`, a part of the same certificate, could not be opened"
                    ),
                )
            });
            finish(run, r.fail(Outcome::Failed, error))
        })
        .collect()
}

/// A part written, with the users of every part restarted and healthy.
fn committed(run: &mut Run<'_>, mut record: RotationRecord, progress: Progress) -> RotationRecord {
    record.health = if progress.restarted.is_empty() {
        HealthResult::Skipped
    } else {
        HealthResult::Passed
    };
    record.restarted = progress.restarted;
    if run.state.held.remove(&record.secret).is_some() {
        record.step("released", "the version held earlier is applied now");
    }
    record.step(
        "synced",
        "committed, with the other parts of its certificate",
    );
    finish(run, record)
}

/// Write every part's file and state without restarting, then restart the users of all the
/// parts once, on the last part. The index of the part that failed, with its error.
async fn forward(
    run: &mut Run<'_>,
    parts: &[(&SecretPlan, &FetchedSecret)],
    opened: &[(SecretDir, Previous)],
    records: &mut [RotationRecord],
    progress: &mut [Progress],
) -> Result<(), (usize, Error)> {
    let restart = run.settings.restart;
    let last = parts.len() - 1;
    let mut users: Vec<ServiceTarget> = Vec::new();
    for (plan, _) in parts {
        for service in &plan.services {
            if !users.iter().any(|u| u.service == service.service) {
                users.push(service.clone());
            }
        }
    }
    for (i, (plan, fetched)) in parts.iter().enumerate() {
        let merged = SecretPlan {
            services: users.clone(),
            ..(*plan).clone()
        };
        let plan = if i == last { &merged } else { *plan };
        run.settings.restart = restart && i == last;
        let next = NewValue::fetched(plan, &opened[i].0, fetched);
        let applied = apply(run, &next, &mut records[i], &mut progress[i]).await;
        if restart && i != last {
            // apply's "not restarted" line: these users restart once, after the last part.
            records[i].steps.pop();
        }
        if let Err(e) = applied {
            run.settings.restart = restart;
            return Err((i, e));
        }
    }
    run.settings.restart = restart;
    Ok(())
}

/// How a part ends after the rollback: rollback failed (what is left named), held, or
/// rolled back.
fn outcome(record: RotationRecord, cause: Error, hold: bool, left: Vec<String>) -> RotationRecord {
    let secret = record.secret.clone();
    let version = super::short(record.new_version.as_deref());
    let cause = Box::new(cause);
    if !left.is_empty() {
        return record.fail(
            Outcome::RollbackFailed,
            Error::RollbackFailed {
                secret,
                cause,
                left,
            },
        );
    }
    let mut record = record;
    record.step(
        "rolled-back",
        "previous value restored with the other parts",
    );
    if hold {
        record.fail(
            Outcome::SyncHeld,
            Error::SyncHeld {
                secret,
                version,
                cause,
            },
        )
    } else {
        record.fail(Outcome::RolledBack, Error::RolledBack { secret, cause })
    }
}

/// Every part back to its previous file and state, the restarted containers back onto them,
/// and (for a failed health gate) the version held for every part.
async fn roll_back_all(
    run: &mut Run<'_>,
    parts: &[(&SecretPlan, &FetchedSecret)],
    opened: &[(SecretDir, Previous)],
    mut records: Vec<RotationRecord>,
    progress: &[Progress],
    at: usize,
    failure: Error,
) -> Vec<RotationRecord> {
    let failed_name = records[at].secret.clone();
    records[at].step("failed", failure.to_string());
    let mut left = Vec::new();
    for (i, (plan, _)) in parts.iter().enumerate() {
        let (dir, previous) = &opened[i];
        restore_local(
            run,
            plan,
            dir,
            previous,
            &progress[i],
            &mut records[i],
            &mut left,
        );
    }
    if !progress[at].restarted.is_empty() {
        records[at].health = HealthResult::Failed;
    }
    restart_back(run, &progress[at], &mut records[at], &mut left).await;
    records[at]
        .restarted
        .splice(0..0, progress[at].restarted.iter().cloned());
    let hold = matches!(failure.innermost(), Error::Health { .. });
    let reason = failure.to_string();
    let mut failure = Some(failure);
    let mut out = Vec::new();
    for (i, ((_, fetched), mut record)) in parts.iter().zip(records).enumerate() {
        let own = if i == at { failure.take() } else { None };
        let cause = match own {
            Some(own) => own,
            None if hold => Error::Health {
                message: format!("`{failed_name}`, a part of the same certificate: {reason}"),
            },
            None => Error::within(
                format!("`{failed_name}`, a part of the same certificate"),
                Error::Health {
                    message: reason.clone(),
                },
            ),
        };
        if hold {
            hold_version(run, &mut record, fetched, &reason);
        }
        let left = if i == at {
            std::mem::take(&mut left)
        } else {
            Vec::new()
        };
        let record = outcome(record, cause, hold, left);
        out.push(finish(run, record));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::super::tests::ScriptedEngine;
    use super::super::{plan, Settings};
    use super::*;
    use crate::audit::{AuditKey, AuditLog};
    use crate::compose::{Project, ProjectOptions};
    use crate::files::runtime_dir::RuntimeDir;
    use crate::files::secret_dir::Owner;
    use crate::files::state::SecretState;
    use crate::files::state::State;
    use crate::secret::FingerprintKey;
    use crate::secret::SecretValue;
    use crate::store::memory::MemoryStore;

    /// `web` reads the key and the fullchain, `proxy` the fullchain, of one certificate.
    const COMPOSE: &str = r#"name: proj
services:
  web:
    image: x
    secrets: [tls-key, tls-fullchain]
  proxy:
    image: x
    secrets: [tls-fullchain]
secrets:
  tls-key:
    file: ./secrets/tls-key
    x-compose-secrets: {vault-name: web-tls, certificate: key}
  tls-fullchain:
    file: ./secrets/tls-fullchain
    x-compose-secrets: {vault-name: web-tls, certificate: fullchain}
"#;

    struct Parts {
        dir: tempfile::TempDir,
        manifest: Project,
        store: MemoryStore,
        engine: ScriptedEngine,
        fingerprints: FingerprintKey,
    }

    impl Parts {
        async fn new() -> Parts {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("compose.yaml"), COMPOSE).unwrap();
            let manifest = Project::load(&ProjectOptions {
                cwd: dir.path().to_path_buf(),
                ..ProjectOptions::default()
            })
            .unwrap();
            let secrets = SecretDir::open(&dir.path().join("secrets"), true).unwrap();
            let runtime = RuntimeDir::open(&dir.path().join(".runtime"), true)
                .unwrap()
                .unwrap();
            let mut state = State::read(Some(&runtime), "memory").unwrap();
            let fingerprints = FingerprintKey::random();
            for name in ["tls-key", "tls-fullchain"] {
                let old = SecretValue::new(format!("{name}-old"));
                secrets
                    .write_atomic(name, old.expose_bytes(), 0o400, Owner::default())
                    .unwrap();
                state.secrets.insert(
                    name.into(),
                    SecretState {
                        version: Some("v1".into()),
                        updated: None,
                        fingerprint: old.fingerprint(&fingerprints),
                        checked_at: 0,
                    },
                );
            }
            state.write(&runtime).unwrap();
            let engine =
                ScriptedEngine::with(&[("web", "proj-web-1", 1), ("proxy", "proj-proxy-1", 1)]);
            Parts {
                dir,
                manifest,
                store: MemoryStore::new(),
                engine,
                fingerprints,
            }
        }

        fn plans(&self) -> Vec<SecretPlan> {
            let layout = super::super::tests::demo_layout(self.dir.path(), &self.manifest);
            let specs: Vec<_> = ["tls-key", "tls-fullchain"]
                .iter()
                .map(|n| self.manifest.secret(n).unwrap())
                .collect();
            plan(
                &self.manifest,
                &layout,
                &self.store,
                &specs,
                Some(&self.engine.all()),
                None,
            )
            .unwrap()
        }

        async fn sync(&self) -> Vec<RotationRecord> {
            let runtime = RuntimeDir::open(&self.dir.path().join(".runtime"), true)
                .unwrap()
                .unwrap();
            let key = AuditKey::local(&runtime, true).unwrap().unwrap();
            let mut run = Run {
                store: &self.store,
                engine: Some(&self.engine),
                settings: Settings {
                    restart: true,
                    health_timeout: Duration::from_secs(2),
                    stop_timeout: Duration::from_secs(1),
                    hook_timeout: Duration::from_secs(1),
                    hook_dir: self.dir.path().to_path_buf(),
                    rotated_by: "tester@host".into(),
                    shown_from: PathBuf::from("/"),
                },
                swarm: None,
                runtime: &runtime,
                fingerprints: self.fingerprints.clone(),
                state: State::read(Some(&runtime), "memory").unwrap(),
                audit: AuditLog::new(&runtime, key),
            };
            let plans = self.plans();
            let fetched: Vec<FetchedSecret> = ["tls-key", "tls-fullchain"]
                .iter()
                .map(|n| FetchedSecret {
                    value: SecretValue::new(format!("{n}-new")),
                    info: crate::store::VersionInfo {
                        name: "web-tls".into(),
                        version: Some("v2".into()),
                        enabled: true,
                        ..Default::default()
                    },
                })
                .collect();
            let parts: Vec<_> = plans.iter().zip(&fetched).collect();
            follow_together(&mut run, &parts).await
        }

        fn file(&self, name: &str) -> String {
            std::fs::read_to_string(self.dir.path().join("secrets").join(name)).unwrap()
        }

        fn state(&self) -> State {
            let runtime = RuntimeDir::open(&self.dir.path().join(".runtime"), true)
                .unwrap()
                .unwrap();
            State::read(Some(&runtime), "memory").unwrap()
        }
    }

    #[tokio::test]
    async fn every_part_is_written_before_each_user_restarts_once() {
        let f = Parts::new().await;
        let mut records = f.sync().await;
        for r in &mut records {
            assert!(r.take_error().is_none(), "{:?}", r.steps);
            assert_eq!(r.outcome, Outcome::Ok);
        }
        assert_eq!(f.file("tls-key"), "tls-key-new");
        assert_eq!(f.file("tls-fullchain"), "tls-fullchain-new");
        // Each container once, though `web` reads both parts.
        let mut restarts = f.engine.restarts();
        restarts.sort();
        assert_eq!(restarts, ["proj-proxy-1", "proj-web-1"]);
        let state = f.state();
        assert_eq!(state.secrets["tls-key"].version.as_deref(), Some("v2"));
        assert_eq!(
            state.secrets["tls-fullchain"].version.as_deref(),
            Some("v2")
        );
    }

    #[tokio::test]
    async fn an_unhealthy_user_puts_every_part_back_and_holds_the_version() {
        let f = Parts::new().await;
        f.engine.unhealthy_after("proj-proxy-1", 1);
        let mut records = f.sync().await;
        let errors: Vec<Error> = records.iter_mut().filter_map(|r| r.take_error()).collect();
        assert_eq!(errors.len(), 2, "both parts report");
        assert!(
            errors.iter().all(|e| matches!(e, Error::SyncHeld { .. })),
            "{errors:?}"
        );
        assert_eq!(f.file("tls-key"), "tls-key-old", "the key goes back too");
        assert_eq!(f.file("tls-fullchain"), "tls-fullchain-old");
        let state = f.state();
        assert_eq!(state.secrets["tls-key"].version.as_deref(), Some("v1"));
        assert!(state.held.contains_key("tls-key") && state.held.contains_key("tls-fullchain"));
        // Forward once each, then back once each.
        let restarts = f.engine.restarts();
        assert_eq!(restarts.len(), 4, "{restarts:?}");
    }
}
