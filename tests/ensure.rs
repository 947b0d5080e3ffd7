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
        "services:\n  app:\n    image: x\n    secrets: [a, b]\nsecrets:\n  a:\n    file: ./.runtime/secrets/a\n    x-compose-secrets: {generator: \"base64:64\"}\n  b:\n    file: ./.runtime/secrets/b\n    x-compose-secrets: {generator: \"alnum:48\"}\n",
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

/// A project that ran before compose-secrets keeps its values: `ensure` adopts what an
/// existing secret file holds (one trailing newline dropped) instead of generating a new
/// value, and `load` then leaves the file's value as it was.
#[test]
fn an_existing_secret_file_is_adopted_not_replaced() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  db:\n    image: postgres\n    secrets: [db-password, fresh]\nsecrets:\n  db-password:\n    file: db/password.txt\n  fresh:\n    file: db/fresh.txt\n",
    );
    p.write(".env.demo", "");
    p.write("db/password.txt", "live-db-password\n");
    p.cmd(&["ensure", "--dry-run"])
        .run()
        .success()
        .stdout_has("would-adopt");
    assert!(!p.exists(".env"));
    p.cmd(&["ensure"])
        .run()
        .success()
        .stdout_has("adopted")
        .stdout_has("db/password.txt")
        .assert_no_values(&["live-db-password".into()]);
    assert_eq!(p.env_value("DB_PASSWORD"), "live-db-password");
    assert_eq!(p.env_value("FRESH").len(), 64, "no file: generated");
    // awesome-compose commits its sample password: it is written, with a warning to untrack it.
    p.git(&["init", "-q"]);
    p.git(&["add", "db/password.txt"]);
    p.cmd(&["load"])
        .run()
        .success()
        .stdout_has("db/password.txt is tracked by git")
        .stdout_has("git rm --cached db/password.txt");
    assert_eq!(p.read_string("db/password.txt"), "live-db-password");
    assert_eq!(p.mode("db/password.txt"), 0o400);
}

/// `load` never silently replaces a file it did not write that holds another value; it
/// names every such secret, changes nothing, and `--overwrite` is the explicit way through.
#[test]
fn load_refuses_to_replace_a_file_it_did_not_write() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  db:\n    image: postgres\n    secrets: [a, b]\nsecrets:\n  a:\n    file: conf/a.txt\n  b:\n    file: conf/b.txt\n",
    );
    p.write(".env", "A=from-the-store\nB=also-from-the-store\n");
    p.write("conf/a.txt", "initialised-with-this\n");
    p.write("conf/b.txt", "also-from-the-store\n");
    let before = p.snapshot();
    p.cmd(&["load"])
        .run()
        .code(2)
        .stderr_has("secret `a`")
        .stderr_has("conf/a.txt already holds a different value")
        .stderr_has("--overwrite");
    crate::harness::assert_same_files(&before, &p.snapshot());
    p.cmd(&["load", "--overwrite"]).run().success();
    assert_eq!(p.read_string("conf/a.txt"), "from-the-store");
    assert_eq!(p.read_string("conf/b.txt"), "also-from-the-store");
    // Written once, the file is compose-secrets' own: a new value replaces it.
    p.write(".env", "A=rotated-by-hand\nB=also-from-the-store\n");
    p.cmd(&["load"]).run().success();
    assert_eq!(p.read_string("conf/a.txt"), "rotated-by-hand");
}

/// Compose leaves out a secret no enabled service uses (only profile-disabled services, or
/// none); so does compose-secrets: no value generated, no file placed (even one it could not
/// write), and a `skipped` line says why. With the profile on, it is back.
#[test]
fn secrets_no_enabled_service_uses_are_skipped() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app: {image: alpine, secrets: [app_token]}\n  legacy: {image: alpine, profiles: [legacy], secrets: [legacy_token]}\n\
         secrets:\n  app_token: {file: ./app_token.txt}\n  legacy_token: {file: /nonexistent/outside/legacy_token.txt}\n  \
         unused: {file: /nonexistent/outside/unused.txt}\n",
    );
    p.write(".env.demo", "");
    p.cmd(&["ensure"])
        .run()
        .success()
        .stdout_has("skipped")
        .stdout_has("only used by legacy");
    assert!(!p.read_string(".env").contains("LEGACY_TOKEN"));
    assert!(!p.read_string(".env").contains("UNUSED"));
    p.cmd(&["load"])
        .run()
        .success()
        .stdout_has("skipped")
        .stdout_has("no service uses it");
    assert!(p.exists("app_token.txt"));
    p.cmd(&["verify", "--no-docker"])
        .run()
        .stdout_has("only used by legacy");
    p.cmd(&["--profile", "legacy", "load"])
        .run()
        .code(2)
        .stderr_has("legacy_token");
    p.cmd(&["rotate", "legacy_token"])
        .run()
        .code(2)
        .stderr_has("whose profile is not enabled");
}

/// A layout `load` would refuse is refused by `ensure` too, before `.env` changes.
#[test]
fn ensure_refuses_a_layout_load_would_refuse_before_touching_env() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app: {image: alpine, secrets: [a, b]}\nsecrets:\n  a: {file: /nonexistent/elsewhere/a.txt}\n  b: {file: ./compose.yaml}\n",
    );
    p.write(".env.demo", "");
    p.cmd(&["ensure"])
        .run()
        .code(2)
        .stderr_has("secret `a`")
        .stderr_has("outside the project")
        .stderr_has("secret `b`")
        .stderr_has("a Compose file of the project");
    assert!(!p.exists(".env"));
}

/// Without a template, the error says how to start.
#[test]
fn a_missing_template_says_what_to_do() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app: {image: alpine, secrets: [a]}\nsecrets:\n  a: {file: ./a.txt}\n",
    );
    p.cmd(&["ensure"])
        .run()
        .code(2)
        .stderr_has(".env.demo")
        .stderr_has("an empty .env.demo will do")
        .stderr_has("--template");
}

/// A service with `env_file: .env`, or one naming a secret's key in `environment:` with no
/// value, would get the secret in its environment: `ensure` says so, and `verify` fails on it.
#[test]
fn the_store_as_a_services_env_file_is_called_out() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  db:\n    image: mariadb\n    env_file: .env\n    secrets: [db_password]\n  web:\n    image: nginx\n    environment: [DB_PASSWORD]\n\
         secrets:\n  db_password:\n    file: ./db_password.txt\n",
    );
    p.write(".env.demo", "TZ=UTC\n");
    p.cmd(&["ensure"])
        .run()
        .success()
        .stdout_has("warning")
        .stdout_has("service db")
        .stdout_has("names DB_PASSWORD with no value");
    p.cmd(&["load"]).run().success();
    p.cmd(&["verify", "--no-docker"])
        .run()
        .code(1)
        .stdout_has("env_file .env passes secret db_password as DB_PASSWORD")
        .stdout_has("DB_PASSWORD (no value given) takes secret db_password's value");
}

/// With several env files, values are read as Compose merges them (the last file defining a
/// key wins) and written back where the key is defined; a new key goes to the last file.
#[test]
fn several_env_files_are_one_store() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app: {image: alpine, secrets: [db_password, api_key, fresh]}\n\
         secrets:\n  db_password: {file: ./db.txt}\n  api_key: {file: ./api.txt}\n  fresh: {file: ./fresh.txt}\n",
    );
    p.write(
        "base.env",
        "DB_PASSWORD=from-base-file\nAPI_KEY=overridden\n",
    );
    p.write("local.env", "TZ=UTC\nAPI_KEY=from-local-file\n");
    let two = ["--env-file", "base.env", "--env-file", "local.env"];
    let args = |rest: &[&'static str]| -> Vec<&'static str> { [&two[..], rest].concat() };
    p.cmd(&args(&["ensure"])).run().success().stdout_has("kept");
    assert!(!p.read_string("base.env").contains("FRESH"));
    assert!(p.read_string("local.env").contains("FRESH="));
    p.cmd(&args(&["load"])).run().success();
    assert_eq!(p.read_string("db.txt"), "from-base-file");
    assert_eq!(p.read_string("api.txt"), "from-local-file");
    p.cmd(&args(&["rotate", "db_password", "--no-restart"]))
        .run()
        .success();
    let rotated = p.read_string("db.txt");
    assert_ne!(rotated, "from-base-file");
    assert!(p
        .read_string("base.env")
        .contains(&format!("DB_PASSWORD={rotated}")));
    assert!(!p.read_string("local.env").contains("DB_PASSWORD"));
}

/// An `environment:` secret whose variable the shell already sets: Compose uses the shell's
/// value, so `ensure` does not write a dead one into `.env`.
#[test]
fn an_environment_secret_set_in_the_process_environment_is_kept_there() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: alpine\n    build: {context: ., secrets: [some_secret]}\nsecrets:\n  some_secret:\n    environment: SOME_SECRET\n",
    );
    p.write(".env.demo", "");
    p.cmd(&["ensure"])
        .env("SOME_SECRET", "set-by-the-shell")
        .run()
        .success()
        .stdout_has("from the process environment");
    assert!(!p.read_string(".env").contains("SOME_SECRET"));
}

/// Root rewriting a `.env` that belongs to the developer (`sudo make ensure-secrets`) leaves
/// it theirs: a root-owned `.env` would lock them out of their own file. Also when only the
/// group differs. As another user, the file is theirs already and stays so.
#[test]
fn a_rewritten_env_keeps_its_owner() {
    let p = Project::demo();
    p.cmd(&["ensure"]).run().success();
    let owners: &[(u32, u32)] = if crate::harness::is_root() {
        &[(4242, 4343), (0, 4343)]
    } else {
        eprintln!(
            "ensure::a_rewritten_env_keeps_its_owner: not root, so only the running user's own .env is rewritten"
        );
        &[]
    };
    for &(uid, gid) in owners {
        std::os::unix::fs::chown(p.path(".env"), Some(uid), Some(gid)).unwrap();
        let before = p.env_value("FLASK_SECRET_KEY");
        p.cmd(&["ensure", "--force", "flask-secret-key"])
            .run()
            .success();
        assert_ne!(p.env_value("FLASK_SECRET_KEY"), before, "rewritten");
        assert_eq!(p.owner(".env"), (uid, gid), "the owner is kept");
        assert_eq!(p.mode(".env"), 0o600);
    }
    let mine = p.owner(".env");
    p.cmd(&["ensure", "--force", "flask-secret-key"])
        .run()
        .success();
    assert_eq!(p.owner(".env"), mine);
}
