//! `verify`: each check fails for the right reason, and passes once the cause is fixed.

use std::os::unix::fs::PermissionsExt as _;

use crate::harness::{Project, DEMO_SECRETS};

/// A loaded demo project inside its own git repository with the repo's .gitignore.
fn loaded() -> Project {
    let p = Project::demo();
    p.write(
        ".gitignore",
        std::fs::read(crate::harness::repo_root().join(".gitignore")).unwrap(),
    );
    p.git(&["init", "-q"]);
    p.cmd(&["ensure"]).run().success();
    p.cmd(&["load"]).run().success();
    p
}

/// Run `verify --json --no-docker`; returns (exit code, checks).
fn verify(p: &Project, extra: &[&str]) -> (i32, Vec<serde_json::Value>) {
    let mut args = vec!["verify", "--json", "--no-docker"];
    args.extend_from_slice(extra);
    let out = p.cmd(&args).run();
    let values: Vec<String> = DEMO_SECRETS
        .iter()
        .filter_map(|(_, k)| {
            std::fs::read_to_string(p.path(".env")).ok().and_then(|e| {
                e.lines()
                    .find_map(|l| l.strip_prefix(&format!("{k}=")).map(str::to_string))
            })
        })
        .filter(|v| !v.is_empty())
        .collect();
    out.assert_no_values(&values);
    let json = out.json();
    (out.code, json["checks"].as_array().unwrap().clone())
}

fn status_of(checks: &[serde_json::Value], category: &str, subject_part: &str) -> Vec<String> {
    checks
        .iter()
        .filter(|c| {
            c["category"] == category && c["subject"].as_str().unwrap().contains(subject_part)
        })
        .map(|c| c["status"].as_str().unwrap().to_string())
        .collect()
}

#[track_caller]
fn assert_status(checks: &[serde_json::Value], category: &str, subject: &str, want: &str) {
    let got = status_of(checks, category, subject);
    assert!(
        got.iter().any(|s| s == want),
        "{category}/{subject}: want {want}, got {got:?}\n{checks:#?}"
    );
}

#[test]
fn a_sound_demo_deployment_passes() {
    let p = loaded();
    let (code, checks) = verify(&p, &[]);
    assert_eq!(code, 0, "{checks:#?}");
    assert!(checks.iter().all(|c| c["status"] != "fail"));
    assert_status(&checks, "audit", "audit.log", "pass");
    assert_status(&checks, "git", ".env", "pass");
}

#[test]
fn a_missing_file_fails_and_load_fixes_it() {
    let p = loaded();
    std::fs::remove_file(p.path(".runtime/secrets/flask-secret-key")).unwrap();
    let (code, checks) = verify(&p, &[]);
    assert_eq!(code, 1);
    assert_status(&checks, "files", "flask-secret-key", "fail");
    p.cmd(&["load"]).run().success();
    assert_eq!(verify(&p, &[]).0, 0);
}

#[test]
fn a_wrong_mode_or_owner_fails_and_load_fixes_it() {
    let p = loaded();
    let file = p.path(".runtime/secrets/keycloak-admin-password");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
    let (code, checks) = verify(&p, &[]);
    assert_eq!(code, 1);
    assert_status(&checks, "files", "keycloak-admin-password", "fail");
    if crate::harness::is_root() {
        std::os::unix::fs::chown(&file, Some(0), Some(0)).unwrap();
        let (_, checks) = verify(&p, &[]);
        let msg = checks
            .iter()
            .find(|c| c["subject"] == "keycloak-admin-password" && c["category"] == "files")
            .unwrap();
        assert!(
            msg["message"].as_str().unwrap().contains("owner 0:0"),
            "{msg}"
        );
    }
    p.cmd(&["load"]).run().success();
    assert_eq!(verify(&p, &[]).0, 0);
}

#[test]
fn an_unsafe_directory_fails_until_fixed() {
    let p = loaded();
    for loose in [0o755, 0o777] {
        std::fs::set_permissions(
            p.path(".runtime/secrets"),
            std::fs::Permissions::from_mode(loose),
        )
        .unwrap();
        let (code, checks) = verify(&p, &[]);
        assert_eq!(code, 1);
        assert_status(&checks, "files", ".runtime/secrets", "fail");
    }
    std::fs::set_permissions(
        p.path(".runtime/secrets"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    assert_eq!(verify(&p, &[]).0, 0);

    std::fs::rename(p.path(".runtime/secrets"), p.path(".runtime/real")).unwrap();
    std::os::unix::fs::symlink(p.path(".runtime/real"), p.path(".runtime/secrets")).unwrap();
    let (code, checks) = verify(&p, &[]);
    assert_eq!(code, 1);
    assert!(
        checks.iter().any(|c| c["subject"] == ".runtime/secrets"
            && c["status"] == "fail"
            && c["message"].as_str().unwrap().contains("symlink")),
        "{checks:#?}"
    );
    std::fs::remove_file(p.path(".runtime/secrets")).unwrap();
    std::fs::rename(p.path(".runtime/real"), p.path(".runtime/secrets")).unwrap();
    assert_eq!(verify(&p, &[]).0, 0);
}

#[test]
fn a_stray_file_warns_and_strict_fails_until_pruned() {
    let p = loaded();
    // A secret no service mounts any more: the file load wrote for it is stray.
    let compose = p.read_string("compose.yaml");
    p.write(
        "compose.yaml",
        compose.replacen("      - keycloak-service-client-secret\n", "", 1),
    );
    let (code, checks) = verify(&p, &[]);
    assert_eq!(code, 0, "{checks:#?}");
    assert_status(
        &checks,
        "files",
        ".runtime/secrets/keycloak-service-client-secret",
        "warn",
    );
    assert_eq!(verify(&p, &["--strict"]).0, 1);
    p.cmd(&["load", "--prune"]).run().success();
    assert_eq!(verify(&p, &["--strict"]).0, 0);
}

#[test]
fn drift_between_file_and_env_fails_and_load_fixes_it() {
    let p = loaded();
    p.cmd(&["ensure", "--force", "flask-secret-key"])
        .run()
        .success();
    let (code, checks) = verify(&p, &[]);
    assert_eq!(code, 1);
    assert_status(&checks, "drift", "flask-secret-key", "fail");
    p.cmd(&["load"]).run().success();
    assert_eq!(verify(&p, &[]).0, 0);
}

#[test]
fn a_hand_edited_file_drifts_until_load_rewrites_it() {
    let p = loaded();
    let file = p.path(".runtime/secrets/keycloak-admin-password");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&file, "edited-by-hand-0123456789").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
    let (code, checks) = verify(&p, &[]);
    assert_eq!(code, 1);
    assert_status(&checks, "drift", "keycloak-admin-password", "fail");
    assert!(!serde_json::to_string(&checks)
        .unwrap()
        .contains("edited-by-hand-0123456789"));
    p.cmd(&["load"]).run().success();
    let (code, checks) = verify(&p, &[]);
    assert_eq!(code, 0, "{checks:#?}");
    assert_status(&checks, "drift", "keycloak-admin-password", "pass");
}

#[test]
fn outside_a_git_repository_history_is_not_checked_and_strict_fails() {
    let p = Project::demo();
    p.cmd(&["ensure"]).run().success();
    p.cmd(&["load"]).run().success();
    let (code, checks) = verify(&p, &[]);
    assert_eq!(code, 0, "{checks:#?}");
    assert!(
        checks.iter().any(|c| c["category"] == "git"
            && c["status"] == "warn"
            && c["message"]
                .as_str()
                .unwrap()
                .contains("not a git repository")),
        "{checks:#?}"
    );
    assert_eq!(verify(&p, &["--strict"]).0, 1);
    p.write(
        ".gitignore",
        std::fs::read(crate::harness::repo_root().join(".gitignore")).unwrap(),
    );
    p.git(&["init", "-q"]);
    assert_eq!(verify(&p, &["--strict"]).0, 0);
}

#[test]
fn env_mode_ignore_rules_and_history_are_checked() {
    let p = loaded();
    std::fs::set_permissions(p.path(".env"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, checks) = verify(&p, &[]);
    assert_eq!(code, 1);
    assert_status(&checks, "leaks", ".env", "fail");
    std::fs::set_permissions(p.path(".env"), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(verify(&p, &[]).0, 0);

    std::fs::write(p.path(".gitignore"), "target/\n").unwrap();
    let (code, checks) = verify(&p, &[]);
    assert_eq!(code, 1);
    assert_status(&checks, "git", ".env", "fail");
    assert_status(&checks, "git", ".runtime", "fail");

    p.git(&["add", "-f", ".env"]);
    p.git(&["commit", "-qm", "oops"]);
    std::fs::write(p.path(".gitignore"), ".env\n.runtime/\n").unwrap();
    let (code, checks) = verify(&p, &[]);
    assert_eq!(code, 1);
    assert!(
        checks.iter().any(|c| c["category"] == "git"
            && c["message"]
                .as_str()
                .unwrap()
                .contains("committed in history")),
        "{checks:#?}"
    );
}

#[test]
fn a_secret_value_in_compose_environment_fails() {
    let p = loaded();
    let value = p.env_value("FLASK_SECRET_KEY");
    let compose = p.read_string("compose.yaml");
    let leaky = compose.replace(
        "DEMO_REJECT_PREFIX: ${DEMO_REJECT_PREFIX:-}",
        &format!("DEMO_REJECT_PREFIX: ${{DEMO_REJECT_PREFIX:-}}\n      LEAK: {value}"),
    );
    assert_ne!(leaky, compose);
    p.write("compose.yaml", &leaky);
    let (code, checks) = verify(&p, &[]);
    assert_eq!(code, 1);
    assert_status(&checks, "leaks", "service app", "fail");
    p.write("compose.yaml", &compose);
    assert_eq!(verify(&p, &[]).0, 0);
}

#[test]
fn a_secret_interpolated_into_compose_environment_fails() {
    let p = loaded();
    let compose = p.read_string("compose.yaml");
    let leaky = compose.replace(
        "DEMO_REJECT_PREFIX: ${DEMO_REJECT_PREFIX:-}",
        "DEMO_REJECT_PREFIX: ${DEMO_REJECT_PREFIX:-}\n      SECRET_KEY: ${FLASK_SECRET_KEY}",
    );
    assert_ne!(leaky, compose);
    p.write("compose.yaml", &leaky);
    let (code, checks) = verify(&p, &[]);
    assert_eq!(code, 1);
    let leak = checks
        .iter()
        .find(|c| c["category"] == "leaks" && c["subject"] == "service app")
        .unwrap();
    assert_eq!(leak["status"], "fail");
    assert!(
        leak["message"]
            .as_str()
            .unwrap()
            .contains("SECRET_KEY interpolates ${FLASK_SECRET_KEY} (secret flask-secret-key)"),
        "{leak}"
    );
    p.write("compose.yaml", &compose);
    assert_eq!(verify(&p, &[]).0, 0);
}

#[test]
fn an_unreachable_docker_engine_is_one_failure_naming_docker_host() {
    let p = loaded();
    let host = format!("unix://{}", p.path("no-such-docker.sock").display());
    let out = p
        .cmd(&["verify", "--json"])
        .env("DOCKER_HOST", &host)
        .run()
        .code(1);
    let checks = out.json()["checks"].as_array().unwrap().clone();
    let failed: Vec<&serde_json::Value> = checks.iter().filter(|c| c["status"] == "fail").collect();
    assert_eq!(failed.len(), 1, "{checks:#?}");
    assert_eq!(failed[0]["category"], "containers");
    assert_eq!(failed[0]["subject"], format!("DOCKER_HOST={host}"));
    assert!(failed[0]["message"]
        .as_str()
        .unwrap()
        .contains("--no-docker"));

    // --no-docker: the Docker checks are one skip, and nothing fails.
    let out = p
        .cmd(&["verify", "--json", "--no-docker"])
        .env("DOCKER_HOST", &host)
        .run()
        .success();
    let checks = out.json()["checks"].as_array().unwrap().clone();
    assert_status(&checks, "containers", "project", "skip");
}

#[test]
fn the_table_has_a_header_every_check_and_a_summary_and_no_value() {
    let Some((_bin, path)) = crate::support::compose::path_with_compose_v2(
        "verify::the_table_has_a_header_every_check_and_a_summary_and_no_value",
    ) else {
        return;
    };
    let p = loaded();
    std::fs::set_permissions(p.path(".env"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = p
        .cmd(&["verify", "--no-docker"])
        .env("PATH", &path)
        .run()
        .code(1);
    let values: Vec<String> = DEMO_SECRETS.iter().map(|(_, k)| p.env_value(k)).collect();
    out.assert_no_values(&values);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["STATUS", "CHECK", "SUBJECT", "MESSAGE"],
        "{}",
        out.stdout
    );
    // Columns line up: every row's category starts where the header's CHECK does.
    let check_col = lines[0].find("CHECK").unwrap();
    assert!(lines[1..]
        .iter()
        .take_while(|l| !l.is_empty())
        .all(|l| l.get(check_col..check_col + 1).is_some_and(|c| c != " ")));
    assert!(out
        .stdout
        .lines()
        .any(|l| l.starts_with("FAIL") && l.contains(".env") && l.contains("mode 0644")));
    assert!(
        out.stdout
            .contains("passed, 1 failed, 0 warnings, 2 skipped"),
        "{}",
        out.stdout
    );
    // Skipped: the containers (--no-docker), and the chain head demo mode cannot anchor.
    // The report is complete on stdout; the error goes to stderr.
    assert!(out.stderr.contains("1 check(s) failed"), "{}", out.stderr);
}

#[test]
fn a_tampered_audit_log_fails() {
    let p = loaded();
    p.cmd(&["load", "--no-cache"]).run().success();
    let log = p.read_string(".runtime/audit.log");
    let tampered = log.replacen("\"load\"", "\"lead\"", 1);
    assert_ne!(tampered, log);
    std::fs::write(p.path(".runtime/audit.log"), tampered).unwrap();
    let (code, checks) = verify(&p, &[]);
    assert_eq!(code, 1);
    assert_status(&checks, "audit", "audit.log", "fail");
    std::fs::write(p.path(".runtime/audit.log"), log).unwrap();
    assert_eq!(verify(&p, &[]).0, 0);
}

/// A log that cannot be read is never "intact, 0 lines": a symlink in its place, or a
/// directory (read fails with EISDIR, as a log without read permission does for non-root),
/// is a FAIL naming it, and the symlink's target is not touched.
#[test]
fn a_symlinked_or_unreadable_audit_log_fails() {
    let p = loaded();
    let log = p.read_string(".runtime/audit.log");
    p.write("elsewhere.log", log.as_bytes());
    std::fs::remove_file(p.path(".runtime/audit.log")).unwrap();
    std::os::unix::fs::symlink(p.path("elsewhere.log"), p.path(".runtime/audit.log")).unwrap();
    let (code, checks) = verify(&p, &[]);
    assert_eq!(code, 1);
    assert_status(&checks, "audit", "audit.log", "fail");
    assert_eq!(
        p.read_string("elsewhere.log"),
        log,
        "the target is unchanged"
    );

    std::fs::remove_file(p.path(".runtime/audit.log")).unwrap();
    std::fs::create_dir(p.path(".runtime/audit.log")).unwrap();
    let (code, checks) = verify(&p, &[]);
    assert_eq!(code, 1);
    assert_status(&checks, "audit", "audit.log", "fail");

    std::fs::remove_dir(p.path(".runtime/audit.log")).unwrap();
    p.write(".runtime/audit.log", log.as_bytes());
    std::fs::set_permissions(
        p.path(".runtime/audit.log"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    assert_eq!(verify(&p, &[]).0, 0, "the log put back verifies");
}

/// A `load` of 80 secrets writes one audit line far over 8 KiB; the next append must still
/// chain onto it, and `verify` must pass the whole log.
#[test]
fn a_load_of_eighty_secrets_then_another_append_still_verifies() {
    let p = Project::empty();
    let mut compose = String::from("services:\n  app:\n    image: x\n    secrets:\n");
    let mut decl = String::from("secrets:\n");
    let mut template = String::new();
    for n in 0..80 {
        compose.push_str(&format!("      - application-secret-number-{n:03}\n"));
        decl.push_str(&format!(
            "  application-secret-number-{n:03}:\n    file: .runtime/secrets/application-secret-number-{n:03}\n"
        ));
        template.push_str(&format!("APPLICATION_SECRET_NUMBER_{n:03}=\n"));
    }
    p.write("compose.yaml", format!("{compose}{decl}"));
    p.write(".env.demo", template);
    p.cmd(&["ensure"]).run().success();
    p.cmd(&["load"]).run().success();
    let first = p.read_string(".runtime/audit.log");
    let longest = first.lines().map(str::len).max().unwrap_or(0);
    assert!(longest > 8192, "one line over 8 KiB: longest is {longest}");
    p.cmd(&["ensure", "--force", "application-secret-number-007"])
        .run()
        .success();
    p.cmd(&["load"]).run().success();
    let log = p.read_string(".runtime/audit.log");
    assert!(log.lines().count() > first.lines().count(), "appended");
    let (_, checks) = verify(&p, &[]);
    assert_status(&checks, "audit", "audit.log", "pass");
}

#[tokio::test(flavor = "multi_thread")]
async fn key_vault_stale_version_and_missing_set_permission_are_reported() {
    use compose_secrets::testing::store::SecretStore as _;
    let emulator = crate::support::emulator::Emulator::start(&[
        "--seed",
        "flask-secret-key",
        "--seed",
        "keycloak-service-client-secret",
        "--seed",
        "keycloak-admin-password",
        "--seed",
        "audit-log-signing-key",
        "--permissions",
        "reader=get,list",
    ]);
    let p = Project::demo();
    let kv = |args: &[&str], identity: Option<&str>| {
        let mut run = p.cmd(args).keyvault(&emulator);
        if let Some(id) = identity {
            run = run.env("AZURE_CLIENT_ID", id);
        }
        run
    };
    // Key Vault stamps `updated` in whole seconds: let the seeded versions age first.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    kv(&["load"], None).run().success();
    let out = kv(&["verify", "--json", "--no-docker"], None).run();
    let checks = out.json()["checks"].as_array().unwrap().clone();
    assert_status(&checks, "drift", "flask-secret-key", "pass");

    // Rotated in the vault behind our back: the file is stale until the next load.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let store = crate::support::store::store_for(&emulator, &[]);
    store
        .set(
            "flask-secret-key",
            &compose_secrets::testing::secret::SecretValue::new("rotated-elsewhere-123".into()),
            &Default::default(),
        )
        .await
        .unwrap();
    let out = kv(&["verify", "--json", "--no-docker"], None).run().code(1);
    let checks = out.json()["checks"].as_array().unwrap().clone();
    assert_status(&checks, "drift", "flask-secret-key", "fail");
    assert!(!out.stdout.contains("rotated-elsewhere-123"));
    kv(&["load"], None).run().success();
    let out = kv(&["verify", "--json", "--no-docker"], None).run();
    let checks = out.json()["checks"].as_array().unwrap().clone();
    assert_status(&checks, "drift", "flask-secret-key", "pass");

    // A get-only identity (the seeds' VM): load works, verify says rotate would not.
    let out = kv(&["verify", "--json", "--no-docker"], Some("reader")).run();
    let checks = out.json()["checks"].as_array().unwrap().clone();
    assert!(
        checks.iter().any(|c| c["category"] == "vault"
            && c["status"] == "warn"
            && c["message"].as_str().unwrap().contains("`set`")),
        "{checks:#?}"
    );
    assert!(checks
        .iter()
        .any(|c| c["category"] == "vault"
            && c["message"].as_str().unwrap().contains("`get` permitted")));
}

#[test]
fn an_identity_without_get_fails_naming_the_permission() {
    let emulator = crate::support::emulator::Emulator::start(&[
        "--seed",
        "flask-secret-key",
        "--seed",
        "keycloak-service-client-secret",
        "--seed",
        "keycloak-admin-password",
        "--seed",
        "audit-log-signing-key",
        "--permissions",
        "lister=list",
    ]);
    let p = Project::demo();
    let kv = |args: &[&str], identity: Option<&str>| {
        let mut run = p.cmd(args).keyvault(&emulator);
        if let Some(id) = identity {
            run = run.env("AZURE_CLIENT_ID", id);
        }
        run
    };
    kv(&["load"], None).run().success();
    let out = kv(&["verify", "--json", "--no-docker"], Some("lister"))
        .run()
        .code(1);
    let checks = out.json()["checks"].as_array().unwrap().clone();
    assert!(
        checks.iter().any(|c| c["category"] == "vault"
            && c["status"] == "fail"
            && c["message"]
                .as_str()
                .unwrap()
                .contains("lacks the secrets `get` permission")),
        "{checks:#?}"
    );
    // The identity with every permission (the emulator's default) passes the probe.
    let out = kv(&["verify", "--json", "--no-docker"], None).run();
    let checks = out.json()["checks"].as_array().unwrap().clone();
    assert!(
        checks
            .iter()
            .filter(|c| c["category"] == "vault")
            .all(|c| c["status"] == "pass"),
        "{checks:#?}"
    );
}

/// Docker tests: standalone containers of the demo image labelled as a Compose project of
/// their own, so verify finds them through the API as it finds Compose's containers.
mod docker {
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::{assert_status, loaded};
    use crate::harness::{Project, Run, DEMO_SECRETS};
    use crate::support::docker::{ready, DEMO_IMAGE};

    /// Generous: two cores may be busy compiling while a container starts.
    const HEALTH_TIMEOUT: Duration = Duration::from_secs(90);

    /// Containers of one test's project, removed on drop, on success and on panic.
    struct Containers {
        project: String,
        ids: Vec<String>,
    }

    impl Containers {
        fn new(test: &str) -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            Self {
                project: format!(
                    "csverify{}{}{}",
                    test.chars()
                        .filter(char::is_ascii_alphanumeric)
                        .take(12)
                        .collect::<String>(),
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::SeqCst)
                )
                .to_ascii_lowercase(),
                ids: Vec::new(),
            }
        }

        /// `docker run -d` a demo-app container of service `service` with the secret files
        /// mounted; `env_file` and
        /// `label_file` keep any value off the command line. Returns (id, host port).
        fn run(
            &mut self,
            p: &Project,
            service: &str,
            env_file: Option<&str>,
            label_file: Option<&str>,
        ) -> (String, u16) {
            let mut cmd = Command::new("docker");
            cmd.args(["run", "-d", "-p", "127.0.0.1::8000"])
                .args([
                    "--label",
                    &format!("com.docker.compose.project={}", self.project),
                ])
                .args(["--label", &format!("com.docker.compose.service={service}")])
                .args(["--label", "com.docker.compose.container-number=1"]);
            // Each secret file bind-mounted as Compose mounts file secrets, as the demo's user.
            cmd.args(["--user", "1000:1000"]);
            for (name, _) in DEMO_SECRETS {
                cmd.arg("-v").arg(format!(
                    "{}:/run/secrets/{name}:ro",
                    p.path(&format!(".runtime/secrets/{name}")).display()
                ));
            }
            if let Some(f) = env_file {
                cmd.arg("--env-file").arg(p.path(f));
            }
            if let Some(f) = label_file {
                cmd.arg("--label-file").arg(p.path(f));
            }
            let out = cmd.args([DEMO_IMAGE, "serve"]).output().unwrap();
            assert!(
                out.status.success(),
                "docker run: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
            self.ids.push(id.clone());
            let port = Self::port_of(&id);
            (id, port)
        }

        fn remove(&mut self, id: &str) {
            let _ = Command::new("docker").args(["rm", "-f", id]).output();
            self.ids.retain(|i| i != id);
        }

        /// Wait for Docker's health status (no timing assertion: only a generous deadline).
        fn wait_health(&self, id: &str, want: &str) {
            let deadline = Instant::now() + HEALTH_TIMEOUT;
            loop {
                let out = Command::new("docker")
                    .args(["inspect", "--format", "{{.State.Health.Status}}", id])
                    .output()
                    .unwrap();
                if String::from_utf8_lossy(&out.stdout).trim() == want {
                    return;
                }
                assert!(Instant::now() < deadline, "{id} never became {want}");
                std::thread::sleep(Duration::from_millis(250));
            }
        }

        /// `verify --json` for this project, the demo app's health URL on `port`.
        fn verify(&self, p: &Project, port: u16) -> Run {
            p.cmd(&["--project-name", &self.project, "verify", "--json"])
                .env("DEMO_APP_PORT", port.to_string())
        }
    }

    impl Drop for Containers {
        fn drop(&mut self) {
            for id in std::mem::take(&mut self.ids) {
                let _ = Command::new("docker").args(["rm", "-f", &id]).output();
            }
        }
    }

    fn values(p: &Project) -> Vec<String> {
        DEMO_SECRETS.iter().map(|(_, k)| p.env_value(k)).collect()
    }

    fn checks_of(run: Run, p: &Project) -> (i32, Vec<serde_json::Value>) {
        let out = run.run();
        out.assert_no_values(&values(p));
        (out.code, out.json()["checks"].as_array().unwrap().clone())
    }

    #[test]
    fn a_container_started_before_its_secret_was_rewritten_is_stale_until_restarted() {
        if !ready("verify::docker::a_container_started_before_its_secret_was_rewritten_is_stale_until_restarted") {
            return;
        }
        let p = loaded();
        let mut containers = Containers::new("stale");
        let (id, port) = containers.run(&p, "app", None, None);
        containers.wait_health(&id, "healthy");
        let (code, checks) = checks_of(containers.verify(&p, port), &p);
        assert_eq!(code, 0, "{checks:#?}");
        assert_status(&checks, "containers", "(app)", "pass");
        assert_status(&checks, "health", "(app)", "pass");
        assert_status(&checks, "health", "service app", "pass");

        // A new value written after the container started: it still holds the old one.
        p.cmd(&["ensure", "--force", "flask-secret-key"])
            .run()
            .success();
        p.cmd(&["load"]).run().success();
        let (code, checks) = checks_of(containers.verify(&p, port), &p);
        assert_eq!(code, 1);
        let stale = checks
            .iter()
            .find(|c| {
                c["category"] == "containers" && c["subject"].as_str().unwrap().ends_with("(app)")
            })
            .unwrap();
        assert_eq!(stale["status"], "fail");
        let message = stale["message"].as_str().unwrap();
        assert!(
            message.contains("service app") && message.contains("flask-secret-key"),
            "{message}"
        );
        assert!(
            !message.contains("keycloak"),
            "only the rewritten secret: {message}"
        );

        assert!(Command::new("docker")
            .args(["restart", "-t", "1", &id])
            .status()
            .unwrap()
            .success());
        let port = Containers::port_of(&id);
        containers.wait_health(&id, "healthy");
        let (code, checks) = checks_of(containers.verify(&p, port), &p);
        assert_eq!(code, 0, "{checks:#?}");
        assert_status(&checks, "containers", "(app)", "pass");
    }

    #[test]
    fn a_value_in_a_container_env_or_label_fails_until_the_container_is_gone() {
        if !ready(
            "verify::docker::a_value_in_a_container_env_or_label_fails_until_the_container_is_gone",
        ) {
            return;
        }
        let p = loaded();
        let value = p.env_value("KEYCLOAK_ADMIN_PASSWORD");
        p.write("leak.env", format!("ADMIN_PASSWORD={value}\n"));
        p.write("leak.labels", format!("admin.password={value}\n"));
        let mut containers = Containers::new("leak");
        let (clean, port) = containers.run(&p, "app", None, None);
        let (env_leak, _) = containers.run(&p, "worker", Some("leak.env"), None);
        let (label_leak, _) = containers.run(&p, "proxy", None, Some("leak.labels"));
        containers.wait_health(&clean, "healthy");
        let (code, checks) = checks_of(containers.verify(&p, port), &p);
        assert_eq!(code, 1);
        let leak_message = |service: &str| {
            checks
                .iter()
                .find(|c| {
                    c["category"] == "leaks"
                        && c["subject"]
                            .as_str()
                            .unwrap()
                            .ends_with(&format!("({service})"))
                })
                .map(|c| {
                    (
                        c["status"].clone(),
                        c["message"].as_str().unwrap().to_string(),
                    )
                })
                .unwrap()
        };
        let (status, message) = leak_message("worker");
        assert_eq!(status, "fail");
        assert!(
            message.contains("keycloak-admin-password in Config.Env"),
            "{message}"
        );
        let (status, message) = leak_message("proxy");
        assert_eq!(status, "fail");
        assert!(
            message.contains("keycloak-admin-password in labels"),
            "{message}"
        );
        assert_eq!(leak_message("app").0, "pass");

        containers.remove(&env_leak);
        containers.remove(&label_leak);
        let (code, checks) = checks_of(containers.verify(&p, port), &p);
        assert_eq!(code, 0, "{checks:#?}");
    }

    #[test]
    fn an_unhealthy_container_fails_docker_and_http_health_until_replaced() {
        if !ready(
            "verify::docker::an_unhealthy_container_fails_docker_and_http_health_until_replaced",
        ) {
            return;
        }
        let p = loaded();
        // The demo app answers 503 on /health while a required secret is missing.
        p.write("unhealthy.env", "DEMO_REQUIRED_SECRETS=no-such-secret\n");
        let mut containers = Containers::new("health");
        let (sick, port) = containers.run(&p, "app", Some("unhealthy.env"), None);
        containers.wait_health(&sick, "unhealthy");
        let (code, checks) = checks_of(containers.verify(&p, port), &p);
        assert_eq!(code, 1);
        assert_status(&checks, "health", "(app)", "fail");
        let http = checks
            .iter()
            .find(|c| c["category"] == "health" && c["subject"] == "service app")
            .unwrap();
        assert_eq!(http["status"], "fail", "{http}");
        assert!(http["message"].as_str().unwrap().contains("503"), "{http}");

        containers.remove(&sick);
        let (healthy, port) = containers.run(&p, "app", None, None);
        containers.wait_health(&healthy, "healthy");
        let (code, checks) = checks_of(containers.verify(&p, port), &p);
        assert_eq!(code, 0, "{checks:#?}");
        assert_status(&checks, "health", "(app)", "pass");
        assert_status(&checks, "health", "service app", "pass");
    }

    impl Containers {
        /// The host port Docker published for 8000/tcp (a restart may change it).
        fn port_of(id: &str) -> u16 {
            let out = Command::new("docker")
                .args(["port", id, "8000/tcp"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .and_then(|l| l.rsplit(':').next())
                .and_then(|p| p.trim().parse().ok())
                .expect("a published port")
        }
    }
}

/// `verify` asks Docker Compose v2 for `config` with the same flags and fails on any
/// difference in what decides secrets; a Compose that refuses the project is a warning, and
/// without Compose v2 the check says it was skipped. A stand-in `docker-compose`, named by
/// `COMPOSE_SECRETS_COMPOSE`, plays Compose here, so each answer is certain.
#[test]
fn the_model_is_cross_checked_against_compose_v2() {
    use std::os::unix::fs::PermissionsExt as _;
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app: {image: alpine, secrets: [a]}\nsecrets:\n  a: {file: ./a.txt}\n",
    );
    p.write(".env", "A=aaaaaaaa\n");
    p.cmd(&["load"]).run().success();
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("docker-compose");
    let write_fake = |script: &str| {
        std::fs::write(&fake, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let name = p
        .dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_lowercase()
        .replace(['.', '+'], "");
    let config = |file: &str| {
        format!(
            "case \"$*\" in *version*) echo 2.99.0 ;; *) cat <<'EOF'\n{{\"name\": \"{name}\", \"services\": {{\"app\": {{\"secrets\": [{{\"source\": \"a\", \"target\": \"/run/secrets/a\"}}]}}}}, \"secrets\": {{\"a\": {{\"file\": \"{file}\"}}}}}}\nEOF\n;; esac"
        )
    };
    let verify = |compose: &str| {
        p.cmd(&["verify", "--no-docker"])
            .env("COMPOSE_SECRETS_COMPOSE", compose)
            .run()
    };
    let fake_path = fake.display().to_string();
    let a = p.path("a.txt").display().to_string();

    write_fake(&config(&a));
    let out = verify(&fake_path);
    assert!(
        out.stdout
            .contains("the model matches `docker-compose 2.99.0 config`"),
        "{}",
        out.stdout
    );

    write_fake(&config("/elsewhere/a.txt"));
    let out = verify(&fake_path).code(1);
    assert!(
        out.stdout
            .contains("secret a: Compose has {\"file\":\"/elsewhere/a.txt\"}"),
        "{}",
        out.stdout
    );

    write_fake(
        "case \"$*\" in *version*) echo 2.99.0 ;; *) echo 'service \"app\" refers to undefined volume' >&2; exit 15 ;; esac",
    );
    let out = verify(&fake_path);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("could not cross-check"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        line.starts_with("WARN") && line.contains("refers to undefined volume"),
        "{line}"
    );

    write_fake("echo 'docker-compose version 1.29.2'; exit 0");
    let out = verify(&fake_path);
    assert!(
        out.stdout.contains("is not Docker Compose v2"),
        "{}",
        out.stdout
    );

    let out = verify("none");
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("COMPOSE_SECRETS_COMPOSE=none"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(line.starts_with("SKIP"), "{line}");
}

/// With the real Compose v2, the cross-check passes on a project using the features the
/// model resolves (override file, include, extends, profiles, interpolation).
#[test]
fn the_model_matches_the_real_compose_v2() {
    let Some((_bin, path)) = crate::support::compose::path_with_compose_v2(
        "verify::the_model_matches_the_real_compose_v2",
    ) else {
        return;
    };
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "name: crosscheck\ninclude: [lib/compose.yaml]\nservices:\n  app:\n    image: alpine\n    secrets: [a, {source: b, target: bee, mode: 0440}]\n  \
         worker:\n    extends: {file: base.yaml, service: base}\n  old:\n    image: alpine\n    profiles: [legacy]\n    secrets: [c]\n\
         secrets:\n  a: {file: ./a.txt}\n  b: {file: \"${B_DIR:-conf}/b.txt\"}\n  c: {file: ./c.txt}\n",
    );
    p.write(
        "compose.override.yaml",
        "services:\n  app:\n    secrets: [a]\n",
    );
    p.write(
        "base.yaml",
        "services:\n  base:\n    image: alpine\n    secrets: [a]\n",
    );
    p.write(
        "lib/compose.yaml",
        "services:\n  lib:\n    image: alpine\n    secrets: [l]\nsecrets:\n  l: {file: ./l.txt}\n",
    );
    p.write(".env", "A=aaaaaaaa\nB=bbbbbbbb\nL=llllllll\nC=cccccccc\n");
    let out = p.cmd(&["verify", "--no-docker"]).env("PATH", &path).run();
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains(" compose "))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        line.starts_with("PASS") && line.contains("secrets 3, services 3"),
        "{line}\n{}",
        out.stdout
    );
}
