//! Demo service for compose-secrets, built as one static binary for a `FROM scratch` image.
//!
//! - `demo-app serve` (default): HTTP on `0.0.0.0:$PORT` whose `/health` fingerprints the
//!   secrets in `$SECRETS_DIR` (never their values).
//! - `demo-app healthcheck`: the image's HEALTHCHECK; exit 0 when `/health` answers 200.
//! - `demo-app proxy --listen ADDR --upstream HOST:PORT`: a retrying reverse proxy used to
//!   show zero-downtime rotation of a scaled service.

mod healthcheck;
mod http;
mod proxy;
mod secrets;
mod serve;
mod server;

use std::process::ExitCode;

const USAGE: &str =
    "usage: demo-app [serve | healthcheck | proxy --listen ADDR --upstream HOST:PORT]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => ("serve", &[][..]),
    };
    match command {
        "serve" => serve(),
        "healthcheck" => healthcheck(),
        "proxy" => proxy(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => fail(&format!("unknown command {other:?}\n{USAGE}"), 2),
    }
}

fn serve() -> ExitCode {
    let config = match serve::Config::from_env() {
        Ok(config) => config,
        Err(e) => return fail(&e, 2),
    };
    match serve::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("serve: {e}"), 1),
    }
}

fn healthcheck() -> ExitCode {
    let port = match serve::port_from_env() {
        Ok(port) => port,
        Err(e) => return fail(&e, 2),
    };
    match healthcheck::is_healthy(port) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => fail("unhealthy: /health did not answer 200", 1),
        Err(e) => fail(&format!("unhealthy: {e}"), 1),
    }
}

fn proxy(args: &[String]) -> ExitCode {
    let config = match proxy::Config::from_args(args) {
        Ok(config) => config,
        Err(e) => return fail(&format!("{e}\n{USAGE}"), 2),
    };
    match proxy::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("proxy: {e}"), 1),
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("demo-app: {message}");
    ExitCode::from(code)
}
