//! Settings resolved once per run: paths, the store to use, and the one precedence rule
//! (flags > process environment > `.env` > defaults).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::cli::GlobalOpts;
use crate::dotenv::DotEnv;
use crate::error::{Error, Result};
use crate::manifest::{Manifest, ManifestOptions, SecretSpec};
use crate::output::Reporter;
use crate::store::dotenv::DotenvStore;
use crate::store::key_vault::{KeyVaultConfig, KeyVaultStore};
use crate::store::SecretStore;

/// `.env` keys that choose the source, read with the usual precedence.
pub const USE_KEYVAULT: &str = "AZURE_USE_KEYVAULT";

pub struct Context {
    pub cwd: PathBuf,
    /// Plain Compose, Swarm, or detect.
    pub target: crate::cli::DeployTarget,
    pub env_file: PathBuf,
    pub runtime_dir: PathBuf,
    pub secrets_dir: PathBuf,
    pub reporter: Reporter,
    manifest_options: ManifestOptions,
    /// Settings from `.env` (read once; `ensure` may create it later).
    dotenv: Option<DotEnv>,
    flag_overrides: HashMap<&'static str, String>,
    force_demo: bool,
}

impl Context {
    pub fn new(opts: &GlobalOpts, reporter: Reporter) -> Result<Self> {
        let cwd = std::env::current_dir().map_err(Error::io(".", "find the current directory"))?;
        let abs = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                cwd.join(p)
            }
        };
        let env_file = abs(&opts.env_file);
        let runtime_dir = abs(&opts.runtime_dir);
        let secrets_dir = opts
            .secrets_dir
            .as_deref()
            .map_or_else(|| runtime_dir.join("secrets"), abs);
        let dotenv = DotEnv::read(&env_file)?;
        let mut flag_overrides = HashMap::new();
        if opts.keyvault {
            flag_overrides.insert(USE_KEYVAULT, "true".to_string());
        }
        if let Some(url) = &opts.vault_url {
            flag_overrides.insert("AZURE_KEYVAULT_URL", url.clone());
        }
        if let Some(name) = &opts.vault_name {
            flag_overrides.insert("AZURE_KEYVAULT_NAME", name.clone());
        }
        let mut variables: HashMap<String, String> = HashMap::new();
        if let Some(env) = &dotenv {
            for key in env.keys() {
                if let Some(v) = env.get(key) {
                    variables.insert(key.to_string(), v.expose().to_string());
                }
            }
        }
        variables.extend(std::env::vars());
        let manifest_options = ManifestOptions {
            files: opts
                .files
                .iter()
                .filter(|f| !f.as_os_str().is_empty())
                .cloned()
                .collect(),
            project_directory: opts.project_directory.clone(),
            project_name: opts.project_name.clone().filter(|n| !n.is_empty()),
            search_from: cwd.clone(),
            variables,
        };
        Ok(Self {
            target: opts.target,
            cwd,
            env_file,
            runtime_dir,
            secrets_dir,
            reporter,
            manifest_options,
            dotenv,
            flag_overrides,
            force_demo: opts.demo,
        })
    }

    pub fn manifest(&self) -> Result<Manifest> {
        Manifest::load(&self.manifest_options)
    }

    /// Whether a Compose file can be found at all (for commands that can do without one).
    pub fn has_manifest_source(&self) -> bool {
        !self.manifest_options.files.is_empty()
            || crate::manifest::find_compose_file(&self.manifest_options.search_from).is_ok()
    }

    /// Flags > process environment > `.env`.
    pub fn lookup(&self, key: &str) -> Option<String> {
        if let Some(v) = self.flag_overrides.get(key) {
            return Some(v.clone());
        }
        if let Ok(v) = std::env::var(key) {
            return Some(v);
        }
        self.dotenv
            .as_ref()
            .and_then(|e| e.get(key))
            .map(|v| v.expose().to_string())
    }

    pub fn use_keyvault(&self) -> Result<bool> {
        if self.force_demo {
            return Ok(false);
        }
        match self.lookup(USE_KEYVAULT).as_deref().map(str::trim) {
            None | Some("") => Ok(false),
            Some(v) if ["true", "1", "yes", "on"].contains(&v.to_ascii_lowercase().as_str()) => {
                Ok(true)
            }
            Some(v) if ["false", "0", "no", "off"].contains(&v.to_ascii_lowercase().as_str()) => {
                Ok(false)
            }
            Some(v) => Err(Error::Usage(format!(
                "{USE_KEYVAULT}={v} is not a boolean (use true or false)"
            ))),
        }
    }

    /// The store values come from: Key Vault when selected, else `.env`.
    pub fn store(&self) -> Result<Box<dyn SecretStore>> {
        if self.use_keyvault()? {
            let config = KeyVaultConfig::from_lookup(&|k| self.lookup(k))?;
            Ok(Box::new(KeyVaultStore::new(config)?))
        } else {
            Ok(Box::new(DotenvStore::open(&self.env_file)?))
        }
    }

    /// The key a secret has in the selected store.
    pub fn store_key(&self, spec: &SecretSpec, remote: bool) -> String {
        if remote {
            spec.vault_name.clone()
        } else {
            spec.env_key.clone()
        }
    }

    pub fn state_file(&self) -> PathBuf {
        self.runtime_dir.join("state.json")
    }

    pub fn lock_file(&self) -> PathBuf {
        self.runtime_dir.join(".lock")
    }

    pub fn audit_log(&self) -> PathBuf {
        self.runtime_dir.join("audit.log")
    }
}
