//! The status lines of `ensure`, `load` and `rotate` say each thing once: a line that names a
//! secret does not name it again (`generated flask-secret-key (FLASK_SECRET_KEY (hex:32))`),
//! and paths are shown from the working directory.

use std::collections::BTreeSet;

use crate::harness::Project;
use crate::support::idle_engine::IdleEngine;

/// Words of four letters or more, lower-cased (`FLASK_SECRET_KEY` and `flask-secret-key` are
/// the same words), that appear more than once in `line`. Paths and URLs are left out: a
/// directory may well share a word with a file in it.
fn repeated_words(line: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut repeated = BTreeSet::new();
    for word in line
        .split_whitespace()
        .filter(|token| !token.contains('/'))
        .flat_map(|token| token.split(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|w| w.len() >= 4)
        .map(str::to_ascii_lowercase)
    {
        if !seen.insert(word.clone()) {
            repeated.insert(word);
        }
    }
    repeated
}

#[track_caller]
fn assert_says_each_thing_once(command: &str, stdout: &str) {
    assert!(!stdout.trim().is_empty(), "{command}: no status line");
    for line in stdout.lines() {
        let repeated = repeated_words(line);
        assert!(
            repeated.is_empty(),
            "{command}: {line:?} repeats {repeated:?}"
        );
        assert!(
            !line.contains("/tmp/"),
            "{command}: an absolute path in {line:?}"
        );
    }
}

#[test]
fn no_status_line_repeats_a_word() {
    assert_eq!(
        repeated_words("generated  flask-secret-key  (FLASK_SECRET_KEY (hex:32))"),
        BTreeSet::from(["flask".to_string(), "secret".to_string()])
    );
    let p = Project::demo();
    // A secret whose .env key is not derived from its name: the key is worth showing.
    let compose = p.read_string("compose.yaml").replace(
        "      generator: hex:16\n",
        "      generator: hex:16\n      env-key: OIDC_TOKEN\n",
    );
    p.write("compose.yaml", compose);
    // Docker answers, with nothing running: rotate says so instead of restarting.
    let engine = IdleEngine::start();
    for args in [
        &["ensure", "--dry-run"][..],
        &["ensure"],
        &["ensure"],
        &["ensure", "--force", "flask-secret-key"],
        &["load", "--dry-run"],
        &["load"],
        &["load"],
        &["load", "--env-output", "app.env"],
        &["rotate", "--all", "--dry-run", "--no-restart"],
        &[
            "rotate",
            "flask-secret-key",
            "keycloak-service-client-secret",
            "--no-restart",
        ],
        &["rotate", "flask-secret-key", "--dry-run"],
        &["rotate", "flask-secret-key"],
    ] {
        let out = p
            .cmd(args)
            .env("DOCKER_HOST", engine.docker_host())
            .run()
            .success();
        assert_says_each_thing_once(&args.join(" "), &out.stdout);
    }
    let out = p.cmd(&["ensure"]).run().success();
    assert!(
        out.stdout
            .contains("kept  keycloak-service-client-secret  (as OIDC_TOKEN)"),
        "{}",
        out.stdout
    );
}
