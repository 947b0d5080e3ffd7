//! Demo-mode [`SecretStore`] over the project's `.env` file: keys are `.env` keys, versions are fingerprints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::{AccessProbe, FetchedSecret, NewVersion, SecretStore, VersionInfo};
use crate::dotenv::DotEnv;
use crate::error::{Error, Result};
use crate::files::secret_dir::write_file_atomic;
use crate::secret::{FingerprintKey, SecretValue};

/// The demo store's env files, in Compose's merge order (`--env-file a --env-file b`, or
/// `COMPOSE_ENV_FILES`; usually just the project's `.env`). A key's value is the one the
/// last file defining it gives, as Compose reads it; a value is written back to that file,
/// and a key no file defines goes to the last one.
pub struct EnvFiles {
    files: Vec<(PathBuf, Option<DotEnv>)>,
}

impl EnvFiles {
    /// Read every file; a missing one counts as empty until something is written to it.
    pub fn read(paths: &[PathBuf]) -> Result<Self> {
        let files = paths
            .iter()
            .map(|p| Ok((p.clone(), DotEnv::read(p)?)))
            .collect::<Result<Vec<_>>>()?;
        if files.is_empty() {
            return Err(Error::Usage("no env file to keep demo values in".into()));
        }
        Ok(Self { files })
    }

    /// The file new keys go to (the last one).
    pub fn primary(&self) -> &Path {
        &self.files[self.files.len() - 1].0
    }

    /// Whether any of the files exists.
    pub fn any_exists(&self) -> bool {
        self.files.iter().any(|(_, env)| env.is_some())
    }

    /// Put `env` in place of the primary file's contents (a new `.env` made from a template).
    pub fn replace_primary(&mut self, env: DotEnv) {
        let last = self.files.len() - 1;
        self.files[last].1 = Some(env);
    }

    fn home(&self, key: &str) -> usize {
        self.files
            .iter()
            .rposition(|(_, env)| env.as_ref().is_some_and(|e| e.line_of(key).is_some()))
            .unwrap_or(self.files.len() - 1)
    }

    /// The value Compose would read for `key`.
    pub fn get(&self, key: &str) -> Option<&SecretValue> {
        self.files[self.home(key)].1.as_ref()?.get(key)
    }

    /// The file `key`'s value comes from (or would go to).
    pub fn file_of(&self, key: &str) -> &Path {
        &self.files[self.home(key)].0
    }

    /// Every key with a value, as Compose would read it.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .files
            .iter()
            .flat_map(|(_, env)| env.iter().flat_map(|e| e.keys().map(str::to_string)))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Set `key` in its file (in memory); returns that file's index for [`EnvFiles::write`].
    pub fn set(&mut self, key: &str, value: &SecretValue) -> Result<usize> {
        let home = self.home(key);
        let (path, env) = &mut self.files[home];
        if env.is_none() {
            *env = Some(DotEnv::parse(path, "")?);
        }
        if let Some(env) = env {
            env.set(key, value);
        }
        Ok(home)
    }

    /// Write file `index` atomically, 0600.
    pub fn write(&self, index: usize) -> Result<()> {
        let (path, env) = &self.files[index];
        match env {
            Some(env) => write_file_atomic(path, env.render().as_bytes(), 0o600),
            None => Ok(()),
        }
    }
}

/// `.env` has no history: a value's fingerprint stands in for its version id,
/// so "unchanged" and "rotated" read the same as with Key Vault.
pub struct DotenvStore {
    paths: Vec<PathBuf>,
    fingerprints: FingerprintKey,
    env: Mutex<EnvFiles>,
}

impl DotenvStore {
    /// Open the store over `paths` (merge order); a missing file behaves as an empty one until
    /// the first `set`.
    pub fn open(paths: &[PathBuf], fingerprints: &FingerprintKey) -> Result<Self> {
        Ok(Self {
            paths: paths.to_vec(),
            fingerprints: fingerprints.clone(),
            env: Mutex::new(EnvFiles::read(paths)?),
        })
    }

    fn info(&self, name: &str, value: &SecretValue) -> VersionInfo {
        VersionInfo {
            name: name.to_string(),
            version: Some(value.fingerprint(&self.fingerprints)),
            enabled: true,
            updated: None,
            expires: None,
            tags: BTreeMap::new(),
            content_type: None,
        }
    }
}

#[async_trait]
impl SecretStore for DotenvStore {
    fn describe(&self) -> String {
        self.paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" + ")
    }

    fn keeps_versions(&self) -> bool {
        false
    }

    async fn get_latest(&self, name: &str) -> Result<FetchedSecret> {
        let env = self.env.lock().await;
        match env.get(name) {
            Some(value) if !value.is_empty() => Ok(FetchedSecret {
                value: value.clone(),
                info: self.info(name, value),
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

    /// `.env` keeps no tags and no attributes: only the value is written.
    async fn set_version(
        &self,
        name: &str,
        value: &SecretValue,
        _version: &NewVersion,
    ) -> Result<VersionInfo> {
        let mut guard = self.env.lock().await;
        // Re-read so that edits made since we opened the files are kept.
        let mut env = EnvFiles::read(&self.paths)?;
        let home = env.set(name, value)?;
        env.write(home)?;
        *guard = env;
        Ok(self.info(name, value))
    }

    async fn reload(&self) -> Result<()> {
        let fresh = EnvFiles::read(&self.paths)?;
        *self.env.lock().await = fresh;
        Ok(())
    }

    async fn list_properties(&self) -> Result<Vec<VersionInfo>> {
        let env = self.env.lock().await;
        Ok(env
            .keys()
            .iter()
            .filter_map(|k| {
                env.get(k)
                    .filter(|v| !v.is_empty())
                    .map(|v| self.info(k, v))
            })
            .collect())
    }

    #[cfg(any(test, feature = "testing"))]
    async fn list_versions(&self, name: &str) -> Result<Vec<VersionInfo>> {
        Ok(self
            .get_latest(name)
            .await
            .map(|f| vec![f.info])
            .unwrap_or_default())
    }

    async fn probe_access(&self, _names: &[String]) -> AccessProbe {
        let exists = self.env.lock().await.any_exists();
        AccessProbe {
            reachable: exists,
            can_list: Some(exists),
            can_get: Some(exists),
            can_set: Some(exists),
            detail: if exists {
                format!("{} is readable", self.describe())
            } else {
                format!(
                    "{} does not exist; run `compose-secrets ensure`",
                    self.describe()
                )
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two env files in Compose's merge order: a key's home is the last file defining it,
    /// a new key goes to the last file, and a missing file counts as empty.
    #[test]
    fn a_keys_home_is_the_last_file_that_defines_it() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (dir.path().join("a.env"), dir.path().join("b.env"));
        let none = EnvFiles::read(&[first.clone(), second.clone()]).unwrap();
        assert!(!none.any_exists());
        assert_eq!(none.primary(), second);

        std::fs::write(&first, "A=1\nB=1\n").unwrap();
        let mut files = EnvFiles::read(&[first.clone(), second.clone()]).unwrap();
        assert!(files.any_exists());
        assert_eq!(files.primary(), second, "the last file, existing or not");
        assert_eq!(files.file_of("A"), first, "only the first defines A");
        assert_eq!(files.get("A").unwrap().expose(), "1");
        assert_eq!(files.file_of("NEW"), second);

        std::fs::write(&second, "B=2\n").unwrap();
        let mut files2 = EnvFiles::read(&[first.clone(), second.clone()]).unwrap();
        assert_eq!(files2.file_of("B"), second, "the later file wins");
        assert_eq!(files2.get("B").unwrap().expose(), "2");
        assert_eq!(files2.keys(), ["A", "B"]);
        let home = files2.set("A", &SecretValue::new("x".into())).unwrap();
        files2.write(home).unwrap();
        assert_eq!(std::fs::read_to_string(&first).unwrap(), "A=x\nB=1\n");

        // A template's contents become the last file's.
        files.replace_primary(DotEnv::parse(&second, "T=t\n").unwrap());
        assert_eq!(files.file_of("T"), second);
        assert_eq!(files.get("T").unwrap().expose(), "t");
        assert_eq!(
            files.get("A").unwrap().expose(),
            "1",
            "the first file is kept"
        );
    }

    /// The demo store over two files: values as Compose reads them, fingerprints for
    /// versions, an empty value is a missing secret, writes go to the key's own file.
    #[tokio::test]
    async fn the_store_reads_and_writes_through_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (dir.path().join("a.env"), dir.path().join("b.env"));
        std::fs::write(&first, "A=one\nEMPTY=\n").unwrap();
        let paths = [first.clone(), second.clone()];
        let key = FingerprintKey::random();
        let store = DotenvStore::open(&paths, &key).unwrap();
        let names = format!("{} + {}", first.display(), second.display());
        assert_eq!(store.describe(), names);

        let a = store.get_latest("A").await.unwrap();
        assert_eq!(a.value.expose(), "one");
        assert_eq!(a.info.name, "A");
        assert_eq!(a.info.version, Some(a.value.fingerprint(&key)));
        assert!(a.info.enabled);
        let version = a.info.version.clone().unwrap();
        assert!(store.get_version("A", &version).await.is_ok());
        assert!(matches!(
            store.get_version("A", "other").await,
            Err(Error::SecretNotFound { .. })
        ));
        for missing in ["EMPTY", "NONE"] {
            assert!(matches!(
                store.get_latest(missing).await,
                Err(Error::MissingSecrets { .. })
            ));
            assert!(store.list_versions(missing).await.unwrap().is_empty());
        }
        let listed: Vec<String> = store
            .list_properties()
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(listed, ["A"], "an empty value is not listed");

        let info = store
            .set_version("NEW", &SecretValue::new("n".into()), &NewVersion::default())
            .await
            .unwrap();
        assert_eq!(
            info.version,
            Some(SecretValue::new("n".into()).fingerprint(&key))
        );
        assert_eq!(std::fs::read_to_string(&second).unwrap(), "NEW=n\n");
        store
            .set_version("A", &SecretValue::new("two".into()), &NewVersion::default())
            .await
            .unwrap();
        assert_eq!(std::fs::read_to_string(&first).unwrap(), "A=two\nEMPTY=\n");
        assert!(store.probe_access(&[]).await.reachable);
        assert_eq!(store.list_versions("A").await.unwrap().len(), 1);

        // An edit made behind the store's back is seen after `reload`, not before.
        std::fs::write(&first, "A=edited\n").unwrap();
        assert_eq!(store.get_latest("A").await.unwrap().value.expose(), "two");
        store.reload().await.unwrap();
        assert_eq!(
            store.get_latest("A").await.unwrap().value.expose(),
            "edited"
        );

        let nothing = DotenvStore::open(&[dir.path().join("missing.env")], &key).unwrap();
        let probe = nothing.probe_access(&[]).await;
        assert!(!probe.reachable);
        assert!(
            probe.detail.contains("compose-secrets ensure"),
            "{}",
            probe.detail
        );
    }
}
