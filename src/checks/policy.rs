//! The rotation policy (`x-compose-secrets.rotate-every`): a WARN past 80 % of the period, a FAIL
//! once it has passed or the version's `exp` has (Key Vault).

use super::facts::StoreFacts;
use super::*;
use crate::rotation::policy::{self, human, Standing};

/// The secrets with a rotation policy and a file.
pub(super) fn with_policy(project: &Project) -> Vec<&SecretSpec> {
    project
        .secrets_in_use()
        .filter(|s| s.rotate_every.is_some() && s.file_path().is_some())
        .collect()
}

/// Over when each was last set, as the store (or the audit log, for `.env`) told
/// [`super::gather::store_facts`].
pub fn check_policy(f: &mut Findings, project: &Project, store: &StoreFacts) {
    let specs = with_policy(project);
    let set = match &store.last_set {
        None => return,
        Some(Ok(set)) => set,
        Some(Err(e)) => {
            f.add(
                Status::Warn,
                "policy",
                &store.describe,
                format!("cannot tell when secrets were rotated: {e}"),
            );
            return;
        }
    };
    let now = crate::clock::unix_now();
    for spec in specs {
        let last = set.get(&spec.name).copied().unwrap_or_default();
        let name = &spec.name;
        if let Some(exp) = last.expires.filter(|exp| *exp <= now) {
            f.add(
                Status::Fail,
                "policy",
                name,
                format!(
                    "its version expired at {} (exp); run `compose-secrets rotate --due`",
                    crate::clock::rfc3339(exp)
                ),
            );
            continue;
        }
        match policy::standing(spec, last.at, now) {
            Standing::NoPolicy => {}
            Standing::Unknown { period } => f.add(
                Status::Warn,
                "policy",
                name,
                format!(
                    "rotate-every {}, but there is no record of when it was set; `compose-secrets rotate --due` rotates it",
                    human(period)
                ),
            ),
            Standing::Overdue { age, period } => f.add(
                Status::Fail,
                "policy",
                name,
                format!(
                    "overdue: set {} ago, rotate-every {}; run `compose-secrets rotate --due`",
                    human(age),
                    human(period)
                ),
            ),
            Standing::Soon { age, period } => f.add(
                Status::Warn,
                "policy",
                name,
                format!(
                    "due in {}: set {} ago, rotate-every {} (past {} %)",
                    human(period - age),
                    human(age),
                    human(period),
                    policy::WARN_PERCENT
                ),
            ),
            Standing::Current { age, period } => f.add(
                Status::Pass,
                "policy",
                name,
                format!(
                    "set {} ago, rotate-every {}{}",
                    human(age),
                    human(period),
                    last.expires
                        .map(|e| format!(", expires {}", crate::clock::rfc3339(e)))
                        .unwrap_or_default()
                ),
            ),
        }
    }
}
