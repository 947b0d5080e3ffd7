//! The one HTTP client for the vault and the credentials: our roots, our timeouts, no panics.
//!
//! azure_core's default transport `expect`s its reqwest client to build, which
//! panics on a machine without CA certificates; building our own turns that into
//! an error. The wrapper also stops TLS trust failures from being retried as
//! connection errors (azure_core would spend about 80 s on them) and refuses the
//! IMDS address when IMDS is disabled.

use std::error::Error as StdError;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::{AsyncRawResponse, HttpClient, Request, Transport};

use crate::error::{Error, Result};

/// The VM metadata endpoint that serves managed identity tokens.
const IMDS_HOST: &str = "169.254.169.254";

/// Settings for [`build_transport`].
pub(super) struct TransportSettings<'a> {
    pub ca_file: Option<&'a Path>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub allow_imds: bool,
}

/// Build the shared transport. Never panics: a missing CA file, a bundle without
/// certificates or a system without roots come back as errors that say what to set.
pub(super) fn build_transport(settings: &TransportSettings<'_>) -> Result<Transport> {
    // ring as the process-wide rustls provider: aws-lc (the default) seeds a jitter-entropy
    // DRBG on first use, ~45 ms of CPU on every start of this short-lived command.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .read_timeout(settings.read_timeout)
        // Key Vault never redirects; following one could send a token elsewhere.
        .redirect(reqwest::redirect::Policy::none());

    if let Some(path) = settings.ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            Error::config(
                path,
                format!("cannot read the CA bundle named by COMPOSE_SECRETS_CA_FILE: {e}"),
            )
        })?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            Error::config(
                path,
                format!("COMPOSE_SECRETS_CA_FILE is not a PEM certificate bundle: {e}"),
            )
        })?;
        if certificates.is_empty() {
            return Err(Error::config(
                path,
                "COMPOSE_SECRETS_CA_FILE holds no PEM certificates",
            ));
        }
        builder = builder.tls_certs_merge(certificates);
    }

    let client = builder.build().map_err(|e| Error::Vault {
        context: "TLS setup".into(),
        message: format!(
            "cannot build the HTTPS client ({}); if no CA certificates are installed, install ca-certificates or point COMPOSE_SECRETS_CA_FILE (or SSL_CERT_FILE) at a PEM bundle",
            innermost_message(&e)
        ),
    })?;

    Ok(Transport::new(Arc::new(VaultHttpClient {
        client,
        allow_imds: settings.allow_imds,
    })))
}

/// reqwest, plus the classification the retry policy needs.
struct VaultHttpClient {
    client: reqwest::Client,
    allow_imds: bool,
}

impl fmt::Debug for VaultHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultHttpClient")
            .field("allow_imds", &self.allow_imds)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl HttpClient for VaultHttpClient {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        if !self.allow_imds && request.url().host_str() == Some(IMDS_HOST) {
            // Defence in depth: credential selection already skips IMDS.
            return Err(azure_core::Error::new(
                ErrorKind::Other,
                TransportFailure::ImdsDisabled,
            ));
        }
        let host = request
            .url()
            .host_str()
            .map(|h| match request.url().port() {
                Some(port) => format!("{h}:{port}"),
                None => h.to_owned(),
            })
            .unwrap_or_default();
        match self.client.execute_request(request).await {
            Ok(response) => Ok(response),
            Err(e) => Err(classify(e, host)),
        }
    }
}

/// Why a request never got an HTTP answer, in words safe to show (no bodies exist here).
#[derive(Debug)]
pub(super) enum TransportFailure {
    /// The server's certificate chain is not trusted (or does not match the host).
    UntrustedCertificate { host: String, detail: String },
    /// DNS, refused connection, reset, timeout.
    Unreachable { host: String, detail: String },
    /// A request to 169.254.169.254 while COMPOSE_SECRETS_DISABLE_IMDS=1.
    ImdsDisabled,
}

impl fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UntrustedCertificate { host, detail } => write!(
                f,
                "TLS: the certificate of {host} is not trusted ({detail}); if it is issued by a private CA (an emulator or a TLS-inspecting proxy), set COMPOSE_SECRETS_CA_FILE to a PEM bundle containing that CA"
            ),
            Self::Unreachable { host, detail } => {
                write!(f, "cannot reach {host} ({detail})")
            }
            Self::ImdsDisabled => f.write_str(
                "the managed identity endpoint (IMDS) is disabled by COMPOSE_SECRETS_DISABLE_IMDS",
            ),
        }
    }
}

impl StdError for TransportFailure {}

/// Re-wrap a reqwest failure. TLS trust failures become `ErrorKind::Other`, which
/// azure_core does not retry: a wrong CA never heals within the retry budget.
/// Everything else keeps its kind (Connection/Io), so it is retried as before.
fn classify(error: azure_core::Error, host: String) -> azure_core::Error {
    let detail = innermost_message(&error);
    let chain = chain_text(&error).to_ascii_lowercase();
    if chain.contains("certificate") || chain.contains("unknownissuer") {
        return azure_core::Error::new(
            ErrorKind::Other,
            TransportFailure::UntrustedCertificate { host, detail },
        );
    }
    let kind = error.kind().clone();
    azure_core::Error::new(kind, TransportFailure::Unreachable { host, detail })
}

/// Every message in a source chain, joined, for classification only.
fn chain_text(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(" | ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// The deepest cause's message (e.g. `invalid peer certificate: UnknownIssuer`),
/// shortened. Transport errors carry no request or response bodies.
pub(super) fn innermost_message(error: &(dyn StdError + 'static)) -> String {
    let mut deepest = error;
    while let Some(inner) = deepest.source() {
        deepest = inner;
    }
    shorten(&deepest.to_string(), 200)
}

/// First line of `text`, at most `max` characters.
pub(super) fn shorten(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    if line.chars().count() <= max {
        line.to_owned()
    } else {
        let cut: String = line.chars().take(max).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ca_file: Option<&Path>) -> TransportSettings<'_> {
        TransportSettings {
            ca_file,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            allow_imds: false,
        }
    }

    #[test]
    fn missing_ca_file_is_an_error_naming_it() {
        let path = Path::new("/nonexistent/compose-secrets-ca.pem");
        let err = build_transport(&settings(Some(path))).expect_err("missing file");
        let text = err.to_string();
        assert!(text.contains("COMPOSE_SECRETS_CA_FILE"), "{text}");
        assert!(
            text.contains("/nonexistent/compose-secrets-ca.pem"),
            "{text}"
        );
    }

    #[test]
    fn ca_file_without_certificates_is_an_error() {
        let dir = std::env::temp_dir().join(format!("kv-transport-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("empty.pem");
        std::fs::write(&path, "not a certificate\n").expect("write");
        let err = build_transport(&settings(Some(&path))).expect_err("no certificates");
        assert!(err.to_string().contains("COMPOSE_SECRETS_CA_FILE"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn imds_is_refused_before_anything_is_sent_when_disabled() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = VaultHttpClient {
            client: reqwest::Client::new(),
            allow_imds: false,
        };
        let url = azure_core::http::Url::parse(
            "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2019-08-01",
        )
        .expect("url");
        let request = Request::new(url, azure_core::http::Method::Get);
        let err = client
            .execute_request(&request)
            .await
            .expect_err("IMDS must be refused");
        assert!(
            matches!(
                err.downcast_ref::<TransportFailure>(),
                Some(TransportFailure::ImdsDisabled)
            ),
            "{err:?}"
        );
    }

    #[test]
    fn shorten_keeps_first_line_and_caps_length() {
        assert_eq!(shorten("one\ntwo", 10), "one");
        assert_eq!(shorten("abcdef", 3), "abc…");
    }
}
