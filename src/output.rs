//! Human and `--json` output, progress on a TTY, and logging setup. Never prints a value.

use std::io::{IsTerminal as _, Write as _};
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::cli::GlobalOpts;
use crate::error::Error;

/// The first 8 characters of a version id or fingerprint, for messages.
pub fn short_version(version: &str) -> &str {
    version.get(..8).unwrap_or(version)
}

/// A path for a report line, relative to `from` (the working directory) when below it; anything
/// else, such as a vault URL, as it is.
pub fn shown_path(path: &str, from: &std::path::Path) -> String {
    std::path::Path::new(path)
        .strip_prefix(from)
        .ok()
        .filter(|rel| !rel.as_os_str().is_empty())
        .map_or_else(|| path.to_string(), |rel| rel.display().to_string())
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

    #[cfg(test)]
    pub fn count(&self, action: &str) -> usize {
        self.items.iter().filter(|i| i.action == action).count()
    }
}

#[derive(Debug, Clone)]
pub struct Reporter {
    pub json: bool,
    pub quiet: bool,
    stderr_is_tty: bool,
    /// With `--json`: the command's document, kept until [`Reporter::finish`] prints it (with
    /// the error inside when the command failed), so stdout holds one JSON document whatever
    /// happens. Shared by the clones the command and `main` hold.
    document: Arc<Mutex<Option<serde_json::Value>>>,
}

impl Reporter {
    pub fn new(opts: &GlobalOpts) -> Self {
        Self {
            json: opts.json,
            quiet: opts.quiet,
            stderr_is_tty: std::io::stderr().is_terminal(),
            document: Arc::default(),
        }
    }

    /// Human output without a terminal: no progress bars (for tests).
    #[cfg(test)]
    pub fn plain() -> Self {
        Self {
            json: false,
            quiet: false,
            stderr_is_tty: false,
            document: Arc::default(),
        }
    }

    /// A reporter whose report is kept, never printed: the Compose provider turns it into its
    /// own messages (see [`Reporter::take_json`]), since its stdout belongs to Compose.
    pub fn capturing() -> Self {
        Self {
            json: true,
            quiet: false,
            stderr_is_tty: false,
            document: Arc::default(),
        }
    }

    /// The document a capturing reporter holds, taken out of it.
    pub fn take_json(&self) -> Option<serde_json::Value> {
        self.document
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// With `--json`: the command's result document (an object), printed once by
    /// [`Reporter::finish`]. A second call replaces the first.
    pub fn emit_json(&self, doc: serde_json::Value) {
        *self.document.lock().unwrap_or_else(|e| e.into_inner()) = Some(doc);
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
            eprintln!("{}", printable(message));
        }
    }

    /// A warning on stderr, for humans and for the logs of scripts (`--json` too; not `-q`).
    pub fn warn(&self, message: &str) {
        if !self.quiet {
            eprintln!("compose-secrets: warning: {}", printable(message));
        }
    }

    /// The command's report: lines on stdout, or with `--json` its document (see
    /// [`Reporter::emit_json`]).
    pub fn print(&self, report: &Report) {
        if self.json {
            self.emit_json(serde_json::to_value(report).unwrap_or_default());
            return;
        }
        if self.quiet {
            return;
        }
        let mut out = std::io::stdout().lock();
        let prefix = if report.dry_run { "[dry-run] " } else { "" };
        let width = report
            .items
            .iter()
            .map(|i| i.action.len())
            .max()
            .unwrap_or(0);
        for item in &report.items {
            let name = printable(&item.name);
            let _ = match &item.detail {
                Some(d) => writeln!(
                    out,
                    "{prefix}{:<width$}  {name}  ({})",
                    item.action,
                    printable(d)
                ),
                None => writeln!(out, "{prefix}{:<width$}  {name}", item.action),
            };
        }
    }

    /// The end of a run. With `--json`, stdout gets exactly one document: the command's, with
    /// `"error": {...}` added when it failed, or `{"error": {...}}` alone when it failed before
    /// it had one. The error is also written for humans on stderr (always, even with `-q`).
    pub fn finish(&self, error: Option<&Error>) {
        if self.json {
            let document = self
                .document
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            let document = match (document, error) {
                (Some(mut doc), Some(e)) => {
                    if let Some(object) = doc.as_object_mut() {
                        object.insert("error".into(), e.to_json());
                    }
                    Some(doc)
                }
                (None, Some(e)) => Some(serde_json::json!({ "error": e.to_json() })),
                (doc, None) => doc,
            };
            if let Some(doc) = document {
                let mut out = std::io::stdout().lock();
                let _ = serde_json::to_writer_pretty(&mut out, &doc);
                let _ = writeln!(out);
                let _ = out.flush();
            }
        }
        if let Some(error) = error {
            // Every variant's message already says its cause (an I/O error ends with the OS's
            // words): printing the source chain again would say it twice.
            eprintln!("compose-secrets: error: {}", printable(&error.to_string()));
        }
    }
}

/// Text for a terminal: control characters (a newline or an escape sequence in a file name,
/// say) are shown escaped, so a name cannot forge a line or drive the terminal. Multi-line
/// messages keep their own newlines; JSON output is escaped by the serializer instead.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\n') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() && c != '\n' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A command line clap refused (or `--help`/`--version`): clap's own output, and with `--json`
/// also the error as the one JSON document on stdout, as for any other failure.
pub fn command_line_error(error: &clap::Error, args: &[std::ffi::OsString]) -> u8 {
    let json = args
        .iter()
        .skip(1)
        .take_while(|a| a.as_os_str() != "--")
        .any(|a| a.as_os_str() == "--json");
    if json && error.use_stderr() {
        let rendered = error.render().to_string();
        let message = rendered
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string();
        let doc = serde_json::json!({
            "error": { "kind": "usage", "message": message, "exit_code": crate::error::exit::USAGE }
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    let _ = error.print();
    if error.use_stderr() {
        crate::error::exit::USAGE
    } else {
        crate::error::exit::OK
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
