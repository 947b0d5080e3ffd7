//! Key Vault settings: which vault, which credential, TLS, retries, read from a layered lookup.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use azure_core::http::Url;

use crate::error::{Error, Result};
use crate::secret::SecretValue;

/// Parallel Key Vault requests when COMPOSE_SECRETS_KV_CONCURRENCY is not set.
pub use crate::store::DEFAULT_CONCURRENCY;
/// Upper bound for COMPOSE_SECRETS_KV_CONCURRENCY; Key Vault throttles at about
/// 4,000 requests per 10 s per vault, so more parallelism only buys 429s.
pub const MAX_CONCURRENCY: usize = 256;
/// Total time one call may spend retrying 429/5xx/connection failures.
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(30);
/// Longest wait for one HTTP read before the attempt counts as failed.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a TCP + TLS connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a credential to produce a token. The IMDS credential's own
/// retry loop runs for about 72 s off Azure; this cap makes it fail in seconds.
pub const DEFAULT_CREDENTIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Which kind of Azure credential authenticates to the vault (AZURE_CREDENTIAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CredentialChoice {
    /// Pick the first that is configured; see [`super::credential`] for the order.
    #[default]
    Auto,
    ManagedIdentity,
    WorkloadIdentity,
    ClientSecret,
    AzureCli,
}

impl CredentialChoice {
    /// Values accepted by AZURE_CREDENTIAL, for messages.
    pub const ACCEPTED: &'static str =
        "managed-identity, workload-identity, client-secret, cli, auto";

    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Some(Self::Auto),
            "managed-identity" | "managed_identity" | "msi" => Some(Self::ManagedIdentity),
            "workload-identity" | "workload_identity" => Some(Self::WorkloadIdentity),
            "client-secret" | "client_secret" => Some(Self::ClientSecret),
            "cli" | "azure-cli" | "az" => Some(Self::AzureCli),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::ManagedIdentity => "managed-identity",
            Self::WorkloadIdentity => "workload-identity",
            Self::ClientSecret => "client-secret",
            Self::AzureCli => "cli",
        }
    }
}

impl fmt::Display for CredentialChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Entra ID identity settings the credentials use. `Debug` redacts the secret.
#[derive(Debug, Clone, Default)]
pub struct IdentityConfig {
    /// AZURE_TENANT_ID.
    pub tenant_id: Option<String>,
    /// AZURE_CLIENT_ID: the app registration for client-secret / workload identity,
    /// or the user-assigned identity for managed identity.
    pub client_id: Option<String>,
    /// AZURE_CLIENT_SECRET. Never printed or logged.
    pub client_secret: Option<SecretValue>,
    /// AZURE_FEDERATED_TOKEN_FILE (workload identity on AKS).
    pub federated_token_file: Option<PathBuf>,
    /// AZURE_AUTHORITY_HOST, e.g. `https://login.microsoftonline.us`; https only.
    pub authority_host: Option<String>,
}

/// Everything [`super::KeyVaultStore::new`] needs.
#[derive(Debug, Clone)]
pub struct KeyVaultConfig {
    /// `https://NAME.vault.azure.net` or an emulator's `https://127.0.0.1:PORT`.
    pub vault_url: String,
    pub credential: CredentialChoice,
    pub identity: IdentityConfig,
    /// Extra PEM CA bundle, trusted in addition to the system roots.
    pub ca_file: Option<PathBuf>,
    /// Whether the 401 challenge's resource must match the vault's domain.
    /// `None`: on, except for loopback vault URLs (a local emulator).
    pub verify_challenge_resource: Option<bool>,
    /// Parallel requests for bulk reads.
    pub concurrency: usize,
    /// Total retry time for one call (429/503 honour Retry-After within it).
    pub retry_budget: Duration,
    /// Longest wait for one HTTP read.
    pub request_timeout: Duration,
    /// Longest wait for a credential to produce a token.
    pub credential_timeout: Duration,
    /// Whether managed identity may fall back to IMDS (169.254.169.254).
    pub allow_imds: bool,
}

impl KeyVaultConfig {
    /// A config for `vault_url` with every other setting at its default.
    pub fn new(vault_url: impl Into<String>) -> Self {
        Self {
            vault_url: vault_url.into(),
            credential: CredentialChoice::Auto,
            identity: IdentityConfig::default(),
            ca_file: None,
            verify_challenge_resource: None,
            concurrency: DEFAULT_CONCURRENCY,
            retry_budget: DEFAULT_RETRY_BUDGET,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            credential_timeout: DEFAULT_CREDENTIAL_TIMEOUT,
            allow_imds: true,
        }
    }

    /// Read the settings through `lookup`, which lets the caller layer
    /// flags > process environment > `.env`:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | AZURE_KEYVAULT_URL | vault URL (https); wins over AZURE_KEYVAULT_NAME |
    /// | AZURE_KEYVAULT_NAME | vault name (3–24 letters, digits, dashes) → `https://NAME.vault.azure.net` |
    /// | AZURE_CREDENTIAL | managed-identity, workload-identity, client-secret, cli, auto (default) |
    /// | AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET | service principal; AZURE_CLIENT_ID alone selects a user-assigned managed identity |
    /// | AZURE_FEDERATED_TOKEN_FILE | workload identity token file |
    /// | AZURE_AUTHORITY_HOST | Entra ID authority (https), for sovereign clouds |
    /// | COMPOSE_SECRETS_CA_FILE | extra PEM CA bundle, merged with the system roots |
    /// | AZURE_KEYVAULT_VERIFY_CHALLENGE_RESOURCE | true/false: force the challenge-resource check on or off |
    /// | COMPOSE_SECRETS_KV_CONCURRENCY | parallel requests (default 16) |
    /// | COMPOSE_SECRETS_DISABLE_IMDS | 1 = never use the VM metadata endpoint |
    ///
    /// IDENTITY_ENDPOINT and IDENTITY_HEADER (App Service / Container Apps managed
    /// identity) are read by azure_identity itself from the *process* environment
    /// only; a value in `.env` or on the command line has no effect on them.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |key: &str| {
            lookup(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let vault_url = match (get("AZURE_KEYVAULT_URL"), get("AZURE_KEYVAULT_NAME")) {
            (Some(url), _) => normalize_vault_url(&url)?,
            (None, Some(name)) => vault_url_from_name(&name)?,
            (None, None) => {
                return Err(Error::Usage(
                    "Key Vault mode needs AZURE_KEYVAULT_URL (https://NAME.vault.azure.net) or AZURE_KEYVAULT_NAME".into(),
                ))
            }
        };
        let mut config = Self::new(vault_url);

        if let Some(value) = get("AZURE_CREDENTIAL") {
            config.credential = CredentialChoice::parse(&value).ok_or_else(|| {
                Error::Usage(format!(
                    "AZURE_CREDENTIAL={value} is not known; use one of: {}",
                    CredentialChoice::ACCEPTED
                ))
            })?;
        }

        config.identity = IdentityConfig {
            tenant_id: get("AZURE_TENANT_ID"),
            client_id: get("AZURE_CLIENT_ID"),
            // Not trimmed beyond surrounding whitespace: a secret is used as given.
            client_secret: get("AZURE_CLIENT_SECRET").map(SecretValue::new),
            federated_token_file: get("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from),
            authority_host: get("AZURE_AUTHORITY_HOST")
                .map(|host| validate_authority_host(&host))
                .transpose()?,
        };

        config.ca_file = get("COMPOSE_SECRETS_CA_FILE").map(PathBuf::from);

        if let Some(value) = get("AZURE_KEYVAULT_VERIFY_CHALLENGE_RESOURCE") {
            config.verify_challenge_resource = Some(parse_bool(&value).ok_or_else(|| {
                Error::Usage(format!(
                    "AZURE_KEYVAULT_VERIFY_CHALLENGE_RESOURCE={value}: expected true or false"
                ))
            })?);
        }

        if let Some(value) = get("COMPOSE_SECRETS_KV_CONCURRENCY") {
            config.concurrency = value
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_CONCURRENCY).contains(n))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "COMPOSE_SECRETS_KV_CONCURRENCY={value}: expected a number from 1 to {MAX_CONCURRENCY}"
                    ))
                })?;
        }

        if let Some(value) = get("COMPOSE_SECRETS_DISABLE_IMDS") {
            let disable = parse_bool(&value).ok_or_else(|| {
                Error::Usage(format!(
                    "COMPOSE_SECRETS_DISABLE_IMDS={value}: expected 1 or 0"
                ))
            })?;
            config.allow_imds = !disable;
        }

        warn_process_only(&get);
        Ok(config)
    }

    /// Whether the challenge-resource check runs for this vault.
    pub fn effective_verify_challenge_resource(&self) -> bool {
        self.verify_challenge_resource
            .unwrap_or_else(|| !is_loopback_url(&self.vault_url))
    }
}

/// `true` for `1/true/yes/on`, `false` for `0/false/no/off`.
fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Parse AZURE_KEYVAULT_URL: https only (the SDK refuses bearer tokens over http),
/// no path, query or credentials; returned without a trailing slash.
fn normalize_vault_url(raw: &str) -> Result<String> {
    let url = Url::parse(raw)
        .map_err(|e| Error::Usage(format!("AZURE_KEYVAULT_URL={raw} is not a URL: {e}")))?;
    if url.scheme() != "https" {
        return Err(Error::Usage(format!(
            "AZURE_KEYVAULT_URL={raw} must use https: Key Vault authentication is refused over plain http"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::Usage(format!(
            "AZURE_KEYVAULT_URL={raw} has no host"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Usage(
            "AZURE_KEYVAULT_URL must not contain credentials".into(),
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Usage(format!(
            "AZURE_KEYVAULT_URL={raw} must be the vault's base URL, without a path or query"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// `my-vault` -> `https://my-vault.vault.azure.net`, after Azure's naming rules:
/// 3–24 characters, letters, digits and dashes, starting with a letter, not ending
/// with a dash and without two dashes in a row.
fn vault_url_from_name(name: &str) -> Result<String> {
    if !is_valid_vault_name(name) {
        return Err(Error::Usage(format!(
            "AZURE_KEYVAULT_NAME={name} is not a valid vault name: use 3-24 letters, digits and dashes, starting with a letter (or set AZURE_KEYVAULT_URL)"
        )));
    }
    Ok(format!(
        "https://{}.vault.azure.net",
        name.to_ascii_lowercase()
    ))
}

pub(super) fn is_valid_vault_name(name: &str) -> bool {
    (3..=24).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && name.as_bytes()[0].is_ascii_alphabetic()
        && !name.ends_with('-')
        && !name.contains("--")
}

fn validate_authority_host(raw: &str) -> Result<String> {
    match Url::parse(raw) {
        Ok(url) if url.scheme() == "https" && url.host_str().is_some() => {
            Ok(raw.trim_end_matches('/').to_owned())
        }
        Ok(_) => Err(Error::Usage(format!(
            "AZURE_AUTHORITY_HOST={raw} must be an https URL"
        ))),
        Err(e) => Err(Error::Usage(format!(
            "AZURE_AUTHORITY_HOST={raw} is not a URL: {e}"
        ))),
    }
}

/// Whether a URL's host is this machine: `localhost`, 127.0.0.0/8 or ::1.
///
/// Only such a vault (a local emulator) gets the challenge-resource check turned
/// off automatically; a real vault keeps it, so a token is never sent to a host
/// that names a different resource.
pub fn is_loopback_url(url: &str) -> bool {
    let Ok(url) = Url::parse(url) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    // `host_str` keeps IPv6 literals in brackets.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost") || bare.eq_ignore_ascii_case("localhost."),
    }
}

/// The SDK reads IDENTITY_ENDPOINT and IDENTITY_HEADER from the process environment only:
/// warn when the caller's layers have them but the process does not, since they would be
/// ignored.
fn warn_process_only(get: &dyn Fn(&str) -> Option<String>) {
    for key in ["IDENTITY_ENDPOINT", "IDENTITY_HEADER"] {
        if get(key).is_some() && std::env::var_os(key).is_none() {
            tracing::warn!(
                "{key} is set in .env or on the command line, but managed identity reads it from the process environment only; export it instead"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config_from(pairs: &[(&str, &str)]) -> Result<KeyVaultConfig> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        KeyVaultConfig::from_lookup(&|key| map.get(key).cloned())
    }

    #[test]
    fn vault_name_becomes_public_cloud_url() {
        let config = config_from(&[("AZURE_KEYVAULT_NAME", "My-Vault1")]).expect("valid");
        assert_eq!(config.vault_url, "https://my-vault1.vault.azure.net");
        assert_eq!(config.credential, CredentialChoice::Auto);
        assert_eq!(config.concurrency, DEFAULT_CONCURRENCY);
        assert!(config.allow_imds);
        assert!(config.effective_verify_challenge_resource());
    }

    #[test]
    fn url_wins_over_name_and_loses_trailing_slash() {
        let config = config_from(&[
            ("AZURE_KEYVAULT_URL", "https://other.vault.azure.net/"),
            ("AZURE_KEYVAULT_NAME", "ignored"),
        ])
        .expect("valid");
        assert_eq!(config.vault_url, "https://other.vault.azure.net");
    }

    #[test]
    fn invalid_vault_names_are_refused() {
        for name in [
            "ab",
            "a".repeat(25).as_str(),
            "1vault",
            "vault-",
            "va--ult",
            "va_ult",
            "vault.x",
        ] {
            let err = config_from(&[("AZURE_KEYVAULT_NAME", name)])
                .expect_err(&format!("{name} should be refused"));
            assert!(matches!(err, Error::Usage(_)), "{err}");
        }
        assert!(config_from(&[("AZURE_KEYVAULT_NAME", "abc")]).is_ok());
        assert!(config_from(&[("AZURE_KEYVAULT_NAME", &"a".repeat(24))]).is_ok());
    }

    #[test]
    fn missing_vault_is_a_usage_error() {
        let err = config_from(&[]).expect_err("no vault");
        assert!(err.to_string().contains("AZURE_KEYVAULT_URL"), "{err}");
    }

    #[test]
    fn plain_http_and_paths_are_refused() {
        for url in [
            "http://127.0.0.1:8443",
            "https://vault.azure.net/secrets",
            "https://vault.azure.net/?x=1",
            "https://user:pw@vault.azure.net",
            "not a url",
        ] {
            assert!(
                config_from(&[("AZURE_KEYVAULT_URL", url)]).is_err(),
                "{url} should be refused"
            );
        }
    }

    #[test]
    fn credential_choices_parse() {
        for (value, expected) in [
            ("managed-identity", CredentialChoice::ManagedIdentity),
            ("workload-identity", CredentialChoice::WorkloadIdentity),
            ("client-secret", CredentialChoice::ClientSecret),
            ("cli", CredentialChoice::AzureCli),
            ("AUTO", CredentialChoice::Auto),
        ] {
            let config = config_from(&[
                ("AZURE_KEYVAULT_NAME", "vault1"),
                ("AZURE_CREDENTIAL", value),
            ])
            .expect("valid");
            assert_eq!(config.credential, expected);
        }
        let err = config_from(&[
            ("AZURE_KEYVAULT_NAME", "vault1"),
            ("AZURE_CREDENTIAL", "password"),
        ])
        .expect_err("unknown credential");
        assert!(err.to_string().contains("client-secret"), "{err}");
    }

    #[test]
    fn identity_and_tuning_are_read() {
        let config = config_from(&[
            ("AZURE_KEYVAULT_URL", "https://127.0.0.1:8443"),
            ("AZURE_TENANT_ID", "tenant"),
            ("AZURE_CLIENT_ID", " client "),
            ("AZURE_CLIENT_SECRET", "s3cret"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
            ("AZURE_AUTHORITY_HOST", "https://login.example/"),
            ("COMPOSE_SECRETS_CA_FILE", "/tmp/ca.pem"),
            ("COMPOSE_SECRETS_KV_CONCURRENCY", "4"),
            ("COMPOSE_SECRETS_DISABLE_IMDS", "1"),
        ])
        .expect("valid");
        assert_eq!(config.identity.tenant_id.as_deref(), Some("tenant"));
        assert_eq!(config.identity.client_id.as_deref(), Some("client"));
        assert_eq!(
            config
                .identity
                .client_secret
                .as_ref()
                .map(SecretValue::expose),
            Some("s3cret")
        );
        assert_eq!(
            config.identity.federated_token_file,
            Some(PathBuf::from("/var/run/token"))
        );
        assert_eq!(
            config.identity.authority_host.as_deref(),
            Some("https://login.example")
        );
        assert_eq!(config.ca_file, Some(PathBuf::from("/tmp/ca.pem")));
        assert_eq!(config.concurrency, 4);
        assert!(!config.allow_imds);
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn bad_tuning_values_are_usage_errors() {
        for (key, value) in [
            ("COMPOSE_SECRETS_KV_CONCURRENCY", "0"),
            ("COMPOSE_SECRETS_KV_CONCURRENCY", "lots"),
            ("COMPOSE_SECRETS_KV_CONCURRENCY", "100000"),
            ("COMPOSE_SECRETS_DISABLE_IMDS", "maybe"),
            ("AZURE_KEYVAULT_VERIFY_CHALLENGE_RESOURCE", "sometimes"),
            ("AZURE_AUTHORITY_HOST", "http://login.example"),
        ] {
            let err = config_from(&[("AZURE_KEYVAULT_NAME", "vault1"), (key, value)])
                .expect_err(&format!("{key}={value} should be refused"));
            assert!(matches!(err, Error::Usage(_)), "{err}");
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        let config = config_from(&[
            ("AZURE_KEYVAULT_NAME", "vault1"),
            ("AZURE_CREDENTIAL", ""),
            ("AZURE_CLIENT_SECRET", "  "),
            ("COMPOSE_SECRETS_DISABLE_IMDS", ""),
        ])
        .expect("valid");
        assert_eq!(config.credential, CredentialChoice::Auto);
        assert!(config.identity.client_secret.is_none());
        assert!(config.allow_imds);
    }

    #[test]
    fn loopback_detection() {
        for url in [
            "https://127.0.0.1:8443",
            "https://127.1.2.3",
            "https://localhost:1234",
            "https://LOCALHOST",
            "https://[::1]:8443",
        ] {
            assert!(is_loopback_url(url), "{url} is loopback");
        }
        for url in [
            "https://my-vault.vault.azure.net",
            "https://128.0.0.1",
            "https://10.0.0.1",
            "https://localhost.evil.example",
            "https://vault.localhost.example",
            "https://[::2]",
            "not a url",
        ] {
            assert!(!is_loopback_url(url), "{url} is not loopback");
        }
    }

    #[test]
    fn challenge_verification_is_auto_off_only_for_loopback() {
        let mut config = KeyVaultConfig::new("https://127.0.0.1:8443");
        assert!(!config.effective_verify_challenge_resource());
        config.verify_challenge_resource = Some(true);
        assert!(config.effective_verify_challenge_resource());

        let mut config = KeyVaultConfig::new("https://my-vault.vault.azure.net");
        assert!(config.effective_verify_challenge_resource());
        config.verify_challenge_resource = Some(false);
        assert!(!config.effective_verify_challenge_resource());

        let explicit = config_from(&[
            ("AZURE_KEYVAULT_URL", "https://localhost:8443"),
            ("AZURE_KEYVAULT_VERIFY_CHALLENGE_RESOURCE", "true"),
        ])
        .expect("valid");
        assert!(explicit.effective_verify_challenge_resource());
    }
}
