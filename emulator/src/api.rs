//! HTTP routing: the Key Vault secrets data plane, the token endpoints and the admin API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, HOST, WWW_AUTHENTICATE};
use hyper::{Method, Request, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::auth::{self, AccessPolicies, Perm, TokenIssuer};
use crate::faults::{FaultUpdate, Faults, Injected, Stats};
use crate::log::Logger;
use crate::respond::{empty, json, KvError, Resp};
use crate::vault::{self, Deleted, Secret, SetParams, UpdateParams, Vault, VaultError, Version};

/// 2026-04-01 is accepted because azure-keyvault-secrets 4.12 (Python) sends it by default;
/// it is answered with the same shapes as 2025-07-01.
pub const API_VERSIONS: [&str; 5] = ["7.4", "7.5", "7.6", "2025-07-01", "2026-04-01"];
const LATEST_API_VERSION: &str = "2026-04-01";
const MAX_BODY_BYTES: usize = 1024 * 1024;

pub struct AppState {
    pub vault: Mutex<Vault>,
    /// Set when vault.json needs rewriting; None unless --persist.
    pub dirty: Option<Arc<Notify>>,
    pub issuer: TokenIssuer,
    pub policies: AccessPolicies,
    pub faults: Faults,
    pub stats: Stats,
    pub tenant: String,
    pub identity_header: String,
    pub client_secret: String,
    /// `https://127.0.0.1:PORT`, used when a request has no usable Host header.
    pub default_base: String,
    pub log: Logger,
}

impl AppState {
    pub fn vault(&self) -> MutexGuard<'_, Vault> {
        // A panic while holding the lock leaves the map consistent (every mutation is one
        // insert/remove), so later requests may keep using it.
        self.vault.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mark_dirty(&self) {
        if let Some(dirty) = &self.dirty {
            dirty.notify_one();
        }
    }
}

/// Returned instead of a response to make hyper close the connection unanswered.
#[derive(Debug)]
pub struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by --fault-drop-every")
    }
}

impl std::error::Error for DropConnection {}

struct Ctx {
    method: Method,
    segments: Vec<String>,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
    /// `https://host:port` as the client addressed us; ids and links are built from it.
    base: String,
}

pub async fn handle(
    state: Arc<AppState>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Resp, DropConnection> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let result = dispatch(&state, req, peer).await;
    let status = match &result {
        Ok(resp) => resp.status().as_u16().to_string(),
        Err(_) => "dropped".to_string(),
    };
    state.log.line(format!("{method} {path} {status}"));
    result
}

async fn dispatch(
    state: &AppState,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Resp, DropConnection> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(KvError::bad_parameter(
                "The request body is too large or was not received completely.",
            )
            .into_response())
        }
    };
    let base = base_url(&parts.headers, &state.default_base);
    let ctx = Ctx {
        segments: parts
            .uri
            .path()
            .split('/')
            .skip(1)
            .map(percent_decode)
            .collect(),
        query: parse_query(parts.uri.query().unwrap_or("")),
        method: parts.method,
        headers: parts.headers,
        body,
        base,
    };
    let segs: Vec<&str> = ctx.segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["_emulator", rest @ ..] => Ok(admin(state, &ctx, rest, peer)),
        ["msi", "token"] => Ok(msi(state, &ctx)),
        [_, "discovery", "instance"] if ctx.method == Method::GET => {
            let host = ctx.base.trim_start_matches("https://");
            Ok(json(
                StatusCode::OK,
                &auth::instance_discovery(&ctx.base, host, &state.tenant),
            ))
        }
        [tenant, "v2.0", ".well-known", "openid-configuration"] if ctx.method == Method::GET => {
            Ok(openid(state, &ctx, tenant))
        }
        [_, "discovery", "v2.0", "keys"] if ctx.method == Method::GET => {
            Ok(json(StatusCode::OK, &json!({"keys": []})))
        }
        [tenant, "oauth2", "v2.0", "token"] if ctx.method == Method::POST => {
            Ok(entra(state, &ctx, tenant))
        }
        ["secrets", ..] | ["deletedsecrets", ..] => data_plane(state, &ctx).await,
        _ => Ok(KvError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "The requested resource was not found on this emulator.",
        )
        .into_response()),
    }
}

fn base_url(headers: &HeaderMap, default: &str) -> String {
    let host = headers.get(HOST).and_then(|h| h.to_str().ok()).filter(|h| {
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
    });
    match host {
        // Real nextLinks and ids carry the port even when it is the default.
        Some(h) if h.ends_with(']') || !h.contains(':') => format!("https://{h}:443"),
        Some(h) => format!("https://{h}"),
        None => default.to_string(),
    }
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(query: &str) -> HashMap<String, String> {
    // Later values win: Rust re-appends its own api-version to nextLinks that already have one.
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn now() -> i64 {
    crate::now()
}

// ---------------------------------------------------------------------------------------
// Token endpoints

fn msi(state: &AppState, ctx: &Ctx) -> Resp {
    if ctx.method != Method::GET {
        return json(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"statusCode": 405, "message": "Use GET."}),
        );
    }
    if state.faults.token_endpoint_down() {
        return auth::token_endpoint_down();
    }
    let presented = ctx
        .headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok());
    match auth::msi_token(
        &state.issuer,
        &state.identity_header,
        presented,
        &ctx.query,
        now(),
    ) {
        Ok((resp, _identity)) => {
            state.stats.token_issued();
            resp
        }
        Err(resp) => *resp,
    }
}

fn entra(state: &AppState, ctx: &Ctx, tenant: &str) -> Resp {
    if state.faults.token_endpoint_down() {
        return auth::token_endpoint_down();
    }
    let form = parse_query(&String::from_utf8_lossy(&ctx.body));
    match auth::entra_token(
        &state.issuer,
        &state.tenant,
        &state.client_secret,
        tenant,
        &form,
        now(),
    ) {
        Ok((resp, _identity)) => {
            state.stats.token_issued();
            resp
        }
        Err(resp) => *resp,
    }
}

fn openid(state: &AppState, ctx: &Ctx, tenant: &str) -> Resp {
    let known =
        tenant.eq_ignore_ascii_case(&state.tenant) || ["common", "organizations"].contains(&tenant);
    if !known {
        return json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_tenant", "error_description": format!("AADSTS90002: Tenant '{tenant}' not found.")}),
        );
    }
    json(
        StatusCode::OK,
        &auth::openid_configuration(&ctx.base, &state.tenant),
    )
}

// ---------------------------------------------------------------------------------------
// Admin API

fn admin(state: &AppState, ctx: &Ctx, rest: &[&str], peer: SocketAddr) -> Resp {
    if !peer.ip().is_loopback() {
        return json(
            StatusCode::FORBIDDEN,
            &json!({"error": "the admin API is only served to loopback clients"}),
        );
    }
    match (&ctx.method, rest) {
        (&Method::GET, ["health"]) => json(
            StatusCode::OK,
            &json!({"status": "ok", "secrets": state.vault().len()}),
        ),
        (&Method::GET, ["stats"]) => json(StatusCode::OK, &state.stats.snapshot()),
        (&Method::POST, ["stats", "reset"]) => {
            state.stats.reset();
            json(StatusCode::OK, &state.stats.snapshot())
        }
        (&Method::GET, ["faults"]) => json(StatusCode::OK, &state.faults.snapshot()),
        (&Method::POST, ["faults"]) => match serde_json::from_slice::<FaultUpdate>(&ctx.body) {
            Ok(update) => {
                state.faults.apply(&update);
                json(StatusCode::OK, &state.faults.snapshot())
            }
            Err(e) => json(
                StatusCode::BAD_REQUEST,
                &json!({"error": format!("invalid fault update: {e}")}),
            ),
        },
        _ => json(
            StatusCode::NOT_FOUND,
            &json!({"error": "unknown admin endpoint; see GET /_emulator/stats, POST /_emulator/stats/reset, GET|POST /_emulator/faults, GET /_emulator/health"}),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Data plane

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    List,
    ListDeleted,
    Restore,
    Set(&'a str),
    Get(&'a str, Option<&'a str>),
    Update(&'a str, Option<&'a str>),
    Delete(&'a str),
    Versions(&'a str),
    Backup(&'a str),
    GetDeleted(&'a str),
    Purge(&'a str),
    Recover(&'a str),
}

impl Route<'_> {
    fn operation(self) -> (&'static str, Perm) {
        match self {
            Route::List => ("list", Perm::List),
            Route::ListDeleted => ("list_deleted", Perm::List),
            Route::Restore => ("restore", Perm::Restore),
            Route::Set(_) => ("set", Perm::Set),
            Route::Get(..) => ("get", Perm::Get),
            Route::Update(..) => ("update", Perm::Set),
            Route::Delete(_) => ("delete", Perm::Delete),
            Route::Versions(_) => ("list_versions", Perm::List),
            Route::Backup(_) => ("backup", Perm::Backup),
            Route::GetDeleted(_) => ("get_deleted", Perm::Get),
            Route::Purge(_) => ("purge", Perm::Purge),
            Route::Recover(_) => ("recover", Perm::Recover),
        }
    }
}

fn route<'a>(method: &Method, segs: &[&'a str]) -> Result<Route<'a>, KvError> {
    let m = method.as_str();
    let found = match (m, segs) {
        ("GET", ["secrets"] | ["secrets", ""]) => Some(Route::List),
        ("POST", ["secrets", "restore"]) => Some(Route::Restore),
        ("PUT", ["secrets", name]) => Some(Route::Set(name)),
        ("GET", ["secrets", name] | ["secrets", name, ""]) => Some(Route::Get(name, None)),
        ("PATCH", ["secrets", name] | ["secrets", name, ""]) => Some(Route::Update(name, None)),
        ("DELETE", ["secrets", name]) => Some(Route::Delete(name)),
        ("GET", ["secrets", name, "versions"]) => Some(Route::Versions(name)),
        ("POST", ["secrets", name, "backup"]) => Some(Route::Backup(name)),
        ("GET", ["secrets", name, version]) => Some(Route::Get(name, Some(version))),
        ("PATCH", ["secrets", name, version]) => Some(Route::Update(name, Some(version))),
        ("GET", ["deletedsecrets"] | ["deletedsecrets", ""]) => Some(Route::ListDeleted),
        ("GET", ["deletedsecrets", name]) => Some(Route::GetDeleted(name)),
        ("DELETE", ["deletedsecrets", name]) => Some(Route::Purge(name)),
        ("POST", ["deletedsecrets", name, "recover"]) => Some(Route::Recover(name)),
        _ => None,
    };
    found.ok_or_else(|| {
        let known_path = matches!(
            segs,
            ["secrets"]
                | ["secrets", _]
                | ["secrets", _, _]
                | ["deletedsecrets"]
                | ["deletedsecrets", _]
        );
        if known_path {
            KvError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("The requested resource does not support http method '{m}'."),
            )
        } else {
            KvError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                "The requested resource was not found.",
            )
        }
    })
}

fn kv_headers(resp: &mut Resp, request_headers: &HeaderMap) {
    let h = resp.headers_mut();
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&auth::random_id()) {
        h.insert("x-ms-request-id", v);
    }
    h.insert(
        "x-ms-keyvault-service-version",
        HeaderValue::from_static("1.9.2180.1"),
    );
    h.insert("x-ms-keyvault-region", HeaderValue::from_static("local"));
    h.insert(
        "x-ms-keyvault-network-info",
        HeaderValue::from_static("conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;"),
    );
    if let Some(id) = request_headers.get("x-ms-client-request-id") {
        h.insert("x-ms-client-request-id", id.clone());
    }
}

async fn data_plane(state: &AppState, ctx: &Ctx) -> Result<Resp, DropConnection> {
    let mut resp = data_plane_inner(state, ctx).await?;
    kv_headers(&mut resp, &ctx.headers);
    Ok(resp)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

async fn data_plane_inner(state: &AppState, ctx: &Ctx) -> Result<Resp, DropConnection> {
    // Authentication comes first: the SDKs' first request is a body-less probe that must
    // only ever earn a challenge.
    let verified = match bearer(&ctx.headers) {
        None => Err(auth::MISSING_TOKEN.to_string()),
        Some(token) => state.issuer.verify(token, now()).map_err(|e| e.to_string()),
    };
    let claims = match verified {
        Ok(claims) => claims,
        Err(message) => {
            state.stats.unauthenticated();
            let latency = state.faults.base_latency();
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            let mut resp = auth::unauthorized(message).into_response();
            if let Ok(v) = HeaderValue::from_str(&auth::challenge(&ctx.base, &state.tenant)) {
                resp.headers_mut().insert(WWW_AUTHENTICATE, v);
            }
            return Ok(resp);
        }
    };
    state.stats.request();
    let (delay, fault) = state.faults.next();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match fault {
        Injected::None => {}
        Injected::Drop => {
            state.stats.fault();
            return Err(DropConnection);
        }
        Injected::Throttle { retry_after } => {
            state.stats.fault();
            let mut err = KvError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Throttled",
                "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
            );
            err.retry_after = Some(retry_after);
            return Ok(err.into_response());
        }
        Injected::ServerError => {
            state.stats.fault();
            return Ok(KvError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "The service encountered an internal error. Please try again. (injected by kv-emulator)",
            )
            .into_response());
        }
    }
    Ok(match serve(state, ctx, &claims.oid) {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    })
}

fn check_api_version(query: &HashMap<String, String>) -> Result<(), KvError> {
    match query.get("api-version").map(String::as_str) {
        None | Some("") => Err(KvError::bad_parameter(
            "The api-version query parameter (?api-version=) is required for all requests.",
        )),
        Some(v) if API_VERSIONS.contains(&v) => Ok(()),
        Some(v) => Err(KvError::bad_parameter(format!(
            "The specified version ({v}) is not recognized. Consider using the latest supported version ({LATEST_API_VERSION})."
        ))),
    }
}

fn vault_error(e: VaultError) -> KvError {
    match e {
        VaultError::InvalidName(name) => KvError::bad_parameter(format!(
            "The request URI contains an invalid name: {name}"
        )),
        VaultError::BadParameter(message) => KvError::bad_parameter(message),
        VaultError::NotFound { name, version } => {
            let id = match version {
                Some(v) => format!("{name}/{v}"),
                None => name,
            };
            KvError::new(
                StatusCode::NOT_FOUND,
                "SecretNotFound",
                format!("A secret with (name/id) {id} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"),
            )
        }
        VaultError::DeletedNotFound(name) => KvError::new(
            StatusCode::NOT_FOUND,
            "SecretNotFound",
            format!("Deleted Secret not found: {name}"),
        ),
        VaultError::DeletedButRecoverable(name) => KvError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged."),
        )
        .with_inner("ObjectIsDeletedButRecoverable"),
        VaultError::AlreadyExists(name) => KvError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("Secret {name} already exists."),
        ),
    }
}

fn max_results(query: &HashMap<String, String>) -> Result<usize, KvError> {
    match query.get("maxresults") {
        None => Ok(vault::MAX_PAGE),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=vault::MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(KvError::bad_parameter(format!(
                "Invalid maxresults value {raw}: it must be between 1 and {}.",
                vault::MAX_PAGE
            ))),
        },
    }
}

fn parse_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, KvError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| KvError::bad_parameter(format!("The request body is not valid: {e}")))
}

fn serve(state: &AppState, ctx: &Ctx, identity: &str) -> Result<Resp, KvError> {
    check_api_version(&ctx.query)?;
    let segs: Vec<&str> = ctx.segments.iter().map(String::as_str).collect();
    let route = route(&ctx.method, &segs)?;
    let (op, perm) = route.operation();
    let get_of = match route {
        Route::Get(name, _) => Some(name),
        _ => None,
    };
    state.stats.operation(op, get_of);
    let vault_host = ctx.base.trim_start_matches("https://");
    state
        .policies
        .check(identity, perm, &state.tenant, vault_host)?;
    let base = ctx.base.as_str();
    let ok = |v: Value| Ok(json(StatusCode::OK, &v));
    let t = now();
    match route {
        Route::Set(name) => {
            let params: SetParams = parse_body(&ctx.body)?;
            let body = {
                let mut vault = state.vault();
                let secret = vault.set(name, params, t).map_err(vault_error)?;
                bundle(base, secret, secret.latest(), true)
            };
            state.mark_dirty();
            ok(body)
        }
        Route::Get(name, version) => {
            let vault = state.vault();
            let (secret, v) = vault.get(name, version).map_err(vault_error)?;
            if !v.enabled {
                return Err(KvError::new(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "Operation get is not allowed on a disabled secret.",
                )
                .with_inner("SecretDisabled"));
            }
            ok(bundle(base, secret, v, true))
        }
        Route::Update(name, version) => {
            let params: UpdateParams = parse_body(&ctx.body)?;
            let body = {
                let mut vault = state.vault();
                let (secret, v) = vault
                    .update(name, version, params, t)
                    .map_err(vault_error)?;
                bundle(base, secret, v, false)
            };
            state.mark_dirty();
            ok(body)
        }
        Route::Delete(name) => {
            let body = {
                let mut vault = state.vault();
                deleted_bundle(base, vault.delete(name, t).map_err(vault_error)?)
            };
            state.mark_dirty();
            ok(body)
        }
        Route::GetDeleted(name) => {
            let vault = state.vault();
            ok(deleted_bundle(
                base,
                vault.get_deleted(name).map_err(vault_error)?,
            ))
        }
        Route::Recover(name) => {
            let body = {
                let mut vault = state.vault();
                let secret = vault.recover(name).map_err(vault_error)?;
                bundle(base, secret, secret.latest(), false)
            };
            state.mark_dirty();
            ok(body)
        }
        Route::Purge(name) => {
            state.vault().purge(name).map_err(vault_error)?;
            state.mark_dirty();
            Ok(empty(StatusCode::NO_CONTENT))
        }
        Route::List => {
            let max = max_results(&ctx.query)?;
            let vault = state.vault();
            let page = vault.list(ctx.query.get("$skiptoken").map(String::as_str), max);
            let items = page.items.iter().map(|s| item(base, s)).collect();
            ok(list_body(
                base,
                "secrets",
                items,
                page.skiptoken,
                max,
                &ctx.query,
            ))
        }
        Route::ListDeleted => {
            let max = max_results(&ctx.query)?;
            let vault = state.vault();
            let page = vault.list_deleted(ctx.query.get("$skiptoken").map(String::as_str), max);
            let items = page.items.iter().map(|d| deleted_item(base, d)).collect();
            ok(list_body(
                base,
                "deletedsecrets",
                items,
                page.skiptoken,
                max,
                &ctx.query,
            ))
        }
        Route::Versions(name) => {
            let max = max_results(&ctx.query)?;
            let vault = state.vault();
            let (secret, page) = vault
                .list_versions(name, ctx.query.get("$skiptoken").map(String::as_str), max)
                .map_err(vault_error)?;
            let items = match secret {
                Some(secret) => page
                    .items
                    .iter()
                    .map(|v| version_item(base, secret, v))
                    .collect(),
                None => Vec::new(),
            };
            let path = format!("secrets/{name}/versions");
            ok(list_body(
                base,
                &path,
                items,
                page.skiptoken,
                max,
                &ctx.query,
            ))
        }
        Route::Backup(name) => {
            let blob = state.vault().backup(name).map_err(vault_error)?;
            ok(json!({ "value": blob }))
        }
        Route::Restore => {
            #[derive(serde::Deserialize, Default)]
            struct RestoreParams {
                value: Option<String>,
            }
            let params: RestoreParams = parse_body(&ctx.body)?;
            let blob = params
                .value
                .ok_or_else(|| KvError::bad_parameter("Property value is required."))?;
            let body = {
                let mut vault = state.vault();
                let secret = vault.restore(&blob).map_err(vault_error)?;
                bundle(base, secret, secret.latest(), false)
            };
            state.mark_dirty();
            ok(body)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Wire models

fn attributes(v: &Version) -> Value {
    let mut a = json!({
        "enabled": v.enabled,
        "created": v.created,
        "updated": v.updated,
        "recoverableDays": vault::RECOVERABLE_DAYS,
        "recoveryLevel": "Recoverable+Purgeable",
    });
    if let Some(nbf) = v.nbf {
        a["nbf"] = json!(nbf);
    }
    if let Some(exp) = v.exp {
        a["exp"] = json!(exp);
    }
    a
}

fn common_fields(out: &mut Value, v: &Version) {
    out["attributes"] = attributes(v);
    if let Some(ct) = &v.content_type {
        out["contentType"] = json!(ct);
    }
    if let Some(tags) = &v.tags {
        out["tags"] = json!(tags);
    }
}

fn bundle(base: &str, secret: &Secret, v: &Version, with_value: bool) -> Value {
    let mut out = json!({ "id": format!("{base}/secrets/{}/{}", secret.name, v.version) });
    if with_value {
        out["value"] = json!(v.value);
    }
    common_fields(&mut out, v);
    out
}

/// List entries carry the version-less id and the latest version's properties.
fn item(base: &str, secret: &Secret) -> Value {
    let mut out = json!({ "id": format!("{base}/secrets/{}", secret.name) });
    common_fields(&mut out, secret.latest());
    out
}

fn version_item(base: &str, secret: &Secret, v: &Version) -> Value {
    let mut out = json!({ "id": format!("{base}/secrets/{}/{}", secret.name, v.version) });
    common_fields(&mut out, v);
    out
}

fn add_deletion(out: &mut Value, base: &str, d: &Deleted) {
    out["recoveryId"] = json!(format!("{base}/deletedsecrets/{}", d.secret.name));
    out["deletedDate"] = json!(d.deleted_date);
    out["scheduledPurgeDate"] = json!(d.scheduled_purge_date);
}

fn deleted_bundle(base: &str, d: &Deleted) -> Value {
    let mut out = bundle(base, &d.secret, d.secret.latest(), false);
    add_deletion(&mut out, base, d);
    out
}

fn deleted_item(base: &str, d: &Deleted) -> Value {
    let mut out = item(base, &d.secret);
    add_deletion(&mut out, base, d);
    out
}

fn list_body(
    base: &str,
    path: &str,
    items: Vec<Value>,
    skiptoken: Option<String>,
    max: usize,
    query: &HashMap<String, String>,
) -> Value {
    let api_version = query
        .get("api-version")
        .map(String::as_str)
        .unwrap_or(LATEST_API_VERSION);
    let next = skiptoken.map(|token| {
        format!("{base}/{path}?api-version={api_version}&$skiptoken={token}&maxresults={max}")
    });
    json!({ "value": items, "nextLink": next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_cover_trailing_slash_and_versions() {
        let r = |m: Method, p: &[&'static str]| route(&m, p);
        assert_eq!(
            r(Method::GET, &["secrets", "a", ""]),
            Ok(Route::Get("a", None))
        );
        assert_eq!(r(Method::GET, &["secrets", "a"]), Ok(Route::Get("a", None)));
        assert_eq!(
            r(Method::GET, &["secrets", "a", "v1"]),
            Ok(Route::Get("a", Some("v1")))
        );
        assert_eq!(
            r(Method::GET, &["secrets", "a", "versions"]),
            Ok(Route::Versions("a"))
        );
        assert_eq!(
            r(Method::PATCH, &["secrets", "a", ""]),
            Ok(Route::Update("a", None))
        );
        assert_eq!(r(Method::POST, &["secrets", "restore"]), Ok(Route::Restore));
        assert_eq!(
            r(Method::DELETE, &["deletedsecrets", "a"]),
            Ok(Route::Purge("a"))
        );
        assert_eq!(
            r(Method::POST, &["deletedsecrets", "a", "recover"]),
            Ok(Route::Recover("a"))
        );
        assert_eq!(
            r(Method::POST, &["secrets", "a"]).unwrap_err().status,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn api_versions_are_checked() {
        let q = |v: &str| parse_query(&format!("api-version={v}"));
        assert!(check_api_version(&q("7.6")).is_ok());
        assert!(check_api_version(&q("2025-07-01")).is_ok());
        let err = check_api_version(&q("1999-01-01")).unwrap_err();
        assert!(err
            .message
            .starts_with("The specified version (1999-01-01) is not recognized."));
        assert_eq!(
            check_api_version(&HashMap::new()).unwrap_err().code,
            "BadParameter"
        );
        // Rust re-appends api-version to nextLinks, so the last one wins.
        assert_eq!(
            parse_query("api-version=7.4&api-version=7.6")["api-version"],
            "7.6"
        );
    }

    #[test]
    fn host_header_becomes_the_vault_url_with_a_port() {
        let mut h = HeaderMap::new();
        assert_eq!(base_url(&h, "https://d:1"), "https://d:1");
        h.insert(HOST, HeaderValue::from_static("127.0.0.1:8443"));
        assert_eq!(base_url(&h, "x"), "https://127.0.0.1:8443");
        h.insert(HOST, HeaderValue::from_static("vault.localhost"));
        assert_eq!(base_url(&h, "x"), "https://vault.localhost:443");
        h.insert(HOST, HeaderValue::from_static("[::1]"));
        assert_eq!(base_url(&h, "x"), "https://[::1]:443");
        h.insert(HOST, HeaderValue::from_static("evil\"host"));
        assert_eq!(base_url(&h, "x"), "x");
    }

    #[test]
    fn percent_decoding_keeps_invalid_escapes() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("bad_name"), "bad_name");
        assert_eq!(percent_decode("x%2"), "x%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn bearer_tokens_are_extracted() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }
}
