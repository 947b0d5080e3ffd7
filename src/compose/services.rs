//! Services as the model needs them: enabled by profiles, their secret mounts in Compose's
//! normalised form, `environment:` and what it interpolated, `env_file`s, and who they run as.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_norway::Value;

use super::{extension, loader, merge, SecretUse, ServiceSpec, EXTENSION_KEY};
use crate::error::{Error, Result};

pub(super) fn build_services(
    dict: &Value,
    profiles: &[String],
    mut references: loader::References,
) -> Result<BTreeMap<String, ServiceSpec>> {
    let mut services = BTreeMap::new();
    let Some(map) = dict.get("services").and_then(Value::as_mapping) else {
        return Ok(services);
    };
    let mut problems = Vec::new();
    for (name, body) in map {
        let name = name.as_str().unwrap_or_default().to_string();
        let own: Vec<String> = body
            .get("profiles")
            .and_then(Value::as_sequence)
            .map(|p| p.iter().map(merge::scalar_text).collect())
            .unwrap_or_default();
        let enabled = own.is_empty()
            || profiles.iter().any(|p| p == "*")
            || own.iter().any(|p| profiles.contains(p));
        let health_url = match extension::service(body.get(EXTENSION_KEY)) {
            Ok(url) => url,
            Err(m) => {
                problems.push(Error::config(
                    PathBuf::new(),
                    format!("service `{name}`: {m}"),
                ));
                None
            }
        };
        let mut mounts = Vec::new();
        if let Some(items) = body.get("secrets").and_then(Value::as_sequence) {
            for (i, item) in items.iter().enumerate() {
                match mount(&name, i, item) {
                    Ok(m) => mounts.push(m),
                    Err(e) => problems.push(e),
                }
            }
        }
        let build_secrets = build_secrets(body);
        let environment = environment(body);
        let environment_references = references.remove(&name).unwrap_or_default();
        services.insert(
            name.clone(),
            ServiceSpec {
                name,
                enabled,
                health_url,
                provider: body
                    .get("provider")
                    .and_then(|p| p.get("type"))
                    .map(merge::scalar_text),
                user: body.get("user").map(merge::scalar_text),
                image: body.get("image").map(merge::scalar_text),
                environment_references,
                environment,
                mounts,
                build_secrets,
                env_files: body
                    .get("env_file")
                    .and_then(Value::as_sequence)
                    .map(|items| {
                        items
                            .iter()
                            .map(|i| PathBuf::from(merge::scalar_text(i)))
                            .collect()
                    })
                    .unwrap_or_default(),
                update: super::update::update_config(body),
                singletons: super::update::singletons(body),
            },
        );
    }
    Error::all(problems)?;
    Ok(services)
}

/// `build.secrets`' sources.
fn build_secrets(body: &Value) -> Vec<String> {
    body.get("build")
        .and_then(|b| b.get("secrets"))
        .and_then(Value::as_sequence)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.get("source").map(merge::scalar_text))
                .collect()
        })
        .unwrap_or_default()
}

/// `environment`, as a mapping or a list of `KEY=value` (a bare `KEY` has no value).
fn environment(body: &Value) -> Vec<(String, Option<String>)> {
    match body.get("environment") {
        Some(Value::Mapping(m)) => m
            .iter()
            .map(|(k, v)| {
                (
                    merge::scalar_text(k),
                    (!v.is_null()).then(|| merge::scalar_text(v)),
                )
            })
            .collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|i| {
                let text = merge::scalar_text(i);
                match text.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (text, None),
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// One normalised mount; `mode` follows Compose (a YAML number as is, a string as octal).
fn mount(service: &str, index: usize, item: &Value) -> Result<SecretUse> {
    let text = |k: &str| {
        item.get(k)
            .map(merge::scalar_text)
            .filter(|s| !s.is_empty())
    };
    let source = text("source").ok_or_else(|| {
        Error::Usage(format!(
            "service `{service}`: secret mount {index} has no `source`"
        ))
    })?;
    let mode = match item.get("mode") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_u64().and_then(|m| u32::try_from(m).ok()).ok_or_else(
            || {
                Error::manifest(
                    &source,
                    format!("service `{service}`: mode {n} is not a file mode"),
                )
            },
        )?),
        Some(Value::String(s)) => Some(u32::from_str_radix(s, 8).map_err(|_| {
            Error::manifest(
                &source,
                format!("service `{service}`: mode \"{s}\" is not an octal number"),
            )
        })?),
        Some(_) => {
            return Err(Error::manifest(
                &source,
                format!("service `{service}`: mode must be a number or a string"),
            ))
        }
    };
    Ok(SecretUse {
        service: service.to_string(),
        target: text("target").unwrap_or_else(|| format!("/run/secrets/{source}")),
        source,
        uid: text("uid"),
        gid: text("gid"),
        mode,
    })
}

/// Who a service's processes run as, from its `user:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunsAs {
    /// `UID` or `UID:GID`.
    Ids(u32, Option<u32>),
    /// A user name (`postgres`, `nginx:nginx`): only the image knows its uid.
    Named(String),
}

impl ServiceSpec {
    /// `None` without `user:` (the image decides).
    pub fn runs_as(&self) -> Option<RunsAs> {
        let user = self.user.as_deref().filter(|u| !u.is_empty())?;
        let (u, g) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user, None),
        };
        match (u.parse::<u32>(), g.map(str::parse::<u32>)) {
            (Ok(uid), None) => Some(RunsAs::Ids(uid, None)),
            (Ok(uid), Some(Ok(gid))) => Some(RunsAs::Ids(uid, Some(gid))),
            _ => Some(RunsAs::Named(user.to_string())),
        }
    }
}
