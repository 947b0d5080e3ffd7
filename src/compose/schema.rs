//! The part of the Compose schema that decides secrets, checked after each file is merged as
//! Compose checks it: names, field types and allowed fields of secret definitions and mounts.

use std::path::Path;

use serde_norway::Value;

use crate::error::{Error, Result};

const SECRET_FIELDS: [&str; 8] = [
    "name",
    "file",
    "environment",
    "external",
    "labels",
    "driver",
    "driver_opts",
    "template_driver",
];
const MOUNT_FIELDS: [&str; 5] = ["source", "target", "uid", "gid", "mode"];

pub fn validate(file: &Path, dict: &Value) -> Result<()> {
    check_model(dict).map_err(|message| Error::config(file, format!("validating: {message}")))
}

/// What Compose's schema says of the parts compose-secrets reads; the first problem found.
fn check_model(dict: &Value) -> std::result::Result<(), String> {
    if let Some(name) = dict.get("name") {
        if !name.is_string() && !name.is_null() {
            return Err("name must be a string".into());
        }
    }
    if let Some(secrets) = dict.get("secrets").filter(|v| !v.is_null()) {
        let Some(map) = secrets.as_mapping() else {
            return Err("secrets must be a mapping".into());
        };
        for (key, def) in map {
            check_secret(key.as_str().unwrap_or_default(), def)?;
        }
    }
    if let Some(services) = dict.get("services").filter(|v| !v.is_null()) {
        let Some(map) = services.as_mapping() else {
            return Err("services must be a mapping".into());
        };
        for (name, service) in map {
            check_service(name.as_str().unwrap_or_default(), service)?;
        }
    }
    Ok(())
}

fn check_secret(key: &str, def: &Value) -> std::result::Result<(), String> {
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "secrets additional properties '{key}' not allowed (names use letters, digits, '.', '_' and '-')"
        ));
    }
    let Some(fields) = def.as_mapping() else {
        return Err(format!("secrets.{key} must be a mapping"));
    };
    for (field, value) in fields {
        let field = field.as_str().unwrap_or_default();
        if !(SECRET_FIELDS.contains(&field) || field.starts_with("x-")) {
            return Err(format!(
                "secrets.{key} additional properties '{field}' not allowed"
            ));
        }
        if matches!(field, "file" | "environment" | "name") && !value.is_string() {
            return Err(format!("secrets.{key}.{field} must be a string"));
        }
        if field == "external" && !(value.is_bool() || value.is_mapping()) {
            return Err(format!("secrets.{key}.external must be a boolean"));
        }
    }
    Ok(())
}

fn check_service(name: &str, service: &Value) -> std::result::Result<(), String> {
    if service.is_null() {
        return Ok(());
    }
    let Some(service) = service.as_mapping() else {
        return Err(format!("services.{name} must be a mapping"));
    };
    if let Some(user) = service.get("user") {
        if !user.is_string() {
            return Err(format!("services.{name}.user must be a string"));
        }
    }
    if let Some(profiles) = service.get("profiles") {
        let ok = profiles
            .as_sequence()
            .is_some_and(|p| p.iter().all(Value::is_string));
        if !ok {
            return Err(format!(
                "services.{name}.profiles must be a list of strings"
            ));
        }
    }
    if let Some(env) = service.get("environment") {
        if !(env.is_mapping() || env.is_sequence() || env.is_null()) {
            return Err(format!(
                "services.{name}.environment must be a mapping or a list"
            ));
        }
    }
    let build_secrets = service.get("build").and_then(|b| b.get("secrets"));
    for (what, list) in [
        ("secrets", service.get("secrets")),
        ("build.secrets", build_secrets),
    ] {
        let Some(list) = list.filter(|v| !v.is_null()) else {
            continue;
        };
        let Some(items) = list.as_sequence() else {
            return Err(format!("services.{name}.{what} must be a list"));
        };
        for (i, item) in items.iter().enumerate() {
            check_mount(&format!("services.{name}.{what}.{i}"), item)?;
        }
    }
    Ok(())
}

/// One item of a service's `secrets` or `build.secrets`, named `at` in messages.
fn check_mount(at: &str, item: &Value) -> std::result::Result<(), String> {
    let Some(fields) = item.as_mapping() else {
        if item.is_string() {
            return Ok(());
        }
        return Err(format!("{at} must be a secret name or a mapping"));
    };
    for (field, value) in fields {
        let field = field.as_str().unwrap_or_default();
        if !(MOUNT_FIELDS.contains(&field) || field.starts_with("x-")) {
            return Err(format!("{at} additional properties '{field}' not allowed"));
        }
        if matches!(field, "source" | "target" | "uid" | "gid") && !value.is_string() {
            return Err(format!("{at}.{field} must be a string"));
        }
        if field == "mode" && !(value.is_string() || value.is_number()) {
            return Err(format!("{at}.mode must be a number or a string"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> std::result::Result<(), String> {
        let v: Value = serde_norway::from_str(text).unwrap();
        validate(Path::new("c.yaml"), &v).map_err(|e| e.to_string())
    }

    #[test]
    fn what_compose_refuses() {
        assert!(check("secrets: {s: {file: a}}\nservices: {app: {secrets: [s, {source: s, target: t, uid: '1', mode: 0440}]}}").is_ok());
        for (bad, says) in [
            ("secrets: {'bad name': {file: a}}", "'bad name' not allowed"),
            ("secrets: {s: {content: x}}", "'content' not allowed"),
            ("secrets: {s: ./file}", "secrets.s must be a mapping"),
            ("secrets: {s: {file: 1}}", "secrets.s.file must be a string"),
            (
                "services: {app: {user: 1000}}",
                "services.app.user must be a string",
            ),
            (
                "services: {app: {secrets: {a: b}}}",
                "services.app.secrets must be a list",
            ),
            (
                "services: {app: {secrets: [{source: s, uid: 1000}]}}",
                "secrets.0.uid must be a string",
            ),
            (
                "services: {app: {secrets: [{source: s, bogus: 1}]}}",
                "'bogus' not allowed",
            ),
        ] {
            let e = check(bad).unwrap_err();
            assert!(e.contains(says) && e.contains("c.yaml"), "{bad}: {e}");
        }
    }
}
