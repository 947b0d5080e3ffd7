//! Command-line interface: flags, environment variables, subcommands (clap derive).
//!
//! The Compose flags (`-f`, `-p`, `--project-directory`, `--env-file`, `--profile`) mean what
//! they mean to `docker compose`; `COMPOSE_FILE`, `COMPOSE_PROJECT_NAME`, `COMPOSE_PROFILES`
//! and friends are read by the project model, from the environment or the project's `.env`,
//! exactly as Compose reads them.

use std::path::PathBuf;

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

/// What the man page says under DESCRIPTION. `--help` stays compact (one line per option): a
/// `long_about` would make clap print every option of `--help` on two lines with a blank one
/// between.
pub const DESCRIPTION: &str = "Load and rotate secrets for Docker Compose applications: random \
    secrets in demo mode, Azure Key Vault in production, written as the files your Compose file \
    secrets name.";

/// The top level's examples, in `--help` and the man page.
pub const EXAMPLES: &str = "Examples:
  compose-secrets ensure && compose-secrets load   # demo: fill .env, write .runtime/secrets
  compose-secrets rotate flask-secret-key          # new value, its services restarted
  compose-secrets verify                           # files, drift, containers, leaks, audit
";

#[derive(Debug, Parser)]
#[command(
    name = "compose-secrets",
    version,
    about = "Load and rotate secrets for Docker Compose applications",
    after_help = format!("{EXAMPLES}\n{}", crate::error::exit::help()),
    subcommand_help_heading = "Commands"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,

    #[command(subcommand)]
    pub command: Command,
}

/// The command line: what `main` parses, and what `--help`, completions and the man page show.
///
/// The global options are accepted after any subcommand (`compose-secrets load -f x.yaml`), so
/// they are `global = true`, and clap copies each one into every subcommand, `completions`
/// included, whose help would then list Compose and Key Vault flags it never reads. clap skips
/// that copy in a subcommand that already has an argument with the same id, so `completions`
/// gets hidden, non-global copies: still accepted there (and ignored, as before), never shown.
/// A top-level `--completions` flag handled before parsing would have hidden them too, but it
/// would change the documented `compose-secrets completions SHELL`.
pub fn command() -> clap::Command {
    let cmd = Cli::command();
    let globals: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .cloned()
        .collect();
    cmd.mut_subcommand("completions", |sub| {
        globals
            .into_iter()
            .fold(sub, |sub, arg| sub.arg(arg.global(false).hide(true)))
    })
}

impl Cli {
    /// Parse `args` with [`command`].
    pub fn try_parse_with(
        args: impl IntoIterator<Item = std::ffi::OsString>,
    ) -> Result<Cli, clap::Error> {
        let mut cmd = command();
        let matches = cmd.try_get_matches_from_mut(args)?;
        Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
    }
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalOpts {
    /// Compose file(s), as `docker compose -f` (default: COMPOSE_FILE, else compose.yaml … here or above).
    #[arg(short = 'f', long = "file", value_name = "FILE", global = true)]
    pub files: Vec<PathBuf>,

    /// Compose project name (default: COMPOSE_PROJECT_NAME, else `name:`, else the directory's name).
    #[arg(short = 'p', long, value_name = "NAME", global = true)]
    pub project_name: Option<String>,

    /// Compose project directory (default: the first Compose file's directory).
    #[arg(long, value_name = "DIR", global = true)]
    pub project_directory: Option<PathBuf>,

    /// Env file(s) for interpolation and demo values, as `docker compose --env-file` (default: <project>/.env).
    #[arg(long = "env-file", value_name = "FILE", global = true)]
    pub env_files: Vec<PathBuf>,

    /// Compose profile(s) to enable (default: COMPOSE_PROFILES).
    #[arg(long = "profile", value_name = "PROFILE", global = true)]
    pub profiles: Vec<String>,

    /// Where state, the lock and the audit log live (default: COMPOSE_SECRETS_RUNTIME_DIR in
    /// the environment or .env, else <project>/.runtime).
    #[arg(long, value_name = "DIR", global = true)]
    pub runtime_dir: Option<PathBuf>,

    /// compose-secrets' own directory for secret files (default: COMPOSE_SECRETS_DIR in the
    /// environment or .env, else <runtime-dir>/secrets).
    #[arg(long, value_name = "DIR", global = true)]
    pub secrets_dir: Option<PathBuf>,

    /// Use Azure Key Vault (same as AZURE_USE_KEYVAULT=true).
    #[arg(long, global = true, conflicts_with = "demo")]
    pub keyvault: bool,

    /// Use the demo `.env` store even if AZURE_USE_KEYVAULT=true.
    #[arg(long, global = true)]
    pub demo: bool,

    /// Key Vault URL (overrides AZURE_KEYVAULT_URL).
    #[arg(long, value_name = "URL", global = true)]
    pub vault_url: Option<String>,

    /// Key Vault name, for https://NAME.vault.azure.net (overrides AZURE_KEYVAULT_NAME).
    #[arg(long, value_name = "NAME", global = true)]
    pub vault_name: Option<String>,

    /// Where containers run: plain Compose, Docker Swarm, or auto (Swarm when the engine is a
    /// swarm manager and the stack is deployed) (default: COMPOSE_SECRETS_TARGET in the
    /// environment or .env, else auto).
    #[arg(long, value_enum, value_name = "TARGET", global = true)]
    pub target: Option<DeployTarget>,

    /// How long to wait for another compose-secrets to release the lock (default:
    /// COMPOSE_SECRETS_LOCK_TIMEOUT in the environment or .env, else 30).
    #[arg(long, value_name = "SECONDS", global = true)]
    pub lock_timeout: Option<u64>,

    /// Machine-readable JSON on stdout (errors too).
    #[arg(long, global = true)]
    pub json: bool,

    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// More detail on stderr (-v, -vv, -vvv). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeployTarget {
    Auto,
    Compose,
    Swarm,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create .env from .env.demo and fill empty secrets with random values (demo mode).
    #[command(after_help = "Examples:
  compose-secrets ensure                       # create .env, fill every empty secret
  compose-secrets ensure --dry-run             # show what would be generated
  compose-secrets ensure --force db-password   # draw a new value for one secret")]
    Ensure(EnsureOpts),
    /// Write every declared secret to the file its Compose `file:` names.
    #[command(after_help = "Examples:
  compose-secrets load                         # from .env, or Key Vault (AZURE_USE_KEYVAULT=true)
  compose-secrets load --dry-run --json        # what would change, for a script
  compose-secrets -f deploy/compose.yaml load --prune
  compose-secrets load --env-output .env.app --map DBPASSWORD=DB_PASSWORD")]
    Load(LoadOpts),
    /// Rotate secrets: new value, push, rewrite, restart users, health gate, roll back on failure.
    #[command(after_help = "Examples:
  compose-secrets rotate db-password           # one secret, its services restarted one at a time
  compose-secrets rotate --all --dry-run       # the plan: values, hooks, containers, health checks
  compose-secrets rotate --all --older-than 90d
  printf %s \"$NEW\" | compose-secrets rotate api-token --value-stdin")]
    Rotate(RotateOpts),
    /// Follow the store: apply versions set elsewhere, restarting the services that use them.
    #[command(after_help = "Examples:
  compose-secrets sync                         # apply what changed in the store, health-gated
  compose-secrets sync --dry-run               # what would be applied and restarted
  compose-secrets sync --retry-held            # try held versions again
  compose-secrets sync --watch --interval 60s  # keep following (a systemd service, a sidecar)

A version that makes a service unhealthy is put back on this host and held (exit 6):
the store keeps it, and `sync` leaves it alone until the store moves on.")]
    Sync(SyncOpts),
    /// Check files, drift, stale containers, leaks, health, vault access and the audit log.
    #[command(after_help = "Examples:
  compose-secrets verify                       # the table; exit 1 if a check failed
  compose-secrets verify --json --strict       # for CI: warnings fail too
  compose-secrets verify --no-docker           # files, drift, git and audit only")]
    Verify(VerifyOpts),
    /// Developer diagnostics.
    #[command(hide = true, subcommand)]
    Debug(DebugCommand),
    /// The Docker Compose provider protocol: `docker compose` (2.36+) runs it for a service
    /// with `provider: {type: compose-secrets}` (see `provider`).
    #[command(hide = true, subcommand)]
    Compose(ComposeCommand),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Examples:
  compose-secrets completions bash > ~/.local/share/bash-completion/completions/compose-secrets
  compose-secrets completions zsh > \"${fpath[1]}/_compose-secrets\"
  compose-secrets completions fish > ~/.config/fish/completions/compose-secrets.fish")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Default, Args)]
pub struct EnsureOpts {
    /// Template copied to .env when .env is missing (default: COMPOSE_SECRETS_TEMPLATE in the
    /// environment or .env, else <project>/.env.demo).
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,

    /// Regenerate this secret even if it has a value (secret name or .env key; repeatable).
    #[arg(long, value_name = "NAME")]
    pub force: Vec<String>,

    /// Report what would be generated; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Default, Args)]
pub struct LoadOpts {
    /// Report what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Remove stray files: secret files compose-secrets wrote that no secret declares now, in
    /// directories it created (never a project file, never a file git tracks).
    #[arg(long)]
    pub prune: bool,

    /// Replace a secret file compose-secrets has not written even when it holds another value
    /// (by default that is refused: `ensure` adopts such a file's value instead).
    #[arg(long)]
    pub overwrite: bool,

    /// Also write values into this env file's KEY= lines (the get_secrets.sh pattern).
    #[arg(long, value_name = "FILE")]
    pub env_output: Option<PathBuf>,

    /// With --env-output: map a vault secret to an env key, e.g. DBPASSWORD=DB_PASSWORD (repeatable).
    /// With maps and no Compose file, only the mapped secrets are loaded.
    #[arg(long = "map", value_name = "VAULT=KEY", requires = "env_output")]
    pub maps: Vec<String>,

    /// Fetch every value even if the state file says it is unchanged.
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Debug, Args)]
pub struct RotateOpts {
    /// Secrets to rotate (Compose name, vault name or .env key).
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,

    /// Rotate every declared secret.
    #[arg(long, conflicts_with = "names")]
    pub all: bool,

    /// Rotate only secrets whose `rotated-at` tag is older than this (e.g. 90d, 12h).
    #[arg(long, value_name = "AGE", conflicts_with = "due")]
    pub older_than: Option<String>,

    /// Rotate only secrets their `x-compose-secrets.rotate-every` says are due (cron-friendly).
    #[arg(long)]
    pub due: bool,

    /// Read the new value from stdin instead of generating it (one secret only).
    #[arg(long)]
    pub value_stdin: bool,

    /// Print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Push and write only; restart nothing.
    #[arg(long)]
    pub no_restart: bool,

    /// HTTP health check for every restarted service (overrides the manifest).
    #[arg(long, value_name = "URL")]
    pub health_url: Option<String>,

    /// How long to wait for health after each restart.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub health_timeout: u64,

    /// Do not ask before rotating a secret no running container uses (asked on a terminal only).
    #[arg(short = 'y', long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct SyncOpts {
    /// Print what would be applied and restarted; change nothing.
    #[arg(long, conflicts_with = "watch")]
    pub dry_run: bool,

    /// Try held versions again (a held version is otherwise skipped until the store moves on).
    #[arg(long)]
    pub retry_held: bool,

    /// Keep following: reconcile now, then poll the store every --interval (with jitter),
    /// backing off while it fails. SIGTERM, SIGINT or SIGHUP stops it after the step in progress.
    #[arg(long)]
    pub watch: bool,

    /// With --watch: how often to poll the store (e.g. 60s, 5m; a bare number is seconds).
    #[arg(long, value_name = "PERIOD", default_value = "60s", requires = "watch")]
    pub interval: String,

    /// HTTP health check for every restarted service (overrides the manifest).
    #[arg(long, value_name = "URL")]
    pub health_url: Option<String>,

    /// How long to wait for health after each restart.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub health_timeout: u64,
}

#[derive(Debug, Args)]
pub struct VerifyOpts {
    /// Fail on warnings too.
    #[arg(long)]
    pub strict: bool,

    /// Skip the Docker checks (stale containers, leaks, container health).
    #[arg(long)]
    pub no_docker: bool,
}

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Print the process hardening in effect (core dump limit, dumpable flag) as JSON.
    Hardening,
    /// Print the resolved Compose project model as JSON (what the differential test compares
    /// with `docker compose config`).
    Model,
    /// Print every setting, its value and where it came from (flag, environment, .env,
    /// default); `--json` for a script. Never prints a secret value.
    Settings,
    /// Print the man page (roff) on stdout: `make man` writes it to target/man/compose-secrets.1.
    Man,
}

/// What Compose asks of a provider (docker/compose `docs/extension.md`); the options of the
/// provider service arrive as the global flags of the same names.
#[derive(Debug, Subcommand)]
pub enum ComposeCommand {
    /// Load the project's secrets before Compose creates the services that depend on SERVICE.
    Up(ProviderOpts),
    /// Nothing to release: the secret files stay for the next `up`.
    Down(ProviderOpts),
    /// Nothing to pause: the secret files stay for the next `up`.
    Stop(ProviderOpts),
    /// The provider's options and their defaults, as JSON.
    Metadata,
}

#[derive(Debug, Args)]
pub struct ProviderOpts {
    /// The provider service's name in the Compose file.
    pub service: String,
}
