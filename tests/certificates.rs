//! Key Vault certificates as TLS files (issue 25): bundles made here with openssl (root,
//! intermediate, leaf), set through the official Python SDK with each content type against
//! the emulator, loaded into `key`, `cert`, `chain`, `fullchain` and `pfx`, checked with
//! openssl; the refusals; `rotate` on a part; `verify`'s expiry.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::{repo_root, Project, Run};
use crate::support::emulator::Emulator;

const PEM: &str = "application/x-pem-file";
const PKCS12: &str = "application/x-pkcs12";

/// Five Compose secrets reading one vault object, `web-tls`.
pub const PARTS: &str = r#"services:
  web:
    image: x
    secrets: [tls-key, tls-cert, tls-chain, tls-fullchain, tls-pfx]
secrets:
  tls-key:
    file: ./.runtime/secrets/tls-key
    x-compose-secrets: { vault-name: web-tls, certificate: key }
  tls-cert:
    file: ./.runtime/secrets/tls-cert
    x-compose-secrets: { vault-name: web-tls, certificate: cert }
  tls-chain:
    file: ./.runtime/secrets/tls-chain
    x-compose-secrets: { vault-name: web-tls, certificate: chain }
  tls-fullchain:
    file: ./.runtime/secrets/tls-fullchain
    x-compose-secrets: { vault-name: web-tls, certificate: fullchain }
  tls-pfx:
    file: ./.runtime/secrets/tls-pfx
    x-compose-secrets: { vault-name: web-tls, certificate: pfx }
"#;

const CA_CONFIG: &str = "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\n\
serial = serial.txt\ndefault_md = sha256\npolicy = p\nunique_subject = no\n\
x509_extensions = leaf\n[p]\ncommonName = supplied\n[leaf]\nbasicConstraints = CA:FALSE\n\
subjectAltName = DNS:app.test,DNS:localhost,IP:127.0.0.1\n";

/// A root and an intermediate CA in a temp dir, and leaves they sign.
pub struct Pki {
    pub dir: tempfile::TempDir,
    leaves: std::cell::Cell<u32>,
}

/// One leaf: its key and certificate files.
pub struct Leaf {
    pub key: PathBuf,
    pub cert: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
            leaves: std::cell::Cell::new(0),
        };
        let d = pki.dir.path();
        std::fs::write(d.join("ca.cnf"), CA_CONFIG).unwrap();
        std::fs::write(d.join("index.txt"), "").unwrap();
        std::fs::write(d.join("serial.txt"), "1000\n").unwrap();
        std::fs::write(
            d.join("ca.ext"),
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
        )
        .unwrap();
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-subj",
            "/CN=Test Root CA",
            "-days",
            "3650",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        pki.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "int.key",
            "-out",
            "int.csr",
            "-subj",
            "/CN=Test Intermediate CA",
        ]);
        pki.openssl(&[
            "x509",
            "-req",
            "-in",
            "int.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-out",
            "int.pem",
            "-days",
            "3650",
            "-extfile",
            "ca.ext",
        ]);
        pki
    }

    pub fn openssl(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// A leaf (RSA 2048) for `cn`, valid from `from` to `until` (Unix seconds), signed by the
    /// intermediate.
    pub fn leaf(&self, cn: &str, from: i64, until: i64) -> Leaf {
        let n = self.leaves.get() + 1;
        self.leaves.set(n);
        let (key, csr, cert) = (
            format!("leaf{n}.key"),
            format!("leaf{n}.csr"),
            format!("leaf{n}.pem"),
        );
        self.openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &key,
        ]);
        let subj = format!("/CN={cn}");
        self.openssl(&["req", "-new", "-key", &key, "-subj", &subj, "-out", &csr]);
        self.openssl(&[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-cert",
            "int.pem",
            "-keyfile",
            "int.key",
            "-in",
            &csr,
            "-out",
            &cert,
            "-notext",
            "-startdate",
            &asn1_time(from),
            "-enddate",
            &asn1_time(until),
        ]);
        Leaf {
            key: self.path(&key),
            cert: self.path(&cert),
        }
    }

    /// A leaf valid for `days` from now.
    pub fn leaf_for_days(&self, cn: &str, days: i64) -> Leaf {
        let now = compose_secrets::testing::clock::unix_now();
        self.leaf(cn, now - 3600, now + days * 86_400)
    }

    /// Key Vault's PEM bundle, shuffled: root, leaf, key, intermediate.
    pub fn pem_bundle(&self, leaf: &Leaf) -> String {
        format!(
            "{}{}{}{}",
            self.read("root.pem"),
            std::fs::read_to_string(&leaf.cert).unwrap(),
            std::fs::read_to_string(&leaf.key).unwrap(),
            self.read("int.pem"),
        )
    }

    /// Key Vault's PKCS#12 bundle (base64), with this password (Key Vault's own: empty).
    pub fn pkcs12_bundle(&self, leaf: &Leaf, password: &str) -> String {
        let chain = self.path("chain-for-p12.pem");
        std::fs::write(
            &chain,
            format!("{}{}", self.read("int.pem"), self.read("root.pem")),
        )
        .unwrap();
        let pass = format!("pass:{password}");
        let der = self.openssl(&[
            "pkcs12",
            "-export",
            "-inkey",
            &leaf.key.display().to_string(),
            "-in",
            &leaf.cert.display().to_string(),
            "-certfile",
            &chain.display().to_string(),
            "-passout",
            &pass,
        ]);
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(der)
    }
}

/// `20261207010000Z`, as `openssl ca -startdate/-enddate` takes it.
fn asn1_time(unix: i64) -> String {
    compose_secrets::testing::clock::rfc3339(unix)
        .chars()
        .filter(|c| c.is_ascii_digit())
        .chain(std::iter::once('Z'))
        .collect()
}

fn python() -> PathBuf {
    let venv = repo_root().join("target/tools/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// Set `value` as `name` with `content_type` through the official Python SDK (the value on
/// stdin); the script also checks the content type reads back from get and both listings.
pub fn sdk_set(emulator: &Emulator, name: &str, content_type: &str, value: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new(python())
        .arg(repo_root().join("scripts/set_certificate.py"))
        .arg(emulator.state_dir.path().join("emulator.env"))
        .args([name, content_type])
        .env_remove("IDENTITY_ENDPOINT")
        .env_remove("IDENTITY_HEADER")
        .env_remove("AZURE_KEYVAULT_URL")
        .env_remove("REQUESTS_CA_BUNDLE")
        .env("PYTHONPATH", repo_root().join("scripts"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs (make bootstrap installs the SDK into target/tools)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(value.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "set_certificate.py {name} {content_type}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The binary pointed at the emulator.
pub fn kv(p: &Project, emulator: &Emulator, args: &[&str]) -> Run {
    p.cmd(args).keyvault(emulator)
}

fn openssl_in(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What openssl says the loaded parts are: the key matches the leaf, each part holds the
/// right certificates, the chain verifies.
pub fn assert_parts(p: &Project, pki: &Pki, leaf: &Leaf) {
    let dir = p.path(".runtime/secrets");
    for part in [
        "tls-key",
        "tls-cert",
        "tls-chain",
        "tls-fullchain",
        "tls-pfx",
    ] {
        assert_eq!(p.mode(&format!(".runtime/secrets/{part}")), 0o400, "{part}");
    }
    let key_pub = openssl_in(&dir, &["pkey", "-in", "tls-key", "-pubout"]);
    let cert_pub = openssl_in(&dir, &["x509", "-in", "tls-cert", "-noout", "-pubkey"]);
    assert_eq!(key_pub, cert_pub, "the key matches the leaf");
    assert!(p
        .read_string(".runtime/secrets/tls-key")
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    let der = |pem: &Path| {
        openssl_in(
            pem.parent().unwrap(),
            &[
                "x509",
                "-in",
                pem.to_str().unwrap(),
                "-noout",
                "-fingerprint",
                "-sha256",
            ],
        )
    };
    let leaf_fp = der(&leaf.cert);
    let int_fp = der(&pki.path("int.pem"));
    let root_fp = der(&pki.path("root.pem"));
    assert_eq!(der(&dir.join("tls-cert")), leaf_fp, "cert is the leaf");
    assert_eq!(
        p.read_string(".runtime/secrets/tls-cert")
            .matches("BEGIN CERTIFICATE")
            .count(),
        1
    );
    // Each certificate of a PEM file, in order, as fingerprints.
    let fps = |rel: &str| -> Vec<String> {
        let text = p.read_string(rel);
        let tmp = tempfile::tempdir().unwrap();
        text.split_inclusive("-----END CERTIFICATE-----\n")
            .enumerate()
            .map(|(i, block)| {
                let f = tmp.path().join(format!("{i}.pem"));
                std::fs::write(&f, block).unwrap();
                der(&f)
            })
            .collect()
    };
    assert_eq!(
        fps(".runtime/secrets/tls-chain"),
        [int_fp.clone(), root_fp.clone()]
    );
    assert_eq!(
        fps(".runtime/secrets/tls-fullchain"),
        [leaf_fp.clone(), int_fp, root_fp]
    );
    let verified = openssl_in(
        &dir,
        &[
            "verify",
            "-CAfile",
            pki.path("root.pem").to_str().unwrap(),
            "-untrusted",
            "tls-chain",
            "tls-cert",
        ],
    );
    assert!(verified.contains("tls-cert: OK"), "{verified}");
    // The pfx, read with the empty password: the same key and leaf.
    let pfx_certs = openssl_in(
        &dir,
        &[
            "pkcs12", "-in", "tls-pfx", "-passin", "pass:", "-nokeys", "-clcerts",
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("pfx-leaf.pem"), pfx_certs).unwrap();
    assert_eq!(
        der(&tmp.path().join("pfx-leaf.pem")),
        leaf_fp,
        "pfx holds the leaf"
    );
    let pfx_key = openssl_in(
        &dir,
        &[
            "pkcs12", "-in", "tls-pfx", "-passin", "pass:", "-nocerts", "-nodes",
        ],
    );
    std::fs::write(tmp.path().join("pfx-key.pem"), pfx_key).unwrap();
    let pfx_pub = openssl_in(tmp.path(), &["pkey", "-in", "pfx-key.pem", "-pubout"]);
    assert_eq!(pfx_pub, cert_pub, "pfx holds the key");
}

#[test]
fn bundles_of_either_content_type_load_into_the_five_parts() {
    let pki = Pki::new();
    let emulator = Emulator::start(&[]);
    for (content_type, leaf) in [
        (PEM, pki.leaf_for_days("pem.app.test", 90)),
        (PKCS12, pki.leaf_for_days("p12.app.test", 90)),
    ] {
        let bundle = if content_type == PEM {
            pki.pem_bundle(&leaf)
        } else {
            pki.pkcs12_bundle(&leaf, "")
        };
        sdk_set(&emulator, "web-tls", content_type, &bundle);
        let p = Project::empty();
        p.write("compose.yaml", PARTS);
        let out = kv(&p, &emulator, &["load", "--json"]).run();
        let key = std::fs::read_to_string(&leaf.key).unwrap();
        let key_body: Vec<String> = key
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(String::from)
            .collect();
        out.assert_no_values(&key_body);
        out.success();
        assert_parts(&p, &pki, &leaf);
    }
}

fn refused(emulator: &Emulator, content_type: &str, bundle: &str, expected: &str) {
    sdk_set(emulator, "web-tls", content_type, bundle);
    let p = Project::empty();
    p.write("compose.yaml", PARTS);
    let out = kv(&p, emulator, &["load"])
        .run()
        .code(2)
        .stderr_has("web-tls")
        .stderr_has(expected);
    assert!(
        !p.exists(".runtime/secrets/tls-key") && !p.exists(".runtime/secrets/tls-cert"),
        "nothing written: {}",
        out.stderr
    );
}

#[test]
fn bundles_without_a_leaf_with_a_foreign_key_or_a_password_are_refused() {
    let pki = Pki::new();
    let emulator = Emulator::start(&[]);
    let leaf = pki.leaf_for_days("app.test", 90);
    let other = pki.leaf_for_days("other.test", 90);
    let key = std::fs::read_to_string(&leaf.key).unwrap();
    let no_leaf = format!("{key}{}{}", pki.read("int.pem"), pki.read("root.pem"));
    refused(&emulator, PEM, &no_leaf, "no leaf");
    let foreign_key = format!(
        "{}{}{}",
        std::fs::read_to_string(&other.key).unwrap(),
        std::fs::read_to_string(&leaf.cert).unwrap(),
        pki.read("int.pem")
    );
    refused(
        &emulator,
        PEM,
        &foreign_key,
        "matches none of its certificates",
    );
    refused(
        &emulator,
        PKCS12,
        &pki.pkcs12_bundle(&leaf, "hunter2"),
        "password-protected",
    );
    refused(&emulator, PKCS12, "bm90IGEgcGtjczEy", "unreadable");
}

#[test]
fn rotate_refuses_a_certificate_part_and_points_to_sync() {
    let p = Project::empty();
    p.write("compose.yaml", PARTS);
    p.write(".env.demo", "");
    p.cmd(&["ensure"]).run().success();
    p.cmd(&["load"]).run().success();
    let before = p.read(".runtime/secrets/tls-key");
    p.cmd(&["rotate", "tls-key"])
        .run()
        .code(2)
        .stderr_has("Key Vault renews certificates")
        .stderr_has("compose-secrets sync");
    assert_eq!(p.read(".runtime/secrets/tls-key"), before, "left as it was");
}

#[test]
fn demo_mode_generates_one_self_signed_certificate_for_every_part() {
    let p = Project::empty();
    p.write("compose.yaml", PARTS);
    p.write(".env.demo", "");
    p.cmd(&["ensure"]).run().success().stdout_has("self-signed");
    // One `.env` key for the five parts: the vault object's.
    let env = p.read_string(".env");
    assert_eq!(env.matches("WEB_TLS=").count(), 1, "{env}");
    p.cmd(&["load"]).run().success();
    let dir = p.path(".runtime/secrets");
    assert_eq!(
        openssl_in(&dir, &["pkey", "-in", "tls-key", "-pubout"]),
        openssl_in(&dir, &["x509", "-in", "tls-cert", "-noout", "-pubkey"])
    );
    assert_eq!(
        p.read_string(".runtime/secrets/tls-chain"),
        "",
        "self-signed: no chain"
    );
    let out = p.cmd(&["verify", "--json"]).run();
    let json = out.json();
    let checks = json["checks"].as_array().expect("checks");
    for part in [
        "tls-key",
        "tls-cert",
        "tls-chain",
        "tls-fullchain",
        "tls-pfx",
    ] {
        let drift = checks
            .iter()
            .find(|c| c["category"] == "drift" && c["subject"] == part)
            .unwrap_or_else(|| panic!("a drift line for {part}: {checks:?}"));
        // The pfx too, though each one written draws new salts.
        assert_eq!(drift["status"], "pass", "{drift}");
    }
    let cert = checks
        .iter()
        .find(|c| c["category"] == "certificate")
        .expect("an expiry line");
    assert_eq!(cert["status"], "pass", "{cert}");
    assert!(cert["message"].as_str().unwrap().contains("valid until"));
}

#[test]
fn a_second_load_leaves_a_pfx_that_holds_the_same_certificate_alone() {
    let p = Project::empty();
    p.write("compose.yaml", PARTS);
    p.write(".env.demo", "");
    p.cmd(&["ensure"]).run().success();
    p.cmd(&["load"]).run().success();
    let stamp = |rel: &str| {
        let meta = std::fs::metadata(p.path(rel)).unwrap();
        (p.inode(rel), meta.modified().unwrap(), p.read(rel))
    };
    let before = stamp(".runtime/secrets/tls-pfx");
    let out = p.cmd(&["load", "--json"]).run().success();
    let items = out.json()["items"].as_array().cloned().expect("items");
    let pfx = items
        .iter()
        .find(|i| i["name"] == "tls-pfx")
        .unwrap_or_else(|| panic!("a line for tls-pfx: {items:?}"));
    assert_eq!(pfx["action"], "unchanged", "{pfx}");
    assert!(
        stamp(".runtime/secrets/tls-pfx") == before,
        "the pfx is not rewritten (inode, mtime, bytes)"
    );
    let out = p.cmd(&["verify", "--json"]).run();
    let json = out.json();
    let drift = json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["category"] == "drift" && c["subject"] == "tls-pfx")
        .cloned()
        .expect("a drift line for tls-pfx");
    assert_eq!(drift["status"], "pass", "{drift}");
}

/// The `KEY=` line's value in an env file `--env-output` wrote.
fn env_line(text: &str, key: &str) -> String {
    let raw = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("a {key}= line in {text}"));
    raw.trim_matches('"').replace("\\n", "\n")
}

#[test]
fn env_output_gives_each_part_of_one_certificate_its_own_line() {
    let p = Project::empty();
    let without_pfx = PARTS
        .replace("tls-fullchain, tls-pfx]", "tls-fullchain]")
        .replace(
            "  tls-pfx:\n    file: ./.runtime/secrets/tls-pfx\n    \
             x-compose-secrets: { vault-name: web-tls, certificate: pfx }\n",
            "",
        );
    assert!(!without_pfx.contains("pfx"), "{without_pfx}");
    p.write("compose.yaml", &without_pfx);
    p.write(".env.demo", "");
    p.cmd(&["ensure"]).run().success();
    p.cmd(&["load", "--env-output", "out.env"]).run().success();
    let text = p.read_string("out.env");
    for (key, file) in [
        ("TLS_KEY", "tls-key"),
        ("TLS_CERT", "tls-cert"),
        ("TLS_CHAIN", "tls-chain"),
        ("TLS_FULLCHAIN", "tls-fullchain"),
    ] {
        let on_disk = p.read_string(&format!(".runtime/secrets/{file}"));
        assert_eq!(env_line(&text, key), on_disk, "{key} holds the {file} part");
    }
    assert!(env_line(&text, "TLS_KEY").contains("PRIVATE KEY"));
    assert!(!env_line(&text, "TLS_CERT").contains("PRIVATE KEY"));
    // Loaded already, the parts are read again, cut the same way.
    p.cmd(&["load", "--env-output", "out.env"]).run().success();
    assert_eq!(p.read_string("out.env"), text, "unchanged");

    // A pfx (binary) has no env line: refused before anything is written.
    let q = Project::empty();
    q.write("compose.yaml", PARTS);
    q.write(".env.demo", "");
    q.cmd(&["ensure"]).run().success();
    q.cmd(&["load", "--env-output", "out.env"])
        .run()
        .code(2)
        .stderr_has("tls-pfx")
        .stderr_has("env line");
    assert!(!q.exists(".runtime/secrets/tls-key") && !q.exists("out.env"));
}

#[test]
fn verify_warns_ten_days_before_expiry_and_fails_once_expired() {
    let pki = Pki::new();
    let emulator = Emulator::start(&[]);
    let p = Project::empty();
    p.write("compose.yaml", PARTS);

    let soon = pki.leaf_for_days("app.test", 10);
    sdk_set(&emulator, "web-tls", PEM, &pki.pem_bundle(&soon));
    kv(&p, &emulator, &["load"]).run().success();
    let out = kv(&p, &emulator, &["verify", "--json"]).run();
    let json = out.json();
    let checks = json["checks"].as_array().expect("checks");
    let cert: Vec<&serde_json::Value> = checks
        .iter()
        .filter(|c| c["category"] == "certificate")
        .collect();
    assert_eq!(cert.len(), 1, "one line per vault object: {checks:?}");
    assert_eq!(cert[0]["status"], "warn", "{:?}", cert[0]);
    let not_after = cert[0]["not_after"].as_str().expect("the date in --json");
    assert!(cert[0]["message"].as_str().unwrap().contains(not_after));
    let key = std::fs::read_to_string(&soon.key).unwrap();
    assert!(
        !out.stdout.contains(key.lines().nth(1).unwrap()),
        "never the key"
    );

    let now = compose_secrets::testing::clock::unix_now();
    let expired = pki.leaf("app.test", now - 30 * 86_400, now - 86_400);
    sdk_set(&emulator, "web-tls", PEM, &pki.pem_bundle(&expired));
    kv(&p, &emulator, &["load"]).run().success();
    let out = kv(&p, &emulator, &["verify", "--json"]).run().code(1);
    let json = out.json();
    let cert = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["category"] == "certificate")
        .cloned()
        .unwrap();
    assert_eq!(cert["status"], "fail", "{cert}");
    assert!(
        cert["message"].as_str().unwrap().contains("expired"),
        "{cert}"
    );
}
