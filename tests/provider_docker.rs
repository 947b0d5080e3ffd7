//! compose-secrets as a Compose provider service, on the real engine with the real Compose v2
//! run as a docker CLI plugin (`docker compose`), from a fresh copy of the repository's demo:
//! `up` loads before the app exists, a second `up` changes nothing, no value reaches Compose's
//! output, `rotate` restarts the demo's container, and a store that cannot be read, or another
//! project's name, stops `up` before any container is created, with every file as it was.
//!
//! Each stack gets its own project name (the copy's `name:`) and port, and is removed on drop.

use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{assert_same_files, is_root, scrub, Project, BIN, DEMO_SECRETS};
use crate::support::docker::{docker_available_or_skip, ensure_demo_image, fingerprint};

/// The demo from a fresh copy (no `.env`, no `.runtime`), and how to run `docker compose` on it.
struct Stack {
    p: Project,
    name: String,
    port: u16,
    uid: u32,
    /// `DOCKER_CONFIG` holding `cli-plugins/docker-compose`, when the docker CLI has no plugin.
    plugins: Option<tempfile::TempDir>,
    compose: crate::support::compose::ComposeV2,
}

impl Stack {
    fn new(test: &str, tag: &str) -> Option<Stack> {
        if !docker_available_or_skip(test) {
            return None;
        }
        let compose = crate::support::compose::compose_v2_or_skip(test)?;
        ensure_demo_image();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let name = format!("csprov{tag}{}x{port}", std::process::id());
        let p = Project::demo();
        let yaml = p.read_string("compose.yaml");
        p.write(
            "compose.yaml",
            yaml.replace(
                &format!("\nname: {}\n", p.name()),
                &format!("\nname: {name}\n"),
            ),
        );
        assert_eq!(p.name(), name);
        // The container's user, as `make` chooses it; in .env.demo so that `ensure` copies it
        // for the later compose-secrets runs (Compose's first `up` reads no .env yet).
        let uid = if is_root() {
            1000
        } else {
            std::fs::metadata("/proc/self").unwrap().uid()
        };
        let mut template = p.read_string(".env.demo");
        template.push_str(&format!(
            "DEMO_APP_PORT={port}\nDEMO_UID={uid}\nDEMO_GID={uid}\n"
        ));
        p.write(".env.demo", template);
        let plugins = compose.prefix.is_empty().then(|| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("cli-plugins")).unwrap();
            std::os::unix::fs::symlink(
                &compose.program,
                dir.path().join("cli-plugins/docker-compose"),
            )
            .unwrap();
            dir
        });
        Some(Stack {
            p,
            name,
            port,
            uid,
            plugins,
            compose,
        })
    }

    /// `docker compose ARGS` in the project directory, with the binary under test first on
    /// `PATH` and none of the developer's Compose, Azure or demo variables.
    fn compose(&self, args: &[&str]) -> crate::harness::Output {
        let mut cmd = Command::new("docker");
        scrub(&mut cmd);
        match &self.plugins {
            Some(dir) => {
                cmd.env("DOCKER_CONFIG", dir.path());
            }
            None => {
                cmd.envs(self.compose.extra_env.iter().map(|(k, v)| (k, v)));
            }
        }
        let bin_dir = PathBuf::from(BIN).parent().unwrap().to_path_buf();
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.arg("compose")
            .args(args)
            .current_dir(self.p.dir.path())
            .env("PATH", format!("{}:{path}", bin_dir.display()))
            .env("PWD", self.p.dir.path())
            .env("DEMO_APP_PORT", self.port.to_string())
            .env("DEMO_UID", self.uid.to_string())
            .env("DEMO_GID", self.uid.to_string());
        let out = cmd.output().expect("run docker compose");
        crate::harness::Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn values(&self) -> Vec<String> {
        DEMO_SECRETS
            .iter()
            .map(|(_, key)| self.p.env_value(key))
            .collect()
    }

    /// The project's containers, running or not.
    fn containers(&self) -> Vec<String> {
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter"])
            .arg(format!("label=com.docker.compose.project={}", self.name))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    fn started_at(&self, container: &str) -> String {
        let out = Command::new("docker")
            .args(["inspect", "--format", "{{.State.StartedAt}}", container])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The body of `/health` once the app answers it.
    fn health(&self) -> String {
        let url = format!("http://127.0.0.1:{}/health", self.port);
        let started = Instant::now();
        loop {
            let out = Command::new("curl")
                .args(["-sf", "--max-time", "2", &url])
                .output()
                .unwrap();
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "{url} never answered"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Each secret file's (inode, mtime in ns): a rewrite changes both.
    fn file_stamps(&self) -> Vec<(u64, i64)> {
        DEMO_SECRETS
            .iter()
            .map(|(name, _)| {
                let m =
                    std::fs::metadata(self.p.path(&format!(".runtime/secrets/{name}"))).unwrap();
                (m.ino(), m.mtime() * 1_000_000_000 + m.mtime_nsec())
            })
            .collect()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "--volumes", "--remove-orphans", "--timeout", "1"]);
    }
}

#[track_caller]
fn succeeded(what: &str, out: crate::harness::Output) -> crate::harness::Output {
    assert_eq!(
        out.code, 0,
        "{what} failed\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    out
}

/// The Quick start on a fresh copy: `docker compose up -d` alone writes `.env` and the files
/// (0400, the app's owner) before the app is created; the app serves their fingerprints; no
/// value appears in Compose's output, verbose or not; a second `up` recreates and rewrites
/// nothing; and `rotate`, as the README runs it next, restarts the demo's container.
#[test]
fn docker_compose_up_alone_runs_the_demo_from_a_fresh_copy_docker() {
    let test = "provider_docker::docker_compose_up_alone_runs_the_demo_from_a_fresh_copy_docker";
    let Some(s) = Stack::new(test, "up") else {
        return;
    };
    assert!(!s.p.exists(".env") && !s.p.exists(".runtime"));
    let up = succeeded(
        "the first up",
        s.compose(&["--verbose", "--progress", "plain", "up", "-d"]),
    );
    let values = s.values();
    up.assert_no_values(&values);
    assert!(
        up.stderr.contains("written flask-secret-key"),
        "the provider's info lines show in Compose's progress: {}",
        up.stderr
    );
    for (name, _) in DEMO_SECRETS {
        let rel = format!(".runtime/secrets/{name}");
        assert_eq!(s.p.mode(&rel), 0o400, "{rel}");
        assert_eq!(s.p.owner(&rel), (s.uid, s.uid), "{rel}");
    }
    let health = s.health();
    for value in &values {
        assert!(
            health.contains(&fingerprint(value.as_bytes())),
            "the app serves the fingerprint of each value in .env: {health}"
        );
    }

    let containers = s.containers();
    assert_eq!(containers.len(), 1, "{containers:?}");
    let started = s.started_at(&containers[0]);
    let (stamps, env) = (s.file_stamps(), s.p.read(".env"));
    let again = succeeded(
        "the second up",
        s.compose(&["--verbose", "--progress", "plain", "up", "-d"]),
    );
    again.assert_no_values(&values);
    assert_eq!(
        s.containers(),
        containers,
        "the second up recreated the app"
    );
    assert_eq!(
        s.started_at(&containers[0]),
        started,
        "the app was restarted"
    );
    assert_eq!(s.file_stamps(), stamps, "a secret file was rewritten");
    assert_eq!(s.p.read(".env"), env, ".env was rewritten");

    let rotated = s.p.cmd(&["rotate", "flask-secret-key"]).run().success();
    assert!(
        rotated
            .stdout
            .contains(&format!("container {}-app-1: healthy", s.name)),
        "rotate restarted the demo's own container: {}",
        rotated.stdout
    );
    let new = s.p.env_value("FLASK_SECRET_KEY");
    rotated.assert_no_values(std::slice::from_ref(&new));
    assert_ne!(s.started_at(&containers[0]), started);
    assert!(s.health().contains(&fingerprint(new.as_bytes())));
}

/// Key Vault unreachable (a closed loopback port; its managed-identity endpoint closed too):
/// `up` fails with the provider's reason, the app is never created, and every file is as it
/// was.
#[test]
fn an_unreachable_key_vault_fails_up_before_the_app_is_created_docker() {
    let test =
        "provider_docker::an_unreachable_key_vault_fails_up_before_the_app_is_created_docker";
    let Some(s) = Stack::new(test, "kv") else {
        return;
    };
    // Files from a first, demo-mode `up`, then the stack removed: they must survive the failure.
    succeeded("the demo-mode up", s.compose(&["up", "-d"]));
    succeeded("down", s.compose(&["down", "--timeout", "1"]));
    assert!(s.containers().is_empty());
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut env = s.p.read_string(".env");
    env.push_str(&format!(
        "AZURE_USE_KEYVAULT=true\nAZURE_KEYVAULT_URL=https://127.0.0.1:{closed}/\n\
         AZURE_CREDENTIAL=managed-identity\nIDENTITY_ENDPOINT=http://127.0.0.1:{closed}/token\n\
         IDENTITY_HEADER=x\n"
    ));
    s.p.write(".env", env);
    let before = s.p.snapshot();
    let up = s.compose(&["--progress", "plain", "up", "-d"]);
    assert_ne!(up.code, 0, "up succeeded with the vault unreachable");
    up.assert_no_values(&s.values());
    assert!(
        up.stderr.contains("key vault") && up.stderr.contains("secrets"),
        "Compose shows the provider's reason: {}",
        up.stderr
    );
    assert!(s.containers().is_empty(), "the app was created");
    assert_same_files(&before, &s.p.snapshot());
}

/// `docker compose -p other up`: the project found from the working directory is named
/// otherwise, so the provider refuses, naming both, and nothing is created or written.
#[test]
fn another_project_name_is_refused_before_anything_is_written_docker() {
    let test = "provider_docker::another_project_name_is_refused_before_anything_is_written_docker";
    let Some(s) = Stack::new(test, "name") else {
        return;
    };
    let other = format!("{}-other", s.name);
    let before = s.p.snapshot();
    let up = s.compose(&["-p", &other, "--progress", "plain", "up", "-d"]);
    let _cleanup = s.compose(&["-p", &other, "down", "--timeout", "1"]);
    assert_ne!(up.code, 0, "up succeeded under another project's name");
    assert!(
        up.stderr.contains(&format!("`{other}`")) && up.stderr.contains(&format!("`{}`", s.name)),
        "the refusal names both projects: {}",
        up.stderr
    );
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=com.docker.compose.project={other}"))
        .output()
        .unwrap();
    assert!(out.stdout.is_empty(), "a container of {other} was created");
    assert_same_files(&before, &s.p.snapshot());
}
