//! The backend seam: where secret values come from and where rotations go.
//!
//! `ensure`, `load`, `rotate` and `verify` talk to a [`SecretStore`] only; the
//! Azure SDK lives behind it in `store::key_vault`, the demo `.env` in
//! `store::dotenv`, and an in-memory twin for tests in `store::memory`.

pub mod dotenv;
pub mod key_vault;
#[cfg(any(test, feature = "testing"))]
pub mod memory;

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::compose::SecretSpec;
use crate::error::{Error, Result};
use crate::secret::SecretValue;

/// Requests a store has in flight at once when fetching many values, unless it says otherwise
/// (Key Vault: COMPOSE_SECRETS_KV_CONCURRENCY).
pub const DEFAULT_CONCURRENCY: usize = 16;

/// The store's listing keyed by lower-case name (Key Vault names are case-insensitive).
pub async fn listing_by_name(store: &dyn SecretStore) -> Result<BTreeMap<String, VersionInfo>> {
    Ok(store
        .list_properties()
        .await?
        .into_iter()
        .map(|i| (i.name.to_ascii_lowercase(), i))
        .collect())
}

/// Tags written on a rotated version.
pub mod tags {
    pub const ROTATED_AT: &str = "rotated-at";
    pub const ROTATED_BY: &str = "rotated-by";
    pub const PREVIOUS_VERSION: &str = "previous-version";
    pub const ROLLBACK_OF: &str = "rollback-of";
}

/// How a store names secrets: Key Vault by vault name (case-insensitive, letters, digits and
/// dashes), `.env` by key. Known before the store is opened, so a bad name is reported before
/// a missing credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    VaultNames,
    EnvKeys,
}

impl Naming {
    pub fn key_for(self, spec: &SecretSpec) -> String {
        match self {
            Naming::VaultNames => spec.vault_name.clone(),
            Naming::EnvKeys => spec.env_key.clone(),
        }
    }

    /// Whether `key` can be stored; the reason otherwise.
    pub fn valid_key(self, key: &str) -> std::result::Result<(), String> {
        match self {
            Naming::VaultNames if crate::secret::is_valid_vault_name(key) => Ok(()),
            Naming::VaultNames => Err(format!(
                "Key Vault cannot store the name `{key}`: use 1-127 letters, digits and dashes \
                 (set x-compose-secrets.vault-name)"
            )),
            Naming::EnvKeys if crate::secret::is_valid_env_key(key) => Ok(()),
            Naming::EnvKeys => Err(format!(
                "`{key}` is not a valid .env key (set x-compose-secrets.env-key)"
            )),
        }
    }

    /// Refuse keys that cannot be stored, and two secrets on one key, naming every offender.
    pub fn check_keys(self, specs: &[&SecretSpec]) -> Result<()> {
        let vault = self == Naming::VaultNames;
        let mut problems = Vec::new();
        let mut seen: BTreeMap<String, (&str, bool)> = BTreeMap::new();
        for spec in specs.iter().filter(|s| !s.is_external()) {
            let key = self.key_for(spec);
            if let Err(why) = self.valid_key(&key) {
                problems.push(Error::manifest(&spec.name, why));
                continue;
            }
            let folded = if vault {
                key.to_ascii_lowercase()
            } else {
                key.clone()
            };
            // The parts of one certificate read one vault object.
            let part = spec.certificate.is_some();
            if let Some((other, other_part)) = seen.insert(folded, (&spec.name, part)) {
                if part && other_part {
                    continue;
                }
                problems.push(Error::manifest(
                    &spec.name,
                    format!(
                        "maps to the same {} `{key}` as secret `{other}`; set x-compose-secrets.{} on one of them",
                        if vault { "Key Vault name" } else { ".env key" },
                        if vault { "vault-name" } else { "env-key" },
                    ),
                ));
            }
        }
        Error::all(problems)
    }
}

/// Metadata of one secret (latest version) or one version. Never a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionInfo {
    /// Key in the store: the vault name in Key Vault, the `.env` key in demo mode.
    pub name: String,
    /// Version id; `None` when the store has no versions to speak of.
    pub version: Option<String>,
    pub enabled: bool,
    /// Unix seconds of the last update, where the store knows it.
    pub updated: Option<i64>,
    /// The version's expiry (Key Vault's `exp` attribute), Unix seconds, where it has one.
    pub expires: Option<i64>,
    pub tags: BTreeMap<String, String>,
    /// Key Vault's `contentType` (a certificate's says how its bundle is encoded).
    pub content_type: Option<String>,
}

impl crate::files::state::Listed for VersionInfo {
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
    fn updated(&self) -> Option<i64> {
        self.updated
    }
}

/// What a new version carries besides its value: tags, and the attributes a store can keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewVersion {
    pub tags: BTreeMap<String, String>,
    /// Expiry (Key Vault's `exp`), Unix seconds. A store without attributes (`.env`) drops it.
    pub expires: Option<i64>,
}

impl NewVersion {
    pub fn tagged(tags: BTreeMap<String, String>) -> Self {
        Self {
            tags,
            expires: None,
        }
    }
}

/// A value with the version it was read from.
#[derive(Debug, Clone)]
pub struct FetchedSecret {
    pub value: SecretValue,
    pub info: VersionInfo,
}

/// What an identity is allowed to do, as far as a store can tell without changing anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessProbe {
    pub reachable: bool,
    pub can_list: Option<bool>,
    pub can_get: Option<bool>,
    /// `None`: the API offers no way to test `set` without writing.
    pub can_set: Option<bool>,
    pub detail: String,
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Where values come from, for messages: `.env`, or the vault URL.
    fn describe(&self) -> String;

    /// Whether the store keeps a history of versions with ids, tags and timestamps (Key
    /// Vault), rather than only the current value (`.env`). Commands that need a version id or
    /// a tag ask this instead of knowing which backend they talk to.
    fn keeps_versions(&self) -> bool;

    /// How this store names secrets.
    fn naming(&self) -> Naming {
        if self.keeps_versions() {
            Naming::VaultNames
        } else {
            Naming::EnvKeys
        }
    }

    /// The key a secret has in this store: its vault name, or its `.env` key.
    fn key_for(&self, spec: &SecretSpec) -> String {
        self.naming().key_for(spec)
    }

    /// Refuse keys this store cannot hold, and two secrets that would share one, naming every
    /// offending secret. The product asks [`Naming::check_keys`] before a store is opened.
    #[cfg(any(test, feature = "testing"))]
    fn check_keys(&self, specs: &[&SecretSpec]) -> Result<()> {
        self.naming().check_keys(specs)
    }

    /// How many requests to have in flight at once when fetching many values.
    fn concurrency(&self) -> usize {
        DEFAULT_CONCURRENCY
    }

    async fn get_latest(&self, name: &str) -> Result<FetchedSecret>;

    async fn get_version(&self, name: &str, version: &str) -> Result<FetchedSecret>;

    /// Write a new current version with these tags and attributes; returns its metadata.
    async fn set_version(
        &self,
        name: &str,
        value: &SecretValue,
        version: &NewVersion,
    ) -> Result<VersionInfo>;

    /// Write a new current version with these tags only (no expiry). The product always
    /// writes through `set_version`; tests set values with this.
    #[cfg(any(test, feature = "testing"))]
    async fn set(
        &self,
        name: &str,
        value: &SecretValue,
        tags: &BTreeMap<String, String>,
    ) -> Result<VersionInfo> {
        self.set_version(name, value, &NewVersion::tagged(tags.clone()))
            .await
    }

    /// Replace the tags of one version, leaving its value and attributes as they are. Stores
    /// that keep no tags (`.env`) refuse; see [`SecretStore::keeps_versions`].
    async fn set_tags(
        &self,
        name: &str,
        version: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<VersionInfo> {
        let _ = (version, tags);
        Err(Error::Vault {
            context: format!("tag `{name}`"),
            message: format!("{} keeps no tags", self.describe()),
        })
    }

    /// Read again what the store keeps in memory from its source (the `.env` files), after
    /// the run lock was taken: a long-running `sync --watch` sees every later change.
    async fn reload(&self) -> Result<()> {
        Ok(())
    }

    /// Latest version of every secret in the store, in one listing.
    async fn list_properties(&self) -> Result<Vec<VersionInfo>>;

    /// The same listing as a stream, item by item as pages arrive, so work on the first
    /// page can start before the last one is read.
    fn list_properties_stream(&self) -> futures::stream::BoxStream<'_, Result<VersionInfo>> {
        use futures::StreamExt as _;
        Box::pin(
            futures::stream::once(self.list_properties()).flat_map(|listing| {
                let items: Vec<Result<VersionInfo>> = match listing {
                    Ok(items) => items.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                };
                futures::stream::iter(items)
            }),
        )
    }

    /// Every version of one secret.
    #[cfg(any(test, feature = "testing"))]
    async fn list_versions(&self, name: &str) -> Result<Vec<VersionInfo>>;

    /// Check reachability and permissions without changing anything.
    async fn probe_access(&self, names: &[String]) -> AccessProbe;
}
