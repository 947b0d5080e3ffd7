//! Docker Swarm target on a single-node swarm the test makes (and leaves): versioned swarm
//! secrets, a 3-replica rotation by start-first rolling update with zero failed requests,
//! automatic rollback, no second copy of an unchanged value, and a certificate's binary `pfx`
//! part mounted byte for byte.

use std::io::Write as _;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::Project;
use crate::support::stack::free_port;

const IMAGE: &str = crate::support::docker::DEMO_IMAGE;

/// Opts in to the Swarm tests: they run `docker swarm init` on the engine (and leave the swarm
/// again), global state a plain `make test` must not change behind the user's back.
const OPT_IN_VARIABLE: &str = "COMPOSE_SECRETS_SWARM_TESTS";

/// Whether the Swarm tests were asked for: only the exact value `1`, like the other switches.
fn swarm_opted_in(value: Option<&str>) -> bool {
    value == Some("1")
}

/// Skip unless opted in, or on the Docker opt-out; otherwise a missing engine is a failure
/// that says why.
fn docker_or_skip(test: &str) -> bool {
    if !swarm_opted_in(std::env::var(OPT_IN_VARIABLE).ok().as_deref()) {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED (set {OPT_IN_VARIABLE}=1 to run it; it runs `docker swarm init` on this \
             engine and leaves the swarm afterwards): {test}"
        );
        return false;
    }
    if !crate::support::docker::docker_available_or_skip(test) {
        return false;
    }
    crate::support::docker::ensure_demo_image();
    true
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn swarm_active() -> bool {
    docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).trim() == "active"
}

/// A single-node swarm and one deployed stack, torn down (and the swarm left, if we made it) on drop.
struct SwarmStack {
    stack: String,
    made_swarm: bool,
    port: u16,
    /// Replicas of the stack's `web` service.
    replicas: usize,
}

impl SwarmStack {
    fn deploy(p: &Project, reject_prefix: &str) -> SwarmStack {
        let guard = SwarmStack::start(3);
        let port = guard.port;
        p.write(
            "compose.yaml",
            format!(
                r#"version: "3.8"
services:
  web:
    image: {IMAGE}
    environment:
      DEMO_REQUIRED_SECRETS: s1
      DEMO_REJECT_PREFIX: "{reject_prefix}"
    secrets:
      - source: s1
        target: s1
        uid: "1000"
        gid: "1000"
        mode: 0400
    deploy:
      replicas: 3
  lb:
    image: {IMAGE}
    command: ["proxy", "--listen", "0.0.0.0:8080", "--upstream", "tasks.web:8000"]
    healthcheck:
      disable: true
    ports:
      - target: 8080
        published: {port}
        mode: host
secrets:
  s1:
    file: ./.runtime/secrets/s1
"#
            ),
        );
        p.write(".env.demo", "S1=\n");
        p.cmd(&["ensure"]).run().success();
        p.cmd(&["--target", "compose", "load"]).run().success();
        guard.deploy_stack(p);
        guard
    }

    /// A swarm (made if the engine is in none), a stack name and a free port, with nothing
    /// deployed yet; whatever the stack gets is removed on drop.
    fn start(replicas: usize) -> SwarmStack {
        let made_swarm = !swarm_active();
        if made_swarm {
            docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        }
        let port = free_port();
        SwarmStack {
            stack: format!("cs{}x{}", std::process::id(), port),
            made_swarm,
            port,
            replicas,
        }
    }

    /// `docker stack deploy` of the project's compose.yaml, then wait until it is healthy.
    fn deploy_stack(&self, p: &Project) {
        let out = Command::new("docker")
            .args([
                "stack",
                "deploy",
                "--resolve-image",
                "never",
                "-c",
                "compose.yaml",
                &self.stack,
            ])
            .current_dir(p.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "stack deploy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.wait_healthy();
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/health", self.port)
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let replicas = docker(&[
                "service",
                "ls",
                "--filter",
                &format!("name={}_web", self.stack),
                "--format",
                "{{.Replicas}}",
            ]);
            let all = format!("{0}/{0}", self.replicas);
            if replicas.trim() == all && get(&self.url()).is_some_and(|(s, _)| s == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "stack {} never became healthy",
                self.stack
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Swarm secrets of the stack: (name, version label).
    fn secrets(&self) -> Vec<(String, String)> {
        docker(&["secret", "ls", "--format", "{{.Name}}"])
            .lines()
            .filter(|n| n.starts_with(&format!("{}_", self.stack)))
            .map(|n| {
                let label = docker(&[
                    "secret",
                    "inspect",
                    "--format",
                    "{{index .Spec.Labels \"com.compose-secrets.version\"}}",
                    n,
                ]);
                (n.to_string(), label.trim().to_string())
            })
            .collect()
    }

    fn web_secret_names(&self) -> Vec<String> {
        let json = docker(&[
            "service",
            "inspect",
            "--format",
            "{{json .Spec.TaskTemplate.ContainerSpec.Secrets}}",
            &format!("{}_web", self.stack),
        ]);
        let mounts: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        mounts
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                assert_eq!(m["File"]["Name"], "s1", "same target");
                assert_eq!(m["File"]["UID"], "1000", "same uid");
                assert_eq!(m["File"]["Mode"], 256, "same mode (0400)");
                m["SecretName"].as_str().unwrap().to_string()
            })
            .collect()
    }

    /// Fingerprints of `s1` the replicas report, sampled through the proxy.
    fn fingerprints(&self) -> Vec<String> {
        self.fingerprints_of("s1")
    }

    /// Fingerprints of `secret` the replicas report, sampled through the proxy.
    fn fingerprints_of(&self, secret: &str) -> Vec<String> {
        let mut seen = Vec::new();
        for _ in 0..12 {
            if let Some((200, body)) = get(&self.url()) {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                let fp = v["secrets"][secret]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if !seen.contains(&fp) {
                    seen.push(fp);
                }
            }
        }
        seen
    }
}

impl Drop for SwarmStack {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["stack", "rm", &self.stack])
            .output();
        // Services must be gone before their secrets can be removed.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let left = Command::new("docker")
                .args([
                    "service",
                    "ls",
                    "-q",
                    "--filter",
                    &format!("label=com.docker.stack.namespace={}", self.stack),
                ])
                .output()
                .map(|o| o.stdout.is_empty())
                .unwrap_or(true);
            if left {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let names = Command::new("docker")
            .args(["secret", "ls", "--format", "{{.Name}}"])
            .output();
        if let Ok(names) = names {
            for name in String::from_utf8_lossy(&names.stdout).lines() {
                if name.starts_with(&format!("{}_", self.stack)) {
                    let _ = Command::new("docker").args(["secret", "rm", name]).output();
                }
            }
        }
        if self.made_swarm {
            let _ = Command::new("docker")
                .args(["swarm", "leave", "--force"])
                .output();
        }
    }
}

/// A tiny HTTP GET on loopback: (status, body), or None when nothing answered.
fn get(url: &str) -> Option<(u16, String)> {
    use std::io::Read as _;
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let addr: std::net::SocketAddr = host.parse().ok()?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Some((status, body))
}

/// Poll `url` every 50 ms until stopped; returns (requests, failed).
fn poller(url: String) -> (Arc<AtomicBool>, std::thread::JoinHandle<(usize, usize)>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let handle = std::thread::spawn(move || {
        let total = AtomicUsize::new(0);
        let failed = AtomicUsize::new(0);
        while !flag.load(Ordering::SeqCst) {
            total.fetch_add(1, Ordering::SeqCst);
            if get(&url).is_none_or(|(s, _)| s != 200) {
                failed.fetch_add(1, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (total.into_inner(), failed.into_inner())
    });
    (stop, handle)
}

fn fingerprint(value: &str) -> String {
    crate::support::docker::fingerprint(value.as_bytes())
}

#[test]
fn swarm_rotation_of_three_replicas_has_zero_failed_requests_and_keeps_one_copy_per_version() {
    if !docker_or_skip("swarm::swarm_rotation_of_three_replicas_has_zero_failed_requests_and_keeps_one_copy_per_version") {
        return;
    }
    let p = Project::empty();
    let swarm = SwarmStack::deploy(&p, "");
    let old = p.env_value("S1");
    assert_eq!(swarm.fingerprints(), vec![fingerprint(&old)]);

    // load on the swarm: one versioned copy of the current value, and never a second one.
    let stack = swarm.stack.clone();
    let run = |args: &[&str]| p.cmd(args).env("COMPOSE_PROJECT_NAME", &stack);
    run(&["--target", "swarm", "load"])
        .run()
        .success()
        .stdout_has("swarm-created");
    run(&["--target", "swarm", "load"])
        .run()
        .success()
        .stdout_has("swarm-unchanged");
    let versions_before = swarm.secrets();

    let (stop, handle) = poller(swarm.url());
    std::thread::sleep(Duration::from_millis(500));
    let out = run(&["rotate", "s1", "--health-timeout", "60"]).run();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let (total, failed) = handle.join().unwrap();
    let _ = writeln!(
        std::io::stderr(),
        "swarm rotation: {total} requests during the rotation, {failed} failed"
    );
    let out = out.success();
    assert!(out.stdout.contains("converged"), "{}", out.stdout);
    assert!(
        total >= 20,
        "the poller ran through the rotation ({total} requests)"
    );
    assert_eq!(
        failed, 0,
        "a client polling every 50 ms saw failed requests"
    );

    let new = p.env_value("S1");
    assert_ne!(new, old);
    assert_eq!(
        swarm.fingerprints(),
        vec![fingerprint(&new)],
        "every replica holds the new value"
    );
    let names = swarm.web_secret_names();
    let after = swarm.secrets();
    assert_eq!(
        after.len(),
        1,
        "old versions are removed after success: {after:?} (before: {versions_before:?})"
    );
    assert_eq!(
        names,
        vec![after[0].0.clone()],
        "the service mounts the new version"
    );
    assert!(
        !after[0].1.is_empty(),
        "the swarm secret is labelled with its version"
    );
    run(&["--target", "swarm", "load"])
        .run()
        .success()
        .stdout_has("swarm-unchanged");
    assert_eq!(
        swarm.secrets().len(),
        1,
        "load made no second copy of the rotated value"
    );

    // verify on Swarm: the service mounts the current version and nothing stale is left.
    let out = run(&["--target", "swarm", "verify", "--json"]).run();
    let checks = out.json()["checks"].as_array().unwrap().clone();
    let swarm_checks: Vec<_> = checks.iter().filter(|c| c["category"] == "swarm").collect();
    assert!(!swarm_checks.is_empty(), "{checks:#?}");
    assert!(
        swarm_checks.iter().all(|c| c["status"] == "pass"),
        "{swarm_checks:#?}"
    );
}

#[test]
fn swarm_rotation_that_breaks_the_service_is_rolled_back_everywhere() {
    if !docker_or_skip("swarm::swarm_rotation_that_breaks_the_service_is_rolled_back_everywhere") {
        return;
    }
    let p = Project::empty();
    let swarm = SwarmStack::deploy(&p, "bad-");
    let old = p.env_value("S1");
    let before = swarm.web_secret_names();
    let stack = swarm.stack.clone();
    let out = p
        .cmd(&["rotate", "s1", "--value-stdin", "--health-timeout", "60"])
        .env("COMPOSE_PROJECT_NAME", &stack)
        .stdin("bad-value-the-service-rejects")
        .run()
        .code(6);
    assert!(out.stderr.contains("rolled back"), "{}", out.stderr);
    assert!(!out.stderr.contains("bad-value-the-service-rejects"));
    assert_eq!(
        p.env_value("S1"),
        old,
        "the source holds the previous value again"
    );
    assert_eq!(
        p.read_string(".runtime/secrets/s1"),
        old,
        "the file holds the previous value again"
    );
    swarm.wait_healthy();
    assert_eq!(
        swarm.web_secret_names(),
        before,
        "the service mounts the previous secret again"
    );
    assert_eq!(swarm.fingerprints(), vec![fingerprint(&old)]);
    assert_eq!(
        swarm.secrets().len(),
        1,
        "the rejected version's swarm secret is removed"
    );
}

/// `--no-restart` on a swarm: `.env` and the file take the new value, and the stack is left
/// as it runs (no new swarm secret, the service not updated); the next `load` on the swarm
/// rolls it out.
#[test]
fn a_no_restart_rotation_on_a_swarm_leaves_the_service_alone() {
    if !docker_or_skip("swarm::a_no_restart_rotation_on_a_swarm_leaves_the_service_alone") {
        return;
    }
    let p = Project::empty();
    let swarm = SwarmStack::deploy(&p, "bad-");
    let (mounted, secrets) = (swarm.web_secret_names(), swarm.secrets());
    let old = p.env_value("S1");
    p.cmd(&["rotate", "s1", "--no-restart"])
        .env("COMPOSE_PROJECT_NAME", &swarm.stack)
        .run()
        .success();
    let new = p.env_value("S1");
    assert_ne!(new, old);
    assert_eq!(p.read_string(".runtime/secrets/s1"), new);
    assert_eq!(
        swarm.web_secret_names(),
        mounted,
        "the service was not updated"
    );
    assert_eq!(swarm.secrets(), secrets, "no swarm secret was made");
    assert_eq!(swarm.fingerprints(), vec![fingerprint(&old)]);
}

/// The README's Swarm recipe as written: `load`, `docker stack deploy` (which makes the
/// unversioned `<stack>_s1` from the file), then `load` on the swarm adopts it onto a
/// versioned secret, and `verify` passes.
#[test]
fn the_readme_recipe_ends_in_a_passing_verify() {
    if !docker_or_skip("swarm::the_readme_recipe_ends_in_a_passing_verify") {
        return;
    }
    let p = Project::empty();
    let swarm = SwarmStack::deploy(&p, "");
    let stack = swarm.stack.clone();
    let run = |args: &[&str]| p.cmd(args).env("COMPOSE_PROJECT_NAME", &stack);
    let before = run(&["verify"]).run();
    assert!(
        before
            .stdout
            .contains(&format!("mounts {stack}_s1, not the current version")),
        "straight after deploy the unversioned secret is named:\n{}",
        before.stdout
    );
    run(&["load"])
        .run()
        .success()
        .stdout_has("swarm-updated")
        .stdout_has(&format!("swarm-removed  s1  ({stack}_s1)"));
    swarm.wait_healthy();
    let after = run(&["verify"]).run();
    assert!(
        after.stdout.contains("mounts the current version"),
        "{}",
        after.stdout
    );
    let failing: Vec<&str> = after
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAIL"))
        .collect();
    assert!(
        failing.is_empty(),
        "verify fails after the recipe:\n{}",
        after.stdout
    );
    after.success();
}

/// A stack whose one `web` replica needs the `pfx` part (binary PKCS#12) of the Key Vault
/// certificate `web-tls`, behind a proxy on `port` (host mode).
fn pfx_stack(port: u16) -> String {
    format!(
        r#"version: "3.8"
services:
  web:
    image: {IMAGE}
    environment:
      DEMO_REQUIRED_SECRETS: tls-pfx
    secrets:
      - source: tls-pfx
        target: tls-pfx
        uid: "1000"
        gid: "1000"
        mode: 0400
  lb:
    image: {IMAGE}
    command: ["proxy", "--listen", "0.0.0.0:8080", "--upstream", "tasks.web:8000"]
    healthcheck:
      disable: true
    ports:
      - target: 8080
        published: {port}
        mode: host
secrets:
  tls-pfx:
    file: ./.runtime/secrets/tls-pfx
    x-compose-secrets: {{ vault-name: web-tls, certificate: pfx }}
"#
    )
}

/// A certificate's `pfx` part is not text: `load` on the swarm makes its swarm secret from the
/// value's bytes when it fetched it and from the file's bytes when it did not, and the service
/// rolled onto that secret reads exactly what the file holds.
#[test]
fn a_pfx_part_loaded_twice_on_the_swarm_holds_the_file_s_bytes() {
    if !docker_or_skip("swarm::a_pfx_part_loaded_twice_on_the_swarm_holds_the_file_s_bytes") {
        return;
    }
    let pki = crate::certificates::Pki::new();
    let emulator = crate::support::emulator::Emulator::start(&[]);
    let leaf = pki.leaf_for_days("swarm.app.test", 90);
    let bundle = pki.pkcs12_bundle(&leaf, "");
    crate::certificates::sdk_set(&emulator, "web-tls", "application/x-pkcs12", &bundle);
    let p = Project::empty();
    let swarm = SwarmStack::start(1);
    p.write("compose.yaml", pfx_stack(swarm.port));
    let stack = swarm.stack.clone();
    let load = || {
        crate::certificates::kv(&p, &emulator, &["--target", "swarm", "load"])
            .env("COMPOSE_PROJECT_NAME", &stack)
            .run()
            .success()
    };

    // First load: the part is fetched, and its swarm secret made from the value.
    let out = load();
    out.stdout_has("swarm-created");
    let pfx = p.read(".runtime/secrets/tls-pfx");
    assert!(std::str::from_utf8(&pfx).is_err(), "a pfx is binary");
    let versioned = swarm.secrets();
    assert_eq!(versioned.len(), 1, "{versioned:?}");

    // `docker stack deploy` mounts the file as the unversioned `<stack>_tls-pfx`.
    swarm.deploy_stack(&p);
    assert_eq!(
        swarm.fingerprints_of("tls-pfx"),
        vec![crate::support::docker::fingerprint(&pfx)]
    );

    // Second load: nothing fetched, the file is read; the service is rolled onto the
    // versioned secret, health-gated by Swarm (an empty or cut secret would fail it).
    let out = load()
        .stdout_has("swarm-unchanged")
        .stdout_has("swarm-updated");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("swarm-removed") && l.ends_with(&format!("({stack}_tls-pfx)"))),
        "the unversioned secret is removed:\n{}",
        out.stdout
    );
    swarm.wait_healthy();
    assert_eq!(
        p.read(".runtime/secrets/tls-pfx"),
        pfx,
        "the file is as the first load wrote it"
    );
    assert_eq!(
        swarm.fingerprints_of("tls-pfx"),
        vec![crate::support::docker::fingerprint(&pfx)],
        "the service reads the file's bytes from the swarm secret"
    );
    let mounted = docker(&[
        "service",
        "inspect",
        "--format",
        "{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}{{.SecretName}} {{end}}",
        &format!("{stack}_web"),
    ]);
    assert_eq!(
        mounted.trim(),
        versioned[0].0,
        "web mounts the versioned secret"
    );
    assert_eq!(swarm.secrets(), versioned, "one copy, the first load's");
}

#[test]
fn swarm_tests_run_only_when_opted_in_with_exactly_1() {
    assert!(swarm_opted_in(Some("1")));
    for value in [
        None,
        Some(""),
        Some("0"),
        Some("true"),
        Some("yes"),
        Some(" 1"),
    ] {
        assert!(!swarm_opted_in(value), "{value:?} must not opt in");
    }
}

/// Runs one Swarm test in a child of this test binary, without the opt-in and with an engine
/// that cannot be reached: it must pass with its SKIPPED line, never touch (or look for) Docker.
#[test]
fn swarm_tests_without_the_opt_in_skip_and_say_how_to_run_them() {
    let test = "swarm::swarm_rotation_that_breaks_the_service_is_rolled_back_everywhere";
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env_remove(OPT_IN_VARIABLE)
        .env_remove("COMPOSE_SECRETS_SKIP_DOCKER")
        .env(
            "DOCKER_HOST",
            "unix:///nonexistent/compose-secrets-test.sock",
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Swarm test did not skip: {stderr}"
    );
    assert!(
        stderr.contains(&format!("SKIPPED (set {OPT_IN_VARIABLE}=1 to run it"))
            && stderr.contains(test),
        "no SKIPPED line naming the opt-in and the test: {stderr}"
    );
}
