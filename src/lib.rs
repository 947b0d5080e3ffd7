//! compose-secrets: load and rotate secrets for Docker Compose applications.
//!
//! `main` parses the command line and hands over to [`commands::run`]; every
//! error comes back here, is printed once, and becomes its documented exit code.
//!
//! Every module is `pub(crate)`: the public API is [`main`], and, with the `testing` feature,
//! [`testing`] for the integration tests and the fuzz targets.

pub(crate) mod audit;
pub(crate) mod certificate;
pub(crate) mod checks;
pub(crate) mod cli;
pub(crate) mod clock;
pub(crate) mod commands;
pub(crate) mod compose;
pub(crate) mod context;
pub(crate) mod deploy;
pub(crate) mod dotenv;
pub(crate) mod ensuring;
pub(crate) mod error;
pub(crate) mod files;
pub(crate) mod generator;
pub(crate) mod hardening;
pub(crate) mod interrupt;
pub(crate) mod loading;
pub(crate) mod man;
pub(crate) mod memory_audit;
pub(crate) mod output;
pub(crate) mod owners;
pub(crate) mod provider;
pub(crate) mod rotation;
pub(crate) mod secret;
pub(crate) mod settings;
pub(crate) mod store;
pub(crate) mod syncing;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub(crate) mod transaction;

use std::process::ExitCode;

/// The command, dropped at its next await once SIGTERM, SIGINT or SIGHUP arrived and no
/// step is in progress (see [`interrupt`]). `sync --watch` stops itself first (exit 0).
async fn run_until_stopped(cli: cli::Cli, reporter: output::Reporter) -> error::Result<u8> {
    interrupt::install()?;
    tokio::select! {
        // The command first: a watcher that saw the signal returns its own clean stop.
        biased;
        outcome = commands::run(cli, reporter) => outcome,
        signal = interrupt::command_stop_point() => Err(interrupt::interrupted(signal)),
    }
}

pub fn main() -> ExitCode {
    hardening::harden_process();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match cli::Cli::try_parse_with(args.iter().cloned()) {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(output::command_line_error(&e, &args)),
    };
    output::init_logging(cli.global.verbose, cli.global.quiet);
    let reporter = output::Reporter::new(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("compose-secrets: error: cannot start the async runtime: {e}");
            return ExitCode::from(error::exit::FILESYSTEM);
        }
    };
    let outcome = runtime.block_on(run_until_stopped(cli, reporter.clone()));
    // Every task and its buffers are gone before the (test-only) search for leftover values.
    drop(runtime);
    memory_audit::run_if_requested();
    match outcome {
        Ok(code) => {
            reporter.finish(None);
            ExitCode::from(code)
        }
        Err(e) => {
            reporter.finish(Some(&e));
            ExitCode::from(e.exit_code())
        }
    }
}
