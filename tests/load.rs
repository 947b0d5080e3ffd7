//! `load` in demo mode: modes, owners, atomicity, idempotence, refusals, reporting, env-file output.

use std::os::unix::fs::PermissionsExt as _;

use crate::harness::{is_root, Project, DEMO_SECRETS};

fn loaded_demo() -> Project {
    let p = Project::demo();
    p.cmd(&["ensure"]).run().success();
    p.cmd(&["load"]).run().success();
    p
}

#[test]
fn writes_each_secret_with_exact_value_mode_and_owner() {
    let p = loaded_demo();
    assert_eq!(p.mode(".runtime/secrets"), 0o700);
    for (name, key) in DEMO_SECRETS {
        let rel = format!(".runtime/secrets/{name}");
        assert_eq!(
            p.read_string(&rel),
            p.env_value(key),
            "{name}: exact value, no newline"
        );
        assert_eq!(p.mode(&rel), 0o400, "{name}");
        if is_root() {
            assert_eq!(p.owner(&rel), (1000, 1000), "{name}: declared owner");
        }
    }
}

/// `compose-secrets <args>` run under `umask`.
fn with_umask(p: &Project, umask: &str, args: &str) -> crate::harness::Run {
    let mut run = p.cmd(&[]);
    run.cmd = std::process::Command::new("sh");
    run.cmd
        .args([
            "-c",
            &format!("umask {umask}; exec \"$0\" {args}"),
            crate::harness::BIN,
        ])
        .current_dir(p.dir.path());
    crate::harness::scrub(&mut run.cmd);
    run
}

#[test]
fn declared_mode_is_honoured_whatever_the_umask() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [a, b]\nsecrets:\n  a:\n    file: .runtime/secrets/a\n    x-compose-secrets: {mode: \"0440\"}\n  b:\n    file: .runtime/secrets/b\n",
    );
    p.write(".env", "A=aaaa\nB=bbbb\n");
    for umask in ["000", "077", "022"] {
        std::fs::remove_dir_all(p.path(".runtime")).ok();
        with_umask(&p, umask, "load").run().success();
        assert_eq!(p.mode(".runtime/secrets"), 0o700, "umask {umask}");
        assert_eq!(p.mode(".runtime/secrets/a"), 0o440, "umask {umask}");
        assert_eq!(p.mode(".runtime/secrets/b"), 0o400, "umask {umask}");
    }
}

#[test]
fn unchanged_secrets_are_not_rewritten_and_no_temp_file_is_left() {
    let p = loaded_demo();
    let inodes: Vec<u64> = DEMO_SECRETS
        .iter()
        .map(|(n, _)| p.inode(&format!(".runtime/secrets/{n}")))
        .collect();
    let out = p.cmd(&["load", "--json"]).run().success();
    let json = out.json();
    let items = json["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert!(items.iter().all(|i| i["action"] == "unchanged"), "{json}");
    let after: Vec<u64> = DEMO_SECRETS
        .iter()
        .map(|(n, _)| p.inode(&format!(".runtime/secrets/{n}")))
        .collect();
    assert_eq!(inodes, after);
    let names: Vec<String> = std::fs::read_dir(p.path(".runtime/secrets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        4,
        "only the four secrets, no temp files: {names:?}"
    );
}

/// state.json's inode and modification time, and its bytes.
fn state_file(p: &Project) -> (u64, std::time::SystemTime, Vec<u8>) {
    let path = p.path(".runtime/state.json");
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    (
        p.inode(".runtime/state.json"),
        modified,
        p.read(".runtime/state.json"),
    )
}

#[test]
fn a_load_that_changes_nothing_writes_no_audit_line_and_no_state() {
    let p = loaded_demo();
    let lines = p.audit_lines().len();
    assert_eq!(lines, 1, "the first load is recorded");
    let state = state_file(&p);
    let log = p.read(".runtime/audit.log");
    // Past the second the first load checked the store in: a stamp that moves is a rewrite.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    p.cmd(&["load"]).run().success();
    let name = p.name();
    p.cmd(&[
        "compose",
        &format!("--project-name={name}"),
        "up",
        "secrets",
    ])
    .env("COMPOSE_PROJECT_NAME", &name)
    .run()
    .success();
    assert_eq!(
        p.read(".runtime/audit.log"),
        log,
        "no line for a no-change load"
    );
    assert_eq!(
        state_file(&p),
        state,
        "state.json neither rewritten nor replaced"
    );
    let checks = p
        .cmd(&["verify", "--json", "--no-docker"])
        .run()
        .success()
        .json();
    assert!(
        checks["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["category"] == "audit")
            .all(|c| c["status"] != "fail"),
        "a log without a line for the no-change load verifies: {checks}"
    );

    // A changed value, and a file restored with the same value, are each one line.
    p.cmd(&["ensure", "--force", "flask-secret-key"])
        .run()
        .success();
    p.cmd(&["load"]).run().success();
    assert_eq!(p.audit_lines().len(), lines + 1);
    std::fs::remove_file(p.path(".runtime/secrets/flask-secret-key")).unwrap();
    p.cmd(&["load"]).run().success();
    assert_eq!(p.audit_lines().len(), lines + 2);
    assert_ne!(state_file(&p).1, state.1);
    p.cmd(&["verify", "--no-docker"]).run().success();
}

#[test]
fn a_changed_value_is_rewritten_atomically_via_a_new_inode() {
    let p = loaded_demo();
    let before = p.inode(".runtime/secrets/flask-secret-key");
    p.cmd(&["ensure", "--force", "flask-secret-key"])
        .run()
        .success();
    let out = p.cmd(&["load", "--json"]).run().success().json();
    let item = out["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "flask-secret-key")
        .unwrap()
        .clone();
    assert_eq!(item["action"], "written");
    assert_ne!(
        p.inode(".runtime/secrets/flask-secret-key"),
        before,
        "rename, not an in-place write"
    );
    assert_eq!(
        p.read_string(".runtime/secrets/flask-secret-key"),
        p.env_value("FLASK_SECRET_KEY")
    );
}

#[test]
fn a_leftover_temp_file_from_a_crash_is_removed() {
    // The writer's pid is above any pid_max (2^22 at most), so no live process has it: pid 999
    // did, on a busy machine, and a live writer's temp file is rightly kept.
    const TEMP: &str = ".runtime/secrets/.compose-secrets.tmp.2147483647.deadbeef";
    let p = loaded_demo();
    p.write(TEMP, "partial");
    p.cmd(&["load"]).run().success();
    assert!(!p.exists(TEMP));
}

/// A file compose-secrets wrote for a secret no service uses any more is stray: reported, and
/// removed only with `--prune` (a dry run says it would be). A file it did not write is not
/// its to report or remove (see `prune.rs`).
#[test]
fn stray_files_are_reported_and_pruned_only_with_prune() {
    let p = Project::empty();
    let compose = |mounts: &str| {
        format!(
            "services:\n  app:\n    image: x\n    secrets: [{mounts}]\nsecrets:\n  a: {{file: ./.runtime/secrets/a}}\n  \
             old: {{file: ./.runtime/secrets/old-secret}}\n"
        )
    };
    p.write("compose.yaml", compose("a, old"));
    p.write(".env", "A=aaaaaaaa\nOLD=oooooooo\n");
    p.cmd(&["load"]).run().success();
    p.write("compose.yaml", compose("a"));
    p.cmd(&["load"]).run().success().stdout_has("stray");
    assert!(p.exists(".runtime/secrets/old-secret"));
    p.cmd(&["load", "--prune", "--dry-run"])
        .run()
        .success()
        .stdout_has("would-prune");
    assert!(p.exists(".runtime/secrets/old-secret"));
    p.cmd(&["load", "--prune"])
        .run()
        .success()
        .stdout_has("pruned");
    assert!(!p.exists(".runtime/secrets/old-secret"));
}

#[test]
fn dry_run_reports_and_writes_nothing() {
    let p = Project::demo();
    p.cmd(&["ensure"]).run().success();
    let before = p.snapshot();
    let out = p
        .cmd(&["load", "--dry-run", "--json"])
        .run()
        .success()
        .json();
    crate::harness::assert_same_files(&before, &p.snapshot());
    assert!(!p.exists(".runtime/secrets"));
    let items = out["items"].as_array().unwrap();
    let actions: Vec<(&str, &str)> = items
        .iter()
        .map(|i| (i["action"].as_str().unwrap(), i["name"].as_str().unwrap()))
        .collect();
    assert_eq!(actions[0], ("would-create", ".runtime/secrets"), "{out}");
    assert_eq!(actions.len(), 5, "{out}");
    assert!(
        actions[1..].iter().all(|(a, _)| *a == "would-write"),
        "{out}"
    );
    assert_eq!(out["dry_run"], true);
}

#[test]
fn load_before_ensure_says_env_does_not_exist_and_names_ensure() {
    let p = Project::demo();
    let out = p.cmd(&["load"]).run().code(3);
    assert!(
        out.stderr
            .contains("error: .env does not exist, so no secret has a value ("),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("audit-log-signing-key"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("run `compose-secrets ensure` (the demo's `make ensure-secrets`)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("from .env.demo"), "{}", out.stderr);
    assert!(!out.stderr.contains("no value for"), "{}", out.stderr);
    assert!(!p.exists(".env"));
    assert!(!p.exists(".runtime/secrets"));

    let json = p.cmd(&["load", "--json"]).run().code(3).json();
    assert_eq!(json["error"]["kind"], "no-env-file");
    assert_eq!(json["error"]["secrets"].as_array().unwrap().len(), 4);

    // Without a template, the advice is to write .env (ensure would have nothing to copy).
    std::fs::remove_file(p.path(".env.demo")).unwrap();
    p.cmd(&["load"])
        .run()
        .code(3)
        .stderr_has(".env does not exist")
        .stderr_has("write the values into it");
    // Once ensure has run, it works.
    p.write(
        ".env.demo",
        std::fs::read(crate::harness::repo_root().join(".env.demo")).unwrap(),
    );
    p.cmd(&["ensure"]).run().success();
    p.cmd(&["load"]).run().success();
}

#[test]
fn missing_values_fail_with_names_and_leave_existing_files_untouched() {
    let p = loaded_demo();
    let env = p.read_string(".env");
    let flask = p.env_value("FLASK_SECRET_KEY");
    let audit = p.env_value("AUDIT_LOG_SIGNING_KEY");
    let env = env
        .replace(&format!("FLASK_SECRET_KEY={flask}"), "FLASK_SECRET_KEY=")
        .replace(
            &format!("AUDIT_LOG_SIGNING_KEY={audit}"),
            "AUDIT_LOG_SIGNING_KEY=",
        )
        .replace("KEYCLOAK_ADMIN_PASSWORD=", "KEYCLOAK_ADMIN_PASSWORD_OLD=")
        .replace(
            "KEYCLOAK_SERVICE_CLIENT_SECRET=",
            "KEYCLOAK_SERVICE_CLIENT_SECRET=changed",
        );
    p.write(".env", env);
    let before = p.snapshot();
    let out = p.cmd(&["load"]).run().code(3);
    assert!(out.stderr.contains("flask-secret-key"), "{}", out.stderr);
    assert!(
        out.stderr.contains("audit-log-signing-key"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("keycloak-admin-password"),
        "{}",
        out.stderr
    );
    crate::harness::assert_same_files(&before, &p.snapshot());
}

#[test]
fn symlinked_secrets_dir_is_refused() {
    let p = Project::demo();
    p.cmd(&["ensure"]).run().success();
    std::fs::create_dir_all(p.path("elsewhere")).unwrap();
    std::fs::create_dir_all(p.path(".runtime")).unwrap();
    std::os::unix::fs::symlink(p.path("elsewhere"), p.path(".runtime/secrets")).unwrap();
    let out = p.cmd(&["load"]).run().code(2);
    assert!(out.stderr.contains("symlink"), "{}", out.stderr);
    assert!(
        std::fs::read_dir(p.path("elsewhere"))
            .unwrap()
            .next()
            .is_none(),
        "nothing written through the link"
    );
}

#[test]
fn symlinked_secret_file_is_refused_not_followed() {
    let p = loaded_demo();
    let target = p.path("victim");
    std::fs::write(&target, "do not touch").unwrap();
    std::fs::remove_file(p.path(".runtime/secrets/flask-secret-key")).unwrap();
    std::os::unix::fs::symlink(&target, p.path(".runtime/secrets/flask-secret-key")).unwrap();
    p.cmd(&["load"]).run().code(2).stderr_has("symlink");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "do not touch");
}

#[test]
fn group_or_world_writable_secrets_dir_is_refused() {
    let p = loaded_demo();
    std::fs::set_permissions(
        p.path(".runtime/secrets"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    p.cmd(&["load"]).run().code(2).stderr_has("world-writable");
}

#[test]
fn loose_but_safe_dir_mode_is_tightened_to_0700() {
    let p = loaded_demo();
    std::fs::set_permissions(
        p.path(".runtime/secrets"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    p.cmd(&["load"]).run().success();
    assert_eq!(p.mode(".runtime/secrets"), 0o700);
}

#[test]
fn a_file_outside_the_project_is_refused_naming_the_secret() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [escape]\nsecrets:\n  escape:\n    file: ../outside\n",
    );
    p.write(".env", "ESCAPE=x\n");
    let out = p.cmd(&["load"]).run().code(2);
    assert!(out.stderr.contains("`escape`"), "{}", out.stderr);
    assert!(
        out.stderr.contains("outside the project directory"),
        "{}",
        out.stderr
    );
    assert!(!p.exists(".runtime/secrets"));
    // The hint gives the flag with the exact directory, and following it works; `verify`
    // then only warns about the user's own 0755 directory, which load never chmods.
    let outside = p.dir.path().parent().unwrap();
    let flag = format!("--secrets-dir {}", outside.display());
    assert!(out.stderr.contains(&flag), "{}", out.stderr);
    let shared = tempfile::tempdir().unwrap();
    p.write(
        "compose.yaml",
        format!(
            "services:\n  app:\n    image: x\n    secrets: [escape]\nsecrets:\n  escape:\n    file: {}/escape\n",
            shared.path().display()
        ),
    );
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = shared.path().display().to_string();
    p.cmd(&["load", "--secrets-dir", &dir]).run().success();
    assert_eq!(p.mode(&dir), 0o755, "never chmodded");
    let verify = p
        .cmd(&["verify", "--no-docker", "--secrets-dir", &dir])
        .run();
    let line = verify
        .stdout
        .lines()
        .find(|l| l.contains("directory mode 0755"))
        .unwrap_or_else(|| panic!("{}", verify.stdout));
    assert!(line.contains("WARN"), "{line}");
}

#[test]
fn secrets_dir_is_configurable() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [a]\nsecrets:\n  a:\n    file: ./run/a\n",
    );
    p.write(".env", "A=value-a\n");
    p.cmd(&["load", "--secrets-dir", "run"]).run().success();
    assert_eq!(p.read_string("run/a"), "value-a");
    assert_eq!(p.mode("run"), 0o700);
}

#[test]
fn env_output_writes_key_lines_with_a_name_mapping_and_keeps_other_lines() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [a]\nsecrets:\n  a:\n    file: .runtime/secrets/a\n",
    );
    p.write(".env", "A=aaa\nDBPASSWORD=meow\nFLASKSECRETKEY=1e9f\n");
    p.write(
        "app.env",
        "# Flask Configuration\nFLASK_SECRET_KEY=casse_aussi\nFLASK_DEBUG=False\n\n# Database\nDB_USER=meow\nDB_PASSWORD=casse\n",
    );
    std::fs::set_permissions(p.path("app.env"), std::fs::Permissions::from_mode(0o640)).unwrap();
    p.cmd(&[
        "load",
        "--env-output",
        "app.env",
        "--map",
        "DBPASSWORD=DB_PASSWORD",
        "--map",
        "FLASKSECRETKEY=FLASK_SECRET_KEY",
    ])
    .run()
    .success();
    assert_eq!(
        p.read_string("app.env"),
        "# Flask Configuration\nFLASK_SECRET_KEY=1e9f\nFLASK_DEBUG=False\n\n# Database\nDB_USER=meow\nDB_PASSWORD=meow\n"
    );
    assert_eq!(p.mode("app.env"), 0o640, "the env file keeps its mode");
    // Idempotent: nothing changes the second time.
    let inode = p.inode("app.env");
    p.cmd(&[
        "load",
        "--env-output",
        "app.env",
        "--map",
        "DBPASSWORD=DB_PASSWORD",
    ])
    .run()
    .success()
    .stdout_has("unchanged");
    assert_eq!(p.inode("app.env"), inode);
}

#[test]
fn env_output_works_without_a_compose_file() {
    let p = Project::empty();
    p.write(".env", "DBPASSWORD=meow\n");
    p.write("app.env", "DB_PASSWORD=\n");
    p.cmd(&[
        "load",
        "--env-output",
        "app.env",
        "--map",
        "DBPASSWORD=DB_PASSWORD",
    ])
    .run()
    .success();
    assert_eq!(p.read_string("app.env"), "DB_PASSWORD=meow\n");
}

#[test]
fn non_root_without_chown_right_gets_a_clear_error_and_nothing_is_written() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [a]\nsecrets:\n  a:\n    file: .runtime/secrets/a\n    x-compose-secrets: {owner: \"4242:4242\"}\n",
    );
    p.write(".env", "A=value\n");
    let mut run = p.cmd(&["load"]);
    if is_root() {
        // Drop to an unprivileged user that owns the project, as an operator without sudo would be.
        let uid = "1001";
        let status = std::process::Command::new("chown")
            .args([
                "-R",
                &format!("{uid}:{uid}"),
                p.dir.path().to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::set_permissions(p.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        run.cmd = std::process::Command::new("setpriv");
        run.cmd
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                crate::harness::BIN,
                "load",
            ])
            .current_dir(p.dir.path());
        crate::harness::scrub(&mut run.cmd);
    }
    let out = run.run().code(2);
    assert!(out.stderr.contains("cannot chown"), "{}", out.stderr);
    assert!(out.stderr.contains("4242:4242"), "{}", out.stderr);
    assert!(
        out.stderr.contains("root"),
        "says what to do: {}",
        out.stderr
    );
    assert!(!p.exists(".runtime/secrets/a"));
}

#[test]
fn a_value_over_key_vaults_25_kb_limit_is_refused_naming_the_secret() {
    let p = Project::empty();
    p.write("compose.yaml", "services:\n  app:\n    image: x\n    secrets: [big, ok]\nsecrets:\n  big:\n    file: ./.runtime/secrets/big\n  ok:\n    file: ./.runtime/secrets/ok\n");
    p.write(
        ".env",
        format!("BIG={}\nOK=fine\n", "x".repeat(25 * 1024 + 1)),
    );
    let before = p.snapshot();
    let out = p.cmd(&["load"]).run().code(2);
    assert!(
        out.stderr.contains("`big`") && out.stderr.contains("25600"),
        "{}",
        out.stderr
    );
    crate::harness::assert_same_files(&before, &p.snapshot());
}

/// `--prune` removes only secret files compose-secrets wrote, in directories it created:
/// never a Compose file, an env file (a service's, an `--env-file`, the store itself), a file
/// git tracks, or a file someone else put there.
#[test]
fn prune_removes_only_files_compose_secrets_wrote() {
    let p = Project::empty();
    let compose = |extra: &str| {
        format!(
            "services:\n  app:\n    image: x\n    env_file: [secrets/credentials.env]\n    secrets: [db_password{extra}]\nsecrets:\n  db_password:\n    file: secrets/db_password.txt\n{}",
            if extra.is_empty() { "" } else { "  old_token:\n    file: secrets/old_token.txt\n" }
        )
    };
    p.write("compose.yaml", compose(", old_token"));
    p.write(".env", "DB_PASSWORD=aaaaaaaa\nOLD_TOKEN=bbbbbbbb\n");
    p.write("secrets/credentials.env", "WP_USER=me\n");
    std::fs::remove_dir_all(p.path("secrets")).unwrap();
    p.cmd(&["load"]).run().success();
    assert_eq!(p.mode("secrets"), 0o700, "created for secret files");
    // Files of the project that end up in the directory compose-secrets created.
    p.write("secrets/credentials.env", "WP_USER=me\n");
    p.write(
        "secrets/override.yaml",
        "services:\n  app:\n    environment:\n      X: \"1\"\n",
    );
    p.write("secrets/extra.env", "DB_PASSWORD=aaaaaaaa\n");
    p.write("secrets/tracked.md", "# read me\n");
    p.write("secrets/someone-elses.txt", "not ours\n");
    p.git(&["init", "-q"]);
    p.git(&["add", "-f", "secrets/tracked.md"]);
    // `old_token` is no longer declared: its file is the one stray.
    p.write("compose.yaml", compose(""));
    let args = [
        "-f",
        "compose.yaml",
        "-f",
        "secrets/override.yaml",
        "--env-file",
        "secrets/extra.env",
        "load",
        "--prune",
    ];
    let out = p.cmd(&args).run().success().stdout_has("pruned");
    let text = out.stdout.clone();
    assert!(text.contains("old_token.txt"), "{text}");
    for kept in [
        "credentials.env",
        "override.yaml",
        "extra.env",
        "tracked.md",
        "someone-elses.txt",
    ] {
        assert!(
            !text.contains(kept),
            "{kept} must not be called stray:\n{text}"
        );
        assert!(p.exists(&format!("secrets/{kept}")), "{kept} must be kept");
    }
    assert!(!p.exists("secrets/old_token.txt"));
    assert!(p.exists("secrets/db_password.txt"));
    // Nothing is stray any more.
    let again = p.cmd(&args).run().success();
    assert!(!again.stdout.contains("prune"), "{}", again.stdout);
}

/// Only the directory holding secret files is private: its missing parents are made as
/// `mkdir -p` makes them, and (as root) belong to the owner of the directory above them, so
/// `sudo compose-secrets load` does not lock the project's user out of `data/`. A dry run
/// names the directory it would create.
#[test]
fn parents_of_a_new_secret_directory_stay_the_users() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  auth:\n    image: x\n    secrets: [jwt]\nsecrets:\n  jwt:\n    file: ./data/app/secrets/JWT_SECRET\n",
    );
    p.write(".env", "JWT=aaaaaaaa\n");
    if is_root() {
        std::os::unix::fs::chown(p.dir.path(), Some(4321), Some(4321)).unwrap();
    }
    let before = p.snapshot();
    p.cmd(&["load", "--dry-run"])
        .run()
        .success()
        .stdout_has("would-create")
        .stdout_has("data/app/secrets");
    assert_eq!(before, p.snapshot(), "a dry run creates nothing");
    with_umask(&p, "022", "load").run().success();
    assert_eq!(p.mode("data"), 0o755, "as mkdir -p makes it");
    assert_eq!(p.mode("data/app"), 0o755);
    assert_eq!(p.mode("data/app/secrets"), 0o700);
    if is_root() {
        assert_eq!(p.owner("data"), (4321, 4321));
        assert_eq!(p.owner("data/app"), (4321, 4321));
        assert_eq!(p.owner("data/app/secrets"), (0, 0));
    }
}

/// A service with a numeric `user:` (or a mount `uid`/`gid`) gets a file it can read: the
/// owner defaults to that user when compose-secrets may give files away (root), and
/// `verify` warns when the file ends up unreadable to it, or when only the image knows the
/// user's uid.
#[test]
fn the_owner_defaults_to_the_user_the_service_runs_as() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  db:\n    image: postgres\n    user: \"999:998\"\n    secrets: [pw]\n  \
         web:\n    image: nginx\n    user: nginx\n    secrets: [{source: token, mode: 0440}]\n\
         secrets:\n  pw: {file: ./pw.txt}\n  token: {file: ./token.txt}\n",
    );
    p.write(".env", "PW=aaaaaaaa\nTOKEN=bbbbbbbb\n");
    // A named user is looked up in its image (see owners_docker.rs), which this test has
    // not: the files are loaded before web runs as one, as by a version that did not look.
    let compose = p.read_string("compose.yaml");
    p.write("compose.yaml", compose.replace("    user: nginx\n", ""));
    p.cmd(&["load"]).run().success();
    p.write("compose.yaml", compose);
    assert_eq!(p.mode("token.txt"), 0o440, "the mount's mode");
    // --no-docker looks no user up: the named one is a warning.
    let verify = p.cmd(&["verify", "--no-docker"]).run();
    assert!(
        verify.stdout.contains("service web runs as user `nginx`"),
        "{}",
        verify.stdout
    );
    if is_root() {
        assert_eq!(p.owner("pw.txt"), (999, 998));
        assert!(
            !verify.stdout.contains("service db runs as"),
            "{}",
            verify.stdout
        );
    } else {
        assert!(
            verify
                .stdout
                .contains("service db runs as 999:998 and cannot read"),
            "{}",
            verify.stdout
        );
    }
}

/// `COMPOSE_SECRETS_DIR` and `COMPOSE_SECRETS_RUNTIME_DIR` work from the project's `.env`
/// (relative to the project directory) as from the environment.
#[test]
fn directory_settings_are_read_from_the_projects_env() {
    let p = Project::empty();
    p.write(
        "app/compose.yaml",
        "services:\n  app: {image: alpine, secrets: [a]}\nsecrets:\n  a: {file: ../shared/a}\n",
    );
    p.write(
        "app/.env",
        "A=aaaaaaaa\nCOMPOSE_SECRETS_DIR=../shared\nCOMPOSE_SECRETS_RUNTIME_DIR=state\n",
    );
    std::fs::create_dir(p.path("shared")).unwrap();
    std::fs::set_permissions(p.path("shared"), std::fs::Permissions::from_mode(0o700)).unwrap();
    p.cmd(&["-f", "app/compose.yaml", "load"]).run().success();
    assert_eq!(p.read_string("shared/a"), "aaaaaaaa");
    assert!(p.exists("app/state/state.json"));
    assert!(!p.exists("app/.runtime"));
}
