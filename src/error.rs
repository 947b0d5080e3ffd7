//! The one error type, its context, and the documented exit codes it maps to.
//!
//! No variant carries a secret value: messages name files, lines, secrets and
//! services only. Errors from SDKs are summarised into our own words before they
//! reach a variant, because their `Display` may echo request details.

use std::io;

use std::path::PathBuf;

/// Exit codes, documented in the README. Stable: scripts depend on them.
pub mod exit {
    /// Every code with its meaning, for `--help` and the man page.
    pub const TABLE: [(u8, &str); 11] = [
        (OK, "success"),
        (
            VERIFY_FAILED,
            "verify found a failed check (or a warning with --strict)",
        ),
        (
            USAGE,
            "usage, configuration, manifest or input-file error (including unsafe paths)",
        ),
        (
            MISSING_SECRET,
            "a declared secret has no value in its source",
        ),
        (
            VAULT,
            "Key Vault error: unreachable, authentication, permission, other",
        ),
        (
            DOCKER,
            "Docker error: engine unreachable or an operation refused",
        ),
        (
            HEALTH,
            "health check failed; the change was rolled back (sync: the version is held)",
        ),
        (
            FILESYSTEM,
            "filesystem error (permissions, full disk, read-only)",
        ),
        (LOCKED, "another compose-secrets holds the lock"),
        (
            ROLLBACK_FAILED,
            "a rollback failed: source, files and containers may disagree",
        ),
        (
            INTERRUPTED,
            "stopped by SIGTERM, SIGINT or SIGHUP; a step in progress was finished first",
        ),
    ];

    /// The table as `--help` shows it.
    pub fn help() -> String {
        let mut text = String::from("Exit codes:\n");
        for (code, meaning) in TABLE {
            text.push_str(&format!("  {code}  {meaning}\n"));
        }
        text
    }

    pub const OK: u8 = 0;
    /// `verify` found at least one failed check (or a warning with `--strict`).
    pub const VERIFY_FAILED: u8 = 1;
    /// Bad flags, configuration, manifest or input file.
    pub const USAGE: u8 = 2;
    /// A declared secret has no value in its source.
    pub const MISSING_SECRET: u8 = 3;
    /// Key Vault could not be reached, refused us, or failed.
    pub const VAULT: u8 = 4;
    /// The Docker engine could not be reached or refused an operation.
    pub const DOCKER: u8 = 5;
    /// A health check failed; the change was rolled back.
    pub const HEALTH: u8 = 6;
    /// A filesystem operation failed (permissions, full disk, read-only).
    pub const FILESYSTEM: u8 = 7;
    /// Another compose-secrets holds the lock.
    pub const LOCKED: u8 = 8;
    /// A rollback itself failed: source, files and containers may disagree.
    pub const ROLLBACK_FAILED: u8 = 9;
    /// SIGTERM, SIGINT or SIGHUP stopped the run at a wait; a step in progress (a rotation
    /// from its intent to its outcome) was finished first, so nothing is half-done. Not used
    /// by `sync --watch`, for which a signal is the normal stop (exit 0).
    pub const INTERRUPTED: u8 = 10;
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),

    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },

    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },

    #[error("secret `{name}`: {message}")]
    Manifest { name: String, message: String },

    #[error("{path}: refused: {message}")]
    UnsafePath { path: PathBuf, message: String },

    #[error("{path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("no value for {} in {origin}: {}", plural(names.len()), names.join(", "))]
    MissingSecrets { names: Vec<String>, origin: String },

    /// Demo mode before `ensure`: there is no `.env` to take values from.
    #[error("{}", no_env_file(path, names, template.as_deref()))]
    NoEnvFile {
        path: PathBuf,
        names: Vec<String>,
        /// The `.env.demo` that `ensure` would copy, when there is one.
        template: Option<PathBuf>,
    },

    #[error("key vault: secret `{name}`{} was not found", version.as_deref().map(|v| format!(" (version {v})")).unwrap_or_default())]
    SecretNotFound {
        name: String,
        version: Option<String>,
    },

    #[error("key vault: secret `{name}` is disabled; enable it or pin an enabled version")]
    SecretDisabled { name: String },

    #[error("key vault: authentication failed: {message}")]
    VaultAuth { message: String },

    #[error("key vault: {}the identity lacks the secrets `{permission}` permission ({message}); grant it with an access policy or the matching RBAC role", name.as_deref().map(|n| format!("secret `{n}`: ")).unwrap_or_default())]
    VaultForbidden {
        name: Option<String>,
        permission: &'static str,
        message: String,
    },

    #[error("key vault: {context}: {message}")]
    Vault { context: String, message: String },

    /// Key Vault kept answering 429 for longer than the retry budget; `retry_after` is what
    /// its last answer asked for (`Retry-After`), which `sync --watch` waits out.
    #[error("key vault: {context}: {message}")]
    VaultThrottled {
        context: String,
        message: String,
        retry_after: Option<std::time::Duration>,
    },

    #[error("docker: {message}")]
    Docker {
        kind: DockerFailure,
        message: String,
    },

    /// An error that happened to one thing (a service's container, a hook): its exit code is
    /// the inner error's.
    #[error("{within}: {inner}")]
    Within { within: String, inner: Box<Error> },

    #[error("health check failed: {message}")]
    Health { message: String },

    /// The change failed and was undone; the exit code is the failure's.
    #[error("secret `{secret}`: {cause}; rolled back to the previous value")]
    RolledBack { secret: String, cause: Box<Error> },

    #[error("secret `{secret}`: {cause}; ROLLBACK FAILED: {}. Source, files and containers may disagree: run `compose-secrets verify`", left.join("; "))]
    RollbackFailed {
        secret: String,
        cause: Box<Error>,
        /// What is left to fix, one sentence each.
        left: Vec<String>,
    },

    /// `sync`: the store's new version made a service unhealthy. The file and the containers
    /// are back on the previous version, the store keeps the new one, and the version is
    /// held (not tried again) until the store moves on or `sync --retry-held`.
    #[error("secret `{secret}`: version {version} is held: {cause}; the file and the containers are back on the previous version and the store keeps the new one (fix the value in the store, or run `compose-secrets sync --retry-held`)")]
    SyncHeld {
        secret: String,
        version: String,
        cause: Box<Error>,
    },

    #[error("{path}: another compose-secrets is running (lock held); waited {waited_secs}s")]
    Locked { path: PathBuf, waited_secs: u64 },

    #[error("{signal}: stopped before finishing; no step was left half-done, so running the command again is safe")]
    Interrupted { signal: &'static str },

    #[error("verify: {failed} check(s) failed, {warned} warning(s)")]
    VerifyFailed { failed: usize, warned: usize },

    /// Several independent problems, each named (e.g. every bad secret of a manifest).
    #[error("{} problems:\n{}", errors.len(), errors.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Several { errors: Vec<Error> },
}

/// What kind of Docker failure: the operator's next step differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockerFailure {
    /// No engine answered (no socket, refused, the connection dropped, no answer in time).
    Unreachable,
    /// The engine answered with an error status.
    Refused { status: u16 },
    /// Anything else (an unsupported endpoint, a malformed answer).
    Other,
}

impl Error {
    pub fn docker(kind: DockerFailure, message: impl Into<String>) -> Error {
        Error::Docker {
            kind,
            message: message.into(),
        }
    }

    /// `inner`, said to have happened to `within` (its exit code is kept).
    pub fn within(within: impl Into<String>, inner: Error) -> Error {
        Error::Within {
            within: within.into(),
            inner: Box::new(inner),
        }
    }

    /// How long the store asked to be left alone (`Retry-After` on a 429), wherever in the
    /// error it is.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::VaultThrottled { retry_after, .. } => *retry_after,
            Error::Within { inner, .. } => inner.retry_after(),
            Error::RolledBack { cause, .. } | Error::SyncHeld { cause, .. } => cause.retry_after(),
            Error::Several { errors } => errors.iter().filter_map(Error::retry_after).max(),
            _ => None,
        }
    }

    /// The error inside any `Within` layers.
    pub fn innermost(&self) -> &Error {
        match self {
            Error::Within { inner, .. } => inner.innermost(),
            other => other,
        }
    }
}

fn no_env_file(
    path: &std::path::Path,
    names: &[String],
    template: Option<&std::path::Path>,
) -> String {
    let what = format!(
        "{} does not exist, so no secret has a value ({})",
        path.display(),
        names.join(", ")
    );
    match template {
        Some(template) => format!(
            "{what}: run `compose-secrets ensure` (the demo's `make ensure-secrets`) to \
             create it from {} with random values, then load again",
            template.display()
        ),
        None => format!(
            "{what}: write the values into it, or add a .env.demo template and run \
             `compose-secrets ensure` to create it with random values"
        ),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        "secret"
    } else {
        "secrets"
    }
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_)
            | Error::Config { .. }
            | Error::Parse { .. }
            | Error::Manifest { .. }
            | Error::UnsafePath { .. } => exit::USAGE,
            Error::Io { .. } => exit::FILESYSTEM,
            Error::MissingSecrets { .. }
            | Error::NoEnvFile { .. }
            | Error::SecretNotFound { .. }
            | Error::SecretDisabled { .. } => exit::MISSING_SECRET,
            Error::VaultAuth { .. }
            | Error::VaultForbidden { .. }
            | Error::Vault { .. }
            | Error::VaultThrottled { .. } => exit::VAULT,
            Error::Docker { .. } => exit::DOCKER,
            Error::Within { inner, .. } => inner.exit_code(),
            Error::Health { .. } => exit::HEALTH,
            Error::RolledBack { cause, .. } => cause.exit_code(),
            Error::RollbackFailed { .. } => exit::ROLLBACK_FAILED,
            Error::SyncHeld { .. } => exit::HEALTH,
            Error::Locked { .. } => exit::LOCKED,
            Error::VerifyFailed { .. } => exit::VERIFY_FAILED,
            Error::Interrupted { .. } => exit::INTERRUPTED,
            Error::Several { errors } => errors.first().map_or(exit::USAGE, Error::exit_code),
        }
    }

    /// Short machine-readable kind for `--json` output.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Usage(_) => "usage",
            Error::Config { .. } => "config",
            Error::Parse { .. } => "parse",
            Error::Manifest { .. } => "manifest",
            Error::UnsafePath { .. } => "unsafe-path",
            Error::Io { .. } => "io",
            Error::MissingSecrets { .. } => "missing-secrets",
            Error::NoEnvFile { .. } => "no-env-file",
            Error::SecretNotFound { .. } => "secret-not-found",
            Error::SecretDisabled { .. } => "secret-disabled",
            Error::VaultAuth { .. } => "vault-auth",
            Error::VaultForbidden { .. } => "vault-forbidden",
            Error::Vault { .. } => "vault",
            Error::VaultThrottled { .. } => "vault-throttled",
            Error::Docker { .. } => "docker",
            Error::Within { inner, .. } => inner.kind(),
            Error::Health { .. } => "health",
            Error::RolledBack { .. } => "rolled-back",
            Error::RollbackFailed { .. } => "rollback-failed",
            Error::SyncHeld { .. } => "sync-held",
            Error::Locked { .. } => "locked",
            Error::VerifyFailed { .. } => "verify-failed",
            Error::Interrupted { .. } => "interrupted",
            Error::Several { errors } => errors.first().map_or("usage", Error::kind),
        }
    }

    /// The error as `--json` prints it: kind, message and exit code; the names for missing
    /// secrets; each problem of [`Error::Several`].
    pub fn to_json(&self) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "kind": self.kind(),
            "message": self.to_string(),
            "exit_code": self.exit_code(),
        });
        match self.innermost() {
            Error::MissingSecrets { names, .. } | Error::NoEnvFile { names, .. } => {
                doc["secrets"] = serde_json::json!(names);
            }
            Error::Several { errors } => {
                doc["problems"] = errors.iter().map(Error::to_json).collect();
            }
            _ => {}
        }
        doc
    }

    /// `Ok` when there is no problem, the one problem, or all of them.
    pub fn all(mut errors: Vec<Error>) -> Result<()> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Several { errors }),
        }
    }

    pub fn io(path: impl Into<PathBuf>, action: &'static str) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            path,
            action,
            source,
        }
    }

    pub fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Error {
        Error::Config {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn manifest(name: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Manifest {
            name: name.into(),
            message: message.into(),
        }
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::Io {
            path: PathBuf::new(),
            action: "system call",
            source: io::Error::from(e),
        }
    }
}
