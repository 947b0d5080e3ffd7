//! The bundle checks on chains rcgen makes here: leaf found by its key, chain ordered, every
//! refusal named.

use super::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

struct Chain {
    root: String,
    intermediate: String,
    leaf: String,
    leaf_key: String,
    other_key: String,
}

fn ca(name: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p
}

fn chain() -> Chain {
    let root_key = KeyPair::generate().unwrap();
    let root_params = ca("test root");
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, &root_key);
    let int_key = KeyPair::generate().unwrap();
    let int_params = ca("test intermediate");
    let intermediate = int_params.signed_by(&int_key, &root_issuer).unwrap();
    let int_issuer = Issuer::new(int_params, &int_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec!["app.test".to_string()]).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "app.test");
    let leaf = leaf_params.signed_by(&leaf_key, &int_issuer).unwrap();
    Chain {
        root: root.pem(),
        intermediate: intermediate.pem(),
        leaf: leaf.pem(),
        leaf_key: leaf_key.serialize_pem(),
        other_key: KeyPair::generate().unwrap().serialize_pem(),
    }
}

fn value(s: &str) -> SecretValue {
    SecretValue::new(s.to_string())
}

fn message(e: Error) -> String {
    e.to_string()
}

#[test]
fn a_pem_bundle_in_any_order_gives_the_parts_leaf_to_root() {
    let c = chain();
    let bundle = format!("{}{}{}{}", c.root, c.leaf_key, c.intermediate, c.leaf);
    let b = Bundle::parse("tls", Some(PEM_CONTENT_TYPE), &value(&bundle)).unwrap();
    assert_eq!(b.part("tls", Part::Cert).unwrap().expose(), c.leaf);
    assert_eq!(
        b.part("tls", Part::Chain).unwrap().expose(),
        format!("{}{}", c.intermediate, c.root)
    );
    assert_eq!(
        b.part("tls", Part::Fullchain).unwrap().expose(),
        format!("{}{}{}", c.leaf, c.intermediate, c.root)
    );
    let key = b.part("tls", Part::Key).unwrap();
    assert!(key.expose().starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert_eq!(
        public_key_of("tls", &pem_der(key.expose())).unwrap(),
        public_key_of("tls", &pem_der(&c.leaf_key)).unwrap()
    );
    assert!(
        !format!("{b:?}").contains("PRIVATE"),
        "Debug redacts the key"
    );
}

fn pem_der(pem: &str) -> Vec<u8> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .contents
}

#[test]
fn the_pfx_part_reads_back_with_an_empty_password() {
    let c = chain();
    let bundle = format!("{}{}{}", c.leaf, c.intermediate, c.leaf_key);
    let b = Bundle::parse("tls", Some(PEM_CONTENT_TYPE), &value(&bundle)).unwrap();
    let pfx = b.part("tls", Part::Pfx).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(pfx.expose_bytes());
    let again = Bundle::parse("tls", Some(PKCS12_CONTENT_TYPE), &value(&encoded)).unwrap();
    assert_eq!(again.part("tls", Part::Cert).unwrap().expose(), c.leaf);
    assert_eq!(
        again.part("tls", Part::Chain).unwrap().expose(),
        c.intermediate
    );
    assert_eq!(
        again.part("tls", Part::Key).unwrap(),
        b.part("tls", Part::Key).unwrap()
    );
    let leaf = leaf_of_file(Part::Pfx, &pfx).unwrap();
    assert_eq!(leaf.not_after, b.not_after());
}

#[test]
fn refusals_name_the_object_and_what_is_wrong() {
    let c = chain();
    let cases = [
        (format!("{}{}", c.leaf_key, c.intermediate), "no leaf"),
        (format!("{}{}", c.other_key, c.leaf), "matches none"),
        (c.leaf.clone(), "no private key"),
        (c.leaf_key.clone(), "no leaf: it holds no certificate"),
        ("not a bundle".to_string(), "neither PEM nor base64"),
        (
            format!(
                "{}{}",
                c.leaf_key.replace("PRIVATE KEY", "RSA PRIVATE KEY"),
                c.leaf
            ),
            "PKCS#8",
        ),
    ];
    for (bundle, expected) in cases {
        let e = message(Bundle::parse("web-tls", None, &value(&bundle)).unwrap_err());
        assert!(
            e.contains("web-tls") && e.contains(expected),
            "{expected}: {e}"
        );
        assert_eq!(
            Bundle::parse("web-tls", None, &value(&bundle))
                .unwrap_err()
                .exit_code(),
            2
        );
    }
    let e = message(Bundle::parse("web-tls", Some("application/json"), &value("{}")).unwrap_err());
    assert!(e.contains("content type"), "{e}");
}

#[test]
fn a_password_protected_pkcs12_is_refused_as_such() {
    let c = chain();
    let b = Bundle::parse("tls", None, &value(&format!("{}{}", c.leaf, c.leaf_key))).unwrap();
    let key = p12_keystore::PrivateKey::from_der(&b.key).unwrap();
    let cert = p12_keystore::Certificate::from_der(&b.leaf).unwrap();
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "x",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            vec![1u8],
            key,
            [cert],
        )),
    );
    let locked = store.writer("hunter2").write().unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(locked);
    let e = message(Bundle::parse("tls", Some(PKCS12_CONTENT_TYPE), &value(&encoded)).unwrap_err());
    assert!(e.contains("password-protected"), "{e}");
}

#[test]
fn the_demo_certificate_is_a_bundle_valid_for_the_stated_period() {
    let made = self_signed("web-tls", Duration::from_secs(10 * 86_400)).unwrap();
    assert!(!made.expose().contains('\n'), "one .env line");
    let b = Bundle::parse("web-tls", None, &made).unwrap();
    let left = b.not_after() - crate::clock::unix_now();
    assert!((9 * 86_400..=10 * 86_400).contains(&left), "{left}");
    assert!(b.subject().contains("web-tls"));
}

#[test]
fn parts_parse_and_print() {
    for part in ["key", "cert", "chain", "fullchain", "pfx"] {
        assert_eq!(part.parse::<Part>().unwrap().to_string(), part);
    }
    assert!("bundle".parse::<Part>().unwrap_err().contains("fullchain"));
}
