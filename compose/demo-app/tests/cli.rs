//! The demo-app binary end to end on loopback: serve, healthcheck, proxy, and a prompt
//! clean exit on SIGTERM (what `docker stop` sends to PID 1).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_demo-app");

/// Kills the process if a test fails before it stopped it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "still running after {within:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(port: u16, secrets_dir: &Path, extra_env: &[(&str, &str)]) -> Running {
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .env("PORT", port.to_string())
        .env("SECRETS_DIR", secrets_dir)
        .env_remove("DEMO_REQUIRED_SECRETS")
        .env_remove("DEMO_REJECT_PREFIX")
        .env_remove("DEMO_FATAL_PREFIX")
        .stdout(Stdio::null());
    for (k, v) in extra_env {
        command.env(k, v);
    }
    let child = Running(command.spawn().expect("spawn demo-app"));
    wait_listening(port);
    child
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (status, body) of `GET path`.
fn get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

fn healthcheck(port: u16) -> bool {
    Command::new(BIN)
        .arg("healthcheck")
        .env("PORT", port.to_string())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn secrets_dir(files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "demo-app-cli-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    for (name, value) in files {
        std::fs::write(dir.join(name), value).unwrap();
    }
    dir
}

#[test]
fn serves_fingerprints_and_exits_cleanly_on_sigterm() {
    let dir = secrets_dir(&[("db-password", "correct horse")]);
    let port = free_port();
    let mut app = serve(port, &dir, &[("DEMO_REQUIRED_SECRETS", "db-password")]);
    let (status, body) = get(port, "/health");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"db-password\":\"sha256:"), "{body}");
    // `curl -s .../health` leaves the shell prompt on a line of its own.
    assert!(body.ends_with("}\n"), "{body:?}");
    assert!(!body.contains("correct horse"));
    assert!(healthcheck(port));
    assert_eq!(get(port, "/nope").0, 404);

    let asked = Instant::now();
    app.signal("TERM");
    let status = app.wait_exit(Duration::from_secs(2));
    assert!(status.success(), "{status}");
    assert!(
        asked.elapsed() < Duration::from_millis(1500),
        "{:?}",
        asked.elapsed()
    );
    assert!(!healthcheck(port), "nothing answers after the stop");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn missing_and_rejected_secrets_answer_503() {
    let dir = secrets_dir(&[("a", "BAD-value")]);
    let port = free_port();
    let mut app = serve(
        port,
        &dir,
        &[
            ("DEMO_REQUIRED_SECRETS", "a,b"),
            ("DEMO_REJECT_PREFIX", "BAD-"),
        ],
    );
    let (status, body) = get(port, "/health");
    assert_eq!(status, 503, "{body}");
    assert!(body.ends_with("}\n"), "{body:?}");
    assert!(body.contains("\"missing\":[\"b\"]"), "{body}");
    assert!(body.contains("\"rejected\":[\"a\"]"), "{body}");
    assert!(!body.contains("BAD-value"));
    assert!(!healthcheck(port));
    app.signal("INT");
    assert!(app.wait_exit(Duration::from_secs(2)).success());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_secret_with_the_fatal_prefix_stops_the_service_at_start_without_its_value() {
    let dir = secrets_dir(&[("a", "FATAL-value")]);
    let out = Command::new(BIN)
        .arg("serve")
        .env("PORT", free_port().to_string())
        .env("SECRETS_DIR", &dir)
        .env("DEMO_REQUIRED_SECRETS", "a")
        .env("DEMO_FATAL_PREFIX", "FATAL-")
        .env_remove("DEMO_REJECT_PREFIX")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("secret a is not accepted"), "{stderr}");
    assert!(
        !stderr.contains("FATAL-value")
            && !String::from_utf8_lossy(&out.stdout).contains("FATAL-value")
    );

    // Any other value starts as usual.
    std::fs::write(dir.join("a"), "fine").unwrap();
    let port = free_port();
    let mut app = serve(
        port,
        &dir,
        &[
            ("DEMO_REQUIRED_SECRETS", "a"),
            ("DEMO_FATAL_PREFIX", "FATAL-"),
        ],
    );
    assert_eq!(get(port, "/health").0, 200);
    app.signal("INT");
    assert!(app.wait_exit(Duration::from_secs(2)).success());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_proxy_forwards_and_answers_502_without_upstream() {
    let dir = secrets_dir(&[("k", "v")]);
    let upstream_port = free_port();
    let _upstream = serve(upstream_port, &dir, &[]);
    let proxy_port = free_port();
    let spawn_proxy = |upstream: String| {
        let child = Command::new(BIN)
            .args(["proxy", "--listen", &format!("127.0.0.1:{proxy_port}")])
            .args(["--upstream", &upstream])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let running = Running(child);
        wait_listening(proxy_port);
        running
    };
    let mut proxy = spawn_proxy(format!("localhost:{upstream_port}"));
    let (status, body) = get(proxy_port, "/health");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.ends_with("}\n"),
        "the proxy keeps the newline: {body:?}"
    );
    assert!(body.contains("\"k\":\"sha256:"), "{body}");
    proxy.signal("TERM");
    assert!(proxy.wait_exit(Duration::from_secs(2)).success());

    let _dead_end = spawn_proxy(format!("127.0.0.1:{}", free_port()));
    assert_eq!(get(proxy_port, "/health").0, 502);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unknown_commands_and_bad_options_exit_2() {
    for args in [
        &["frobnicate"][..],
        &["proxy", "--listen"][..],
        &["proxy"][..],
    ] {
        let status = Command::new(BIN)
            .args(args)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(2), "{args:?}");
    }
}
