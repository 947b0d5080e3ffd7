//! Azure Key Vault backend: the only module in the product that imports the azure_* crates.
//!
//! Public API uses our types only ([`KeyVaultConfig`], [`KeyVaultStore`], the
//! [`SecretStore`] trait); SDK models, errors and clients stay inside.
//! Submodules: `config` (settings), `credential` (which identity, bounded in
//! time), `transport` (the one HTTPS client), `errors` (SDK error → [`Error`]).

mod config;
mod credential;
mod errors;
mod retry;
mod transport;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions};
use azure_security_keyvault_secrets::models::{
    Secret, SecretAttributes, SecretClientGetSecretOptions,
    SecretClientListSecretPropertiesOptions, SecretClientUpdateSecretPropertiesOptions,
    SecretProperties, SetSecretParameters, UpdateSecretPropertiesParameters,
};
use azure_security_keyvault_secrets::{ResourceExt as _, SecretClient, SecretClientOptions};
use futures::{StreamExt as _, TryStreamExt as _};

pub use config::KeyVaultConfig;
use credential::{ResolvedCredential, Surroundings};
use errors::{map_error, Operation};
pub use retry::COMMAND_RETRY_BUDGET;
use retry::{RetryBudget, ThrottleGate, VaultRetry};
use transport::{build_transport, TransportSettings};

use super::{AccessProbe, FetchedSecret, NewVersion, SecretStore, VersionInfo};
use crate::error::{Error, Result};
use crate::secret::{is_valid_vault_name, SecretValue};

/// Content type written on every version we create.
const CONTENT_TYPE: &str = "text/plain";
/// First retry delay; doubled (plus jitter) per attempt up to `MAX_RETRY_DELAY`.
const INITIAL_RETRY_DELAY: Duration = Duration::from_millis(250);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(8);
/// Few retries: azure_core also retries connection failures, and a CLI should
/// fail in seconds when the vault is unreachable, not after minutes.
const MAX_RETRIES: u32 = 5;
/// Retries of a token request (IMDS ignores this and uses its own policy).
const CREDENTIAL_MAX_RETRIES: u32 = 3;
/// Longest version id we pass into a URL path (Key Vault's are 32 hex characters).
const MAX_VERSION_LEN: usize = 64;

/// Secrets in one Azure Key Vault.
pub struct KeyVaultStore {
    client: SecretClient,
    vault_url: String,
    concurrency: usize,
    retry_budget: Duration,
    /// Every wait between attempts of this command, over all its requests.
    waits: Arc<RetryBudget>,
    credential: ResolvedCredential,
}

impl std::fmt::Debug for KeyVaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVaultStore")
            .field("vault_url", &self.vault_url)
            .field("credential", &self.credential.describe())
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl KeyVaultStore {
    /// Build the HTTPS client, pick and build the credential, and create the
    /// SDK client. Sends nothing over the network; fails when TLS cannot be set
    /// up or no credential is configured.
    pub fn new(config: KeyVaultConfig) -> Result<Self> {
        let process_env = |key: &str| std::env::var(key).ok();
        let resolved = credential::resolve(
            config.credential,
            &config.identity,
            config.allow_imds,
            &Surroundings {
                process_env: &process_env,
                az_on_path: credential::az_on_path(),
            },
        )?;
        Self::with_credential(config, resolved)
    }

    fn with_credential(config: KeyVaultConfig, resolved: ResolvedCredential) -> Result<Self> {
        if config.concurrency == 0 {
            return Err(Error::Usage(
                "Key Vault concurrency must be at least 1".into(),
            ));
        }
        let transport = build_transport(&TransportSettings {
            ca_file: config.ca_file.as_deref(),
            connect_timeout: config::DEFAULT_CONNECT_TIMEOUT.min(config.request_timeout),
            read_timeout: config.request_timeout,
            allow_imds: config.allow_imds,
        })?;
        let waits = RetryBudget::new(COMMAND_RETRY_BUDGET);
        let client_options = ClientOptions {
            transport: Some(transport),
            retry: RetryOptions::custom(Arc::new(VaultRetry::new(
                waits.clone(),
                INITIAL_RETRY_DELAY,
                MAX_RETRY_DELAY,
                MAX_RETRIES,
                config.retry_budget,
            ))),
            per_try_policies: vec![Arc::new(ThrottleGate::new(waits.clone()))],
            ..Default::default()
        };
        // The token endpoint gets a shorter retry budget than the vault, so a
        // failing endpoint is reported with its HTTP status before the credential
        // timeout cuts it off with a vaguer "did not answer".
        let credential_options = ClientOptions {
            retry: RetryOptions::exponential(ExponentialRetryOptions {
                initial_delay: to_sdk_duration(INITIAL_RETRY_DELAY),
                max_retries: CREDENTIAL_MAX_RETRIES,
                max_total_elapsed: to_sdk_duration(config.credential_timeout / 2),
                max_delay: to_sdk_duration(MAX_RETRY_DELAY),
            }),
            per_try_policies: Vec::new(),
            ..client_options.clone()
        };
        let credential = credential::build(resolved, &config, credential_options)?;
        let verify_challenge_resource = config.effective_verify_challenge_resource();
        if !verify_challenge_resource {
            tracing::debug!(vault = %config.vault_url, "challenge resource verification is off");
        }
        let options = SecretClientOptions {
            client_options,
            verify_challenge_resource: Some(verify_challenge_resource),
            ..Default::default()
        };
        let client =
            SecretClient::new(&config.vault_url, credential, Some(options)).map_err(|e| {
                Error::Usage(format!(
                    "AZURE_KEYVAULT_URL={}: {}",
                    config.vault_url,
                    transport::shorten(&e.to_string(), 200)
                ))
            })?;
        tracing::debug!(
            vault = %config.vault_url,
            credential = resolved.describe(),
            "Key Vault client ready"
        );
        Ok(Self {
            client,
            vault_url: config.vault_url,
            concurrency: config.concurrency,
            retry_budget: config.retry_budget,
            waits,
            credential: resolved,
        })
    }

    /// The vault's base URL, without a trailing slash.
    #[cfg(any(test, feature = "testing"))]
    pub fn vault_url(&self) -> &str {
        &self.vault_url
    }

    /// How many requests bulk reads may run in parallel.
    #[cfg(any(test, feature = "testing"))]
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The credential in use, e.g. `managed identity (IDENTITY_ENDPOINT)`.
    #[cfg(any(test, feature = "testing"))]
    pub fn credential_description(&self) -> &'static str {
        self.credential.describe()
    }

    /// Enable or disable one version (`None`: the latest). Used by tests.
    #[cfg(any(test, feature = "testing"))]
    pub async fn set_enabled(
        &self,
        name: &str,
        version: Option<&str>,
        enabled: bool,
    ) -> Result<VersionInfo> {
        check_name(name)?;
        if let Some(version) = version {
            check_version(name, version)?;
        }
        let op = Operation::set(name, version);
        let parameters = UpdateSecretPropertiesParameters {
            secret_attributes: Some(SecretAttributes {
                enabled: Some(enabled),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.update_properties(name, version, parameters, op).await
    }

    /// PATCH one version's properties (`None`: the latest): attributes or tags.
    async fn update_properties(
        &self,
        name: &str,
        version: Option<&str>,
        parameters: UpdateSecretPropertiesParameters,
        op: Operation<'_>,
    ) -> Result<VersionInfo> {
        let options = SecretClientUpdateSecretPropertiesOptions {
            secret_version: version.map(str::to_owned),
            ..Default::default()
        };
        let content = parameters.try_into().map_err(|e| self.map(&e, op))?;
        let updated = self
            .client
            .update_secret_properties(name, content, Some(options))
            .await
            .and_then(|response| response.into_model())
            .map_err(|e| self.map(&e, op))?;
        Ok(version_info_of_secret(name, &updated))
    }

    fn map(&self, error: &azure_core::Error, op: Operation<'_>) -> Error {
        map_error(error, op, self.retry_budget)
    }

    async fn fetch(&self, name: &str, version: Option<&str>) -> Result<FetchedSecret> {
        check_name(name)?;
        if let Some(version) = version {
            check_version(name, version)?;
        }
        let op = Operation::get(name, version);
        let options = SecretClientGetSecretOptions {
            secret_version: version.map(str::to_owned),
            ..Default::default()
        };
        let mut secret = self
            .client
            .get_secret(name, Some(options))
            .await
            .and_then(|response| response.into_model())
            .map_err(|e| self.map(&e, op))?;
        let info = version_info_of_secret(name, &secret);
        let value = secret
            .value
            .take()
            .map(SecretValue::new)
            .ok_or_else(|| Error::Vault {
                context: format!("get `{name}`"),
                message: "the vault returned the secret without a value".into(),
            })?;
        Ok(FetchedSecret { value, info })
    }

    /// Drain one listing into our metadata, with the same mapping for every page.
    async fn collect_listing(
        &self,
        pager: azure_core::Result<
            azure_core::http::Pager<
                azure_security_keyvault_secrets::models::ListSecretPropertiesResult,
            >,
        >,
        op: Operation<'_>,
        fallback_name: Option<&str>,
    ) -> Result<Vec<(VersionInfo, i64)>> {
        let mut pager = pager.map_err(|e| self.map(&e, op))?;
        let mut out = Vec::new();
        while let Some(properties) = pager.try_next().await.map_err(|e| self.map(&e, op))? {
            out.push(version_info_of_properties(&properties, fallback_name));
        }
        Ok(out)
    }

    /// Whether the identity may `get` `names` (disabled and missing secrets still prove it),
    /// with what was found in `notes`.
    async fn probe_get(&self, names: &[String], notes: &mut Vec<String>) -> Option<bool> {
        let outcomes: Vec<(String, Result<FetchedSecret>)> =
            futures::stream::iter(names.iter().cloned())
                .map(|name| async move {
                    let outcome = self.fetch(&name, None).await;
                    (name, outcome)
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
        let mut denied = Vec::new();
        let mut missing = Vec::new();
        let mut other = Vec::new();
        for (name, outcome) in outcomes {
            match outcome {
                // Disabled and missing secrets still prove the permission.
                Ok(_) | Err(Error::SecretDisabled { .. }) => {}
                Err(Error::SecretNotFound { .. }) => missing.push(name),
                Err(Error::VaultForbidden { .. }) => denied.push(name),
                Err(e) => other.push(format!("{name}: {e}")),
            }
        }
        let can_get = if !denied.is_empty() {
            Some(false)
        } else if other.is_empty() || other.len() < names.len() {
            Some(true)
        } else {
            None
        };
        if denied.is_empty() {
            notes.push("get: allowed".into());
        } else {
            denied.sort();
            notes.push(format!("get: denied for {}", denied.join(", ")));
        }
        if !missing.is_empty() {
            missing.sort();
            notes.push(format!("not in the vault: {}", missing.join(", ")));
        }
        if !other.is_empty() {
            other.sort();
            notes.push(format!("get failed: {}", other.join("; ")));
        }
        can_get
    }

    /// `can_set`: a PATCH of a secret that does not exist. Key Vault checks the
    /// permission before looking the secret up, so 404 means "allowed" and 403
    /// "denied", and nothing is written either way.
    async fn probe_set(&self) -> (Option<bool>, String) {
        let probe_name = format!("compose-secrets-probe-{}", random_hex(16));
        let options = SecretClientUpdateSecretPropertiesOptions::default();
        let content = match UpdateSecretPropertiesParameters::default().try_into() {
            Ok(content) => content,
            Err(_) => return (None, "set: not checked".into()),
        };
        let outcome = self
            .client
            .update_secret_properties(&probe_name, content, Some(options))
            .await
            .and_then(|response| response.into_model());
        match outcome {
            // Impossible for a random name; if it happens, nothing changed but the version's timestamp.
            Ok(_) => (Some(true), "set: allowed".into()),
            Err(e) => match self.map(&e, Operation::set(&probe_name, None)) {
                Error::SecretNotFound { .. } => (
                    Some(true),
                    "set: allowed (an update of a nonexistent secret was refused only as not found; with Azure RBAC this checks the secrets update action)".into(),
                ),
                Error::VaultForbidden { message, .. } => (Some(false), format!("set: denied ({message})")),
                other => (None, format!("set: not determined ({other})")),
            },
        }
    }
}

#[async_trait]
impl SecretStore for KeyVaultStore {
    /// A new `sync --watch` step: the retry budget is per step, not for the watcher's life.
    async fn reload(&self) -> Result<()> {
        self.waits.reset();
        Ok(())
    }

    fn describe(&self) -> String {
        self.vault_url.clone()
    }

    fn keeps_versions(&self) -> bool {
        true
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    async fn get_latest(&self, name: &str) -> Result<FetchedSecret> {
        self.fetch(name, None).await
    }

    async fn get_version(&self, name: &str, version: &str) -> Result<FetchedSecret> {
        self.fetch(name, Some(version)).await
    }

    async fn set_version(
        &self,
        name: &str,
        value: &SecretValue,
        version: &NewVersion,
    ) -> Result<VersionInfo> {
        check_name(name)?;
        let op = Operation::set(name, None);
        let expires = match version.expires {
            Some(at) => Some(
                azure_core::time::OffsetDateTime::from_unix_timestamp(at).map_err(|_| {
                    Error::manifest(name, format!("expiry {at} is not a representable time"))
                })?,
            ),
            None => None,
        };
        let parameters = SetSecretParameters {
            value: Some(value.expose().to_owned()),
            content_type: Some(CONTENT_TYPE.to_owned()),
            secret_attributes: expires.map(|expires| SecretAttributes {
                expires: Some(expires),
                ..Default::default()
            }),
            tags: Some(
                version
                    .tags
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<HashMap<_, _>>(),
            ),
        };
        let content = parameters.try_into().map_err(|e| self.map(&e, op))?;
        let created = self
            .client
            .set_secret(name, content, None)
            .await
            .and_then(|response| response.into_model())
            .map_err(|e| self.map(&e, op))?;
        let info = version_info_of_secret(name, &created);
        tracing::debug!(
            secret = name,
            version = info.version.as_deref().unwrap_or("?"),
            "wrote a new version"
        );
        Ok(info)
    }

    async fn set_tags(
        &self,
        name: &str,
        version: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<VersionInfo> {
        check_name(name)?;
        check_version(name, version)?;
        let op = Operation::set(name, Some(version));
        let parameters = UpdateSecretPropertiesParameters {
            tags: Some(tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            ..Default::default()
        };
        self.update_properties(name, Some(version), parameters, op)
            .await
    }

    async fn list_properties(&self) -> Result<Vec<VersionInfo>> {
        let op = Operation::list(None);
        let pager = self.client.list_secret_properties(None);
        let mut out: Vec<VersionInfo> = self
            .collect_listing(pager, op, None)
            .await?
            .into_iter()
            .map(|(info, _)| info)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn list_properties_stream(&self) -> futures::stream::BoxStream<'_, Result<VersionInfo>> {
        let op = Operation::list(None);
        match self.client.list_secret_properties(None) {
            Ok(pager) => Box::pin(pager.map(move |item| {
                item.map(|properties| version_info_of_properties(&properties, None).0)
                    .map_err(|e| self.map(&e, op))
            })),
            Err(e) => Box::pin(futures::stream::once(futures::future::ready(Err(
                self.map(&e, op)
            )))),
        }
    }

    #[cfg(any(test, feature = "testing"))]
    async fn list_versions(&self, name: &str) -> Result<Vec<VersionInfo>> {
        check_name(name)?;
        let op = Operation::list(Some(name));
        let pager = self.client.list_secret_properties_versions(name, None);
        let mut out = match self.collect_listing(pager, op, Some(name)).await {
            Ok(out) => out,
            // A name with no versions has an empty history, as in the other stores.
            Err(Error::SecretNotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        // Oldest first, like the other stores; Key Vault does not promise an order.
        // Timestamps have one-second resolution; the stable sort keeps the
        // service's order for versions created within the same second.
        out.sort_by_key(|(info, created)| (*created, info.updated));
        Ok(out.into_iter().map(|(info, _)| info).collect())
    }

    async fn probe_access(&self, names: &[String]) -> AccessProbe {
        let mut probe = AccessProbe::default();
        let mut notes = vec![format!("credential: {}", self.credential.describe())];

        // list: one page of one item is enough to see the permission.
        let options = SecretClientListSecretPropertiesOptions {
            maxresults: Some(1),
            ..Default::default()
        };
        let listing = match self.client.list_secret_properties(Some(options)) {
            Ok(pager) => pager.into_pages().try_next().await.map(|_| ()),
            Err(e) => Err(e),
        };
        match listing.map_err(|e| self.map(&e, Operation::list(None))) {
            Ok(()) => {
                probe.reachable = true;
                probe.can_list = Some(true);
                notes.push("list: allowed".into());
            }
            Err(Error::VaultForbidden { message, .. }) => {
                probe.reachable = true;
                probe.can_list = Some(false);
                notes.push(format!("list: denied ({message})"));
            }
            Err(e @ Error::VaultAuth { .. }) => {
                // The vault may have answered, but nothing else can be learned without a token.
                notes.push(e.to_string());
                probe.detail = notes.join("; ");
                return probe;
            }
            Err(e) => {
                notes.push(format!("unreachable: {e}"));
                probe.detail = notes.join("; ");
                return probe;
            }
        }

        // get: every named secret, a few at a time.
        if !names.is_empty() {
            probe.can_get = self.probe_get(names, &mut notes).await;
        }

        let (can_set, set_note) = self.probe_set().await;
        probe.can_set = can_set;
        notes.push(set_note);
        probe.detail = notes.join("; ");
        probe
    }
}

/// Key Vault puts names into the URL path unescaped; refuse anything else first.
fn check_name(name: &str) -> Result<()> {
    if is_valid_vault_name(name) {
        Ok(())
    } else {
        Err(Error::manifest(
            name,
            "is not a valid Key Vault secret name (1-127 letters, digits and dashes)",
        ))
    }
}

fn check_version(name: &str, version: &str) -> Result<()> {
    if !version.is_empty()
        && version.len() <= MAX_VERSION_LEN
        && version.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        Ok(())
    } else {
        Err(Error::manifest(
            name,
            format!("`{version}` is not a Key Vault version id (letters and digits)"),
        ))
    }
}

fn to_sdk_duration(duration: Duration) -> azure_core::time::Duration {
    azure_core::time::Duration::milliseconds(
        i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
    )
}

fn unix_seconds(time: Option<azure_core::time::OffsetDateTime>) -> Option<i64> {
    time.map(|t| t.unix_timestamp())
}

fn tags_of(tags: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    tags.map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// Metadata of a get/set/update answer; the version comes from its id.
fn version_info_of_secret(requested_name: &str, secret: &Secret) -> VersionInfo {
    let id = secret.resource_id().ok();
    let name = id.as_ref().map(|id| id.name.clone());
    version_info(
        name.unwrap_or_else(|| requested_name.to_owned()),
        id.and_then(|id| id.version),
        secret.attributes.as_ref(),
        secret.tags.as_ref(),
        secret.content_type.clone(),
    )
}

/// Metadata of a listing item, plus its creation time for ordering versions.
/// Items of the secrets listing have version-less ids, so `version` is `None` there.
fn version_info_of_properties(
    properties: &SecretProperties,
    fallback_name: Option<&str>,
) -> (VersionInfo, i64) {
    let id = properties.resource_id().ok();
    let attributes = properties.attributes.as_ref();
    let name = id.as_ref().map(|id| id.name.clone());
    let info = version_info(
        name.or_else(|| fallback_name.map(str::to_owned))
            .unwrap_or_default(),
        id.and_then(|id| id.version),
        attributes,
        properties.tags.as_ref(),
        properties.content_type.clone(),
    );
    let created = unix_seconds(attributes.and_then(|a| a.created)).unwrap_or(i64::MAX);
    (info, created)
}

/// What a get answer and a listing item both say of a version.
fn version_info(
    name: String,
    version: Option<String>,
    attributes: Option<&SecretAttributes>,
    tags: Option<&HashMap<String, String>>,
    content_type: Option<String>,
) -> VersionInfo {
    VersionInfo {
        name,
        version,
        enabled: attributes.and_then(|a| a.enabled).unwrap_or(true),
        updated: unix_seconds(attributes.and_then(|a| a.updated)),
        expires: unix_seconds(attributes.and_then(|a| a.expires)),
        tags: tags_of(tags),
        content_type,
    }
}

/// Random lowercase hex for probe names (no need for cryptographic strength).
fn random_hex(bytes: usize) -> String {
    use rand::RngCore as _;
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    hex::encode(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions_are_checked_before_they_reach_a_url() {
        assert!(check_name("db-password").is_ok());
        assert!(check_name("../secrets").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_version("db", "0123456789abcdef0123456789abcdef").is_ok());
        assert!(check_version("db", "").is_err());
        assert!(check_version("db", "x/../y").is_err());
    }

    #[test]
    fn store_builds_without_network_and_reports_its_settings() {
        let mut config = KeyVaultConfig::new("https://127.0.0.1:9");
        config.concurrency = 3;
        config.identity.tenant_id = Some("tenant".into());
        config.identity.client_id = Some("client".into());
        config.identity.client_secret = Some(SecretValue::new("shh".into()));
        config.credential = super::config::CredentialChoice::ClientSecret;
        let store = KeyVaultStore::new(config).expect("builds offline");
        assert_eq!(store.vault_url(), "https://127.0.0.1:9");
        assert_eq!(store.concurrency(), 3);
        assert!(store.credential_description().contains("client secret"));
        assert!(!format!("{store:?}").contains("shh"));
    }

    #[test]
    fn version_info_reads_id_attributes_and_tags() {
        let mut secret = Secret::default();
        secret.id = Some("https://v.vault.azure.net/secrets/db/0123abcd".into());
        let attributes = SecretAttributes {
            enabled: Some(false),
            updated: azure_core::time::OffsetDateTime::from_unix_timestamp(1_700_000_000).ok(),
            expires: azure_core::time::OffsetDateTime::from_unix_timestamp(1_800_000_000).ok(),
            ..Default::default()
        };
        secret.attributes = Some(attributes);
        secret.tags = Some(HashMap::from([("rotated-by".to_owned(), "me".to_owned())]));
        let info = version_info_of_secret("ignored", &secret);
        assert_eq!(info.name, "db");
        assert_eq!(info.version.as_deref(), Some("0123abcd"));
        assert!(!info.enabled);
        assert_eq!(info.updated, Some(1_700_000_000));
        assert_eq!(info.expires, Some(1_800_000_000));
        assert_eq!(info.tags.get("rotated-by").map(String::as_str), Some("me"));
    }
}
