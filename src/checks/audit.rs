//! The audit log: its HMAC chain, its head against `state.json`, and rotations left without an
//! outcome.

use super::*;
use crate::audit::{AuditKey, ChainReport, HeadStatus};
use crate::files::runtime_dir::{RuntimeDir, AUDIT_LOG};

/// Check the audit log with `keys` (older keys come from the log's key-rotation lines) against
/// the head the state recorded. `busy`: another run holds the lock right now (a rotation in
/// flight has an intent without an outcome yet).
pub fn check_audit(
    f: &mut Findings,
    runtime: Option<&RuntimeDir>,
    log_path: &Path,
    keys: &[AuditKey],
    state: &State,
    busy: bool,
) {
    let subject = f.path_subject(log_path);
    let report = match crate::audit::verify_log(runtime, keys, state.audit_head.as_ref()) {
        Ok(report) => report,
        Err(e) => {
            f.add(Status::Fail, "audit", subject, e.to_string());
            return;
        }
    };
    report_chain(f, &subject, &report);
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

fn report_chain(f: &mut Findings, subject: &str, report: &ChainReport) {
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
    match report.first_bad_line {
        None => f.add(
            Status::Pass,
            "audit",
            subject,
            format!("HMAC chain intact ({} line(s))", report.lines),
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
