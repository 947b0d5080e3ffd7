//! A real nginx (a Debian image built from Debian's packages, `scripts/debian-image.sh`)
//! serving TLS from the `key` and `fullchain` parts of a Key Vault certificate set through the
//! Python SDK against the emulator: `openssl s_client` sees the leaf and the chain, and after
//! a renewal through one `sync`, the new leaf; nginx restarted once.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::certificates::{kv, sdk_set, Pki};
use crate::harness::{repo_root, Project};
use crate::support::docker::{compose_command, docker_available_or_skip};
use crate::support::emulator::Emulator;

const NGINX_IMAGE: &str = "compose-secrets-test/nginx:bookworm";
/// A bound for a hung start, never a timing claim.
const PATIENCE: Duration = Duration::from_secs(120);

const NGINX_CONF: &str = "worker_processes 1;\nerror_log stderr;\npid /tmp/nginx.pid;\n\
events {}\nhttp {\n  access_log off;\n  server {\n    listen 8443 ssl;\n\
    ssl_certificate /run/secrets/tls-fullchain;\n    ssl_certificate_key /run/secrets/tls-key;\n\
    location / { return 200 \"ok\\n\"; }\n  }\n}\n";

struct Stack {
    p: Project,
    name: String,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = compose_command()
            .args([
                "-p",
                &self.name,
                "-f",
                "compose.yaml",
                "down",
                "-v",
                "-t",
                "1",
            ])
            .current_dir(self.p.dir.path())
            .output();
    }
}

/// What `openssl s_client` prints of the served chain: each `s:` subject line, in order.
fn served_subjects(port: u16) -> Vec<String> {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-showcerts",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("0 s:")
                .or_else(|| l.trim().strip_prefix("1 s:"))
                .or_else(|| l.trim().strip_prefix("2 s:"))
        })
        .map(|s| s.trim().to_string())
        .collect()
}

fn wait_for_subjects(port: u16, leaf_cn: &str) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let subjects = served_subjects(port);
        if subjects.first().is_some_and(|s| s.contains(leaf_cn)) {
            return subjects;
        }
        assert!(
            Instant::now() < deadline,
            "nginx never served {leaf_cn}: {subjects:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Build (or find) the nginx image; false, with a SKIPPED line, when no Debian mirror serves.
fn nginx_image_or_skip() -> bool {
    let built = Command::new(repo_root().join("scripts/debian-image.sh"))
        .args([NGINX_IMAGE, "nginx-light,openssl"])
        .output()
        .unwrap();
    if built.status.code() == Some(3) {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED (no Debian mirror to build {NGINX_IMAGE}): certificates_nginx: {}",
            String::from_utf8_lossy(&built.stderr).trim()
        );
        return false;
    }
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );

    true
}

/// The healthcheck of the first test: nginx completes a TLS handshake.
const HEALTHY: &str = "openssl s_client -connect 127.0.0.1:8443 </dev/null >/dev/null 2>&1";

/// A project whose nginx serves `tls-key` and `tls-fullchain` on a free loopback port,
/// healthy while `health` (a shell line) succeeds in it; not started.
fn nginx_stack(health: &str) -> (Stack, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = Project::empty();
    p.write("nginx.conf", NGINX_CONF);
    p.write(
        "compose.yaml",
        format!(
            r#"services:
  web:
    image: {NGINX_IMAGE}
    command: ["nginx", "-g", "daemon off;", "-c", "/etc/nginx/tls.conf"]
    ports: ["127.0.0.1:{port}:8443"]
    volumes: ["./nginx.conf:/etc/nginx/tls.conf:ro"]
    healthcheck:
      test: ["CMD", "sh", "-c", "{health}"]
      interval: 500ms
      timeout: 2s
      retries: 20
    secrets: [tls-key, tls-fullchain]
secrets:
  tls-key:
    file: ./.runtime/secrets/tls-key
    x-compose-secrets: {{ vault-name: web-tls, certificate: key }}
  tls-fullchain:
    file: ./.runtime/secrets/tls-fullchain
    x-compose-secrets: {{ vault-name: web-tls, certificate: fullchain }}
"#
        ),
    );
    let stack = Stack {
        p,
        name: format!("cscerts{}x{port}", std::process::id()),
    };
    (stack, port)
}

#[test]
fn nginx_serves_the_key_and_fullchain_and_a_renewal_through_sync() {
    if !docker_available_or_skip("certificates_nginx::nginx_serves_the_key_and_fullchain") {
        return;
    }
    if !nginx_image_or_skip() {
        return;
    }
    let pki = Pki::new();
    let emulator = Emulator::start(&[]);
    let first = pki.leaf_for_days("v1.app.test", 90);
    sdk_set(
        &emulator,
        "web-tls",
        "application/x-pem-file",
        &pki.pem_bundle(&first),
    );

    let (stack, port) = nginx_stack(HEALTHY);
    let run =
        |args: &[&str]| kv(&stack.p, &emulator, args).env("COMPOSE_PROJECT_NAME", &stack.name);
    run(&["load"]).run().success();
    let up = compose_command()
        .args(["-p", &stack.name, "-f", "compose.yaml", "up", "-d"])
        .current_dir(stack.p.dir.path())
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let subjects = wait_for_subjects(port, "v1.app.test");
    assert_eq!(subjects.len(), 3, "leaf, intermediate, root: {subjects:?}");
    assert!(subjects[1].contains("Test Intermediate CA"), "{subjects:?}");
    assert!(subjects[2].contains("Test Root CA"), "{subjects:?}");

    let renewed = pki.leaf_for_days("v2.app.test", 90);
    sdk_set(
        &emulator,
        "web-tls",
        "application/x-pem-file",
        &pki.pem_bundle(&renewed),
    );
    let out = run(&["sync", "--json"]).run().success();
    let json = out.json();
    let restarted: Vec<String> = json["extra"]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .flat_map(|c| c["restarted"].as_array().cloned().unwrap_or_default())
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        restarted.len(),
        1,
        "nginx restarted once for both parts: {json}"
    );
    // No waiting: the health gate already saw nginx serve the renewed files.
    let subjects = served_subjects(port);
    assert!(subjects[0].contains("v2.app.test"), "{subjects:?}");
    assert!(subjects[1].contains("Test Intermediate CA"), "{subjects:?}");
}

/// Healthy only while nginx serves the first leaf: a renewal it "rejects".
const SERVES_V1: &str = "openssl s_client -connect 127.0.0.1:8443 </dev/null 2>/dev/null \
                         | openssl x509 -noout -subject | grep -q v1.app.test";

#[test]
fn a_renewal_that_fails_nginx_health_gate_is_rolled_back_in_every_part() {
    if !docker_available_or_skip("certificates_nginx::a_renewal_that_fails_nginx_health_gate") {
        return;
    }
    if !nginx_image_or_skip() {
        return;
    }
    let pki = Pki::new();
    let emulator = Emulator::start(&[]);
    let pem = "application/x-pem-file";
    sdk_set(
        &emulator,
        "web-tls",
        pem,
        &pki.pem_bundle(&pki.leaf_for_days("v1.app.test", 90)),
    );
    let (stack, port) = nginx_stack(SERVES_V1);
    let run =
        |args: &[&str]| kv(&stack.p, &emulator, args).env("COMPOSE_PROJECT_NAME", &stack.name);
    run(&["load"]).run().success();
    let up = compose_command()
        .args([
            "-p",
            &stack.name,
            "-f",
            "compose.yaml",
            "up",
            "-d",
            "--wait",
        ])
        .current_dir(stack.p.dir.path())
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    wait_for_subjects(port, "v1.app.test");
    let files = |p: &Project| {
        ["tls-key", "tls-fullchain"].map(|f| p.read(&format!(".runtime/secrets/{f}")))
    };
    let before = files(&stack.p);

    sdk_set(
        &emulator,
        "web-tls",
        pem,
        &pki.pem_bundle(&pki.leaf_for_days("v2.app.test", 90)),
    );
    let out = run(&["sync", "--json"]).run().code(6);
    assert_eq!(
        files(&stack.p),
        before,
        "every part restored: {}",
        out.stderr
    );
    let subjects = served_subjects(port);
    assert!(
        subjects[0].contains("v1.app.test"),
        "the old leaf: {subjects:?}"
    );

    // The renewed version is held: the next sync applies nothing and restarts nothing.
    let out = run(&["sync", "--json"]).run();
    let json = out.json();
    for part in ["tls-key", "tls-fullchain"] {
        assert!(
            json["items"]
                .as_array()
                .expect("items")
                .iter()
                .any(|i| i["name"] == part && i["action"] == "held"),
            "{part} held: {json}"
        );
    }
    assert_eq!(files(&stack.p), before);
}
