//! The chain's head anchored in a store that keeps versions (Key Vault), where whoever can write
//! `.runtime` cannot rewind it: dropping the newest lines, or deleting the log together with
//! `state.json`'s head, is then noticed by `verify`.
//!
//! The anchor is a tag (`audit-head` = `lines:mac`) on a small secret of its own, one per host
//! and runtime directory, so several hosts sharing a vault never overwrite each other's head.
//! It is not kept on the signing key itself: a tag update changes a version's `updated` stamp,
//! which drift, `sync` and the rotation policy read as "a new version" (listings carry no
//! version ids). It is written only when the project declares `audit-log-signing-key`, whose
//! store-held value is what makes the chain's lines trustworthy in the first place.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::chain::{compare_with_anchor, AnchorStatus};
use super::SIGNING_KEY_SECRET;
use crate::compose::Project;
use crate::error::{Error, Result};
use crate::files::runtime_dir::RuntimeDir;
use crate::files::state::AuditHead;
use crate::secret::SecretValue;
use crate::store::{NewVersion, SecretStore};

/// The tag that holds the anchored head.
pub const TAG: &str = "audit-head";

/// The anchor secret's value: never read for anything, it only has to exist to carry the tag.
const PLACEHOLDER: &str = "compose-secrets audit chain anchor (not a secret)";

/// The anchor secret's name for this project, host and runtime directory, when the head is
/// anchored at all: the project declares the signing key and the store keeps versions.
pub fn anchor_name(
    project: &Project,
    store: &dyn SecretStore,
    runtime_dir: &Path,
) -> Option<String> {
    project.lookup(SIGNING_KEY_SECRET)?;
    if !store.keeps_versions() {
        return None;
    }
    let absolute = std::path::absolute(runtime_dir).unwrap_or_else(|_| runtime_dir.to_path_buf());
    let mut hash = Sha256::new();
    hash.update(b"compose-secrets audit anchor\0");
    hash.update(super::host_name().as_bytes());
    hash.update(b"\0");
    hash.update(absolute.as_os_str().as_bytes());
    Some(format!(
        "compose-secrets-audit-head-{}",
        hex::encode(&hash.finalize()[..8])
    ))
}

/// The head anchored under `name`: `None` when there is no anchor yet.
pub async fn read(store: &dyn SecretStore, name: &str) -> Result<Option<AuditHead>> {
    Ok(read_with_version(store, name)
        .await?
        .and_then(|(_, head)| head))
}

async fn read_with_version(
    store: &dyn SecretStore,
    name: &str,
) -> Result<Option<(String, Option<AuditHead>)>> {
    match store.get_latest(name).await {
        Ok(fetched) => {
            let head = fetched.info.tags.get(TAG).and_then(|t| parse(t));
            Ok(fetched.info.version.map(|v| (v, head)))
        }
        Err(Error::SecretNotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn parse(tag: &str) -> Option<AuditHead> {
    let (lines, mac) = tag.split_once(':')?;
    let mac_ok = !mac.is_empty() && mac.bytes().all(|b| b.is_ascii_hexdigit());
    Some(AuditHead {
        lines: lines.parse().ok()?,
        mac: mac_ok.then(|| mac.to_string())?,
    })
}

fn format(head: &AuditHead) -> String {
    format!("{}:{}", head.lines, head.mac)
}

/// After a writing command appended to the log: move the anchor to `head`. Never fails the
/// command (its change is done and recorded locally); returns a warning instead when the anchor
/// could not be written, or when the local log does not extend the anchored head, in which case
/// the anchor is left where it is so that `verify` keeps reporting the log that went missing.
pub async fn update(
    store: &dyn SecretStore,
    name: &str,
    runtime: &RuntimeDir,
    head: Option<&AuditHead>,
) -> Option<String> {
    let head = head?;
    let current = match read_with_version(store, name).await {
        Ok(current) => current,
        Err(e) => {
            return Some(format!(
                "the audit chain's head was not anchored in the store: {e}"
            ))
        }
    };
    if let Some((_, Some(anchored))) = &current {
        match compare_with_anchor(Some(runtime), anchored) {
            Ok(AnchorStatus::Matches | AnchorStatus::Lags { .. }) => {}
            Ok(status) => {
                return Some(format!(
                    "the audit anchor in the store ({name}) was left at {} line(s): {}; run \
                     `compose-secrets verify`, and once the log is accounted for, remove the \
                     `{TAG}` tag from {name} to anchor the new log",
                    anchored.lines,
                    status.describe(anchored)
                ))
            }
            Err(e) => return Some(format!("the audit anchor was not updated: {e}")),
        }
    }
    let tags = BTreeMap::from([(TAG.to_string(), format(head))]);
    let written = match current {
        Some((version, _)) => store.set_tags(name, &version, &tags).await.map(|_| ()),
        None => store
            .set_version(
                name,
                &SecretValue::new(PLACEHOLDER.into()),
                &NewVersion::tagged(tags),
            )
            .await
            .map(|_| ()),
    };
    written.err().map(|e| {
        format!(
            "the audit chain's head was not anchored in the store ({e}); `verify` warns until a \
             later load, rotate or sync that writes anchors it"
        )
    })
}

/// [`update`] for a command that knows its project: nothing when the head is not anchored.
pub async fn update_for(
    store: &dyn SecretStore,
    project: &Project,
    runtime_dir: &Path,
    runtime: &RuntimeDir,
    head: Option<&AuditHead>,
) -> Option<String> {
    let name = anchor_name(project, store, runtime_dir)?;
    update(store, &name, runtime, head).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_round_trips_and_garbage_is_no_anchor() {
        let head = AuditHead {
            lines: 12,
            mac: "00ff".into(),
        };
        assert_eq!(parse(&format(&head)), Some(head));
        assert_eq!(parse("12"), None);
        assert_eq!(parse("x:00"), None);
        assert_eq!(parse("3:"), None);
        assert_eq!(parse("3:zz"), None);
    }
}
