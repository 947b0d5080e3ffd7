//! The Compose project model: which secrets exist, where their files are, which services mount
//! them, and what `x-compose-secrets` adds, resolved as Docker Compose v2 resolves them.
//!
//! The data's path: `discovery` finds the files, the project directory and the variables;
//! `loader` reads each file (`yaml`), interpolates it (`interpolate`, `env_file`), resolves
//! `extends` and `include`, and merges them (`merge`, checked by `schema`); this module turns
//! the merged document into a [`Project`], applying profiles and Compose's consistency rules.
//! Nothing is ever partial: what cannot be resolved is an error naming the file and key, and a
//! project with several bad secrets names every one of them.

mod discovery;
mod env_file;
mod extension;
pub mod interpolate;
mod loader;
mod merge;
pub mod names;
pub mod reference;
mod schema;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_norway::Value;

pub use discovery::{discover, logical_cwd, Discovered, ProjectOptions, COMPOSE_FILE_NAMES};
pub use extension::EXTENSION_KEY;

use crate::error::{Error, Result};
use crate::generator::Generator;

/// Where Compose takes a secret from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `file:`, resolved as Compose resolves it (absolute).
    File(PathBuf),
    /// `environment:`: Compose copies the variable's value into the container.
    Environment(String),
    /// `external: true`: managed outside Compose (Swarm); compose-secrets leaves it alone.
    External { name: String },
}

/// How a service mounts a secret (`services.*.secrets`, after Compose's normalisation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretUse {
    pub service: String,
    /// The top-level secret it mounts.
    pub source: String,
    /// `/run/secrets/<source>` unless the mount says otherwise (a relative target is kept).
    pub target: String,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub mode: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// The Compose secret name.
    pub name: String,
    /// Its Key Vault name (`vault-name`, else derived: see `names`).
    pub vault_name: String,
    /// Its `.env` key (`env-key`, else derived; the variable of an `environment:` secret).
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
    /// Variables passed on to the rotation hook besides the minimal set.
    pub hook_env: Vec<String>,
    /// Rotation policy: how often `rotate --due` rotates it.
    pub rotate_every: Option<Duration>,
    /// Added to `rotate-every` for the Key Vault version's expiry.
    pub expiry_grace: Option<Duration>,
    /// Every mount of it, by enabled services and by services whose profile is off.
    pub uses: Vec<SecretUse>,
    /// False when only services whose profile is off use it: Compose leaves it out of the
    /// project, and so does compose-secrets (never placed, generated, loaded or rotated). A
    /// secret no service uses at all is kept (Compose drops it too, but it may be there for
    /// compose-secrets itself, such as `audit-log-signing-key`, or for services to come).
    pub in_use: bool,
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

    pub fn is_external(&self) -> bool {
        matches!(self.source, SecretSource::External { .. })
    }

    /// Why a secret not in use is left alone, for reports.
    pub fn unused_reason(&self) -> String {
        let services = self.services();
        let who = if services.is_empty() {
            "services".to_string()
        } else {
            services.join(", ")
        };
        format!("only used by {who}, whose profile is not enabled (--profile, COMPOSE_PROFILES)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceSpec {
    pub name: String,
    /// Whether its profiles are active (a service without profiles always is).
    pub enabled: bool,
    pub health_url: Option<String>,
    pub user: Option<String>,
    /// `environment:` entries after interpolation (`None`: taken from the shell at `up`).
    pub environment: Vec<(String, Option<String>)>,
    /// The variables each `environment:` entry interpolated, by its key.
    pub environment_references: BTreeMap<String, Vec<String>>,
    /// Its secret mounts, in Compose's merged order.
    pub mounts: Vec<SecretUse>,
    /// Secrets used at build time (`build.secrets`): they count as used, are never mounted.
    pub build_secrets: Vec<String>,
    /// Its `env_file`s (absolute): Compose copies every line into the container's environment.
    pub env_files: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    pub directory: PathBuf,
    /// The Compose files given or found, in merge order.
    pub compose_files: Vec<PathBuf>,
    /// Every file the model was read from: Compose files, included and extended files, and
    /// the env files of includes. A secret's file may never be one of these.
    pub files_read: Vec<PathBuf>,
    /// The `.env` files read for interpolation.
    pub env_files: Vec<PathBuf>,
    /// The files of top-level `configs:` (absolute): a secret's file may never be one.
    pub config_files: Vec<PathBuf>,
    /// The interpolation variables (process environment over `.env`), as Compose sees them.
    pub variables: BTreeMap<String, String>,
    pub profiles: Vec<String>,
    pub secrets: Vec<SecretSpec>,
    pub services: BTreeMap<String, ServiceSpec>,
}

impl Project {
    /// Discover and load the project as `docker compose` would.
    pub fn load(options: &ProjectOptions) -> Result<Project> {
        let found = discover(options)?;
        Self::from_discovered(options, found)
    }

    /// Load the project whose files and variables discovery already found.
    pub fn from_discovered(options: &ProjectOptions, found: Discovered) -> Result<Project> {
        if found.files.is_empty() {
            return Err(Error::Usage(found.not_found.unwrap_or_else(|| {
                "no Compose file found; pass -f or set COMPOSE_FILE".into()
            })));
        }
        let shared = loader::Shared::default();
        let mut env = found.env.clone();
        let name = project_name(options, &found, &shared)?;
        env.insert("COMPOSE_PROJECT_NAME".into(), name.clone());
        let home = options.process_env.get("HOME").map(String::as_str);
        let load = loader::Loader {
            env: &env,
            working_dir: &found.working_dir,
            home,
            shared: &shared,
            include_chain: Vec::new(),
        };
        let dict = load.load_model(&found.files)?;
        if !shared.unset.borrow().is_empty() {
            tracing::warn!(
                "variables not set, defaulting to a blank string (as Compose does): {}",
                shared
                    .unset
                    .borrow()
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let profiles = active_profiles(options, &env);
        let references = shared.environment_references.borrow().clone();
        let services = build_services(&dict, &profiles, references)?;
        let secrets = build_secrets(&dict, &services)?;
        let files_read = shared.files_read.borrow().clone();
        let config_files = dict
            .get("configs")
            .and_then(Value::as_mapping)
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|def| def.get("file").and_then(Value::as_str).map(PathBuf::from))
            .collect();
        let project = Project {
            name,
            directory: found.working_dir,
            compose_files: found.files,
            files_read,
            env_files: found.env_files,
            config_files,
            variables: env,
            profiles,
            secrets,
            services,
        };
        project.validate()?;
        Ok(project)
    }

    /// An `env_file` of a service as Compose reads it into the container's environment
    /// (values interpolated with the project's variables); `None` when it does not exist.
    pub fn read_env_file(&self, path: &Path) -> Result<Option<BTreeMap<String, String>>> {
        if std::fs::symlink_metadata(path).is_err() {
            return Ok(None);
        }
        let mut entries = BTreeMap::new();
        env_file::read(path, &self.variables, &mut entries)?;
        Ok(Some(entries))
    }

    /// The secrets compose-secrets acts on: all but those only profile-disabled services use.
    pub fn secrets_in_use(&self) -> impl Iterator<Item = &SecretSpec> {
        self.secrets.iter().filter(|s| s.in_use)
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

    /// Two secrets on one file would overwrite each other.
    fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        let mut files: BTreeMap<PathBuf, &str> = BTreeMap::new();
        for s in &self.secrets {
            if let SecretSource::File(path) = &s.source {
                if let Some(other) = files.insert(crate::files::lexical_normalize(path), &s.name) {
                    problems.push(Error::manifest(
                        &s.name,
                        format!("uses the same file {} as secret `{other}`", path.display()),
                    ));
                }
            }
        }
        Error::all(problems)
    }

    /// The model as `compose-secrets debug model` prints it: every declared secret and every
    /// service, in the shape the differential test compares with `docker compose config`.
    pub fn debug_json(&self) -> serde_json::Value {
        let mut secrets = serde_json::Map::new();
        for s in &self.secrets {
            let v = match &s.source {
                SecretSource::File(p) => serde_json::json!({ "file": p }),
                SecretSource::Environment(var) => serde_json::json!({ "environment": var }),
                SecretSource::External { name } => {
                    serde_json::json!({ "external": true, "name": name })
                }
            };
            secrets.insert(s.name.clone(), v);
        }
        let mut services = serde_json::Map::new();
        for (name, svc) in &self.services {
            let mounts: Vec<serde_json::Value> = svc
                .mounts
                .iter()
                .map(|m| {
                    let mut o = serde_json::Map::new();
                    o.insert("source".into(), m.source.clone().into());
                    o.insert("target".into(), m.target.clone().into());
                    if let Some(uid) = &m.uid {
                        o.insert("uid".into(), uid.clone().into());
                    }
                    if let Some(gid) = &m.gid {
                        o.insert("gid".into(), gid.clone().into());
                    }
                    if let Some(mode) = m.mode {
                        o.insert("mode".into(), format!("0{mode:o}").into());
                    }
                    serde_json::Value::Object(o)
                })
                .collect();
            services.insert(
                name.clone(),
                serde_json::json!({
                    "enabled": svc.enabled,
                    "secrets": mounts,
                    "build_secrets": svc.build_secrets,
                }),
            );
        }
        serde_json::json!({
            "name": self.name,
            "project_directory": self.directory,
            "compose_files": self.compose_files,
            "profiles": self.profiles,
            "secrets": secrets,
            "services": services,
        })
    }
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

/// `-p` > `COMPOSE_PROJECT_NAME` > the last non-empty `name:` > the directory's name.
fn project_name(
    options: &ProjectOptions,
    found: &Discovered,
    shared: &loader::Shared,
) -> Result<String> {
    let strict = |name: &str, from: &str| -> Result<String> {
        if normalize_project_name(name) == name {
            Ok(name.to_string())
        } else {
            Err(Error::Usage(format!(
                "invalid project name {name:?} ({from}): use only lowercase letters, digits, '-' and '_', \
                 starting with a letter or digit"
            )))
        }
    };
    if let Some(name) = options.project_name.as_deref().filter(|n| !n.is_empty()) {
        return strict(name, "-p");
    }
    if let Some(name) = found
        .env
        .get("COMPOSE_PROJECT_NAME")
        .filter(|n| !n.is_empty())
    {
        return strict(name, "COMPOSE_PROJECT_NAME");
    }
    let mut named = false;
    let mut last = None;
    for file in &found.files {
        let docs = yaml::read(file)?;
        for doc in &docs {
            if let Some(Value::String(raw)) = doc.value.get("name") {
                if raw.is_empty() {
                    continue;
                }
                named = true;
                let mut ignore = |_: &str| {};
                let value = interpolate::substitute(raw, &found.env, &mut ignore)
                    .map_err(|e| Error::config(file, e.message("name")))?;
                let value = normalize_project_name(&value);
                if !value.is_empty() {
                    last = Some(value);
                }
            }
        }
        shared.parsed.borrow_mut().insert(file.clone(), docs);
        shared.files_read.borrow_mut().push(file.clone());
    }
    if let Some(name) = last {
        return Ok(name);
    }
    if named {
        return Err(Error::Usage(
            "the project name (`name:`) is empty once interpolated; set it, or pass -p".into(),
        ));
    }
    let name = normalize_project_name(
        &found
            .working_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    if name.is_empty() {
        return Err(Error::Usage(
            "cannot derive a Compose project name from the directory; set COMPOSE_PROJECT_NAME or pass -p".into(),
        ));
    }
    Ok(name)
}

/// `--profile` as given, else `COMPOSE_PROFILES` split on commas.
fn active_profiles(options: &ProjectOptions, env: &BTreeMap<String, String>) -> Vec<String> {
    if !options.profiles.is_empty() {
        return options.profiles.clone();
    }
    env.get("COMPOSE_PROFILES")
        .map(|p| p.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_else(|| vec![String::new()])
}

fn build_services(
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
        let build_secrets = body
            .get("build")
            .and_then(|b| b.get("secrets"))
            .and_then(Value::as_sequence)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.get("source").map(merge::scalar_text))
                    .collect()
            })
            .unwrap_or_default();
        let environment = match body.get("environment") {
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
        };
        let environment_references = references.remove(&name).unwrap_or_default();
        services.insert(
            name.clone(),
            ServiceSpec {
                name,
                enabled,
                health_url,
                user: body.get("user").map(merge::scalar_text),
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
            },
        );
    }
    Error::all(problems)?;
    Ok(services)
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

fn build_secrets(
    dict: &Value,
    services: &BTreeMap<String, ServiceSpec>,
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
        match secret_spec(&name, def, services) {
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
) -> Result<SecretSpec> {
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
    let source = if external {
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
    };
    let ext = extension::secret(def.get(EXTENSION_KEY)).map_err(|m| Error::manifest(name, m))?;
    let default_key = match &source {
        SecretSource::Environment(var) => var.clone(),
        _ => names::default_env_key(name),
    };
    // Whether a `.env` can hold this key is the demo store's question (`check_keys`): in
    // Key Vault mode it does not matter.
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
    let in_use = users.is_empty() || users.iter().any(|s| s.enabled);
    let (owner_uid, owner_gid) = ext
        .owner
        .or_else(|| reader_of(name, services).filter(|&(u, g)| can_give(u, g)))
        .unwrap_or((None, None));
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
        mode: ext.mode.or(mount_mode).unwrap_or(0o400),
        pinned_version: ext.version,
        rotation_hook: ext.rotation_hook,
        hook_env: ext.hook_env,
        rotate_every: ext.rotate_every,
        expiry_grace: ext.expiry_grace,
        uses,
        in_use,
    })
}

/// The one numeric user every enabled service mounting `secret` runs as (`uid`/`gid` of the
/// mount, else a numeric `user:`), when they agree: the owner its file needs so that a
/// non-root service can read it. Services whose user is unknown (no `user:`, or a name) are
/// left out: they run as whatever their image says.
fn reader_of(
    secret: &str,
    services: &BTreeMap<String, ServiceSpec>,
) -> Option<(Option<u32>, Option<u32>)> {
    let readers = services.values().filter(|s| s.enabled).flat_map(|s| {
        let runs_as = s.runs_as();
        s.mounts
            .iter()
            .filter(|m| m.source == secret)
            .map(move |m| {
                let numeric = |v: &Option<String>| v.as_deref().and_then(|v| v.parse::<u32>().ok());
                let (user_uid, user_gid) = match &runs_as {
                    Some(RunsAs::Ids(u, g)) => (Some(*u), *g),
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

#[cfg(test)]
mod tests;
