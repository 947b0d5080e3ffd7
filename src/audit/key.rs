//! The keys: the one that signs the audit chain (the `audit-log-signing-key` secret, else a
//! per-install key in `.runtime/audit.key`), and the per-install key's second use, keying the
//! fingerprints that identify values in the state file, the audit log and `verify`.
//!
//! When the signing key changes (a rotation of `audit-log-signing-key`, or a load that brings
//! a new one), the old key is written into the log wrapped under the new one (see
//! [`AuditKey::wrap`]), so whoever holds the current key can verify every earlier line.

use hmac::{Hmac, Mac as _};
use serde::Serialize;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::SIGNING_KEY_SECRET;
use crate::compose::{Project, SecretSpec};
use crate::error::{Error, Result};
use crate::files::layout::{Layout, OpenDirs};
use crate::files::runtime_dir::{RuntimeDir, AUDIT_KEY};
use crate::secret::{FingerprintKey, SecretValue};
use crate::store::SecretStore;

pub(super) type HmacSha256 = Hmac<Sha256>;

/// The per-install key is 32 random bytes, hex-encoded.
const LOCAL_KEY_BYTES: usize = 32;
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Which key signs the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
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

    /// The per-install key in `.runtime/audit.key`; with `create`, made (32 random bytes, written
    /// 0600 with the run's first durable write) when missing. `Ok(None)` when it is missing and
    /// `create` is not set.
    pub fn local(runtime: &RuntimeDir, create: bool) -> Result<Option<AuditKey>> {
        if let Some(bytes) = runtime.read(AUDIT_KEY, MAX_KEY_FILE_BYTES)? {
            let mut bytes = bytes;
            while bytes.last().is_some_and(u8::is_ascii_whitespace) {
                bytes.pop();
            }
            if bytes.is_empty() {
                return Err(Error::config(
                    runtime.file(AUDIT_KEY),
                    "the audit key file is empty",
                ));
            }
            return Ok(Some(AuditKey {
                source: KeySource::Local,
                bytes,
            }));
        }
        if !create {
            return Ok(None);
        }
        let path = runtime.file(AUDIT_KEY);
        let mut raw = Zeroizing::new([0u8; LOCAL_KEY_BYTES]);
        rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut *raw).map_err(|e| {
            Error::Io {
                path: path.clone(),
                action: "read OS randomness",
                source: std::io::Error::other(e.to_string()),
            }
        })?;
        let encoded = Zeroizing::new(hex::encode(*raw).into_bytes());
        // Written with the run's first state or audit line, never by a run that fails first.
        runtime.stage(AUDIT_KEY, encoded.clone());
        Ok(Some(AuditKey {
            source: KeySource::Local,
            bytes: encoded,
        }))
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

    /// `old`'s bytes, encrypted for whoever holds `self`: XOR with a keystream that is
    /// HMAC(self, "wrap" || `salt` || counter). `salt` (the `prev` of the line carrying it)
    /// makes every wrapping different.
    pub(super) fn wrap(&self, old: &AuditKey, salt: &str) -> String {
        hex::encode(self.xor_stream(&old.bytes, salt))
    }

    /// The key `wrapped` holds, if it unwraps to one whose id is `expected_id`.
    pub(super) fn unwrap_key(
        &self,
        wrapped: &str,
        salt: &str,
        source: KeySource,
        expected_id: &str,
    ) -> Option<AuditKey> {
        let bytes = Zeroizing::new(hex::decode(wrapped).ok()?);
        let key = AuditKey {
            source,
            bytes: Zeroizing::new(self.xor_stream(&bytes, salt)),
        };
        (key.id() == expected_id).then_some(key)
    }

    fn xor_stream(&self, data: &[u8], salt: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len());
        for (counter, chunk) in data.chunks(32).enumerate() {
            let mut mac = self.hmac();
            mac.update(b"compose-secrets audit key wrap");
            mac.update(salt.as_bytes());
            mac.update(&(counter as u64).to_be_bytes());
            let block = mac.finalize().into_bytes();
            out.extend(chunk.iter().zip(block.iter()).map(|(a, b)| a ^ b));
        }
        out
    }

    /// The key that keys fingerprints, derived from this (per-install) key.
    fn fingerprint_key(&self) -> FingerprintKey {
        let mut mac = self.hmac();
        mac.update(b"compose-secrets fingerprint key");
        FingerprintKey::new(Zeroizing::new(mac.finalize().into_bytes().to_vec()))
    }
}

/// The key for this run's fingerprints: derived from the per-install key (made when `create`
/// and missing); a read-only run without one gets a random key, so nothing is ever hashed
/// unsalted (and nothing it computes matches what a writer recorded).
pub fn fingerprint_key(runtime: Option<&RuntimeDir>, create: bool) -> Result<FingerprintKey> {
    let local = match runtime {
        Some(r) => AuditKey::local(r, create)?,
        None => None,
    };
    Ok(local.map_or_else(FingerprintKey::random, |key| key.fingerprint_key()))
}

/// The chain key for this project: the `audit-log-signing-key` secret's value when the project
/// declares it and the value is at hand (its file, else the store), else the per-install key
/// (made when `create`). `Ok(None)`: neither exists and `create` is not set.
pub async fn project_key(
    runtime: &RuntimeDir,
    project: Option<(&Project, &Layout)>,
    store: Option<&dyn SecretStore>,
    create: bool,
) -> Result<Option<AuditKey>> {
    let value = match project {
        Some((project, layout)) => match project.lookup(SIGNING_KEY_SECRET) {
            Some(spec) => signing_value(layout, spec, store).await,
            None => None,
        },
        None => None,
    };
    match value.filter(|v| !v.is_empty()) {
        Some(v) => Ok(Some(AuditKey::from_signing_secret(&v))),
        None => AuditKey::local(runtime, create),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_unwraps_only_with_the_new_key_and_its_salt() {
        let old = AuditKey::from_signing_secret(&SecretValue::new("old-key-value".repeat(7)));
        let new = AuditKey::from_signing_secret(&SecretValue::new("new-key".into()));
        let other = AuditKey::from_signing_secret(&SecretValue::new("other".into()));
        let wrapped = new.wrap(&old, "salt-1");
        assert!(!wrapped.contains(&hex::encode("old-key-value")));
        let back = new
            .unwrap_key(&wrapped, "salt-1", KeySource::SigningKeySecret, &old.id())
            .expect("unwraps");
        assert_eq!(back.id(), old.id());
        assert!(new
            .unwrap_key(&wrapped, "salt-2", KeySource::SigningKeySecret, &old.id())
            .is_none());
        assert!(other
            .unwrap_key(&wrapped, "salt-1", KeySource::SigningKeySecret, &old.id())
            .is_none());
    }

    #[test]
    fn the_local_key_is_made_once_and_never_by_a_read_only_run() {
        let tmp = tempfile::tempdir().unwrap();
        let runtime = RuntimeDir::open(&tmp.path().join(".runtime"), true)
            .unwrap()
            .unwrap();
        assert!(AuditKey::local(&runtime, false).unwrap().is_none());
        let a = AuditKey::local(&runtime, true).unwrap().unwrap();
        let b = AuditKey::local(&runtime, true).unwrap().unwrap();
        assert_eq!(a.id(), b.id());
        assert!(
            !runtime.file(AUDIT_KEY).exists(),
            "staged until something lasting is written"
        );
        runtime.flush_staged().unwrap();
        let reopened = RuntimeDir::open(runtime.path(), false).unwrap().unwrap();
        let c = AuditKey::local(&reopened, false).unwrap().unwrap();
        assert_eq!(a.id(), c.id());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(runtime.file(AUDIT_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// The per-install key of a project loaded by the version that kept the fingerprint key in
    /// a global, and the fingerprint that version wrote into its state.json for the value: the
    /// key passed as a value gives the same bytes, so existing state files still match.
    #[test]
    fn fingerprints_match_what_earlier_versions_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join(".runtime")).unwrap();
        std::fs::write(
            tmp.path().join(".runtime").join(AUDIT_KEY),
            "978afbbdf4f606d3afd5219a061498a107a4496da09877b5bea29034cc0128c9\n",
        )
        .unwrap();
        let runtime = RuntimeDir::open(&tmp.path().join(".runtime"), false)
            .unwrap()
            .unwrap();
        let value = SecretValue::new("kept-from-before-0001".into());
        let recorded = "hmac:291526c74a868781";
        for create in [false, true] {
            let key = fingerprint_key(Some(&runtime), create).unwrap();
            assert_eq!(value.fingerprint(&key), recorded);
            assert_eq!(key.fingerprint(value.expose_bytes()), recorded);
        }
        // No per-install key (a read-only run before the first load): a random key, so a
        // fingerprint is never a bare hash and matches nothing recorded.
        let empty = tempfile::tempdir().unwrap();
        let none = RuntimeDir::open(empty.path(), false).unwrap().unwrap();
        for runtime in [None, Some(&none)] {
            let key = fingerprint_key(runtime, false).unwrap();
            assert_ne!(value.fingerprint(&key), recorded);
            assert!(!key.same_as(&fingerprint_key(runtime, false).unwrap()));
        }
        let shown = format!("{:?}", fingerprint_key(Some(&runtime), false).unwrap());
        assert_eq!(shown, "FingerprintKey([redacted])");
    }
}
