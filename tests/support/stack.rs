//! The demo stack the Docker tests run: one template for its Compose file (the demo app
//! with one file secret `s1`, health-gated), and a running Compose project of it, brought
//! down when dropped.

use std::borrow::Borrow;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Project, Run};
use crate::support::docker::{compose_command, DEMO_IMAGE};

/// A bound for a container that never becomes healthy, never a timing claim.
const PATIENCE: Duration = Duration::from_secs(180);

/// What differs between the demo stacks of the tests.
#[derive(Clone, Copy)]
pub struct DemoStack<'a> {
    /// `DEMO_REJECT_PREFIX`: a value starting with it makes the service unhealthy.
    pub reject: &'a str,
    /// `DEMO_FATAL_PREFIX`: a value starting with it makes the service exit at start.
    pub fatal: Option<&'a str>,
    /// More YAML for the service (4-space indented, ending in a newline).
    pub service_extra: &'a str,
}

impl Default for DemoStack<'_> {
    fn default() -> Self {
        DemoStack {
            reject: "bad-",
            fatal: Some("dead-"),
            service_extra: "",
        }
    }
}

impl DemoStack<'_> {
    /// The Compose file: service `app` publishing the demo app's port 8000 on
    /// `127.0.0.1:port`, with its health URL, reading secret `s1` (owned by 1000:1000,
    /// generated as 24 hex bytes).
    pub fn compose_yaml(&self, port: u16) -> String {
        let reject = self.reject;
        let fatal = self
            .fatal
            .map(|prefix| format!("      DEMO_FATAL_PREFIX: {prefix}\n"))
            .unwrap_or_default();
        let extra = self.service_extra;
        format!(
            r#"services:
  app:
    image: {DEMO_IMAGE}
    user: "1000:1000"
    ports: ["127.0.0.1:{port}:8000"]
    environment:
      DEMO_REQUIRED_SECRETS: s1
      DEMO_REJECT_PREFIX: {reject}
{fatal}{extra}    healthcheck:
      test: ["CMD", "/demo-app", "healthcheck"]
      interval: 200ms
      timeout: 1s
      retries: 3
    secrets: [s1]
    x-compose-secrets:
      health-url: http://127.0.0.1:{port}/health
secrets:
  s1:
    file: ./.runtime/secrets/s1
    x-compose-secrets:
      owner: "1000:1000"
      generator: hex:24
"#
        )
    }
}

/// A free port on loopback (free when asked; Compose binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The demo app's `/health` on `127.0.0.1:port`: status and JSON body; `None` while it does
/// not answer. Plain HTTP/1.1 by hand, so a test needs no client that could retry.
pub fn health_on(port: u16) -> Option<(u16, serde_json::Value)> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut r = String::new();
    s.read_to_string(&mut r).ok()?;
    let status = r.split_whitespace().nth(1)?.parse().ok()?;
    let body = serde_json::from_str(r.split("\r\n\r\n").nth(1)?).ok()?;
    Some((status, body))
}

/// The demo stack written into a project (borrowed or owned), as Compose project
/// `csstack<tag><pid>x<port>`; brought down on drop.
pub struct Stack<P: Borrow<Project>> {
    project: P,
    pub name: String,
    port: u16,
}

impl<P: Borrow<Project>> Stack<P> {
    /// The default demo stack: values starting `bad-` are rejected, `dead-` are fatal.
    pub fn write(project: P, tag: &str) -> Stack<P> {
        Stack::with(project, tag, &DemoStack::default())
    }

    /// The default demo stack with `service_extra` YAML for the service.
    pub fn write_with(project: P, tag: &str, service_extra: &str) -> Stack<P> {
        let options = DemoStack {
            service_extra,
            ..DemoStack::default()
        };
        Stack::with(project, tag, &options)
    }

    pub fn with(project: P, tag: &str, options: &DemoStack<'_>) -> Stack<P> {
        let port = free_port();
        project
            .borrow()
            .write("compose.yaml", options.compose_yaml(port));
        Stack {
            project,
            name: format!("csstack{tag}{}x{port}", std::process::id()),
            port,
        }
    }

    pub fn project(&self) -> &Project {
        self.project.borrow()
    }

    /// `compose up -d`, then wait until `/health` answers 200.
    pub fn up(&self) {
        let out = self.compose(&["up", "-d"]).output().unwrap();
        assert!(
            out.status.success(),
            "compose up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.wait_healthy(PATIENCE);
    }

    fn compose(&self, args: &[&str]) -> Command {
        let mut command = compose_command();
        command
            .args(["-p", &self.name, "-f", "compose.yaml"])
            .args(args)
            .current_dir(self.project().dir.path());
        command
    }

    /// Poll `/health` until it answers 200.
    pub fn wait_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.status() != Some(200) {
            assert!(
                Instant::now() < deadline,
                "the demo service of {} never became healthy",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The binary in the project, pointed at this Compose project.
    pub fn cmd(&self, args: &[&str]) -> Run {
        self.project()
            .cmd(args)
            .env("COMPOSE_PROJECT_NAME", &self.name)
    }

    /// The demo app's `/health` answer: status and JSON body; `None` while it does not answer.
    pub fn health(&self) -> Option<(u16, serde_json::Value)> {
        health_on(self.port)
    }

    pub fn status(&self) -> Option<u16> {
        self.health().map(|(s, _)| s)
    }

    /// The fingerprint of `s1` the running service reports; it must answer.
    pub fn fingerprint_seen(&self) -> String {
        let (_, body) = self.health().expect("health answers");
        body["secrets"]["s1"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The id of the stack's one container, running or not.
    pub fn container_id(&self) -> String {
        let out = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=com.docker.compose.project={}", self.name),
            ])
            .output()
            .unwrap();
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            !id.is_empty() && !id.contains('\n'),
            "one container: {id:?}"
        );
        id
    }

    /// `docker inspect --format` of the stack's container.
    pub fn inspect(&self, format: &str) -> String {
        let out = Command::new("docker")
            .args(["inspect", "--format", format, &self.container_id()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn started_at(&self) -> String {
        self.inspect("{{.State.StartedAt}}")
    }

    /// Restart the container by hand, as an operator would (`docker restart -t 1`).
    pub fn restart_by_hand(&self) {
        let out = Command::new("docker")
            .args(["restart", "-t", "1", &self.container_id()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl<P: Borrow<Project>> Drop for Stack<P> {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "-t", "1"]).output();
    }
}
