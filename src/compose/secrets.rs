//! Top-level secrets as the model needs them: the source Compose takes each from, its
//! `x-compose-secrets` settings, the services that use it, and the owner and mode its file
//! gets when none is declared.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_norway::Value;

use super::services::RunsAs;
use super::{extension, names, OwnerFrom, SecretSource, SecretSpec, ServiceSpec, EXTENSION_KEY};
use crate::error::{Error, Result};

pub(super) fn build_secrets(
    dict: &Value,
    services: &BTreeMap<String, ServiceSpec>,
    keep_in_use: &[String],
) -> Result<Vec<SecretSpec>> {
    let empty = serde_norway::Mapping::new();
    let map = dict
        .get("secrets")
        .and_then(Value::as_mapping)
        .unwrap_or(&empty);
    let mut problems = Vec::new();
    // Compose's consistency check: an enabled service may only mount declared secrets.
    for svc in services.values().filter(|s| s.enabled) {
        let sources = svc
            .mounts
            .iter()
            .map(|m| m.source.as_str())
            .chain(svc.build_secrets.iter().map(String::as_str));
        let mut reported = BTreeSet::new();
        for source in sources {
            if !map.contains_key(source) && reported.insert(source) {
                problems.push(Error::manifest(
                    source,
                    format!(
                        "service `{}` uses it, but the top-level `secrets:` does not declare it",
                        svc.name
                    ),
                ));
            }
        }
    }
    let mut out = Vec::new();
    for (key, def) in map {
        let name = key.as_str().unwrap_or_default().to_string();
        match secret_spec(&name, def, services, keep_in_use) {
            Ok(spec) => out.push(spec),
            Err(e) => problems.push(e),
        }
    }
    Error::all(problems)?;
    Ok(out)
}

fn secret_spec(
    name: &str,
    def: &Value,
    services: &BTreeMap<String, ServiceSpec>,
    keep_in_use: &[String],
) -> Result<SecretSpec> {
    let source = secret_source(name, def)?;
    let ext = extension::secret(def.get(EXTENSION_KEY)).map_err(|m| Error::manifest(name, m))?;
    let default_key = match &source {
        SecretSource::Environment(var) => var.clone(),
        _ => names::default_env_key(name),
    };
    // Whether a `.env` can hold this key is the demo store's question (`check_keys`): in
    // Key Vault mode it does not matter.
    // The parts of one certificate share its `.env` key, as they share its vault object: in
    // demo mode too they are cut from one bundle.
    let default_key = match (&ext.certificate, &ext.vault_name) {
        (Some(_), Some(vault)) => names::default_env_key(vault),
        _ => default_key,
    };
    let env_key = ext.env_key.clone().unwrap_or(default_key);
    let uses = services
        .values()
        .flat_map(|s| s.mounts.iter())
        .filter(|m| m.source == name)
        .cloned()
        .collect();
    let users: Vec<&ServiceSpec> = services
        .values()
        .filter(|s| {
            s.mounts.iter().any(|m| m.source == name) || s.build_secrets.iter().any(|b| b == name)
        })
        .collect();
    // compose-secrets' own secrets (the audit key) need no service to mount them.
    let in_use = users.iter().any(|s| s.enabled) || keep_in_use.iter().any(|k| k == name);
    let readers = owner_from_readers(name, services, &BTreeMap::new());
    let owner_from = match (&ext.owner, &readers) {
        (Some(_), _) => OwnerFrom::Declared,
        (None, Some(_)) => OwnerFrom::ServiceUser,
        (None, None) => OwnerFrom::Runner,
    };
    let (owner_uid, owner_gid) = ext.owner.or(readers).unwrap_or((None, None));
    let mount_mode = agreed(
        services
            .values()
            .filter(|s| s.enabled)
            .flat_map(|s| s.mounts.iter().filter(|m| m.source == name).map(|m| m.mode)),
    )
    .flatten()
    .filter(|m| *m <= 0o777 && m & 0o440 != 0);
    Ok(SecretSpec {
        name: name.to_string(),
        vault_name: ext
            .vault_name
            .clone()
            .unwrap_or_else(|| names::default_vault_name(name)),
        env_key,
        generator: ext.generator.unwrap_or_default(),
        source,
        owner_uid,
        owner_gid,
        owner_from,
        mode: ext.mode.or(mount_mode).unwrap_or(0o400),
        pinned_version: ext.version,
        rotation_hook: ext.rotation_hook,
        hook_env: ext.hook_env,
        rotate_every: ext.rotate_every,
        expiry_grace: ext.expiry_grace,
        certificate: ext
            .certificate
            .map(|part| super::certificate_part::CertificateUse {
                part,
                expiry_warning: ext
                    .expiry_warning
                    .unwrap_or(super::certificate_part::DEFAULT_EXPIRY_WARNING),
            }),
        uses,
        in_use,
    })
}

/// Where Compose takes the secret from: `external` (with its legacy `external.name`), `file`
/// or `environment`.
fn secret_source(name: &str, def: &Value) -> Result<SecretSource> {
    let external = match def.get("external") {
        Some(Value::Bool(b)) => *b,
        Some(Value::Mapping(m)) => {
            if let (Some(legacy), Some(explicit)) = (
                m.get("name").and_then(Value::as_str),
                def.get("name").and_then(Value::as_str),
            ) {
                if legacy != explicit {
                    return Err(Error::manifest(
                        name,
                        "name and external.name conflict; only use name",
                    ));
                }
            }
            true
        }
        _ => false,
    };
    Ok(if external {
        let legacy = def
            .get("external")
            .and_then(|e| e.get("name"))
            .and_then(Value::as_str);
        SecretSource::External {
            name: def
                .get("name")
                .and_then(Value::as_str)
                .or(legacy)
                .unwrap_or(name)
                .to_string(),
        }
    } else if let Some(f) = def.get("file").and_then(Value::as_str) {
        SecretSource::File(PathBuf::from(f))
    } else if let Some(var) = def.get("environment").and_then(Value::as_str) {
        SecretSource::Environment(var.to_string())
    } else {
        return Err(Error::manifest(
            name,
            "must declare either `file` or `environment` (a `driver` alone is not enough)",
        ));
    })
}

/// The owner a secret's file takes from the services that mount it (see `reader_of`), when
/// this process can give it. `named` holds the ids of named users by service, as `owners`
/// looked them up in the images.
pub fn owner_from_readers(
    secret: &str,
    services: &BTreeMap<String, ServiceSpec>,
    named: &BTreeMap<String, (u32, u32)>,
) -> Option<(Option<u32>, Option<u32>)> {
    reader_of(secret, services, named).filter(|&(u, g)| can_give(u, g))
}

/// The one numeric user every enabled service mounting `secret` runs as (`uid`/`gid` of the
/// mount, else its `user:`), when they agree: the owner its file needs so that a non-root
/// service can read it. Services whose user is unknown (no `user:`, or a name not in `named`)
/// are left out: they run as whatever their image says.
fn reader_of(
    secret: &str,
    services: &BTreeMap<String, ServiceSpec>,
    named: &BTreeMap<String, (u32, u32)>,
) -> Option<(Option<u32>, Option<u32>)> {
    let readers = services.values().filter(|s| s.enabled).flat_map(|s| {
        let runs_as = s.runs_as();
        let looked_up = named.get(&s.name).copied();
        s.mounts
            .iter()
            .filter(|m| m.source == secret)
            .map(move |m| {
                let numeric = |v: &Option<String>| v.as_deref().and_then(|v| v.parse::<u32>().ok());
                let (user_uid, user_gid) = match (&runs_as, looked_up) {
                    (Some(RunsAs::Ids(u, g)), _) => (Some(*u), *g),
                    (Some(RunsAs::Named(_)), Some((u, g))) => (Some(u), Some(g)),
                    _ => (None, None),
                };
                (numeric(&m.uid).or(user_uid), numeric(&m.gid).or(user_gid))
            })
    });
    agreed(readers.filter(|(u, _)| u.is_some()))
}

/// The single value of `items` when they all agree; `None` when empty or they differ.
fn agreed<T: PartialEq>(mut items: impl Iterator<Item = T>) -> Option<T> {
    let first = items.next()?;
    items.all(|x| x == first).then_some(first)
}

/// Whether this process can give a file to `uid:gid` (root can; anyone can keep their own).
fn can_give(uid: Option<u32>, gid: Option<u32>) -> bool {
    let euid = nix::unistd::Uid::effective();
    if euid.is_root() {
        return true;
    }
    let groups = nix::unistd::getgroups().unwrap_or_default();
    uid.is_none_or(|u| u == euid.as_raw())
        && gid.is_none_or(|g| {
            g == nix::unistd::Gid::effective().as_raw() || groups.iter().any(|x| x.as_raw() == g)
        })
}
