//! The Docker Compose provider protocol (Compose 2.36+, docker/compose `docs/extension.md`):
//! the JSON lines a provider writes on stdout, its metadata, and the check that the project
//! found from Compose's working directory is the one Compose is bringing up.
//!
//! Compose tells a provider only the project's name and the service's; the files and the
//! directory are found again here, so a wrong guess must be refused, never loaded.

use std::io::Write as _;

use crate::compose::Project;
use crate::error::{Error, Result};

/// The `provider.type` a Compose file names compose-secrets by.
pub const PROVIDER_TYPE: &str = "compose-secrets";

/// The options `up` accepts from `provider.options`: each arrives as the global flag of the
/// same name. Boolean flags are left out: Compose passes `--key=value`, which they refuse.
const UP_OPTIONS: [(&str, &str, &str); 9] = [
    (
        "project-directory",
        "The Compose project directory",
        "the first Compose file's directory",
    ),
    (
        "file",
        "A Compose file (repeat as a list for several)",
        "COMPOSE_FILE, else compose.yaml found from the working directory upward",
    ),
    (
        "env-file",
        "An env file (repeat as a list for several)",
        "COMPOSE_ENV_FILES, else <project>/.env",
    ),
    ("profile", "A profile to enable", "COMPOSE_PROFILES"),
    (
        "runtime-dir",
        "Where state, the lock and the audit log live",
        "COMPOSE_SECRETS_RUNTIME_DIR, else <project>/.runtime",
    ),
    (
        "secrets-dir",
        "compose-secrets' own directory for secret files",
        "COMPOSE_SECRETS_DIR, else <runtime-dir>/secrets",
    ),
    (
        "vault-url",
        "Key Vault URL",
        "AZURE_KEYVAULT_URL (Key Vault when AZURE_USE_KEYVAULT=true, else .env)",
    ),
    (
        "vault-name",
        "Key Vault name, for https://NAME.vault.azure.net",
        "AZURE_KEYVAULT_NAME",
    ),
    (
        "target",
        "Where containers run: auto, compose or swarm",
        "auto",
    ),
];

/// What `compose-secrets compose metadata` prints: every option of `up` with its default.
/// `down` and `stop` take none (Compose passes them only the options listed here).
pub fn metadata() -> serde_json::Value {
    let parameters: Vec<serde_json::Value> = UP_OPTIONS
        .iter()
        .map(|(name, description, default)| {
            serde_json::json!({
                "name": name,
                "description": description,
                "required": false,
                "type": "string",
                "default": default,
            })
        })
        .collect();
    serde_json::json!({
        "description": "Write the project's secret files (from .env, or Azure Key Vault) before the services that depend on this one start",
        "up": { "parameters": parameters },
        "down": { "parameters": [] },
        "stop": { "parameters": [] },
    })
}

/// Refuse a project that is not the one Compose is bringing up: another name, or no provider
/// service `service` of type compose-secrets in it.
pub fn check_project(project: &Project, compose_name: &str, service: &str) -> Result<()> {
    let files = project
        .compose_files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if project.name != compose_name {
        return Err(Error::Usage(format!(
            "Compose is bringing up project `{compose_name}`, but the project found here ({files}) \
             is `{}`: its secrets are not loaded. Name the project in its own files (`name:` in \
             the Compose file, or COMPOSE_PROJECT_NAME in its .env) rather than with -p or the \
             shell's COMPOSE_PROJECT_NAME, or point the provider at it (provider options \
             `project-directory`, `file`)",
            project.name
        )));
    }
    match project.services.get(service).map(|s| s.provider.as_deref()) {
        Some(Some(PROVIDER_TYPE)) => Ok(()),
        found => {
            let what = match found {
                None => "has no service".to_string(),
                Some(None) => "has a service, not a provider service,".to_string(),
                Some(Some(other)) => format!("has a provider service of type `{other}`,"),
            };
            Err(Error::Usage(format!(
                "project `{compose_name}` as found here ({files}) {what} named `{service}` with \
                 `provider: {{type: {PROVIDER_TYPE}}}`: its secrets are not loaded. Run docker \
                 compose from the project directory, or point the provider at the project's \
                 files (provider options `project-directory`, `file`)"
            )))
        }
    }
}

/// One `info` line per item of a captured report (see `Reporter::take_json`): what happened to
/// each secret, never a value (the report holds none).
pub fn report_lines(document: &serde_json::Value) -> Vec<String> {
    let items = document
        .get("items")
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    items
        .iter()
        .map(|item| {
            let field = |k: &str| item.get(k).and_then(serde_json::Value::as_str);
            let line = format!(
                "{} {}",
                field("action").unwrap_or_default(),
                field("name").unwrap_or_default()
            );
            match field("detail") {
                Some(detail) => format!("{line} ({detail})"),
                None => line,
            }
        })
        .collect()
}

/// Messages to Compose: one JSON object per line on stdout, the only thing written there.
pub fn send(kind: &str, message: &str) {
    let line = serde_json::json!({ "type": kind, "message": message });
    let mut out = std::io::stdout().lock();
    // Compose reads until EOF; a gone reader (Compose killed) leaves nothing to tell.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::ServiceSpec;

    fn project(name: &str, service: Option<ServiceSpec>) -> Project {
        let mut project = Project {
            name: name.into(),
            directory: "/p".into(),
            compose_files: vec!["/p/compose.yaml".into()],
            files_read: Vec::new(),
            env_files: Vec::new(),
            config_files: Vec::new(),
            variables: Default::default(),
            profiles: Vec::new(),
            secrets: Vec::new(),
            services: Default::default(),
        };
        if let Some(s) = service {
            project.services.insert(s.name.clone(), s);
        }
        project
    }

    fn provider(name: &str, kind: Option<&str>) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            enabled: true,
            provider: kind.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn the_right_project_and_service_pass() {
        let p = project("demo", Some(provider("secrets", Some(PROVIDER_TYPE))));
        check_project(&p, "demo", "secrets").unwrap();
    }

    #[test]
    fn another_name_is_refused_naming_both() {
        let p = project("other", Some(provider("secrets", Some(PROVIDER_TYPE))));
        let e = check_project(&p, "demo", "secrets")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`demo`") && e.contains("`other`"), "{e}");
        assert!(e.contains("/p/compose.yaml"), "{e}");
    }

    #[test]
    fn a_missing_plain_or_foreign_service_is_refused() {
        for (service, why) in [
            (None, "has no service"),
            (Some(provider("secrets", None)), "not a provider service"),
            (Some(provider("secrets", Some("model"))), "of type `model`"),
        ] {
            let p = project("demo", service);
            let e = check_project(&p, "demo", "secrets")
                .unwrap_err()
                .to_string();
            assert!(e.contains(why) && e.contains("`secrets`"), "{e}");
        }
    }

    #[test]
    fn metadata_lists_every_option_with_a_default() {
        let m = metadata();
        let up = m["up"]["parameters"].as_array().unwrap();
        let names: Vec<&str> = up.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, UP_OPTIONS.map(|o| o.0));
        assert!(up
            .iter()
            .all(|p| !p["default"].as_str().unwrap().is_empty() && p["required"] == false));
        assert!(m["stop"].is_object() && m["down"]["parameters"].as_array().unwrap().is_empty());
    }

    #[test]
    fn report_items_become_lines_without_anything_else() {
        let doc = serde_json::json!({"items": [
            {"name": "db", "action": "written", "detail": "in .runtime/secrets"},
            {"name": "api", "action": "unchanged"}
        ]});
        assert_eq!(
            report_lines(&doc),
            ["written db (in .runtime/secrets)", "unchanged api"]
        );
    }
}
