//! The secret manifest: the Compose file's `secrets:` and `services.*.secrets`, plus `x-compose-secrets` fields.
//!
//! The Compose file is the one declaration of the secrets. A plain Compose file
//! with file secrets needs nothing more; `x-compose-secrets` on a secret or a
//! service adds what Compose has no word for (vault name, `.env` key,
//! generator, owner, mode, pinned version, health URL, rotation hook).

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use serde_norway::Value;

use crate::error::{Error, Result};
use crate::generator::Generator;
use crate::secret::{default_env_key, is_valid_env_key, is_valid_vault_name};

/// Compose's own file names, in the order `docker compose` tries them.
pub const COMPOSE_FILE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// Refuse Compose files larger than this before parsing: a real one is a few KB.
const MAX_COMPOSE_BYTES: usize = 4 * 1024 * 1024;

pub const EXTENSION_KEY: &str = "x-compose-secrets";

/// Where Compose takes a secret from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `file:`, resolved relative to the Compose file's directory.
    File(PathBuf),
    /// `environment:`: Compose copies the variable's value into the container.
    Environment(String),
    /// `external: true`: managed outside Compose (Swarm); compose-secrets leaves it alone.
    External,
}

/// How a service mounts a secret (`services.*.secrets`, short or long syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretUse {
    pub service: String,
    /// The top-level secret it mounts.
    pub source: String,
    pub target: String,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub mode: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// The Compose secret name.
    pub name: String,
    pub vault_name: String,
    pub env_key: String,
    pub generator: Generator,
    pub source: SecretSource,
    pub owner_uid: Option<u32>,
    pub owner_gid: Option<u32>,
    pub mode: u32,
    /// A Key Vault version to load instead of the latest.
    pub pinned_version: Option<String>,
    /// Command run with the new value on stdin before a rotation is pushed.
    pub rotation_hook: Option<Vec<String>>,
    pub uses: Vec<SecretUse>,
}

impl SecretSpec {
    /// The services that mount this secret, in declaration order, deduplicated.
    pub fn services(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for u in &self.uses {
            if !out.contains(&u.service) {
                out.push(u.service.clone());
            }
        }
        out
    }

    pub fn file_path(&self) -> Option<&Path> {
        match &self.source {
            SecretSource::File(p) => Some(p),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceSpec {
    pub name: String,
    pub health_url: Option<String>,
    pub user: Option<String>,
    /// `environment:` entries, to check that no secret value is passed as plain env.
    pub environment: Vec<(String, String)>,
    pub secrets: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub compose_files: Vec<PathBuf>,
    pub project_dir: PathBuf,
    pub project_name: String,
    pub secrets: Vec<SecretSpec>,
    pub services: BTreeMap<String, ServiceSpec>,
}

/// How to find and read the Compose files.
#[derive(Debug, Clone, Default)]
pub struct ManifestOptions {
    /// `-f` files or `COMPOSE_FILE`; empty means search.
    pub files: Vec<PathBuf>,
    pub project_directory: Option<PathBuf>,
    pub project_name: Option<String>,
    /// Directory to search from (normally the current directory).
    pub search_from: PathBuf,
    /// Variables for `${VAR}` interpolation, in precedence order (process env first).
    pub variables: HashMap<String, String>,
}

impl Manifest {
    pub fn load(options: &ManifestOptions) -> Result<Manifest> {
        let files = if options.files.is_empty() {
            vec![find_compose_file(&options.search_from)?]
        } else {
            options
                .files
                .iter()
                .map(|f| absolute(&options.search_from, f))
                .collect()
        };
        let project_dir = match &options.project_directory {
            Some(dir) => absolute(&options.search_from, dir),
            None => files[0]
                .parent()
                .map_or_else(|| options.search_from.clone(), Path::to_path_buf),
        };
        let mut merged = Merged::default();
        for file in &files {
            let doc = read_yaml(file)?;
            merged.add(file, &doc, &options.variables)?;
        }
        let project_name = match (&options.project_name, &merged.name) {
            (Some(name), _) if !name.is_empty() => normalize_project_name(name),
            (_, Some(name)) => normalize_project_name(name),
            _ => normalize_project_name(
                &project_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
        };
        if project_name.is_empty() {
            return Err(Error::Usage(
                "cannot derive a Compose project name; set COMPOSE_PROJECT_NAME or pass --project-name".into(),
            ));
        }
        let manifest = merged.build(files, project_dir, project_name)?;
        manifest.validate()?;
        Ok(manifest)
    }

    pub fn secret(&self, name: &str) -> Option<&SecretSpec> {
        self.secrets.iter().find(|s| s.name == name)
    }

    /// Find a secret by its Compose name, vault name or `.env` key.
    pub fn lookup(&self, name: &str) -> Option<&SecretSpec> {
        self.secrets.iter().find(|s| {
            s.name == name || s.vault_name.eq_ignore_ascii_case(name) || s.env_key == name
        })
    }

    /// Check that every `file:` secret lies directly inside `secrets_dir`; returns the file names.
    pub fn file_names_in(&self, secrets_dir: &Path) -> Result<Vec<(String, String)>> {
        let dir = lexical_normalize(secrets_dir);
        let mut out = Vec::new();
        for s in &self.secrets {
            if let SecretSource::File(path) = &s.source {
                let path = lexical_normalize(path);
                match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
                    (Some(parent), Some(name)) if parent == dir => out.push((s.name.clone(), name.to_string())),
                    _ => {
                        return Err(Error::manifest(
                            &s.name,
                            format!(
                                "its file {} is outside the secrets directory {}; compose-secrets only writes directly \
                                 inside it (set --secrets-dir or change `file:`)",
                                path.display(),
                                dir.display()
                            ),
                        ))
                    }
                }
            }
        }
        Ok(out)
    }

    fn validate(&self) -> Result<()> {
        let mut files: HashMap<PathBuf, &str> = HashMap::new();
        let mut vault: HashMap<String, &str> = HashMap::new();
        let mut keys: HashMap<&str, &str> = HashMap::new();
        for s in &self.secrets {
            if s.source == SecretSource::External {
                continue;
            }
            if !is_valid_vault_name(&s.vault_name) {
                return Err(Error::manifest(
                    &s.name,
                    format!(
                        "Key Vault cannot store the name `{}`: use 1-127 letters, digits and dashes \
                         (set x-compose-secrets.vault-name)",
                        s.vault_name
                    ),
                ));
            }
            if !is_valid_env_key(&s.env_key) {
                return Err(Error::manifest(
                    &s.name,
                    format!(
                        "`{}` is not a valid .env key (set x-compose-secrets.env-key)",
                        s.env_key
                    ),
                ));
            }
            if let Some(other) = vault.insert(s.vault_name.to_ascii_lowercase(), &s.name) {
                return Err(Error::manifest(
                    &s.name,
                    format!(
                        "maps to the same Key Vault name `{}` as secret `{other}` (vault names are case-insensitive)",
                        s.vault_name
                    ),
                ));
            }
            if let Some(other) = keys.insert(&s.env_key, &s.name) {
                return Err(Error::manifest(
                    &s.name,
                    format!("uses the same .env key `{}` as secret `{other}`", s.env_key),
                ));
            }
            if let SecretSource::File(path) = &s.source {
                if let Some(other) = files.insert(lexical_normalize(path), &s.name) {
                    return Err(Error::manifest(
                        &s.name,
                        format!("uses the same file {} as secret `{other}`", path.display()),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Find the Compose file as `docker compose` does (this directory, then its parents),
/// then in `compose/` for this repository's demo stack.
pub fn find_compose_file(start: &Path) -> Result<PathBuf> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        for name in COMPOSE_FILE_NAMES {
            let candidate = d.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        dir = d.parent();
    }
    for name in COMPOSE_FILE_NAMES {
        let candidate = start.join("compose").join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(Error::Usage(format!(
        "no Compose file found in {} or its parents (tried {}, and compose/); pass -f or set COMPOSE_FILE",
        start.display(),
        COMPOSE_FILE_NAMES.join(", ")
    )))
}

/// Compose's project-name rule: lowercase, only `[a-z0-9_-]`, starting with a letter or digit.
pub fn normalize_project_name(name: &str) -> String {
    let lowered: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    lowered.trim_start_matches(['_', '-']).to_string()
}

fn read_yaml(path: &Path) -> Result<Value> {
    let bytes = crate::dotenv::read_bounded(path, MAX_COMPOSE_BYTES)?
        .ok_or_else(|| Error::config(path, "the Compose file does not exist"))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        line: bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1,
        message: "not valid UTF-8".into(),
    })?;
    let value: Value = serde_norway::from_str(text).map_err(|e| {
        let message = format!("invalid YAML: {}", yaml_message(&e));
        match e.location() {
            Some(l) => Error::Parse {
                path: path.to_path_buf(),
                line: l.line(),
                message,
            },
            // Some errors (an alias bomb, too deep a nesting) have no single line to blame.
            None => Error::config(path, message),
        }
    })?;
    match value {
        Value::Mapping(_) => Ok(value),
        Value::Null => Err(Error::config(path, "the Compose file is empty")),
        _ => Err(Error::Parse {
            path: path.to_path_buf(),
            line: 1,
            message: "a Compose file must be a mapping at the top level".into(),
        }),
    }
}

/// The parser's message without its trailing location (we print our own `file:line`).
fn yaml_message(e: &serde_norway::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[derive(Default)]
struct Merged {
    name: Option<String>,
    secrets: BTreeMap<String, RawSecret>,
    order: Vec<String>,
    services: BTreeMap<String, RawService>,
}

struct RawSecret {
    source: SecretSource,
    ext: Extension,
}

#[derive(Default)]
struct RawService {
    uses: Vec<SecretUse>,
    health_url: Option<String>,
    user: Option<String>,
    environment: Vec<(String, String)>,
}

#[derive(Default, Clone)]
struct Extension {
    vault_name: Option<String>,
    env_key: Option<String>,
    generator: Option<Generator>,
    owner: Option<(Option<u32>, Option<u32>)>,
    mode: Option<u32>,
    version: Option<String>,
    rotation_hook: Option<Vec<String>>,
}

impl Merged {
    fn add(&mut self, file: &Path, doc: &Value, vars: &HashMap<String, String>) -> Result<()> {
        let base = file.parent().unwrap_or(Path::new("."));
        let interp = |s: &str, what: &str| {
            interpolate(s, vars).map_err(|m| Error::config(file, format!("{what}: {m}")))
        };
        if let Some(name) = doc.get("name").and_then(Value::as_str) {
            self.name = Some(interp(name, "name")?);
        }
        if let Some(secrets) = doc.get("secrets") {
            let map = secrets.as_mapping().ok_or_else(|| {
                Error::config(file, "`secrets:` must be a mapping of secret names")
            })?;
            for (key, body) in map {
                let name = key
                    .as_str()
                    .ok_or_else(|| Error::config(file, "secret names must be strings"))?
                    .to_string();
                let source = if let Some(f) = body.get("file") {
                    let f = f
                        .as_str()
                        .ok_or_else(|| Error::manifest(&name, "`file:` must be a string"))?;
                    let f = interp(f, &format!("secret `{name}` file"))?;
                    SecretSource::File(lexical_normalize(&base.join(f)))
                } else if let Some(v) = body.get("environment") {
                    SecretSource::Environment(
                        v.as_str()
                            .ok_or_else(|| {
                                Error::manifest(&name, "`environment:` must be a string")
                            })?
                            .to_string(),
                    )
                } else if body.get("external").is_some() || body.get("name").is_some() {
                    SecretSource::External
                } else {
                    return Err(Error::manifest(
                        &name,
                        format!(
                            "in {}: needs `file:` or `environment:` (or `external: true`)",
                            file.display()
                        ),
                    ));
                };
                let ext = parse_extension(&name, body.get(EXTENSION_KEY), &interp)?;
                if !self.secrets.contains_key(&name) {
                    self.order.push(name.clone());
                }
                self.secrets.insert(name, RawSecret { source, ext });
            }
        }
        if let Some(services) = doc.get("services") {
            let map = services
                .as_mapping()
                .ok_or_else(|| Error::config(file, "`services:` must be a mapping"))?;
            for (key, body) in map {
                let service = key
                    .as_str()
                    .ok_or_else(|| Error::config(file, "service names must be strings"))?
                    .to_string();
                let raw = self.services.entry(service.clone()).or_default();
                if let Some(list) = body.get("secrets") {
                    let items = list.as_sequence().ok_or_else(|| {
                        Error::config(
                            file,
                            format!("service `{service}`: `secrets:` must be a list"),
                        )
                    })?;
                    for item in items {
                        let usage = parse_secret_use(&service, item).map_err(|m| {
                            Error::config(file, format!("service `{service}`: {m}"))
                        })?;
                        raw.uses.retain(|u| u.target != usage.target);
                        raw.uses.push(usage);
                    }
                }
                if let Some(user) = body.get("user").and_then(scalar_string) {
                    raw.user = Some(user);
                }
                if let Some(env) = body.get("environment") {
                    raw.environment = parse_environment(env);
                }
                if let Some(ext) = body.get(EXTENSION_KEY) {
                    if let Some(url) = ext.get("health-url").and_then(Value::as_str) {
                        raw.health_url =
                            Some(interp(url, &format!("service `{service}` health-url"))?);
                    }
                }
            }
        }
        Ok(())
    }

    fn build(
        self,
        compose_files: Vec<PathBuf>,
        project_dir: PathBuf,
        project_name: String,
    ) -> Result<Manifest> {
        let mut services = BTreeMap::new();
        for (name, raw) in &self.services {
            for u in &raw.uses {
                if !self.secrets.contains_key(&source_of(u)) {
                    return Err(Error::manifest(
                        source_of(u),
                        format!("service `{name}` uses it, but the top-level `secrets:` does not declare it"),
                    ));
                }
            }
            services.insert(
                name.clone(),
                ServiceSpec {
                    name: name.clone(),
                    health_url: raw.health_url.clone(),
                    user: raw.user.clone(),
                    environment: raw.environment.clone(),
                    secrets: raw.uses.iter().map(source_of).collect(),
                },
            );
        }
        let mut secrets = Vec::new();
        for name in &self.order {
            let raw = &self.secrets[name];
            let uses: Vec<SecretUse> = self
                .services
                .values()
                .flat_map(|s| s.uses.iter())
                .filter(|u| source_of(u) == *name)
                .cloned()
                .collect();
            let default_key = match &raw.source {
                SecretSource::Environment(var) => var.clone(),
                _ => default_env_key(name),
            };
            let (owner_uid, owner_gid) = raw.ext.owner.unwrap_or((None, None));
            secrets.push(SecretSpec {
                name: name.clone(),
                vault_name: raw.ext.vault_name.clone().unwrap_or_else(|| name.clone()),
                env_key: raw.ext.env_key.clone().unwrap_or(default_key),
                generator: raw.ext.generator.unwrap_or_default(),
                source: raw.source.clone(),
                owner_uid,
                owner_gid,
                mode: raw.ext.mode.unwrap_or(0o400),
                pinned_version: raw.ext.version.clone(),
                rotation_hook: raw.ext.rotation_hook.clone(),
                uses,
            });
        }
        Ok(Manifest {
            compose_files,
            project_dir,
            project_name,
            secrets,
            services,
        })
    }
}

fn source_of(u: &SecretUse) -> String {
    u.source.clone()
}

impl SecretUse {
    fn new(
        service: &str,
        source: &str,
        target: &str,
        uid: Option<String>,
        gid: Option<String>,
        mode: Option<u32>,
    ) -> Self {
        SecretUse {
            service: service.to_string(),
            source: source.to_string(),
            target: target.to_string(),
            uid,
            gid,
            mode,
        }
    }
}

fn parse_secret_use(service: &str, item: &Value) -> std::result::Result<SecretUse, String> {
    match item {
        Value::String(name) => Ok(SecretUse::new(service, name, name, None, None, None)),
        Value::Mapping(_) => {
            let source = item
                .get("source")
                .and_then(Value::as_str)
                .ok_or("a long-syntax secret needs `source:`")?;
            let target = item.get("target").and_then(Value::as_str).unwrap_or(source);
            let mode = match item.get("mode") {
                None => None,
                Some(v) => {
                    Some(parse_mode(v).ok_or_else(|| format!("secret `{source}`: invalid mode"))?)
                }
            };
            Ok(SecretUse::new(
                service,
                source,
                target,
                item.get("uid").and_then(scalar_string),
                item.get("gid").and_then(scalar_string),
                mode,
            ))
        }
        _ => Err("each entry of `secrets:` must be a name or a mapping".into()),
    }
}

fn parse_environment(env: &Value) -> Vec<(String, String)> {
    match env {
        Value::Mapping(map) => map
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.as_str()?.to_string(),
                    scalar_string(v).unwrap_or_default(),
                ))
            })
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|s| match s.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (s.to_string(), String::new()),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Modes are written `0400`, `"0400"` or `400`; all mean octal 400.
fn parse_mode(v: &Value) -> Option<u32> {
    let digits = match v {
        Value::String(s) => s.trim().trim_start_matches("0o").to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let mode = u32::from_str_radix(&digits, 8).ok()?;
    (mode <= 0o777).then_some(mode)
}

fn parse_extension(
    name: &str,
    ext: Option<&Value>,
    interp: &dyn Fn(&str, &str) -> Result<String>,
) -> Result<Extension> {
    let Some(ext) = ext else {
        return Ok(Extension::default());
    };
    let map = ext
        .as_mapping()
        .ok_or_else(|| Error::manifest(name, format!("`{EXTENSION_KEY}` must be a mapping")))?;
    let mut out = Extension::default();
    for (key, value) in map {
        let key = key.as_str().unwrap_or_default();
        let text = || {
            scalar_string(value)
                .ok_or_else(|| Error::manifest(name, format!("`{key}` must be a string")))
        };
        match key {
            "vault-name" => out.vault_name = Some(interp(&text()?, key)?),
            "env-key" => out.env_key = Some(text()?),
            "generator" => {
                out.generator = Some(text()?.parse().map_err(|m: String| Error::manifest(name, m))?);
            }
            "owner" => out.owner = Some(parse_owner(name, value)?),
            "mode" => {
                let mode = parse_mode(value)
                    .ok_or_else(|| Error::manifest(name, "`mode` must be an octal mode such as 0400"))?;
                if mode & 0o444 == 0 {
                    return Err(Error::manifest(name, "`mode` must let the owner or group read the file"));
                }
                out.mode = Some(mode);
            }
            "version" => out.version = Some(text()?),
            "rotation-hook" => {
                out.rotation_hook = Some(match value {
                    Value::Sequence(items) => items
                        .iter()
                        .map(|i| {
                            scalar_string(i).ok_or_else(|| Error::manifest(name, "`rotation-hook` entries must be strings"))
                        })
                        .collect::<Result<Vec<_>>>()?,
                    _ => vec!["/bin/sh".into(), "-c".into(), text()?],
                });
            }
            // Accepted on secrets for symmetry with services; health is checked per service.
            "health-url" => {}
            other => {
                return Err(Error::manifest(
                    name,
                    format!(
                        "unknown `{EXTENSION_KEY}` field `{other}` (known: vault-name, env-key, generator, owner, mode, \
                         version, rotation-hook)"
                    ),
                ))
            }
        }
    }
    Ok(out)
}

fn parse_owner(name: &str, value: &Value) -> Result<(Option<u32>, Option<u32>)> {
    let bad = || {
        Error::manifest(
            name,
            "`owner` must be \"UID:GID\", \"UID\" or {uid: N, gid: N} with numeric ids",
        )
    };
    let num = |v: Option<&Value>| -> Result<Option<u32>> {
        match v {
            None => Ok(None),
            Some(v) => scalar_string(v)
                .and_then(|s| s.parse().ok())
                .map(Some)
                .ok_or_else(bad),
        }
    };
    match value {
        Value::Mapping(_) => Ok((num(value.get("uid"))?, num(value.get("gid"))?)),
        _ => {
            let s = scalar_string(value).ok_or_else(bad)?;
            let (u, g) = s.split_once(':').unwrap_or((s.as_str(), ""));
            let uid = u.trim().parse().map_err(|_| bad())?;
            let gid = if g.trim().is_empty() {
                None
            } else {
                Some(g.trim().parse().map_err(|_| bad())?)
            };
            Ok((Some(uid), gid))
        }
    }
}

/// Compose-style interpolation: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `$$`.
pub fn interpolate(
    input: &str,
    vars: &HashMap<String, String>,
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}').ok_or("unterminated ${...}")?;
            let expr = &r[..end];
            rest = &r[end + 1..];
            let (name, default, empty_counts) = if let Some((n, d)) = expr.split_once(":-") {
                (n, Some(d), true)
            } else if let Some((n, d)) = expr.split_once('-') {
                (n, Some(d), false)
            } else {
                (expr, None, false)
            };
            let value = vars.get(name).filter(|v| !(empty_counts && v.is_empty()));
            match (value, default) {
                (Some(v), _) => out.push_str(v),
                (None, Some(d)) => out.push_str(&interpolate(d, vars)?),
                (None, None) => {}
            }
        } else {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if len == 0 {
                out.push('$');
            } else {
                if let Some(v) = vars.get(&rest[..len]) {
                    out.push_str(v);
                }
                rest = &rest[len..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    lexical_normalize(&if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    })
}

/// Resolve `.` and `..` without touching the filesystem, as Compose does for `file:`.
pub fn lexical_normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}
