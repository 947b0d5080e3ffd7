//! The transaction at its edges: no previous version, value size limits, expiry kept, `--all`.

use super::*;

/// The first rotation of a secret the store never held: the rollback has no store version to
/// go back to, so it restores what the containers ran with (the file) as a new version.
#[tokio::test]
async fn a_rollback_with_no_previous_store_version_restores_the_files_value() {
    let mut f = Fixture::new(None).await;
    f.store = MemoryStore::new();
    let (_, error) = f.rotate_failing_the_gate(None).await;
    assert!(matches!(error, Error::RolledBack { .. }), "{error}");
    let versions = f.store.list_versions("s1").await.unwrap();
    assert_eq!(
        versions.len(),
        2,
        "the failed new version, then the restore"
    );
    let failed = versions[0].version.clone().unwrap();
    let latest = f.latest().await;
    assert_eq!(latest.value.expose(), OLD);
    assert_eq!(latest.info.tags.get(tags::ROLLBACK_OF), Some(&failed));
    assert_eq!(f.file(), OLD);
}

/// With neither a store version nor a file before the rotation there is nothing to go back
/// to: the new file is removed, and the failed rollback says the store keeps the new version.
#[tokio::test]
async fn a_rollback_with_nothing_before_it_removes_the_file_and_says_what_is_left() {
    let mut f = Fixture::new(None).await;
    f.store = MemoryStore::new();
    std::fs::remove_file(f.secrets_dir().join("s1")).unwrap();
    let (_, error) = f.rotate_failing_the_gate(None).await;
    assert!(matches!(error, Error::RollbackFailed { .. }), "{error}");
    assert!(
        error.to_string().contains("no previous value to restore"),
        "{error}"
    );
    assert!(!f.secrets_dir().join("s1").exists(), "the new file is gone");
    assert_eq!(f.store.list_versions("s1").await.unwrap().len(), 1);
}

/// A 25 KB value (Key Vault's largest) survives a rollback byte for byte, in the store and
/// in the file.
#[tokio::test]
async fn a_25_kb_value_comes_back_whole_through_a_rollback() {
    let f = Fixture::new(None).await;
    let big: String = (0..25 * 1024)
        .map(|i| char::from(b'a' + u8::try_from(i % 26).unwrap()))
        .collect();
    f.store
        .set("s1", &SecretValue::new(big.clone()), &BTreeMap::new())
        .await
        .unwrap();
    SecretDir::open(&f.secrets_dir(), false)
        .unwrap()
        .write_atomic("s1", big.as_bytes(), 0o400, Owner::default())
        .unwrap();
    let (_, error) = f.rotate_failing_the_gate(None).await;
    assert!(matches!(error, Error::RolledBack { .. }), "{error}");
    assert_eq!(f.latest().await.value.expose(), big);
    assert_eq!(f.file(), big);
}

/// A rollback gives the restored version the previous version's expiry (Key Vault's `exp`),
/// so the rotation policy sees the same deadline as before the failed rotation.
#[tokio::test]
async fn a_rollback_keeps_the_previous_versions_expiry() {
    let f = Fixture::new(None).await;
    let expires = Some(4_102_444_800); // 2100-01-01
    f.store
        .set_version(
            "s1",
            &SecretValue::new(OLD.into()),
            &NewVersion {
                tags: BTreeMap::new(),
                expires,
            },
        )
        .await
        .unwrap();
    let (_, error) = f.rotate_failing_the_gate(None).await;
    assert!(matches!(error, Error::RolledBack { .. }), "{error}");
    let latest = f.latest().await;
    assert_eq!(latest.value.expose(), OLD);
    assert_eq!(latest.info.expires, expires);
}

/// A new value is 1 to 25 KiB bytes (Key Vault's limit): an empty or larger one is refused
/// before anything is pushed.
#[tokio::test]
async fn a_new_value_must_be_one_byte_to_the_limit() {
    let f = Fixture::new(None).await;
    let at_limit = "v".repeat(MAX_VALUE_BYTES);
    let record = f.rotate(Some(&at_limit)).await;
    assert_eq!(record.outcome, Outcome::Ok);
    assert_eq!(f.file(), at_limit);
    for bad in [String::new(), "v".repeat(MAX_VALUE_BYTES + 1)] {
        let before = f.versions().await;
        let mut record = f.rotate(Some(&bad)).await;
        let error = record.take_error().expect("refused");
        assert!(error.to_string().contains("1 to 25600 bytes"), "{error}");
        assert_eq!(f.versions().await, before, "nothing pushed");
        assert_eq!(f.file(), at_limit);
    }
}

/// `rotate --all`: the first failure stops the run and the rest are reported not attempted;
/// with `--no-restart` the report names the services still to restart.
#[tokio::test]
async fn rotate_all_stops_at_the_first_failure_and_names_what_is_left() {
    let f = Fixture::new(None).await;
    let plans = [f.plan(), f.plan()];
    let runtime = f.runtime();

    let mut report = crate::output::Report::new("rotate", "memory", false);
    rotate_all(&mut f.run(&runtime, true), &plans, None, &mut report)
        .await
        .expect("both rotated");
    assert_eq!(f.versions().await, 3, "the old one and two rotations");
    assert!(!report.extra.contains_key("restart_needed"));

    f.engine.unhealthy_after("proj-app-1", 1);
    let mut report = crate::output::Report::new("rotate", "memory", false);
    let error = rotate_all(&mut f.run(&runtime, true), &plans, None, &mut report)
        .await
        .expect_err("the first rotation fails");
    assert!(matches!(error, Error::RolledBack { .. }), "{error}");
    let last = report.items.last().expect("items");
    assert_eq!(
        (last.name.as_str(), last.action.as_str()),
        ("s1", "not-attempted")
    );
    assert_eq!(
        report
            .items
            .iter()
            .filter(|i| i.action == "not-attempted")
            .count(),
        1,
        "only the plan after the failed one"
    );

    let mut report = crate::output::Report::new("rotate", "memory", false);
    rotate_all(&mut f.run(&runtime, false), &plans[..1], None, &mut report)
        .await
        .expect("rotated without restarts");
    assert_eq!(
        report.extra["restart_needed"],
        serde_json::json!(["app", "worker"])
    );
}

/// A rollback records the fingerprint of what it put back (issue 19): left at the failed new
/// value, state.json would make the restored file look edited by someone else to the next
/// load (refused) and to `--prune` (kept). With nothing before the rotation, the removed
/// file is no longer listed as written.
#[tokio::test]
async fn a_rollback_records_what_it_restored_as_written() {
    let path = |f: &Fixture| f.secrets_dir().join("s1");
    let f = Fixture::new(None).await;
    f.engine.unhealthy_after("proj-app-2", 1);
    let mut record = f.rotate(None).await;
    let error = record.take_error().expect("rolled back");
    assert!(matches!(error, Error::RolledBack { .. }), "{error}");
    assert_eq!(f.file(), OLD);
    let state = f.state();
    assert_eq!(
        state.written.get(&path(&f)),
        Some(&f.fingerprints.fingerprint(OLD.as_bytes()))
    );
    assert!(state.still_holds_written(&path(&f), OLD.as_bytes(), &f.fingerprints));

    let mut f = Fixture::new(None).await;
    f.store = MemoryStore::new();
    std::fs::remove_file(path(&f)).unwrap();
    let (_, error) = f.rotate_failing_the_gate(None).await;
    assert!(matches!(error, Error::RollbackFailed { .. }), "{error}");
    assert!(!path(&f).exists());
    assert!(
        !f.state().written.contains_key(&path(&f)),
        "no file, no entry"
    );
}
