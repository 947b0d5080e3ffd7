//! The repository's demo stack, end to end, the way that works on every Compose: `ensure`,
//! `load`, `up`, health, `rotate`, `verify`, `down`, on Docker Compose v2 (compose.yaml, whose
//! provider service then finds nothing to change) and on v1 (compose.legacy.yaml, which has no
//! provider service). Both tools read the project's one `.env` (project name, port, uid), so
//! they agree on everything. `provider_docker` runs the Quick start itself: `up` alone.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::Project;
use crate::support::docker::{
    compose_command, compose_v1_command, docker_available_or_skip, ensure_demo_image,
};

/// Brings the stack down (with its volumes) however the test ends.
struct Down {
    compose: fn() -> Command,
    file: &'static str,
    dir: std::path::PathBuf,
}

impl Drop for Down {
    fn drop(&mut self) {
        let _ = with_provider_on_path((self.compose)())
            .args(["-f", self.file])
            .args(["down", "--volumes", "--remove-orphans", "--timeout", "1"])
            .current_dir(&self.dir)
            .output();
    }
}

fn v1() -> Command {
    compose_v1_command().expect("Compose v1")
}

/// compose.yaml's provider service runs `compose-secrets` from `PATH`: the binary under test.
fn with_provider_on_path(mut command: Command) -> Command {
    let bin_dir = std::path::Path::new(crate::harness::BIN).parent().unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    command.env("PATH", format!("{}:{path}", bin_dir.display()));
    command
}

fn run_demo(test: &str, compose: fn() -> Command, file: &'static str, tag: &str) {
    if !docker_available_or_skip(test) {
        return;
    }
    ensure_demo_image();
    let p = Project::demo();
    p.write(
        "compose.legacy.yaml",
        std::fs::read(crate::harness::repo_root().join("compose.legacy.yaml")).unwrap(),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    p.cmd(&["ensure"]).run().success();
    // What the Makefile and the README's "change the port" step do: settings in the one .env.
    let name = format!("csdemo{tag}{}", std::process::id());
    let mut env = p.read_string(".env");
    env.push_str(&format!(
        "COMPOSE_PROJECT_NAME={name}\nDEMO_APP_PORT={port}\nDEMO_UID=1000\nDEMO_GID=1000\n"
    ));
    p.write(".env", env);
    p.cmd(&["load"]).run().success();
    let _down = Down {
        compose,
        file,
        dir: p.dir.path().to_path_buf(),
    };
    let up = with_provider_on_path(compose())
        .args(["-f", file, "up", "-d"])
        .current_dir(p.dir.path())
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{tag}: up failed: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let health = format!("http://127.0.0.1:{port}/health");
    let before = wait_healthy(&health);
    assert!(
        before.contains(&crate::support::docker::fingerprint(
            p.env_value("FLASK_SECRET_KEY").as_bytes()
        )),
        "{tag}: the container serves the loaded value: {before}"
    );

    let out = p
        .cmd(&["rotate", "flask-secret-key", "--json"])
        .run()
        .success();
    let new = p.env_value("FLASK_SECRET_KEY");
    out.assert_no_values(std::slice::from_ref(&new));
    let after = wait_healthy(&health);
    assert!(
        after.contains(&crate::support::docker::fingerprint(new.as_bytes())),
        "{tag}: after rotate the container serves the new value: {after}"
    );
    // Compose and compose-secrets read one .env: the health URL reached the published port.
    p.cmd(&["verify"]).run().success();
}

fn wait_healthy(url: &str) -> String {
    let started = Instant::now();
    loop {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "2", url])
            .output()
            .unwrap();
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{url} never answered"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn demo_quickstart_rotate_and_verify_on_compose_v2_docker() {
    run_demo(
        "demo_docker::demo_quickstart_rotate_and_verify_on_compose_v2_docker",
        compose_command,
        "compose.yaml",
        "v2",
    );
}

/// Compose v1 (1.29, end of life) is kept working: the same demo, smoke-tested.
#[test]
fn demo_quickstart_rotate_and_verify_on_compose_v1_docker() {
    let test = "demo_docker::demo_quickstart_rotate_and_verify_on_compose_v1_docker";
    if !docker_available_or_skip(test) {
        return;
    }
    if compose_v1_command().is_none() {
        if std::env::var("COMPOSE_SECRETS_SKIP_COMPOSE_V1").as_deref() == Ok("1") {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("SKIPPED (COMPOSE_SECRETS_SKIP_COMPOSE_V1=1): {test}\n").as_bytes(),
            );
            return;
        }
        panic!(
            "{test} needs docker-compose v1 (Debian's docker-compose package; .ci/run installs it), \
             or set COMPOSE_SECRETS_SKIP_COMPOSE_V1=1 to skip it"
        );
    }
    run_demo(test, v1, "compose.legacy.yaml", "v1");
}
