//! `sync` of the parts of one certificate (`x-compose-secrets.certificate`) as one step: a
//! renewed version is written to every part's file, the services that use any part are
//! restarted once behind their health gates, and a failure puts every part back together.
//!
//! A key and a certificate that do not belong together make a TLS server fail to start, so
//! the parts never move one at a time as separate secrets do (`sync::follow`).

use super::apply::{apply, open_dir, Progress};
use super::rollback::{restart_back, restore_local};
use super::{finish, record_intent, Previous, RotationRecord, Run, SecretPlan, ServiceTarget};
use crate::audit::{Action, HealthResult, Outcome};
use crate::error::Error;
use crate::files::secret_dir::SecretDir;
use crate::files::state::{HeldVersion, SecretState};
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
            .or_else(|| Some(fetched.value.fingerprint()));
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
        let name = records[at].secret.clone();
        let mut e = Some(e);
        return records
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let own = if i == at { e.take() } else { None };
                let error = if let Some(own) = own {
                    own
                } else {
                    Error::manifest(
                        &r.secret,
                        format!("not synced: `{name}`, a part of the same certificate, could not be opened"),
                    )
                };
                finish(run, r.fail(Outcome::Failed, error))
            })
            .collect();
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
        return parts
            .iter()
            .zip(records)
            .zip(progress)
            .map(|((_, mut record), progress)| {
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
            })
            .collect();
    };
    roll_back_all(run, parts, &opened, records, &progress, at, failure).await
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
        let applied = apply(
            run,
            plan,
            &opened[i].0,
            &fetched.value,
            &fetched.info,
            &mut records[i],
            &mut progress[i],
        )
        .await;
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
        let version = record.new_version.clone().unwrap_or_default();
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
            run.state.held.insert(
                record.secret.clone(),
                HeldVersion {
                    entry: SecretState {
                        version: fetched.info.version.clone(),
                        updated: fetched.info.updated,
                        fingerprint: fetched.value.fingerprint(),
                        checked_at: crate::clock::unix_now(),
                    },
                    held_at: crate::clock::unix_now(),
                    reason: reason.clone(),
                },
            );
            record.step("held", format!("version {} stays in the store; this host keeps the previous one until the store moves on or `sync --retry-held`", super::short(Some(&version))));
        }
        let secret = record.secret.clone();
        let record = if i == at && !left.is_empty() {
            record.fail(
                Outcome::RollbackFailed,
                Error::RollbackFailed {
                    secret,
                    cause: Box::new(cause),
                    left: std::mem::take(&mut left),
                },
            )
        } else if hold {
            record.step(
                "rolled-back",
                "previous value restored with the other parts",
            );
            record.fail(
                Outcome::SyncHeld,
                Error::SyncHeld {
                    secret,
                    version: super::short(Some(&version)),
                    cause: Box::new(cause),
                },
            )
        } else {
            record.step(
                "rolled-back",
                "previous value restored with the other parts",
            );
            record.fail(
                Outcome::RolledBack,
                Error::RolledBack {
                    secret,
                    cause: Box::new(cause),
                },
            )
        };
        out.push(finish(run, record));
    }
    out
}
