//! Fuzz target: the Compose manifest parser (see `checks::manifest`).
#![no_main]

use std::sync::OnceLock;

#[path = "../checks.rs"]
#[allow(dead_code)] // each target uses one of the checks
mod checks;

/// One project directory for the whole run; each input overwrites its compose.yaml.
fn project() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("cs-fuzz-")
            .tempdir()
            .unwrap()
    })
    .path()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::manifest(data, project()));
