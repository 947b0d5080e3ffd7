//! `verify`'s output: a table on a terminal (colours only there), JSON for machines.

use std::io::{IsTerminal as _, Write as _};

use super::{Findings, Status};

/// Print the findings: JSON, nothing (quiet), or the table.
pub fn print(reporter: &crate::output::Reporter, f: &Findings) {
    let summary = serde_json::json!({
        "pass": f.count(Status::Pass),
        "warn": f.count(Status::Warn),
        "fail": f.count(Status::Fail),
        "skip": f.count(Status::Skip),
    });
    if reporter.json {
        // Printed at the end of the run, with verify's error inside when a check failed.
        reporter.emit_json(
            serde_json::json!({ "command": "verify", "checks": f.checks, "summary": summary }),
        );
        return;
    }
    if reporter.quiet {
        return;
    }
    let _ = std::io::stdout()
        .lock()
        .write_all(render_table(f, std::io::stdout().is_terminal()).as_bytes());
}

/// `STATUS  CHECK  SUBJECT  MESSAGE`, aligned, then a summary line; colours only on a TTY.
pub fn render_table(f: &Findings, color: bool) -> String {
    use std::fmt::Write as _;
    const SUBJECT_MAX: usize = 48;
    let category_width = f
        .checks
        .iter()
        .map(|c| c.category.len())
        .chain(["CHECK".len()])
        .max()
        .unwrap_or(0);
    let subject_width = f
        .checks
        .iter()
        .map(|c| c.subject.chars().count())
        .chain(["SUBJECT".len()])
        .max()
        .unwrap_or(0)
        .min(SUBJECT_MAX);
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:<6}  {:<category_width$}  {:<subject_width$}  MESSAGE",
        "STATUS", "CHECK", "SUBJECT"
    );
    for c in &f.checks {
        let (label, code) = match c.status {
            Status::Pass => ("PASS", "32"),
            Status::Warn => ("WARN", "33"),
            Status::Fail => ("FAIL", "31"),
            Status::Skip => ("SKIP", "2"),
        };
        // Pad before colouring: escape codes would count as width.
        let label = format!("{label:<6}");
        let label = if color {
            format!("\x1b[{code}m{label}\x1b[0m")
        } else {
            label
        };
        let _ = writeln!(
            text,
            "{label}  {:<category_width$}  {:<subject_width$}  {}",
            c.category,
            crate::output::printable(&c.subject),
            crate::output::printable(&c.message).replace('\n', "\\n")
        );
    }
    let _ = writeln!(
        text,
        "\n{} passed, {} failed, {} warning{}, {} skipped",
        f.count(Status::Pass),
        f.count(Status::Fail),
        f.count(Status::Warn),
        if f.count(Status::Warn) == 1 { "" } else { "s" },
        f.count(Status::Skip)
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run with every status, long subjects, and fixed names only (no temp path, no uid of
    /// the machine running the test), as a human sees it without colours.
    #[test]
    fn the_table_a_human_reads() {
        let mut f = Findings::default();
        f.add(
            Status::Pass,
            "files",
            ".runtime/secrets",
            "directory 0700, owned by uid 1000 (the running user)",
        );
        f.add(
            Status::Pass,
            "files",
            "flask-secret-key",
            "in .runtime/secrets: 0400, 1000:1000",
        );
        f.add(
            Status::Fail,
            "drift",
            "keycloak-service-client-secret",
            "the file differs from .env: run `compose-secrets load`",
        );
        f.add(
            Status::Fail,
            "containers",
            "service app",
            "container demo-app-1 started before flask-secret-key was last written: it still holds the old value",
        );
        f.add(
            Status::Warn,
            "git",
            "a-subject-longer-than-the-forty-eight-character-column",
            "not a git repository; ignore rules and history not checked",
        );
        f.add(
            Status::Skip,
            "health",
            "service app",
            "no running container to check",
        );
        f.add(
            Status::Pass,
            "audit",
            ".runtime/audit.log",
            "HMAC chain intact (4 line(s))",
        );
        insta::assert_snapshot!(render_table(&f, false));
    }

    #[test]
    fn colours_only_when_asked() {
        let mut f = Findings::default();
        f.add(Status::Fail, "files", "x", "missing");
        assert!(!render_table(&f, false).contains('\x1b'));
        assert!(render_table(&f, true).contains("\x1b[31mFAIL  \x1b[0m"));
    }
}
