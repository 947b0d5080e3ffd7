//! Azure SDK errors → our [`Error`], by HTTP status, Key Vault error code and source chain.
//!
//! Nothing from a response body reaches a message except the service's short
//! error message on a 403 (which names the identity and the missing permission,
//! and is what an operator needs). Values never appear: they are only in 200 bodies.

use std::error::Error as StdError;
use std::time::Duration;

use azure_core::error::{ErrorKind, ErrorResponse};
use azure_core::http::StatusCode;

use super::credential::CredentialFailure;
use super::retry::ThrottleRefused;
use super::transport::{shorten, TransportFailure};
use crate::error::Error;

/// The secrets permission an operation needs, named as access policies name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Permission {
    Get,
    List,
    Set,
}

impl Permission {
    fn as_str(self) -> &'static str {
        match self {
            Permission::Get => "get",
            Permission::List => "list",
            Permission::Set => "set",
        }
    }
}

/// What was being attempted, for the error's context and variant.
#[derive(Debug, Clone, Copy)]
pub(super) struct Operation<'a> {
    pub permission: Permission,
    pub name: Option<&'a str>,
    pub version: Option<&'a str>,
}

impl<'a> Operation<'a> {
    pub fn get(name: &'a str, version: Option<&'a str>) -> Self {
        Self {
            permission: Permission::Get,
            name: Some(name),
            version,
        }
    }

    pub fn list(name: Option<&'a str>) -> Self {
        Self {
            permission: Permission::List,
            name,
            version: None,
        }
    }

    pub fn set(name: &'a str, version: Option<&'a str>) -> Self {
        Self {
            permission: Permission::Set,
            name: Some(name),
            version,
        }
    }

    fn context(&self) -> String {
        match (self.permission, self.name, self.version) {
            (Permission::List, None, _) => "list secrets".into(),
            (Permission::List, Some(name), _) => format!("list versions of `{name}`"),
            (p, Some(name), Some(version)) => {
                format!("{} `{name}` (version {version})", p.as_str())
            }
            (p, Some(name), None) => format!("{} `{name}`", p.as_str()),
            (p, None, _) => p.as_str().to_owned(),
        }
    }
}

/// Map one SDK error. `retry_budget` is quoted when retries ran out.
pub(super) fn map_error(
    error: &azure_core::Error,
    op: Operation<'_>,
    retry_budget: Duration,
) -> Error {
    let context = op.context();
    let budget = retry_budget.as_secs();

    // Our own wrappers first: they already carry the right words.
    if let Some(mapped) = own_failure(error, &context, budget) {
        return mapped;
    }

    match error.kind() {
        ErrorKind::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let body = raw_response
                .as_deref()
                .and_then(|raw| serde_json::from_slice::<ErrorResponse>(raw.body().as_ref()).ok())
                .and_then(|parsed| parsed.error);
            let inner_code = body
                .as_ref()
                .and_then(|detail| detail.inner_error.as_ref())
                .and_then(|inner| inner.code.clone());
            let service_message = body.as_ref().and_then(|detail| detail.message.clone());
            let retry_after = raw_response
                .as_deref()
                .and_then(|raw| retry_after(raw.headers()));
            map_status(
                Answer {
                    status: *status,
                    error_code: error_code.as_deref(),
                    inner_code: inner_code.as_deref(),
                    service_message: service_message.as_deref(),
                    retry_after,
                },
                op,
                context,
                budget,
            )
        }
        ErrorKind::Credential => Error::VaultAuth {
            message: "the credential could not produce a token".into(),
        },
        ErrorKind::DataConversion => Error::Vault {
            context,
            message: "the vault's answer could not be read (unexpected response format)".into(),
        },
        ErrorKind::Other | ErrorKind::Io | ErrorKind::Connection => {
            let text = error.to_string();
            if text.contains("challenge resource") {
                Error::Vault {
                    context,
                    message: "the vault's authentication challenge names a resource outside the vault's domain, so no token was sent; for a trusted private endpoint or emulator set AZURE_KEYVAULT_VERIFY_CHALLENGE_RESOURCE=false".into(),
                }
            } else {
                Error::Vault {
                    context,
                    message: shorten(&text, 240),
                }
            }
        }
    }
}

/// An error our own wrappers (credential, throttling, transport) raised, anywhere in the
/// chain of sources.
fn own_failure(error: &azure_core::Error, context: &str, budget: u64) -> Option<Error> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(failure) = e.downcast_ref::<CredentialFailure>() {
            return Some(Error::VaultAuth {
                message: failure.message.clone(),
            });
        }
        if let Some(refused) = e.downcast_ref::<ThrottleRefused>() {
            return Some(Error::VaultThrottled {
                context: context.to_string(),
                message: refused.to_string(),
                retry_after: Some(refused.retry_after),
            });
        }
        if let Some(failure) = e.downcast_ref::<TransportFailure>() {
            return Some(match failure {
                TransportFailure::ImdsDisabled => Error::VaultAuth {
                    message: failure.to_string(),
                },
                TransportFailure::UntrustedCertificate { .. } => Error::Vault {
                    context: context.to_string(),
                    message: failure.to_string(),
                },
                TransportFailure::Unreachable { .. } => Error::Vault {
                    context: context.to_string(),
                    message: format!(
                        "{failure}; gave up after retrying for up to {budget}s. Check AZURE_KEYVAULT_URL / AZURE_KEYVAULT_NAME, DNS and the network path to the vault"
                    ),
                },
            });
        }
        current = e.source();
    }
    None
}

/// What a failed HTTP answer said, as far as errors are concerned.
struct Answer<'a> {
    status: StatusCode,
    error_code: Option<&'a str>,
    inner_code: Option<&'a str>,
    service_message: Option<&'a str>,
    retry_after: Option<Duration>,
}

/// The wait an answer asks for, as the SDK reads it: `x-ms-retry-after-ms`, `retry-after-ms`,
/// then `Retry-After` in seconds (an HTTP date is not read).
fn retry_after(headers: &azure_core::http::headers::Headers) -> Option<Duration> {
    use azure_core::http::headers::{RETRY_AFTER, RETRY_AFTER_MS, X_MS_RETRY_AFTER_MS};
    let number = |name: &azure_core::http::headers::HeaderName| {
        headers
            .get_optional_str(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let (x_ms, ms, seconds) = (X_MS_RETRY_AFTER_MS, RETRY_AFTER_MS, RETRY_AFTER);
    number(&x_ms)
        .or_else(|| number(&ms))
        .map(Duration::from_millis)
        .or_else(|| number(&seconds).map(Duration::from_secs))
}

fn map_status(answer: Answer<'_>, op: Operation<'_>, context: String, budget: u64) -> Error {
    let Answer {
        status,
        error_code,
        inner_code,
        service_message,
        retry_after,
    } = answer;
    let code_suffix = error_code
        .map(|code| format!(" ({})", shorten(code, 60)))
        .unwrap_or_default();
    let http = format!(
        "HTTP {} {}{code_suffix}",
        u16::from(status),
        status.canonical_reason()
    );
    match status {
        StatusCode::NotFound if op.name.is_some() => Error::SecretNotFound {
            name: op.name.unwrap_or_default().to_owned(),
            version: op.version.map(str::to_owned),
        },
        StatusCode::Forbidden => {
            let disabled = inner_code == Some("SecretDisabled")
                || error_code == Some("SecretDisabled")
                || service_message.is_some_and(|m| m.contains("disabled secret"));
            match (disabled, op.name) {
                (true, Some(name)) => Error::SecretDisabled { name: name.to_owned() },
                _ => Error::VaultForbidden {
                    name: op.name.map(str::to_owned),
                    permission: op.permission.as_str(),
                    message: service_message
                        .map(|m| shorten(m, 300))
                        .filter(|m| !m.is_empty())
                        .unwrap_or(http),
                },
            }
        }
        StatusCode::Unauthorized => Error::VaultAuth {
            message: format!(
                "the vault refused the access token ({http}); check that AZURE_TENANT_ID is the vault's tenant and that the identity belongs to it"
            ),
        },
        StatusCode::TooManyRequests => Error::VaultThrottled {
            context,
            message: format!(
                "throttled by Key Vault ({http}) for longer than the retry budget of {budget}s; lower COMPOSE_SECRETS_KV_CONCURRENCY or try again later"
            ),
            retry_after,
        },
        s if s.is_server_error() => Error::Vault {
            context,
            message: format!("Key Vault answered {http}, still failing after retrying for up to {budget}s"),
        },
        _ => Error::Vault {
            context,
            message: format!("Key Vault answered {http}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use azure_core::http::headers::Headers;
    use azure_core::http::RawResponse;

    use super::*;

    fn http_error(status: StatusCode, body: &str) -> azure_core::Error {
        let code = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
        let raw = RawResponse::from_bytes(status, Headers::new(), body.as_bytes().to_vec());
        azure_core::Error::with_message(
            ErrorKind::HttpResponse {
                status,
                error_code: code,
                raw_response: Some(Box::new(raw)),
            },
            "service message",
        )
    }

    const BUDGET: Duration = Duration::from_secs(30);

    #[test]
    fn not_found_names_secret_and_version() {
        let err = http_error(
            StatusCode::NotFound,
            r#"{"error":{"code":"SecretNotFound","message":"A secret with (name/id) db was not found"}}"#,
        );
        match map_error(&err, Operation::get("db", Some("abc")), BUDGET) {
            Error::SecretNotFound { name, version } => {
                assert_eq!(name, "db");
                assert_eq!(version.as_deref(), Some("abc"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn disabled_is_told_apart_from_forbidden() {
        let disabled = http_error(
            StatusCode::Forbidden,
            r#"{"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}}"#,
        );
        assert!(matches!(
            map_error(&disabled, Operation::get("db", None), BUDGET),
            Error::SecretDisabled { name } if name == "db"
        ));

        let denied = http_error(
            StatusCode::Forbidden,
            r#"{"error":{"code":"Forbidden","message":"The user, group or application 'appid=x' does not have secrets set permission on key vault 'v'.","innererror":{"code":"AccessDenied"}}}"#,
        );
        match map_error(&denied, Operation::set("db", None), BUDGET) {
            Error::VaultForbidden {
                name,
                permission,
                message,
            } => {
                assert_eq!(name.as_deref(), Some("db"));
                assert_eq!(permission, "set");
                assert!(
                    message.contains("does not have secrets set permission"),
                    "{message}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            map_error(&denied, Operation::list(None), BUDGET),
            Error::VaultForbidden {
                permission: "list",
                ..
            }
        ));
    }

    #[test]
    fn unauthorized_is_auth_and_throttling_names_the_budget() {
        let err = http_error(
            StatusCode::Unauthorized,
            r#"{"error":{"code":"Unauthorized","message":"AKV10000"}}"#,
        );
        assert!(matches!(
            map_error(&err, Operation::get("a", None), BUDGET),
            Error::VaultAuth { .. }
        ));

        let err = http_error(
            StatusCode::TooManyRequests,
            r#"{"error":{"code":"Throttled","message":"x"}}"#,
        );
        let mapped = map_error(&err, Operation::get("a", None), BUDGET);
        assert!(mapped.to_string().contains("30s"), "{mapped}");
        assert!(mapped.to_string().contains("get `a`"), "{mapped}");
        assert_eq!(mapped.retry_after(), None);
    }

    #[test]
    fn throttling_keeps_the_retry_after_it_was_given() {
        for (header, value, wait) in [
            ("retry-after", "7", Duration::from_secs(7)),
            ("retry-after-ms", "1500", Duration::from_millis(1500)),
            ("x-ms-retry-after-ms", "250", Duration::from_millis(250)),
        ] {
            let mut headers = Headers::new();
            headers.insert(
                azure_core::http::headers::HeaderName::from_static(header),
                value.to_string(),
            );
            let raw = RawResponse::from_bytes(
                StatusCode::TooManyRequests,
                headers,
                br#"{"error":{"code":"Throttled","message":"x"}}"#.to_vec(),
            );
            let err = azure_core::Error::with_message(
                ErrorKind::HttpResponse {
                    status: StatusCode::TooManyRequests,
                    error_code: Some("Throttled".into()),
                    raw_response: Some(Box::new(raw)),
                },
                "service message",
            );
            let mapped = map_error(&err, Operation::list(None), BUDGET);
            assert!(matches!(mapped, Error::VaultThrottled { .. }), "{mapped:?}");
            assert_eq!(mapped.retry_after(), Some(wait), "{header}");
            assert_eq!(mapped.exit_code(), crate::error::exit::VAULT);
        }
    }

    #[test]
    fn bodies_that_are_not_json_stay_out_of_messages() {
        let err = http_error(
            StatusCode::InternalServerError,
            "<html>value=hunter2</html>",
        );
        let mapped = map_error(&err, Operation::get("a", None), BUDGET);
        assert!(!mapped.to_string().contains("hunter2"), "{mapped}");
        assert!(mapped.to_string().contains("500"), "{mapped}");
    }

    #[test]
    fn credential_failure_wins_anywhere_in_the_chain() {
        let err = azure_core::Error::new(
            ErrorKind::Credential,
            CredentialFailure {
                message: "managed identity (IMDS) did not answer within 10s".into(),
            },
        );
        let outer = azure_core::Error::with_error(ErrorKind::Other, err, "wrapped");
        match map_error(&outer, Operation::get("a", None), BUDGET) {
            Error::VaultAuth { message } => assert!(message.contains("IMDS")),
            other => panic!("unexpected {other:?}"),
        }
    }
}
