//! Checking the audit chain: canonical JSON and each line's HMAC link to the one before.

use std::collections::BTreeMap;

use hmac::Mac as _;
use serde::Serialize;

use super::{AuditKey, KeySource, MAX_LINE_BYTES};
use crate::error::Result;
use crate::files::runtime_dir::{RuntimeDir, AUDIT_LOG};
use crate::files::state::AuditHead;

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
    /// Whether the log exists at all.
    pub exists: bool,
    /// Lines read (non-empty ones).
    pub lines: usize,
    /// 1-based number of the first line that fails, if any.
    pub first_bad_line: Option<usize>,
    /// Why it fails (never any line content).
    pub reason: Option<String>,
    /// Rotations whose `intent` line has no outcome after it: (line, secret).
    pub pending: Vec<(usize, String)>,
    pub head: HeadStatus,
}

/// The log against the head `state.json` recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeadStatus {
    /// The log holds the recorded head (and maybe lines appended after it).
    Matches,
    /// No head recorded (a log from before heads were kept, or state.json was removed).
    Unknown,
    /// Fewer lines than the head says: lines were dropped from the end, or all of them.
    Truncated { lines: usize, expected: usize },
    /// The line at the head's position is not the one recorded: the log was rewritten.
    Rewritten { line: usize },
    /// The log is gone but the head says it had lines.
    Deleted { expected: usize },
}

impl ChainReport {
    pub fn ok(&self) -> bool {
        self.first_bad_line.is_none()
            && matches!(self.head, HeadStatus::Matches | HeadStatus::Unknown)
    }
}

/// Check the log in `runtime`: every line's MAC and link, with `keys` and every older key the
/// log's own key-rotation lines unwrap; against `head`; and for rotations left without an
/// outcome. A log that cannot be opened (a symlink, a FIFO, no permission) is an error.
pub fn verify_log(
    runtime: Option<&RuntimeDir>,
    keys: &[AuditKey],
    head: Option<&AuditHead>,
) -> Result<ChainReport> {
    let text = match runtime {
        Some(r) => r.read(AUDIT_LOG, MAX_LOG_BYTES)?,
        None => None,
    };
    let Some(text) = text else {
        return Ok(ChainReport {
            exists: false,
            lines: 0,
            first_bad_line: None,
            reason: None,
            pending: Vec::new(),
            head: match head {
                Some(h) if h.lines > 0 => HeadStatus::Deleted { expected: h.lines },
                _ => HeadStatus::Matches,
            },
        });
    };
    let raw_lines: Vec<(usize, &[u8])> = text
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, raw)| !raw.is_empty())
        .map(|(i, raw)| (i + 1, raw))
        .collect();
    let docs: Vec<Option<serde_json::Value>> = raw_lines
        .iter()
        .map(|(_, raw)| serde_json::from_slice(raw).ok())
        .collect();
    let keys = with_unwrapped_keys(keys, &docs);
    let ids: Vec<(String, &AuditKey)> = keys.iter().map(|k| (k.id(), k)).collect();
    let mut prev = String::new();
    let mut bad: Option<(usize, String)> = None;
    let mut macs: Vec<String> = Vec::with_capacity(raw_lines.len());
    for (number, raw) in &raw_lines {
        match check_line(raw, &prev, &ids) {
            Ok(mac) => {
                prev = mac.clone();
                macs.push(mac);
            }
            Err(reason) => {
                bad = Some((*number, reason));
                break;
            }
        }
    }
    if bad.is_none() && text.last() != Some(&b'\n') {
        bad = Some((
            raw_lines.len(),
            "the last line is incomplete (no trailing newline)".into(),
        ));
    }
    let head = match head {
        None => HeadStatus::Unknown,
        Some(h) if raw_lines.len() < h.lines => HeadStatus::Truncated {
            lines: raw_lines.len(),
            expected: h.lines,
        },
        Some(h) if h.lines == 0 => HeadStatus::Matches,
        Some(h) => {
            let at = docs
                .get(h.lines - 1)
                .and_then(|d| d.as_ref())
                .and_then(|d| d.get("mac"))
                .and_then(|m| m.as_str());
            if at == Some(h.mac.as_str()) {
                HeadStatus::Matches
            } else {
                HeadStatus::Rewritten {
                    line: raw_lines[h.lines - 1].0,
                }
            }
        }
    };
    Ok(ChainReport {
        exists: true,
        lines: raw_lines.len(),
        first_bad_line: bad.as_ref().map(|(n, _)| *n),
        reason: bad.map(|(_, r)| r),
        pending: pending_intents(&raw_lines, &docs),
        head,
    })
}

/// The logs compose-secrets writes stay far below this; a bigger file is not read whole.
const MAX_LOG_BYTES: u64 = 512 * 1024 * 1024;

/// `keys`, plus every key a key-rotation line hands over from, unwrapped with the key it hands
/// over to (repeated until nothing new turns up: each older key unlocks the one before it).
fn with_unwrapped_keys(keys: &[AuditKey], docs: &[Option<serde_json::Value>]) -> Vec<AuditKey> {
    let mut known: Vec<AuditKey> = keys.to_vec();
    loop {
        let mut found = false;
        for doc in docs.iter().flatten() {
            if doc.get("action").and_then(|a| a.as_str()) != Some("key-rotation") {
                continue;
            }
            let text = |k: &str| doc.get(k).and_then(|v| v.as_str()).unwrap_or_default();
            let (old_id, next_id) = (text("key_id"), text("next_key_id"));
            if known.iter().any(|k| k.id() == old_id) {
                continue;
            }
            let Some(next) = known.iter().find(|k| k.id() == next_id) else {
                continue;
            };
            let source = serde_json::from_value::<KeySource>(doc["key"].clone())
                .unwrap_or(KeySource::SigningKeySecret);
            if let Some(old) = next.unwrap_key(text("wrapped_key"), text("prev"), source, old_id) {
                known.push(old);
                found = true;
            }
        }
        if !found {
            return known;
        }
    }
}

/// Rotations whose last line is an `intent`: the run stopped between its push and its outcome.
fn pending_intents(
    raw_lines: &[(usize, &[u8])],
    docs: &[Option<serde_json::Value>],
) -> Vec<(usize, String)> {
    let mut last: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    for ((number, _), doc) in raw_lines.iter().zip(docs) {
        let Some(doc) = doc else { continue };
        if !matches!(
            doc.get("action").and_then(|a| a.as_str()),
            Some("rotate" | "sync")
        ) {
            continue;
        }
        let Some(secret) = doc.get("secret").and_then(|s| s.as_str()) else {
            continue;
        };
        let intent = doc.get("outcome").and_then(|o| o.as_str()) == Some("intent");
        last.insert(secret.to_string(), (*number, intent));
    }
    let mut pending: Vec<(usize, String)> = last
        .into_iter()
        .filter(|(_, (_, intent))| *intent)
        .map(|(secret, (number, _))| (number, secret))
        .collect();
    pending.sort();
    pending
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
            format!(
                "signed with a key verify does not have (key_id {key_id}): the signing key changed without a \
                 key-rotation line, or this is another project's log"
            )
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
