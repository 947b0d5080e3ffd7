//! Key Vault certificates as the files TLS servers read: a certificate's backing secret (a
//! PEM bundle or a base64 PKCS#12, by its content type) checked and split into the parts
//! `key`, `cert`, `chain`, `fullchain` and `pfx`, its expiry, and the demo's self-signed one.
//!
//! The parsing is the crates' (x509-parser for PEM and X.509, p12-keystore for PKCS#12); the
//! key is matched to its certificate through ring, the one crypto provider.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::SecretValue;

pub use crate::compose::certificate_part::{CertificateUse, Part};

/// Key Vault's content type for a PEM certificate bundle.
pub const PEM_CONTENT_TYPE: &str = "application/x-pem-file";
/// Key Vault's content type for a base64 PKCS#12 certificate bundle.
pub const PKCS12_CONTENT_TYPE: &str = "application/x-pkcs12";
/// How long the demo's self-signed certificate is valid.
pub const DEMO_VALIDITY: Duration = Duration::from_secs(90 * 86_400);

/// A checked bundle: a key that matches its leaf, and the rest of the chain in order.
pub struct Bundle {
    key: Zeroizing<Vec<u8>>,
    leaf: Vec<u8>,
    chain: Vec<Vec<u8>>,
}

impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("key", &"[redacted]")
            .field("certificates", &(1 + self.chain.len()))
            .finish()
    }
}

/// What is wrong with a bundle, for the error that names its vault object.
fn refused(object: &str, what: impl fmt::Display) -> Error {
    Error::manifest(object, format!("certificate bundle refused: {what}"))
}

impl Bundle {
    /// Read `value` as its content type says (without one: PEM when it looks like PEM, else
    /// base64 PEM, else base64 PKCS#12). `object` names the vault object in errors.
    pub fn parse(object: &str, content_type: Option<&str>, value: &SecretValue) -> Result<Self> {
        let text = value.expose_bytes();
        match content_type.map(str::trim) {
            Some(PEM_CONTENT_TYPE) => Self::from_pem(object, text),
            Some(PKCS12_CONTENT_TYPE) => Self::from_pkcs12(object, &decode_base64(object, text)?),
            Some(other) if !other.is_empty() && other != "text/plain" => Err(refused(
                object,
                format!(
                    "its content type is `{other}`; a certificate is `{PEM_CONTENT_TYPE}` or \
                     `{PKCS12_CONTENT_TYPE}`"
                ),
            )),
            _ if looks_like_pem(text) => Self::from_pem(object, text),
            _ => {
                let der = decode_base64(object, text)?;
                if looks_like_pem(&der) {
                    Self::from_pem(object, &der)
                } else {
                    Self::from_pkcs12(object, &der)
                }
            }
        }
    }

    fn from_pem(object: &str, bytes: &[u8]) -> Result<Self> {
        let mut key: Option<Zeroizing<Vec<u8>>> = None;
        let mut certs = Vec::new();
        for (n, block) in x509_parser::pem::Pem::iter_from_buffer(bytes).enumerate() {
            let mut block = block
                .map_err(|e| refused(object, format!("PEM block {} is unreadable: {e}", n + 1)))?;
            let contents = Zeroizing::new(std::mem::take(&mut block.contents));
            match block.label.as_str() {
                "CERTIFICATE" => certs.push(contents.to_vec()),
                "PRIVATE KEY" if key.is_some() => {
                    return Err(refused(object, "it holds more than one private key"))
                }
                "PRIVATE KEY" => key = Some(contents),
                "ENCRYPTED PRIVATE KEY" => {
                    return Err(refused(
                        object,
                        "its private key is encrypted; Key Vault's bundles hold it unencrypted",
                    ))
                }
                label @ ("RSA PRIVATE KEY" | "EC PRIVATE KEY") => {
                    return Err(refused(
                        object,
                        format!(
                            "its key is a `{label}` (PKCS#1/SEC1); store it as PKCS#8 \
                             (`openssl pkcs8 -topk8 -nocrypt`), as Key Vault does"
                        ),
                    ))
                }
                other => {
                    return Err(refused(object, format!("unexpected PEM block `{other}`")));
                }
            }
        }
        let key = key.ok_or_else(|| refused(object, "it holds no private key"))?;
        Self::assemble(object, key, certs)
    }

    fn from_pkcs12(object: &str, der: &[u8]) -> Result<Self> {
        use p12_keystore::error::Error as P12;
        let archive = p12_keystore::Pkcs12Archive::from_pkcs12(der, "").map_err(|e| match e {
            P12::MacError(_) | P12::Pkcs5Error(_) | P12::UnpadError => refused(
                object,
                "the PKCS#12 is password-protected; compose-secrets reads only an empty \
                 password, as Key Vault's own PFX has",
            ),
            other => refused(object, format!("the PKCS#12 is unreadable: {other}")),
        })?;
        let mut keys = archive.keys.into_iter();
        let key = keys
            .next()
            .ok_or_else(|| refused(object, "the PKCS#12 holds no private key"))?;
        if keys.next().is_some() {
            return Err(refused(
                object,
                "the PKCS#12 holds more than one private key",
            ));
        }
        let key = Zeroizing::new(key.key.as_der().to_vec());
        let certs = archive
            .certs
            .into_iter()
            .map(|c| c.cert.as_der().to_vec())
            .collect();
        Self::assemble(object, key, certs)
    }

    /// Find the leaf (the certificate the key belongs to) and order the rest leaf to root.
    fn assemble(object: &str, key: Zeroizing<Vec<u8>>, mut certs: Vec<Vec<u8>>) -> Result<Self> {
        let mut seen = std::collections::BTreeSet::new();
        certs.retain(|c| seen.insert(c.clone()));
        if certs.is_empty() {
            return Err(refused(object, "no leaf: it holds no certificate"));
        }
        let public = public_key_of(object, &key)?;
        let parsed = certs
            .iter()
            .enumerate()
            .map(|(n, der)| {
                x509_parser::parse_x509_certificate(der)
                    .map(|(_, c)| c)
                    .map_err(|e| {
                        refused(object, format!("certificate {} is unreadable: {e}", n + 1))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let leaf = parsed
            .iter()
            .position(|c| c.public_key().subject_public_key.data.as_ref() == public.as_slice())
            .ok_or_else(|| {
                refused(
                    object,
                    "no leaf: the private key matches none of its certificates",
                )
            })?;
        let mut order = vec![leaf];
        loop {
            let current = &parsed[*order.last().unwrap_or(&leaf)];
            if current.subject().as_raw() == current.issuer().as_raw() {
                break;
            }
            let issuer = (0..parsed.len()).find(|&i| {
                !order.contains(&i) && parsed[i].subject().as_raw() == current.issuer().as_raw()
            });
            match issuer {
                Some(i) => order.push(i),
                None => break,
            }
        }
        if let Some(stray) = (0..parsed.len()).find(|i| !order.contains(i)) {
            return Err(refused(
                object,
                format!(
                    "certificate `{}` is not in the leaf's chain",
                    parsed[stray].subject()
                ),
            ));
        }
        drop(parsed);
        let mut ordered: Vec<Option<Vec<u8>>> = certs.into_iter().map(Some).collect();
        let mut take = |i: usize| ordered[i].take().unwrap_or_default();
        let leaf_der = take(leaf);
        let chain = order[1..].iter().map(|&i| take(i)).collect();
        Ok(Bundle {
            key,
            leaf: leaf_der,
            chain,
        })
    }

    /// The bytes of one part.
    pub fn part(&self, object: &str, part: Part) -> Result<SecretValue> {
        let pem = |label: &str, ders: &mut dyn Iterator<Item = &Vec<u8>>| {
            let mut out = String::new();
            for der in ders {
                out.push_str(&pem_block(label, der));
            }
            out
        };
        Ok(match part {
            Part::Key => SecretValue::new(pem_block("PRIVATE KEY", &self.key)),
            Part::Cert => SecretValue::new(pem("CERTIFICATE", &mut std::iter::once(&self.leaf))),
            Part::Chain => SecretValue::new(pem("CERTIFICATE", &mut self.chain.iter())),
            Part::Fullchain => SecretValue::new(pem(
                "CERTIFICATE",
                &mut std::iter::once(&self.leaf).chain(self.chain.iter()),
            )),
            Part::Pfx => SecretValue::binary(self.pkcs12(object)?),
        })
    }

    fn pkcs12(&self, object: &str) -> Result<Vec<u8>> {
        let failed = |e: p12_keystore::error::Error| {
            refused(object, format!("its PKCS#12 could not be written: {e}"))
        };
        let key = p12_keystore::PrivateKey::from_der(&self.key).map_err(failed)?;
        let certs = std::iter::once(&self.leaf)
            .chain(self.chain.iter())
            .map(|der| p12_keystore::Certificate::from_der(der))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(failed)?;
        let local_key_id =
            ring::digest::digest(&ring::digest::SHA256, &self.leaf).as_ref()[..20].to_vec();
        let chain = p12_keystore::PrivateKeyChain::new(local_key_id, key, certs);
        let mut store = p12_keystore::KeyStore::new();
        store.add_entry(object, p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
        store.writer("").write().map_err(failed)
    }

    /// The leaf's `notAfter`, Unix seconds.
    #[cfg(test)]
    pub fn not_after(&self) -> i64 {
        x509_parser::parse_x509_certificate(&self.leaf)
            .map(|(_, c)| c.validity().not_after.timestamp())
            .unwrap_or(i64::MIN)
    }

    /// The leaf's subject, for messages.
    #[cfg(test)]
    pub fn subject(&self) -> String {
        x509_parser::parse_x509_certificate(&self.leaf)
            .map(|(_, c)| c.subject().to_string())
            .unwrap_or_default()
    }
}

/// The public key `key` (PKCS#8 DER) belongs to, as a certificate's SubjectPublicKeyInfo
/// carries it.
fn public_key_of(object: &str, key: &[u8]) -> Result<Vec<u8>> {
    use ring::signature::{self, KeyPair as _};
    if let Ok(pair) = signature::RsaKeyPair::from_pkcs8(key) {
        return Ok(pair.public().as_ref().to_vec());
    }
    let rng = ring::rand::SystemRandom::new();
    for alg in [
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
    ] {
        if let Ok(pair) = signature::EcdsaKeyPair::from_pkcs8(alg, key, &rng) {
            return Ok(pair.public_key().as_ref().to_vec());
        }
    }
    if let Ok(pair) = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(key) {
        return Ok(pair.public_key().as_ref().to_vec());
    }
    Err(refused(
        object,
        "its private key is unreadable or of an unsupported kind (RSA of 2048 bits or more, \
         ECDSA P-256/P-384 and Ed25519 are read)",
    ))
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes
        .windows(b"-----BEGIN ".len())
        .any(|w| w == b"-----BEGIN ")
}

fn decode_base64(object: &str, text: &[u8]) -> Result<Vec<u8>> {
    let compact: Zeroizing<Vec<u8>> = Zeroizing::new(
        text.iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect(),
    );
    base64::engine::general_purpose::STANDARD
        .decode(&*compact)
        .map_err(|_| refused(object, "it is neither PEM nor base64 (unparsable)"))
}

fn pem_block(label: &str, der: &[u8]) -> String {
    let body = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// What `spec`'s file holds of `fetched`: the value itself, or for a certificate part that
/// part of the bundle (the vault object `key`'s version), its metadata kept.
pub fn file_value(
    spec: &crate::compose::SecretSpec,
    key: &str,
    fetched: crate::store::FetchedSecret,
) -> Result<crate::store::FetchedSecret> {
    let Some(cert) = spec.certificate else {
        return Ok(fetched);
    };
    let value = Bundle::parse(key, fetched.info.content_type.as_deref(), &fetched.value)
        .and_then(|bundle| bundle.part(key, cert.part))
        .map_err(|e| match e {
            Error::Manifest { message, .. } => Error::manifest(
                &spec.name,
                format!("vault object `{key}` ({} part): {message}", cert.part),
            ),
            other => other,
        })?;
    Ok(crate::store::FetchedSecret {
        value,
        info: fetched.info,
    })
}

/// `fetched` (a part as `file_value` cut it), or for a `pfx` whose file already holds the
/// same key, leaf and chain, the file's bytes: each PKCS#12 written draws new salts, so
/// without this every `load` would rewrite the file and `sync` would see a change.
pub fn keep_same_pfx(
    spec: &crate::compose::SecretSpec,
    key: &str,
    fetched: crate::store::FetchedSecret,
    on_disk: Option<&[u8]>,
) -> crate::store::FetchedSecret {
    let is_pfx = spec.certificate.is_some_and(|c| c.part == Part::Pfx);
    let Some(bytes) = on_disk.filter(|_| is_pfx) else {
        return fetched;
    };
    let same = match (
        Bundle::from_pkcs12(key, bytes),
        Bundle::from_pkcs12(key, fetched.value.expose_bytes()),
    ) {
        (Ok(old), Ok(new)) => {
            *old.key == *new.key && old.leaf == new.leaf && old.chain == new.chain
        }
        _ => false,
    };
    if !same {
        return fetched;
    }
    crate::store::FetchedSecret {
        value: SecretValue::binary(bytes.to_vec()),
        info: fetched.info,
    }
}

/// Whether a file (`bytes`) holds what `fetched`, the store's current value, gives `spec`. A
/// `pfx` is compared by what it holds: each one written draws new salts.
pub fn file_matches(
    spec: &crate::compose::SecretSpec,
    key: &str,
    fetched: crate::store::FetchedSecret,
    bytes: &[u8],
) -> Result<bool> {
    let same = |v: &SecretValue| v.expose_bytes() == bytes;
    match spec.certificate {
        Some(CertificateUse {
            part: Part::Pfx, ..
        }) => {
            let bundle = Bundle::parse(key, fetched.info.content_type.as_deref(), &fetched.value)?;
            let on_disk = Bundle::from_pkcs12(key, bytes);
            Ok(on_disk.is_ok_and(|d| {
                *d.key == *bundle.key && d.leaf == bundle.leaf && d.chain == bundle.chain
            }))
        }
        Some(_) => Ok(same(&file_value(spec, key, fetched)?.value)),
        None => Ok(same(&fetched.value)),
    }
}

/// Refuse parts of one vault object fetched at different versions (a renewal landed between
/// their GETs): the files would hold a key and a certificate that do not belong together.
pub fn check_one_version<'a>(
    parts: impl Iterator<
        Item = (
            &'a crate::compose::SecretSpec,
            &'a str,
            &'a crate::store::FetchedSecret,
        ),
    >,
) -> Result<()> {
    let mut seen: std::collections::BTreeMap<String, Option<&str>> = Default::default();
    for (spec, key, fetched) in parts.filter(|(s, _, _)| s.certificate.is_some()) {
        let version = fetched.info.version.as_deref();
        match seen.insert(key.to_ascii_lowercase(), version) {
            Some(other) if other != version => {
                return Err(Error::Vault {
                    context: format!("get `{key}`"),
                    message: format!(
                        "a new version appeared while the parts of this certificate were read \
                         (secret `{}`); nothing was written, run again",
                        spec.name
                    ),
                })
            }
            _ => {}
        }
    }
    Ok(())
}

/// Why `rotate` leaves a certificate part alone.
pub fn not_rotatable(spec: &crate::compose::SecretSpec, part: Part) -> Error {
    Error::manifest(
        &spec.name,
        format!(
            "is the `{part}` part of the certificate `{}`: Key Vault renews certificates, so \
             compose-secrets does not rotate them; `compose-secrets sync` brings a renewed \
             version to its files",
            spec.vault_name
        ),
    )
}

/// What a part's file says about its leaf.
pub struct Leaf {
    pub not_after: i64,
    pub subject: String,
}

/// The leaf in a part's file (`cert`, `fullchain`, `pfx`); `None` for `key` and `chain`, or
/// a file that holds no readable certificate.
pub fn leaf_of_file(part: Part, value: &SecretValue) -> Option<Leaf> {
    let der = match part {
        Part::Key | Part::Chain => return None,
        Part::Cert | Part::Fullchain => {
            x509_parser::pem::Pem::iter_from_buffer(value.expose_bytes())
                .next()?
                .ok()
                .filter(|p| p.label == "CERTIFICATE")?
                .contents
        }
        Part::Pfx => {
            let archive =
                p12_keystore::Pkcs12Archive::from_pkcs12(value.expose_bytes(), "").ok()?;
            archive.certs.first()?.cert.as_der().to_vec()
        }
    };
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    Some(Leaf {
        not_after: cert.validity().not_after.timestamp(),
        subject: cert.subject().to_string(),
    })
}

/// Indices of `items` (a spec and its store key each) in the groups `sync` applies together:
/// the parts of one certificate as one group, every other secret alone, in first-seen order.
pub fn together<'a>(
    items: impl Iterator<Item = (&'a crate::compose::SecretSpec, &'a str)>,
) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_key: std::collections::HashMap<String, usize> = Default::default();
    for (i, (spec, key)) in items.enumerate() {
        if spec.certificate.is_some() {
            if let Some(&g) = by_key.get(&key.to_ascii_lowercase()) {
                groups[g].push(i);
                continue;
            }
            by_key.insert(key.to_ascii_lowercase(), groups.len());
        }
        groups.push(vec![i]);
    }
    groups
}

/// The demo's certificate: a fresh key and a self-signed certificate for `name`, valid for
/// `valid_for` from now, as a PEM bundle encoded in base64 so it fits one `.env` line.
pub fn self_signed(name: &str, valid_for: Duration) -> Result<SecretValue> {
    let failed = |e: rcgen::Error| Error::Io {
        path: std::path::PathBuf::new(),
        action: "generate a self-signed certificate",
        source: std::io::Error::other(e.to_string()),
    };
    let mut params = rcgen::CertificateParams::new(vec![name.to_string(), "localhost".into()])
        .map_err(failed)?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::seconds(valid_for.as_secs() as i64);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&key).map_err(failed)?;
    let pem = Zeroizing::new(format!("{}{}", key.serialize_pem(), cert.pem()));
    Ok(SecretValue::new(
        base64::engine::general_purpose::STANDARD.encode(pem.as_bytes()),
    ))
}

#[cfg(test)]
mod tests;
