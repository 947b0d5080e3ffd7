//! Authentication and authorization: the 401 challenge, HMAC-signed JWT-shaped tokens,
//! the App Service managed-identity and Entra token endpoints, and per-identity permissions.

use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use hyper::StatusCode;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::respond::{json, KvError, Resp};

pub const VAULT_RESOURCE: &str = "https://vault.azure.net";
pub const TOKEN_LIFETIME_SECS: i64 = 3599;
const MSI_API_VERSION: &str = "2019-08-01";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perm {
    Get,
    List,
    Set,
    Delete,
    Recover,
    Purge,
    Backup,
    Restore,
}

const ALL_PERMS: [Perm; 8] = [
    Perm::Get,
    Perm::List,
    Perm::Set,
    Perm::Delete,
    Perm::Recover,
    Perm::Purge,
    Perm::Backup,
    Perm::Restore,
];

impl Perm {
    pub fn as_str(self) -> &'static str {
        match self {
            Perm::Get => "get",
            Perm::List => "list",
            Perm::Set => "set",
            Perm::Delete => "delete",
            Perm::Recover => "recover",
            Perm::Purge => "purge",
            Perm::Backup => "backup",
            Perm::Restore => "restore",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions(u8);

impl Permissions {
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut bits = 0u8;
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let word = word.to_ascii_lowercase();
            if word == "all" {
                bits = u8::MAX;
                continue;
            }
            let perm = ALL_PERMS
                .iter()
                .find(|p| p.as_str() == word)
                .ok_or_else(|| {
                    format!(
                        "unknown permission {word:?}; use get,list,set,delete,recover,purge,backup,restore or all"
                    )
                })?;
            bits |= perm.bit();
        }
        Ok(Self(bits))
    }

    pub fn allows(self, perm: Perm) -> bool {
        self.0 & perm.bit() != 0
    }
}

/// Access policies: listed identities get exactly their permissions, everyone else gets all.
#[derive(Debug, Default)]
pub struct AccessPolicies(HashMap<String, Permissions>);

impl AccessPolicies {
    pub fn new(entries: &[(String, Permissions)]) -> Self {
        Self(entries.iter().cloned().collect())
    }

    pub fn check(
        &self,
        identity: &str,
        perm: Perm,
        tenant: &str,
        vault: &str,
    ) -> Result<(), KvError> {
        match self.0.get(identity) {
            Some(p) if !p.allows(perm) => Err(KvError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "The user, group or application 'appid={identity};oid={identity};iss=https://sts.windows.net/{tenant}/' does not have secrets {} permission on key vault '{vault};location=local'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
                    perm.as_str()
                ),
            )
            .with_inner("AccessDenied")),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub aud: String,
    pub iss: String,
    pub tid: String,
    pub oid: String,
    pub appid: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    Expired,
    WrongAudience(String),
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Malformed | TokenError::BadSignature => {
                f.write_str("AKV10032: Invalid issuer or signature.")
            }
            TokenError::Expired => f.write_str("AKV10022: Token is expired."),
            TokenError::WrongAudience(aud) => write!(
                f,
                "AKV10022: Invalid audience. Expected {VAULT_RESOURCE}, found: {aud}."
            ),
        }
    }
}

/// Issues and checks tokens signed with a key that lives only as long as this process,
/// so tokens from a previous run are rejected like tokens from another tenant would be.
pub struct TokenIssuer {
    key: [u8; 32],
    tenant: String,
}

impl TokenIssuer {
    pub fn new(tenant: &str) -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self {
            key,
            tenant: tenant.to_string(),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts any key length")
    }

    pub fn issue(&self, identity: &str, audience: &str, now: i64) -> (String, i64) {
        let exp = now + TOKEN_LIFETIME_SECS;
        let claims = Claims {
            aud: audience.to_string(),
            iss: format!("https://sts.windows.net/{}/", self.tenant),
            tid: self.tenant.clone(),
            oid: identity.to_string(),
            appid: identity.to_string(),
            iat: now,
            nbf: now,
            exp,
        };
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialize"));
        let signing_input = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        (format!("{signing_input}.{sig}"), exp)
    }

    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(header.as_bytes());
        mac.update(b".");
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or(TokenError::Malformed)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        if claims.aud.trim_end_matches('/') != VAULT_RESOURCE {
            return Err(TokenError::WrongAudience(claims.aud));
        }
        Ok(claims)
    }
}

/// The challenge the SDKs parse: the tenant is the first path segment of `authorization`.
pub fn challenge(authority: &str, tenant: &str) -> String {
    format!(r#"Bearer authorization="{authority}/{tenant}", resource="{VAULT_RESOURCE}""#)
}

pub fn unauthorized(message: impl Into<String>) -> KvError {
    KvError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
}

pub const MISSING_TOKEN: &str = "AKV10000: Request is missing a Bearer or PoP token.";

/// A scope (`https://vault.azure.net/.default`) or resource, as the token's audience.
fn audience(scope_or_resource: &str) -> String {
    scope_or_resource
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_end_matches("/.default")
        .trim_end_matches('/')
        .to_string()
}

pub fn token_endpoint_down() -> Resp {
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"error": "temporarily_unavailable",
                "error_description": "AADSTS90033: A transient error has occurred. Please try again. (kv-emulator --token-endpoint-down)"}),
    )
}

/// App Service managed identity (`IDENTITY_ENDPOINT`), API version 2019-08-01.
pub fn msi_token(
    issuer: &TokenIssuer,
    identity_header: &str,
    presented_header: Option<&str>,
    query: &HashMap<String, String>,
    now: i64,
) -> Result<(Resp, String), Box<Resp>> {
    let fail = |status: StatusCode, message: &str| {
        Err(Box::new(json(
            status,
            &json!({"statusCode": status.as_u16(), "message": message, "correlationId": random_id()}),
        )))
    };
    let Some(presented) = presented_header else {
        return fail(
            StatusCode::BAD_REQUEST,
            "The X-IDENTITY-HEADER header is required.",
        );
    };
    if !constant_time_eq(presented.as_bytes(), identity_header.as_bytes()) {
        return fail(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: X-IDENTITY-HEADER is invalid.",
        );
    }
    if query.get("api-version").map(String::as_str) != Some(MSI_API_VERSION) {
        return fail(
            StatusCode::BAD_REQUEST,
            "The api-version is missing or not supported; use 2019-08-01.",
        );
    }
    let Some(resource) = query.get("resource").filter(|r| !r.is_empty()) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "The resource parameter is required.",
        );
    };
    let identity = [
        "client_id",
        "object_id",
        "principal_id",
        "mi_res_id",
        "msi_res_id",
    ]
    .iter()
    .find_map(|k| query.get(*k).filter(|v| !v.is_empty()))
    .cloned()
    .unwrap_or_else(|| "system-assigned".to_string());
    let (token, exp) = issuer.issue(&identity, &audience(resource), now);
    let body = json!({
        "access_token": token,
        "expires_on": exp.to_string(),
        "expires_in": (exp - now).to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": identity,
    });
    Ok((json(StatusCode::OK, &body), identity))
}

fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Box<Resp> {
    Box::new(json(
        status,
        &json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description} Trace ID: {} Correlation ID: {} Timestamp: {}", random_id(), random_id(), crate::now()),
            "error_codes": [code],
            "timestamp": crate::now().to_string(),
            "trace_id": random_id(),
            "correlation_id": random_id(),
        }),
    ))
}

/// Entra `POST /{tenant}/oauth2/v2.0/token` for client secrets and client assertions
/// (workload identity); any client_id is accepted, as if every app were registered.
pub fn entra_token(
    issuer: &TokenIssuer,
    tenant: &str,
    client_secret: &str,
    path_tenant: &str,
    form: &HashMap<String, String>,
    now: i64,
) -> Result<(Resp, String), Box<Resp>> {
    if !path_tenant.eq_ignore_ascii_case(tenant) {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{path_tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        ));
    }
    let field = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
    if field("grant_type") != Some("client_credentials") {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type; the emulator supports client_credentials.",
        ));
    }
    let Some(client_id) = field("client_id") else {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        ));
    };
    let Some(scope) = field("scope") else {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        ));
    };
    if !scope.split_whitespace().any(|s| s.ends_with("/.default")) {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
        ));
    }
    match (field("client_assertion"), field("client_secret")) {
        (Some(_), _) => {
            if field("client_assertion_type") != Some(JWT_BEARER) {
                return Err(aad_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    50027,
                    "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
                ));
            }
        }
        (None, Some(secret)) if constant_time_eq(secret.as_bytes(), client_secret.as_bytes()) => {}
        (None, Some(_)) => {
            return Err(aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."),
            ))
        }
        (None, None) => {
            return Err(aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ))
        }
    }
    let (token, exp) = issuer.issue(client_id, &audience(scope), now);
    let body = json!({
        "token_type": "Bearer",
        "expires_in": exp - now,
        "ext_expires_in": exp - now,
        "access_token": token,
    });
    Ok((json(StatusCode::OK, &body), client_id.to_string()))
}

/// MSAL's instance discovery; the emulator is its own, single-host cloud.
pub fn instance_discovery(base: &str, host: &str, tenant: &str) -> Value {
    json!({
        "tenant_discovery_endpoint": format!("{base}/{tenant}/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    })
}

pub fn openid_configuration(base: &str, tenant: &str) -> Value {
    json!({
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/{tenant}/v2.0"),
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/devicecode"),
        "end_session_endpoint": format!("{base}/{tenant}/oauth2/v2.0/logout"),
        "tenant_region_scope": null,
        "cloud_instance_name": "kv-emulator.localhost",
    })
}

pub fn random_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_parse_and_check() {
        let p = Permissions::parse("get, LIST").unwrap();
        assert!(p.allows(Perm::Get) && p.allows(Perm::List));
        assert!(!p.allows(Perm::Set) && !p.allows(Perm::Purge));
        assert!(Permissions::parse("all").unwrap().allows(Perm::Restore));
        assert!(Permissions::parse("get,fly").is_err());
        let policies = AccessPolicies::new(&[("reader".into(), p)]);
        assert!(policies.check("reader", Perm::Get, "t", "v").is_ok());
        assert!(policies
            .check("someone-else", Perm::Purge, "t", "v")
            .is_ok());
        let err = policies.check("reader", Perm::Set, "t", "v").unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        assert_eq!(err.inner, Some("AccessDenied"));
        assert!(err.message.contains("does not have secrets set permission"));
    }

    #[test]
    fn tokens_verify_only_when_signed_fresh_and_for_the_vault() {
        let issuer = TokenIssuer::new("tenant");
        let (token, exp) = issuer.issue("app-1", VAULT_RESOURCE, 1000);
        assert_eq!(exp, 1000 + TOKEN_LIFETIME_SECS);
        assert_eq!(token.split('.').count(), 3);
        let claims = issuer.verify(&token, 1001).unwrap();
        assert_eq!(
            (claims.oid.as_str(), claims.tid.as_str()),
            ("app-1", "tenant")
        );
        assert_eq!(issuer.verify(&token, exp), Err(TokenError::Expired));
        let other = TokenIssuer::new("tenant");
        assert_eq!(other.verify(&token, 1001), Err(TokenError::BadSignature));
        assert_eq!(issuer.verify("abc", 1001), Err(TokenError::Malformed));
        let (graph, _) = issuer.issue("app-1", "https://graph.microsoft.com", 1000);
        assert!(matches!(
            issuer.verify(&graph, 1001),
            Err(TokenError::WrongAudience(_))
        ));
    }

    #[test]
    fn scopes_become_audiences() {
        assert_eq!(audience("https://vault.azure.net/.default"), VAULT_RESOURCE);
        assert_eq!(audience("https://vault.azure.net/"), VAULT_RESOURCE);
    }

    #[test]
    fn entra_rejects_a_wrong_secret_and_accepts_assertions() {
        let issuer = TokenIssuer::new("t");
        let mut form: HashMap<String, String> = [
            ("grant_type", "client_credentials"),
            ("client_id", "app"),
            ("client_secret", "wrong"),
            ("scope", "https://vault.azure.net/.default"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let err = entra_token(&issuer, "t", "right", "t", &form, 1).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
        form.insert("client_secret".into(), "right".into());
        assert!(entra_token(&issuer, "t", "right", "t", &form, 1).is_ok());
        assert!(entra_token(&issuer, "t", "right", "other-tenant", &form, 1).is_err());
        form.remove("client_secret");
        form.insert("client_assertion".into(), "eyJ.x.y".into());
        form.insert("client_assertion_type".into(), JWT_BEARER.into());
        let (_, identity) = entra_token(&issuer, "t", "right", "t", &form, 1).unwrap();
        assert_eq!(identity, "app");
    }
}
