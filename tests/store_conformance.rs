//! One conformance suite for every `SecretStore` (memory and Key Vault via the emulator),
//! plus the Key Vault failure modes: not found, disabled, forbidden, bad credentials,
//! a dead token endpoint, throttling, an untrusted CA and an unconfigured credential.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use compose_secrets::testing::error::Error;
use compose_secrets::testing::secret::SecretValue;
use compose_secrets::testing::store::key_vault::{KeyVaultConfig, KeyVaultStore};
use compose_secrets::testing::store::memory::MemoryStore;
use compose_secrets::testing::store::{tags, SecretStore, VersionInfo};

use crate::support::emulator::Emulator;
use crate::support::store::store_for;

/// Generous ceiling for "fails fast" checks; the real numbers are printed.
const FAST: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- the suite

/// What every store must do: versions, values and tags round-trip.
async fn conformance(store: &dyn SecretStore) {
    let name = "conformance-db-password";
    let first_value = SecretValue::new("first value: ünïcödé and spaces".into());
    let second_value = SecretValue::new("second\nmulti-line\nvalue".into());

    let first_tags = BTreeMap::from([
        (tags::ROTATED_BY.to_owned(), "conformance".to_owned()),
        (
            tags::ROTATED_AT.to_owned(),
            "2026-11-22T10:00:00Z".to_owned(),
        ),
    ]);
    let first = store
        .set(name, &first_value, &first_tags)
        .await
        .expect("set the first version");
    assert_eq!(first.name, name);
    assert!(first.enabled, "a new version is enabled");
    assert_eq!(first.tags, first_tags, "tags come back from set");
    let first_version = first.version.clone().expect("set returns a version id");

    let latest = store.get_latest(name).await.expect("get the latest");
    assert_eq!(latest.value.expose(), first_value.expose());
    assert_eq!(latest.info.version.as_deref(), Some(first_version.as_str()));
    assert_eq!(latest.info.tags, first_tags);
    assert!(latest.info.enabled);
    assert!(latest.info.updated.is_some(), "get reports an update time");

    let second_tags = BTreeMap::from([
        (tags::ROTATED_BY.to_owned(), "conformance".to_owned()),
        (tags::PREVIOUS_VERSION.to_owned(), first_version.clone()),
    ]);
    let second = store
        .set(name, &second_value, &second_tags)
        .await
        .expect("set the second version");
    let second_version = second.version.clone().expect("second version id");
    assert_ne!(
        first_version, second_version,
        "each set makes a new version"
    );

    let latest = store.get_latest(name).await.expect("get the new latest");
    assert_eq!(latest.value.expose(), second_value.expose());
    assert_eq!(
        latest.info.version.as_deref(),
        Some(second_version.as_str())
    );
    assert_eq!(latest.info.tags, second_tags);

    let old = store
        .get_version(name, &first_version)
        .await
        .expect("get the first version by id");
    assert_eq!(old.value.expose(), first_value.expose());
    assert_eq!(old.info.version.as_deref(), Some(first_version.as_str()));
    assert_eq!(old.info.tags, first_tags, "old versions keep their tags");

    // A second secret, large and with no tags, to check listings.
    let other = "conformance-api-key";
    let large = SecretValue::new("x".repeat(20 * 1024));
    store
        .set(other, &large, &BTreeMap::new())
        .await
        .expect("set a 20 KB value");
    let fetched = store.get_latest(other).await.expect("get the large value");
    assert_eq!(fetched.value.len(), large.len());
    assert!(fetched.info.tags.is_empty());

    let listed = store.list_properties().await.expect("list secrets");
    let entry = find(&listed, name);
    assert!(entry.enabled);
    assert!(entry.updated.is_some());
    assert_eq!(entry.tags, second_tags, "the listing shows the latest tags");
    let other_entry = find(&listed, other);
    assert!(other_entry.tags.is_empty());
    let mut names: Vec<&str> = listed.iter().map(|i| i.name.as_str()).collect();
    names.dedup();
    assert_eq!(names.len(), listed.len(), "one entry per secret: {names:?}");

    let versions = store.list_versions(name).await.expect("list versions");
    let mut ids: Vec<String> = versions.iter().filter_map(|v| v.version.clone()).collect();
    ids.sort();
    let mut expected = vec![first_version.clone(), second_version.clone()];
    expected.sort();
    assert_eq!(ids, expected, "both versions are listed");
    for version in &versions {
        assert_eq!(version.name, name);
        assert!(version.enabled);
        let expected_tags = if version.version.as_deref() == Some(first_version.as_str()) {
            &first_tags
        } else {
            &second_tags
        };
        assert_eq!(
            &version.tags, expected_tags,
            "listing keeps each version's tags"
        );
    }

    // One version's tags are replaced in place (the audit anchor's PATCH): its value, the
    // other versions and the latest stay as they were.
    let anchor_tags = BTreeMap::from([("audit-head".to_owned(), "3:00ff".to_owned())]);
    let tagged = store
        .set_tags(name, &first_version, &anchor_tags)
        .await
        .expect("replace the first version's tags");
    assert_eq!(tagged.version.as_deref(), Some(first_version.as_str()));
    assert_eq!(tagged.tags, anchor_tags);
    let old = store.get_version(name, &first_version).await.unwrap();
    assert_eq!(old.value.expose(), first_value.expose());
    assert_eq!(old.info.tags, anchor_tags);
    let latest = store.get_latest(name).await.unwrap();
    assert_eq!(latest.value.expose(), second_value.expose());
    assert_eq!(latest.info.tags, second_tags);
    match store
        .set_tags(name, "0123456789abcdef0123456789abcdef", &anchor_tags)
        .await
    {
        Err(Error::SecretNotFound { .. }) => {}
        other => panic!("expected SecretNotFound, got {other:?}"),
    }

    let none = store
        .list_versions("conformance-never-written")
        .await
        .expect("versions of an unknown name");
    assert!(none.is_empty());

    match store.get_latest("conformance-never-written").await {
        Err(Error::SecretNotFound { name, version }) => {
            assert_eq!(name, "conformance-never-written");
            assert_eq!(version, None);
        }
        other => panic!("expected SecretNotFound, got {:?}", other.map(|f| f.info)),
    }

    let probe = store
        .probe_access(&[name.to_owned(), other.to_owned()])
        .await;
    assert!(probe.reachable, "{probe:?}");
    assert_eq!(probe.can_list, Some(true), "{probe:?}");
    assert_eq!(probe.can_get, Some(true), "{probe:?}");
    assert_ne!(probe.can_set, Some(false), "{probe:?}");
}

fn find<'a>(listed: &'a [VersionInfo], name: &str) -> &'a VersionInfo {
    listed
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("{name} missing from the listing: {listed:?}"))
}

// ---------------------------------------------------------------- helpers

/// Serialises tests that change the process environment: azure_identity reads
/// IDENTITY_ENDPOINT/IDENTITY_HEADER from it, and tests run as threads of one process.
static PROCESS_ENV: Mutex<()> = Mutex::new(());

/// Managed-identity variables the SDK reads from the process environment.
const MANAGED_IDENTITY_VARS: [&str; 6] = [
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
];

/// Holds [`PROCESS_ENV`], sets variables, and restores the previous values on drop.
struct ProcessEnvGuard {
    saved: Vec<(String, Option<std::ffi::OsString>)>,
    _lock: MutexGuard<'static, ()>,
}

impl ProcessEnvGuard {
    /// Clear every managed-identity variable, then apply `set` (`None` = remove).
    fn new(set: &[(&str, Option<&str>)]) -> Self {
        let lock = PROCESS_ENV.lock().unwrap_or_else(PoisonError::into_inner);
        let mut keys: Vec<&str> = MANAGED_IDENTITY_VARS.to_vec();
        keys.extend(set.iter().map(|(k, _)| *k));
        keys.sort_unstable();
        keys.dedup();
        let saved = keys
            .iter()
            .map(|k| ((*k).to_owned(), std::env::var_os(k)))
            .collect();
        for key in MANAGED_IDENTITY_VARS {
            std::env::remove_var(key);
        }
        for (key, value) in set {
            match value {
                Some(value) => std::env::set_var(key, value),
                None => std::env::remove_var(key),
            }
        }
        Self { saved, _lock: lock }
    }
}

impl Drop for ProcessEnvGuard {
    fn drop(&mut self) {
        for (key, value) in &self.saved {
            match value {
                Some(value) => std::env::set_var(key, value),
                None => std::env::remove_var(key),
            }
        }
    }
}

fn value(text: &str) -> SecretValue {
    SecretValue::new(text.to_owned())
}

/// Time a future; print it so slow paths show up in `--nocapture` runs.
async fn timed<T>(label: &str, future: impl std::future::Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = future.await;
    let elapsed = started.elapsed();
    eprintln!("{label}: {elapsed:?}");
    (out, elapsed)
}

// ---------------------------------------------------------------- conformance runs

#[tokio::test(flavor = "multi_thread")]
async fn memory_store_conforms() {
    conformance(&MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_vault_store_conforms_against_the_emulator() {
    let emulator = Emulator::start(&[]);
    let store = store_for(&emulator, &[]);
    assert_eq!(store.vault_url(), emulator.url);
    assert_eq!(store.describe(), emulator.url);
    assert!(store.keeps_versions());
    conformance(&store).await;

    let stats = emulator.stats().await;
    assert!(
        stats["requests"].as_u64().unwrap_or(0) > 0,
        "the emulator saw the traffic: {stats}\nemulator log:\n{}",
        emulator.log()
    );
}

// ---------------------------------------------------------------- Key Vault specifics

#[tokio::test(flavor = "multi_thread")]
async fn missing_secret_and_version_are_not_found() {
    let emulator = Emulator::start(&["--seed", "present"]);
    let store = store_for(&emulator, &[]);

    match store.get_latest("absent").await {
        Err(Error::SecretNotFound { name, version }) => {
            assert_eq!(name, "absent");
            assert_eq!(version, None);
        }
        other => panic!("expected SecretNotFound, got {:?}", other.map(|f| f.info)),
    }
    let missing_version = "0123456789abcdef0123456789abcdef";
    match store.get_version("present", missing_version).await {
        Err(Error::SecretNotFound { name, version }) => {
            assert_eq!(name, "present");
            assert_eq!(version.as_deref(), Some(missing_version));
        }
        other => panic!("expected SecretNotFound, got {:?}", other.map(|f| f.info)),
    }
    // Names that could change the URL path never leave the process.
    assert!(store.get_latest("../keys/x").await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn disabled_secret_is_reported_as_disabled() {
    let emulator = Emulator::start(&[]);
    let store = store_for(&emulator, &[]);
    let written = store
        .set("feature-flag-key", &value("v1"), &BTreeMap::new())
        .await
        .expect("set");
    let version = written.version.clone().expect("version");

    let disabled = store
        .set_enabled("feature-flag-key", Some(&version), false)
        .await
        .expect("disable the version");
    assert!(!disabled.enabled);
    assert_eq!(disabled.version.as_deref(), Some(version.as_str()));

    match store.get_latest("feature-flag-key").await {
        Err(Error::SecretDisabled { name }) => assert_eq!(name, "feature-flag-key"),
        other => panic!("expected SecretDisabled, got {:?}", other.map(|f| f.info)),
    }
    let versions = store
        .list_versions("feature-flag-key")
        .await
        .expect("versions");
    assert!(versions.iter().all(|v| !v.enabled), "{versions:?}");

    store
        .set_enabled("feature-flag-key", None, true)
        .await
        .expect("enable the latest again");
    let fetched = store.get_latest("feature-flag-key").await.expect("get");
    assert_eq!(fetched.value.expose(), "v1");
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_identity_cannot_set_and_probe_says_so() {
    let emulator = Emulator::start(&["--permissions", "reader=get,list", "--seed", "db-password"]);
    let reader = store_for(&emulator, &[("AZURE_CLIENT_ID", "reader")]);

    reader
        .get_latest("db-password")
        .await
        .expect("the reader may get");
    match reader
        .set("db-password", &value("new"), &BTreeMap::new())
        .await
    {
        Err(Error::VaultForbidden {
            name, permission, ..
        }) => {
            assert_eq!(permission, "set");
            assert_eq!(name.as_deref(), Some("db-password"));
        }
        other => panic!("expected VaultForbidden, got {other:?}"),
    }

    let probe = reader.probe_access(&["db-password".to_owned()]).await;
    eprintln!("reader probe: {probe:?}");
    assert!(probe.reachable, "{probe:?}");
    assert_eq!(probe.can_list, Some(true), "{probe:?}");
    assert_eq!(probe.can_get, Some(true), "{probe:?}");
    assert_eq!(probe.can_set, Some(false), "{probe:?}");

    // The probe writes nothing: the secret still has exactly its seeded version.
    let versions = reader.list_versions("db-password").await.expect("versions");
    assert_eq!(versions.len(), 1, "{versions:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_client_secret_is_an_auth_error_quickly() {
    let emulator = Emulator::start(&[]);
    let store = store_for(&emulator, &[("AZURE_CLIENT_SECRET", "not-the-secret")]);
    let (outcome, elapsed) = timed("wrong client secret", store.get_latest("anything")).await;
    match outcome {
        Err(Error::VaultAuth { message }) => {
            eprintln!("wrong client secret: {message}");
            assert!(message.contains("client secret"), "{message}");
            assert!(
                !message.contains("not-the-secret"),
                "the secret leaked: {message}"
            );
            assert!(!message.contains(&emulator.client_secret), "{message}");
        }
        other => panic!("expected VaultAuth, got {:?}", other.map(|f| f.info)),
    }
    assert!(elapsed < FAST, "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn token_endpoint_down_is_an_auth_error_within_seconds() {
    let emulator = Emulator::start(&["--token-endpoint-down"]);
    let store = store_for(&emulator, &[]);
    let (outcome, elapsed) = timed("token endpoint down", store.get_latest("anything")).await;
    match outcome {
        Err(Error::VaultAuth { message }) => {
            eprintln!("token endpoint down: {message}");
            assert!(message.contains("client secret"), "{message}");
        }
        other => panic!("expected VaultAuth, got {:?}", other.map(|f| f.info)),
    }
    assert!(elapsed < FAST, "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_retried_within_the_budget() {
    let emulator = Emulator::start(&["--seed", "hot-secret"]);
    let store = store_for(&emulator, &[]);
    store
        .get_latest("hot-secret")
        .await
        .expect("warm up the token");
    emulator
        .set_faults(serde_json::json!({"fault_429_every": 2, "retry_after": 1}))
        .await;
    emulator.reset_stats().await;

    let (outcome, elapsed) = timed("gets under 429 faults", async {
        for _ in 0..4 {
            store.get_latest("hot-secret").await?;
        }
        Ok::<_, Error>(())
    })
    .await;
    outcome.expect("429s are retried");
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    let stats = emulator.stats().await;
    assert!(
        stats["requests"].as_u64().unwrap_or(0) > 4,
        "some requests were throttled and retried: {stats}"
    );

    emulator
        .set_faults(serde_json::json!({"fault_429_every": 0}))
        .await;
    store
        .get_latest("hot-secret")
        .await
        .expect("no faults any more");
}

#[tokio::test(flavor = "multi_thread")]
async fn untrusted_certificate_is_a_clear_tls_error() {
    let emulator = Emulator::start(&[]);
    let other = Emulator::start(&[]);
    let other_ca = other.ca_file.to_string_lossy().into_owned();
    let store = store_for(&emulator, &[("COMPOSE_SECRETS_CA_FILE", &other_ca)]);
    let (outcome, elapsed) = timed("untrusted CA", store.get_latest("anything")).await;
    match outcome {
        Err(Error::Vault { message, .. }) => {
            eprintln!("untrusted CA: {message}");
            assert!(message.contains("COMPOSE_SECRETS_CA_FILE"), "{message}");
            assert!(message.contains("certificate"), "{message}");
        }
        other => panic!("expected a TLS error, got {:?}", other.map(|f| f.info)),
    }
    assert!(elapsed < FAST, "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_follows_pages() {
    let emulator = Emulator::start(&["--seed-count", "60"]);
    let store = store_for(&emulator, &[]);
    let listed = store.list_properties().await.expect("list");
    assert!(listed.len() >= 60, "got {} entries", listed.len());
    assert!(
        listed.windows(2).all(|w| w[0].name <= w[1].name),
        "sorted by name"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn automatic_credential_without_anything_configured_names_what_to_set() {
    let _env = ProcessEnvGuard::new(&[]);
    let vars: HashMap<String, String> = HashMap::from([
        (
            "AZURE_KEYVAULT_URL".to_owned(),
            "https://127.0.0.1:9".to_owned(),
        ),
        ("COMPOSE_SECRETS_DISABLE_IMDS".to_owned(), "1".to_owned()),
    ]);
    let config = KeyVaultConfig::from_lookup(&|key| vars.get(key).cloned()).expect("config");
    assert!(!config.allow_imds);
    let started = Instant::now();
    let outcome = KeyVaultStore::new(config);
    // Fails while choosing the credential: nothing is sent anywhere, IMDS included.
    match outcome {
        Err(Error::VaultAuth { message }) => {
            eprintln!("nothing configured: {message}");
            assert!(message.contains("AZURE_CLIENT_SECRET"), "{message}");
        }
        Err(other) => panic!("expected VaultAuth, got {other}"),
        // Only when `az` is installed on this machine: then the CLI is tried, and fails.
        Ok(store) => match store.get_latest("anything").await {
            Err(Error::VaultAuth { message }) => {
                assert!(message.contains("az"), "{message}");
            }
            other => panic!("expected VaultAuth, got {:?}", other.map(|f| f.info)),
        },
    }
    assert!(started.elapsed() < FAST);
}

#[tokio::test(flavor = "multi_thread")]
async fn app_service_managed_identity_is_picked_automatically() {
    let emulator = Emulator::start(&["--permissions", "reader=get,list"]);
    let endpoint = emulator
        .var("IDENTITY_ENDPOINT")
        .expect("IDENTITY_ENDPOINT")
        .to_owned();
    let header = emulator
        .var("IDENTITY_HEADER")
        .expect("IDENTITY_HEADER")
        .to_owned();
    let _env = ProcessEnvGuard::new(&[
        ("IDENTITY_ENDPOINT", Some(&endpoint)),
        ("IDENTITY_HEADER", Some(&header)),
    ]);
    let without_service_principal = [
        ("AZURE_CREDENTIAL", ""),
        ("AZURE_CLIENT_ID", ""),
        ("AZURE_CLIENT_SECRET", ""),
    ];

    let system_assigned = store_for(&emulator, &without_service_principal);
    assert!(
        system_assigned
            .credential_description()
            .contains("IDENTITY_ENDPOINT"),
        "{}",
        system_assigned.credential_description()
    );
    system_assigned
        .set("from-managed-identity", &value("mi"), &BTreeMap::new())
        .await
        .expect("the system-assigned identity may set");
    let fetched = system_assigned
        .get_latest("from-managed-identity")
        .await
        .expect("get");
    assert_eq!(fetched.value.expose(), "mi");

    // AZURE_CLIENT_ID selects a user-assigned identity, here a read-only one.
    let user_assigned = store_for(
        &emulator,
        &[
            ("AZURE_CREDENTIAL", "managed-identity"),
            ("AZURE_CLIENT_ID", "reader"),
            ("AZURE_CLIENT_SECRET", ""),
        ],
    );
    user_assigned
        .get_latest("from-managed-identity")
        .await
        .expect("the reader may get");
    match user_assigned
        .set("from-managed-identity", &value("nope"), &BTreeMap::new())
        .await
    {
        Err(Error::VaultForbidden { permission, .. }) => assert_eq!(permission, "set"),
        other => panic!("expected VaultForbidden, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn managed_identity_with_dead_endpoint_fails_within_the_credential_timeout() {
    let emulator = Emulator::start(&["--token-endpoint-down"]);
    let endpoint = emulator
        .var("IDENTITY_ENDPOINT")
        .expect("IDENTITY_ENDPOINT")
        .to_owned();
    let header = emulator
        .var("IDENTITY_HEADER")
        .expect("IDENTITY_HEADER")
        .to_owned();
    let _env = ProcessEnvGuard::new(&[
        ("IDENTITY_ENDPOINT", Some(&endpoint)),
        ("IDENTITY_HEADER", Some(&header)),
    ]);
    let store = store_for(
        &emulator,
        &[
            ("AZURE_CREDENTIAL", "managed-identity"),
            ("AZURE_CLIENT_ID", ""),
            ("AZURE_CLIENT_SECRET", ""),
        ],
    );
    let (outcome, elapsed) = timed("managed identity endpoint down", store.get_latest("x")).await;
    match outcome {
        Err(Error::VaultAuth { message }) => {
            eprintln!("managed identity endpoint down: {message}");
            assert!(message.contains("managed identity"), "{message}");
            assert!(
                !message.contains(&header),
                "IDENTITY_HEADER leaked: {message}"
            );
        }
        other => panic!("expected VaultAuth, got {:?}", other.map(|f| f.info)),
    }
    assert!(elapsed < FAST, "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn many_concurrent_gets_succeed() {
    let emulator = Emulator::start(&["--seed-count", "40"]);
    let store = store_for(&emulator, &[]);
    let names: Vec<String> = store
        .list_properties()
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert!(names.len() >= 40);
    let results = futures::future::join_all(names.iter().map(|n| store.get_latest(n))).await;
    assert!(results.iter().all(Result::is_ok));
    let stats = emulator.stats().await;
    let gets: u64 = stats["gets_by_secret"]
        .as_object()
        .map(|m| m.values().filter_map(serde_json::Value::as_u64).sum())
        .unwrap_or(0);
    assert!(gets >= names.len() as u64, "{stats}");
}
