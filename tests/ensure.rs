//! `ensure`: .env from the template, generators, idempotence, --force, and bad input.

use base64::Engine as _;

use crate::harness::{Project, DEMO_SECRETS};

#[test]
fn creates_env_from_template_with_mode_0600_and_fills_every_secret() {
    let p = Project::demo();
    let out = p.cmd(&["ensure"]).run().success();
    assert_eq!(p.mode(".env"), 0o600);
    for (name, key) in DEMO_SECRETS {
        assert!(
            out.stdout.contains(name),
            "{name} not reported:\n{}",
            out.stdout
        );
        assert!(!p.env_value(key).is_empty(), "{key} empty");
    }
    let hex64 = |v: &str| {
        v.len() == 64
            && v.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    assert!(hex64(&p.env_value("FLASK_SECRET_KEY")));
    assert!(hex64(&p.env_value("AUDIT_LOG_SIGNING_KEY")));
    let client = p.env_value("KEYCLOAK_SERVICE_CLIENT_SECRET");
    assert_eq!(client.len(), 32);
    assert!(client.bytes().all(|b| b.is_ascii_hexdigit()));
    let admin = p.env_value("KEYCLOAK_ADMIN_PASSWORD");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(&admin)
            .unwrap()
            .len(),
        16
    );
    assert_eq!(p.env_value("DEMO_MODE"), "true");
    assert_eq!(p.env_value("AZURE_USE_KEYVAULT"), "false");
    let values: Vec<String> = DEMO_SECRETS.iter().map(|(_, k)| p.env_value(k)).collect();
    out.assert_no_values(&values);
}

#[test]
fn keeps_comments_order_and_other_lines_byte_identical() {
    let p = Project::demo();
    p.cmd(&["ensure"]).run().success();
    let template = p.read_string(".env.demo");
    let env = p.read_string(".env");
    let secret_keys: Vec<&str> = DEMO_SECRETS.iter().map(|(_, k)| *k).collect();
    let strip = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| match l.split_once('=') {
                Some((k, _)) if secret_keys.contains(&k) => format!("{k}="),
                _ => l.to_string(),
            })
            .collect()
    };
    assert_eq!(strip(&template), strip(&env));
}

#[test]
fn second_run_changes_nothing() {
    let p = Project::demo();
    p.cmd(&["ensure"]).run().success();
    let first = p.read(".env");
    let inode = p.inode(".env");
    let out = p.cmd(&["ensure"]).run().success();
    assert_eq!(p.read(".env"), first);
    assert_eq!(
        p.inode(".env"),
        inode,
        "an unchanged .env must not be rewritten"
    );
    assert!(out.stdout.contains("kept"), "{}", out.stdout);
    assert!(!out.stdout.contains("generated"), "{}", out.stdout);
}

#[test]
fn never_overwrites_a_value_unless_forced_by_name() {
    let p = Project::demo();
    p.write(
        ".env",
        "# mine\r\nFLASK_SECRET_KEY=keep-me\r\nKEYCLOAK_ADMIN_PASSWORD=also-mine\r\n",
    );
    p.cmd(&["ensure"]).run().success();
    let env = p.read_string(".env");
    assert!(
        env.starts_with(
            "# mine\r\nFLASK_SECRET_KEY=keep-me\r\nKEYCLOAK_ADMIN_PASSWORD=also-mine\r\n"
        ),
        "{env}"
    );
    // Missing keys are appended with the file's own line ending.
    assert!(env.contains("\r\nAUDIT_LOG_SIGNING_KEY="), "{env}");

    p.cmd(&["ensure", "--force", "flask-secret-key"])
        .run()
        .success()
        .stdout_has("regenerated");
    assert_ne!(p.env_value("FLASK_SECRET_KEY").trim_end(), "keep-me");
    assert_eq!(
        p.env_value("KEYCLOAK_ADMIN_PASSWORD").trim_end(),
        "also-mine"
    );

    // --force also accepts the .env key.
    p.cmd(&["ensure", "--force", "KEYCLOAK_ADMIN_PASSWORD"])
        .run()
        .success();
    assert_ne!(
        p.env_value("KEYCLOAK_ADMIN_PASSWORD").trim_end(),
        "also-mine"
    );
}

#[test]
fn force_with_an_unknown_name_is_a_usage_error() {
    let p = Project::demo();
    p.cmd(&["ensure", "--force", "nope"])
        .run()
        .code(2)
        .stderr_has("--force nope");
    assert!(!p.exists(".env"));
}

#[test]
fn dry_run_writes_nothing() {
    let p = Project::demo();
    let out = p.cmd(&["ensure", "--dry-run"]).run().success();
    assert!(!p.exists(".env"));
    assert!(out.stdout.contains("would-generate"), "{}", out.stdout);
}

#[test]
fn generated_values_survive_compose_interpolation() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services: {}\nsecrets:\n  a:\n    file: ./.runtime/secrets/a\n    x-compose-secrets: {generator: \"base64:64\"}\n  b:\n    file: ./.runtime/secrets/b\n    x-compose-secrets: {generator: \"alnum:48\"}\n",
    );
    p.write(".env.demo", "A=\nB=\n");
    p.cmd(&["ensure"]).run().success();
    for key in ["A", "B"] {
        let v = p.env_value(key);
        assert!(
            !v.contains(['$', '"', '\'', '#', ' ', '\t']),
            "{key} has an unsafe character"
        );
    }
    assert_eq!(p.env_value("B").len(), 48);
    assert!(p.env_value("B").bytes().all(|b| b.is_ascii_alphanumeric()));
}

#[test]
fn malformed_env_names_file_and_line_and_changes_nothing() {
    let p = Project::demo();
    p.write(".env", "DEMO_MODE=true\nthis line is broken\n");
    let before = p.snapshot();
    let out = p.cmd(&["ensure"]).run().code(2);
    assert!(out.stderr.contains(".env:2:"), "{}", out.stderr);
    crate::harness::assert_same_files(&before, &p.snapshot());
}

#[test]
fn missing_template_is_a_clear_error() {
    let p = Project::demo();
    std::fs::remove_file(p.path(".env.demo")).unwrap();
    p.cmd(&["ensure"]).run().code(2).stderr_has(".env.demo");
}
