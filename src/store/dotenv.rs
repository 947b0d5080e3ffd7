//! Demo-mode [`SecretStore`] over the project's `.env` file: keys are `.env` keys, versions are fingerprints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::{AccessProbe, FetchedSecret, SecretStore, VersionInfo};
use crate::dotenv::DotEnv;
use crate::error::{Error, Result};
use crate::files::secret_dir::write_file_atomic;
use crate::secret::SecretValue;

/// `.env` has no history: a value's fingerprint stands in for its version id,
/// so "unchanged" and "rotated" read the same as with Key Vault.
pub struct DotenvStore {
    path: PathBuf,
    env: Mutex<Option<DotEnv>>,
}

impl DotenvStore {
    /// Open the store; a missing file behaves as an empty one until the first `set`.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            path: path.to_path_buf(),
            env: Mutex::new(DotEnv::read(path)?),
        })
    }

    fn info(name: &str, value: &SecretValue) -> VersionInfo {
        VersionInfo {
            name: name.to_string(),
            version: Some(value.fingerprint()),
            enabled: true,
            updated: None,
            tags: BTreeMap::new(),
        }
    }
}

#[async_trait]
impl SecretStore for DotenvStore {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn keeps_versions(&self) -> bool {
        false
    }

    async fn get_latest(&self, name: &str) -> Result<FetchedSecret> {
        let env = self.env.lock().await;
        match env.as_ref().and_then(|e| e.get(name)) {
            Some(value) if !value.is_empty() => Ok(FetchedSecret {
                value: value.clone(),
                info: Self::info(name, value),
            }),
            _ => Err(Error::MissingSecrets {
                names: vec![name.to_string()],
                origin: self.describe(),
            }),
        }
    }

    async fn get_version(&self, name: &str, version: &str) -> Result<FetchedSecret> {
        let latest = self.get_latest(name).await?;
        if latest.info.version.as_deref() == Some(version) {
            Ok(latest)
        } else {
            Err(Error::SecretNotFound {
                name: name.to_string(),
                version: Some(version.to_string()),
            })
        }
    }

    async fn set(
        &self,
        name: &str,
        value: &SecretValue,
        _tags: &BTreeMap<String, String>,
    ) -> Result<VersionInfo> {
        let mut guard = self.env.lock().await;
        // Re-read so that edits made since we opened the file are kept.
        let mut env = match DotEnv::read(&self.path)? {
            Some(env) => env,
            None => DotEnv::parse(&self.path, "")?,
        };
        env.set(name, value);
        write_file_atomic(&self.path, env.render().as_bytes(), 0o600)?;
        *guard = Some(env);
        Ok(Self::info(name, value))
    }

    async fn list_properties(&self) -> Result<Vec<VersionInfo>> {
        let env = self.env.lock().await;
        Ok(env
            .as_ref()
            .map(|e| {
                e.keys()
                    .filter_map(|k| e.get(k).filter(|v| !v.is_empty()).map(|v| Self::info(k, v)))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn list_versions(&self, name: &str) -> Result<Vec<VersionInfo>> {
        Ok(self
            .get_latest(name)
            .await
            .map(|f| vec![f.info])
            .unwrap_or_default())
    }

    async fn probe_access(&self, _names: &[String]) -> AccessProbe {
        let exists = self.env.lock().await.is_some();
        AccessProbe {
            reachable: exists,
            can_list: Some(exists),
            can_get: Some(exists),
            can_set: Some(exists),
            detail: if exists {
                format!("{} is readable", self.path.display())
            } else {
                format!(
                    "{} does not exist; run `compose-secrets ensure`",
                    self.path.display()
                )
            },
        }
    }
}
