//! Fuzz target: no `.env` error shows any part of a value (see `checks::dotenv_errors`).
#![no_main]

use std::sync::OnceLock;

#[path = "../checks.rs"]
#[allow(dead_code)] // each target uses one of the checks
mod checks;

/// One project directory for the whole run; each input overwrites its `.env`.
fn project() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("cs-fuzz-dotenv-errors-")
            .tempdir()
            .unwrap()
    })
    .path()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::dotenv_errors(data, project()));
