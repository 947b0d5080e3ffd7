//! The audit log's HMAC chain.

use super::*;

/// The audit log's HMAC chain, against any of `keys` (the signing key changes on rotation).
pub fn check_audit(f: &mut Findings, path: &Path, keys: &[crate::audit::AuditKey]) {
    let subject = f.path_subject(path);
    if !path.exists() {
        f.add(Status::Skip, "audit", subject, "no audit log yet");
        return;
    }
    match crate::audit::verify_chain_with_keys(path, keys) {
        Ok(report) => match report.first_bad_line {
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
                    report.reason.unwrap_or_default()
                ),
            ),
        },
        Err(e) => f.add(Status::Fail, "audit", subject, e.to_string()),
    }
}
