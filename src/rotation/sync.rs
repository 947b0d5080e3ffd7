//! The rotate transaction minus the push, for `sync`: a version set elsewhere (the portal, an
//! Azure Function, another host's `rotate`) is written to the file and the services that use it
//! are restarted one at a time behind their health gates.
//!
//! The store is not ours to undo. When the new version makes a service unhealthy, the file and
//! the state go back to the previous version, the containers are restarted onto it, and the
//! version is recorded as held in the state, so the next `sync` leaves it alone until the store
//! moves on or `sync --retry-held`. The rotation hook is not run: it belongs to whoever set the
//! version.

use super::apply::{apply, open_dir, NewValue, Progress};
use super::rollback::{restart_back, restore_local};
use super::{
    committed, finish, forward_failed, record_intent, rolled_back_restarts, undone, Previous,
    RotationRecord, Run, SecretPlan,
};
use crate::audit::{Action, Outcome};
use crate::error::Error;
use crate::files::state::{HeldVersion, SecretState};
use crate::store::FetchedSecret;

/// Apply `fetched` (the store's current version of the plan's secret) to the file and the
/// containers. The record's error is `SyncHeld` when the version was held, `RolledBack` when
/// another failure (Docker, the file) was undone, `RollbackFailed` when undoing failed.
pub async fn follow(
    run: &mut Run<'_>,
    plan: &SecretPlan,
    fetched: &FetchedSecret,
) -> RotationRecord {
    let mut record = RotationRecord::new(plan, Action::Sync);
    let name = plan.spec.name.clone();
    let previous_state = run.state.secrets.get(&name).cloned();
    record.old_version = previous_state.as_ref().map(version_of);
    record.new_version = fetched
        .info
        .version
        .clone()
        .or_else(|| Some(fetched.value.fingerprint(&run.fingerprints)));
    let opened = open_dir(plan).and_then(|dir| {
        let file = dir.read(&plan.placement.file_name)?;
        Ok((dir, file))
    });
    let (dir, file) = match opened {
        Ok(opened) => opened,
        Err(e) => return finish(run, record.fail(Outcome::Failed, e)),
    };
    let previous = Previous {
        store: None,
        file,
        state: previous_state,
    };
    // From the intent line to the outcome line, a signal waits (see `crate::interrupt`).
    let _step = crate::interrupt::step();
    if !record_intent(run, &mut record) {
        return record;
    }

    tracing::debug!(secret = %name, "intent recorded; writing the file");
    let mut progress = Progress::default();
    let next = NewValue::fetched(plan, &dir, fetched);
    let forward = apply(run, &next, &mut record, &mut progress).await;
    let Err(failure) = forward else {
        committed(run, &mut record, progress, &fetched.value);
        if run.state.held.remove(&name).is_some() {
            record.step("released", "the version held earlier is applied now");
        }
        record.step("synced", "committed");
        return finish(run, record);
    };
    forward_failed(&mut record, &progress, &failure);
    let mut left = Vec::new();
    let r = &mut record;
    restore_local(run, plan, &dir, &previous, &progress, r, &mut left);
    restart_back(run, &progress, r, &mut left).await;
    rolled_back_restarts(&mut record, &progress);

    // Only a service's health holds a version; a Docker or file failure is tried again.
    let hold = matches!(failure.innermost(), Error::Health { .. });
    if hold {
        hold_version(run, &mut record, fetched, &failure.to_string());
    }
    finish(run, held_or_undone(record, hold, left, failure))
}

/// The end of a failed sync: held (the service's health refused the version, and everything
/// was put back), rolled back, or what is left to put back by hand.
fn held_or_undone(
    mut record: RotationRecord,
    hold: bool,
    left: Vec<String>,
    failure: Error,
) -> RotationRecord {
    let restored = "previous value restored in the file and the containers";
    if !(hold && left.is_empty()) {
        return undone(record, failure, left, Some(restored));
    }
    record.step("rolled-back", restored);
    let version = super::short(record.new_version.as_deref());
    let secret = record.secret.clone();
    record.fail(
        Outcome::SyncHeld,
        Error::SyncHeld {
            secret,
            version,
            cause: Box::new(failure),
        },
    )
}

/// Record the version as held in the state: the next `sync` leaves it alone until the store
/// moves on or `--retry-held`.
pub(super) fn hold_version(
    run: &mut Run<'_>,
    record: &mut RotationRecord,
    fetched: &FetchedSecret,
    reason: &str,
) {
    run.state.held.insert(
        record.secret.clone(),
        HeldVersion {
            entry: SecretState {
                version: fetched.info.version.clone(),
                updated: fetched.info.updated,
                fingerprint: fetched.value.fingerprint(&run.fingerprints),
                checked_at: crate::clock::unix_now(),
            },
            held_at: crate::clock::unix_now(),
            reason: reason.to_string(),
        },
    );
    let version = record.new_version.clone().unwrap_or_default();
    record.step(
        "held",
        format!(
            "version {} stays in the store; this host keeps the previous one until the store moves on or `sync --retry-held`",
            super::short(Some(&version))
        ),
    );
}

/// What the audit line calls a loaded version: its id, or its fingerprint in demo mode.
pub(super) fn version_of(state: &SecretState) -> String {
    state
        .version
        .clone()
        .unwrap_or_else(|| state.fingerprint.clone())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Fixture, OLD};
    use super::*;
    use crate::audit::HealthResult;
    use crate::secret::SecretValue;
    use crate::store::SecretStore as _;

    /// The fixture with `s1` loaded at the store's first version, then a second version set
    /// elsewhere; returns that version.
    async fn set_elsewhere(f: &Fixture, value: &str) -> FetchedSecret {
        let runtime = f.runtime();
        let loaded = f.latest().await;
        let mut state = f.state();
        state.secrets.insert(
            "s1".into(),
            SecretState {
                version: loaded.info.version.clone(),
                updated: loaded.info.updated,
                fingerprint: loaded.value.fingerprint(&f.fingerprints),
                checked_at: 0,
            },
        );
        state.write(&runtime).unwrap();
        f.store
            .set(
                "s1",
                &SecretValue::new(value.into()),
                &std::collections::BTreeMap::new(),
            )
            .await
            .unwrap();
        f.latest().await
    }

    async fn follow_it(f: &Fixture, fetched: &FetchedSecret) -> RotationRecord {
        let runtime = f.runtime();
        let mut run = f.run(&runtime, true);
        follow(&mut run, &f.plan(), fetched).await
    }

    #[tokio::test]
    async fn a_version_set_elsewhere_is_written_and_its_users_restarted_without_a_push() {
        let f = Fixture::new(None).await;
        let new = set_elsewhere(&f, "set-in-the-portal").await;
        let mut record = follow_it(&f, &new).await;
        assert!(record.take_error().is_none(), "{:?}", record.steps);
        assert_eq!(record.outcome, Outcome::Ok);
        assert_eq!(record.health, HealthResult::Passed);
        assert_eq!(f.file(), "set-in-the-portal");
        let order = ["proj-app-1", "proj-app-2", "proj-worker-1"];
        assert_eq!(f.engine.restarts(), order);
        assert_eq!(
            f.store.list_versions("s1").await.unwrap().len(),
            2,
            "nothing pushed"
        );
        let state = f.state();
        assert_eq!(state.secrets["s1"].version, new.info.version);
        assert!(state.held.is_empty());
        let lines = f.audit();
        let outcomes: Vec<(&str, &str)> = lines
            .iter()
            .map(|l| {
                (
                    l["action"].as_str().unwrap(),
                    l["outcome"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(outcomes, [("sync", "intent"), ("sync", "ok")]);
        assert_eq!(
            lines[1]["new_version"].as_str(),
            new.info.version.as_deref()
        );
    }

    #[tokio::test]
    async fn an_unhealthy_service_holds_the_version_and_leaves_the_store_alone() {
        let f = Fixture::new(None).await;
        let loaded = f.latest().await.info.version;
        let new = set_elsewhere(&f, "rejected-by-the-app").await;
        f.engine.unhealthy_after("proj-app-2", 1);
        let mut record = follow_it(&f, &new).await;
        let error = record.take_error().expect("held");
        assert!(matches!(error, Error::SyncHeld { .. }), "{error}");
        assert_eq!(error.exit_code(), 6);
        let message = error.to_string();
        assert!(
            message.contains("proj-app-2") && message.contains("held"),
            "{message}"
        );
        assert!(!message.contains("rejected-by-the-app"));
        assert_eq!(record.outcome, Outcome::SyncHeld);
        assert_eq!(record.health, HealthResult::Failed);
        // The file, the state and the containers are back; the store keeps the new version.
        assert_eq!(f.file(), OLD);
        assert_eq!(f.latest().await.info.version, new.info.version);
        assert_eq!(f.store.list_versions("s1").await.unwrap().len(), 2);
        assert_eq!(
            f.engine.restarts(),
            ["proj-app-1", "proj-app-2", "proj-app-1", "proj-app-2"]
        );
        let state = f.state();
        assert_eq!(state.secrets["s1"].version, loaded);
        let held = &state.held["s1"];
        assert!(held.is(new.info.version.as_deref()));
        assert_eq!(
            held.entry.fingerprint,
            new.value.fingerprint(&f.fingerprints)
        );
        assert!(held.reason.contains("proj-app-2"), "{}", held.reason);
        let last = f.audit().pop().unwrap();
        assert_eq!(last["action"], "sync");
        assert_eq!(last["outcome"], "sync-held");
        assert_eq!(last["health"], "failed");
    }

    #[tokio::test]
    async fn a_docker_failure_is_rolled_back_but_not_held() {
        let f = Fixture::new(None).await;
        let new = set_elsewhere(&f, "fine-value").await;
        f.engine
            .refuse_restart
            .lock()
            .unwrap()
            .insert("proj-worker-1".into(), 1);
        let mut record = follow_it(&f, &new).await;
        let error = record.take_error().expect("rolled back");
        assert!(matches!(error, Error::RolledBack { .. }), "{error}");
        assert_eq!(error.exit_code(), 5);
        assert_eq!(record.outcome, Outcome::RolledBack);
        assert_eq!(f.file(), OLD);
        assert!(f.state().held.is_empty(), "tried again next time");
    }

    #[tokio::test]
    async fn a_failed_rollback_still_holds_the_version() {
        let f = Fixture::new(None).await;
        let new = set_elsewhere(&f, "bad-everywhere").await;
        f.engine.unhealthy_after("proj-app-1", 5);
        let mut record = follow_it(&f, &new).await;
        let error = record.take_error().expect("rollback failed");
        assert!(matches!(error, Error::RollbackFailed { .. }), "{error}");
        assert_eq!(error.exit_code(), 9);
        assert_eq!(f.file(), OLD);
        assert!(
            f.state().held.contains_key("s1"),
            "not restarted again for it"
        );
    }

    #[tokio::test]
    async fn a_version_applied_after_a_hold_releases_it() {
        let f = Fixture::new(None).await;
        let bad = set_elsewhere(&f, "first-bad").await;
        f.engine.unhealthy_after("proj-app-1", 1);
        let mut record = follow_it(&f, &bad).await;
        assert!(record.take_error().is_some());
        assert!(f.state().held.contains_key("s1"));
        f.store
            .set(
                "s1",
                &SecretValue::new("second-good".into()),
                &std::collections::BTreeMap::new(),
            )
            .await
            .unwrap();
        let good = f.latest().await;
        let mut record = follow_it(&f, &good).await;
        assert!(record.take_error().is_none(), "{:?}", record.steps);
        assert_eq!(f.file(), "second-good");
        assert!(f.state().held.is_empty());
        assert!(record.steps.iter().any(|s| s.action == "released"));
    }
}
