//! Certificate expiry (`x-compose-secrets.certificate`): each certificate's `notAfter`, read
//! from the file a server serves; a WARN within `expiry-warning`, a FAIL once it has passed.

use super::*;
use crate::certificate::{leaf_of_file, CertificateUse};

/// One line per vault object, from the first of its parts that holds the leaf.
pub fn check_certificates(f: &mut Findings, locals: &[LocalSecret<'_>], now: i64) {
    let mut seen = std::collections::BTreeSet::new();
    for local in locals {
        let Some(CertificateUse {
            part,
            expiry_warning,
        }) = local.spec.certificate
        else {
            continue;
        };
        let Some(value) = &local.value else { continue };
        let Some(leaf) = leaf_of_file(part, value) else {
            continue;
        };
        if !seen.insert(local.spec.vault_name.to_ascii_lowercase()) {
            continue;
        }
        let date = crate::clock::rfc3339(leaf.not_after);
        let left = leaf.not_after - now;
        let days = left.div_euclid(86_400);
        let warn_secs = i64::try_from(expiry_warning.as_secs()).unwrap_or(i64::MAX);
        let (status, message) = if left <= 0 {
            (
                Status::Fail,
                format!(
                    "certificate `{}` expired on {date}; Key Vault renews it, `compose-secrets sync` brings the renewal",
                    leaf.subject
                ),
            )
        } else if left <= warn_secs {
            (
                Status::Warn,
                format!(
                    "certificate `{}` expires on {date}, in {days} days (expiry-warning {} days)",
                    leaf.subject,
                    warn_secs / 86_400
                ),
            )
        } else {
            (
                Status::Pass,
                format!("certificate `{}` valid until {date}", leaf.subject),
            )
        };
        f.add(status, "certificate", &local.spec.name, message);
        if let Some(check) = f.checks.last_mut() {
            check.not_after = Some(date);
        }
    }
}
