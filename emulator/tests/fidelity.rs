//! Fidelity: the official Rust SDK (azure_security_keyvault_secrets + azure_identity) drives
//! every emulated operation against the real kv-emulator binary, over HTTPS, unchanged.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use azure_core::error::ErrorKind;
use azure_core::http::headers::HeaderName;
use azure_core::http::{RequestContent, RetryOptions};
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
use azure_security_keyvault_secrets::models::{
    Secret, SecretAttributes, SecretClientGetSecretOptions,
    SecretClientListSecretPropertiesOptions, SecretClientListSecretPropertiesVersionsOptions,
    SecretClientUpdateSecretPropertiesOptions, SetSecretParameters,
    UpdateSecretPropertiesParameters,
};
use azure_security_keyvault_secrets::{ResourceExt as _, SecretClient};
use common::{low_retries, Emulator};
use futures::TryStreamExt as _;

fn params(value: &str) -> RequestContent<SetSecretParameters> {
    SetSecretParameters {
        value: Some(value.to_string()),
        ..Default::default()
    }
    .try_into()
    .expect("serialize SetSecretParameters")
}

async fn set(client: &SecretClient, name: &str, value: &str) -> Secret {
    client
        .set_secret(name, params(value), None)
        .await
        .unwrap_or_else(|e| panic!("set {name}: {e:?}"))
        .into_model()
        .expect("Secret model")
}

async fn get(
    client: &SecretClient,
    name: &str,
    version: Option<&str>,
) -> azure_core::Result<Secret> {
    let options = SecretClientGetSecretOptions {
        secret_version: version.map(str::to_string),
        ..Default::default()
    };
    client.get_secret(name, Some(options)).await?.into_model()
}

fn version_of(secret: &Secret) -> String {
    secret
        .resource_id()
        .expect("resource id")
        .version
        .expect("versioned id")
}

/// What a failed call carried on the wire: status, outer code, inner code, message, headers.
struct WireError {
    status: u16,
    code: Option<String>,
    inner: Option<String>,
    message: String,
    retry_after: Option<String>,
}

fn wire_error<T: std::fmt::Debug>(result: azure_core::Result<T>) -> WireError {
    let err = result.expect_err("the call should have failed");
    let ErrorKind::HttpResponse {
        status,
        error_code,
        raw_response,
    } = err.kind()
    else {
        panic!("expected an HTTP error, got {err:?}");
    };
    let raw = raw_response.as_ref().expect("raw response kept");
    let body: serde_json::Value = raw.body().json().unwrap_or(serde_json::Value::Null);
    WireError {
        status: u16::from(*status),
        code: error_code.clone(),
        inner: body["error"]["innererror"]["code"]
            .as_str()
            .map(str::to_string),
        message: body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        retry_after: raw
            .headers()
            .get_optional_str(&HeaderName::from_static("retry-after"))
            .map(str::to_string),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_get_versions_and_update_properties() {
    let emu = Emulator::start(&[]);
    let client = emu.secret_client("fidelity-app");

    let first = client
        .set_secret(
            "Db-Password",
            SetSecretParameters {
                value: Some("v1-value".into()),
                content_type: Some("text/plain".into()),
                tags: Some(HashMap::from([("owner".to_string(), "tests".to_string())])),
                ..Default::default()
            }
            .try_into()
            .unwrap(),
            None,
        )
        .await
        .expect("set v1")
        .into_model()
        .unwrap();
    assert_eq!(first.value.as_deref(), Some("v1-value"));
    assert_eq!(first.content_type.as_deref(), Some("text/plain"));
    assert_eq!(first.tags.as_ref().unwrap()["owner"], "tests");
    let id = first.resource_id().unwrap();
    assert_eq!(id.name, "Db-Password", "ids keep the original case");
    assert_eq!(id.vault_url.trim_end_matches('/'), emu.url());
    let v1 = version_of(&first);
    assert_eq!(v1.len(), 32);
    assert!(v1
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    let attrs = first.attributes.as_ref().unwrap();
    assert_eq!(attrs.enabled, Some(true));
    assert_eq!(attrs.recoverable_days, Some(90));
    assert!(attrs.created.is_some() && attrs.updated.is_some());

    let second = set(&client, "db-password", "v2-value").await;
    let v2 = version_of(&second);
    assert_ne!(v1, v2);

    let latest = get(&client, "DB-PASSWORD", None).await.expect("get latest");
    assert_eq!(latest.value.as_deref(), Some("v2-value"));
    assert_eq!(version_of(&latest), v2);
    let old = get(&client, "db-password", Some(&v1))
        .await
        .expect("get v1");
    assert_eq!(old.value.as_deref(), Some("v1-value"));

    let mut versions = Vec::new();
    let options = SecretClientListSecretPropertiesVersionsOptions {
        maxresults: Some(1),
        ..Default::default()
    };
    let mut pager = client
        .list_secret_properties_versions("db-password", Some(options))
        .expect("list versions");
    while let Some(item) = pager.try_next().await.expect("versions page") {
        versions.push(item.resource_id().unwrap().version.expect("versioned ids"));
    }
    assert_eq!(versions, vec![v1.clone(), v2.clone()]);

    // Update v1's properties only; the value must not come back.
    let updated = client
        .update_secret_properties(
            "db-password",
            UpdateSecretPropertiesParameters {
                content_type: Some("application/json".into()),
                tags: Some(HashMap::from([("env".to_string(), "prod".to_string())])),
                ..Default::default()
            }
            .try_into()
            .unwrap(),
            Some(SecretClientUpdateSecretPropertiesOptions {
                secret_version: Some(v1.clone()),
                ..Default::default()
            }),
        )
        .await
        .expect("update v1")
        .into_model()
        .unwrap();
    assert_eq!(updated.value, None, "PATCH responses carry no value");
    assert_eq!(updated.content_type.as_deref(), Some("application/json"));
    assert_eq!(updated.tags.unwrap()["env"], "prod");
    let old = get(&client, "db-password", Some(&v1)).await.unwrap();
    assert_eq!(old.content_type.as_deref(), Some("application/json"));
    assert_eq!(old.value.as_deref(), Some("v1-value"));

    // Disable the latest version (secret_version None = latest): GET is then refused.
    client
        .update_secret_properties(
            "db-password",
            UpdateSecretPropertiesParameters {
                secret_attributes: Some(SecretAttributes {
                    enabled: Some(false),
                    ..Default::default()
                }),
                ..Default::default()
            }
            .try_into()
            .unwrap(),
            None,
        )
        .await
        .expect("disable latest");
    let err = wire_error(get(&client, "db-password", None).await);
    assert_eq!(err.status, 403);
    assert_eq!(err.code.as_deref(), Some("Forbidden"));
    assert_eq!(err.inner.as_deref(), Some("SecretDisabled"));
    assert_eq!(
        err.message,
        "Operation get is not allowed on a disabled secret."
    );
    let err = wire_error(get(&client, "db-password", Some(&v2)).await);
    assert_eq!(err.inner.as_deref(), Some("SecretDisabled"));
    assert!(
        get(&client, "db-password", Some(&v1)).await.is_ok(),
        "other versions stay readable"
    );

    let stats = emu.admin_get("/stats").await;
    assert_eq!(stats["by_operation"]["set"], 2);
    assert_eq!(
        stats["by_operation"]["list_versions"], 2,
        "two pages of one version"
    );
    assert!(stats["gets_by_secret"]["db-password"].as_u64().unwrap() >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_through_every_secret() {
    let emu = Emulator::start(&[
        "--seed-count",
        "5",
        "--seed",
        "Extra-One",
        "--seed",
        "extra-two",
    ]);
    let client = emu.secret_client("lister");
    set(&client, "written-by-test", "x").await;

    let options = SecretClientListSecretPropertiesOptions {
        maxresults: Some(2),
        ..Default::default()
    };
    let mut pages = client
        .list_secret_properties(Some(options))
        .expect("pager")
        .into_pages();
    let mut names = Vec::new();
    let mut page_count = 0;
    let mut saw_last_page = false;
    while let Some(page) = pages.try_next().await.expect("page") {
        let page = page.into_model().expect("page model");
        page_count += 1;
        assert!(page.value.len() <= 2, "maxresults is honoured");
        match &page.next_link {
            Some(link) => {
                assert!(!saw_last_page);
                assert!(
                    link.starts_with(emu.url()),
                    "absolute nextLink with port: {link}"
                );
                assert!(link.contains("$skiptoken="), "{link}");
            }
            None => saw_last_page = true,
        }
        for item in page.value {
            let id = item.resource_id().unwrap();
            assert_eq!(id.version, None, "list items have version-less ids");
            names.push(id.name);
        }
    }
    assert!(saw_last_page);
    assert_eq!(page_count, 4, "8 secrets in pages of 2");
    let expected: BTreeSet<String> = [
        "bench-0000",
        "bench-0001",
        "bench-0002",
        "bench-0003",
        "bench-0004",
        "Extra-One",
        "extra-two",
        "written-by-test",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(
        names.len(),
        expected.len(),
        "no duplicates across pages: {names:?}"
    );
    assert_eq!(names.into_iter().collect::<BTreeSet<_>>(), expected);

    // Seeded values are random 32-byte hex strings.
    let seeded = get(&client, "bench-0003", None)
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!(seeded.len(), 64);
    assert!(seeded.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(
        seeded,
        get(&client, "bench-0004", None)
            .await
            .unwrap()
            .value
            .unwrap()
    );

    // The default page size is 25, so item iteration sees everything on one page too.
    let all: Vec<_> = client
        .list_secret_properties(None)
        .unwrap()
        .try_collect()
        .await
        .expect("list all");
    assert_eq!(all.len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_delete_recover_and_purge() {
    let emu = Emulator::start(&[]);
    let client = emu.secret_client("deleter");
    let original = set(&client, "to-delete", "keep-me").await;

    let deleted = client
        .delete_secret("to-delete", None)
        .await
        .expect("delete")
        .into_model()
        .unwrap();
    assert_eq!(deleted.value, None);
    assert_eq!(
        deleted.recovery_id.as_deref(),
        Some(format!("{}/deletedsecrets/to-delete", emu.url()).as_str())
    );
    let deleted_date = deleted.deleted_date.expect("deletedDate");
    let purge_date = deleted.scheduled_purge_date.expect("scheduledPurgeDate");
    assert_eq!((purge_date - deleted_date).whole_days(), 90);
    assert_eq!(
        deleted.id, original.id,
        "the deleted bundle names the latest version"
    );

    let err = wire_error(get(&client, "to-delete", None).await);
    assert_eq!(
        (err.status, err.code.as_deref()),
        (404, Some("SecretNotFound"))
    );

    let fetched = client
        .get_deleted_secret("to-delete", None)
        .await
        .expect("get deleted")
        .into_model()
        .unwrap();
    assert_eq!(fetched.recovery_id, deleted.recovery_id);
    let listed: Vec<_> = client
        .list_deleted_secret_properties(None)
        .unwrap()
        .try_collect()
        .await
        .expect("list deleted");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].recovery_id, deleted.recovery_id);

    let err = wire_error(client.set_secret("to-delete", params("new"), None).await);
    assert_eq!(err.status, 409);
    assert_eq!(err.code.as_deref(), Some("Conflict"));
    assert_eq!(err.inner.as_deref(), Some("ObjectIsDeletedButRecoverable"));
    assert!(
        err.message.contains("deleted but recoverable state"),
        "{}",
        err.message
    );

    let recovered = client
        .recover_deleted_secret("to-delete", None)
        .await
        .expect("recover")
        .into_model()
        .unwrap();
    assert_eq!(recovered.id, original.id);
    assert_eq!(
        get(&client, "to-delete", None)
            .await
            .unwrap()
            .value
            .as_deref(),
        Some("keep-me")
    );

    client
        .delete_secret("to-delete", None)
        .await
        .expect("delete again");
    let purged = client
        .purge_deleted_secret("to-delete", None)
        .await
        .expect("purge");
    assert_eq!(u16::from(purged.status()), 204);
    let err = wire_error(client.get_deleted_secret("to-delete", None).await);
    assert_eq!(err.status, 404);
    assert_eq!(err.code.as_deref(), Some("SecretNotFound"));
    assert_eq!(err.message, "Deleted Secret not found: to-delete");
    let err = wire_error(client.recover_deleted_secret("to-delete", None).await);
    assert_eq!(err.status, 404);

    // After the purge the name is free again, and only the new version exists.
    let reborn = set(&client, "to-delete", "fresh").await;
    assert_ne!(version_of(&reborn), version_of(&original));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_round_trip() {
    let emu = Emulator::start(&[]);
    let client = emu.secret_client("backup-app");
    set(&client, "backed-up", "one").await;
    set(&client, "backed-up", "two").await;
    let blob = client
        .backup_secret("backed-up", None)
        .await
        .expect("backup")
        .into_model()
        .unwrap()
        .value
        .expect("blob");
    client.delete_secret("backed-up", None).await.unwrap();
    client
        .purge_deleted_secret("backed-up", None)
        .await
        .unwrap();
    let restored = client
        .restore_secret(
            azure_security_keyvault_secrets::models::RestoreSecretParameters {
                secret_backup: Some(blob),
            }
            .try_into()
            .unwrap(),
            None,
        )
        .await
        .expect("restore")
        .into_model()
        .unwrap();
    assert_eq!(restored.resource_id().unwrap().name, "backed-up");
    assert_eq!(
        get(&client, "backed-up", None)
            .await
            .unwrap()
            .value
            .as_deref(),
        Some("two")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_the_service_codes() {
    let emu = Emulator::start(&[]);
    let client = emu.secret_client("errors-app");

    let err = wire_error(get(&client, "never-created", None).await);
    assert_eq!(
        (err.status, err.code.as_deref()),
        (404, Some("SecretNotFound"))
    );
    assert!(
        err.message
            .starts_with("A secret with (name/id) never-created was not found in this key vault."),
        "{}",
        err.message
    );

    let created = set(&client, "exists", "x").await;
    let missing = "0123456789abcdef0123456789abcdef";
    let err = wire_error(get(&client, "exists", Some(missing)).await);
    assert_eq!(err.status, 404);
    assert!(
        err.message.starts_with(&format!(
            "A secret with (name/id) exists/{missing} was not found"
        )),
        "{}",
        err.message
    );
    assert_ne!(version_of(&created), missing);

    let err = wire_error(client.set_secret("bad_name", params("x"), None).await);
    assert_eq!(
        (err.status, err.code.as_deref()),
        (400, Some("BadParameter"))
    );
    assert_eq!(
        err.message,
        "The request URI contains an invalid name: bad_name"
    );

    let too_long = "n".repeat(128);
    let err = wire_error(client.set_secret(&too_long, params("x"), None).await);
    assert_eq!(err.status, 400);

    let limit = 25 * 1024;
    let at_limit = set(&client, "big", &"a".repeat(limit)).await;
    assert_eq!(at_limit.value.map(|v| v.len()), Some(limit));
    let err = wire_error(
        client
            .set_secret("big", params(&"a".repeat(limit + 1)), None)
            .await,
    );
    assert_eq!(
        (err.status, err.code.as_deref()),
        (400, Some("BadParameter"))
    );
    assert_eq!(
        get(&client, "big", None)
            .await
            .unwrap()
            .value
            .map(|v| v.len()),
        Some(limit),
        "a refused set leaves the secret unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_with_retry_after_is_honoured() {
    let emu = Emulator::start(&["--seed", "hot"]);
    let client = emu.secret_client("throttled-app");
    // Warm up first so the challenge and token fetch are not part of the counted sequence.
    get(&client, "hot", None).await.expect("warm-up");

    emu.admin_post(
        "/faults",
        serde_json::json!({"fault_429_every": 2, "retry_after": 1}),
    )
    .await;
    emu.admin_post("/stats/reset", serde_json::json!({})).await;
    get(&client, "hot", None).await.expect("request 1 passes");
    let started = Instant::now();
    get(&client, "hot", None)
        .await
        .expect("request 2 is throttled, then retried after Retry-After");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 honoured, waited {waited:?}"
    );
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    let stats = emu.admin_get("/stats").await;
    assert_eq!(stats["faults_injected"], 1);
    assert_eq!(stats["requests"], 3, "one throttled request plus its retry");

    // Without retries the 429 and its Retry-After reach the caller.
    let no_retry = emu.secret_client_with(
        emu.client_secret_credential("throttled-app", &emu.client_secret()),
        RetryOptions::none(),
    );
    emu.admin_post(
        "/faults",
        serde_json::json!({"fault_429_every": 1, "retry_after": 7}),
    )
    .await;
    let err = wire_error(get(&no_retry, "hot", None).await);
    assert_eq!((err.status, err.code.as_deref()), (429, Some("Throttled")));
    assert_eq!(err.retry_after.as_deref(), Some("7"));

    // 500s and dropped connections are retried by the SDK and eventually succeed.
    emu.admin_post(
        "/faults",
        serde_json::json!({"fault_429_every": 0, "fault_500_every": 2, "fault_drop_every": 3}),
    )
    .await;
    emu.admin_post("/stats/reset", serde_json::json!({})).await;
    for _ in 0..4 {
        assert!(get(&client, "hot", None).await.is_ok());
    }
    let stats = emu.admin_get("/stats").await;
    assert!(stats["faults_injected"].as_u64().unwrap() >= 2, "{stats}");

    emu.admin_post(
        "/faults",
        serde_json::json!({"fault_500_every": 1, "fault_drop_every": 0}),
    )
    .await;
    let err = wire_error(get(&no_retry, "hot", None).await);
    assert_eq!(
        (err.status, err.code.as_deref()),
        (500, Some("InternalServerError"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_policies_deny_missing_permissions() {
    let emu = Emulator::start(&["--permissions", "reader=get,list", "--seed", "shared"]);
    let reader = emu.secret_client("reader");
    assert!(get(&reader, "shared", None).await.is_ok(), "reader may get");
    let listed: Vec<_> = reader
        .list_secret_properties(None)
        .unwrap()
        .try_collect()
        .await
        .expect("reader may list");
    assert_eq!(listed.len(), 1);

    let err = wire_error(reader.set_secret("shared", params("overwrite"), None).await);
    assert_eq!((err.status, err.code.as_deref()), (403, Some("Forbidden")));
    assert_eq!(err.inner.as_deref(), Some("AccessDenied"));
    assert!(
        err.message.contains("'appid=reader;")
            && err.message.contains("does not have secrets set permission"),
        "{}",
        err.message
    );
    let err = wire_error(reader.delete_secret("shared", None).await);
    assert!(err
        .message
        .contains("does not have secrets delete permission"));

    // Identities without a policy entry may do everything.
    let writer = emu.secret_client("writer");
    set(&writer, "shared", "new").await;
    assert_eq!(
        get(&reader, "shared", None).await.unwrap().value.as_deref(),
        Some("new")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_client_secret_is_checked_and_the_endpoint_can_go_down() {
    let emu = Emulator::start(&["--seed", "s"]);
    let wrong = emu.secret_client_with(
        emu.client_secret_credential("some-app", "not-the-secret"),
        RetryOptions::none(),
    );
    let err = get(&wrong, "s", None)
        .await
        .expect_err("a wrong client secret must fail");
    let text = format!("{err:?}");
    assert!(
        text.contains("AADSTS7000215") || text.contains("invalid_client"),
        "{text}"
    );

    let client = emu.secret_client("resilient-app");
    get(&client, "s", None)
        .await
        .expect("token issued while up");
    emu.admin_post("/faults", serde_json::json!({"token_endpoint_down": true}))
        .await;
    assert!(
        get(&client, "s", None).await.is_ok(),
        "tokens already issued keep working while the token endpoint is down"
    );
    let fresh = emu.secret_client_with(
        emu.client_secret_credential("new-app", &emu.client_secret()),
        RetryOptions::none(),
    );
    assert!(
        get(&fresh, "s", None).await.is_err(),
        "no new tokens while down"
    );
    emu.admin_post("/faults", serde_json::json!({"token_endpoint_down": false}))
        .await;
    assert!(get(&fresh, "s", None).await.is_ok());
    let stats = emu.admin_get("/stats").await;
    assert_eq!(stats["tokens_issued"], 2);
}

/// The only test that touches IDENTITY_ENDPOINT / IDENTITY_HEADER: ManagedIdentityCredential
/// reads them from the process environment (the header on every token request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_identity_via_app_service_endpoint() {
    let emu = Emulator::start(&["--permissions", "app-reader=get"]);
    let endpoint = emu.var("IDENTITY_ENDPOINT").to_string();
    assert!(
        endpoint.starts_with("https://127.0.0.1:"),
        "never IMDS: {endpoint}"
    );
    std::env::set_var("IDENTITY_ENDPOINT", &endpoint);
    std::env::set_var("IDENTITY_HEADER", emu.var("IDENTITY_HEADER"));

    let system = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        client_options: emu.client_options(RetryOptions::none()),
        ..Default::default()
    }))
    .expect("App Service managed identity");
    let client = emu.secret_client_with(system, low_retries());
    let created = set(&client, "from-msi", "msi-value").await;
    assert_eq!(
        get(&client, "from-msi", Some(&version_of(&created)))
            .await
            .unwrap()
            .value
            .as_deref(),
        Some("msi-value")
    );

    // A user-assigned identity is named by client_id and subject to its policy.
    let user = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        user_assigned_id: Some(UserAssignedId::ClientId("app-reader".into())),
        client_options: emu.client_options(RetryOptions::none()),
    }))
    .expect("user-assigned managed identity");
    let reader = emu.secret_client_with(user, low_retries());
    assert!(get(&reader, "from-msi", None).await.is_ok());
    let err = wire_error(reader.set_secret("from-msi", params("x"), None).await);
    assert_eq!(err.status, 403);
    assert!(err.message.contains("appid=app-reader;"), "{}", err.message);

    // A wrong identity header is refused by the token endpoint.
    std::env::set_var("IDENTITY_HEADER", "wrong-header");
    let impostor = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        user_assigned_id: Some(UserAssignedId::ClientId("impostor".into())),
        client_options: emu.client_options(RetryOptions::none()),
    }))
    .unwrap();
    let impostor = emu.secret_client_with(impostor, RetryOptions::none());
    assert!(get(&impostor, "from-msi", None).await.is_err());

    std::env::remove_var("IDENTITY_ENDPOINT");
    std::env::remove_var("IDENTITY_HEADER");
    let stats = emu.admin_get("/stats").await;
    assert_eq!(stats["tokens_issued"], 2);
}

/// The SDKs' first request has no token and no body; it must only earn a challenge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_requests_get_the_challenge_and_change_nothing() {
    let emu = Emulator::start(&[]);
    let http = emu.http();
    let resp = http
        .put(format!(
            "{}/secrets/probe?api-version=2025-07-01",
            emu.url()
        ))
        .header("content-length", "0")
        .header("x-ms-client-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        challenge,
        format!(
            r#"Bearer authorization="{}/{}", resource="https://vault.azure.net""#,
            emu.url(),
            emu.tenant()
        )
    );
    assert_eq!(resp.headers()["x-ms-client-request-id"], "req-123");
    assert!(resp.headers().contains_key("x-ms-request-id"));
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}})
    );

    for bad in ["Bearer not-a-token", "Bearer a.b.c", "Basic dXNlcjpwYXNz"] {
        let resp = http
            .get(format!("{}/secrets?api-version=7.6", emu.url()))
            .header("authorization", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{bad}");
        assert!(resp.headers().contains_key("www-authenticate"));
    }

    // With a real token: unknown and missing api-versions are rejected.
    let token: serde_json::Value = serde_json::from_slice(
        &http
            .get(format!(
                "{}?api-version=2019-08-01&resource=https://vault.azure.net",
                emu.var("IDENTITY_ENDPOINT")
            ))
            .header("X-IDENTITY-HEADER", emu.var("IDENTITY_HEADER"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        token["expires_on"].is_string(),
        "App Service sends expires_on as a string"
    );
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    for (query, fragment) in [
        (
            "?api-version=1999-01-01",
            "The specified version (1999-01-01) is not recognized",
        ),
        ("", "api-version"),
    ] {
        let resp = http
            .get(format!("{}/secrets{query}", emu.url()))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400);
        let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "BadParameter");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(fragment),
            "{body}"
        );
    }
    let missing_header = http
        .get(format!(
            "{}?api-version=2019-08-01&resource=https://vault.azure.net",
            emu.var("IDENTITY_ENDPOINT")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(missing_header.status().as_u16(), 400);

    let stats = emu.admin_get("/stats").await;
    assert_eq!(
        stats["by_operation"].get("set"),
        None,
        "the probe PUT was never processed"
    );
    assert_eq!(stats["unauthenticated"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_dir_keeps_the_ca_and_persists_the_vault() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let emu = Emulator::start_in(&state, &["--persist"]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("ca-key.pem")), 0o600);
    assert_eq!(mode(&state.join("client-secret")), 0o600);
    let ca = std::fs::read(state.join("ca.pem")).unwrap();
    let env = emu.env.clone();
    assert_eq!(
        env["COMPOSE_SECRETS_CA_FILE"],
        state
            .canonicalize()
            .unwrap()
            .join("ca.pem")
            .to_str()
            .unwrap()
    );
    assert_eq!(env["REQUESTS_CA_BUNDLE"], env["COMPOSE_SECRETS_CA_FILE"]);
    assert_eq!(env["AZURE_AUTHORITY_HOST"], env["AZURE_KEYVAULT_URL"]);
    assert_eq!(
        env["KV_EMULATOR_ADMIN_URL"],
        format!("{}/_emulator", env["AZURE_KEYVAULT_URL"])
    );
    assert_eq!(
        env["IDENTITY_ENDPOINT"],
        format!("{}/msi/token", env["AZURE_KEYVAULT_URL"])
    );
    let client = emu.secret_client("persist-app");
    set(&client, "durable", "survives").await;
    let first_header = env["IDENTITY_HEADER"].clone();

    assert!(emu.terminate().success(), "SIGTERM exits cleanly");
    assert_eq!(mode(&state.join("vault.json")), 0o600);
    assert!(
        !state.join("emulator.env").exists(),
        "no stale emulator.env after exit"
    );

    let emu = Emulator::start_in(&state, &["--persist"]);
    assert_eq!(
        std::fs::read(state.join("ca.pem")).unwrap(),
        ca,
        "the CA is reused"
    );
    assert_ne!(
        emu.var("IDENTITY_HEADER"),
        first_header,
        "per-run identity header"
    );
    let client = emu.secret_client("persist-app");
    assert_eq!(
        get(&client, "durable", None)
            .await
            .unwrap()
            .value
            .as_deref(),
        Some("survives")
    );
    drop(emu);

    // Without --persist a restart starts empty.
    let emu = Emulator::start_in(&state, &[]);
    let client = emu.secret_client("persist-app");
    assert_eq!(wire_error(get(&client, "durable", None).await).status, 404);
}

#[test]
fn refuses_non_loopback_without_allow_remote() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kv-emulator"))
        .args(["--bind", "0.0.0.0", "--port", "0", "--state-dir"])
        .arg(dir.path().join("s"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote"));
}
