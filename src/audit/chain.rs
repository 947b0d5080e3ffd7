//! Checking the audit chain: canonical JSON and each line's HMAC link to the one before.

use std::fs::OpenOptions;
use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use hmac::Mac as _;
use serde::Serialize;

use super::{AuditKey, MAX_LINE_BYTES};
use crate::error::{Error, Result};

/// JSON with object keys sorted at every level and no whitespace: the bytes the MAC covers.
pub fn canonical(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Result of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Lines read (non-empty ones).
    pub lines: usize,
    /// 1-based number of the first line that fails, if any.
    pub first_bad_line: Option<usize>,
    /// Why it fails (never any line content).
    pub reason: Option<String>,
}

impl ChainReport {
    pub fn ok(&self) -> bool {
        self.first_bad_line.is_none()
    }
}

/// Check every line's MAC and link with one key. A missing log is an empty, valid chain.
pub fn verify_chain(path: &Path, key: &AuditKey) -> Result<ChainReport> {
    verify_chain_with_keys(path, std::slice::from_ref(key))
}

/// As [`verify_chain`], with every key that may have signed lines (e.g. all versions of a
/// rotated `audit-log-signing-key`); each line names its key by `key_id`.
pub fn verify_chain_with_keys(path: &Path, keys: &[AuditKey]) -> Result<ChainReport> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ChainReport {
                lines: 0,
                first_bad_line: None,
                reason: None,
            })
        }
        Err(e) => return Err(Error::io(path, "open audit log")(e)),
    };
    let mut text = Vec::new();
    file.take(512 * 1024 * 1024)
        .read_to_end(&mut text)
        .map_err(Error::io(path, "read audit log"))?;
    let ids: Vec<(String, &AuditKey)> = keys.iter().map(|k| (k.id(), k)).collect();
    let mut prev = String::new();
    let mut lines = 0;
    let mut bad: Option<(usize, String)> = None;
    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        if raw.is_empty() {
            continue;
        }
        lines += 1;
        if bad.is_some() {
            continue;
        }
        match check_line(raw, &prev, &ids) {
            Ok(mac) => prev = mac,
            Err(reason) => bad = Some((number, reason)),
        }
    }
    if bad.is_none() && !text.is_empty() && text.last() != Some(&b'\n') {
        bad = Some((
            lines,
            "the last line is incomplete (no trailing newline)".into(),
        ));
    }
    Ok(ChainReport {
        lines,
        first_bad_line: bad.as_ref().map(|(n, _)| *n),
        reason: bad.map(|(_, r)| r),
    })
}

fn check_line(
    raw: &[u8],
    prev: &str,
    keys: &[(String, &AuditKey)],
) -> std::result::Result<String, String> {
    if raw.len() > MAX_LINE_BYTES {
        return Err("line too long".into());
    }
    let text = std::str::from_utf8(raw).map_err(|_| "not UTF-8".to_string())?;
    let mut doc: serde_json::Value =
        serde_json::from_str(text).map_err(|_| "not valid JSON".to_string())?;
    if canonical(&doc) != text {
        return Err("not in canonical form (edited by hand?)".into());
    }
    let obj = doc
        .as_object_mut()
        .ok_or_else(|| "not a JSON object".to_string())?;
    let mac = match obj.remove("mac") {
        Some(serde_json::Value::String(m)) => m,
        _ => return Err("no `mac` field".into()),
    };
    let line_prev = obj.get("prev").and_then(|p| p.as_str()).unwrap_or_default();
    if line_prev != prev {
        return Err(if prev.is_empty() {
            "the chain does not start here (lines before it were removed?)".into()
        } else {
            "`prev` does not match the previous line's mac (a line was removed, reordered or edited)"
                .into()
        });
    }
    let key_id = obj
        .get("key_id")
        .and_then(|k| k.as_str())
        .unwrap_or_default();
    let key = keys
        .iter()
        .find(|(id, _)| id == key_id)
        .map(|(_, k)| *k)
        .ok_or_else(|| {
            format!("signed with a key not given to verify (key_id {key_id}); wrong key, or the signing key was rotated")
        })?;
    let body = canonical(&doc);
    // Constant-time compare via the hmac crate.
    let mut check = key.hmac();
    check.update(prev.as_bytes());
    check.update(body.as_bytes());
    let given = hex::decode(&mac).map_err(|_| "`mac` is not hex".to_string())?;
    check
        .verify_slice(&given)
        .map_err(|_| "mac mismatch: the line was altered or signed with another key".to_string())?;
    Ok(mac)
}
