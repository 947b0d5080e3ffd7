//! Held versions: a version `sync` put back because a service did not come back healthy on it.
//! A FAIL naming it while the store still holds it (this host runs the previous one); once the
//! store has moved on, the next `sync` applies the newer version and this is only a note.

use super::facts::StoreFacts;
use super::*;

/// Over the store's listing as [`super::gather::store_facts`] read it (none: not in the store).
pub fn check_held(f: &mut Findings, project: &Project, store: &StoreFacts, state: &State) {
    if state.held.is_empty() {
        return;
    }
    for (name, held) in &state.held {
        let version = held
            .entry
            .version
            .as_deref()
            .map_or("-", crate::output::short_version);
        let running = state
            .secrets
            .get(name)
            .and_then(|s| s.version.as_deref())
            .map_or("-", crate::output::short_version);
        let spec = project.secret(name);
        let listed = spec.and_then(|s| store.listed(&store.key_for(s)));
        let moved_on = match (listed, store.keeps_versions) {
            (Some(l), true) => match &l.version {
                Some(v) => !held.is(Some(v)),
                None => l.updated.is_some_and(|u| Some(u) != held.entry.updated),
            },
            (Some(l), false) => !held.is(l.version.as_deref()),
            (None, _) => false,
        };
        let back_to_running = listed.is_some_and(|l| {
            matches!((l.version.as_deref(), state.secrets.get(name).and_then(|s| s.version.as_deref())),
                (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
        });
        if moved_on && back_to_running {
            f.add(
                Status::Warn,
                "sync",
                name,
                format!(
                    "version {version} was held, and the store is back to the version this host runs; \
                     run `compose-secrets sync` to clear the hold"
                ),
            );
            continue;
        }
        if moved_on {
            f.add(
                Status::Warn,
                "sync",
                name,
                format!(
                    "version {version} was held, and the store has moved on since; run `compose-secrets sync` to apply the newer one"
                ),
            );
            continue;
        }
        f.add(
            Status::Fail,
            "sync",
            name,
            format!(
                "version {version} is held since {}: {}. This host runs version {running}; set a new version in {} or run `compose-secrets sync --retry-held`",
                crate::clock::rfc3339(held.held_at),
                held.reason,
                store.describe
            ),
        );
    }
}
