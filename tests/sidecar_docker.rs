//! compose-secrets as a Compose service, from its FROM-scratch image (built by
//! `scripts/build-image.sh` when missing): a one-shot `load` service the app `depends_on` with
//! `condition: service_completed_successfully`, and a long-running `sync --watch` service with
//! the Docker socket and the project directory mounted, which restarts the app when `.env`
//! changes.

use std::time::{Duration, Instant};

use crate::harness::Project;
use crate::support::docker::{
    compose_command, ensure_product_image, fingerprint, ready, DEMO_IMAGE, PRODUCT_IMAGE,
};
use crate::support::stack::{free_port, health_on};

const PATIENCE: Duration = Duration::from_secs(180);

/// The app and compose-secrets in one Compose project, in demo mode (`.env` holds `S1`).
struct SidecarStack {
    p: Project,
    name: String,
    port: u16,
}

impl SidecarStack {
    fn new(value: &str) -> SidecarStack {
        let port = free_port();
        let name = format!("cssidecar{}x{port}", std::process::id());
        let p = Project::empty();
        // The project is mounted at its own path (`${PWD}`, as compose.sidecar.yaml does), and
        // `name:` gives Compose and compose-secrets in its container the same project name.
        p.write(
            "compose.yaml",
            format!(
                r#"name: {name}
services:
  secrets:
    image: {PRODUCT_IMAGE}
    command: ["load"]
    working_dir: ${{PWD}}
    volumes:
      - ${{PWD}}:${{PWD}}
  secrets-sync:
    image: {PRODUCT_IMAGE}
    command: ["sync", "--watch", "--interval", "1s", "--health-url", "http://{{ip}}:8000/health"]
    working_dir: ${{PWD}}
    volumes:
      - ${{PWD}}:${{PWD}}
      - /var/run/docker.sock:/var/run/docker.sock
    depends_on:
      secrets:
        condition: service_completed_successfully
  app:
    image: {DEMO_IMAGE}
    user: "1000:1000"
    ports: ["127.0.0.1:{port}:8000"]
    environment:
      DEMO_REQUIRED_SECRETS: s1
    depends_on:
      secrets:
        condition: service_completed_successfully
    secrets: [s1]
secrets:
  s1:
    file: ./.runtime/secrets/s1
    x-compose-secrets:
      owner: "1000:1000"
"#
            ),
        );
        p.write(".env", format!("S1={value}\n"));
        SidecarStack { p, name, port }
    }

    fn compose(&self, args: &[&str]) -> std::process::Output {
        compose_command()
            .args(["-p", &self.name, "-f", "compose.yaml"])
            .args(args)
            // As a shell in the project directory sets it: compose.yaml mounts ${PWD}.
            .env("PWD", self.p.dir.path())
            .current_dir(self.p.dir.path())
            .output()
            .unwrap()
    }

    fn seen(&self) -> Option<String> {
        let (_, body) = health_on(self.port)?;
        Some(body["secrets"]["s1"].as_str()?.to_string())
    }

    fn wait_seen(&self, wanted: &str) {
        let deadline = Instant::now() + PATIENCE;
        while self.seen().as_deref() != Some(wanted) {
            assert!(
                Instant::now() < deadline,
                "the app never reported {wanted}; logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn logs(&self) -> String {
        let out = self.compose(&["logs", "--no-color"]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for SidecarStack {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "-t", "1"]);
    }
}

fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{label}-{nanos:x}-{}", std::process::id())
}

#[test]
fn the_image_loads_before_the_app_starts_and_a_watching_service_follows_env_changes() {
    if !ready("sidecar_docker::the_image_loads_before_the_app_starts_and_a_watching_service_follows_env_changes") {
        return;
    }
    ensure_product_image();
    let first = unique("first-value");
    let stack = SidecarStack::new(&first);
    // Compose creates the app's container before starting the one-shot, and the secret's file
    // must exist by then: the first time, the one-shot runs on its own (as documented).
    let out = stack.compose(&["run", "--rm", "secrets"]);
    assert!(
        out.status.success(),
        "compose run secrets: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stack.p.read_string(".runtime/secrets/s1"), first);
    // A value changed before `up`: the one-shot must load it before the app starts, or the
    // app (whose bind mount is made at start) would report the first one.
    let second = unique("second-value");
    stack.p.write(".env", format!("S1={second}\n"));
    let out = stack.compose(&["up", "-d"]);
    assert!(
        out.status.success(),
        "compose up: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        stack.logs()
    );
    stack.wait_seen(&fingerprint(second.as_bytes()));
    assert_eq!(stack.p.read_string(".runtime/secrets/s1"), second);
    assert_eq!(stack.p.mode(".runtime/secrets/s1"), 0o400);
    assert_eq!(stack.p.owner(".runtime/secrets/s1"), (1000, 1000));
    let ps = stack.compose(&[
        "ps",
        "-a",
        "--format",
        "{{.Service}} {{.State}} {{.ExitCode}}",
    ]);
    let ps = String::from_utf8_lossy(&ps.stdout).into_owned();
    assert!(ps.contains("secrets exited 0"), "{ps}");

    // The watching service applies a change to `.env`, restarting the app through the socket.
    let third = unique("third-value");
    stack.p.write(".env", format!("S1={third}\n"));
    stack.wait_seen(&fingerprint(third.as_bytes()));
    assert_eq!(stack.p.read_string(".runtime/secrets/s1"), third);
    // The watcher's line comes once the restarted app passed its health gate.
    let deadline = Instant::now() + PATIENCE;
    while !stack.logs().contains("s1: synced") {
        assert!(
            Instant::now() < deadline,
            "no change line:\n{}",
            stack.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let logs = stack.logs();
    for value in [&first, &second, &third] {
        assert!(
            !logs.contains(value.as_str()),
            "a value in the logs:\n{logs}"
        );
    }
    let audit = stack.p.read_string(".runtime/audit.log");
    assert!(audit.contains("\"action\":\"sync\""), "{audit}");

    // compose-secrets on the host agrees with the one in the container on every path: nothing
    // to apply, no stray or foreign directory in verify.
    let out = stack
        .p
        .cmd(&["sync", "--json"])
        .env("COMPOSE_PROJECT_NAME", &stack.name)
        .run()
        .success();
    assert_eq!(
        out.json()["extra"]["changes"],
        serde_json::json!([]),
        "{}",
        out.stdout
    );
    // (.env was written by this test, not by `ensure`: give it the mode verify expects.)
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(stack.p.path(".env"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = stack.p.cmd(&["verify", "--no-docker", "--json"]).run();
    let verified = out.json();
    let failed: Vec<&serde_json::Value> = verified["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}
