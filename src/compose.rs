//! The Compose project model: which secrets exist, where their files are, which services mount
//! them, and what `x-compose-secrets` adds, resolved as Docker Compose v2 resolves them.
//!
//! The data's path: `discovery` finds the files, the project directory and the variables;
//! `loader` reads each file (`yaml`), interpolates it (`interpolate`, `env_file`), resolves
//! `extends` and `include`, and merges them (`merge`, checked by `schema`); this module turns
//! the merged document into a [`Project`], applying profiles and Compose's consistency rules.
//! Nothing is ever partial: what cannot be resolved is an error naming the file and key, and a
//! project with several bad secrets names every one of them.

pub mod certificate_part;
mod discovery;
mod env_file;
mod extension;
pub mod interpolate;
mod loader;
mod merge;
pub mod names;
pub mod reference;
mod schema;
mod secrets;
mod services;
pub mod update;
mod yaml;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde_norway::Value;

pub use discovery::{discover, logical_cwd, Discovered, ProjectOptions};
pub use extension::EXTENSION_KEY;
pub use secrets::owner_from_readers;
pub use services::RunsAs;

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

/// Where a secret file's owner comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OwnerFrom {
    /// Nowhere: the file keeps the user compose-secrets runs as.
    #[default]
    Runner,
    /// `x-compose-secrets.owner`.
    Declared,
    /// The numeric `user:` (or the mount's `uid`/`gid`) of the services that mount it.
    ServiceUser,
    /// A named `user:`, looked up in the image's /etc/passwd and /etc/group (`owners`).
    Image { image: String, user: String },
}

impl OwnerFrom {
    /// Said after the owner in `verify`'s lines.
    pub fn describe(&self) -> Option<String> {
        match self {
            OwnerFrom::Runner => None,
            OwnerFrom::Declared => Some("from x-compose-secrets.owner".into()),
            OwnerFrom::ServiceUser => Some("from the services' numeric user:".into()),
            OwnerFrom::Image { image, user } => Some(format!(
                "user `{user}` from image {image}'s /etc/passwd and /etc/group"
            )),
        }
    }
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
    /// Where `owner_uid`/`owner_gid` come from, for `verify`.
    pub owner_from: OwnerFrom,
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
    /// `x-compose-secrets.certificate`: the file holds this part of a certificate bundle.
    pub certificate: Option<certificate_part::CertificateUse>,
    /// Every mount of it, by enabled services and by services whose profile is off.
    pub uses: Vec<SecretUse>,
    /// Whether an enabled service mounts it or builds with it. Compose leaves every other
    /// secret out of the project, and so does compose-secrets (never placed, generated,
    /// loaded or rotated); the one exception is `audit-log-signing-key`, which is
    /// compose-secrets' own.
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
        if services.is_empty() {
            "no service uses it, so Compose leaves it out".into()
        } else {
            format!(
                "only used by {}, whose profile is not enabled (--profile, COMPOSE_PROFILES)",
                services.join(", ")
            )
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceSpec {
    pub name: String,
    /// Whether its profiles are active (a service without profiles always is).
    pub enabled: bool,
    pub health_url: Option<String>,
    /// `provider.type` of a provider service (Compose 2.36+): Compose runs that program
    /// instead of creating a container, so no container of it is ever looked for.
    pub provider: Option<String>,
    pub user: Option<String>,
    /// `image:` (`None` for a service Compose builds: its image is `<project>-<service>`).
    pub image: Option<String>,
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
    /// `deploy.update_config`, when given.
    pub update: Option<update::UpdateConfig>,
    /// What keeps a second container of it from running (`container_name`, fixed host ports).
    pub singletons: Vec<update::Singleton>,
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
    #[cfg(any(test, feature = "testing"))]
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
        let services = services::build_services(&dict, &profiles, references)?;
        let secrets = secrets::build_secrets(&dict, &services, &options.keep_in_use)?;
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

    /// The secrets compose-secrets acts on: those Compose keeps (see [`SecretSpec::in_use`]).
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
                if let Some(other) = files.insert(lexical_normalize(path), &s.name) {
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

/// Resolve `.` and `..` without touching the filesystem.
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

#[cfg(test)]
pub(crate) mod tests;
