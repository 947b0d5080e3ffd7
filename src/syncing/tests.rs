//! Finding what changed, against the in-memory store: the listing alone when nothing did, one
//! GET per changed secret, held versions left alone unless retried.

use std::collections::BTreeMap;

use super::*;
use crate::compose::ProjectOptions;
use crate::files::layout::Protected;
use crate::files::secret_dir::{Owner, SecretDir};
use crate::files::state::{HeldVersion, SecretState};
use crate::secret::SecretValue;
use crate::store::memory::MemoryStore;

struct Fixture {
    dir: tempfile::TempDir,
    project: Project,
    store: MemoryStore,
    fingerprints: FingerprintKey,
}

impl Fixture {
    /// Three secrets used by one service, each loaded at the store's first version.
    async fn new() -> (Fixture, State) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("compose.yaml"),
            "name: proj\nservices:\n  app:\n    image: x\n    secrets: [a, b, c]\n\
             secrets:\n  a:\n    file: ./secrets/a\n  b:\n    file: ./secrets/b\n  c:\n    file: ./secrets/c\n",
        )
        .unwrap();
        let project = Project::load(&ProjectOptions {
            cwd: dir.path().to_path_buf(),
            ..ProjectOptions::default()
        })
        .unwrap();
        let store = MemoryStore::new();
        let files = SecretDir::open(&dir.path().join("secrets"), true).unwrap();
        let mut state = State::new("memory");
        let fingerprints = FingerprintKey::random();
        for name in ["a", "b", "c"] {
            let value = SecretValue::new(format!("{name}-first"));
            let info = store.set(name, &value, &BTreeMap::new()).await.unwrap();
            files
                .write_atomic(name, value.expose().as_bytes(), 0o400, Owner::default())
                .unwrap();
            state.secrets.insert(
                name.into(),
                SecretState {
                    version: info.version,
                    updated: info.updated,
                    fingerprint: value.fingerprint(&fingerprints),
                    checked_at: crate::clock::unix_now(),
                },
            );
        }
        let f = Fixture {
            dir,
            project,
            store,
            fingerprints,
        };
        (f, state)
    }

    fn layout(&self) -> Layout {
        let runtime = self.dir.path().join(".runtime");
        Layout::plan(
            &self.project,
            &runtime,
            &runtime.join("secrets"),
            &Protected {
                project: &self.project,
                env_file: &self.dir.path().join(".env"),
                template: &self.dir.path().join(".env.demo"),
            },
        )
        .unwrap()
    }

    async fn changes(&self, state: &mut State, retry_held: bool) -> (Vec<String>, Report) {
        self.try_changes(state, retry_held).await.unwrap()
    }

    async fn try_changes(
        &self,
        state: &mut State,
        retry_held: bool,
    ) -> Result<(Vec<String>, Report)> {
        let reporter = crate::output::Reporter::plain();
        let mut report = Report::new("sync", "memory", false);
        let changes = find_changes(
            (&self.project, &self.layout()),
            &self.store,
            &self.fingerprints,
            state,
            retry_held,
            Display {
                reporter: &reporter,
                shown_from: self.dir.path(),
            },
            &mut report,
        )
        .await?;
        Ok((changes.into_iter().map(|c| c.secret).collect(), report))
    }

    async fn set(&self, name: &str, value: &str) -> VersionInfo {
        self.store
            .set(name, &SecretValue::new(value.into()), &BTreeMap::new())
            .await
            .unwrap()
    }
}

fn actions(report: &Report) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = report
        .items
        .iter()
        .map(|i| (i.name.clone(), i.action.clone()))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn nothing_changed_costs_the_listing_only() {
    let (f, mut state) = Fixture::new().await;
    let gets = f.store.get_count();
    let (changes, report) = f.changes(&mut state, false).await;
    assert!(changes.is_empty());
    assert_eq!(f.store.get_count(), gets, "no GET");
    assert_eq!(report.count("unchanged"), 3);
}

#[tokio::test]
async fn a_new_version_costs_one_get() {
    let (f, mut state) = Fixture::new().await;
    f.set("b", "b-second").await;
    let gets = f.store.get_count();
    let (changes, _) = f.changes(&mut state, false).await;
    assert_eq!(changes, ["b"]);
    assert_eq!(f.store.get_count(), gets + 1);
}

#[tokio::test]
async fn an_edited_file_is_a_change_even_when_the_store_is_not() {
    let (f, mut state) = Fixture::new().await;
    let path = f.dir.path().join("secrets/c");
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "edited by hand").unwrap();
    let (changes, _) = f.changes(&mut state, false).await;
    assert_eq!(changes, ["c"]);
}

#[tokio::test]
async fn a_held_version_is_skipped_until_retried_or_superseded() {
    let (f, mut state) = Fixture::new().await;
    let bad = f.set("a", "a-bad").await;
    state.held.insert(
        "a".into(),
        HeldVersion {
            entry: SecretState {
                version: bad.version.clone(),
                updated: bad.updated,
                fingerprint: SecretValue::new("a-bad".into()).fingerprint(&f.fingerprints),
                checked_at: crate::clock::unix_now(),
            },
            held_at: 0,
            reason: "health check failed: service app".into(),
        },
    );
    let gets = f.store.get_count();
    let (changes, report) = f.changes(&mut state, false).await;
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(
        f.store.get_count(),
        gets,
        "a held version costs no GET either"
    );
    assert!(actions(&report).contains(&("a".into(), "held".into())));
    let (changes, _) = f.changes(&mut state, true).await;
    assert_eq!(changes, ["a"], "--retry-held");
    f.set("a", "a-third").await;
    let (changes, _) = f.changes(&mut state, false).await;
    assert_eq!(changes, ["a"], "the store moved on");
}

#[tokio::test]
async fn a_secret_missing_from_the_store_is_named() {
    let (f, mut state) = Fixture::new().await;
    let store = MemoryStore::new();
    store
        .set("a", &SecretValue::new("x".into()), &BTreeMap::new())
        .await
        .unwrap();
    let reporter = crate::output::Reporter::plain();
    let mut report = Report::new("sync", "memory", false);
    let err = find_changes(
        (&f.project, &f.layout()),
        &store,
        &f.fingerprints,
        &mut state,
        false,
        Display {
            reporter: &reporter,
            shown_from: f.dir.path(),
        },
        &mut report,
    )
    .await
    .err()
    .expect("missing");
    assert_eq!(err.exit_code(), crate::error::exit::MISSING_SECRET);
    assert!(
        err.to_string().contains('b') && err.to_string().contains('c'),
        "{err}"
    );
}

#[tokio::test]
async fn a_new_version_with_the_value_in_use_is_recorded_without_a_change() {
    let (f, mut state) = Fixture::new().await;
    // As a rollback elsewhere does: the previous value again, as a new version.
    let again = f.set("b", "b-first").await;
    let (changes, report) = f.changes(&mut state, false).await;
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(
        state.secrets["b"].version, again.version,
        "the new id is recorded"
    );
    assert_eq!(report.count("unchanged"), 3);
}

/// A hold for `name` on a version the store no longer lists as its latest.
fn hold(state: &mut State, name: &str, version: Option<String>) {
    state.held.insert(
        name.into(),
        HeldVersion {
            entry: SecretState {
                version,
                updated: None,
                fingerprint: SecretValue::new(format!("{name}-bad"))
                    .fingerprint(&FingerprintKey::random()),
                checked_at: crate::clock::unix_now(),
            },
            held_at: 0,
            reason: "health check failed: service app".into(),
        },
    );
}

#[tokio::test]
async fn a_store_back_at_the_running_version_releases_the_hold() {
    // Demo mode: `.env` set to a bad value (held), then reverted, so the store lists the very
    // version (fingerprint) this host runs again.
    let (f, mut state) = Fixture::new().await;
    hold(&mut state, "a", Some("fingerprint-of-the-bad-value".into()));
    let (changes, report) = f.changes(&mut state, false).await;
    assert!(changes.is_empty(), "{changes:?}");
    assert!(state.held.is_empty(), "the hold is released");
    assert!(actions(&report).contains(&("a".into(), "released".into())));
}

#[tokio::test]
async fn the_running_value_set_again_as_a_new_version_releases_the_hold() {
    // Key Vault: the bad version is held, then the running value is set again as a new version.
    let (f, mut state) = Fixture::new().await;
    let bad = f.set("a", "a-bad").await;
    hold(&mut state, "a", bad.version);
    f.set("a", "a-first").await;
    let (changes, report) = f.changes(&mut state, false).await;
    assert!(changes.is_empty(), "{changes:?}");
    assert!(state.held.is_empty(), "the hold is released");
    assert!(actions(&report).contains(&("a".into(), "released".into())));
}

/// A new version whose value is empty is no value: the step stops naming it, so `sync`
/// never writes an empty secret file.
#[tokio::test]
async fn an_empty_new_version_is_named_as_missing_not_applied() {
    let (f, mut state) = Fixture::new().await;
    f.set("a", "").await;
    let err = f
        .try_changes(&mut state, false)
        .await
        .expect_err("empty value");
    assert_eq!(err.exit_code(), crate::error::exit::MISSING_SECRET);
    let Error::MissingSecrets { names, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(names, &["a".to_string()]);
}

/// Key Vault's limit is the limit: a value one byte over is refused, naming the secret and
/// the limit; a value of exactly the limit is a change like any other.
#[tokio::test]
async fn a_value_over_the_size_limit_is_refused_and_one_at_the_limit_is_not() {
    let (f, mut state) = Fixture::new().await;
    f.set("c", &"x".repeat(MAX_VALUE_BYTES)).await;
    assert_eq!(
        f.try_changes(&mut state, false).await.unwrap().0,
        vec!["c".to_string()]
    );
    f.set("b", &"x".repeat(MAX_VALUE_BYTES + 1)).await;
    let err = f
        .try_changes(&mut state, false)
        .await
        .expect_err("oversized value");
    let message = err.to_string();
    assert!(message.contains('b'), "{message}");
    assert!(message.contains(&MAX_VALUE_BYTES.to_string()), "{message}");
}
