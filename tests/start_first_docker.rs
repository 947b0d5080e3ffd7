//! Start-first rotation on the real engine with Compose v2: one `app` container behind the
//! demo proxy, a client polling through the proxy every 10 ms. With
//! `deploy.update_config.order: start-first` no request fails (rotations and a rolled-back
//! one); without it the client sees the gap. Compose keeps treating the new container as its
//! own. Counts are asserted, never timings.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{Project, Run};
use crate::support::docker::{compose_command, fingerprint, ready, DEMO_IMAGE};

const START_FIRST: &str = "    deploy:\n      update_config:\n        order: start-first\n";

/// `app` (the demo service, health URL at its own address) behind `proxy` on a loopback port.
pub struct ProxiedStack<'p> {
    project: &'p Project,
    pub name: String,
    port: u16,
}

impl<'p> ProxiedStack<'p> {
    /// `deploy` is YAML for the app service (4-space indented), e.g. [`START_FIRST`].
    pub fn write(p: &'p Project, tag: &str, deploy: &str) -> ProxiedStack<'p> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        p.write(".env.demo", "S1=\n");
        p.write(
            "compose.yaml",
            format!(
                r#"services:
  app:
    image: {DEMO_IMAGE}
    user: "1000:1000"
    environment:
      DEMO_REQUIRED_SECRETS: s1
      DEMO_REJECT_PREFIX: bad-
    healthcheck:
      test: ["CMD", "/demo-app", "healthcheck"]
      interval: 200ms
      timeout: 1s
      retries: 3
    secrets: [s1]
{deploy}    x-compose-secrets:
      health-url: http://{{ip}}:8000/health
  proxy:
    image: {DEMO_IMAGE}
    user: "1000:1000"
    command: ["proxy", "--listen", "0.0.0.0:8080", "--upstream", "app:8000"]
    ports: ["127.0.0.1:{port}:8080"]
    healthcheck: {{disable: true}}
secrets:
  s1:
    file: ./.runtime/secrets/s1
    x-compose-secrets:
      owner: "1000:1000"
      generator: hex:24
"#
            ),
        );
        ProxiedStack {
            project: p,
            name: format!("cssf{tag}{}x{port}", std::process::id()),
            port,
        }
    }

    pub fn compose(&self, args: &[&str]) -> std::process::Output {
        compose_command()
            .args(["-p", &self.name, "-f", "compose.yaml"])
            .args(args)
            .current_dir(self.project.dir.path())
            .output()
            .unwrap()
    }

    /// `ensure`, `load`, `up -d` (with `extra`), then wait until the proxy answers 200.
    pub fn start(&self, extra: &[&str]) {
        self.cmd(&["ensure"]).run().success();
        self.cmd(&["load"]).run().success();
        let mut args = vec!["up", "-d"];
        args.extend_from_slice(extra);
        let out = self.compose(&args);
        assert!(
            out.status.success(),
            "compose up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(self.port).is_none_or(|(s, _)| s != 200) {
            assert!(Instant::now() < deadline, "the stack never answered 200");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Run {
        self.project
            .cmd(args)
            .env("COMPOSE_PROJECT_NAME", &self.name)
    }

    /// The `app` containers, any state: (id, name), by name.
    pub fn app_containers(&self) -> Vec<(String, String)> {
        let out = Command::new("docker")
            .args([
                "ps",
                "-a",
                "--format",
                "{{.ID}} {{.Names}}",
                "--filter",
                &format!("label=com.docker.compose.project={}", self.name),
                "--filter",
                "label=com.docker.compose.service=app",
            ])
            .output()
            .unwrap();
        let mut list: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(id, name)| (id.to_string(), name.to_string()))
            .collect();
        list.sort_by(|a, b| a.1.cmp(&b.1));
        list
    }

    /// The fingerprint of `s1` the service behind the proxy reports.
    pub fn fingerprint_seen(&self) -> String {
        let (_, body) = get(self.port).expect("the proxy answers");
        body["secrets"]["s1"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Poll `/health` through the proxy every 10 ms on a thread until the returned flag is set.
    pub fn poll(
        &self,
    ) -> (
        Arc<AtomicBool>,
        std::thread::JoinHandle<(usize, Vec<String>)>,
    ) {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let port = self.port;
        let handle = std::thread::spawn(move || {
            let (mut ok, mut failed) = (0, Vec::new());
            // Bounded whatever happens: 20 minutes of polls.
            for _ in 0..120_000 {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                match get(port) {
                    Some((200, _)) => ok += 1,
                    Some((status, _)) => failed.push(status.to_string()),
                    None => failed.push("no answer".into()),
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (ok, failed)
        });
        (stop, handle)
    }
}

impl Drop for ProxiedStack<'_> {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "--remove-orphans", "-t", "1"]);
    }
}

/// GET /health on 127.0.0.1:`port`: status and JSON body.
fn get(port: u16) -> Option<(u16, serde_json::Value)> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut r = String::new();
    s.read_to_string(&mut r).ok()?;
    let status = r.split_whitespace().nth(1)?.parse().ok()?;
    let body = serde_json::from_str(r.split("\r\n\r\n").nth(1)?).unwrap_or_default();
    Some((status, body))
}

#[test]
fn twenty_start_first_rotations_and_a_rejected_one_drop_no_request_and_compose_keeps_the_container()
{
    let test = "start_first_docker::twenty_start_first_rotations_and_a_rejected_one_drop_no_request_and_compose_keeps_the_container";
    if !ready(test) {
        return;
    }
    let p = Project::empty();
    let stack = ProxiedStack::write(&p, "twenty", START_FIRST);
    stack.start(&[]);
    let out = stack.cmd(&["rotate", "s1", "--dry-run"]).run().success();
    assert!(
        out.stdout.contains("one at a time, start-first"),
        "the dry run names the strategy: {}",
        out.stdout
    );
    let first = stack.app_containers();
    assert_eq!(first.len(), 1, "{first:?}");

    let (stop, poller) = stack.poll();
    let mut values = Vec::new();
    for _ in 0..20 {
        let out = stack.cmd(&["rotate", "s1"]).run().success();
        assert!(out.stdout.contains("replaced"), "{}", out.stdout);
        values.push(p.env_value("S1"));
        out.assert_no_values(&values);
    }
    let good = p.env_value("S1");
    let rejected = stack
        .cmd(&["rotate", "s1", "--value-stdin", "--health-timeout", "20"])
        .stdin("bad-rejected-value")
        .run()
        .code(6);
    assert!(
        rejected.stderr.contains("rolled back"),
        "{}",
        rejected.stderr
    );
    assert!(
        rejected.stderr.contains("kept serving, untouched"),
        "{}",
        rejected.stderr
    );
    rejected.assert_no_values(&["bad-rejected-value".to_string(), good.clone()]);
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = poller.join().unwrap();
    eprintln!(
        "{test}: {} requests through the proxy during 20 start-first rotations and 1 rolled back, {} failed",
        ok + failed.len(),
        failed.len()
    );
    assert!(ok >= 20, "only {ok} requests answered");
    assert!(failed.is_empty(), "{} failed: {failed:?}", failed.len());

    let audit = p.read_string(".runtime/audit.log");
    let last = audit.lines().last().unwrap_or_default();
    assert!(
        last.contains("rolled-back") || last.contains("rolled_back"),
        "{last}"
    );
    assert!(last.contains("kept serving, untouched"), "{last}");

    // One container remains, Compose's own: listed, and left alone by a later `up -d`.
    let after = stack.app_containers();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after[0].0, first[0].0, "a new container");
    assert_eq!(stack.fingerprint_seen(), fingerprint(good.as_bytes()));
    let ps = stack.compose(&["ps", "--format", "{{.Name}}"]);
    assert!(
        String::from_utf8_lossy(&ps.stdout).contains(&after[0].1),
        "compose ps lists {}: {}",
        after[0].1,
        String::from_utf8_lossy(&ps.stdout)
    );
    let up = stack.compose(&["up", "-d"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert_eq!(
        stack.app_containers(),
        after,
        "up -d neither adds nor recreates"
    );
    assert_eq!(stack.fingerprint_seen(), fingerprint(good.as_bytes()));
}

#[test]
fn without_start_first_the_client_behind_the_proxy_sees_the_restart() {
    let test =
        "start_first_docker::without_start_first_the_client_behind_the_proxy_sees_the_restart";
    if !ready(test) {
        return;
    }
    let p = Project::empty();
    let stack = ProxiedStack::write(&p, "stop", "");
    stack.start(&[]);
    let (stop, poller) = stack.poll();
    for _ in 0..3 {
        let out = stack.cmd(&["rotate", "s1"]).run().success();
        assert!(out.stdout.contains("restarted"), "{}", out.stdout);
    }
    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = poller.join().unwrap();
    eprintln!(
        "{test}: {} requests through the proxy during 3 stop-first rotations, {} failed",
        ok + failed.len(),
        failed.len()
    );
    assert!(!failed.is_empty(), "a restart leaves a gap the client sees");
    assert_eq!(stack.app_containers().len(), 1);
}

#[test]
fn a_scaled_start_first_service_is_replaced_one_container_at_a_time() {
    let test =
        "start_first_docker::a_scaled_start_first_service_is_replaced_one_container_at_a_time";
    if !ready(test) {
        return;
    }
    let p = Project::empty();
    let stack = ProxiedStack::write(&p, "scaled", START_FIRST);
    stack.start(&["--scale", "app=2"]);
    let before: BTreeSet<String> = stack.app_containers().into_iter().map(|c| c.0).collect();
    assert_eq!(before.len(), 2);
    let (stop, poller) = stack.poll();
    let out = stack.cmd(&["rotate", "s1"]).run().success();
    stop.store(true, Ordering::SeqCst);
    let (_, failed) = poller.join().unwrap();
    assert_eq!(out.stdout.matches("replaced").count(), 2, "{}", out.stdout);
    assert!(failed.is_empty(), "{failed:?}");
    let after = stack.app_containers();
    let names: Vec<&str> = after.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("{}-app-3", stack.name),
            format!("{}-app-4", stack.name)
        ],
        "the next numbers, one at a time"
    );
    assert!(after.iter().all(|c| !before.contains(&c.0)));
    // A rejected value: the first new container fails its gate and is removed; both old
    // ones keep serving, untouched.
    let out = stack
        .cmd(&["rotate", "s1", "--value-stdin", "--health-timeout", "20"])
        .stdin("bad-rejected-value")
        .run()
        .code(6);
    assert!(
        out.stderr.contains("kept serving, untouched"),
        "{}",
        out.stderr
    );
    assert_eq!(stack.app_containers(), after);
    let up = stack.compose(&["up", "-d", "--scale", "app=2"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert_eq!(
        stack.app_containers(),
        after,
        "up -d leaves them as they are"
    );
}

#[test]
fn a_start_first_service_that_cannot_run_twice_is_refused_before_anything_changes() {
    let test = "start_first_docker::a_start_first_service_that_cannot_run_twice_is_refused_before_anything_changes";
    if !ready(test) {
        return;
    }
    for (tag, extra, key) in [
        (
            "named",
            "    container_name: cssf-named-app\n",
            "container_name",
        ),
        (
            "port",
            "    ports: [\"127.0.0.1:18080:8000\"]\n",
            "fixed host port",
        ),
    ] {
        let p = Project::empty();
        let stack = ProxiedStack::write(&p, tag, &format!("{extra}{START_FIRST}"));
        stack.cmd(&["ensure"]).run().success();
        stack.cmd(&["load"]).run().success();
        let before = p.snapshot();
        for args in [&["rotate", "s1"][..], &["rotate", "s1", "--dry-run"][..]] {
            let out = stack.cmd(args).run().code(2);
            assert!(out.stderr.contains(key), "{tag}: {}", out.stderr);
            assert!(
                out.stderr.contains("reverse proxy"),
                "{tag}: {}",
                out.stderr
            );
            assert!(
                out.stderr.contains("service `app`"),
                "{tag}: {}",
                out.stderr
            );
        }
        crate::harness::assert_same_files(&before, &p.snapshot());
    }
}
