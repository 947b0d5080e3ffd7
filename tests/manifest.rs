//! The Compose file as manifest: discovery, syntax variants, x-compose-secrets, and refusals.

use crate::harness::Project;

const TWO_SECRETS: &str = "services:\n  web:\n    image: x\n    secrets:\n      - a\n      - source: b\n        target: bee\n        mode: 0440\nsecrets:\n  a:\n    file: ./.runtime/secrets/a\n  b:\n    file: ./.runtime/secrets/b\n";

#[test]
fn a_plain_compose_file_with_file_secrets_needs_no_extra_configuration() {
    let p = Project::empty();
    p.write("compose.yaml", TWO_SECRETS);
    p.write(".env.demo", "");
    p.cmd(&["ensure"]).run().success();
    // Default .env key is upper snake case; default generator hex:32.
    assert_eq!(p.env_value("A").len(), 64);
    assert_eq!(p.env_value("B").len(), 64);
    p.cmd(&["load"]).run().success();
    assert_eq!(p.read_string(".runtime/secrets/a"), p.env_value("A"));
}

#[test]
fn discovery_follows_docker_compose_then_compose_dir() {
    for name in [
        "compose.yaml",
        "compose.yml",
        "docker-compose.yaml",
        "docker-compose.yml",
    ] {
        let p = Project::empty();
        p.write(
            name,
            "secrets:\n  only:\n    file: ./.runtime/secrets/only\n",
        );
        p.write(".env", "ONLY=v\n");
        p.cmd(&["load"]).run().success();
        assert_eq!(p.read_string(".runtime/secrets/only"), "v", "{name}");
    }
    // compose.yaml wins over docker-compose.yml.
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "secrets:\n  first:\n    file: ./.runtime/secrets/first\n",
    );
    p.write(
        "docker-compose.yml",
        "secrets:\n  second:\n    file: ./.runtime/secrets/second\n",
    );
    p.write(".env", "FIRST=1\nSECOND=2\n");
    p.cmd(&["load"]).run().success();
    assert!(p.exists(".runtime/secrets/first"));
    assert!(!p.exists(".runtime/secrets/second"));
}

#[test]
fn compose_file_from_flag_and_from_env_paths_resolve_relative_to_the_file() {
    let p = Project::empty();
    p.write(
        "deploy/stack.yml",
        "secrets:\n  s:\n    file: ../.runtime/secrets/s\n",
    );
    p.write(".env", "S=from-env-file\n");
    p.cmd(&["-f", "deploy/stack.yml", "load"]).run().success();
    assert_eq!(p.read_string(".runtime/secrets/s"), "from-env-file");
    std::fs::remove_dir_all(p.path(".runtime")).unwrap();
    p.cmd(&["load"])
        .env("COMPOSE_FILE", "deploy/stack.yml")
        .run()
        .success();
    assert_eq!(p.read_string(".runtime/secrets/s"), "from-env-file");
}

#[test]
fn no_compose_file_is_a_usage_error() {
    let p = Project::empty();
    p.cmd(&["load"])
        .run()
        .code(2)
        .stderr_has("no Compose file found");
}

#[test]
fn extension_fields_set_vault_name_env_key_generator_owner_and_mode() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "secrets:\n  db-password:\n    file: ./.runtime/secrets/db-password\n    x-compose-secrets:\n      vault-name: DBPASSWORD\n      env-key: DB_PASSWORD\n      generator: alnum:20\n      owner: {uid: 0, gid: 0}\n      mode: \"0440\"\n",
    );
    p.write(".env.demo", "DB_PASSWORD=\n");
    p.cmd(&["ensure"]).run().success();
    assert_eq!(p.env_value("DB_PASSWORD").len(), 20);
    p.cmd(&["load"]).run().success();
    assert_eq!(p.mode(".runtime/secrets/db-password"), 0o440);
}

#[test]
fn interpolation_in_file_paths_uses_env_and_defaults() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "secrets:\n  s:\n    file: ${SECRETS_ROOT:-./.runtime/secrets}/s\n",
    );
    p.write(".env", "S=x\n");
    p.cmd(&["load"]).run().success();
    assert!(p.exists(".runtime/secrets/s"));
}

#[test]
fn two_secrets_on_one_file_are_refused_naming_the_secret() {
    let p = Project::empty();
    p.write("compose.yaml", "secrets:\n  one:\n    file: ./.runtime/secrets/x\n  two:\n    file: ./.runtime/secrets/./x\n");
    p.write(".env", "ONE=1\nTWO=2\n");
    let out = p.cmd(&["load"]).run().code(2);
    assert!(
        out.stderr.contains("`two`") && out.stderr.contains("`one`"),
        "{}",
        out.stderr
    );
}

#[test]
fn two_secrets_on_one_vault_name_are_refused_case_insensitively() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "secrets:\n  one:\n    file: ./.runtime/secrets/one\n    x-compose-secrets: {vault-name: Shared}\n  two:\n    file: ./.runtime/secrets/two\n    x-compose-secrets: {vault-name: shared}\n",
    );
    p.cmd(&["ensure"])
        .run()
        .code(2)
        .stderr_has("same Key Vault name");
}

#[test]
fn a_name_the_vault_cannot_store_is_refused_naming_the_secret() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "secrets:\n  db_password:\n    file: ./.runtime/secrets/db_password\n",
    );
    let out = p.cmd(&["ensure"]).run().code(2);
    assert!(out.stderr.contains("`db_password`"), "{}", out.stderr);
    assert!(
        out.stderr.contains("vault-name"),
        "says how to fix it: {}",
        out.stderr
    );
    let long = "a".repeat(128);
    p.write(
        "compose.yaml",
        format!("secrets:\n  {long}:\n    file: ./.runtime/secrets/x\n"),
    );
    p.cmd(&["ensure"]).run().code(2).stderr_has("1-127");
}

#[test]
fn malformed_yaml_names_the_file_and_line() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  web:\n    image: x\n  bad: [unclosed\nsecrets: {}\n",
    );
    let out = p.cmd(&["load"]).run().code(2);
    assert!(out.stderr.contains("compose.yaml:"), "{}", out.stderr);
    let line: usize = out
        .stderr
        .split("compose.yaml:")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((4..=6).contains(&line), "line {line}: {}", out.stderr);
}

#[test]
fn unknown_extension_field_and_bad_generator_are_refused() {
    let p = Project::empty();
    p.write("compose.yaml", "secrets:\n  s:\n    file: ./.runtime/secrets/s\n    x-compose-secrets: {genrator: hex:8}\n");
    p.cmd(&["ensure"])
        .run()
        .code(2)
        .stderr_has("unknown `x-compose-secrets` field `genrator`");
    p.write("compose.yaml", "secrets:\n  s:\n    file: ./.runtime/secrets/s\n    x-compose-secrets: {generator: rot13:8}\n");
    p.cmd(&["ensure"])
        .run()
        .code(2)
        .stderr_has("unknown kind `rot13`");
}

#[test]
fn a_service_using_an_undeclared_secret_is_refused() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  web:\n    secrets: [ghost]\nsecrets: {}\n",
    );
    p.cmd(&["load"]).run().code(2).stderr_has("`ghost`");
}

#[test]
fn environment_sourced_secrets_get_an_env_value_but_no_file() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "secrets:\n  token:\n    environment: API_TOKEN\n  f:\n    file: ./.runtime/secrets/f\n",
    );
    p.write(".env.demo", "");
    p.cmd(&["ensure"]).run().success();
    assert_eq!(p.env_value("API_TOKEN").len(), 64);
    p.cmd(&["load"]).run().success();
    assert!(p.exists(".runtime/secrets/f"));
    assert!(!p.exists(".runtime/secrets/token"));
}
