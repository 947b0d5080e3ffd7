//! `demo-app proxy`: a minimal reverse proxy that proves a scaled service stays up while
//! its replicas restart one at a time.
//!
//! Like nginx with `proxy_next_upstream error timeout`, it resolves the upstream name on
//! every request (Docker's embedded DNS answers with every running replica), starts at
//! the next replica round-robin, and moves on to another replica when a connection fails
//! or an answer is cut short. Only when no replica answers does the client see a 502.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::http;
use crate::server;

// Replicas sit on a local bridge: a connect that takes longer means the replica is gone
// (a stopped container's address drops packets rather than refusing).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const UPSTREAM_IO_TIMEOUT: Duration = Duration::from_secs(5);

/// `--listen ADDR --upstream HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: String,
    pub upstream: String,
}

impl Config {
    pub fn from_args(args: &[String]) -> Result<Self, String> {
        let mut listen = "0.0.0.0:8080".to_string();
        let mut upstream = None;
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let mut value = || {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--listen" => listen = value()?,
                "--upstream" => upstream = Some(value()?),
                other => return Err(format!("unknown proxy option {other:?}")),
            }
        }
        let upstream = upstream.ok_or("proxy needs --upstream HOST:PORT")?;
        if !upstream.contains(':') {
            return Err(format!("--upstream must be HOST:PORT, got {upstream:?}"));
        }
        Ok(Config { listen, upstream })
    }
}

struct Proxy {
    upstream: String,
    /// Where the next request starts in the (sorted) replica list.
    next: AtomicUsize,
}

pub fn run(config: Config) -> io::Result<()> {
    let stop = server::install_stop_flag()?;
    let listener = TcpListener::bind(&config.listen)?;
    println!("demo-app proxy on {} -> {}", config.listen, config.upstream);
    let proxy = Arc::new(Proxy {
        upstream: config.upstream,
        next: AtomicUsize::new(0),
    });
    server::run(listener, &stop, move |stream| proxy.handle(stream))?;
    println!("demo-app proxy stopped");
    Ok(())
}

impl Proxy {
    fn handle(&self, mut client: TcpStream) {
        let request = match http::read_request(&mut client) {
            Ok(request) => request,
            Err(_) => {
                let _ = http::write_response(&mut client, 400, "text/plain", b"bad request\n");
                return;
            }
        };
        let forwarded = forwarded_request(&request, client.peer_addr().ok());
        let (status, outcome) = match self.forward(&forwarded) {
            Ok((response, replica, attempts)) => {
                let status = http::status_code(&response).unwrap_or(0);
                let _ = client.write_all(&response).and_then(|()| client.flush());
                (status, format!("via {replica} (attempt {attempts})"))
            }
            Err(why) => {
                let body = format!("no upstream replica answered: {why}\n");
                let _ = http::write_response(&mut client, 502, "text/plain", body.as_bytes());
                (502, why)
            }
        };
        println!(
            "proxy {} {} {status} {outcome}",
            request.method.escape_debug(),
            request.path().escape_debug()
        );
    }

    /// Resolve the replicas now and try them, starting at the next one in turn.
    fn forward(&self, request: &[u8]) -> Result<(Vec<u8>, SocketAddr, usize), String> {
        let replicas = self.resolve()?;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        try_replicas(&replicas, start, request).map_err(|last| {
            format!(
                "{} replica(s) of {} tried, last: {last}",
                replicas.len(),
                self.upstream
            )
        })
    }

    /// Every address the upstream name has right now, in a stable order.
    fn resolve(&self) -> Result<Vec<SocketAddr>, String> {
        let mut replicas: Vec<SocketAddr> = self
            .upstream
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.upstream))?
            .collect();
        replicas.sort();
        replicas.dedup();
        if replicas.is_empty() {
            return Err(format!("{} has no addresses", self.upstream));
        }
        Ok(replicas)
    }
}

/// Try each replica once from `start`; the first complete answer wins (with the replica
/// and the attempt number), else the last failure.
fn try_replicas(
    replicas: &[SocketAddr],
    start: usize,
    request: &[u8],
) -> Result<(Vec<u8>, SocketAddr, usize), String> {
    let mut last_error = String::from("no replicas");
    for attempt in 0..replicas.len() {
        let replica = replicas[(start + attempt) % replicas.len()];
        match exchange(replica, request) {
            Ok(response) => return Ok((response, replica, attempt + 1)),
            Err(e) => {
                println!("proxy: replica {replica} failed ({e}); trying the next one");
                last_error = format!("{replica}: {e}");
            }
        }
    }
    Err(last_error)
}

/// One request to one replica; an error for anything short of a complete answer.
fn exchange(replica: SocketAddr, request: &[u8]) -> io::Result<Vec<u8>> {
    let mut upstream = TcpStream::connect_timeout(&replica, CONNECT_TIMEOUT)?;
    upstream.set_read_timeout(Some(UPSTREAM_IO_TIMEOUT))?;
    upstream.set_write_timeout(Some(UPSTREAM_IO_TIMEOUT))?;
    upstream.write_all(request)?;
    upstream.flush()?;
    http::read_complete_response(&mut upstream)
}

/// The request as sent upstream: same method, target and headers, but one exchange per
/// connection (so the answer ends at EOF) and the client's address in X-Forwarded-For.
fn forwarded_request(request: &http::Request, client: Option<SocketAddr>) -> Vec<u8> {
    const HOP_BY_HOP: [&str; 4] = ["connection", "keep-alive", "proxy-connection", "upgrade"];
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.target);
    for (name, value) in &request.headers {
        if !HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    if let Some(client) = client {
        head.push_str(&format!("X-Forwarded-For: {}\r\n", client.ip()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&request.body);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_its_options() {
        let config =
            Config::from_args(&args(&["--listen", "0.0.0.0:9", "--upstream", "web:8000"])).unwrap();
        assert_eq!(config.listen, "0.0.0.0:9");
        assert_eq!(config.upstream, "web:8000");
        assert!(Config::from_args(&args(&["--listen", "x"])).is_err());
        assert!(Config::from_args(&args(&["--upstream", "web"])).is_err());
    }

    #[test]
    fn forwards_with_connection_close() {
        let request = http::read_request(
            &mut &b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"[..],
        )
        .unwrap();
        let text = String::from_utf8(forwarded_request(&request, None)).unwrap();
        assert_eq!(
            text,
            "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
    }

    /// A replica that accepts and then hangs up without answering (as one being stopped does).
    fn broken_replica() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming().take(4) {
                drop(stream);
            }
        });
        addr
    }

    fn good_replica() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming().take(4) {
                let mut stream = stream.unwrap();
                let _ = http::read_request(&mut stream);
                let _ = http::write_response(&mut stream, 200, "text/plain", b"ok");
            }
        });
        addr
    }

    /// An address nobody listens on any more.
    fn closed_port() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[test]
    fn retries_the_next_replica_then_gives_up() {
        let request = b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
        let (bad, good) = (broken_replica(), good_replica());
        let (answer, replica, attempts) = try_replicas(&[bad, good], 0, request).unwrap();
        assert_eq!(http::status_code(&answer), Some(200));
        assert_eq!((replica, attempts), (good, 2));
        let (_, replica, attempts) = try_replicas(&[closed_port(), good], 0, request).unwrap();
        assert_eq!((replica, attempts), (good, 2));
        let err = try_replicas(&[closed_port(), broken_replica()], 0, request).unwrap_err();
        assert!(!err.is_empty());
        assert!(try_replicas(&[], 0, request).is_err());
    }
}
