//! Choosing the Azure credential, and bounding how long and how loudly it may fail.
//!
//! azure_identity 1.0.0 has no `DefaultAzureCredential` and no
//! `EnvironmentCredential`, so the order lives here.

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::http::ClientOptions;
use azure_identity::{
    AzureCliCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use super::config::{CredentialChoice, IdentityConfig, KeyVaultConfig};
use super::transport::{innermost_message, shorten, TransportFailure};
use crate::error::{Error, Result};

/// What to set for a service principal; repeated in several messages.
const SERVICE_PRINCIPAL_HINT: &str =
    "set AZURE_CREDENTIAL=client-secret with AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET";

/// The credential actually used, after the automatic order (or an explicit
/// AZURE_CREDENTIAL) has been applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ResolvedCredential {
    ClientSecret,
    WorkloadIdentity,
    /// IDENTITY_ENDPOINT + IDENTITY_HEADER: App Service, Functions, Container Apps.
    ManagedIdentityAppService,
    /// 169.254.169.254 on an Azure VM / VM scale set.
    ManagedIdentityImds,
    AzureCli,
}

impl ResolvedCredential {
    /// How messages name it.
    pub(super) fn describe(self) -> &'static str {
        match self {
            Self::ClientSecret => {
                "client secret (AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET)"
            }
            Self::WorkloadIdentity => "workload identity (AZURE_FEDERATED_TOKEN_FILE)",
            Self::ManagedIdentityAppService => "managed identity (IDENTITY_ENDPOINT)",
            Self::ManagedIdentityImds => "managed identity (IMDS)",
            Self::AzureCli => "Azure CLI (az)",
        }
    }

    /// What to do when it fails.
    fn remedy(self) -> String {
        match self {
            Self::ClientSecret => "check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (an expired or wrong secret is the usual cause), and AZURE_AUTHORITY_HOST for sovereign clouds".into(),
            Self::WorkloadIdentity => "check the pod's service account federation, AZURE_CLIENT_ID, AZURE_TENANT_ID and that AZURE_FEDERATED_TOKEN_FILE is readable".into(),
            Self::ManagedIdentityAppService => format!("check that the app has a managed identity (and AZURE_CLIENT_ID for a user-assigned one), or {SERVICE_PRINCIPAL_HINT}"),
            Self::ManagedIdentityImds => format!("on a VM enable a managed identity (and set AZURE_CLIENT_ID for a user-assigned one); off Azure set COMPOSE_SECRETS_DISABLE_IMDS=1 and {SERVICE_PRINCIPAL_HINT}"),
            Self::AzureCli => format!("run `az login` (and `az account set` for the vault's tenant), or {SERVICE_PRINCIPAL_HINT}"),
        }
    }
}

/// The facts the automatic order looks at besides the config.
pub(super) struct Surroundings<'a> {
    /// The *process* environment, which is what azure_identity reads for managed identity.
    pub process_env: &'a dyn Fn(&str) -> Option<String>,
    pub az_on_path: bool,
}

impl Surroundings<'_> {
    fn has(&self, key: &str) -> bool {
        (self.process_env)(key).is_some_and(|v| !v.is_empty())
    }

    /// Which managed identity source azure_identity 1.0.0 will pick
    /// (`managed_identity_credential.rs::get_source`), or why none works.
    fn managed_identity_source(&self) -> std::result::Result<ResolvedCredential, &'static str> {
        if self.has("IDENTITY_ENDPOINT") {
            if self.has("IDENTITY_HEADER") {
                if self.has("IDENTITY_SERVER_THUMBPRINT") {
                    return Err("Service Fabric managed identity (IDENTITY_SERVER_THUMBPRINT) is not supported by azure_identity 1.0.0");
                }
                return Ok(ResolvedCredential::ManagedIdentityAppService);
            }
            if self.has("IMDS_ENDPOINT") {
                return Err("Azure Arc managed identity (IDENTITY_ENDPOINT + IMDS_ENDPOINT) is not supported by azure_identity 1.0.0");
            }
        } else if self.has("MSI_ENDPOINT") {
            return Err("Cloud Shell / Azure ML managed identity (MSI_ENDPOINT) is not supported by azure_identity 1.0.0");
        }
        Ok(ResolvedCredential::ManagedIdentityImds)
    }
}

/// Pick the credential.
///
/// The automatic order (AZURE_CREDENTIAL unset or `auto`), first match wins:
///
/// 1. **client secret**, when AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET are all set;
/// 2. **workload identity** (AKS), when AZURE_FEDERATED_TOKEN_FILE is set (with AZURE_TENANT_ID and AZURE_CLIENT_ID);
/// 3. **managed identity via the App Service endpoint** (App Service, Functions, Container Apps),
///    when IDENTITY_ENDPOINT and IDENTITY_HEADER are set in the process environment;
/// 4. **Azure CLI**, when `az` is on PATH (uses the `az login` session);
/// 5. **managed identity via IMDS** (Azure VMs), unless COMPOSE_SECRETS_DISABLE_IMDS=1.
///
/// Managed identity uses AZURE_CLIENT_ID, when set, as a user-assigned identity's client id.
/// Every credential must produce a token within the credential timeout (10 s by default).
pub(super) fn resolve(
    choice: CredentialChoice,
    identity: &IdentityConfig,
    allow_imds: bool,
    around: &Surroundings<'_>,
) -> Result<ResolvedCredential> {
    let present = Present::of(identity);
    match choice {
        CredentialChoice::ClientSecret => needs(
            "client-secret",
            &[
                ("AZURE_TENANT_ID", present.tenant),
                ("AZURE_CLIENT_ID", present.client),
                ("AZURE_CLIENT_SECRET", present.secret),
            ],
            ResolvedCredential::ClientSecret,
        ),
        CredentialChoice::WorkloadIdentity => needs(
            "workload-identity",
            &[
                ("AZURE_TENANT_ID", present.tenant),
                ("AZURE_CLIENT_ID", present.client),
                ("AZURE_FEDERATED_TOKEN_FILE", present.token_file),
            ],
            ResolvedCredential::WorkloadIdentity,
        ),
        CredentialChoice::ManagedIdentity => match around.managed_identity_source() {
            Ok(ResolvedCredential::ManagedIdentityImds) if !allow_imds => Err(auth_error(format!(
                "AZURE_CREDENTIAL=managed-identity would use IMDS (no IDENTITY_ENDPOINT/IDENTITY_HEADER in the process environment), but COMPOSE_SECRETS_DISABLE_IMDS=1 forbids it; unset it on an Azure VM, or {SERVICE_PRINCIPAL_HINT}"
            ))),
            Ok(resolved) => Ok(resolved),
            Err(why) => Err(auth_error(format!("{why}; {SERVICE_PRINCIPAL_HINT}"))),
        },
        CredentialChoice::AzureCli => {
            if around.az_on_path {
                Ok(ResolvedCredential::AzureCli)
            } else {
                Err(auth_error(format!(
                    "AZURE_CREDENTIAL=cli, but `az` is not on PATH; install the Azure CLI and run `az login`, or {SERVICE_PRINCIPAL_HINT}"
                )))
            }
        }
        CredentialChoice::Auto => resolve_auto(present, allow_imds, around),
    }
}

/// `AZURE_CREDENTIAL` unset (or `auto`): the first credential in the order above that is
/// configured.
fn resolve_auto(
    present: Present,
    allow_imds: bool,
    around: &Surroundings<'_>,
) -> Result<ResolvedCredential> {
    let Present {
        tenant,
        client,
        secret,
        token_file,
    } = present;
    if tenant && client && secret {
        return Ok(ResolvedCredential::ClientSecret);
    }
    if token_file {
        let absent = missing(&[("AZURE_TENANT_ID", tenant), ("AZURE_CLIENT_ID", client)]);
        if absent.is_empty() {
            return Ok(ResolvedCredential::WorkloadIdentity);
        }
        return Err(auth_error(format!(
            "AZURE_FEDERATED_TOKEN_FILE is set (workload identity), but {} is missing",
            absent.join(" and ")
        )));
    }
    if around.managed_identity_source() == Ok(ResolvedCredential::ManagedIdentityAppService) {
        return Ok(ResolvedCredential::ManagedIdentityAppService);
    }
    if around.az_on_path {
        return Ok(ResolvedCredential::AzureCli);
    }
    if allow_imds {
        return match around.managed_identity_source() {
            Ok(resolved) => Ok(resolved),
            Err(why) => Err(auth_error(format!("{why}; {SERVICE_PRINCIPAL_HINT}"))),
        };
    }
    let partial = if secret || tenant || client {
        let absent = missing(&[
            ("AZURE_TENANT_ID", tenant),
            ("AZURE_CLIENT_ID", client),
            ("AZURE_CLIENT_SECRET", secret),
        ]);
        format!(
            " (a service principal is partly configured: {} missing)",
            absent.join(", ")
        )
    } else {
        String::new()
    };
    Err(auth_error(format!(
        "no Azure credential is configured{partial}: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (service principal), or AZURE_FEDERATED_TOKEN_FILE (workload identity), or run where IDENTITY_ENDPOINT/IDENTITY_HEADER are set (App Service managed identity), or install the Azure CLI and run `az login`; managed identity via IMDS is disabled by COMPOSE_SECRETS_DISABLE_IMDS=1"
    )))
}

/// Which of the identity settings are present (never their values).
#[derive(Debug, Clone, Copy)]
struct Present {
    tenant: bool,
    client: bool,
    secret: bool,
    token_file: bool,
}

impl Present {
    fn of(identity: &IdentityConfig) -> Present {
        Present {
            tenant: identity.tenant_id.is_some(),
            client: identity.client_id.is_some(),
            secret: identity.client_secret.is_some(),
            token_file: identity.federated_token_file.is_some(),
        }
    }
}

/// An explicit AZURE_CREDENTIAL: `resolved` when every setting it needs is present.
fn needs(
    choice: &str,
    pairs: &[(&'static str, bool)],
    resolved: ResolvedCredential,
) -> Result<ResolvedCredential> {
    let absent = missing(pairs);
    if absent.is_empty() {
        Ok(resolved)
    } else {
        Err(auth_error(format!(
            "AZURE_CREDENTIAL={choice} needs {}",
            absent.join(", ")
        )))
    }
}

/// The names of the settings in `pairs` that are not present.
fn missing(pairs: &[(&'static str, bool)]) -> Vec<&'static str> {
    pairs
        .iter()
        .filter(|(_, present)| !present)
        .map(|(key, _)| *key)
        .collect()
}

fn auth_error(message: String) -> Error {
    Error::VaultAuth { message }
}

/// Whether an executable named `az` is on PATH.
pub(super) fn az_on_path() -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        let candidate: PathBuf = dir.join("az");
        std::fs::metadata(&candidate)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The authority every Entra ID credential uses. Always explicit, so azure_identity
/// never falls back to reading AZURE_AUTHORITY_HOST from the process environment
/// behind the caller's layering.
fn cloud(identity: &IdentityConfig) -> Arc<CloudConfiguration> {
    match &identity.authority_host {
        Some(host) => {
            let mut custom = CustomConfiguration::default();
            custom.authority_host = host.clone();
            Arc::new(CloudConfiguration::from(custom))
        }
        None => Arc::new(CloudConfiguration::AzurePublic),
    }
}

/// Build the SDK credential for `resolved`, wrapped in [`BoundedCredential`].
pub(super) fn build(
    resolved: ResolvedCredential,
    config: &KeyVaultConfig,
    client_options: ClientOptions,
) -> Result<Arc<dyn TokenCredential>> {
    let identity = &config.identity;
    let construction_failed = |e: azure_core::Error| {
        auth_error(format!(
            "cannot set up the {} credential: {}; {}",
            resolved.describe(),
            summarize_credential_error(&e),
            resolved.remedy()
        ))
    };
    let required = |value: &Option<String>, key: &str| {
        value
            .clone()
            .ok_or_else(|| auth_error(format!("{} needs {key}", resolved.describe())))
    };

    let inner: Arc<dyn TokenCredential> = match resolved {
        ResolvedCredential::ClientSecret => {
            let tenant_id = required(&identity.tenant_id, "AZURE_TENANT_ID")?;
            let client_id = required(&identity.client_id, "AZURE_CLIENT_ID")?;
            let secret = identity.client_secret.as_ref().ok_or_else(|| {
                auth_error("client secret credential needs AZURE_CLIENT_SECRET".into())
            })?;
            let mut client_options = client_options;
            client_options.cloud = Some(cloud(identity));
            ClientSecretCredential::new(
                &tenant_id,
                client_id,
                Secret::new(secret.expose().to_owned()),
                Some(ClientSecretCredentialOptions { client_options }),
            )
            .map_err(construction_failed)?
        }
        ResolvedCredential::WorkloadIdentity => {
            let mut client_options = client_options;
            client_options.cloud = Some(cloud(identity));
            let options = WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions { client_options },
                client_id: Some(required(&identity.client_id, "AZURE_CLIENT_ID")?),
                tenant_id: Some(required(&identity.tenant_id, "AZURE_TENANT_ID")?),
                token_file_path: identity.federated_token_file.clone(),
            };
            WorkloadIdentityCredential::new(Some(options)).map_err(construction_failed)?
        }
        ResolvedCredential::ManagedIdentityAppService | ResolvedCredential::ManagedIdentityImds => {
            let options = ManagedIdentityCredentialOptions {
                user_assigned_id: identity.client_id.clone().map(UserAssignedId::ClientId),
                client_options,
            };
            ManagedIdentityCredential::new(Some(options)).map_err(construction_failed)?
        }
        ResolvedCredential::AzureCli => {
            AzureCliCredential::new(None).map_err(construction_failed)?
        }
    };

    Ok(Arc::new(BoundedCredential {
        inner,
        resolved,
        timeout: config.credential_timeout,
    }))
}

/// A credential failure already put into words that are safe to show:
/// which credential, what happened, what to set. Found by walking `source()`.
#[derive(Debug)]
pub(super) struct CredentialFailure {
    pub message: String,
}

impl fmt::Display for CredentialFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for CredentialFailure {}

/// Enforces the credential timeout and rewrites failures into [`CredentialFailure`].
struct BoundedCredential {
    inner: Arc<dyn TokenCredential>,
    resolved: ResolvedCredential,
    timeout: Duration,
}

impl fmt::Debug for BoundedCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedCredential")
            .field("credential", &self.resolved.describe())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenCredential for BoundedCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let started = std::time::Instant::now();
        let outcome =
            tokio::time::timeout(self.timeout, self.inner.get_token(scopes, options)).await;
        let message = match outcome {
            Ok(Ok(token)) => {
                tracing::debug!(
                    credential = self.resolved.describe(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "got an access token"
                );
                return Ok(token);
            }
            Ok(Err(e)) => format!(
                "{} failed: {}; {}",
                self.resolved.describe(),
                summarize_credential_error(&e),
                self.resolved.remedy()
            ),
            Err(_elapsed) => format!(
                "{} did not answer within {}s; {}",
                self.resolved.describe(),
                self.timeout.as_secs_f32().round(),
                self.resolved.remedy()
            ),
        };
        tracing::debug!(
            credential = self.resolved.describe(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "credential failed"
        );
        // Kind Credential: azure_core does not retry it, and it stays a credential error.
        Err(azure_core::Error::new(
            ErrorKind::Credential,
            CredentialFailure { message },
        ))
    }
}

/// Summarise an azure_identity error without its response body: a token
/// endpoint's error body is echoed in the SDK's messages, so HTTP errors are
/// reported by status and Entra error code only.
fn summarize_credential_error(error: &azure_core::Error) -> String {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(failure) = e.downcast_ref::<TransportFailure>() {
            return format!("token endpoint: {failure}");
        }
        if let Some(sdk) = e.downcast_ref::<azure_core::Error>() {
            if let ErrorKind::HttpResponse {
                status, error_code, ..
            } = sdk.kind()
            {
                let code = error_code
                    .as_deref()
                    .map(|c| format!(", error code {}", shorten(c, 60)))
                    .unwrap_or_default();
                return format!(
                    "the token endpoint answered HTTP {} {}{code}",
                    u16::from(*status),
                    status.canonical_reason()
                );
            }
        }
        current = e.source();
    }
    match error.kind() {
        // No HTTP response anywhere in the chain: the messages come from the SDK
        // or the `az` process (e.g. "Please run 'az login'"), not from a body.
        ErrorKind::Credential | ErrorKind::Other | ErrorKind::Io | ErrorKind::Connection => {
            shorten(&error.to_string(), 240)
        }
        ErrorKind::DataConversion => "the token endpoint's answer could not be read".to_owned(),
        ErrorKind::HttpResponse { .. } => innermost_message(error),
    }
}

/// Path helper for tests that want to know the resolution without building.
#[cfg(test)]
fn resolve_with(
    choice: CredentialChoice,
    identity: &IdentityConfig,
    allow_imds: bool,
    env: &[(&str, &str)],
    az: bool,
) -> Result<ResolvedCredential> {
    let lookup = |key: &str| {
        env.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| (*v).to_owned())
    };
    resolve(
        choice,
        identity,
        allow_imds,
        &Surroundings {
            process_env: &lookup,
            az_on_path: az,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretValue;

    fn sp() -> IdentityConfig {
        IdentityConfig {
            tenant_id: Some("tenant".into()),
            client_id: Some("client".into()),
            client_secret: Some(SecretValue::new("shh".into())),
            ..Default::default()
        }
    }

    const APP_SERVICE: &[(&str, &str)] = &[
        ("IDENTITY_ENDPOINT", "https://127.0.0.1:1/msi/token"),
        ("IDENTITY_HEADER", "h"),
    ];

    #[test]
    fn auto_prefers_client_secret() {
        let got = resolve_with(CredentialChoice::Auto, &sp(), true, APP_SERVICE, true);
        assert_eq!(got.ok(), Some(ResolvedCredential::ClientSecret));
    }

    #[test]
    fn auto_then_workload_identity() {
        let identity = IdentityConfig {
            tenant_id: Some("t".into()),
            client_id: Some("c".into()),
            federated_token_file: Some("/token".into()),
            ..Default::default()
        };
        let got = resolve_with(CredentialChoice::Auto, &identity, true, APP_SERVICE, true);
        assert_eq!(got.ok(), Some(ResolvedCredential::WorkloadIdentity));

        let incomplete = IdentityConfig {
            federated_token_file: Some("/token".into()),
            ..Default::default()
        };
        let err = resolve_with(CredentialChoice::Auto, &incomplete, true, &[], false)
            .expect_err("tenant and client missing");
        assert!(err.to_string().contains("AZURE_TENANT_ID"), "{err}");
    }

    #[test]
    fn auto_then_app_service_then_cli_then_imds() {
        let none = IdentityConfig::default();
        let got = resolve_with(CredentialChoice::Auto, &none, true, APP_SERVICE, true);
        assert_eq!(
            got.ok(),
            Some(ResolvedCredential::ManagedIdentityAppService)
        );

        // IDENTITY_ENDPOINT without IDENTITY_HEADER is not App Service.
        let half = &[("IDENTITY_ENDPOINT", "https://x")];
        let got = resolve_with(CredentialChoice::Auto, &none, true, half, true);
        assert_eq!(got.ok(), Some(ResolvedCredential::AzureCli));

        let got = resolve_with(CredentialChoice::Auto, &none, true, &[], false);
        assert_eq!(got.ok(), Some(ResolvedCredential::ManagedIdentityImds));
    }

    #[test]
    fn auto_with_imds_disabled_and_nothing_configured_says_what_to_set() {
        let err = resolve_with(
            CredentialChoice::Auto,
            &IdentityConfig::default(),
            false,
            &[],
            false,
        )
        .expect_err("nothing configured");
        assert!(matches!(err, Error::VaultAuth { .. }), "{err}");
        let text = err.to_string();
        for needle in [
            "AZURE_CLIENT_SECRET",
            "AZURE_FEDERATED_TOKEN_FILE",
            "az login",
            "COMPOSE_SECRETS_DISABLE_IMDS",
        ] {
            assert!(text.contains(needle), "{needle} missing from: {text}");
        }
    }

    #[test]
    fn partial_service_principal_is_named() {
        let identity = IdentityConfig {
            client_id: Some("c".into()),
            client_secret: Some(SecretValue::new("do-not-print".into())),
            ..Default::default()
        };
        let err = resolve_with(CredentialChoice::Auto, &identity, false, &[], false)
            .expect_err("tenant missing");
        let text = err.to_string();
        assert!(text.contains("AZURE_TENANT_ID missing"), "{text}");
        assert!(!text.contains("do-not-print"));
    }

    #[test]
    fn explicit_choices_check_their_inputs() {
        let none = IdentityConfig::default();
        let err = resolve_with(CredentialChoice::ClientSecret, &none, true, &[], true)
            .expect_err("incomplete");
        assert!(err.to_string().contains("AZURE_CLIENT_SECRET"), "{err}");

        let err =
            resolve_with(CredentialChoice::AzureCli, &none, true, &[], false).expect_err("no az");
        assert!(err.to_string().contains("az"), "{err}");

        let err = resolve_with(CredentialChoice::ManagedIdentity, &none, false, &[], false)
            .expect_err("IMDS disabled");
        assert!(
            err.to_string().contains("COMPOSE_SECRETS_DISABLE_IMDS"),
            "{err}"
        );

        let got = resolve_with(
            CredentialChoice::ManagedIdentity,
            &none,
            false,
            APP_SERVICE,
            false,
        );
        assert_eq!(
            got.ok(),
            Some(ResolvedCredential::ManagedIdentityAppService)
        );

        let err = resolve_with(
            CredentialChoice::ManagedIdentity,
            &none,
            true,
            &[("MSI_ENDPOINT", "http://x")],
            false,
        )
        .expect_err("Cloud Shell unsupported");
        assert!(err.to_string().contains("not supported"), "{err}");
    }
}
