//! Settings resolved once per run: the Compose project (found as `docker compose` finds it),
//! the paths that follow the project directory, the store to use, and the one precedence rule
//! for settings (flags > process environment > `.env` > defaults).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::GlobalOpts;
use crate::compose::{self, Discovered, Project, ProjectOptions};
use crate::deploy::Target;
use crate::error::Result;
use crate::files::layout::{Layout, Protected};
use crate::output::Reporter;
use crate::secret::FingerprintKey;
use crate::settings::{Flags, Layers, Row, Settings, Source};
use crate::store::dotenv::DotenvStore;
use crate::store::key_vault::{KeyVaultConfig, KeyVaultStore};
use crate::store::SecretStore;
use crate::transaction::{Reading, Site, Writing};

pub struct Context {
    /// The working directory, as the shell names it.
    pub cwd: PathBuf,
    /// Every setting, resolved once (see [`crate::settings`]).
    pub settings: Settings,
    /// Plain Compose, Swarm, or detect.
    pub target: Target,
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
    /// How long a command that writes waits for the run lock.
    pub lock_timeout: Duration,
    pub reporter: Reporter,
    options: ProjectOptions,
    discovered: Discovered,
}

impl Context {
    /// `template`: `ensure --template`, the one setting whose flag is not global.
    pub fn new(opts: &GlobalOpts, template: Option<&Path>, reporter: Reporter) -> Result<Self> {
        let cwd = compose::logical_cwd()?;
        let options = project_options(opts, &cwd);
        let discovered = compose::discover(&options)?;
        let project_dir = discovered.working_dir.clone();
        let env_files = if discovered.explicit_env_files && !discovered.env_files.is_empty() {
            discovered.env_files.clone()
        } else {
            vec![project_dir.join(".env")]
        };
        let env_file = env_files[env_files.len() - 1].clone();
        let settings = Settings::resolve(
            &flags(opts, template),
            &Layers {
                process_env: &options.process_env,
                interpolation: &discovered.env,
                cwd: &cwd,
                project_dir: &project_dir,
            },
        )?;
        Ok(Self {
            cwd,
            target: settings.target.value,
            project_dir,
            env_files,
            env_file,
            template: settings.template.value.clone(),
            runtime_dir: settings.runtime_dir.value.clone(),
            secrets_dir: settings.secrets_dir.value.clone(),
            lock_timeout: settings.lock_timeout.value,
            settings,
            reporter,
            options,
            discovered,
        })
    }

    /// The layers below the flags, for settings read by other layers (`debug settings`).
    pub fn layers(&self) -> Layers<'_> {
        Layers {
            process_env: &self.options.process_env,
            interpolation: &self.discovered.env,
            cwd: &self.cwd,
            project_dir: &self.project_dir,
        }
    }

    /// The Compose settings as `docker compose` resolved them, with their layer.
    pub fn compose_rows(&self) -> Vec<Row> {
        let o = &self.options;
        let layers = self.layers();
        // The flag when it was given, else the layer that set the variable, else the default.
        let row = |name, flag, variable, value, flagged: bool| {
            let source = match (flagged, layers.var(variable)) {
                (true, _) => Source::Flag,
                (false, Some((_, source))) => source,
                (false, None) => Source::Default,
            };
            Row {
                name,
                flag,
                variable,
                value,
                source,
            }
        };
        // Paths as Compose resolved them, whichever layer named them.
        let paths = |name, flag, variable, given: &[PathBuf], resolved: &[PathBuf]| {
            let shown: Vec<String> = resolved.iter().map(|p| p.display().to_string()).collect();
            row(name, flag, variable, shown.join(","), !given.is_empty())
        };
        // Text that only the flag or the variable gives.
        let text = |name, flag, variable, given: Option<String>| {
            let flagged = given.is_some();
            let value = given.or_else(|| layers.var(variable).map(|(v, _)| v));
            row(name, flag, variable, value.unwrap_or_default(), flagged)
        };
        let profiles = (!o.profiles.is_empty()).then(|| o.profiles.join(","));
        vec![
            paths(
                "compose-files",
                "-f",
                "COMPOSE_FILE",
                &o.files,
                &self.discovered.files,
            ),
            row(
                "project-directory",
                "--project-directory",
                "",
                self.project_dir.display().to_string(),
                o.project_directory.is_some(),
            ),
            paths(
                "env-files",
                "--env-file",
                "COMPOSE_ENV_FILES",
                &o.env_files,
                &self.env_files,
            ),
            text(
                "project-name",
                "-p",
                "COMPOSE_PROJECT_NAME",
                o.project_name.clone(),
            ),
            text("profiles", "--profile", "COMPOSE_PROFILES", profiles),
        ]
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
        let flagged = match key {
            crate::settings::USE_KEYVAULT => Some(&self.settings.use_keyvault),
            crate::settings::VAULT_URL => Some(&self.settings.vault_url),
            crate::settings::VAULT_NAME => Some(&self.settings.vault_name),
            _ => None,
        };
        match flagged {
            Some(s) if s.source == Source::Flag => s.value.clone(),
            _ => self.discovered.env.get(key).cloned(),
        }
    }

    pub fn use_keyvault(&self) -> Result<bool> {
        self.settings.use_keyvault()
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
    pub fn store(&self, fingerprints: &FingerprintKey) -> Result<Box<dyn SecretStore>> {
        if self.use_keyvault()? {
            let config = KeyVaultConfig::from_lookup(&|k| self.lookup(k))?;
            Ok(Box::new(KeyVaultStore::new(config)?))
        } else {
            Ok(Box::new(DotenvStore::open(&self.env_files, fingerprints)?))
        }
    }

    /// The plain values a transaction needs (see [`crate::transaction`]).
    pub fn site(&self) -> Site<'_> {
        Site {
            runtime_dir: &self.runtime_dir,
            env_file: &self.env_file,
            lock_timeout: self.lock_timeout,
            target: self.target,
            reporter: &self.reporter,
            shown_from: &self.cwd,
        }
    }

    /// Take the run lock (see [`crate::transaction::begin_writing`]).
    pub async fn begin_writing(&self) -> Result<Writing> {
        crate::transaction::begin_writing(&self.site()).await
    }

    /// Look at the runtime directory only (see [`crate::transaction::begin_reading`]).
    pub fn begin_reading(&self) -> Result<Reading> {
        crate::transaction::begin_reading(&self.site())
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

fn project_options(opts: &GlobalOpts, cwd: &Path) -> ProjectOptions {
    ProjectOptions {
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
        cwd: cwd.to_path_buf(),
        process_env: std::env::vars().collect::<BTreeMap<_, _>>(),
        keep_in_use: vec![crate::audit::SIGNING_KEY_SECRET.to_string()],
    }
}

fn flags(opts: &GlobalOpts, template: Option<&Path>) -> Flags {
    Flags {
        target: opts.target.map(Into::into),
        template: template.map(Path::to_path_buf),
        runtime_dir: opts.runtime_dir.clone(),
        secrets_dir: opts.secrets_dir.clone(),
        keyvault: opts.keyvault,
        demo: opts.demo,
        vault_url: opts.vault_url.clone(),
        vault_name: opts.vault_name.clone(),
        lock_timeout: opts.lock_timeout,
    }
}

// Here, above both: the CLI's word for a target becomes the plain value `deploy` takes.
impl From<crate::cli::DeployTarget> for crate::deploy::Target {
    fn from(t: crate::cli::DeployTarget) -> Self {
        use crate::cli::DeployTarget;
        match t {
            DeployTarget::Auto => Self::Auto,
            DeployTarget::Compose => Self::Compose,
            DeployTarget::Swarm => Self::Swarm,
        }
    }
}
