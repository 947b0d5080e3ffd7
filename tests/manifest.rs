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
fn discovery_follows_docker_compose() {
    for name in [
        "compose.yaml",
        "compose.yml",
        "docker-compose.yaml",
        "docker-compose.yml",
    ] {
        let p = Project::empty();
        p.write(
            name,
            "services:\n  app:\n    image: x\n    secrets: [only]\nsecrets:\n  only:\n    file: ./.runtime/secrets/only\n",
        );
        p.write(".env", "ONLY=v\n");
        p.cmd(&["load"]).run().success();
        assert_eq!(p.read_string(".runtime/secrets/only"), "v", "{name}");
    }
    // compose.yaml wins over docker-compose.yml.
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [first]\nsecrets:\n  first:\n    file: ./.runtime/secrets/first\n",
    );
    p.write(
        "docker-compose.yml",
        "services:\n  app:\n    image: x\n    secrets: [second]\nsecrets:\n  second:\n    file: ./.runtime/secrets/second\n",
    );
    p.write(".env", "FIRST=1\nSECOND=2\n");
    p.cmd(&["load"]).run().success();
    assert!(p.exists(".runtime/secrets/first"));
    assert!(!p.exists(".runtime/secrets/second"));
}

#[test]
fn paths_env_and_runtime_follow_the_project_directory_of_the_first_compose_file() {
    // As `docker compose -f deploy/stack.yml`: deploy/ is the project directory, so its .env
    // is read, relative paths resolve against it, and the runtime directory lives there.
    let p = Project::empty();
    p.write(
        "deploy/stack.yml",
        "services:\n  app:\n    image: x\n    secrets: [s]\nsecrets:\n  s:\n    file: ./.runtime/secrets/s\n",
    );
    p.write("deploy/.env", "S=from-the-project-env\n");
    p.write(".env", "S=from-the-working-directory\n");
    p.cmd(&["-f", "deploy/stack.yml", "load"]).run().success();
    assert_eq!(
        p.read_string("deploy/.runtime/secrets/s"),
        "from-the-project-env"
    );
    assert!(p.exists("deploy/.runtime/state.json"));
    assert!(!p.exists(".runtime"));
    std::fs::remove_dir_all(p.path("deploy/.runtime")).unwrap();
    // COMPOSE_FILE from the environment: the same project, and the demo values still come
    // from the project's own .env (the working directory's only interpolates).
    p.cmd(&["load"])
        .env("COMPOSE_FILE", "deploy/stack.yml")
        .run()
        .success();
    assert_eq!(
        p.read_string("deploy/.runtime/secrets/s"),
        "from-the-project-env"
    );
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
        "services:\n  app:\n    image: x\n    secrets: [db-password]\nsecrets:\n  db-password:\n    file: ./.runtime/secrets/db-password\n    x-compose-secrets:\n      vault-name: DBPASSWORD\n      env-key: DB_PASSWORD\n      generator: alnum:20\n      owner: {uid: 0, gid: 0}\n      mode: \"0440\"\n",
    );
    p.write(".env.demo", "DB_PASSWORD=\n");
    p.cmd(&["ensure"]).run().success();
    assert_eq!(p.env_value("DB_PASSWORD").len(), 20);
    if crate::harness::is_root() {
        p.cmd(&["load"]).run().success();
        assert_eq!(p.mode(".runtime/secrets/db-password"), 0o440);
        assert_eq!(p.owner(".runtime/secrets/db-password"), (0, 0));
    } else {
        // Only root may give a file to root: refused before anything is written.
        p.cmd(&["load"])
            .run()
            .code(2)
            .stderr_has("secret `db-password`: declares owner 0:0");
        assert!(!p.exists(".runtime/secrets/db-password"));
    }
}

#[test]
fn interpolation_in_file_paths_uses_env_and_defaults() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [s]\nsecrets:\n  s:\n    file: ${SECRETS_ROOT:-./.runtime/secrets}/s\n",
    );
    p.write(".env", "S=x\n");
    p.cmd(&["load"]).run().success();
    assert!(p.exists(".runtime/secrets/s"));
}

#[test]
fn two_secrets_on_one_file_are_refused_naming_the_secret() {
    let p = Project::empty();
    p.write("compose.yaml", "services:\n  app:\n    image: x\n    secrets: [one, two]\nsecrets:\n  one:\n    file: ./.runtime/secrets/x\n  two:\n    file: ./.runtime/secrets/./x\n");
    p.write(".env", "ONE=1\nTWO=2\n");
    let out = p.cmd(&["load"]).run().code(2);
    assert!(
        out.stderr.contains("`two`") && out.stderr.contains("`one`"),
        "{}",
        out.stderr
    );
}

/// Key Vault mode, with a vault that is never contacted: names are checked first.
const KEY_VAULT: [&str; 3] = ["--keyvault", "--vault-url", "https://127.0.0.1:9"];

#[test]
fn two_secrets_on_one_vault_name_are_refused_case_insensitively() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [one, two]\nsecrets:\n  one:\n    file: ./.runtime/secrets/one\n    x-compose-secrets: {vault-name: Shared}\n  two:\n    file: ./.runtime/secrets/two\n    x-compose-secrets: {vault-name: shared}\n",
    );
    let out = p
        .cmd(&[KEY_VAULT[0], KEY_VAULT[1], KEY_VAULT[2], "load"])
        .run()
        .code(2)
        .stderr_has("same Key Vault name");
    assert!(
        out.stderr.contains("`one`") && out.stderr.contains("`two`"),
        "{}",
        out.stderr
    );
}

#[test]
fn derived_vault_names_collide_only_in_key_vault_mode_and_are_refused_naming_both() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [db_password, db.password]\nsecrets:\n  db_password:\n    file: ./.runtime/secrets/a\n  db.password:\n    file: ./.runtime/secrets/b\n",
    );
    let out = p
        .cmd(&[KEY_VAULT[0], KEY_VAULT[1], KEY_VAULT[2], "load"])
        .run()
        .code(2)
        .stderr_has("db-password");
    assert!(
        out.stderr.contains("`db_password`") && out.stderr.contains("`db.password`"),
        "{}",
        out.stderr
    );
    // In demo mode their .env keys collide too (DB_PASSWORD): also refused, naming both.
    p.write(".env.demo", "");
    let out = p.cmd(&["ensure"]).run().code(2).stderr_has("DB_PASSWORD");
    assert!(out.stderr.contains("`db.password`"), "{}", out.stderr);
}

#[test]
fn every_name_compose_accepts_works_in_demo_mode() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [db_password, my.secret, UPPER_CASE, 1password]\nsecrets:\n  db_password:\n    file: ./db_password.txt\n  my.secret:\n    file: ./.runtime/secrets/my.secret\n  UPPER_CASE:\n    file: ./secrets/upper.txt\n  1password:\n    file: ./.runtime/secrets/1password\n",
    );
    p.write(".env.demo", "");
    p.cmd(&["ensure"]).run().success();
    for key in ["DB_PASSWORD", "MY_SECRET", "UPPER_CASE", "_1PASSWORD"] {
        assert_eq!(p.env_value(key).len(), 64, "{key}");
    }
    p.cmd(&["load"]).run().success();
    assert_eq!(p.read_string("db_password.txt"), p.env_value("DB_PASSWORD"));
    assert_eq!(
        p.read_string("secrets/upper.txt"),
        p.env_value("UPPER_CASE")
    );
    assert_eq!(p.mode("db_password.txt"), 0o400);
}

#[test]
fn a_name_the_vault_cannot_store_is_refused_naming_the_secret() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [db]\nsecrets:\n  db:\n    file: ./.runtime/secrets/db\n    x-compose-secrets: {vault-name: db_password}\n",
    );
    let out = p
        .cmd(&[KEY_VAULT[0], KEY_VAULT[1], KEY_VAULT[2], "load"])
        .run()
        .code(2);
    assert!(out.stderr.contains("`db`"), "{}", out.stderr);
    assert!(
        out.stderr.contains("vault-name"),
        "says how to fix it: {}",
        out.stderr
    );
    let long = "a".repeat(128);
    p.write(
        "compose.yaml",
        format!("services:\n  app:\n    image: x\n    secrets: [{long}]\nsecrets:\n  {long}:\n    file: ./.runtime/secrets/x\n"),
    );
    p.cmd(&[KEY_VAULT[0], KEY_VAULT[1], KEY_VAULT[2], "load"])
        .run()
        .code(2)
        .stderr_has("1-127");
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
    p.write("compose.yaml", "services:\n  app:\n    image: x\n    secrets: [s]\nsecrets:\n  s:\n    file: ./.runtime/secrets/s\n    x-compose-secrets: {genrator: hex:8}\n");
    p.cmd(&["ensure"])
        .run()
        .code(2)
        .stderr_has("unknown `x-compose-secrets` field `genrator`");
    p.write("compose.yaml", "services:\n  app:\n    image: x\n    secrets: [s]\nsecrets:\n  s:\n    file: ./.runtime/secrets/s\n    x-compose-secrets: {generator: rot13:8}\n");
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
        "services:\n  app:\n    image: x\n    secrets: [token, f]\nsecrets:\n  token:\n    environment: API_TOKEN\n  f:\n    file: ./.runtime/secrets/f\n",
    );
    p.write(".env.demo", "");
    p.cmd(&["ensure"]).run().success();
    assert_eq!(p.env_value("API_TOKEN").len(), 64);
    p.cmd(&["load"])
        .run()
        .success()
        .stdout_has("no-file")
        .stdout_has("Compose copies API_TOKEN in");
    assert!(p.exists(".runtime/secrets/f"));
    assert!(!p.exists(".runtime/secrets/token"));
}
