//! `--help` of the real binary, top level and every subcommand, as insta snapshots
//! (tests/snapshots/). A changed help text fails here until the snapshot is reviewed:
//! `cargo insta review`, or `INSTA_UPDATE=always` and read the diff.

use crate::harness::{scrub, BIN};

/// `--help` as a user sees it in a 100-column terminal, whatever the caller's terminal and
/// environment: clap reads COLUMNS, and an `[env: X=value]` would show a set variable.
fn help(args: &[&str]) -> String {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args).arg("--help");
    scrub(&mut cmd);
    let out = cmd
        .env("COLUMNS", "100")
        .env_remove("CLICOLOR_FORCE")
        .output()
        .expect("run compose-secrets");
    assert!(out.status.success(), "{args:?} --help failed: {out:?}");
    assert!(out.stderr.is_empty(), "{args:?} --help wrote to stderr");
    let text = String::from_utf8(out.stdout).expect("help is UTF-8");
    // An example too long for the terminal would be wrapped into a line that is not a command.
    for line in section(&text, "Examples:") {
        assert!(
            line.starts_with("  compose-secrets ") || line.starts_with("  printf "),
            "{args:?} --help: an example line wrapped: {line:?}"
        );
    }
    text
}

/// The lines of the section that starts with `heading` (up to the next blank line).
fn section<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect()
}

#[test]
fn top_level_help() {
    insta::assert_snapshot!("help", help(&[]));
}

#[test]
fn ensure_help() {
    insta::assert_snapshot!("help_ensure", help(&["ensure"]));
}

#[test]
fn load_help() {
    insta::assert_snapshot!("help_load", help(&["load"]));
}

#[test]
fn rotate_help() {
    let text = help(&["rotate"]);
    // rotate's own options come first, under "Options", before the global ones.
    let own = section(&text, "Options:");
    assert!(
        own.iter().any(|l| l.contains("--health-timeout")),
        "--health-timeout is not among rotate's options:\n{text}"
    );
    assert!(!own.iter().any(|l| l.contains("--vault-url")));
    insta::assert_snapshot!("help_rotate", text);
}

#[test]
fn sync_help() {
    insta::assert_snapshot!("help_sync", help(&["sync"]));
}

#[test]
fn verify_help() {
    insta::assert_snapshot!("help_verify", help(&["verify"]));
}

#[test]
fn completions_help_lists_no_global_option() {
    let text = help(&["completions"]);
    for flag in [
        "--vault-url",
        "--vault-name",
        "--keyvault",
        "--file",
        "Global options",
    ] {
        assert!(
            !text.contains(flag),
            "completions --help shows {flag}:\n{text}"
        );
    }
    insta::assert_snapshot!("help_completions", text);
}

#[test]
fn completions_still_accept_a_global_option() {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["completions", "bash", "--quiet"]);
    scrub(&mut cmd);
    let out = cmd.output().expect("run compose-secrets");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("compose-secrets"));
}

#[test]
fn the_man_page_documents_every_command() {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["debug", "man"]);
    scrub(&mut cmd);
    let out = cmd.output().expect("run compose-secrets");
    assert!(out.status.success(), "{out:?}");
    let page = String::from_utf8(out.stdout).expect("roff is UTF-8");
    assert!(page.contains(".TH COMPOSE-SECRETS 1"), "{page}");
    for command in ["ensure", "load", "rotate", "verify", "completions"] {
        assert!(
            page.contains(&format!(".SS \"compose-secrets {command}\"")),
            "the man page has no section for {command}:\n{page}"
        );
    }
    // The hidden developer commands stay out of it.
    assert!(!page.contains("compose-secrets debug"), "{page}");
}
