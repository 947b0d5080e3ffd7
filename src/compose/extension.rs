//! `x-compose-secrets`: what Compose has no word for, on a secret (vault name, `.env` key,
//! generator, owner, mode, pinned version, rotation hook and its environment, rotation period)
//! or on a service (the health URL a rotation checks). Unknown fields are refused, so a typo
//! never silently falls back to a default.

use std::time::Duration;

use serde_norway::Value;

use super::merge::scalar_text;
use crate::generator::Generator;

pub const EXTENSION_KEY: &str = "x-compose-secrets";

const SECRET_FIELDS: &str = "vault-name, env-key, generator, owner, mode, version, rotation-hook, \
                             hook-env, rotate-every, expiry-grace, certificate, expiry-warning";

/// The secret-level fields; `None` where the secret does not set one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SecretExtension {
    pub vault_name: Option<String>,
    pub env_key: Option<String>,
    pub generator: Option<Generator>,
    pub owner: Option<(Option<u32>, Option<u32>)>,
    pub mode: Option<u32>,
    pub version: Option<String>,
    pub rotation_hook: Option<Vec<String>>,
    /// Variables of compose-secrets' environment passed on to the rotation hook.
    pub hook_env: Vec<String>,
    pub rotate_every: Option<Duration>,
    pub expiry_grace: Option<Duration>,
    /// `certificate`: the part of a certificate bundle this secret's file holds.
    pub certificate: Option<super::certificate_part::Part>,
    pub expiry_warning: Option<Duration>,
}

/// Parse a secret's `x-compose-secrets` mapping. Errors are messages about that secret.
pub fn secret(ext: Option<&Value>) -> Result<SecretExtension, String> {
    let Some(ext) = ext.filter(|v| !v.is_null()) else {
        return Ok(SecretExtension::default());
    };
    let map = ext
        .as_mapping()
        .ok_or_else(|| format!("`{EXTENSION_KEY}` must be a mapping"))?;
    let mut out = SecretExtension::default();
    for (key, value) in map {
        let key = key.as_str().unwrap_or_default();
        let text = || text(key, value);
        match key {
            "vault-name" => out.vault_name = Some(text()?),
            "env-key" => out.env_key = Some(text()?),
            "generator" => out.generator = Some(text()?.parse()?),
            "owner" => out.owner = Some(owner(value)?),
            "mode" => {
                let mode = octal_mode(value).ok_or("`mode` must be an octal mode such as 0400")?;
                if mode & 0o444 == 0 {
                    return Err("`mode` must let the owner or group read the file".into());
                }
                out.mode = Some(mode);
            }
            "version" => out.version = Some(text()?),
            "rotation-hook" => {
                out.rotation_hook = Some(match value {
                    Value::Sequence(items) => items
                        .iter()
                        .map(|i| match i {
                            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                                Ok(scalar_text(i))
                            }
                            _ => Err("`rotation-hook` entries must be strings".to_string()),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    _ => vec!["/bin/sh".into(), "-c".into(), text()?],
                });
            }
            "hook-env" => {
                let names = match value {
                    Value::Sequence(items) => items.iter().map(scalar_text).collect(),
                    _ => vec![text()?],
                };
                if let Some(bad) = names.iter().find(|n| !crate::secret::is_valid_env_key(n)) {
                    return Err(format!("`hook-env`: `{bad}` is not a variable name"));
                }
                out.hook_env = names;
            }
            "rotate-every" => out.rotate_every = Some(period(key, &text()?)?),
            "expiry-grace" => out.expiry_grace = Some(period(key, &text()?)?),
            "certificate" => out.certificate = Some(text()?.parse()?),
            "expiry-warning" => out.expiry_warning = Some(period(key, &text()?)?),
            // Accepted on secrets for symmetry with services; health is checked per service.
            "health-url" => {}
            other => {
                return Err(format!(
                    "unknown `{EXTENSION_KEY}` field `{other}` (known: {SECRET_FIELDS})"
                ))
            }
        }
    }
    if out.expiry_warning.is_some() && out.certificate.is_none() {
        return Err("`expiry-warning` is for certificate parts: set `certificate` too".into());
    }
    Ok(out)
}

/// A service's `x-compose-secrets`: its health URL.
pub fn service(ext: Option<&Value>) -> Result<Option<String>, String> {
    let Some(ext) = ext.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let map = ext
        .as_mapping()
        .ok_or_else(|| format!("`{EXTENSION_KEY}` must be a mapping"))?;
    let mut health_url = None;
    for (key, value) in map {
        match key.as_str().unwrap_or_default() {
            "health-url" => health_url = Some(text("health-url", value)?),
            other => {
                return Err(format!(
                    "unknown `{EXTENSION_KEY}` field `{other}` on a service (known: health-url)"
                ))
            }
        }
    }
    Ok(health_url)
}

fn text(key: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(scalar_text(value)),
        _ => Err(format!("`{key}` must be a string")),
    }
}

fn period(key: &str, text: &str) -> Result<Duration, String> {
    crate::clock::parse_duration(text)
        .ok_or_else(|| format!("`{key}`: `{text}` is not a period such as 90d, 12h or 2w"))
}

/// Our own `mode` is written in octal digits whatever the YAML type: `0400`, `"0400"`, `400`.
fn octal_mode(v: &Value) -> Option<u32> {
    let digits = match v {
        Value::String(s) => s.trim().trim_start_matches("0o").to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let mode = u32::from_str_radix(&digits, 8).ok()?;
    (mode <= 0o777).then_some(mode)
}

fn owner(value: &Value) -> Result<(Option<u32>, Option<u32>), String> {
    let bad = || {
        "`owner` must be \"UID:GID\", \"UID\", \":GID\" or {uid: N, gid: N} with numeric ids"
            .to_string()
    };
    let num = |v: Option<&Value>| -> Result<Option<u32>, String> {
        match v {
            None => Ok(None),
            Some(v) => scalar_text(v).trim().parse().map(Some).map_err(|_| bad()),
        }
    };
    match value {
        Value::Mapping(_) => {
            let ids = (num(value.get("uid"))?, num(value.get("gid"))?);
            if ids == (None, None) {
                return Err(bad());
            }
            Ok(ids)
        }
        Value::String(_) | Value::Number(_) => {
            let s = scalar_text(value);
            let (u, g) = s.split_once(':').unwrap_or((s.as_str(), ""));
            let id = |t: &str| -> Result<Option<u32>, String> {
                let t = t.trim();
                if t.is_empty() {
                    Ok(None)
                } else {
                    t.parse().map(Some).map_err(|_| bad())
                }
            };
            let ids = (id(u)?, id(g)?);
            if ids == (None, None) {
                return Err(bad());
            }
            Ok(ids)
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<SecretExtension, String> {
        let v: Value = serde_norway::from_str(yaml).unwrap();
        secret(Some(&v))
    }

    #[test]
    fn fields_and_forms() {
        let e = parse(
            "{vault-name: DBPASSWORD, env-key: DB_PW, generator: 'alnum:20', owner: '1000:1001', mode: 0440, \
             version: abc, rotation-hook: [a, b], hook-env: [PGHOST], rotate-every: 90d, expiry-grace: 7d}",
        )
        .unwrap();
        assert_eq!(e.vault_name.as_deref(), Some("DBPASSWORD"));
        assert_eq!(e.owner, Some((Some(1000), Some(1001))));
        assert_eq!(e.mode, Some(0o440));
        assert_eq!(e.rotation_hook, Some(vec!["a".into(), "b".into()]));
        assert_eq!(e.hook_env, ["PGHOST"]);
        assert_eq!(e.rotate_every, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(
            parse("{owner: '1000'}").unwrap().owner,
            Some((Some(1000), None))
        );
        assert_eq!(
            parse("{owner: ':1000'}").unwrap().owner,
            Some((None, Some(1000)))
        );
        assert_eq!(
            parse("{owner: {gid: 7}}").unwrap().owner,
            Some((None, Some(7)))
        );
        assert_eq!(
            parse("{rotation-hook: 'psql -c x'}").unwrap().rotation_hook,
            Some(vec!["/bin/sh".into(), "-c".into(), "psql -c x".into()])
        );
    }

    #[test]
    fn typos_and_bad_values_are_refused() {
        for (bad, says) in [
            ("{genrator: hex:32}", "unknown"),
            ("{mode: 0200}", "read"),
            ("{mode: abc}", "octal"),
            ("{owner: 'me:you'}", "numeric"),
            ("{owner: ':'}", "numeric"),
            ("{rotate-every: soon}", "period"),
            ("{hook-env: ['A-B']}", "variable name"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let v: Value = serde_norway::from_str("{healthurl: x}").unwrap();
        assert!(service(Some(&v)).unwrap_err().contains("unknown"));
    }
}
