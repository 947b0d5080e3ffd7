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

use crate::error::Result;
use crate::secret::SecretValue;

/// Tags written on a rotated version.
pub mod tags {
    pub const ROTATED_AT: &str = "rotated-at";
    pub const ROTATED_BY: &str = "rotated-by";
    pub const PREVIOUS_VERSION: &str = "previous-version";
    pub const ROLLBACK_OF: &str = "rollback-of";
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
    pub tags: BTreeMap<String, String>,
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

    /// Whether values are versioned remotely (Key Vault) rather than held in `.env`.
    fn is_remote(&self) -> bool;

    async fn get_latest(&self, name: &str) -> Result<FetchedSecret>;

    async fn get_version(&self, name: &str, version: &str) -> Result<FetchedSecret>;

    /// Write a new current version with these tags; returns its metadata.
    async fn set(
        &self,
        name: &str,
        value: &SecretValue,
        tags: &BTreeMap<String, String>,
    ) -> Result<VersionInfo>;

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
    async fn list_versions(&self, name: &str) -> Result<Vec<VersionInfo>>;

    /// Check reachability and permissions without changing anything.
    async fn probe_access(&self, names: &[String]) -> AccessProbe;
}
