//! Secret values and names: the one type that holds a value, redacted and zeroized.

use std::fmt;

use hmac::Mac as _;
use zeroize::Zeroizing;

/// A secret value. `Debug` and `Display` never show it; its memory is wiped on drop.
///
/// The only way to read the value is [`SecretValue::expose`], which keeps every
/// place that touches plaintext greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value.into_bytes()))
    }

    /// A value that need not be text (a certificate's `pfx` part): read it with
    /// [`SecretValue::expose_bytes`]; [`SecretValue::expose`] sees it as empty.
    pub fn binary(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, std::string::FromUtf8Error> {
        // On failure the error owns the bytes; the caller drops it, so wipe by hand there.
        String::from_utf8(bytes).map(Self::new)
    }

    pub fn expose(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The value's bytes: what a file holds, text or not.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value as it would stand in text (an environment variable, a label, an argument):
    /// itself when it is UTF-8, else its base64, the one way bytes that are not text (a
    /// certificate's `pfx`) can be put there. The leak checks search for this.
    pub fn as_text(&self) -> Zeroizing<String> {
        use base64::Engine as _;
        Zeroizing::new(match std::str::from_utf8(&self.0) {
            Ok(text) => text.to_string(),
            Err(_) => base64::engine::general_purpose::STANDARD.encode(&*self.0),
        })
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A short, one-way fingerprint used to compare values without printing them.
    pub fn fingerprint(&self, key: &FingerprintKey) -> String {
        key.fingerprint(&self.0)
    }
}

/// What every fingerprint starts with (a version id never does).
pub const FINGERPRINT_PREFIX: &str = "hmac:";

/// The key fingerprints are computed with: derived from the per-install key (see
/// `audit::fingerprint_key`), else a random one, so a fingerprint never is a bare hash that a
/// guess of the value could be checked against. A value, passed to whatever fingerprints: no
/// fingerprint can be computed before the run has its key.
#[derive(Clone)]
pub struct FingerprintKey(Zeroizing<Vec<u8>>);

impl FingerprintKey {
    /// A key from bytes already derived for fingerprints.
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    /// A key drawn for this run only: its fingerprints match no file's or state's.
    pub fn random() -> Self {
        let mut key = Zeroizing::new(vec![0u8; 32]);
        // Without OS randomness there is no value to protect either: generators fail first.
        let _ = rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut key);
        Self(key)
    }

    /// Whether `other` is this key (fingerprints computed with either compare).
    pub fn same_as(&self, other: &FingerprintKey) -> bool {
        self.0 == other.0
    }

    /// Fingerprint of raw bytes, as [`SecretValue::fingerprint`] computes it: a keyed
    /// HMAC-SHA256, cut to 8 bytes.
    pub fn fingerprint(&self, bytes: &[u8]) -> String {
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"compose-secrets fingerprint\0");
        mac.update(bytes);
        format!(
            "{FINGERPRINT_PREFIX}{}",
            hex::encode(&mac.finalize().into_bytes()[..8])
        )
    }
}

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintKey([redacted])")
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([redacted])")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Longest name Key Vault accepts.
pub const MAX_VAULT_NAME_LEN: usize = 127;

/// Largest value Key Vault stores (25 KB).
pub const MAX_VALUE_BYTES: usize = 25 * 1024;

/// Whether Key Vault can store a secret under this name (`^[0-9a-zA-Z-]{1,127}$`).
pub fn is_valid_vault_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_VAULT_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Whether a string is a usable `.env` key (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_valid_env_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let v = SecretValue::new("hunter2".into());
        assert!(!format!("{v:?}").contains("hunter2"));
        assert!(!format!("{v}").contains("hunter2"));
        assert_eq!(v.expose(), "hunter2");
    }

    #[test]
    fn vault_names() {
        assert!(is_valid_vault_name("flask-secret-key"));
        assert!(is_valid_vault_name("DBPASSWORD"));
        assert!(!is_valid_vault_name("db_password"));
        assert!(!is_valid_vault_name(""));
        assert!(!is_valid_vault_name(&"a".repeat(128)));
        assert!(is_valid_vault_name(&"a".repeat(127)));
    }

    #[test]
    fn env_keys() {
        assert!(is_valid_env_key("FLASK_SECRET_KEY"));
        assert!(!is_valid_env_key("1ABC"));
        assert!(!is_valid_env_key("A-B"));
    }
}
