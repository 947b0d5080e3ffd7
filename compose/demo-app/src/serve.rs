//! `demo-app serve`: the demo web service whose `/health` reports which secrets it can read.

use std::env;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;

use crate::http;
use crate::secrets;
use crate::server;

pub const DEFAULT_PORT: u16 = 8000;
const DEFAULT_SECRETS_DIR: &str = "/run/secrets";

/// Settings from the environment, read once at start (as Compose sets them at create time).
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub secrets_dir: PathBuf,
    pub required: Vec<String>,
    /// A marker (not a secret) that tests put at the start of a value to make it "bad".
    pub reject_prefix: Vec<u8>,
    /// Like `reject_prefix`, but the service refuses to start at all: a test's stand-in for
    /// a program that exits at once on a credential it cannot use.
    pub fatal_prefix: Vec<u8>,
    /// The container's host name, so a caller can tell replicas apart.
    pub instance: Option<String>,
}

impl Config {
    pub fn from_env() -> Result<Self, String> {
        Ok(Config {
            port: port_from_env()?,
            secrets_dir: env::var_os("SECRETS_DIR")
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from(DEFAULT_SECRETS_DIR), PathBuf::from),
            required: env::var("DEMO_REQUIRED_SECRETS")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            reject_prefix: env::var("DEMO_REJECT_PREFIX")
                .unwrap_or_default()
                .into_bytes(),
            fatal_prefix: env::var("DEMO_FATAL_PREFIX")
                .unwrap_or_default()
                .into_bytes(),
            instance: env::var("HOSTNAME").ok().filter(|h| !h.is_empty()),
        })
    }
}

/// `$PORT`, default 8000.
pub fn port_from_env() -> Result<u16, String> {
    match env::var("PORT") {
        Ok(p) if !p.trim().is_empty() => p
            .trim()
            .parse()
            .map_err(|_| format!("PORT must be a port number, got {p:?}")),
        _ => Ok(DEFAULT_PORT),
    }
}

pub fn run(config: Config) -> io::Result<()> {
    if !config.fatal_prefix.is_empty() {
        let scan = secrets::scan(&config.secrets_dir, &config.required, &config.fatal_prefix);
        if let Some(name) = scan.rejected.first() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("refusing to start: secret {name} is not accepted"),
            ));
        }
    }
    let stop = server::install_stop_flag()?;
    let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], config.port)))?;
    println!(
        "demo-app serving on 0.0.0.0:{} (secrets in {}, {} required)",
        config.port,
        config.secrets_dir.display(),
        config.required.len()
    );
    let config = Arc::new(config);
    server::run(listener, &stop, move |stream| handle(&config, stream))?;
    println!("demo-app stopped");
    Ok(())
}

fn handle(config: &Config, mut stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let request = match http::read_request(&mut stream) {
        Ok(request) => request,
        Err(e) => {
            let _ = http::write_response(&mut stream, 400, "text/plain", b"bad request\n");
            println!("{peer} - 400 ({})", e.kind());
            return;
        }
    };
    let (status, content_type, body) = respond(config, &request);
    let head_only = request.method == "HEAD";
    let _ = http::write_response(
        &mut stream,
        status,
        content_type,
        if head_only { b"" } else { body.as_bytes() },
    );
    // Method and path only: no headers, no body, never a value.
    println!(
        "{peer} {} {} {status}",
        request.method.escape_debug(),
        request.path().escape_debug()
    );
}

fn respond(config: &Config, request: &http::Request) -> (u16, &'static str, String) {
    if request.method != "GET" && request.method != "HEAD" {
        return (405, "text/plain", "method not allowed\n".into());
    }
    match request.path() {
        "/health" | "/healthz" => {
            let scan = secrets::scan(&config.secrets_dir, &config.required, &config.reject_prefix);
            let report =
                secrets::health_report(&scan, &config.required, config.instance.as_deref());
            let status = if report.healthy { 200 } else { 503 };
            (status, "application/json", report.json + "\n")
        }
        "/" => (
            200,
            "text/plain",
            "compose-secrets demo app; see /health\n".into(),
        ),
        _ => (404, "text/plain", "not found\n".into()),
    }
}
