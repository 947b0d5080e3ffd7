//! TLS: a CA kept in the state directory across runs, and a fresh server certificate
//! for the loopback names issued by it on every start.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::files::{with_path, write_atomic};

pub const CA_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca-key.pem";
const SERVER_NAMES: [&str; 4] = ["localhost", "127.0.0.1", "::1", "*.localhost"];

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Rebuilt identically on every start, so a reloaded key can sign as the same issuer.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "kv-emulator");
    dn.push(DnType::CommonName, "kv-emulator local CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn load_or_create_ca(dir: &Path) -> io::Result<Issuer<'static, KeyPair>> {
    let cert_path = dir.join(CA_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    if cert_path.exists() && key_path.exists() {
        let key_pem = fs::read_to_string(&key_path).map_err(with_path(&key_path))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| other(format!("{}: {e}", key_path.display())))?;
        return Ok(Issuer::new(ca_params(), key));
    }
    let key = KeyPair::generate().map_err(other)?;
    let cert = ca_params().self_signed(&key).map_err(other)?;
    // Key first: a ca.pem without its key would make the next start mint a mismatched pair.
    write_atomic(&key_path, key.serialize_pem().as_bytes(), 0o600).map_err(with_path(&key_path))?;
    write_atomic(&cert_path, cert.pem().as_bytes(), 0o644).map_err(with_path(&cert_path))?;
    Ok(Issuer::new(ca_params(), key))
}

pub fn acceptor(state_dir: &Path) -> io::Result<TlsAcceptor> {
    let ca = load_or_create_ca(state_dir)?;
    let mut params =
        CertificateParams::new(SERVER_NAMES.map(String::from).to_vec()).map_err(other)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(86_400)).into();
    params.not_after = (now + std::time::Duration::from_secs(397 * 86_400)).into();
    let key = KeyPair::generate().map_err(other)?;
    let cert = params.signed_by(&key, &ca).map_err(other)?;
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(other)?
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .map_err(other)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
