//! Human and `--json` output, progress on a TTY, and logging setup. Never prints a value.

use std::io::{IsTerminal as _, Write as _};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::cli::GlobalOpts;
use crate::error::Error;

/// The first 8 characters of a version id or fingerprint, for messages.
pub fn short_version(version: &str) -> &str {
    version.get(..8).unwrap_or(version)
}

/// One line of a command's result: a secret (or check) and what happened to it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReportItem {
    pub name: String,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ReportItem {
    pub fn new(name: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            action: action.into(),
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// What a command did, printed once at the end.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: &'static str,
    pub dry_run: bool,
    pub source: String,
    pub items: Vec<ReportItem>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    pub fn new(command: &'static str, source: impl Into<String>, dry_run: bool) -> Self {
        Self {
            command,
            dry_run,
            source: source.into(),
            items: Vec::new(),
            extra: serde_json::Map::new(),
        }
    }

    pub fn push(&mut self, item: ReportItem) {
        self.items.push(item);
    }

    pub fn count(&self, action: &str) -> usize {
        self.items.iter().filter(|i| i.action == action).count()
    }
}

#[derive(Debug, Clone)]
pub struct Reporter {
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
    stderr_is_tty: bool,
}

impl Reporter {
    pub fn new(opts: &GlobalOpts) -> Self {
        Self {
            json: opts.json,
            quiet: opts.quiet,
            verbose: opts.verbose,
            stderr_is_tty: std::io::stderr().is_terminal(),
        }
    }

    /// Human output without a terminal: no progress bars (for tests and library callers).
    pub fn plain() -> Self {
        Self {
            json: false,
            quiet: false,
            verbose: 0,
            stderr_is_tty: false,
        }
    }

    /// A progress bar on stderr when it is a terminal and output is for humans.
    pub fn progress(&self, len: usize, what: &str) -> Option<ProgressBar> {
        if self.json || self.quiet || !self.stderr_is_tty || len < 2 {
            return None;
        }
        let bar = ProgressBar::new(len as u64);
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        Some(bar)
    }

    /// A status line for humans on stderr (nothing in JSON or quiet mode).
    pub fn note(&self, message: &str) {
        if !self.json && !self.quiet {
            eprintln!("{message}");
        }
    }

    pub fn print(&self, report: &Report) {
        let mut out = std::io::stdout().lock();
        if self.json {
            let _ = serde_json::to_writer_pretty(&mut out, report);
            let _ = writeln!(out);
            return;
        }
        if self.quiet {
            return;
        }
        let prefix = if report.dry_run { "[dry-run] " } else { "" };
        let width = report
            .items
            .iter()
            .map(|i| i.action.len())
            .max()
            .unwrap_or(0);
        for item in &report.items {
            let _ = match &item.detail {
                Some(d) => writeln!(out, "{prefix}{:<width$}  {}  ({d})", item.action, item.name),
                None => writeln!(out, "{prefix}{:<width$}  {}", item.action, item.name),
            };
        }
    }

    pub fn error(&self, error: &Error) {
        if self.json {
            let doc = serde_json::json!({
                "error": { "kind": error.kind(), "message": error.to_string(), "exit_code": error.exit_code() }
            });
            eprintln!("{doc}");
        } else {
            // Every variant's message already says its cause (an I/O error ends with the OS's
            // words): printing the source chain again would say it twice.
            eprintln!("compose-secrets: error: {error}");
        }
    }
}

/// Logs go to stderr. Third-party crates stay at `warn` unless RUST_LOG says otherwise,
/// so HTTP and SDK internals never log request details by accident.
pub fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let ours = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,compose_secrets={ours}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
