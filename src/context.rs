//! Settings resolved once per run: the Compose project (found as `docker compose` finds it),
//! the paths that follow the project directory, the store to use, and the one precedence rule
//! for settings (flags > process environment > `.env` > defaults).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::cli::GlobalOpts;
use crate::compose::{self, Discovered, Project, ProjectOptions};
use crate::error::{Error, Result};
use crate::files::layout::{Layout, Protected};
use crate::files::lock::RunLock;
use crate::files::runtime_dir::RuntimeDir;
use crate::output::Reporter;
use crate::store::dotenv::DotenvStore;
use crate::store::key_vault::{KeyVaultConfig, KeyVaultStore};
use crate::store::SecretStore;

/// The setting that chooses the source, read with the usual precedence.
pub const USE_KEYVAULT: &str = "AZURE_USE_KEYVAULT";

pub struct Context {
    /// The working directory, as the shell names it.
    pub cwd: PathBuf,
    /// Plain Compose, Swarm, or detect.
    pub target: crate::cli::DeployTarget,
    /// The project directory: `.env`, `.runtime` and relative secret paths follow it.
    pub project_dir: PathBuf,
    /// The env files of the demo store, in merge order: `--env-file`s (or `COMPOSE_ENV_FILES`)
    /// as Compose reads them, else the project's `.env`.
    pub env_files: Vec<PathBuf>,
    /// The last of them: where a key no file defines is written, and where `ensure` creates
    /// `.env` from the template.
    pub env_file: PathBuf,
    pub template: PathBuf,
    pub runtime_dir: PathBuf,
    pub secrets_dir: PathBuf,
    pub reporter: Reporter,
    options: ProjectOptions,
    discovered: Discovered,
    flag_overrides: HashMap<&'static str, String>,
    force_demo: bool,
}

impl Context {
    pub fn new(opts: &GlobalOpts, reporter: Reporter) -> Result<Self> {
        let cwd = compose::logical_cwd()?;
        let options = ProjectOptions {
            files: opts
                .files
                .iter()
                .filter(|f| !f.as_os_str().is_empty())
                .cloned()
                .collect(),
            project_directory: opts.project_directory.clone(),
            project_name: opts.project_name.clone().filter(|n| !n.is_empty()),
            env_files: opts.env_files.clone(),
            profiles: opts.profiles.clone(),
            cwd: cwd.clone(),
            process_env: std::env::vars().collect::<BTreeMap<_, _>>(),
            keep_in_use: vec![crate::audit::SIGNING_KEY_SECRET.to_string()],
        };
        let discovered = compose::discover(&options)?;
        let project_dir = discovered.working_dir.clone();
        let abs = |p: &Path| absolute(&cwd, p);
        let env_files = if discovered.explicit_env_files && !discovered.env_files.is_empty() {
            discovered.env_files.clone()
        } else {
            vec![project_dir.join(".env")]
        };
        let env_file = env_files[env_files.len() - 1].clone();
        // A flag or a process variable is relative to the working directory, a line of the
        // project's `.env` to the project directory (where that file is).
        let setting = |flag: &Option<PathBuf>, var: &str| -> Option<PathBuf> {
            if let Some(p) = flag.as_deref().filter(|p| !p.as_os_str().is_empty()) {
                return Some(abs(p));
            }
            if let Some(v) = options.process_env.get(var).filter(|v| !v.is_empty()) {
                return Some(abs(Path::new(v)));
            }
            discovered
                .env
                .get(var)
                .filter(|v| !v.is_empty())
                .map(|v| absolute(&project_dir, Path::new(v)))
        };
        let runtime_dir = setting(&opts.runtime_dir, "COMPOSE_SECRETS_RUNTIME_DIR")
            .unwrap_or_else(|| project_dir.join(".runtime"));
        let secrets_dir = setting(&opts.secrets_dir, "COMPOSE_SECRETS_DIR")
            .unwrap_or_else(|| runtime_dir.join("secrets"));
        let template = project_dir.join(".env.demo");
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
        Ok(Self {
            cwd,
            target: opts.target,
            project_dir,
            env_files,
            env_file,
            template,
            runtime_dir,
            secrets_dir,
            reporter,
            options,
            discovered,
            flag_overrides,
            force_demo: opts.demo,
        })
    }

    /// The same context with `var` taken out of the process environment it resolves the project
    /// from. Compose sets `COMPOSE_PROJECT_NAME` for a provider: without it, only the project's
    /// own files and `.env` name the project, so a name check against Compose's means something.
    pub fn without_process_variable(mut self, var: &str) -> Result<Self> {
        if self.options.process_env.remove(var).is_some() {
            self.discovered = compose::discover(&self.options)?;
        }
        Ok(self)
    }

    /// Load the Compose project (its files were found when the context was made).
    pub fn project(&self) -> Result<Project> {
        Project::from_discovered(&self.options, self.discovered.clone())
    }

    /// The Compose flags this run was given (`-f`, `-p`, `--project-directory`,
    /// `--env-file`, `--profile`), for running `docker compose` on the same project.
    pub fn compose_flags(&self) -> Vec<std::ffi::OsString> {
        let o = &self.options;
        let mut flags: Vec<std::ffi::OsString> = Vec::new();
        for f in &o.files {
            flags.extend(["-f".into(), f.clone().into_os_string()]);
        }
        if let Some(name) = &o.project_name {
            flags.extend(["-p".into(), name.into()]);
        }
        if let Some(dir) = &o.project_directory {
            flags.extend(["--project-directory".into(), dir.clone().into_os_string()]);
        }
        for f in &o.env_files {
            flags.extend(["--env-file".into(), f.clone().into_os_string()]);
        }
        for p in &o.profiles {
            flags.extend(["--profile".into(), p.into()]);
        }
        flags
    }

    /// Whether a Compose file was found (for commands that can do without one).
    pub fn has_project(&self) -> bool {
        !self.discovered.files.is_empty()
    }

    /// Where each secret's file goes, refusing unsafe places before anything is written.
    pub fn layout(&self, project: &Project) -> Result<Layout> {
        Layout::plan(
            project,
            &self.runtime_dir,
            &self.secrets_dir,
            &Protected {
                project,
                env_file: &self.env_file,
                template: &self.template,
            },
        )
    }

    /// Flags > process environment > `.env` (the variables Compose interpolates with).
    pub fn lookup(&self, key: &str) -> Option<String> {
        if let Some(v) = self.flag_overrides.get(key) {
            return Some(v.clone());
        }
        self.discovered.env.get(key).cloned()
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

    /// How the selected store names secrets, known without opening it.
    pub fn naming(&self) -> Result<crate::store::Naming> {
        Ok(if self.use_keyvault()? {
            crate::store::Naming::VaultNames
        } else {
            crate::store::Naming::EnvKeys
        })
    }

    /// The store values come from: Key Vault when selected, else `.env`.
    pub fn store(&self) -> Result<Box<dyn SecretStore>> {
        if self.use_keyvault()? {
            let config = KeyVaultConfig::from_lookup(&|k| self.lookup(k))?;
            Ok(Box::new(KeyVaultStore::new(config)?))
        } else {
            Ok(Box::new(DotenvStore::open(&self.env_files)?))
        }
    }

    /// Start a run that writes: open (or create) the runtime directory and hold it, take the
    /// run lock, clear temp files that killed runs left beside `.env` and in the runtime
    /// directory, and key this run's fingerprints. Every command that writes starts here,
    /// before it reads anything it will write back.
    pub async fn begin_writing(&self, timeout: std::time::Duration) -> Result<Writing> {
        let runtime = RuntimeDir::open(&self.runtime_dir, true)?.ok_or_else(|| {
            Error::io(&self.runtime_dir, "create directory")(std::io::ErrorKind::NotFound.into())
        })?;
        let lock = RunLock::acquire(&runtime, timeout).await?;
        let beside_env = crate::files::secret_dir::remove_orphaned_temps_beside(&self.env_file)?;
        let in_runtime = runtime.dir().remove_orphaned_temps()?;
        for skipped in beside_env.skipped.into_iter().chain(in_runtime.skipped) {
            self.reporter.note(&format!(
                "compose-secrets: left alone {}: named like a temp file, but not a file (remove it by hand)",
                self.show(&skipped)
            ));
        }
        crate::audit::use_local_key_for_fingerprints(Some(&runtime), true)?;
        Ok(Writing {
            runtime,
            _lock: lock,
        })
    }

    /// Start a run that only reads: the runtime directory if there is one (never created, no
    /// mode changed), and fingerprints keyed as the writers keyed them.
    pub fn begin_reading(&self) -> Result<Option<RuntimeDir>> {
        let runtime = RuntimeDir::open(&self.runtime_dir, false)?;
        crate::audit::use_local_key_for_fingerprints(runtime.as_ref(), false)?;
        Ok(runtime)
    }

    /// A path as the user would write it: relative to the working directory when below it.
    pub fn show(&self, path: &Path) -> String {
        path.strip_prefix(&self.cwd)
            .ok()
            .filter(|rel| !rel.as_os_str().is_empty())
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// A run that writes: the runtime directory it holds, and the run lock.
pub struct Writing {
    pub runtime: RuntimeDir,
    _lock: RunLock,
}

fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    crate::files::lexical_normalize(&if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    })
}
