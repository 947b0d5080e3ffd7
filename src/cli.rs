//! Command-line interface: flags, environment variables, subcommands (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "compose-secrets",
    version,
    about = "Load and rotate secrets for Docker Compose applications",
    long_about = "Load and rotate secrets for Docker Compose applications: random secrets in demo mode, \
                  Azure Key Vault in production, files under .runtime/secrets for Compose file secrets.",
    after_help = "Exit codes: 0 ok, 1 verify failed, 2 usage/config error, 3 missing secret, 4 Key Vault error, \
                  5 Docker error, 6 health check failed (rolled back), 7 filesystem error, 8 lock busy, \
                  9 rollback failed."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalOpts {
    /// Compose file(s); as `docker compose -f`. Default: compose.yaml … docker-compose.yml here or above, then compose/.
    #[arg(
        short = 'f',
        long = "file",
        env = "COMPOSE_FILE",
        value_delimiter = ':',
        global = true
    )]
    pub files: Vec<PathBuf>,

    /// Compose project name. Default: the Compose file's `name:`, else its directory's name.
    #[arg(short = 'p', long, env = "COMPOSE_PROJECT_NAME", global = true)]
    pub project_name: Option<String>,

    /// Compose project directory. Default: the directory of the first Compose file.
    #[arg(long, env = "COMPOSE_PROJECT_DIRECTORY", global = true)]
    pub project_directory: Option<PathBuf>,

    /// The `.env` file holding demo values and settings.
    #[arg(
        long,
        env = "COMPOSE_SECRETS_ENV_FILE",
        default_value = ".env",
        global = true
    )]
    pub env_file: PathBuf,

    /// Where state, the lock and the audit log live.
    #[arg(
        long,
        env = "COMPOSE_SECRETS_RUNTIME_DIR",
        default_value = ".runtime",
        global = true
    )]
    pub runtime_dir: PathBuf,

    /// Directory for secret files. Default: <runtime-dir>/secrets.
    #[arg(long, env = "COMPOSE_SECRETS_DIR", global = true)]
    pub secrets_dir: Option<PathBuf>,

    /// Use Azure Key Vault (same as AZURE_USE_KEYVAULT=true).
    #[arg(long, global = true, conflicts_with = "demo")]
    pub keyvault: bool,

    /// Use the demo `.env` store even if AZURE_USE_KEYVAULT=true.
    #[arg(long, global = true)]
    pub demo: bool,

    /// Key Vault URL (overrides AZURE_KEYVAULT_URL).
    #[arg(long, global = true)]
    pub vault_url: Option<String>,

    /// Key Vault name, for https://NAME.vault.azure.net (overrides AZURE_KEYVAULT_NAME).
    #[arg(long, global = true)]
    pub vault_name: Option<String>,

    /// Where containers run: plain Compose, Docker Swarm (versioned swarm secrets, rolling
    /// updates), or auto (Swarm when the engine is a swarm manager and the stack is deployed).
    #[arg(
        long,
        value_enum,
        env = "COMPOSE_SECRETS_TARGET",
        default_value = "auto",
        global = true
    )]
    pub target: DeployTarget,

    /// Machine-readable JSON on stdout.
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
    Ensure(EnsureOpts),
    /// Write every declared secret to its file under the secrets directory.
    Load(LoadOpts),
    /// Rotate secrets: new value, push, rewrite, restart users, health gate, roll back on failure.
    Rotate(RotateOpts),
    /// Check files, drift, stale containers, leaks, health, vault access and the audit log.
    Verify(VerifyOpts),
    /// Developer diagnostics.
    #[command(hide = true, subcommand)]
    Debug(DebugCommand),
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct EnsureOpts {
    /// Template copied to .env when .env is missing.
    #[arg(long, env = "COMPOSE_SECRETS_TEMPLATE", default_value = ".env.demo")]
    pub template: PathBuf,

    /// Regenerate this secret even if it has a value (secret name or .env key; repeatable).
    #[arg(long, value_name = "NAME")]
    pub force: Vec<String>,

    /// Report what would be generated; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct LoadOpts {
    /// Report what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Remove files in the secrets directory that no declared secret owns.
    #[arg(long)]
    pub prune: bool,

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
    #[arg(long, value_name = "AGE")]
    pub older_than: Option<String>,

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

    /// How long to wait for another compose-secrets to release the lock.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub lock_timeout: u64,
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
}
