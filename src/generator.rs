//! Random value generators (`hex:N`, `base64:N`, `alnum:N`) drawing from the OS.
//!
//! Every generated value is safe in a Compose `.env` file: no `$`, quotes, `#`,
//! or whitespace, so Compose's interpolation cannot corrupt it.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use rand::rngs::OsRng;
use rand::TryRngCore as _;
use zeroize::Zeroizing;

use crate::secret::SecretValue;

/// Most bytes a generator may ask for: beyond this a value would not fit Key Vault's 25 KB.
const MAX_BYTES: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generator {
    /// N random bytes as 2N lowercase hex characters (`openssl rand -hex N`).
    Hex(usize),
    /// N random bytes in standard base64 with padding (`openssl rand -base64 N`).
    Base64(usize),
    /// N characters from `[A-Za-z0-9]`, without modulo bias.
    Alnum(usize),
}

impl Default for Generator {
    fn default() -> Self {
        Generator::Hex(32)
    }
}

impl fmt::Display for Generator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Generator::Hex(n) => write!(f, "hex:{n}"),
            Generator::Base64(n) => write!(f, "base64:{n}"),
            Generator::Alnum(n) => write!(f, "alnum:{n}"),
        }
    }
}

impl FromStr for Generator {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, len) = s.split_once(':').ok_or_else(|| {
            format!("generator `{s}` must look like hex:32, base64:16 or alnum:24")
        })?;
        let n: usize = len
            .trim()
            .parse()
            .map_err(|_| format!("generator `{s}`: `{len}` is not a length"))?;
        if n == 0 || n > MAX_BYTES {
            return Err(format!(
                "generator `{s}`: length must be between 1 and {MAX_BYTES}"
            ));
        }
        match kind.trim() {
            "hex" => Ok(Generator::Hex(n)),
            "base64" => Ok(Generator::Base64(n)),
            "alnum" => Ok(Generator::Alnum(n)),
            other => Err(format!(
                "generator `{s}`: unknown kind `{other}` (use hex, base64 or alnum)"
            )),
        }
    }
}

impl Generator {
    /// Draw a fresh value from the operating system's CSPRNG.
    pub fn generate(self) -> Result<SecretValue, rand::rand_core::OsError> {
        let value = match self {
            Generator::Hex(n) => hex::encode(&*random_bytes(n)?),
            Generator::Base64(n) => {
                base64::engine::general_purpose::STANDARD.encode(&*random_bytes(n)?)
            }
            Generator::Alnum(n) => alnum(n)?,
        };
        Ok(SecretValue::new(value))
    }
}

fn random_bytes(n: usize) -> Result<Zeroizing<Vec<u8>>, rand::rand_core::OsError> {
    let mut buf = Zeroizing::new(vec![0u8; n]);
    OsRng.try_fill_bytes(&mut buf)?;
    Ok(buf)
}

fn alnum(n: usize) -> Result<String, rand::rand_core::OsError> {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // Rejection sampling: 248 = 4 * 62, so bytes below it map uniformly.
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let chunk = random_bytes(n)?;
        for &b in chunk.iter() {
            if b < 248 && out.len() < n {
                out.push(char::from(ALPHABET[usize::from(b) % 62]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_generates() {
        let hex: Generator = "hex:32".parse().unwrap();
        let v = hex.generate().unwrap();
        assert_eq!(v.len(), 64);
        assert!(v.expose().bytes().all(|b| b.is_ascii_hexdigit()));

        let b64: Generator = "base64:16".parse().unwrap();
        let v = b64.generate().unwrap();
        assert_eq!(v.len(), 24);
        assert!(
            base64::engine::general_purpose::STANDARD
                .decode(v.expose())
                .unwrap()
                .len()
                == 16
        );

        let an: Generator = "alnum:40".parse().unwrap();
        let v = an.generate().unwrap();
        assert_eq!(v.len(), 40);
        assert!(v.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn values_are_env_safe_and_distinct() {
        for g in [
            Generator::Hex(8),
            Generator::Base64(33),
            Generator::Alnum(12),
        ] {
            let a = g.generate().unwrap();
            let b = g.generate().unwrap();
            assert_ne!(a, b);
            assert!(!a.expose().contains(['$', '"', '\'', '#', ' ', '\t', '\n']));
        }
    }

    #[test]
    fn rejects_bad_specs() {
        for bad in ["hex", "hex:0", "hex:x", "rot13:4", "hex:99999"] {
            assert!(bad.parse::<Generator>().is_err(), "{bad}");
        }
    }
}
