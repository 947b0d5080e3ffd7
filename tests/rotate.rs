//! `rotate` through the real binary in demo mode: `.env` and files, dry run, stdin values,
//! refusals before anything changes, the lock, `--older-than`, and the audit log's chain.

use compose_secrets::testing::audit::{self, AuditKey};
use compose_secrets::testing::files::runtime_dir::RuntimeDir;
use compose_secrets::testing::secret::SecretValue;

use crate::harness::{assert_same_files, is_root, Project, DEMO_SECRETS};

/// A socket path nothing listens on: Docker is unreachable.
const NO_DOCKER: &str = "unix:///nonexistent/docker.sock";

fn loaded_demo() -> Project {
    let p = Project::demo();
    p.cmd(&["ensure"]).run().success();
    p.cmd(&["load"]).run().success();
    p
}

fn env_values(p: &Project) -> Vec<String> {
    DEMO_SECRETS
        .iter()
        .map(|(_, key)| p.env_value(key))
        .collect()
}

#[test]
fn no_restart_rotates_env_and_file_like_load() {
    let p = loaded_demo();
    let before = env_values(&p);
    let out = p
        .cmd(&["rotate", "flask-secret-key", "--no-restart"])
        .env("DOCKER_HOST", NO_DOCKER)
        .run()
        .success()
        .stdout_has("not-restarted");
    let new = p.env_value("FLASK_SECRET_KEY");
    assert_ne!(new, before[0]);
    assert_eq!(new.len(), 64, "hex:32");
    let file = ".runtime/secrets/flask-secret-key";
    assert_eq!(p.read_string(file), new);
    assert_eq!(p.mode(file), 0o400);
    if is_root() {
        assert_eq!(p.owner(file), (1000, 1000));
    }
    // The other secrets are untouched.
    assert_eq!(env_values(&p)[1..], before[1..]);
    let mut all = before.clone();
    all.push(new.clone());
    out.assert_no_values(&all);
    // state.json was updated as load would: the next load has nothing to do.
    let load = p.cmd(&["load", "--json"]).run().success().json();
    for item in load["items"].as_array().unwrap() {
        assert_eq!(item["action"], "unchanged", "{item}");
    }
}

#[test]
fn json_report_names_steps_and_versions_not_values() {
    let p = loaded_demo();
    let out = p
        .cmd(&[
            "--json",
            "rotate",
            "KEYCLOAK_SERVICE_CLIENT_SECRET",
            "--no-restart",
        ])
        .run()
        .success();
    let doc = out.json();
    assert_eq!(doc["command"], "rotate");
    let actions: Vec<&str> = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"pushed") && actions.contains(&"written") && actions.contains(&"rotated"),
        "{actions:?}"
    );
    assert_eq!(doc["extra"]["restart_needed"], serde_json::json!(["app"]));
    let mut values = env_values(&p);
    values.push(p.read_string(".runtime/secrets/keycloak-service-client-secret"));
    out.assert_no_values(&values);
}

#[test]
fn dry_run_changes_nothing() {
    let p = loaded_demo();
    let before = p.snapshot();
    for args in [
        vec!["rotate", "--all", "--dry-run"],
        vec!["rotate", "flask-secret-key", "--dry-run", "--no-restart"],
        vec!["rotate", "--older-than", "1d", "--dry-run"],
    ] {
        let out = p
            .cmd(&args)
            .env("DOCKER_HOST", NO_DOCKER)
            .run()
            .success()
            .stdout_has("would-rotate");
        out.assert_no_values(&env_values(&p));
    }
    let out = p
        .cmd(&["rotate", "--all", "--dry-run"])
        .env("DOCKER_HOST", NO_DOCKER)
        .run()
        .success();
    assert!(out.stdout.contains("containers unknown"), "{}", out.stdout);
    assert!(
        out.stdout.contains("/health"),
        "names the health check: {}",
        out.stdout
    );
    assert_same_files(&before, &p.snapshot());
}

#[test]
fn value_from_stdin_is_used_and_empty_stdin_refused() {
    let p = loaded_demo();
    let given = "Stdin-Given-Value-8f3a1c";
    let out = p
        .cmd(&[
            "rotate",
            "keycloak-admin-password",
            "--value-stdin",
            "--no-restart",
        ])
        .stdin(format!("{given}\n"))
        .run()
        .success();
    out.assert_no_values(&[given.to_string()]);
    assert_eq!(p.env_value("KEYCLOAK_ADMIN_PASSWORD"), given);
    assert_eq!(
        p.read_string(".runtime/secrets/keycloak-admin-password"),
        given
    );

    let before = p.snapshot();
    for stdin in ["", "\n"] {
        p.cmd(&[
            "rotate",
            "keycloak-admin-password",
            "--value-stdin",
            "--no-restart",
        ])
        .stdin(stdin)
        .run()
        .code(2)
        .stderr_has("empty");
    }
    p.cmd(&["rotate", "--all", "--value-stdin", "--no-restart"])
        .stdin("x\n")
        .run()
        .code(2);
    p.cmd(&[
        "rotate",
        "--value-stdin",
        "--no-restart",
        "flask-secret-key",
        "keycloak-admin-password",
    ])
    .stdin("x\n")
    .run()
    .code(2);
    p.cmd(&[
        "rotate",
        "keycloak-admin-password",
        "--value-stdin",
        "--no-restart",
    ])
    .stdin(vec![b'a'; 25 * 1024 + 1])
    .run()
    .code(2);
    assert_same_files(&before, &p.snapshot());
}

#[test]
fn unknown_names_and_missing_selection_are_usage_errors() {
    let p = loaded_demo();
    let before = p.snapshot();
    p.cmd(&["rotate", "no-such-secret", "--no-restart"])
        .run()
        .code(2)
        .stderr_has("no-such-secret");
    p.cmd(&["rotate"]).run().code(2).stderr_has("--all");
    p.cmd(&["rotate", "--older-than", "ninety", "--no-restart"])
        .run()
        .code(2);
    assert_same_files(&before, &p.snapshot());
}

#[test]
fn unreachable_docker_fails_before_anything_is_pushed() {
    let p = loaded_demo();
    let env_before = p.read(".env");
    let file_before = p.read(".runtime/secrets/flask-secret-key");
    let before = p.snapshot();
    let out = p
        .cmd(&["rotate", "flask-secret-key"])
        .env("DOCKER_HOST", NO_DOCKER)
        .run()
        .code(5)
        .stderr_has("nothing was changed");
    out.assert_no_values(&env_values(&p));
    assert_eq!(p.read(".env"), env_before, ".env byte-identical");
    assert_eq!(p.read(".runtime/secrets/flask-secret-key"), file_before);
    assert_same_files(&before, &p.snapshot());
}

#[test]
fn a_held_lock_makes_a_second_rotate_give_up() {
    let p = loaded_demo();
    let lock_file = std::fs::OpenOptions::new()
        .write(true)
        .open(p.path(".runtime/.lock"))
        .expect("load created the lock file");
    let _held = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .expect("lock");
    let before = p.snapshot();
    p.cmd(&[
        "rotate",
        "flask-secret-key",
        "--no-restart",
        "--lock-timeout",
        "1",
    ])
    .run()
    .code(8)
    .stderr_has("lock");
    assert_same_files(&before, &p.snapshot());
}

#[test]
fn older_than_rotates_only_what_is_due() {
    let p = loaded_demo();
    let before = env_values(&p);
    p.cmd(&["rotate", "--older-than", "90d", "--no-restart"])
        .run()
        .success();
    let after = env_values(&p);
    for (b, a) in before.iter().zip(&after) {
        assert_ne!(a, b, "never rotated, so due");
    }
    let out = p
        .cmd(&["--json", "rotate", "--older-than", "90d", "--no-restart"])
        .run()
        .success();
    let actions: Vec<String> = out.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, vec!["not-due"; 4]);
    assert_eq!(env_values(&p), after);
}

#[test]
fn a_failing_hook_changes_nothing_and_is_audited() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [token]\nsecrets:\n  token:\n    file: .runtime/secrets/token\n    \
         x-compose-secrets:\n      rotation-hook: [\"sh\", \"-c\", \"cat >&2; exit 4\"]\n",
    );
    p.write(".env", "TOKEN=original-token-value-1234\n");
    p.cmd(&["load"]).run().success();
    let before = p.read(".env");
    let out = p
        .cmd(&["rotate", "token", "--no-restart"])
        .run()
        .code(2)
        .stderr_has("status 4");
    out.assert_no_values(&["original-token-value-1234".to_string()]);
    assert_eq!(p.read(".env"), before);
    assert_eq!(
        p.read_string(".runtime/secrets/token"),
        "original-token-value-1234"
    );
    let lines = p.audit_lines();
    let last = lines.last().unwrap();
    assert_eq!(last["action"], "rotate");
    assert_eq!(last["outcome"], "failed");
    assert_eq!(last["key"], "local", "no audit-log-signing-key declared");
    assert_eq!(p.mode(".runtime/audit.key"), 0o600);
    let runtime = runtime_of(&p);
    let key = AuditKey::local(&runtime, false).unwrap().unwrap();
    assert!(audit::verify_log(Some(&runtime), &[key], None)
        .unwrap()
        .ok());
}

fn runtime_of(p: &Project) -> RuntimeDir {
    RuntimeDir::open(&p.path(".runtime"), false)
        .unwrap()
        .expect("the runtime directory exists")
}

#[test]
fn the_audit_log_chains_every_run_and_holds_no_value() {
    let p = loaded_demo();
    let mut seen = env_values(&p);
    let mut signing_keys = vec![p.env_value("AUDIT_LOG_SIGNING_KEY")];
    let mut outputs = Vec::new();
    outputs.push(
        p.cmd(&["rotate", "flask-secret-key", "--no-restart"])
            .run()
            .success(),
    );
    outputs.push(
        p.cmd(&[
            "rotate",
            "keycloak-admin-password",
            "--value-stdin",
            "--no-restart",
        ])
        .stdin("Audit-Test-Value-5e1d\n")
        .run()
        .success(),
    );
    seen.extend(env_values(&p));
    // Rotating the signing key itself: later lines are signed with the new value.
    outputs.push(p.cmd(&["rotate", "--all", "--no-restart"]).run().success());
    seen.extend(env_values(&p));
    signing_keys.push(p.env_value("AUDIT_LOG_SIGNING_KEY"));
    // A load that restores a removed file, signed with the new key (one that changes nothing
    // adds no line).
    std::fs::remove_file(p.path(".runtime/secrets/flask-secret-key")).unwrap();
    outputs.push(p.cmd(&["load"]).run().success());
    seen.push("Audit-Test-Value-5e1d".into());

    let lines = p.audit_lines();
    // load; 2 single rotations and 4 from --all, each an intent and its outcome; the
    // key-rotation line that hands the chain to the new signing key; load.
    assert_eq!(lines.len(), 1 + 2 * 6 + 1 + 1, "{lines:#?}");
    assert_eq!(lines[0]["action"], "load");
    assert_eq!(lines[0]["secret"].as_array().unwrap().len(), 4);
    let rotations: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["action"] == "rotate").collect();
    assert_eq!(rotations.len(), 12);
    for pair in rotations.chunks(2) {
        assert_eq!(pair[0]["outcome"], "intent");
        assert_eq!(pair[1]["outcome"], "ok");
        assert_eq!(pair[0]["secret"], pair[1]["secret"]);
        let line = pair[1];
        assert_eq!(line["health"], "skipped");
        assert_eq!(line["key"], "audit-log-signing-key");
        assert!(
            line["new_version"].as_str().unwrap().starts_with("hmac:"),
            "demo versions are keyed fingerprints"
        );
        assert_ne!(line["old_version"], line["new_version"]);
    }
    let handover: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["action"] == "key-rotation")
        .collect();
    assert_eq!(handover.len(), 1);
    assert!(!p
        .read_string(".runtime/audit.log")
        .contains(&signing_keys[0]));
    let log = p.read_string(".runtime/audit.log");
    for value in &seen {
        assert!(
            !log.contains(value.as_str()),
            "a value reached the audit log"
        );
    }
    for out in &outputs {
        out.assert_no_values(&seen);
    }
    assert_eq!(p.mode(".runtime/audit.log"), 0o600);
    let keys: Vec<AuditKey> = signing_keys
        .iter()
        .map(|k| AuditKey::from_signing_secret(&SecretValue::new(k.clone())))
        .collect();
    // The current key alone verifies every line: the old one comes out of the handover line.
    let runtime = runtime_of(&p);
    let report = audit::verify_log(Some(&runtime), &keys[1..], None).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.lines, 15);
    assert!(report.pending.is_empty());
    // The old key alone does not verify what the new one signed.
    let old = audit::verify_log(Some(&runtime), &keys[..1], None).unwrap();
    assert!(!old.ok());
    p.cmd(&["verify", "--no-docker"]).run().success();
}

/// The stack is down: no container of the services that mount the secret is running.
mod stack_down {
    use super::*;
    use crate::support::idle_engine::IdleEngine;

    const WARNING: &str = "compose-secrets: warning: service app has no running container, so \
                           rotating flask-secret-key restarts nothing; run `docker compose up -d` \
                           afterwards: it starts app with the new file";

    #[test]
    fn a_script_gets_a_warning_and_the_rotation() {
        let p = loaded_demo();
        let engine = IdleEngine::start();
        let before = p.env_value("FLASK_SECRET_KEY");
        let out = p
            .cmd(&["rotate", "flask-secret-key"])
            .env("DOCKER_HOST", engine.docker_host())
            .run()
            .success()
            .stdout_has("no-containers");
        assert_eq!(
            out.stderr
                .lines()
                .filter(|l| l.contains("warning"))
                .collect::<Vec<_>>(),
            [WARNING],
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("[y/N]"), "a script is never asked");
        assert_ne!(p.env_value("FLASK_SECRET_KEY"), before);

        let json = p
            .cmd(&["rotate", "flask-secret-key", "--json"])
            .env("DOCKER_HOST", engine.docker_host())
            .run()
            .success()
            .json();
        assert_eq!(
            json["extra"]["not_running"],
            serde_json::json!(["app"]),
            "{json:#}"
        );
        // -q: errors only.
        let quiet = p
            .cmd(&["rotate", "flask-secret-key", "-q"])
            .env("DOCKER_HOST", engine.docker_host())
            .run()
            .success();
        assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
    }

    /// `rotate` on a pseudo-terminal (util-linux `script`), answering the question with `answer`:
    /// (exit code, what the terminal showed).
    fn on_a_terminal(p: &Project, engine: &IdleEngine, args: &str, answer: &str) -> (i32, String) {
        assert!(
            std::process::Command::new("script")
                .arg("--version")
                .output()
                .is_ok(),
            "this test needs util-linux `script` (Debian: bsdutils) for a pseudo-terminal"
        );
        let mut cmd = std::process::Command::new("script");
        cmd.args([
            "-qec",
            &format!("{} {args}", crate::harness::BIN),
            "/dev/null",
        ])
        .current_dir(p.dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        crate::harness::scrub(&mut cmd);
        cmd.env("DOCKER_HOST", engine.docker_host());
        let mut child = cmd.spawn().unwrap();
        // Typed ahead: the terminal keeps it until rotate reads its answer.
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), answer.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    #[test]
    fn a_person_at_a_terminal_is_asked_and_no_changes_nothing() {
        let p = loaded_demo();
        let engine = IdleEngine::start();
        let before = p.snapshot();
        let (code, screen) = on_a_terminal(&p, &engine, "rotate flask-secret-key", "n\n");
        assert_eq!(code, 2, "{screen}");
        assert!(
            screen.contains("Rotate flask-secret-key anyway? [y/N]"),
            "{screen}"
        );
        assert!(
            screen.contains("rotate cancelled: nothing was changed"),
            "{screen}"
        );
        assert_same_files(&before, &p.snapshot());

        let old = p.env_value("FLASK_SECRET_KEY");
        let (code, screen) = on_a_terminal(&p, &engine, "rotate flask-secret-key", "y\n");
        assert_eq!(code, 0, "{screen}");
        assert_ne!(p.env_value("FLASK_SECRET_KEY"), old);

        // --yes: no question.
        let (code, screen) = on_a_terminal(&p, &engine, "rotate flask-secret-key --yes", "");
        assert_eq!(code, 0, "{screen}");
        assert!(!screen.contains("[y/N]"), "{screen}");
        assert!(screen.contains("has no running container"), "{screen}");
    }

    /// Only a rotation that would restart something asks: a dry run changes nothing and
    /// `--no-restart` restarts nothing, so neither stops at the question, even on a terminal.
    #[test]
    fn a_dry_run_or_no_restart_is_not_asked() {
        let p = loaded_demo();
        let engine = IdleEngine::start();
        let before = p.snapshot();
        let (code, screen) = on_a_terminal(&p, &engine, "rotate flask-secret-key --dry-run", "");
        assert_eq!(code, 0, "{screen}");
        assert!(!screen.contains("[y/N]"), "{screen}");
        assert_same_files(&before, &p.snapshot());

        let old = p.env_value("FLASK_SECRET_KEY");
        let (code, screen) = on_a_terminal(&p, &engine, "rotate flask-secret-key --no-restart", "");
        assert_eq!(code, 0, "{screen}");
        assert!(!screen.contains("[y/N]"), "{screen}");
        assert_ne!(p.env_value("FLASK_SECRET_KEY"), old);
    }
}
