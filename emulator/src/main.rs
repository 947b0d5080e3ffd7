//! kv-emulator: an HTTPS Azure Key Vault (secrets) emulator for tests, benchmarks and demos.

mod api;
mod auth;
mod cli;
mod faults;
mod files;
mod log;
mod respond;
mod server;
mod tls;
mod vault;

use std::process::ExitCode;

use clap::Parser as _;

/// Unix seconds, the unit of every Key Vault and token timestamp.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> ExitCode {
    let opts = cli::Opts::parse();
    match server::run(opts).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(server::StartError::Usage(msg)) => {
            eprintln!("kv-emulator: error: {msg}");
            ExitCode::from(2)
        }
        Err(server::StartError::Io(e)) => {
            eprintln!("kv-emulator: error: {e}");
            ExitCode::FAILURE
        }
    }
}
