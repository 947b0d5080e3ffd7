//! Every setting of a run, resolved once by one rule (flag > process environment > `.env` >
//! default), each value with the layer it came from; `compose-secrets debug settings` shows them.
//!
//! The Compose settings (`-f`, `-p`, `--env-file`, `--profile` and their `COMPOSE_*`
//! variables) are resolved by `compose::discover` as Compose resolves them; they are only
//! reported here, with their source.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::deploy::Target;
use crate::error::{Error, Result};

pub const TARGET: &str = "COMPOSE_SECRETS_TARGET";
pub const TEMPLATE: &str = "COMPOSE_SECRETS_TEMPLATE";
pub const RUNTIME_DIR: &str = "COMPOSE_SECRETS_RUNTIME_DIR";
pub const SECRETS_DIR: &str = "COMPOSE_SECRETS_DIR";
pub const USE_KEYVAULT: &str = "AZURE_USE_KEYVAULT";
pub const VAULT_URL: &str = "AZURE_KEYVAULT_URL";
pub const VAULT_NAME: &str = "AZURE_KEYVAULT_NAME";
pub const LOCK_TIMEOUT: &str = "COMPOSE_SECRETS_LOCK_TIMEOUT";
pub const HOOK_TIMEOUT: &str = "COMPOSE_SECRETS_HOOK_TIMEOUT";

/// How long a command waits for another compose-secrets to release the run lock.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a rotation hook may run.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(120);

/// The layer a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Flag,
    Environment,
    #[serde(rename = ".env")]
    DotEnv,
    Default,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Environment => "environment",
            Source::DotEnv => ".env",
            Source::Default => "default",
        }
    }
}

/// One resolved setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Setting<T> {
    fn new(value: T, source: Source) -> Self {
        Self { value, source }
    }
}

/// What the command line said, for the settings that have a flag.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub target: Option<Target>,
    pub template: Option<PathBuf>,
    pub runtime_dir: Option<PathBuf>,
    pub secrets_dir: Option<PathBuf>,
    pub keyvault: bool,
    pub demo: bool,
    pub vault_url: Option<String>,
    pub vault_name: Option<String>,
    pub lock_timeout: Option<u64>,
}

/// The layers below the flags. `interpolation` is what Compose interpolates with: the process
/// environment over the `.env` files.
pub struct Layers<'a> {
    pub process_env: &'a BTreeMap<String, String>,
    pub interpolation: &'a BTreeMap<String, String>,
    /// Relative flags and process variables are taken from here…
    pub cwd: &'a Path,
    /// …and relative `.env` lines from the project directory, where that file is.
    pub project_dir: &'a Path,
}

impl Layers<'_> {
    /// `var`'s text and its layer; an empty value counts as unset.
    pub fn var(&self, var: &str) -> Option<(String, Source)> {
        if let Some(v) = self.process_env.get(var) {
            return (!v.is_empty()).then(|| (v.clone(), Source::Environment));
        }
        self.interpolation
            .get(var)
            .filter(|v| !v.is_empty())
            .map(|v| (v.clone(), Source::DotEnv))
    }

    /// A text setting: the flag, else `var`, else `None`.
    fn text(&self, flag: Option<&str>, var: &str) -> Setting<Option<String>> {
        match (flag, self.var(var)) {
            (Some(f), _) => Setting::new(Some(f.to_string()), Source::Flag),
            (None, Some((v, source))) => Setting::new(Some(v), source),
            (None, None) => Setting::new(None, Source::Default),
        }
    }

    /// A path setting, made absolute from the directory its layer is relative to.
    fn path(&self, flag: Option<&Path>, var: &str, default: PathBuf) -> Setting<PathBuf> {
        if let Some(p) = flag.filter(|p| !p.as_os_str().is_empty()) {
            return Setting::new(absolute(self.cwd, p), Source::Flag);
        }
        match self.var(var) {
            Some((v, Source::DotEnv)) => {
                Setting::new(absolute(self.project_dir, Path::new(&v)), Source::DotEnv)
            }
            Some((v, source)) => Setting::new(absolute(self.cwd, Path::new(&v)), source),
            None => Setting::new(default, Source::Default),
        }
    }

    /// A setting parsed from its text: the flag's value, else `var`'s, else `default`.
    fn parsed<T>(
        &self,
        flag: Option<T>,
        var: &str,
        parse: impl Fn(&str) -> std::result::Result<T, String>,
        default: T,
    ) -> Result<Setting<T>> {
        if let Some(value) = flag {
            return Ok(Setting::new(value, Source::Flag));
        }
        match self.var(var) {
            Some((text, source)) => parse(&text)
                .map(|v| Setting::new(v, source))
                .map_err(|why| {
                    Error::Usage(format!("{var}={text} (from {}): {why}", source.name()))
                }),
            None => Ok(Setting::new(default, Source::Default)),
        }
    }
}

/// The settings compose-secrets itself reads, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub target: Setting<Target>,
    pub template: Setting<PathBuf>,
    pub runtime_dir: Setting<PathBuf>,
    pub secrets_dir: Setting<PathBuf>,
    /// `AZURE_USE_KEYVAULT`'s text (`--keyvault` is `true`, `--demo` is `false`), checked when
    /// the store is chosen: a command that never opens a store does not fail on it.
    pub use_keyvault: Setting<Option<String>>,
    pub vault_url: Setting<Option<String>>,
    pub vault_name: Setting<Option<String>>,
    pub lock_timeout: Setting<Duration>,
    /// Checked when a rotation reads it, for the same reason as `use_keyvault`.
    pub hook_timeout: Setting<Option<String>>,
}

impl Settings {
    pub fn resolve(flags: &Flags, layers: &Layers<'_>) -> Result<Settings> {
        let runtime_dir = layers.path(
            flags.runtime_dir.as_deref(),
            RUNTIME_DIR,
            layers.project_dir.join(".runtime"),
        );
        let secrets_dir = layers.path(
            flags.secrets_dir.as_deref(),
            SECRETS_DIR,
            runtime_dir.value.join("secrets"),
        );
        let use_keyvault = match (flags.demo, flags.keyvault) {
            (true, _) => Setting::new(Some("false".into()), Source::Flag),
            (false, true) => Setting::new(Some("true".into()), Source::Flag),
            (false, false) => layers.text(None, USE_KEYVAULT),
        };
        Ok(Settings {
            target: layers.parsed(flags.target, TARGET, parse_target, Target::Auto)?,
            template: layers.path(
                flags.template.as_deref(),
                TEMPLATE,
                layers.project_dir.join(".env.demo"),
            ),
            runtime_dir,
            secrets_dir,
            use_keyvault,
            vault_url: layers.text(flags.vault_url.as_deref(), VAULT_URL),
            vault_name: layers.text(flags.vault_name.as_deref(), VAULT_NAME),
            lock_timeout: layers.parsed(
                flags.lock_timeout.map(Duration::from_secs),
                LOCK_TIMEOUT,
                |t| parse_seconds(t, 0),
                DEFAULT_LOCK_TIMEOUT,
            )?,
            hook_timeout: layers.text(None, HOOK_TIMEOUT),
        })
    }

    /// Whether the store is Key Vault.
    pub fn use_keyvault(&self) -> Result<bool> {
        let text = self.use_keyvault.value.as_deref().map(str::trim);
        match text.map(str::to_ascii_lowercase).as_deref() {
            None | Some("") => Ok(false),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(_) => Err(Error::Usage(format!(
                "{USE_KEYVAULT}={} is not a boolean (use true or false)",
                text.unwrap_or_default()
            ))),
        }
    }

    /// The rotation hook's time limit (whole seconds, at least 1).
    pub fn hook_timeout(&self) -> Result<Duration> {
        match &self.hook_timeout.value {
            None => Ok(DEFAULT_HOOK_TIMEOUT),
            Some(text) => parse_seconds(text, 1).map_err(|_| {
                Error::Usage(format!(
                    "{HOOK_TIMEOUT}={text}: expected a whole number of seconds, at least 1"
                ))
            }),
        }
    }

    /// Each setting as `debug settings` shows it: name, flag, variable, value, source.
    pub fn rows(&self) -> Vec<Row> {
        let shown = |p: &Path| p.display().to_string();
        let or = |v: &Option<String>, default: &str| v.clone().unwrap_or_else(|| default.into());
        vec![
            Row::new("target", "--target", TARGET, &self.target, |t| {
                t.name().into()
            }),
            Row::new(
                "template",
                "ensure --template",
                TEMPLATE,
                &self.template,
                |p| shown(p),
            ),
            Row::new(
                "runtime-dir",
                "--runtime-dir",
                RUNTIME_DIR,
                &self.runtime_dir,
                |p| shown(p),
            ),
            Row::new(
                "secrets-dir",
                "--secrets-dir",
                SECRETS_DIR,
                &self.secrets_dir,
                |p| shown(p),
            ),
            Row::new(
                "use-keyvault",
                "--keyvault / --demo",
                USE_KEYVAULT,
                &self.use_keyvault,
                |v| or(v, "false"),
            ),
            Row::new(
                "vault-url",
                "--vault-url",
                VAULT_URL,
                &self.vault_url,
                |v| or(v, ""),
            ),
            Row::new(
                "vault-name",
                "--vault-name",
                VAULT_NAME,
                &self.vault_name,
                |v| or(v, ""),
            ),
            Row::new(
                "lock-timeout",
                "--lock-timeout",
                LOCK_TIMEOUT,
                &self.lock_timeout,
                |d| format!("{}s", d.as_secs()),
            ),
            Row::new("hook-timeout", "", HOOK_TIMEOUT, &self.hook_timeout, |v| {
                or(v, &format!("{}s", DEFAULT_HOOK_TIMEOUT.as_secs()))
            }),
        ]
    }
}

/// One line of `debug settings`. Never a secret value: no setting listed is one.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub flag: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub variable: &'static str,
    pub value: String,
    pub source: Source,
}

impl Row {
    pub fn new<T>(
        name: &'static str,
        flag: &'static str,
        variable: &'static str,
        setting: &Setting<T>,
        show: impl Fn(&T) -> String,
    ) -> Row {
        Row {
            name,
            flag,
            variable,
            value: show(&setting.value),
            source: setting.source,
        }
    }

    /// A row for a variable read by another layer (the store, Docker), with the source the
    /// layers give it.
    pub fn variable(name: &'static str, variable: &'static str, layers: &Layers<'_>) -> Row {
        let (value, source) = layers
            .var(variable)
            .map_or((String::new(), Source::Default), |(v, s)| (v, s));
        Row {
            name,
            flag: "",
            variable,
            value,
            source,
        }
    }
}

/// The rows as a table (`name  value  source`), or one JSON document.
pub fn render(rows: &[Row], json: bool) -> String {
    if json {
        return serde_json::to_string_pretty(&serde_json::json!({ "settings": rows }))
            .unwrap_or_default();
    }
    let width = |f: fn(&Row) -> usize| rows.iter().map(f).max().unwrap_or(0);
    let (name_w, value_w) = (width(|r| r.name.len()), width(|r| r.value.len()));
    let mut out = String::new();
    for r in rows {
        let value = if r.value.is_empty() { "-" } else { &r.value };
        out.push_str(&format!(
            "{:name_w$}  {:value_w$}  {}\n",
            r.name,
            value,
            r.source.name()
        ));
    }
    out
}

fn parse_target(text: &str) -> std::result::Result<Target, String> {
    Target::parse(text).ok_or_else(|| format!("expected one of {}", Target::NAMES.join(", ")))
}

fn parse_seconds(text: &str, min: u64) -> std::result::Result<Duration, String> {
    match text.trim().parse::<u64>() {
        Ok(secs) if secs >= min => Ok(Duration::from_secs(secs)),
        _ => Err(format!(
            "expected a whole number of seconds, at least {min}"
        )),
    }
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    crate::files::lexical_normalize(&if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers<'a>(
        process: &'a BTreeMap<String, String>,
        interpolation: &'a BTreeMap<String, String>,
    ) -> Layers<'a> {
        Layers {
            process_env: process,
            interpolation,
            cwd: Path::new("/work"),
            project_dir: Path::new("/proj"),
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_layer_beats_the_ones_below_it() {
        let process = map(&[(TARGET, "compose")]);
        let dotenv = map(&[(TARGET, "compose"), (LOCK_TIMEOUT, "7")]);
        let flags = Flags {
            target: Some(Target::Swarm),
            ..Flags::default()
        };
        let s = Settings::resolve(&flags, &layers(&process, &dotenv)).unwrap();
        assert_eq!(s.target, Setting::new(Target::Swarm, Source::Flag));
        assert_eq!(
            s.lock_timeout,
            Setting::new(Duration::from_secs(7), Source::DotEnv)
        );
        let s = Settings::resolve(&Flags::default(), &layers(&process, &dotenv)).unwrap();
        assert_eq!(s.target, Setting::new(Target::Compose, Source::Environment));
        let empty = BTreeMap::new();
        let s = Settings::resolve(&Flags::default(), &layers(&empty, &empty)).unwrap();
        assert_eq!(s.target, Setting::new(Target::Auto, Source::Default));
        assert_eq!(s.lock_timeout.value, DEFAULT_LOCK_TIMEOUT);
    }

    #[test]
    fn relative_paths_follow_their_layer() {
        let process = map(&[(RUNTIME_DIR, "rt")]);
        let dotenv = map(&[(RUNTIME_DIR, "rt"), (SECRETS_DIR, "sec")]);
        let s = Settings::resolve(&Flags::default(), &layers(&process, &dotenv)).unwrap();
        assert_eq!(s.runtime_dir.value, PathBuf::from("/work/rt"));
        assert_eq!(s.secrets_dir.value, PathBuf::from("/proj/sec"));
        assert_eq!(s.template.value, PathBuf::from("/proj/.env.demo"));
    }

    #[test]
    fn a_bad_value_names_the_variable_and_its_layer() {
        let empty = BTreeMap::new();
        let dotenv = map(&[(TARGET, "kubernetes")]);
        let err = Settings::resolve(&Flags::default(), &layers(&empty, &dotenv)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("COMPOSE_SECRETS_TARGET=kubernetes (from .env)"),
            "{text}"
        );
    }
}
