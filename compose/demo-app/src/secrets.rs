//! What the container sees under its secrets directory, as value-free fingerprints.
//!
//! Every request rescans the directory, so a test observes exactly what the running
//! container can read (a bind-mounted file pins its inode: a rotated file shows up
//! only after a restart). Values are read, hashed and dropped; only names and
//! `sha256:<16 hex>` fingerprints ever leave this module.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use sha2::{Digest, Sha256};

/// What the health endpoint decides from.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Readable, non-empty secrets: name -> fingerprint.
    pub fingerprints: BTreeMap<String, String>,
    /// Present but unreadable (e.g. owned by another uid) or empty.
    pub unusable: BTreeSet<String>,
    /// Secrets whose value starts with the reject prefix (a test's way to make a value "bad").
    pub rejected: BTreeSet<String>,
    /// Why the directory itself could not be listed.
    pub dir_error: Option<String>,
}

/// The health verdict and its JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub healthy: bool,
    pub json: String,
}

/// The short, non-reversible fingerprint the product computes too: `sha256:` + the first
/// 8 bytes of the SHA-256 digest in hex.
pub fn fingerprint(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Read every secret file in `dir` (hidden entries and directories skipped), and each
/// required name directly: a directory the app may enter but not list still works.
pub fn scan(dir: &Path, required: &[String], reject_prefix: &[u8]) -> Scan {
    let mut scan = Scan::default();
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || fs::metadata(entry.path()).is_ok_and(|m| m.is_dir()) {
                    continue;
                }
                scan.read_secret(dir, name, reject_prefix);
            }
        }
        Err(e) => scan.dir_error = Some(format!("cannot list {}: {}", dir.display(), e.kind())),
    }
    for name in required {
        let seen = scan.fingerprints.contains_key(name) || scan.unusable.contains(name);
        let plain = !name.contains('/') && !name.starts_with('.');
        if !seen && plain && fs::symlink_metadata(dir.join(name)).is_ok() {
            scan.read_secret(dir, name.clone(), reject_prefix);
        }
    }
    scan
}

impl Scan {
    fn read_secret(&mut self, dir: &Path, name: String, reject_prefix: &[u8]) {
        match fs::read(dir.join(&name)) {
            Ok(bytes) if !bytes.is_empty() => {
                if !reject_prefix.is_empty() && bytes.starts_with(reject_prefix) {
                    self.rejected.insert(name.clone());
                }
                self.fingerprints.insert(name, fingerprint(&bytes));
            }
            // Unreadable (EACCES for the wrong owner), empty, or a dangling link.
            _ => {
                self.unusable.insert(name);
            }
        }
    }
}

/// Healthy only when every required secret and every file present is readable and
/// non-empty, none is rejected, and there is at least one secret.
pub fn health_report(scan: &Scan, required: &[String], instance: Option<&str>) -> HealthReport {
    let mut missing: BTreeSet<String> = scan.unusable.clone();
    missing.extend(
        required
            .iter()
            .filter(|name| !scan.fingerprints.contains_key(*name))
            .cloned(),
    );
    let reason = scan.fingerprints.is_empty().then(|| {
        scan.dir_error
            .clone()
            .unwrap_or_else(|| "no readable secrets in the secrets directory".to_string())
    });
    let healthy = missing.is_empty() && scan.rejected.is_empty() && reason.is_none();
    let mut fields = vec![
        format!(
            "\"status\":{}",
            json_string(if healthy { "healthy" } else { "unhealthy" })
        ),
        format!("\"secrets\":{}", json_object(&scan.fingerprints)),
    ];
    if !healthy {
        fields.push(format!("\"missing\":{}", json_array(&missing)));
        fields.push(format!("\"rejected\":{}", json_array(&scan.rejected)));
    }
    if let Some(reason) = reason {
        fields.push(format!("\"reason\":{}", json_string(&reason)));
    }
    if let Some(instance) = instance {
        fields.push(format!("\"instance\":{}", json_string(instance)));
    }
    HealthReport {
        healthy,
        json: format!("{{{}}}", fields.join(",")),
    }
}

fn json_object(map: &BTreeMap<String, String>) -> String {
    let members: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{}:{}", json_string(k), json_string(v)))
        .collect();
    format!("{{{}}}", members.join(","))
}

fn json_array<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| json_string(s)).collect();
    format!("[{}]", items.join(","))
}

/// A JSON string literal (names come from the filesystem and may hold anything).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("demo-app-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn fingerprint_is_sha256_prefix() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223...
        assert_eq!(fingerprint(b"abc"), "sha256:ba7816bf8f01cfea");
    }

    #[test]
    fn healthy_report_lists_fingerprints_not_values() {
        let dir = temp_dir("healthy");
        fs::write(dir.join("db-password"), "s3cret-value").unwrap();
        fs::create_dir(dir.join("subdir")).unwrap();
        fs::write(dir.join(".hidden"), "x").unwrap();
        let scan = scan(&dir, &[], b"");
        let report = health_report(&scan, &["db-password".into()], Some("abc123"));
        assert!(report.healthy, "{}", report.json);
        assert_eq!(
            report.json,
            format!(
                "{{\"status\":\"healthy\",\"secrets\":{{\"db-password\":\"{}\"}},\"instance\":\"abc123\"}}",
                fingerprint(b"s3cret-value")
            )
        );
        assert!(!report.json.contains("s3cret"));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_empty_and_rejected_secrets_are_unhealthy() {
        let dir = temp_dir("unhealthy");
        fs::write(dir.join("a"), "BAD-new-value").unwrap();
        fs::write(dir.join("empty"), "").unwrap();
        let scan = scan(&dir, &[], b"BAD-");
        let report = health_report(&scan, &["a".into(), "b".into()], None);
        assert!(!report.healthy);
        assert!(
            report.json.contains("\"missing\":[\"b\",\"empty\"]"),
            "{}",
            report.json
        );
        assert!(
            report.json.contains("\"rejected\":[\"a\"]"),
            "{}",
            report.json
        );
        assert!(!report.json.contains("new-value"));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn no_secrets_at_all_is_unhealthy() {
        let dir = temp_dir("none");
        let report = health_report(&scan(&dir, &[], b""), &[], None);
        assert!(!report.healthy);
        assert!(report.json.contains("\"reason\""));
        let gone = health_report(&scan(&dir.join("nope"), &[], b""), &[], None);
        assert!(!gone.healthy);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn required_secrets_are_read_even_when_the_directory_cannot_be_listed() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = temp_dir("unlistable");
        fs::write(dir.join("token"), "t0ken").unwrap();
        // Enter but not list (as root, permission bits do not stop the listing; either way
        // the required secret must be found).
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o311)).unwrap();
        let scan = scan(&dir, &["token".into()], b"");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(scan.fingerprints.get("token"), Some(&fingerprint(b"t0ken")));
        assert!(health_report(&scan, &["token".into()], None).healthy);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }
}
