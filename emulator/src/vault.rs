//! The vault's data model: secrets, their versions, soft delete, paging and backup blobs.
//!
//! Everything here is synchronous and in memory; callers hold the vault lock only for
//! the duration of one call, never across an await.

use std::collections::BTreeMap;

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

/// Key Vault's documented value limit ("maximum size of 25k bytes").
pub const MAX_VALUE_BYTES: usize = 25 * 1024;
pub const MAX_NAME_CHARS: usize = 127;
pub const RECOVERABLE_DAYS: i64 = 90;
pub const MAX_PAGE: usize = 25;
const BACKUP_MAGIC: &[u8] = b"KvEmulatorSecretBackupV1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Version {
    pub version: String,
    pub value: String,
    pub content_type: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub enabled: bool,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub created: i64,
    pub updated: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Secret {
    /// The name as first written; lookups are case-insensitive but ids keep this case.
    pub name: String,
    /// Oldest first; the last entry is the "latest" version.
    pub versions: Vec<Version>,
}

impl Secret {
    pub fn latest(&self) -> &Version {
        // A Secret is only ever created with one version and versions are never removed.
        self.versions
            .last()
            .expect("secret has at least one version")
    }

    fn find(&self, version: &str) -> Option<usize> {
        self.versions
            .iter()
            .position(|v| v.version.eq_ignore_ascii_case(version))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Deleted {
    pub secret: Secret,
    pub deleted_date: i64,
    pub scheduled_purge_date: i64,
}

/// Writable attributes of a set or update request.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct AttributesIn {
    pub enabled: Option<bool>,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetParams {
    pub value: Option<String>,
    pub content_type: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub attributes: Option<AttributesIn>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateParams {
    pub content_type: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub attributes: Option<AttributesIn>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultError {
    InvalidName(String),
    BadParameter(String),
    NotFound {
        name: String,
        version: Option<String>,
    },
    DeletedNotFound(String),
    DeletedButRecoverable(String),
    AlreadyExists(String),
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Vault {
    /// Keyed by the lowercase name, which also gives a stable, case-insensitive list order.
    secrets: BTreeMap<String, Secret>,
    deleted: BTreeMap<String, Deleted>,
}

pub struct Page<T> {
    pub items: Vec<T>,
    pub skiptoken: Option<String>,
}

pub fn validate_name(name: &str) -> Result<(), VaultError> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(VaultError::InvalidName(name.to_string()))
    }
}

fn new_version_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Skip tokens are opaque to clients; they carry the last key (or index) already returned,
/// so pages stay consistent while other requests add secrets concurrently.
pub fn encode_skiptoken(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(position.as_bytes())
}

pub fn decode_skiptoken(token: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).ok()?;
    String::from_utf8(bytes).ok()
}

fn page_after<'a, T: 'a>(
    iter: impl Iterator<Item = (&'a String, &'a T)>,
    after: Option<&str>,
    max: usize,
) -> Page<&'a T> {
    let mut items = Vec::new();
    let mut last_key = None;
    let mut more = false;
    for (key, item) in iter.filter(|(k, _)| after.is_none_or(|a| k.as_str() > a)) {
        if items.len() == max {
            more = true;
            break;
        }
        items.push(item);
        last_key = Some(key);
    }
    Page {
        items,
        skiptoken: if more {
            last_key.map(|k| encode_skiptoken(k))
        } else {
            None
        },
    }
}

impl Vault {
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.secrets.contains_key(&name.to_ascii_lowercase())
    }

    pub fn set(&mut self, name: &str, params: SetParams, now: i64) -> Result<&Secret, VaultError> {
        validate_name(name)?;
        let key = name.to_ascii_lowercase();
        if self.deleted.contains_key(&key) {
            return Err(VaultError::DeletedButRecoverable(name.to_string()));
        }
        let value = params
            .value
            .ok_or_else(|| VaultError::BadParameter("Property value is required.".into()))?;
        check_value(&value)?;
        if let Some(ct) = &params.content_type {
            check_content_type(ct)?;
        }
        check_tags(params.tags.as_ref())?;
        let attrs = params.attributes.unwrap_or_default();
        let version = Version {
            version: new_version_id(),
            value,
            content_type: params.content_type,
            tags: params.tags,
            enabled: attrs.enabled.unwrap_or(true),
            nbf: attrs.nbf,
            exp: attrs.exp,
            created: now,
            updated: now,
        };
        let secret = self.secrets.entry(key).or_insert_with(|| Secret {
            name: name.to_string(),
            versions: Vec::new(),
        });
        secret.versions.push(version);
        Ok(secret)
    }

    fn secret(&self, name: &str) -> Result<&Secret, VaultError> {
        validate_name(name)?;
        self.secrets
            .get(&name.to_ascii_lowercase())
            .ok_or_else(|| VaultError::NotFound {
                name: name.to_string(),
                version: None,
            })
    }

    /// `version` None (or empty) means latest.
    pub fn get(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<(&Secret, &Version), VaultError> {
        let secret = self.secret(name)?;
        match version.filter(|v| !v.is_empty()) {
            None => Ok((secret, secret.latest())),
            Some(v) => secret
                .find(v)
                .map(|i| (secret, &secret.versions[i]))
                .ok_or_else(|| VaultError::NotFound {
                    name: name.to_string(),
                    version: Some(v.to_string()),
                }),
        }
    }

    pub fn update(
        &mut self,
        name: &str,
        version: Option<&str>,
        params: UpdateParams,
        now: i64,
    ) -> Result<(&Secret, &Version), VaultError> {
        validate_name(name)?;
        if let Some(ct) = &params.content_type {
            check_content_type(ct)?;
        }
        check_tags(params.tags.as_ref())?;
        let not_found = |v: Option<&str>| VaultError::NotFound {
            name: name.to_string(),
            version: v.map(str::to_string),
        };
        let secret = self
            .secrets
            .get_mut(&name.to_ascii_lowercase())
            .ok_or_else(|| not_found(None))?;
        let index = match version.filter(|v| !v.is_empty()) {
            None => secret.versions.len() - 1,
            Some(v) => secret.find(v).ok_or_else(|| not_found(Some(v)))?,
        };
        let target = &mut secret.versions[index];
        if let Some(ct) = params.content_type {
            target.content_type = Some(ct);
        }
        if let Some(tags) = params.tags {
            target.tags = Some(tags);
        }
        if let Some(attrs) = params.attributes {
            if let Some(enabled) = attrs.enabled {
                target.enabled = enabled;
            }
            if attrs.nbf.is_some() {
                target.nbf = attrs.nbf;
            }
            if attrs.exp.is_some() {
                target.exp = attrs.exp;
            }
        }
        target.updated = now;
        let secret = &self.secrets[&name.to_ascii_lowercase()];
        Ok((secret, &secret.versions[index]))
    }

    pub fn delete(&mut self, name: &str, now: i64) -> Result<&Deleted, VaultError> {
        self.secret(name)?;
        let key = name.to_ascii_lowercase();
        let secret = self.secrets.remove(&key).expect("checked above");
        let deleted = Deleted {
            secret,
            deleted_date: now,
            scheduled_purge_date: now + RECOVERABLE_DAYS * 86_400,
        };
        Ok(self.deleted.entry(key).or_insert(deleted))
    }

    pub fn get_deleted(&self, name: &str) -> Result<&Deleted, VaultError> {
        validate_name(name)?;
        self.deleted
            .get(&name.to_ascii_lowercase())
            .ok_or_else(|| VaultError::DeletedNotFound(name.to_string()))
    }

    pub fn recover(&mut self, name: &str) -> Result<&Secret, VaultError> {
        self.get_deleted(name)?;
        let key = name.to_ascii_lowercase();
        let deleted = self.deleted.remove(&key).expect("checked above");
        Ok(self.secrets.entry(key).or_insert(deleted.secret))
    }

    pub fn purge(&mut self, name: &str) -> Result<(), VaultError> {
        self.get_deleted(name)?;
        self.deleted.remove(&name.to_ascii_lowercase());
        Ok(())
    }

    pub fn list(&self, skiptoken: Option<&str>, max: usize) -> Page<&Secret> {
        let after = skiptoken.and_then(decode_skiptoken);
        page_after(self.secrets.iter(), after.as_deref(), max)
    }

    pub fn list_deleted(&self, skiptoken: Option<&str>, max: usize) -> Page<&Deleted> {
        let after = skiptoken.and_then(decode_skiptoken);
        page_after(self.deleted.iter(), after.as_deref(), max)
    }

    /// Versions of a secret that does not exist are an empty list, as in the real service.
    pub fn list_versions(
        &self,
        name: &str,
        skiptoken: Option<&str>,
        max: usize,
    ) -> Result<(Option<&Secret>, Page<&Version>), VaultError> {
        validate_name(name)?;
        let Some(secret) = self.secrets.get(&name.to_ascii_lowercase()) else {
            return Ok((
                None,
                Page {
                    items: Vec::new(),
                    skiptoken: None,
                },
            ));
        };
        let start = skiptoken
            .and_then(decode_skiptoken)
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(0)
            .min(secret.versions.len());
        let end = (start + max).min(secret.versions.len());
        let page = Page {
            items: secret.versions[start..end].iter().collect(),
            skiptoken: (end < secret.versions.len()).then(|| encode_skiptoken(&end.to_string())),
        };
        Ok((Some(secret), page))
    }

    pub fn backup(&self, name: &str) -> Result<String, VaultError> {
        let secret = self.secret(name)?;
        let mut blob = BACKUP_MAGIC.to_vec();
        blob.extend(serde_json::to_vec(secret).expect("secret serializes"));
        // Padded base64url: the Rust SDK decodes this field with a canonical-padding decoder.
        Ok(URL_SAFE.encode(blob))
    }

    pub fn restore(&mut self, blob: &str) -> Result<&Secret, VaultError> {
        let bad = || VaultError::BadParameter("Backup blob is corrupt.".into());
        let raw = URL_SAFE_NO_PAD
            .decode(blob.trim_end_matches('='))
            .map_err(|_| bad())?;
        let json = raw.strip_prefix(BACKUP_MAGIC).ok_or_else(bad)?;
        let secret: Secret = serde_json::from_slice(json).map_err(|_| bad())?;
        validate_name(&secret.name)?;
        if secret.versions.is_empty() {
            return Err(bad());
        }
        let key = secret.name.to_ascii_lowercase();
        if self.deleted.contains_key(&key) {
            return Err(VaultError::DeletedButRecoverable(secret.name));
        }
        if self.secrets.contains_key(&key) {
            return Err(VaultError::AlreadyExists(secret.name));
        }
        Ok(self.secrets.entry(key).or_insert(secret))
    }
}

fn check_value(value: &str) -> Result<(), VaultError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(VaultError::BadParameter(format!(
            "Secret value is too large: {} bytes. The maximum allowed size is {MAX_VALUE_BYTES} bytes.",
            value.len()
        )));
    }
    Ok(())
}

fn check_content_type(ct: &str) -> Result<(), VaultError> {
    if ct.chars().count() > 255 {
        return Err(VaultError::BadParameter(
            "Content type exceeds the maximum length of 255 characters.".into(),
        ));
    }
    Ok(())
}

fn check_tags(tags: Option<&BTreeMap<String, String>>) -> Result<(), VaultError> {
    let Some(tags) = tags else { return Ok(()) };
    if tags.len() > 15 {
        return Err(VaultError::BadParameter(
            "The number of tags exceeds the maximum of 15.".into(),
        ));
    }
    if tags
        .iter()
        .any(|(k, v)| k.chars().count() > 512 || v.chars().count() > 512)
    {
        return Err(VaultError::BadParameter(
            "Tag names and values are limited to 512 characters.".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(vault: &mut Vault, name: &str, value: &str) -> String {
        let params = SetParams {
            value: Some(value.into()),
            ..Default::default()
        };
        vault.set(name, params, 1).unwrap().latest().version.clone()
    }

    #[test]
    fn names_follow_the_service_pattern() {
        assert!(validate_name("a").is_ok());
        assert!(validate_name("Db-Password-1").is_ok());
        assert!(validate_name("-leading-dash").is_ok());
        assert!(validate_name(&"x".repeat(127)).is_ok());
        for bad in [
            "",
            "under_score",
            "dot.name",
            "space name",
            "ünï",
            &"x".repeat(128),
        ] {
            assert_eq!(
                validate_name(bad),
                Err(VaultError::InvalidName(bad.to_string())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn versions_are_32_lowercase_hex_and_lookup_ignores_case() {
        let mut vault = Vault::default();
        let v1 = set(&mut vault, "Mixed-Case", "one");
        assert_eq!(v1.len(), 32);
        assert!(v1
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
        let v2 = set(&mut vault, "mixed-case", "two");
        assert_ne!(v1, v2);
        let (secret, latest) = vault.get("MIXED-CASE", None).unwrap();
        assert_eq!(secret.name, "Mixed-Case");
        assert_eq!(latest.value, "two");
        let (_, old) = vault.get("mixed-case", Some(&v1.to_uppercase())).unwrap();
        assert_eq!(old.value, "one");
    }

    #[test]
    fn value_limit_is_25_kib() {
        let mut vault = Vault::default();
        set(&mut vault, "ok", &"a".repeat(MAX_VALUE_BYTES));
        let params = SetParams {
            value: Some("a".repeat(MAX_VALUE_BYTES + 1)),
            ..Default::default()
        };
        assert!(matches!(
            vault.set("big", params, 1),
            Err(VaultError::BadParameter(_))
        ));
    }

    #[test]
    fn skiptokens_round_trip_and_pages_cover_everything_once() {
        assert_eq!(
            decode_skiptoken(&encode_skiptoken("bench-0007")).as_deref(),
            Some("bench-0007")
        );
        assert_eq!(decode_skiptoken("%%%"), None);
        let mut vault = Vault::default();
        for i in 0..7 {
            set(&mut vault, &format!("s{i}"), "v");
        }
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = vault.list(token.as_deref(), 3);
            pages += 1;
            seen.extend(page.items.iter().map(|s| s.name.clone()));
            match page.skiptoken {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, (0..7).map(|i| format!("s{i}")).collect::<Vec<_>>());
    }

    #[test]
    fn version_pages_use_offsets() {
        let mut vault = Vault::default();
        for i in 0..5 {
            set(&mut vault, "multi", &i.to_string());
        }
        let (_, first) = vault.list_versions("multi", None, 2).unwrap();
        assert_eq!(first.items.len(), 2);
        let (_, last) = vault
            .list_versions("multi", first.skiptoken.as_deref(), 10)
            .unwrap();
        assert_eq!(last.items.len(), 3);
        assert!(last.skiptoken.is_none());
        assert_eq!(last.items[2].value, "4");
    }

    #[test]
    fn soft_delete_blocks_the_name_until_recovered_or_purged() {
        let mut vault = Vault::default();
        set(&mut vault, "gone", "v");
        let deleted = vault.delete("gone", 100).unwrap();
        assert_eq!(deleted.scheduled_purge_date, 100 + 90 * 86_400);
        assert!(matches!(
            vault.get("gone", None),
            Err(VaultError::NotFound { .. })
        ));
        let params = SetParams {
            value: Some("again".into()),
            ..Default::default()
        };
        assert_eq!(
            vault.set("GONE", params.clone(), 2).unwrap_err(),
            VaultError::DeletedButRecoverable("GONE".into())
        );
        vault.recover("gone").unwrap();
        assert_eq!(vault.get("gone", None).unwrap().1.value, "v");
        vault.delete("gone", 3).unwrap();
        vault.purge("gone").unwrap();
        assert_eq!(
            vault.get_deleted("gone").unwrap_err(),
            VaultError::DeletedNotFound("gone".into())
        );
        vault.set("gone", params, 4).unwrap();
    }

    #[test]
    fn backup_restores_all_versions() {
        let mut vault = Vault::default();
        set(&mut vault, "b", "1");
        set(&mut vault, "b", "2");
        let blob = vault.backup("b").unwrap();
        assert_eq!(
            vault.restore(&blob).unwrap_err(),
            VaultError::AlreadyExists("b".into())
        );
        vault.delete("b", 1).unwrap();
        vault.purge("b").unwrap();
        assert_eq!(vault.restore(&blob).unwrap().versions.len(), 2);
        assert!(matches!(
            vault.restore("garbage"),
            Err(VaultError::BadParameter(_))
        ));
    }
}
