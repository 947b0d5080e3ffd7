//! The audit log: its HMAC chain, its head against `state.json`, and rotations left without an
//! outcome.

use super::*;
use crate::audit::{Anchor, Basis, ChainReport, HeadStatus, Verification, SIGNING_KEY_SECRET};
use crate::files::runtime_dir::{RuntimeDir, AUDIT_LOG};

/// Check the audit log with the keys in `verification` (older keys come from the log's
/// key-rotation lines) against the head the state recorded and the head anchored in the store.
/// `busy`: another run holds the lock right now (a rotation in flight has an intent without an
/// outcome yet).
pub fn check_audit(
    f: &mut Findings,
    runtime: Option<&RuntimeDir>,
    log_path: &Path,
    verification: &Verification,
    state: &State,
    busy: bool,
) {
    let subject = f.path_subject(log_path);
    let store_keys = verification.basis == Basis::Store;
    let report = match crate::audit::verify_chain(
        runtime,
        &verification.keys,
        state.audit_head.as_ref(),
        store_keys,
    ) {
        Ok(report) => report,
        Err(e) => {
            f.add(Status::Fail, "audit", subject, e.to_string());
            return;
        }
    };
    report_chain(f, &subject, &report, store_keys);
    report_basis(f, &subject, &verification.basis, &verification.anchor);
    report_anchor(f, runtime, &subject, &verification.anchor, &report);
    for (line, secret) in &report.pending {
        let status = if busy { Status::Warn } else { Status::Fail };
        f.add(
            status,
            "audit",
            &subject,
            format!(
                "line {line}: the rotation of secret {secret} has no outcome{}",
                if busy {
                    " yet (another compose-secrets is running)"
                } else {
                    ": the run stopped between its intent and its end; compare the store's current \
                     version with the file (`compose-secrets verify`'s drift check) and run `compose-secrets load`"
                }
            ),
        );
    }
}

/// What the keys in use can prove, said plainly when `.runtime` alone holds them.
fn report_basis(f: &mut Findings, subject: &str, basis: &Basis, anchor: &Anchor) {
    if let Basis::Local(why) = basis {
        f.add(
            Status::Skip,
            "audit",
            subject,
            format!(
                "{why}, so the chain is checked with the per-install key .runtime/audit.key: it \
                 detects accidental corruption and edits by someone without that file, but anyone \
                 who can write .runtime can re-sign the whole log with a key of their own \
                 (declare {SIGNING_KEY_SECRET} and keep it in the store to have every line vouched \
                 for by the store)"
            ),
        );
    }
    if let (Basis::Store, Anchor::NotKept(why)) = (basis, anchor) {
        f.add(
            Status::Skip,
            "audit",
            subject,
            format!(
                "{why}: the chain head is kept only in .runtime/state.json, so dropping the newest \
                 lines together with state.json's audit_head, or deleting both, is not detected \
                 (lines re-signed with another key are: they must be vouched for by the store's \
                 {SIGNING_KEY_SECRET})"
            ),
        );
    }
}

/// The log against the head anchored in the store.
fn report_anchor(
    f: &mut Findings,
    runtime: Option<&RuntimeDir>,
    subject: &str,
    anchor: &Anchor,
    report: &ChainReport,
) {
    let anchored = match anchor {
        Anchor::NotKept(_) => return,
        Anchor::Missing if report.lines == 0 => return,
        Anchor::Missing => {
            f.add(
                Status::Warn,
                "audit",
                subject,
                "no chain head is anchored in the store yet (the identity needs permission to set \
                 secrets); the next load, rotate or sync anchors it",
            );
            return;
        }
        Anchor::Unreadable(e) => {
            f.add(
                Status::Warn,
                "audit",
                subject,
                format!("the chain head anchored in the store could not be read: {e}"),
            );
            return;
        }
        Anchor::At(head) => head,
    };
    let status = match crate::audit::compare_with_anchor(runtime, anchored) {
        Ok(status) => status,
        Err(e) => {
            f.add(Status::Fail, "audit", subject, e.to_string());
            return;
        }
    };
    let (level, message) = match &status {
        crate::audit::AnchorStatus::Matches => (
            Status::Pass,
            format!(
                "chain head anchored in the store: the log ends at it ({} line(s))",
                anchored.lines
            ),
        ),
        crate::audit::AnchorStatus::Lags { .. } => (
            Status::Warn,
            format!(
                "{}: a run stopped before it moved the anchor, or could not write it; the next \
                 load, rotate or sync moves it",
                status.describe(anchored)
            ),
        ),
        _ => (Status::Fail, status.describe(anchored)),
    };
    f.add(level, "audit", subject, message);
}

fn report_chain(f: &mut Findings, subject: &str, report: &ChainReport, store_keys: bool) {
    match &report.head {
        HeadStatus::Deleted { expected } => {
            f.add(
                Status::Fail,
                "audit",
                subject,
                format!("the audit log is gone, but it had {expected} line(s): it was deleted"),
            );
            return;
        }
        HeadStatus::Truncated { lines: 0, expected } => f.add(
            Status::Fail,
            "audit",
            subject,
            format!("the audit log is empty, but state.json recorded {expected} line(s): it was emptied"),
        ),
        HeadStatus::Truncated { lines, expected } => f.add(
            Status::Fail,
            "audit",
            subject,
            format!(
                "the audit log has {lines} line(s) but had {expected}: its newest lines were removed"
            ),
        ),
        HeadStatus::Rewritten { line } => f.add(
            Status::Fail,
            "audit",
            subject,
            format!("line {line} is not the line compose-secrets last wrote there: the log was rewritten"),
        ),
        HeadStatus::Unknown if report.exists && report.lines > 0 => f.add(
            Status::Warn,
            "audit",
            subject,
            "no chain head recorded in state.json, so dropped newest lines could not be noticed; \
             the next load or rotate records it",
        ),
        HeadStatus::Unknown | HeadStatus::Matches => {}
    }
    if !report.exists {
        f.add(Status::Skip, "audit", subject, "no audit log yet");
        return;
    }
    if report.lines == 0 && report.first_bad_line.is_none() {
        if !matches!(report.head, HeadStatus::Truncated { .. }) {
            f.add(
                Status::Skip,
                "audit",
                subject,
                "the audit log is empty: nothing recorded yet",
            );
        }
        return;
    }
    match report.first_bad_line {
        None => f.add(
            Status::Pass,
            "audit",
            subject,
            if store_keys {
                format!(
                    "HMAC chain intact ({} line(s)), every line vouched for by the store's {SIGNING_KEY_SECRET}",
                    report.lines
                )
            } else {
                format!("HMAC chain intact ({} line(s))", report.lines)
            },
        ),
        Some(line) => f.add(
            Status::Fail,
            "audit",
            subject,
            format!(
                "chain broken at line {line}: {}",
                report.reason.clone().unwrap_or_default()
            ),
        ),
    }
}

/// Where the audit log is, for findings.
pub fn audit_log_path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(AUDIT_LOG)
}

/// Rotations whose hook's rollback failed (exit 9) and that no later committed `rotate` of the
/// secret has superseded: the hook's target (a database user, an external service) may still
/// hold the new value, and nothing else `verify` reads can see it. A rollback that failed in
/// the store, the files or the containers is not reported here: the drift and container
/// checks read those as they are now, so they fail while it matters and pass once it is
/// fixed by hand.
pub fn check_failed_rollbacks(f: &mut Findings, runtime: Option<&RuntimeDir>, log_path: &Path) {
    let Some(Ok(Some(bytes))) = runtime.map(|r| r.read(AUDIT_LOG, MAX_AUDIT_READ)) else {
        return;
    };
    let subject = f.path_subject(log_path);
    for (line, secret, hook) in unresolved_rollback_failures(&String::from_utf8_lossy(&bytes)) {
        if !hook {
            continue;
        }
        f.add(
            Status::Fail,
            "audit",
            &subject,
            format!(
                "line {line}: the rotation of secret {secret} failed and its hook's rollback failed,                  so the rotation hook's target may still hold the new value; fix what that run                  named, then run `compose-secrets rotate {secret}`"
            ),
        );
    }
}

/// The audit logs compose-secrets writes stay far below this.
const MAX_AUDIT_READ: u64 = 512 * 1024 * 1024;

/// (line, secret, whether the hook's rollback failed) of each rollback failure still open.
fn unresolved_rollback_failures(text: &str) -> Vec<(usize, String, bool)> {
    let mut open: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(raw) else {
            continue;
        };
        let field = |k: &str| doc.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        let ok = field("outcome") == "ok";
        match (field("action"), doc.get("secret").and_then(|s| s.as_str())) {
            ("rotate" | "sync", Some(secret)) if field("outcome") == "rollback-failed" => {
                open.insert(
                    secret.to_string(),
                    (i + 1, field("hook") == "rollback-failed"),
                );
            }
            ("rotate", Some(secret)) if ok => {
                open.remove(secret);
            }
            ("sync", Some(secret)) if ok => {
                open.retain(|s, (_, hook)| s != secret || *hook);
            }
            ("load", None) if ok => {
                let covered = |s: &str| !doc["new_version"][s].is_null();
                open.retain(|s, (_, hook)| *hook || !covered(s));
            }
            _ => {}
        }
    }
    let mut found: Vec<_> = open
        .into_iter()
        .map(|(secret, (line, hook))| (line, secret, hook))
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod rollback_tests {
    use super::unresolved_rollback_failures;

    #[test]
    fn a_failed_rollback_stays_until_something_supersedes_it() {
        let failed_hook = r#"{"action":"rotate","secret":"db","outcome":"rollback-failed","hook":"rollback-failed"}"#;
        let failed_store =
            r#"{"action":"rotate","secret":"api","outcome":"rollback-failed","hook":null}"#;
        let load = r#"{"action":"load","secret":["api","db"],"outcome":"ok","new_version":{"api":"v2","db":"v2"}}"#;
        let rotated = r#"{"action":"rotate","secret":"db","outcome":"ok","hook":"ok"}"#;
        let log = [failed_hook, failed_store].join("\n");
        assert_eq!(
            unresolved_rollback_failures(&log),
            [(1, "db".to_string(), true), (2, "api".to_string(), false)]
        );
        // A load covers the store, the file and the state, not the hook's target.
        let log = [failed_hook, failed_store, load].join("\n");
        assert_eq!(
            unresolved_rollback_failures(&log),
            [(1, "db".to_string(), true)]
        );
        let log = [failed_hook, failed_store, load, rotated].join("\n");
        assert!(unresolved_rollback_failures(&log).is_empty());
    }
}
