//! A Docker engine with nothing running: it negotiates a version, answers `_ping` and `info`
//! (not a swarm) and lists no container, on a unix socket in a temp directory. For what
//! `rotate` does when the stack is down, without a real engine (so `make test-fast` runs it).

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct IdleEngine {
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
}

impl IdleEngine {
    pub fn start() -> IdleEngine {
        let dir = tempfile::Builder::new()
            .prefix("cs-idle-engine-")
            .tempdir()
            .unwrap();
        let listener = UnixListener::bind(dir.path().join("docker.sock")).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        std::thread::spawn(move || serve(client));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        IdleEngine { dir, stop }
    }

    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }
}

impl Drop for IdleEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Answer GET requests on one keep-alive connection until the client closes it.
fn serve(client: UnixStream) {
    client.set_nonblocking(false).unwrap();
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut writer = client;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" || header == "\n" {
                break;
            }
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .split('?')
            .next()
            .unwrap_or("/");
        let (status, content_type, body) = if path.ends_with("/version") {
            (
                "200 OK",
                "application/json",
                r#"{"ApiVersion":"1.41","MinAPIVersion":"1.12","Version":"20.10.24","Os":"linux","Arch":"amd64"}"#,
            )
        } else if path.ends_with("/_ping") {
            ("200 OK", "text/plain", "OK")
        } else if path.ends_with("/info") {
            (
                "200 OK",
                "application/json",
                r#"{"Swarm":{"LocalNodeState":"inactive","ControlAvailable":false}}"#,
            )
        } else if path.ends_with("/containers/json") {
            ("200 OK", "application/json", "[]")
        } else {
            (
                "404 Not Found",
                "application/json",
                r#"{"message":"not in the idle engine"}"#,
            )
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nApi-Version: 1.41\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}
