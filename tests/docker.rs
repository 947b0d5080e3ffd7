//! Docker tests: the real engine through `compose_secrets::docker` and `health`, against
//! Compose projects of the FROM-scratch demo image started with the real `docker-compose`.
//!
//! They need a Docker engine. Without one they fail loudly, unless
//! `COMPOSE_SECRETS_SKIP_DOCKER=1` says to skip them (each skip is printed). Every test
//! uses its own project name and removes what it created, on success and on panic.
//! Secret values exist only in files the tests write: never in argv, env or compose files.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use compose_secrets::testing::deploy::health::{wait_container_ready, wait_http_healthy};
use compose_secrets::testing::deploy::{ContainerEngine, ContainerInfo, DockerEngine};
use compose_secrets::testing::error::Error;

use crate::harness::is_root;
use crate::support::docker::{
    compose_command, docker_available_or_skip, docker_host, ensure_demo_image, fingerprint, skip,
    DEMO_IMAGE,
};

/// Generous: two cores may be busy compiling while a container starts.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Who owns a secret file, and its bytes.
pub struct SecretFile<'a> {
    pub name: &'a str,
    pub value: &'a [u8],
    pub uid: u32,
    pub gid: u32,
}

/// A Compose project in a temporary directory: `compose.yml` plus `secrets/` (0700,
/// root-owned, files 0400), brought down with its volumes when dropped.
pub struct ComposeProject {
    pub name: String,
    dir: tempfile::TempDir,
    up: bool,
}

impl ComposeProject {
    /// A unique project name (pid + counter) so parallel tests and runs never collide.
    pub fn new(tag: &str, compose_yaml: &str, secrets: &[SecretFile<'_>]) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "cstest-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let dir = tempfile::Builder::new()
            .prefix("cs-docker-")
            .tempdir()
            .expect("tempdir");
        std::fs::write(dir.path().join("compose.yml"), compose_yaml).expect("write compose.yml");
        let secrets_dir = dir.path().join("secrets");
        std::fs::create_dir(&secrets_dir).expect("mkdir secrets");
        std::fs::set_permissions(&secrets_dir, std::fs::Permissions::from_mode(0o700))
            .expect("chmod secrets");
        for secret in secrets {
            write_secret(&secrets_dir, secret);
        }
        ComposeProject {
            name,
            dir,
            up: false,
        }
    }

    pub fn secrets_dir(&self) -> PathBuf {
        self.dir.path().join("secrets")
    }

    fn compose(&self, args: &[&str]) -> Output {
        let file = self.dir.path().join("compose.yml");
        compose_command()
            .arg("-p")
            .arg(&self.name)
            .arg("-f")
            .arg(&file)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run docker compose")
    }

    /// `up -d` with extra arguments (e.g. `--scale web=2`); panics with Compose's output.
    pub fn up(&mut self, extra: &[&str]) {
        self.up = true;
        let mut args = vec!["up", "-d"];
        args.extend_from_slice(extra);
        let output = self.compose(&args);
        assert!(
            output.status.success(),
            "compose up for project {} failed:\n{}",
            self.name,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        if !self.up {
            return;
        }
        let output = self.compose(&["down", "-v", "--remove-orphans", "-t", "1"]);
        if !output.status.success() {
            let _ = writeln!(
                std::io::stderr(),
                "cleanup: compose down for project {} failed:\n{}",
                self.name,
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

fn write_secret(dir: &Path, secret: &SecretFile<'_>) {
    let path = dir.join(secret.name);
    std::fs::write(&path, secret.value).expect("write secret");
    std::os::unix::fs::chown(&path, Some(secret.uid), Some(secret.gid)).expect("chown secret");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod secret");
}

/// A value unique to this run, so a stale container can never pass for a fresh one.
fn test_value(label: &str) -> Vec<u8> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{label}-{nanos:x}-{}", std::process::id()).into_bytes()
}

/// `/health` through the port the container publishes on 127.0.0.1: tests talk to
/// loopback only, never to the bridge network's addresses.
fn health_url(container: &ContainerInfo) -> String {
    format!("http://{}/health", published_address(&container.id, 8000))
}

/// `127.0.0.1:<port>` where the container's `container_port` is published.
fn published_address(id: &str, container_port: u16) -> String {
    let output = Command::new("docker")
        .args(["port", id, &format!("{container_port}/tcp")])
        .output()
        .expect("docker port");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find(|line| line.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| {
            panic!("container {id} publishes no 127.0.0.1 port for {container_port}: {text}")
        })
        .trim()
        .to_string()
}

/// The demo app's `/health` answer, whatever its status.
async fn get_health(container: &ContainerInfo) -> (u16, serde_json::Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(health_url(container))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET /health of {}: {e}", container.name));
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

fn by_service<'a>(containers: &'a [ContainerInfo], service: &str) -> Vec<&'a ContainerInfo> {
    containers.iter().filter(|c| c.service == service).collect()
}

fn looks_like_rfc3339(stamp: &str) -> bool {
    let bytes = stamp.as_bytes();
    bytes.len() >= 20 && bytes[4] == b'-' && bytes[10] == b'T' && stamp.ends_with('Z')
}

fn connect() -> DockerEngine {
    DockerEngine::connect().expect("connect to Docker")
}

#[tokio::test]
async fn engine_answers_a_ping_and_names_its_endpoint() {
    if !docker_available_or_skip("engine_answers_a_ping_and_names_its_endpoint") {
        return;
    }
    let engine = connect();
    engine.ping().await.expect("ping");
    assert_eq!(engine.describe(), docker_host());
    // Version negotiation happened once and sticks: a second call works the same.
    engine.ping().await.expect("second ping");
}

#[tokio::test]
async fn an_unreachable_docker_host_fails_fast_with_a_docker_error() {
    // Needs no engine: this is what users without one see.
    for host in ["unix:///nonexistent.sock", "tcp://127.0.0.1:1"] {
        let started = Instant::now();
        let err = match DockerEngine::connect_to(host) {
            Ok(engine) => {
                assert_eq!(engine.describe(), host);
                engine.ping().await.expect_err("nothing listens there")
            }
            Err(e) => e,
        };
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{host}: took {:?}",
            started.elapsed()
        );
        assert!(matches!(err, Error::Docker { .. }), "{host}: {err:?}");
        let message = err.to_string();
        let shown_host = host.trim_start_matches("unix://");
        assert!(message.contains(shown_host), "{message}");
        assert!(message.contains("DOCKER_HOST"), "{message}");
    }
    let err = match DockerEngine::connect_to("ssh://somewhere") {
        Ok(_) => panic!("ssh:// is not supported"),
        Err(e) => e,
    };
    assert!(matches!(err, Error::Docker { .. }), "{err:?}");
}

const LISTING_STACK: &str = r#"version: "3.8"
services:
  web:
    image: compose-secrets-demo:latest
    user: "1000:1000"
    ports:
      - "127.0.0.1::8000"
    environment:
      DEMO_REQUIRED_SECRETS: api-key
    secrets:
      - api-key
  # Exits at once (nothing answers its health check): a stopped container in the listing.
  oneshot:
    image: compose-secrets-demo:latest
    user: "1000:1000"
    command: ["healthcheck"]
    secrets:
      - api-key
secrets:
  api-key:
    file: ./secrets/api-key
"#;

#[tokio::test]
async fn project_containers_lists_inspects_restarts_and_gates_a_compose_project() {
    let test = "project_containers_lists_inspects_restarts_and_gates_a_compose_project";
    if !docker_available_or_skip(test) {
        return;
    }
    if !is_root() {
        return skip(test, "needs root to chown the secret to 1000:1000");
    }
    ensure_demo_image();
    let value = test_value("api-key");
    let mut project = ComposeProject::new(
        "list",
        LISTING_STACK,
        &[SecretFile {
            name: "api-key",
            value: &value,
            uid: 1000,
            gid: 1000,
        }],
    );
    project.up(&["--scale", "web=2"]);
    let engine = connect();

    // Both replicas come up healthy (the image's HEALTHCHECK runs `demo-app healthcheck`).
    let listed = engine
        .project_containers(&project.name)
        .await
        .expect("list");
    for web in by_service(&listed, "web") {
        let ready = wait_container_ready(&engine, &web.id, None, READY_TIMEOUT)
            .await
            .expect("web replica ready");
        assert_eq!(ready.health.as_deref(), Some("healthy"));
    }
    let oneshot_id = by_service(&listed, "oneshot")[0].id.clone();
    wait_until_stopped(&engine, &oneshot_id).await;

    let listed = engine
        .project_containers(&project.name)
        .await
        .expect("list");
    let order: Vec<(&str, Option<u32>)> = listed
        .iter()
        .map(|c| (c.service.as_str(), c.number))
        .collect();
    assert_eq!(
        order,
        [("oneshot", Some(1)), ("web", Some(1)), ("web", Some(2))],
        "sorted by service, then container number; stopped ones included"
    );
    let oneshot = &listed[0];
    assert!(!oneshot.running);
    assert_eq!(oneshot.status, "exited");
    for web in &listed[1..] {
        assert_web_container(web, &project.name);
    }

    // A restart gives a new StartedAt, and the gate waits for the fresh container's health.
    let web = listed[2].clone();
    let before = web.started_at.clone();
    let asked = Instant::now();
    engine
        .restart(&web.id, Duration::from_secs(10))
        .await
        .expect("restart");
    // SIGTERM reaches the app as PID 1 and it exits at once, far inside the 10 s stop timeout.
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "restart took {:?}: SIGTERM not handled?",
        asked.elapsed()
    );
    let ready = wait_container_ready(&engine, &web.id, before.as_deref(), READY_TIMEOUT)
        .await
        .expect("ready after restart");
    assert_ne!(ready.started_at, before, "StartedAt changes on restart");
    assert_eq!(ready.health.as_deref(), Some("healthy"));
    let health = wait_http_healthy(&health_url(&ready), READY_TIMEOUT)
        .await
        .expect("HTTP health");
    assert_eq!(health.status, 200);
    // The gate reads no body; the demo app's fingerprints are read here, by the test.
    let body: serde_json::Value = reqwest::get(health_url(&ready))
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("health body")
        .json()
        .await
        .expect("JSON body");
    assert_eq!(body["secrets"]["api-key"], fingerprint(&value));
    assert!(!body
        .to_string()
        .contains(std::str::from_utf8(&value).unwrap()));

    // start: a stopped container comes back and passes the gate.
    let first = listed[1].clone();
    docker_cli(&["stop", "-t", "5", &first.id]);
    let stopped = engine.inspect(&first.id).await.expect("inspect");
    assert!(!stopped.running);
    engine.start(&first.id).await.expect("start");
    wait_container_ready(
        &engine,
        &first.id,
        stopped.started_at.as_deref(),
        READY_TIMEOUT,
    )
    .await
    .expect("ready after start");

    // Engine errors are Error::Docker and name the container.
    let err = engine
        .inspect("cstest-no-such-container")
        .await
        .expect_err("no such container");
    assert!(matches!(err, Error::Docker { .. }), "{err:?}");
    assert!(
        err.to_string().contains("cstest-no-such-container"),
        "{err}"
    );
    assert!(engine
        .project_containers(&format!("{}-nothing", project.name))
        .await
        .expect("empty listing")
        .is_empty());
}

fn assert_web_container(web: &ContainerInfo, project: &str) {
    assert!(web.running, "{web:?}");
    assert_eq!(web.status, "running");
    assert_eq!(web.project, project);
    assert_eq!(
        web.labels
            .get("com.docker.compose.project")
            .map(String::as_str),
        Some(project)
    );
    assert!(web.name.contains("web"), "{}", web.name);
    assert!(!web.id.is_empty());
    assert_eq!(web.image, DEMO_IMAGE);
    assert_eq!(web.user, "1000:1000");
    assert_eq!(web.command, ["/demo-app", "serve"]);
    assert!(web.env.iter().any(|e| e == "DEMO_REQUIRED_SECRETS=api-key"));
    assert!(!web.ip_addresses.is_empty());
    let started = web.started_at.as_deref().unwrap_or_default();
    assert!(looks_like_rfc3339(started), "{started}");
}

async fn wait_until_stopped(engine: &DockerEngine, id: &str) {
    let deadline = Instant::now() + READY_TIMEOUT;
    while engine.inspect(id).await.expect("inspect").running {
        assert!(Instant::now() < deadline, "container {id} never stopped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn docker_cli(args: &[&str]) {
    let output = Command::new("docker").args(args).output().expect("docker");
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const OWNERSHIP_STACK: &str = r#"version: "3.8"
services:
  owner:
    image: compose-secrets-demo:latest
    user: "1000:1000"
    ports:
      - "127.0.0.1::8000"
    environment:
      DEMO_REQUIRED_SECRETS: owned
    secrets:
      - owned
  stranger:
    image: compose-secrets-demo:latest
    user: "1000:1000"
    ports:
      - "127.0.0.1::8000"
    environment:
      DEMO_REQUIRED_SECRETS: foreign
    secrets:
      - foreign
  rejecting:
    image: compose-secrets-demo:latest
    user: "1000:1000"
    ports:
      - "127.0.0.1::8000"
    environment:
      DEMO_REJECT_PREFIX: "REJECT-"
    secrets:
      - marked
secrets:
  owned:
    file: ./secrets/owned
  foreign:
    file: ./secrets/foreign
  marked:
    file: ./secrets/marked
"#;

#[tokio::test]
async fn a_non_root_container_reads_a_0400_secret_only_when_it_owns_it() {
    let test = "a_non_root_container_reads_a_0400_secret_only_when_it_owns_it";
    if !docker_available_or_skip(test) {
        return;
    }
    if !is_root() {
        return skip(test, "needs root to chown the secrets to 1000 and 1001");
    }
    ensure_demo_image();
    let owned = test_value("owned");
    let foreign = test_value("foreign");
    let marked = [b"REJECT-".as_slice(), &test_value("marked")].concat();
    let mut project = ComposeProject::new(
        "owner",
        OWNERSHIP_STACK,
        &[
            SecretFile {
                name: "owned",
                value: &owned,
                uid: 1000,
                gid: 1000,
            },
            SecretFile {
                name: "foreign",
                value: &foreign,
                uid: 1001,
                gid: 1001,
            },
            SecretFile {
                name: "marked",
                value: &marked,
                uid: 1000,
                gid: 1000,
            },
        ],
    );
    // Compose ignores uid/gid/mode for file secrets and bind-mounts the host file: the
    // container's uid sees the host owner and mode, through a 0700 root-owned directory.
    let dir_mode = std::fs::metadata(project.secrets_dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    project.up(&[]);
    let engine = connect();
    let listed = engine
        .project_containers(&project.name)
        .await
        .expect("list");
    let service = |name: &str| by_service(&listed, name)[0].clone();

    let owner = wait_container_ready(&engine, &service("owner").id, None, READY_TIMEOUT)
        .await
        .expect("owner ready");
    let (status, body) = get_health(&owner).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["secrets"]["owned"], fingerprint(&owned));

    let stranger = service("stranger");
    let (status, body) = get_health(&stranger).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["missing"], serde_json::json!(["foreign"]));
    // The gate sees Docker's verdict too, and names the container.
    let err = wait_container_ready(&engine, &stranger.id, None, READY_TIMEOUT)
        .await
        .expect_err("a container that cannot read its secret is not ready");
    assert!(matches!(err, Error::Health { .. }), "{err:?}");
    assert!(err.to_string().contains(&stranger.name), "{err}");
    assert!(err.to_string().contains("unhealthy"), "{err}");

    let rejecting = service("rejecting");
    let (status, body) = get_health(&rejecting).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["rejected"], serde_json::json!(["marked"]));
    let http_err = wait_http_healthy(&health_url(&rejecting), Duration::from_millis(800))
        .await
        .expect_err("503 is not healthy");
    assert!(matches!(http_err, Error::Health { .. }), "{http_err:?}");
    assert!(http_err.to_string().contains("503"), "{http_err}");

    // No answer, error or log line carries a value.
    let logs = Command::new("docker")
        .args(["logs", &owner.id])
        .output()
        .expect("docker logs");
    let mut seen = String::from_utf8_lossy(&logs.stdout).into_owned();
    seen.push_str(&String::from_utf8_lossy(&logs.stderr));
    seen.push_str(&err.to_string());
    seen.push_str(&body.to_string());
    for value in [&owned, &foreign, &marked] {
        assert!(!seen.contains(std::str::from_utf8(value).unwrap()));
    }
}

const PROXIED_STACK: &str = r#"version: "3.8"
services:
  web:
    image: compose-secrets-demo:latest
    user: "1000:1000"
    environment:
      DEMO_REQUIRED_SECRETS: api-key
    secrets:
      - api-key
  proxy:
    image: compose-secrets-demo:latest
    user: "1000:1000"
    command: ["proxy", "--listen", "0.0.0.0:8080", "--upstream", "web:8000"]
    environment:
      PORT: "8080"
    ports:
      - "127.0.0.1::8080"
secrets:
  api-key:
    file: ./secrets/api-key
"#;

/// Upper bounds for the polling client: it stops by itself whatever happens.
const POLL_EVERY: Duration = Duration::from_millis(25);
const MAX_POLLS: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_replicas_one_at_a_time_behind_the_proxy_drops_no_request() {
    let test = "restarting_replicas_one_at_a_time_behind_the_proxy_drops_no_request";
    if !docker_available_or_skip(test) {
        return;
    }
    if !is_root() {
        return skip(test, "needs root to chown the secret to 1000:1000");
    }
    ensure_demo_image();
    let value = test_value("api-key");
    let mut project = ComposeProject::new(
        "proxy",
        PROXIED_STACK,
        &[SecretFile {
            name: "api-key",
            value: &value,
            uid: 1000,
            gid: 1000,
        }],
    );
    project.up(&["--scale", "web=2"]);
    let engine = connect();
    let listed = engine
        .project_containers(&project.name)
        .await
        .expect("list");
    for container in &listed {
        wait_container_ready(&engine, &container.id, None, READY_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{} not ready: {e}", container.name));
    }
    let proxy = by_service(&listed, "proxy")[0].clone();
    let url = format!("http://{}/health", published_address(&proxy.id, 8080));

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = tokio::spawn(poll_until_stopped(url, std::sync::Arc::clone(&stop)));
    for web in by_service(&listed, "web") {
        let before = engine.inspect(&web.id).await.expect("inspect").started_at;
        engine
            .restart(&web.id, Duration::from_secs(10))
            .await
            .expect("restart");
        wait_container_ready(&engine, &web.id, before.as_deref(), READY_TIMEOUT)
            .await
            .expect("replica ready after restart");
    }
    stop.store(true, Ordering::SeqCst);
    let statuses = poller.await.expect("poller");

    let failures: Vec<&String> = statuses.iter().filter(|s| *s != "200").collect();
    let _ = writeln!(
        std::io::stderr(),
        "{test}: {} requests through the proxy while 2 replicas restarted, {} failed",
        statuses.len(),
        failures.len()
    );
    assert!(
        statuses.len() >= 10,
        "only {} requests made",
        statuses.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during the restarts: {failures:?}",
        failures.len(),
        statuses.len()
    );
}

/// GET `url` until told to stop (or the bounds are hit); each answer's status, or the error.
async fn poll_until_stopped(
    url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut statuses = Vec::new();
    while !stop.load(Ordering::SeqCst) && statuses.len() < MAX_POLLS && Instant::now() < deadline {
        let status = match client.get(&url).send().await {
            Ok(response) => response.status().as_u16().to_string(),
            Err(e) => format!("error: {e}"),
        };
        statuses.push(status);
        tokio::time::sleep(POLL_EVERY).await;
    }
    statuses
}
