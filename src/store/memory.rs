//! In-memory [`SecretStore`] twin for unit tests: versions, tags, and injected failures.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{AccessProbe, FetchedSecret, NewVersion, SecretStore, VersionInfo};
use crate::error::{Error, Result};
use crate::secret::SecretValue;

#[derive(Default)]
struct Inner {
    /// name -> versions, oldest first.
    secrets: HashMap<String, Vec<(VersionInfo, SecretValue)>>,
    counter: u64,
    fail_set: bool,
    gets: usize,
}

impl Inner {
    /// Count one more write, unless writes are made to fail.
    fn next_write(&mut self, name: &str) -> Result<()> {
        if self.fail_set {
            return Err(Error::VaultForbidden {
                name: Some(name.into()),
                permission: "set",
                message: "injected failure".into(),
            });
        }
        self.counter += 1;
        Ok(())
    }

    fn version_mut(
        &mut self,
        name: &str,
        version: &str,
    ) -> Result<&mut (VersionInfo, SecretValue)> {
        self.secrets
            .get_mut(name)
            .and_then(|v| {
                v.iter_mut()
                    .find(|(i, _)| i.version.as_deref() == Some(version))
            })
            .ok_or_else(|| Error::SecretNotFound {
                name: name.into(),
                version: Some(version.into()),
            })
    }
}

/// Versioned store held in memory.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make every later `set` fail, to test what happens after a refused push.
    pub fn fail_sets(&self, fail: bool) {
        self.lock().fail_set = fail;
    }

    /// How many `get_*` calls were served.
    pub fn get_count(&self) -> usize {
        self.lock().gets
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl SecretStore for MemoryStore {
    fn describe(&self) -> String {
        "memory".into()
    }

    fn keeps_versions(&self) -> bool {
        true
    }

    async fn get_latest(&self, name: &str) -> Result<FetchedSecret> {
        let mut inner = self.lock();
        inner.gets += 1;
        let (info, value) = inner
            .secrets
            .get(name)
            .and_then(|v| v.last())
            .ok_or_else(|| Error::SecretNotFound {
                name: name.into(),
                version: None,
            })?;
        if !info.enabled {
            return Err(Error::SecretDisabled { name: name.into() });
        }
        Ok(FetchedSecret {
            value: value.clone(),
            info: info.clone(),
        })
    }

    async fn get_version(&self, name: &str, version: &str) -> Result<FetchedSecret> {
        let mut inner = self.lock();
        inner.gets += 1;
        let (info, value) = inner.version_mut(name, version)?;
        Ok(FetchedSecret {
            value: value.clone(),
            info: info.clone(),
        })
    }

    async fn set_version(
        &self,
        name: &str,
        value: &SecretValue,
        version: &NewVersion,
    ) -> Result<VersionInfo> {
        let mut inner = self.lock();
        inner.next_write(name)?;
        let info = VersionInfo {
            name: name.into(),
            version: Some(format!("{:032x}", inner.counter)),
            enabled: true,
            updated: Some(i64::try_from(inner.counter).unwrap_or(i64::MAX)),
            expires: version.expires,
            tags: version.tags.clone(),
            content_type: None,
        };
        inner
            .secrets
            .entry(name.into())
            .or_default()
            .push((info.clone(), value.clone()));
        Ok(info)
    }

    async fn set_tags(
        &self,
        name: &str,
        version: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<VersionInfo> {
        let mut inner = self.lock();
        inner.next_write(name)?;
        let updated = i64::try_from(inner.counter).unwrap_or(i64::MAX);
        let (info, _) = inner.version_mut(name, version)?;
        info.tags = tags.clone();
        info.updated = Some(updated);
        Ok(info.clone())
    }

    async fn list_properties(&self) -> Result<Vec<VersionInfo>> {
        let inner = self.lock();
        let mut out: Vec<VersionInfo> = inner
            .secrets
            .values()
            .filter_map(|v| v.last().map(|(i, _)| i.clone()))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    #[cfg(any(test, feature = "testing"))]
    async fn list_versions(&self, name: &str) -> Result<Vec<VersionInfo>> {
        let inner = self.lock();
        Ok(inner
            .secrets
            .get(name)
            .map(|v| v.iter().map(|(i, _)| i.clone()).collect())
            .unwrap_or_default())
    }

    async fn probe_access(&self, _names: &[String]) -> AccessProbe {
        AccessProbe {
            reachable: true,
            can_list: Some(true),
            can_get: Some(true),
            can_set: Some(!self.lock().fail_set),
            detail: "memory store".into(),
        }
    }
}
