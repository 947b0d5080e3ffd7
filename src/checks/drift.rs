//! Drift: each file against the source's current version, by digest and version id.

use super::facts::StoreFacts;
use super::*;

/// Drift: each file against the source's current version, by digest and version id.
///
/// Demo mode compares the file's fingerprint with the `.env` value's. Key Vault compares the
/// file with the fingerprint recorded at load (an edited file), and the version recorded at
/// load with the vault's current one (stale: rotated in the vault, not loaded yet).
/// `store` is what [`super::gather::store_facts`] read.
pub fn check_drift(
    f: &mut Findings,
    locals: &[LocalSecret<'_>],
    store: &StoreFacts,
    state: &State,
) {
    if !store.keeps_versions {
        return check_demo_drift(f, locals, store);
    }
    let listing = match &store.listing {
        Some(Ok(listing)) => listing,
        Some(Err(e)) => {
            f.add(
                Status::Fail,
                "drift",
                &store.describe,
                format!("cannot list the vault: {e}"),
            );
            return;
        }
        None => return,
    };
    for local in locals {
        let Some(file_fp) = &local.fingerprint else {
            continue;
        };
        let name = &local.spec.name;
        let key = store.key_for(local.spec);
        let listed = listing.get(&key.to_ascii_lowercase());
        let Some(saved) = state.secrets.get(name) else {
            f.add(
                Status::Warn,
                "drift",
                name,
                "no record of the loaded version; run `compose-secrets load`",
            );
            continue;
        };
        let Some(listed) = listed else {
            f.add(
                Status::Fail,
                "drift",
                name,
                format!("`{key}` is not in the vault"),
            );
            continue;
        };
        if &saved.fingerprint != file_fp {
            f.add(
                Status::Fail,
                "drift",
                name,
                "the file was changed since it was loaded (digest differs); run `compose-secrets load`",
            );
            continue;
        }
        let currency = vault_currency(store, local.spec, listed, saved);
        report_currency(f, name, saved, currency);
    }
}

/// One finding for what [`vault_currency`] found.
fn report_currency(
    f: &mut Findings,
    name: &str,
    saved: &SecretState,
    currency: std::result::Result<Currency, String>,
) {
    match currency {
        Ok(Currency::Current) => f.add(
            Status::Pass,
            "drift",
            name,
            format!("matches version {}", short(saved.version.as_deref())),
        ),
        Ok(Currency::Stale { current }) => f.add(
            Status::Fail,
            "drift",
            name,
            format!(
                "stale: the vault's current version is {}, the file holds {}; run `compose-secrets load`",
                current.as_deref().map_or("newer".into(), |v| short(Some(v))),
                short(saved.version.as_deref())
            ),
        ),
        Ok(Currency::Disabled) => f.add(
            Status::Fail,
            "drift",
            name,
            "the vault's current version is disabled",
        ),
        Err(e) => f.add(
            Status::Warn,
            "drift",
            name,
            format!("cannot confirm the vault's current version: {e}"),
        ),
    }
}

/// Demo mode: each file against the `.env` value, by fingerprint.
fn check_demo_drift(f: &mut Findings, locals: &[LocalSecret<'_>], store: &StoreFacts) {
    for local in locals {
        let Some(file_fp) = &local.fingerprint else {
            continue;
        };
        let name = &local.spec.name;
        let key = &store.key_for(local.spec);
        // `.env`, or `` `DBPASS` in .env `` when the key is not derived from the name.
        let source = crate::compose::names::key_in(
            name,
            key,
            &f.path_subject(std::path::Path::new(&store.describe)),
        );
        match store.current.get(key) {
            Some(Ok(current))
                if current
                    .matches_file
                    .unwrap_or(&current.fingerprint == file_fp) =>
            {
                f.add(Status::Pass, "drift", name, format!("matches {source}"));
            }
            Some(Ok(_)) => f.add(
                Status::Fail,
                "drift",
                name,
                format!("the file differs from {source}; run `compose-secrets load`"),
            ),
            Some(Err(e)) => f.add(Status::Fail, "drift", name, e),
            None => f.add(
                Status::Fail,
                "drift",
                name,
                format!("{source} was not read"),
            ),
        }
    }
}

pub(super) enum Currency {
    Current,
    Stale { current: Option<String> },
    Disabled,
}

/// Whether the version recorded at load is still the vault's current (or pinned) one, as far
/// as the listing tells; `None` when only the current version itself can say.
pub(super) fn listing_currency(
    spec: &SecretSpec,
    listed: &VersionInfo,
    saved: &SecretState,
) -> Option<Currency> {
    let same = |a: Option<&str>, b: Option<&str>| matches!((a, b), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b));
    if let Some(pinned) = spec.pinned_version.as_deref() {
        return Some(if same(saved.version.as_deref(), Some(pinned)) {
            Currency::Current
        } else {
            Currency::Stale {
                current: Some(pinned.to_string()),
            }
        });
    }
    if saved.matches_listing(Some(listed), None) {
        return Some(Currency::Current);
    }
    if !listed.enabled {
        return Some(Currency::Disabled);
    }
    let moved_on = match (&listed.version, &saved.version) {
        (Some(now), Some(_)) => !same(Some(now), saved.version.as_deref()),
        _ => matches!((listed.updated, saved.updated), (Some(now), Some(then)) if now > then),
    };
    moved_on.then(|| Currency::Stale {
        current: listed.version.clone(),
    })
}

/// [`listing_currency`], else the current version read by itself: `updated` has one-second
/// resolution and listings carry no version id, so a rotation in the second of the last load
/// looks unchanged in the listing.
fn vault_currency(
    store: &StoreFacts,
    spec: &SecretSpec,
    listed: &VersionInfo,
    saved: &SecretState,
) -> std::result::Result<Currency, String> {
    if let Some(currency) = listing_currency(spec, listed, saved) {
        return Ok(currency);
    }
    let current = match store.current.get(&store.key_for(spec)) {
        Some(Ok(current)) => current,
        Some(Err(e)) => return Err(e.clone()),
        None => return Err("the current version was not read".into()),
    };
    let unchanged = match (&current.version, &saved.version) {
        (Some(now), Some(then)) => now.eq_ignore_ascii_case(then),
        _ => current.fingerprint == saved.fingerprint,
    };
    Ok(if unchanged {
        Currency::Current
    } else {
        Currency::Stale {
            current: current.version.clone(),
        }
    })
}

/// The first 8 characters of a version id, for messages.
fn short(version: Option<&str>) -> String {
    version.map_or_else(|| "-".into(), |v| v.get(..8).unwrap_or(v).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::*;

    /// The store read as `verify` reads it, then the drift check over what was read.
    async fn gathered_drift(
        f: &mut Findings,
        fx: &Fixture,
        locals: &[LocalSecret<'_>],
        store: &dyn SecretStore,
        state: &State,
    ) {
        let facts = super::super::gather::store_facts(
            store,
            &fx.manifest,
            locals,
            state,
            (None, &fx.fingerprints),
        )
        .await;
        check_drift(f, locals, &facts, state);
    }

    #[tokio::test]
    async fn demo_drift_compares_the_file_with_the_env_value() {
        let fx = Fixture::new(COMPOSE);
        // Demo mode: the values live in the project's .env.
        let env = fx.dir.path().join(".env");
        let set = |v: &str| {
            let env = env.clone();
            let key = fx.fingerprints.clone();
            let v = v.to_string();
            async move {
                let store =
                    crate::store::dotenv::DotenvStore::open(std::slice::from_ref(&env), &key)
                        .unwrap();
                store
                    .set("DB_PASSWORD", &SecretValue::new(v), &BTreeMap::new())
                    .await
                    .unwrap();
                store
            }
        };
        let store = set("another-value-entirely").await;
        let (mut f, locals) = fx.files();
        gathered_drift(&mut f, &fx, &locals, &store, &State::new("")).await;
        assert_only(
            &f,
            "drift",
            "db-password",
            Status::Fail,
            "differs from .env",
        );

        let store = set(VALUE).await;
        let (mut f, locals) = fx.files();
        gathered_drift(&mut f, &fx, &locals, &store, &State::new("")).await;
        assert_only(&f, "drift", "db-password", Status::Pass, "matches .env");
    }

    #[tokio::test]
    async fn vault_drift_reports_an_edited_file_and_a_stale_version() {
        let fx = Fixture::new(COMPOSE);
        let store = MemoryStore::new();
        let loaded = store
            .set(
                "db-password",
                &SecretValue::new(VALUE.into()),
                &BTreeMap::new(),
            )
            .await
            .unwrap();
        let mut state = State::new("memory");
        state.secrets.insert(
            "db-password".into(),
            SecretState {
                version: loaded.version.clone(),
                updated: loaded.updated,
                fingerprint: fx.fingerprints.fingerprint(VALUE.as_bytes()),
                checked_at: 0,
            },
        );
        let db_password =
            |f: &Findings, want, says| assert_only(f, "drift", "db-password", want, says);
        let drift = |state: &State| {
            let (store, state, fx) = (&store, state.clone(), &fx);
            async move {
                let (mut f, locals) = fx.files();
                gathered_drift(&mut f, fx, &locals, store, &state).await;
                f
            }
        };
        db_password(&drift(&state).await, Status::Pass, "matches version");

        // Edited by hand: the digest no longer matches what was loaded.
        fx.write_secret("edited-by-hand-123");
        db_password(&drift(&state).await, Status::Fail, "digest differs");
        fx.write_secret(VALUE);

        // Rotated in the vault, not loaded yet.
        let newer = store
            .set(
                "db-password",
                &SecretValue::new("rotated-value-456".into()),
                &BTreeMap::new(),
            )
            .await
            .unwrap();
        db_password(&drift(&state).await, Status::Fail, "stale");

        // Loading the new version fixes it.
        fx.write_secret("rotated-value-456");
        let entry = state.secrets.get_mut("db-password").unwrap();
        entry.version = newer.version;
        entry.updated = newer.updated;
        entry.fingerprint = fx.fingerprints.fingerprint(b"rotated-value-456");
        db_password(&drift(&state).await, Status::Pass, "matches version");

        // Never loaded: nothing recorded to compare with.
        assert_only(
            &drift(&State::new("memory")).await,
            "drift",
            "db-password",
            Status::Warn,
            "no record",
        );
    }
}
