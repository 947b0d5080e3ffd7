//! Docker faults on the real engine during `rotate`: a container that will not start on the
//! new value (it exits, or crash-loops under a restart policy), and a daemon that goes away
//! in the middle of a restart. The first is rolled back to a healthy container; the second
//! cannot be, and is reported as a failed rollback that `verify` then names.

use std::io::{Read as _, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::Project;
use crate::support::docker::{fingerprint, ready};
use crate::support::stack::Stack;

/// The outcome the audit log recorded for the last run.
fn last_audit_outcome(p: &Project) -> String {
    let lines = p.audit_lines();
    let last = lines.last().expect("an audit line");
    last["outcome"].as_str().unwrap_or_default().to_string()
}

/// Status and StartedAt of the stack's one container, running or not.
fn container_state(stack: &Stack<&Project>) -> (String, String) {
    let text = stack.inspect("{{.State.Status}} {{.State.StartedAt}}");
    let (status, started) = text.split_once(' ').unwrap_or((text.as_str(), ""));
    (status.to_string(), started.to_string())
}

/// Set up a demo-mode stack with one secret, loaded and running; returns the current value.
fn running_stack<'p>(
    p: &'p Project,
    tag: &str,
    service_extra: &str,
) -> (Stack<&'p Project>, String) {
    p.write(".env.demo", "S1=\n");
    let stack = Stack::write_with(p, tag, service_extra);
    stack.cmd(&["ensure"]).run().success();
    stack.cmd(&["load"]).run().success();
    stack.up();
    let value = p.env_value("S1");
    assert_eq!(stack.fingerprint_seen(), fingerprint(value.as_bytes()));
    (stack, value)
}

#[test]
fn a_container_that_exits_on_the_new_value_is_rolled_back_and_started_on_the_old_one() {
    if !ready("docker_faults::a_container_that_exits_on_the_new_value_is_rolled_back_and_started_on_the_old_one") {
        return;
    }
    let p = Project::empty();
    let (stack, old) = running_stack(&p, "exit", "");
    let (_, started) = container_state(&stack);

    let out = stack
        .cmd(&["rotate", "s1", "--value-stdin", "--health-timeout", "30"])
        .stdin("dead-on-arrival")
        .run()
        .code(6);
    out.assert_no_values(&["dead-on-arrival".to_string(), old.clone()]);
    assert!(out.stderr.contains("rolled back"), "{}", out.stderr);
    assert!(
        out.stderr.contains("exited after the restart") && out.stderr.contains("service app"),
        "names what happened and where: {}",
        out.stderr
    );

    assert_eq!(p.env_value("S1"), old, ".env holds the previous value");
    assert_eq!(p.read_string(".runtime/secrets/s1"), old);
    assert_eq!(p.mode(".runtime/secrets/s1"), 0o400);
    let (status, started_now) = container_state(&stack);
    assert_eq!(status, "running", "started again by the rollback");
    assert_ne!(started_now, started);
    assert_eq!(stack.health().map(|(s, _)| s), Some(200));
    assert_eq!(stack.fingerprint_seen(), fingerprint(old.as_bytes()));
    assert_eq!(last_audit_outcome(&p), "rolled-back");
    stack.cmd(&["verify"]).run().success();
}

#[test]
fn a_crash_looping_container_times_out_the_gate_and_is_rolled_back() {
    if !ready("docker_faults::a_crash_looping_container_times_out_the_gate_and_is_rolled_back") {
        return;
    }
    let p = Project::empty();
    // Docker itself restarts the exiting container, so it never settles as "exited".
    let (stack, old) = running_stack(&p, "loop", "    restart: unless-stopped\n");

    let out = stack
        .cmd(&["rotate", "s1", "--value-stdin", "--health-timeout", "6"])
        .stdin("dead-in-a-loop")
        .run()
        .code(6);
    out.assert_no_values(&["dead-in-a-loop".to_string(), old.clone()]);
    assert!(out.stderr.contains("rolled back"), "{}", out.stderr);
    assert!(out.stderr.contains("service app"), "{}", out.stderr);

    assert_eq!(p.env_value("S1"), old);
    assert_eq!(p.read_string(".runtime/secrets/s1"), old);
    let (status, _) = container_state(&stack);
    assert_eq!(status, "running");
    assert_eq!(stack.health().map(|(s, _)| s), Some(200));
    assert_eq!(stack.fingerprint_seen(), fingerprint(old.as_bytes()));
    assert_eq!(last_audit_outcome(&p), "rolled-back");
}

/// A unix-socket relay in front of the Docker engine that dies like a daemon would: it passes
/// requests through until a container restart, lets the engine carry that restart out, then
/// closes the client's connection before the answer and stops accepting connections.
struct DyingDaemon {
    socket: PathBuf,
    gone: Arc<AtomicBool>,
    restarts_passed_on: Arc<AtomicUsize>,
    engine_sides: Arc<Mutex<Vec<UnixStream>>>,
}

impl DyingDaemon {
    fn start(dir: &Path) -> DyingDaemon {
        let engine = match std::env::var("DOCKER_HOST") {
            Ok(host) if host.starts_with("unix://") => PathBuf::from(&host["unix://".len()..]),
            _ => PathBuf::from("/var/run/docker.sock"),
        };
        let socket = dir.join("docker.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        listener.set_nonblocking(true).unwrap();
        let relay = DyingDaemon {
            socket,
            gone: Arc::default(),
            restarts_passed_on: Arc::default(),
            engine_sides: Arc::default(),
        };
        let (gone, restarts, engine_sides, socket) = (
            relay.gone.clone(),
            relay.restarts_passed_on.clone(),
            relay.engine_sides.clone(),
            relay.socket.clone(),
        );
        std::thread::spawn(move || {
            while !gone.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let upstream = UnixStream::connect(&engine).unwrap();
                        engine_sides
                            .lock()
                            .unwrap()
                            .push(upstream.try_clone().unwrap());
                        relay_connection(client, upstream, &gone, &restarts, &socket);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("relay accept: {e}"),
                }
            }
        });
        relay
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

impl Drop for DyingDaemon {
    fn drop(&mut self) {
        self.gone.store(true, Ordering::SeqCst);
        let _ = std::fs::remove_file(&self.socket);
        for s in self.engine_sides.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Copy both ways. A request that restarts a container marks the connection: the engine's
/// answer is swallowed, the daemon "goes away" (socket removed, no more accepts) and the
/// client's side is closed. The engine's side stays open so the engine does not see the
/// client leave and cancel the restart.
fn relay_connection(
    client: UnixStream,
    upstream: UnixStream,
    gone: &Arc<AtomicBool>,
    restarts: &Arc<AtomicUsize>,
    socket: &Path,
) {
    let dying = Arc::new(AtomicBool::new(false));
    {
        let (mut from_client, mut to_engine) =
            (client.try_clone().unwrap(), upstream.try_clone().unwrap());
        let (dying, restarts) = (dying.clone(), restarts.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                let n = match from_client.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let chunk = String::from_utf8_lossy(&buf[..n]);
                let first_line = chunk.lines().next().unwrap_or_default();
                if first_line.starts_with("POST ") && first_line.contains("/restart") {
                    dying.store(true, Ordering::SeqCst);
                    restarts.fetch_add(1, Ordering::SeqCst);
                }
                if to_engine.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        });
    }
    let (gone, socket) = (gone.clone(), socket.to_path_buf());
    std::thread::spawn(move || {
        let (mut from_engine, mut to_client) = (upstream, client);
        let mut buf = [0u8; 16 * 1024];
        let mut client_open = true;
        loop {
            let n = match from_engine.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if dying.load(Ordering::SeqCst) && client_open {
                // The restart is done on the engine; its answer never reaches the client.
                gone.store(true, Ordering::SeqCst);
                let _ = std::fs::remove_file(&socket);
                let _ = to_client.shutdown(std::net::Shutdown::Both);
                client_open = false;
            }
            if client_open && to_client.write_all(&buf[..n]).is_err() {
                client_open = false;
            }
        }
    });
}

#[test]
fn the_daemon_going_away_mid_restart_fails_the_rollback_loudly_and_verify_names_the_container() {
    if !ready("docker_faults::the_daemon_going_away_mid_restart_fails_the_rollback_loudly_and_verify_names_the_container") {
        return;
    }
    let p = Project::empty();
    let (stack, old) = running_stack(&p, "gone", "");
    let (_, started) = container_state(&stack);
    let relay_dir = tempfile::tempdir().unwrap();
    let daemon = DyingDaemon::start(relay_dir.path());

    let out = stack
        .cmd(&["rotate", "s1", "--health-timeout", "20"])
        .env("DOCKER_HOST", daemon.docker_host())
        .run()
        .code(9);
    assert_eq!(daemon.restarts_passed_on.load(Ordering::SeqCst), 1);
    assert!(daemon.gone.load(Ordering::SeqCst));
    out.assert_no_values(std::slice::from_ref(&old));
    assert!(out.stderr.contains("ROLLBACK FAILED"), "{}", out.stderr);
    // Compose v2 names it `<project>-app-1` (v1 said `<project>_app_1`): ask the engine.
    let container = stack
        .inspect("{{.Name}}")
        .trim_start_matches('/')
        .to_string();
    assert!(
        out.stderr.contains("Docker engine not reachable")
            && out.stderr.contains(&format!("docker restart {container}"))
            && out.stderr.contains("compose-secrets verify"),
        "says the engine is gone, names the container and what to run next: {}",
        out.stderr
    );
    // What could be undone without Docker was: the store and the file hold the old value.
    assert_eq!(p.env_value("S1"), old, ".env holds the previous value");
    assert_eq!(p.read_string(".runtime/secrets/s1"), old);
    assert_eq!(p.mode(".runtime/secrets/s1"), 0o400);
    assert_eq!(last_audit_outcome(&p), "rollback-failed");

    // The engine did restart the container onto the new value, which nothing else holds now.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, started_now) = container_state(&stack);
        if status == "running" && started_now != started && stack.health().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the restart never completed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let seen = stack.fingerprint_seen();
    assert!(seen.starts_with("sha256:"), "{seen}");
    assert_ne!(seen, fingerprint(old.as_bytes()), "it runs the new value");
    drop(daemon);

    // The daemon is back (the real socket): verify names the container holding a stale value.
    let out = stack.cmd(&["verify", "--json"]).run().code(1);
    out.assert_no_values(std::slice::from_ref(&old));
    let checks = out.json()["checks"].as_array().unwrap().clone();
    let stale: Vec<&serde_json::Value> = checks
        .iter()
        .filter(|c| c["category"] == "containers" && c["status"] == "fail")
        .collect();
    assert_eq!(stale.len(), 1, "{checks:#?}");
    assert!(
        stale[0]["subject"].as_str().unwrap().contains("(app)"),
        "{checks:#?}"
    );

    // The remedy verify gives: restart it. Then everything agrees again.
    stack.restart_by_hand();
    stack.wait_healthy(Duration::from_secs(30));
    assert_eq!(stack.fingerprint_seen(), fingerprint(old.as_bytes()));
    let out = stack.cmd(&["verify", "--json"]).run();
    assert_eq!(out.code, 0, "{}", out.stdout);
}
