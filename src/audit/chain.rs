//! Checking the audit chain: canonical JSON and each line's HMAC link to the one before.

use std::collections::BTreeMap;

use hmac::Mac as _;
use serde::Serialize;

use super::{AuditKey, KeySource, MAX_LINE_BYTES, SIGNING_KEY_SECRET};
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
    #[cfg(any(test, feature = "testing"))]
    pub fn ok(&self) -> bool {
        self.first_bad_line.is_none()
            && matches!(self.head, HeadStatus::Matches | HeadStatus::Unknown)
    }
}

/// Check the log in `runtime`: every line's MAC and link, with `keys` and every older key the
/// log's own key-rotation lines unwrap; against `head`; and for rotations left without an
/// outcome. A log that cannot be opened (a symlink, a FIFO, no permission) is an error.
#[cfg(any(test, feature = "testing"))]
pub fn verify_log(
    runtime: Option<&RuntimeDir>,
    keys: &[AuditKey],
    head: Option<&AuditHead>,
) -> Result<ChainReport> {
    verify_chain(runtime, keys, head, false)
}

/// [`verify_log`]; with `store_keys`, `keys` come from the store alone, and a line whose key
/// none of them vouches for is reported as such (the per-install key proves nothing then).
pub fn verify_chain(
    runtime: Option<&RuntimeDir>,
    keys: &[AuditKey],
    head: Option<&AuditHead>,
    store_keys: bool,
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
    // The key the chain was last handed to: a line signed with any other key, even one verify
    // knows, was not written by the holder of the current key.
    let mut current: Option<String> = None;
    for ((number, raw), doc) in raw_lines.iter().zip(&docs) {
        let checked = check_line(raw, &prev, &ids, store_keys)
            .and_then(|mac| follow_key(doc.as_ref(), &mut current).map(|()| mac));
        match checked {
            Ok(mac) => prev = mac,
            Err(reason) => {
                bad = Some((*number, reason));
                break;
            }
        }
    }
    // An empty log is just empty; the head and the anchor say whether it should be.
    if bad.is_none() && !raw_lines.is_empty() && text.last() != Some(&b'\n') {
        bad = Some((
            raw_lines.len(),
            "the last line is incomplete (no trailing newline)".into(),
        ));
    }
    let head = head_status(head, &raw_lines, &docs);
    Ok(ChainReport {
        exists: true,
        lines: raw_lines.len(),
        first_bad_line: bad.as_ref().map(|(n, _)| *n),
        reason: bad.map(|(_, r)| r),
        pending: pending_intents(&raw_lines, &docs),
        head,
    })
}

/// The log against the head recorded in `state.json`: the line it names still holds its mac.
fn head_status(
    head: Option<&AuditHead>,
    raw_lines: &[(usize, &[u8])],
    docs: &[Option<serde_json::Value>],
) -> HeadStatus {
    match head {
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
    }
}

/// Check that a line is signed with the key the chain was last handed to, and move on to the
/// next key at a key-rotation line.
fn follow_key(
    doc: Option<&serde_json::Value>,
    current: &mut Option<String>,
) -> std::result::Result<(), String> {
    let text = |k: &str| {
        doc.and_then(|d| d.get(k))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let key_id = text("key_id");
    if let Some(expected) = current.as_deref() {
        if expected != key_id {
            return Err(format!(
                "signed with key_id {key_id}, but the chain had been handed to key_id {expected}: \
                 no key-rotation line hands it over"
            ));
        }
    }
    *current = Some(if text("action") == "key-rotation" {
        text("next_key_id")
    } else {
        key_id
    });
    Ok(())
}

/// The log against a head anchored in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorStatus {
    /// The log ends at the anchored head.
    Matches,
    /// The log extends the anchored head by `by` lines (a run stopped before it moved the
    /// anchor, or could not write it); the chain itself proves the extension.
    Lags { by: usize },
    /// The log has fewer lines than the anchor: lines were dropped from its end.
    Behind { lines: usize },
    /// The line at the anchored position is not the anchored one: the log was rewritten.
    Diverged { line: usize },
    /// The log is gone.
    Deleted,
}

impl AnchorStatus {
    /// What happened, in words (no line content).
    pub fn describe(&self, anchored: &AuditHead) -> String {
        let had = anchored.lines;
        match self {
            AnchorStatus::Matches => format!("the log ends at the anchored head ({had} line(s))"),
            AnchorStatus::Lags { by } => {
                format!("the log extends the anchored head ({had} line(s)) by {by} line(s)")
            }
            AnchorStatus::Behind { lines: 0 } => {
                format!("the audit log is empty, but the store anchors {had} line(s)")
            }
            AnchorStatus::Behind { lines } => format!(
                "the audit log has {lines} line(s), but the store anchors {had} line(s): lines were \
                 removed from its end"
            ),
            AnchorStatus::Diverged { line } => format!(
                "line {line} is not the line the store anchors there: the log was rewritten"
            ),
            AnchorStatus::Deleted => format!(
                "the audit log is gone, but the store anchors {had} line(s): it was deleted"
            ),
        }
    }
}

/// Compare the log in `runtime` with a head anchored in the store.
pub fn compare_with_anchor(
    runtime: Option<&RuntimeDir>,
    anchored: &AuditHead,
) -> Result<AnchorStatus> {
    let text = match runtime {
        Some(r) => r.read(AUDIT_LOG, MAX_LOG_BYTES)?,
        None => None,
    };
    let Some(text) = text else {
        return Ok(if anchored.lines == 0 {
            AnchorStatus::Matches
        } else {
            AnchorStatus::Deleted
        });
    };
    let lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|raw| !raw.is_empty())
        .collect();
    if lines.len() < anchored.lines {
        return Ok(AnchorStatus::Behind { lines: lines.len() });
    }
    if anchored.lines > 0 {
        let mac = serde_json::from_slice::<serde_json::Value>(lines[anchored.lines - 1])
            .ok()
            .and_then(|d| d.get("mac").and_then(|m| m.as_str()).map(str::to_string));
        if mac.as_deref() != Some(anchored.mac.as_str()) {
            return Ok(AnchorStatus::Diverged {
                line: anchored.lines,
            });
        }
    }
    Ok(match lines.len() - anchored.lines {
        0 => AnchorStatus::Matches,
        by => AnchorStatus::Lags { by },
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
    store_keys: bool,
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
        .ok_or_else(|| unknown_key(obj, key_id, store_keys))?;
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

/// Why a line's key is not one verify trusts.
fn unknown_key(
    line: &serde_json::Map<String, serde_json::Value>,
    key_id: &str,
    store_keys: bool,
) -> String {
    let local = line.get("key").and_then(|k| k.as_str()) == Some("local");
    if store_keys && local {
        format!(
            "signed with a per-install key (key_id {key_id}) that the store's {SIGNING_KEY_SECRET} \
             does not vouch for: no key-rotation line hands it over to the store's key, and anyone \
             who can write .runtime can make such a key"
        )
    } else if store_keys {
        format!(
            "signed with a key (key_id {key_id}) that is neither the store's {SIGNING_KEY_SECRET} \
             nor handed over to it by a key-rotation line"
        )
    } else {
        format!(
            "signed with a key verify does not have (key_id {key_id}): the signing key changed \
             without a key-rotation line, or this is another project's log"
        )
    }
}
