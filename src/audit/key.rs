//! The key that signs the audit chain: the `audit-log-signing-key` secret, else a per-install key.

use std::fs::OpenOptions;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use hmac::{Hmac, Mac as _};
use serde::Serialize;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::SIGNING_KEY_SECRET;
use crate::compose::{Project, SecretSpec};
use crate::error::{Error, Result};
use crate::files::layout::{Layout, OpenDirs};
use crate::secret::SecretValue;
use crate::store::SecretStore;

pub(super) type HmacSha256 = Hmac<Sha256>;

/// File name of the per-install fallback key, inside the runtime directory.
pub const LOCAL_KEY_FILE: &str = "audit.key";

/// Which key signs the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KeySource {
    #[serde(rename = "audit-log-signing-key")]
    SigningKeySecret,
    #[serde(rename = "local")]
    Local,
}

/// An HMAC key for the chain; its bytes are wiped on drop.
#[derive(Clone)]
pub struct AuditKey {
    source: KeySource,
    bytes: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey({:?}, id {})", self.source, self.id())
    }
}

impl AuditKey {
    /// A key from the `audit-log-signing-key` secret's value.
    pub fn from_signing_secret(value: &SecretValue) -> AuditKey {
        AuditKey {
            source: KeySource::SigningKeySecret,
            bytes: Zeroizing::new(value.expose().as_bytes().to_vec()),
        }
    }

    /// The per-install key in `<runtime_dir>/audit.key`, created (0600, 32 random bytes) on first use.
    pub fn local(runtime_dir: &Path) -> Result<AuditKey> {
        let path = runtime_dir.join(LOCAL_KEY_FILE);
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&path);
        match created {
            Ok(mut file) => {
                let mut raw = Zeroizing::new([0u8; 32]);
                rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut *raw).map_err(
                    |e| Error::Io {
                        path: path.clone(),
                        action: "read OS randomness",
                        source: std::io::Error::other(e.to_string()),
                    },
                )?;
                let encoded = Zeroizing::new(hex::encode(*raw));
                file.write_all(encoded.as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(Error::io(&path, "write audit key"))?;
                Ok(AuditKey {
                    source: KeySource::Local,
                    bytes: Zeroizing::new(encoded.as_bytes().to_vec()),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::read_local(&path),
            Err(e) => Err(Error::io(&path, "create audit key")(e)),
        }
    }

    /// The per-install key if it exists (for verifying without creating one).
    pub fn existing_local(runtime_dir: &Path) -> Result<Option<AuditKey>> {
        let path = runtime_dir.join(LOCAL_KEY_FILE);
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        Self::read_local(&path).map(Some)
    }

    fn read_local(path: &Path) -> Result<AuditKey> {
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(nix::libc::ELOOP) => Error::UnsafePath {
                    path: path.to_path_buf(),
                    message: "the audit key is a symlink; remove it".into(),
                },
                _ => Error::io(path, "read audit key")(e),
            })?;
        let mut bytes = Zeroizing::new(Vec::new());
        std::io::Read::by_ref(&mut file)
            .take(4096)
            .read_to_end(&mut bytes)
            .map_err(Error::io(path, "read audit key"))?;
        while bytes.last().is_some_and(u8::is_ascii_whitespace) {
            bytes.pop();
        }
        if bytes.is_empty() {
            return Err(Error::config(path, "the audit key file is empty"));
        }
        Ok(AuditKey {
            source: KeySource::Local,
            bytes,
        })
    }

    /// The signing secret's value when available, else the per-install key.
    pub fn resolve(runtime_dir: &Path, signing_value: Option<&SecretValue>) -> Result<AuditKey> {
        match signing_value.filter(|v| !v.is_empty()) {
            Some(v) => Ok(Self::from_signing_secret(v)),
            None => Self::local(runtime_dir),
        }
    }

    pub fn source(&self) -> KeySource {
        self.source
    }

    /// A one-way id of the key (HMAC of a constant, 8 bytes hex): tells keys apart, reveals nothing.
    pub fn id(&self) -> String {
        let mut mac = self.hmac();
        mac.update(b"compose-secrets audit key id");
        hex::encode(&mac.finalize().into_bytes()[..8])
    }

    pub(super) fn hmac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; this cannot fail.
        <HmacSha256 as hmac::Mac>::new_from_slice(&self.bytes)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
    }

    pub(super) fn mac(&self, prev: &str, body: &str) -> String {
        let mut mac = self.hmac();
        mac.update(prev.as_bytes());
        mac.update(body.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The chain key for this project: the `audit-log-signing-key` secret's value when the manifest
/// declares it and the value is at hand (its file under the secrets directory, else the store),
/// else the per-install key.
pub async fn project_key(
    runtime_dir: &Path,
    project: Option<(&Project, &Layout)>,
    store: Option<&dyn SecretStore>,
) -> Result<AuditKey> {
    let value = match project {
        Some((project, layout)) => match project.lookup(SIGNING_KEY_SECRET) {
            Some(spec) => signing_value(layout, spec, store).await,
            None => None,
        },
        None => None,
    };
    AuditKey::resolve(runtime_dir, value.as_ref())
}

/// The signing key's value: its file when loaded, else the store.
async fn signing_value(
    layout: &Layout,
    spec: &SecretSpec,
    store: Option<&dyn SecretStore>,
) -> Option<SecretValue> {
    let from_file = layout
        .of(&spec.name)
        .and_then(|placement| {
            let dirs = OpenDirs::open(layout, false).ok()?;
            let state = dirs.read(placement).ok()??;
            SecretValue::from_bytes(state.contents.to_vec()).ok()
        })
        .filter(|v| !v.is_empty());
    if from_file.is_some() {
        return from_file;
    }
    let store = store?;
    store
        .get_latest(&store.key_for(spec))
        .await
        .ok()
        .map(|f| f.value)
        .filter(|v| !v.is_empty())
}
