//! Which part of a Key Vault certificate a Compose secret's file holds
//! (`x-compose-secrets.certificate`), as the project model declares it; `certificate` cuts
//! the parts.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How long before `notAfter` `verify` starts to warn, unless `expiry-warning` says otherwise.
pub const DEFAULT_EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);
/// One file cut from a certificate bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// The private key, PKCS#8 PEM.
    Key,
    /// The leaf certificate alone, PEM.
    Cert,
    /// The certificates after the leaf, leaf to root, PEM.
    Chain,
    /// The leaf, then the chain, PEM.
    Fullchain,
    /// Key and certificates as PKCS#12 bytes, with an empty password (as Key Vault's own).
    Pfx,
}

pub const PARTS: &str = "key, cert, chain, fullchain, pfx";

impl FromStr for Part {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "key" => Part::Key,
            "cert" => Part::Cert,
            "chain" => Part::Chain,
            "fullchain" => Part::Fullchain,
            "pfx" => Part::Pfx,
            other => {
                return Err(format!(
                    "`certificate: {other}` is not a part (one of {PARTS})"
                ))
            }
        })
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Key => "key",
            Part::Cert => "cert",
            Part::Chain => "chain",
            Part::Fullchain => "fullchain",
            Part::Pfx => "pfx",
        })
    }
}

/// A Compose secret that is one part of a certificate (`x-compose-secrets.certificate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertificateUse {
    pub part: Part,
    /// `expiry-warning`: how long before `notAfter` `verify` warns.
    pub expiry_warning: Duration,
}
